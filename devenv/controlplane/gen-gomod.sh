#!/usr/bin/env bash
# Regenerates go.mod for the pinned Kubernetes release. k8s.io/kubernetes points its
# staging modules at ./staging paths that do not exist outside its own repo, so every
# one of them must be replaced by the published v0.X.Y module of the same tag; the list
# changes between releases, so it is read from that tag's own go.mod, never typed.
set -euo pipefail
cd "$(dirname "$0")"
version=$(cat K8S_VERSION)
staging_version="v0.${version#v1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module kubenova.io/controlplane"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes ${version}"
  echo
  echo "replace ("
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"${staging_version}"'#p' "$gomod"
  echo ")"
} > go.mod
go mod tidy

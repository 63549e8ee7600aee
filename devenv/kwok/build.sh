#!/usr/bin/env bash
# Builds KWOK's controller (sigs.k8s.io/kwok/cmd/kwok, the version go.mod pins) into a cache
# outside the repo, keyed by that version and go.mod/go.sum, and prints the directory. A
# second call with the same inputs costs nothing. The benchmark's pods referee (bench/pods.ts)
# runs it to play the kubelets of fake nodes; stages.yaml beside it holds the Stages it plays.
set -euo pipefail
cd "$(dirname "$0")"
version=$(sed -n 's#^require sigs.k8s.io/kwok \(v[^ ]*\)$#\1#p' go.mod)
if [[ -z "$version" ]]; then
  echo "build.sh: no 'require sigs.k8s.io/kwok vX.Y.Z' line in go.mod" >&2
  exit 2
fi
cache_root=${KUBENOVA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenova}
out="$cache_root/kwok-$version"
stamp="$out/.complete-$(sha256sum go.mod go.sum | sha256sum | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
# One build at a time, shared with devenv/controlplane/build.sh: two Go builds at once would
# only compete for the same cores.
exec 9>"$cache_root/.build.lock"
flock 9
if [[ -f "$stamp" ]]; then
  echo "$out"
  exit 0
fi
echo "building kwok $version into $out (the first build takes a few minutes)" >&2
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w" -o "$out/.kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
mv -f "$out/.kwok.tmp" "$out/kwok"
# kwok plays nothing without Stages; these are the ones kwokctl gives a cluster by default
# (nodes Ready at once, heartbeats with a Lease, pods Ready at once, deleted at once), from
# the same module version.
src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  cat "$src/kustomize/stage/$f.yaml"
  echo '---'
done > "$out/.stages.yaml.tmp"
mv -f "$out/.stages.yaml.tmp" "$out/stages.yaml"
rm -f "$out"/.complete-*
touch "$stamp"
echo "$out"

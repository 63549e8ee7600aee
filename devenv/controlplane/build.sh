#!/usr/bin/env bash
# Builds Kubernetes commands from the pinned release into a cache outside the repo, keyed
# by that version, and prints the directory. A second call with the same version costs
# nothing.
#   build.sh          the control-plane servers the tests need: kube-apiserver,
#                     kube-controller-manager and etcd
#   build.sh nodes    what real nodes need (devenv/cluster builds it on first use):
#                     kubelet, kube-proxy and kube-scheduler
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-servers}
version=$(cat K8S_VERSION)
cache_root=${KUBENOVA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenova}
case "$target" in
  servers) out="$cache_root/controlplane-$version" ;;
  nodes) out="$cache_root/nodes-$version" ;;
  *)
    echo "build.sh: unknown target '$target' (use servers or nodes)" >&2
    exit 2
    ;;
esac
stamp="$out/.complete-$(sha256sum go.mod go.sum cmd/etcd/main.go | sha256sum | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
# One build at a time: two test runs starting together must not write the same binaries,
# and two Go builds at once would only compete for the same two cores.
exec 9>"$cache_root/.build.lock"
flock 9
if [[ -f "$stamp" ]]; then
  echo "$out"
  exit 0
fi
minor=$(echo "$version" | cut -d. -f2)
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
export CGO_ENABLED=0
# Let go parallelise packages, but build the commands one after another so peak memory
# stays modest. Each lands under a temporary name first, so a running copy is never
# half-overwritten.
build() {
  local name=$1 pkg=$2 flags=$3
  go build -trimpath -ldflags "$flags" -o "$out/.$name.tmp" "$pkg"
  mv -f "$out/.$name.tmp" "$out/$name"
}
echo "building $target $version into $out (the first build takes several minutes)" >&2
case "$target" in
  servers)
    build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
    build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$ldflags"
    build etcd ./cmd/etcd "-s -w"
    ;;
  nodes)
    build kubelet k8s.io/kubernetes/cmd/kubelet "$ldflags"
    build kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$ldflags"
    build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$ldflags"
    ;;
esac
rm -f "$out"/.complete-*
touch "$stamp"
echo "$out"

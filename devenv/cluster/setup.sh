#!/usr/bin/env bash
# Installs what `npm run cluster` needs to run real nodes on this machine, as root on
# Debian: containerd and runc run the pods, the CNI plugins wire them, iptables and
# conntrack serve kube-proxy, iproute2 makes the bridge, namespaces and veth pairs,
# util-linux gives nsenter, setpriv and flock, openssl makes the certificates, ping checks
# that guests answer on their networks. Safe to run again: when everything is there it
# returns at once without touching apt.
# The system containerd service is not used (each node runs its own containerd).
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux mount openssl iputils-ping)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing ${missing[*]}; run as root: sudo bash $0" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The plugins this cluster's CNI configuration names.
for plugin in bridge host-local loopback portmap; do
  if [[ ! -x /usr/lib/cni/$plugin ]]; then
    echo "setup.sh: /usr/lib/cni/$plugin is missing after installing containernetworking-plugins" >&2
    exit 1
  fi
done

#!/usr/bin/env bash
# Installs what devenv/images/ needs to build container images without Docker or a registry:
# mmdebstrap (a Debian root filesystem from packages), umoci (OCI image layouts), gcc and
# libc6-dev (the static pause program) and containerd with runc (`ctr`, to import and run the
# images in tests). Idempotent: when everything is installed it only checks, in well under a
# second.
#
#   bash devenv/images/setup.sh            # as root
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
for pair in mmdebstrap:mmdebstrap umoci:umoci gcc:gcc containerd:containerd ctr:containerd runc:runc \
  tar:tar gzip:gzip; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# gcc without the C library's static archive cannot link the pause program with -static.
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "images/setup.sh: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "images/setup.sh: installing ${pkgs[*]}" >&2
# Another setup script may hold the dpkg lock: wait for it instead of failing.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }
if ! apt-cache show "${pkgs[@]}" >/dev/null 2>&1; then
  apt_get update -qq
fi
# Without recommends: mmdebstrap would bring a full set of alternative bootstrap tools.
apt_get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "images/setup.sh: installed ${pkgs[*]}" >&2

#!/usr/bin/env bash
# Installs and starts what the libvirt driver needs on a Debian host: libvirtd and virtlogd
# (libvirt-daemon-system, libvirt-clients), QEMU (qemu-system-x86, qemu-utils) and cpio for
# the guest image build (node-agent/driver/guest-image/build.sh). Idempotent: when all is
# installed and both daemons answer it only checks, in well under a second.
#
#   bash devenv/libvirt/setup.sh            # as root
#
# The daemons are started directly (`virtlogd -d`, `libvirtd -d`), not through systemd, so
# this works in containers and CI machines that have no init system. Guests are domains of
# type 'qemu' (software emulation): no /dev/kvm is needed.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
uri=${LIBVIRT_DEFAULT_URI:-qemu:///system}

missing=()
for pair in virsh:libvirt-clients libvirtd:libvirt-daemon-system virtlogd:libvirt-daemon-system \
  qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils cpio:cpio; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup.sh: installing ${pkgs[*]}" >&2
  apt-get update -qq
  # Without recommends: they would bring a desktop's worth of codecs and GPU drivers.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# /dev/kvm the way Debian's udev rules leave it: group kvm, mode 0660 (libvirt's qemu user is in
# group kvm). Where no udev ran (containers) it stays root-only; libvirt then finds KVM when it
# probes QEMU as root but not for its qemu user, judges its capability cache stale on every
# call and probes QEMU again each time: a `virsh define` takes half a minute instead of 20 ms.
# The guests do not use KVM either way (domain type 'qemu').
if [[ -c /dev/kvm && $(id -u) -eq 0 ]] && getent group kvm >/dev/null && [[ $(stat -c %G:%a /dev/kvm) != kvm:660 ]]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# kubenova's guests run QEMU as an unprivileged user with libvirt's dynamic ownership (the
# driver refuses a libvirtd that runs QEMU as root). Debian's qemu.conf does so by default (user
# libvirt-qemu, dynamic_ownership = 1); a host whose qemu.conf sets user = "root" must change it.
qemu_user_ok() {
  local label
  label=$(virsh -c "$uri" capabilities 2>/dev/null |
    sed -n "/<model>dac<\/model>/,/<\/secmodel>/s/.*<baselabel type='qemu'>\([^<]*\)<.*/\1/p" | head -n1)
  if [[ $label == +0:* ]]; then
    echo "setup.sh: libvirtd at $uri runs QEMU as root ($label): set user and group in /etc/libvirt/qemu.conf to an unprivileged user (Debian's: libvirt-qemu) with dynamic_ownership = 1, then restart libvirtd" >&2
    return 1
  fi
}

if virsh -c "$uri" list --name >/dev/null 2>&1; then
  qemu_user_ok
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: libvirtd does not answer at $uri; run as root to start it" >&2
  exit 1
fi
mkdir -p /run/libvirt /var/log/libvirt/qemu
pgrep -x virtlogd >/dev/null 2>&1 || virtlogd -d
pgrep -x libvirtd >/dev/null 2>&1 || libvirtd -d
for _ in $(seq 1 100); do
  if virsh -c "$uri" list --name >/dev/null 2>&1; then
    qemu_user_ok
    echo "setup.sh: libvirtd is running ($uri)" >&2
    exit 0
  fi
  sleep 0.2
done
echo "setup.sh: libvirtd did not answer at $uri within 20 s:" >&2
virsh -c "$uri" list --name >&2 || true
exit 1

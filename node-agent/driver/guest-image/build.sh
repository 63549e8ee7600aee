#!/usr/bin/env bash
# Builds the `tiny` guest image of the libvirt driver from Debian packages: the kernel of
# linux-image-cloud-amd64 and a gzip cpio initramfs holding busybox-static, the virtio modules
# and `init` (beside this file), booted by direct kernel boot. The image goes into a cache
# outside the repo, keyed by the package versions and this directory's files, and the script
# prints its directory (vmlinuz, initrd.gz, image.json). A second call with the same versions
# costs only an apt-cache lookup. Needs apt-get, dpkg-deb, cpio and gzip (devenv/libvirt/setup.sh
# installs cpio); the packages are downloaded and unpacked, never installed on this host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KUBENOVA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenova}
# Loaded in this order by init: each needs the ones before it (virtio_net needs net_failover,
# which needs failover). init reads the same list from /lib/modules/order.
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net)

# One apt-cache call (about half a second) names both versions; the kernel package behind
# the metapackage is looked up only when building.
candidates() {
  apt-cache policy linux-image-cloud-amd64 busybox-static 2>/dev/null |
    awk '/^[^ ]/ { pkg = $1 } /Candidate:/ { v[pkg] = $2 } END { print v["linux-image-cloud-amd64:"], v["busybox-static:"] }'
}

read -r kver bver < <(candidates) || true
if [[ -z ${kver:-} || -z ${bver:-} ]]; then
  # A machine whose package lists were never fetched.
  apt-get update -qq
  read -r kver bver < <(candidates) || true
fi
if [[ -z ${kver:-} || $kver == "(none)" || -z ${bver:-} || $bver == "(none)" ]]; then
  echo "guest-image: cannot find linux-image-cloud-amd64 and busybox-static in the package lists" >&2
  exit 1
fi
files_hash=$(cat "$here/build.sh" "$here/init" | sha256sum | cut -c1-12)
key=$(printf '%s' "kernel-${kver}_busybox-${bver}_${files_hash}" | tr -c 'A-Za-z0-9._-' '_')
out="$cache_root/guest-images/tiny-$key"
if [[ -f "$out/image.json" ]]; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root/guest-images"
work=$(mktemp -d "$cache_root/guest-images/.build-tiny.XXXXXX")
trap 'rm -rf "$work"' EXIT
kpkg=$(apt-cache depends "linux-image-cloud-amd64=$kver" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [[ -z $kpkg ]]; then
  echo "guest-image: linux-image-cloud-amd64 $kver names no kernel package" >&2
  exit 1
fi
echo "guest-image: building tiny from $kpkg $kver and busybox-static $bver" >&2
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$kpkg" "busybox-static=$bver")
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"
kernel_release=${kpkg#linux-image-}
moddir="$work/kernel/lib/modules/$kernel_release"

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"
for m in "${modules[@]}"; do
  if grep -q "/$m\.ko" "$moddir/modules.builtin" 2>/dev/null; then continue; fi
  ko=$(find "$moddir/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n 1)
  if [[ -z $ko ]]; then
    echo "guest-image: module $m is neither built in nor shipped by $kpkg" >&2
    exit 1
  fi
  case "$ko" in
    *.xz) xz -dc "$ko" >"$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$ko" >"$root/lib/modules/$m.ko" ;;
    *) cp "$ko" "$root/lib/modules/$m.ko" ;;
  esac
done
printf '%s\n' "${modules[@]}" >"$root/lib/modules/order"
# The console node lets the kernel hand init a console before devtmpfs is mounted; init
# reopens it from devtmpfs anyway, so a build without mknod rights still boots.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

mkdir "$work/image"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n >"$work/image/initrd.gz"
cp "$work/kernel/boot/vmlinuz-$kernel_release" "$work/image/vmlinuz"
cat >"$work/image/image.json" <<JSON
{
  "name": "tiny",
  "kernel": "vmlinuz",
  "initrd": "initrd.gz",
  "cmdline": "console=ttyS0 quiet panic=-1",
  "guestReport": true,
  "packages": { "$kpkg": "$kver", "busybox-static": "$bver" }
}
JSON
# Several agents may build at once: the first complete image to land wins, the others use it.
if ! mv -T "$work/image" "$out" 2>/dev/null && [[ ! -f "$out/image.json" ]]; then
  echo "guest-image: cannot move the built image to $out" >&2
  exit 1
fi
echo "$out"

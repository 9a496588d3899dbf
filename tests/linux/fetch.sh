#!/usr/bin/env bash
# Fetches Debian's arm64 Linux kernel (the 6.12 line from bookworm-backports)
# and busybox-static:arm64 with `apt-get download`, verifies them, and
# unpacks them into target/linux/pkg/ (nothing is installed). A second run
# finds target/linux/pkg/.fetched and returns at once, without the network.
#
# The one change to the machine's dpkg configuration: the arm64 architecture
# is added (`dpkg --add-architecture arm64`) so that apt lists arm64
# packages. It installs nothing for arm64. On the host it installs `kmod`
# (depmod) and `cpio` when missing, and runs board/qemu-virt/setup.sh, which
# adds the bookworm-backports source derived from the machine's own.
#
# Verification: each .deb as apt.sh's fetch_deb checks it (the archive's
# signed SHA256, the package name, version and architecture), then that the
# kernel is a little-endian arm64 Image ("ARM\x64" at 0x38) and that
# busybox is an AArch64 ELF executable.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/target/linux"
pkg="$out/pkg"
stamp="$pkg/.fetched"

[ -f "$stamp" ] && exit 0

. "$root/tests/linux/apt.sh"

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "linux: adding the arm64 architecture to dpkg (to download arm64 packages)" >&2
  $SUDO dpkg --add-architecture arm64
fi
# QEMU and the bookworm-backports source, derived from this machine's own.
bash "$root/board/qemu-virt/setup.sh"
if [ -z "$(version_in linux-image-arm64:arm64 bookworm-backports)" ]; then
  $SUDO apt-get update -qq >/dev/null
fi
missing=()
command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ] || missing+=(kmod)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

meta_version=$(version_in linux-image-arm64:arm64 bookworm-backports)
[ -n "$meta_version" ] || { echo "linux: no linux-image-arm64:arm64 in bookworm-backports" >&2; exit 1; }
# The metapackage depends on exactly one linux-image-<abi>-arm64.
kernel=$(apt-cache show "linux-image-arm64:arm64=$meta_version" |
  sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-arm64\) (= \([^)]*\)).*/\1 \2/p' | head -1)
read -r kernel_pkg kernel_version <<<"$kernel"
[ -n "$kernel_pkg" ] || { echo "linux: cannot resolve the kernel package of linux-image-arm64 $meta_version" >&2; exit 1; }
busybox_version=$(version_in busybox-static:arm64 bookworm)

debs="$out/debs"
kernel_deb=$(fetch_deb "$debs" "$kernel_pkg" "$kernel_version" arm64)
busybox_deb=$(fetch_deb "$debs" busybox-static "$busybox_version" arm64)

rm -rf "$pkg"
mkdir -p "$pkg"
dpkg-deb -x "$kernel_deb" "$pkg"
dpkg-deb -x "$busybox_deb" "$pkg"

abi=${kernel_pkg#linux-image-}
image="$pkg/boot/vmlinuz-$abi"
[ "$(dd if="$image" bs=1 skip=56 count=4 status=none)" = $'ARM\x64' ] ||
  { echo "linux: $image is not an arm64 Image" >&2; exit 1; }
[ "$(od -An -tx1 -j18 -N2 "$pkg/bin/busybox" | tr -d ' ')" = "b700" ] ||
  { echo "linux: busybox is not an AArch64 executable" >&2; exit 1; }
depmod=$(command -v depmod || echo /sbin/depmod)
"$depmod" -b "$pkg" "$abi"

echo "$abi" >"$stamp"
echo "linux: $kernel_pkg $kernel_version and busybox-static $busybox_version in ${pkg#"$root"/}" >&2

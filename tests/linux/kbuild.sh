#!/usr/bin/env bash
# Sets up what building an out-of-tree module for the kernel fetch.sh
# unpacked takes: that kernel's own build tree and the compiler Debian built
# it with. module.sh runs it; a second run finds target/linux/kbuild/.ready
# naming that kernel's tree and returns at once, without the network.
#
# - The build tree: `linux-headers-<abi>:arm64` of exactly the kernel's
#   version, and what it depends on by name: `linux-headers-<...>-common`
#   (arch all) and `linux-kbuild-<...>` (the host's architecture: its
#   programs, modpost and fixdep, run here). Each is fetched and verified
#   as apt.sh's fetch_deb does and unpacked with `dpkg-deb -x` into
#   target/linux/kbuild/; nothing is installed. The arm64 headers' Makefile
#   includes the common one by an absolute /usr/src path: it is pointed at
#   the unpacked copy (a relative path, so the tree may move).
# - The compiler: the headers depend on `gcc-N`, and the kernel names
#   `aarch64-linux-gnu-gcc-N` as its CC: the host gets Debian's
#   `gcc-N-aarch64-linux-gnu`, `make`, xz and the kbuild programs'
#   libraries when missing (nothing for arm64).
#
# Prints the arm64 headers' directory (what `make -C` takes).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/target/linux"
kit="$out/kbuild"
stamp="$kit/.ready"

[ -f "$out/pkg/.fetched" ] || bash "$root/tests/linux/fetch.sh"
abi=$(cat "$out/pkg/.fetched")
headers="linux-headers-$abi"
tree="$kit/usr/src/$headers"
# The stamp names the build tree it made: that of the kernel fetched now.
if [ "$(cat "$stamp" 2>/dev/null)" = "${tree#"$root"/}" ]; then
  echo "$tree"
  exit 0
fi

. "$root/tests/linux/apt.sh"
kernel_deb=$(ls "$out/debs/linux-image-${abi}_"*_arm64.deb)
version=$(dpkg-deb --field "$kernel_deb" Version)

# A dependency of the headers named by its prefix, e.g. "linux-kbuild-".
depends_on() { # prefix
  apt-cache show "$headers:arm64=$version" | sed -n 's/^Depends: //p' | head -1 |
    tr ',|' '\n\n' | sed -n "s/^ *\($1[^ ]*\).*/\1/p" | head -1
}
common=$(depends_on "linux-headers-.*-common")
kbuild=$(depends_on "linux-kbuild-")
gcc=$(depends_on "gcc-[0-9]")
[ -n "$common" ] && [ -n "$kbuild" ] && [ -n "$gcc" ] ||
  { echo "linux: cannot resolve the build dependencies of $headers $version" >&2; exit 1; }

host_arch=$(dpkg --print-architecture)
debs="$out/debs"
headers_deb=$(fetch_deb "$debs" "$headers" "$version" arm64)
common_deb=$(fetch_deb "$debs" "$common" "$version" all)
kbuild_deb=$(fetch_deb "$debs" "$kbuild" "$version" "$host_arch")

# Host packages: the cross compiler, make, what linux-kbuild's programs
# link against (its Depends, less pahole: BTF for modules is not built) and
# xz (initramfs.sh compresses the modules).
wanted=("$gcc-aarch64-linux-gnu" make xz-utils)
for dep in $(dpkg-deb --field "$kbuild_deb" Depends | tr ',' '\n' | sed 's/^ *\([^ ]*\).*/\1/'); do
  [ "$dep" = pahole ] || wanted+=("$dep")
done
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "linux: installing ${missing[*]} (to build kernel modules)" >&2
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v "aarch64-linux-gnu-$gcc" >/dev/null ||
  { echo "linux: aarch64-linux-gnu-$gcc is not installed" >&2; exit 1; }

rm -rf "$kit"
mkdir -p "$kit"
for deb in "$headers_deb" "$common_deb" "$kbuild_deb"; do dpkg-deb -x "$deb" "$kit"; done
makefile="$tree/Makefile"
[ "$(cat "$makefile")" = "include /usr/src/$common/Makefile" ] ||
  { echo "linux: $makefile is not the one-line include expected" >&2; exit 1; }
echo "include ../$common/Makefile" >"$makefile"
[ -f "$kit/usr/src/$common/Makefile" ] && [ -x "$tree/scripts/mod/modpost" ] ||
  { echo "linux: $kit does not hold a complete build tree" >&2; exit 1; }

echo "${tree#"$root"/}" >"$stamp"
echo "linux: $headers, $common and $kbuild $version in ${kit#"$root"/}" >&2
echo "$tree"

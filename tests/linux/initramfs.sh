#!/usr/bin/env bash
# Builds the initramfs of a Linux scenario: busybox (from
# busybox-static:arm64), the kernel modules the scenario names on its
# `# modules:` line with their dependencies in load order (from the
# modules.dep that fetch.sh made; /init loads them), the repo's own modules
# it names on its `# repo modules:` line (linux/<name>/, built by
# module.sh, put in /lib/modules/<abi>/extra/ as .ko.xz for the scenario
# to load), the repo's test programs it names on its `# repo programs:`
# line (linux/programs/<name>.c, built by program.sh, put in /bin), /init,
# the check framework and the scenario. Output:
# target/linux/initramfs-<scenario>.cpio.gz.
#
#   tests/linux/initramfs.sh boot
set -euo pipefail

scenario=${1:?usage: initramfs.sh <scenario>}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pkg="$root/target/linux/pkg"
src="$here/scenarios/$scenario.sh"
out="$root/target/linux/initramfs-$scenario.cpio.gz"
[ -f "$src" ] || { echo "initramfs: no scenario $src" >&2; exit 1; }
[ -f "$pkg/.fetched" ] || bash "$here/fetch.sh"
abi=$(cat "$pkg/.fetched")
moddir="lib/modules/$abi"

work="$root/target/linux/initramfs/$scenario"
rm -rf "$work"
mkdir -p "$work"/{bin,dev,proc,sys,tmp,"$moddir"}
cp "$pkg/bin/busybox" "$work/bin/busybox"
install -m 755 "$here/init" "$work/init"
cp "$here/checks.sh" "$work/checks.sh"
cp "$src" "$work/scenario.sh"
echo "$scenario" >"$work/scenario.name"

# Module name -> path in modules.dep ("-" and "_" are the same).
path_of() {
  local name=${1//-/_}
  awk -F: -v n="$name" '{ p = $1; b = p; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); gsub(/-/, "_", b); if (b == n) { print p; exit } }' "$pkg/$moddir/modules.dep"
}
deps_of() {
  awk -F': *' -v p="$1" '$1 == p { print $2 }' "$pkg/$moddir/modules.dep"
}
declare -A seen=()
order=()
add() { # path: its dependencies first, then itself
  local path=$1 dep
  [ -n "${seen[$path]:-}" ] && return
  seen[$path]=1
  for dep in $(deps_of "$path"); do add "$dep"; done
  order+=("$path")
}
for name in $(sed -n 's/^# modules://p' "$src"); do
  path=$(path_of "$name")
  [ -n "$path" ] || { echo "initramfs: no module $name in $abi" >&2; exit 1; }
  add "$path"
done
: >"$work/modules"
for path in "${order[@]}"; do
  mkdir -p "$work/$moddir/$(dirname "$path")"
  cp "$pkg/$moddir/$path" "$work/$moddir/$path"
  echo "$abi/$path" >>"$work/modules"
done

for name in $(sed -n 's/^# repo modules://p' "$src"); do
  built=$(bash "$here/module.sh" "$name")
  mkdir -p "$work/$moddir/extra"
  for ko in $built; do
    # Compressed as Debian's own are (and as the kernel's own build does).
    # busybox's insmod then loads with init_module(2): its finit_module(2)
    # attempt fails cleanly on the compressed file. A task killed inside
    # finit_module would leave a dangling entry in the kernel's table of
    # loads in progress (kernel/module/main.c, idempotent_init_module)
    # that a later finit_module trips over.
    xz --check=crc32 --lzma2=dict=1MiB -c "$ko" >"$work/$moddir/extra/$(basename "$ko").xz"
  done
done

for name in $(sed -n 's/^# repo programs://p' "$src"); do
  install -m 755 "$(bash "$here/program.sh" "$name")" "$work/bin/$name"
done

(cd "$work" && find . -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc --owner=0:0 --reproducible --quiet) | gzip -n -6 >"$out.tmp"
mv "$out.tmp" "$out"

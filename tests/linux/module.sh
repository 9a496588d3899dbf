#!/usr/bin/env bash
# Builds the repo's out-of-tree Linux module(s) in linux/<name>/ (a Kbuild
# file and its sources) for the kernel fetch.sh unpacked, with the build
# tree and compiler kbuild.sh sets up, and prints the paths of the .ko
# files: target/linux/modules/<name>/*.ko.
#
# Kbuild writes its objects next to the sources, so the sources are copied
# there first (timestamps kept: make rebuilds what changed). The modules
# see the repo's include/ (smmu_hyp.h) and linux/include/ (<stdint.h> for
# it). A second run with nothing changed prints the paths at once.
#
#   tests/linux/module.sh hyp-probe
set -euo pipefail

name=${1:?usage: module.sh <directory under linux/>}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/linux/$name"
out="$root/target/linux/modules/$name"
stamp="$out/.built"
[ -f "$src/Kbuild" ] || { echo "module: no $src/Kbuild" >&2; exit 1; }

tree=$(bash "$root/tests/linux/kbuild.sh")
if [ ! -f "$stamp" ] || [ -n "$(find "$src" "$root/include" "$root/linux/include" \
  "$root/target/linux/kbuild/.ready" -newer "$stamp" -print -quit)" ]; then
  mkdir -p "$out"
  cp -a "$src/." "$out/"
  # The kernel's CROSS_COMPILE and CC come from the headers' own
  # .kernelvariables; BTF for modules would need pahole.
  make -s -j"$(nproc)" -C "$tree" M="$out" ARCH=arm64 CONFIG_DEBUG_INFO_BTF_MODULES= \
    SMMU_HYP_REPO="$root" modules >&2
  touch "$stamp"
fi
ls "$out"/*.ko

#!/usr/bin/env bash
# Builds a repo tool for Linux's userspace: linux/<name>/<name>.c, a static
# arm64 program without a C library (it makes its system calls itself), with
# the cross compiler the kernel kit uses (kbuild.sh installs it; its name is
# in the kernel headers' .kernelvariables). Prints the binary's path,
# target/linux/tools/<name>. A second run with nothing changed prints it at
# once.
#
#   tests/linux/tool.sh iobench
set -euo pipefail

name=${1:?usage: tool.sh <directory under linux/>}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/linux/$name/$name.c"
out="$root/target/linux/tools/$name"
[ -f "$src" ] || { echo "tool: no $src" >&2; exit 1; }

if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
  tree=$(bash "$root/tests/linux/kbuild.sh")
  vars="$tree/.kernelvariables"
  cross=$(sed -n 's/^override CROSS_COMPILE = //p' "$vars")
  gcc=$(sed -n 's/^CC = .*(CROSS_COMPILE)\(gcc[-0-9]*\)$/\1/p' "$vars")
  [ -n "$cross" ] && [ -n "$gcc" ] || { echo "tool: no compiler named in $vars" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  "$cross$gcc" -static -nostdlib -ffreestanding -fno-stack-protector -O2 -Wall -Wextra -Werror \
    -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
fi
echo "$out"

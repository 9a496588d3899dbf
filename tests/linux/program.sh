#!/usr/bin/env bash
# Builds one of the repo's freestanding test programs for Linux,
# linux/programs/<name>.c (with sys.c: no C library), as a static aarch64
# executable with the cross compiler kbuild.sh installs (the one Debian
# built the kernel with), and prints its path: target/linux/programs/<name>.
# A second run with nothing changed prints the path at once.
#
#   tests/linux/program.sh simd-check
set -euo pipefail

name=${1:?usage: program.sh <name of linux/programs/<name>.c>}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/linux/programs"
out="$root/target/linux/programs/$name"
[ -f "$src/$name.c" ] || { echo "program: no $src/$name.c" >&2; exit 1; }

if [ ! -f "$out" ] || [ -n "$(find "$src" -newer "$out" -print -quit)" ]; then
  tree=$(bash "$root/tests/linux/kbuild.sh")
  # The compiler the kernel's build names in its .kernelvariables:
  # `override CROSS_COMPILE = aarch64-linux-gnu-` and
  # `CC = $(CROSS_COMPILE)gcc-N`.
  vars="$tree/.kernelvariables"
  cross=$(sed -n 's/^override CROSS_COMPILE = //p' "$vars")
  gcc=$(sed -n 's/^CC = .*(CROSS_COMPILE)\(gcc[-0-9]*\)$/\1/p' "$vars")
  [ -n "$cross" ] && [ -n "$gcc" ] || { echo "program: no compiler named in $vars" >&2; exit 1; }
  cc=$cross$gcc
  mkdir -p "$(dirname "$out")"
  # Freestanding: no libc, no stack protector or PIE start-up code, and no
  # loop turned into a call of the memset/memcpy sys.c defines.
  "$cc" -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-pie -no-pie \
    -fno-tree-loop-distribute-patterns -O2 -Wall -Wextra -Werror \
    -o "$out.tmp" "$src/$name.c" "$src/sys.c"
  mv "$out.tmp" "$out"
fi
echo "$out"

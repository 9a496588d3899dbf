#!/usr/bin/env bash
# Writes the disk image target/linux/disks/<name>.img of <MiB> MiB with
# known content (each 512-byte sector a line naming the disk and the
# sector, so a sector read from the wrong place changes the checksum) and
# prints the image's MD5. The content depends only on the arguments: a
# second run reuses the image.
#
#   tests/linux/disk.sh nvme 64
set -euo pipefail

name=${1:?usage: disk.sh <name> <MiB>}
mib=${2:?usage: disk.sh <name> <MiB>}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/linux/disks"
img="$dir/$name-$mib.img"
mkdir -p "$dir"
if [ ! -f "$img" ]; then
  awk -v name="$name" -v sectors=$((mib * 2048)) 'BEGIN {
    for (n = 0; n < sectors; n++) printf "%-511s\n", "smmu-hyp test disk " name ", sector " n
  }' >"$img.tmp"
  mv "$img.tmp" "$img"
fi
[ "$(stat -c %s "$img")" -eq $((mib << 20)) ] || { echo "disk: $img has the wrong size" >&2; exit 1; }
md5sum "$img" | cut -d ' ' -f 1

#!/usr/bin/env bash
# Writes the disk image target/linux/disks/<name>.img of <MiB> MiB with
# known content (each 512-byte sector a line naming the disk and the
# sector, so a sector read from the wrong place changes the checksum) and
# prints the MD5s of its four quarters, colon-separated (what the DMA
# scenarios check, tests/linux/checks.sh). The content depends only on the
# arguments: a second run reuses the image.
#
#   tests/linux/disk.sh nvme 64
set -euo pipefail

name=${1:?usage: disk.sh <name> <MiB>}
mib=${2:?usage: disk.sh <name> <MiB>}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/linux/disks"
img="$dir/$name-$mib.img"
[ $((mib % 4)) -eq 0 ] || { echo "disk: $mib MiB is not four whole quarters" >&2; exit 1; }
mkdir -p "$dir"
if [ ! -f "$img" ]; then
  # A file of its own, renamed into place: test runs in parallel may write
  # the same image at once.
  tmp=$(mktemp "$img.XXXXXX")
  awk -v name="$name" -v sectors=$((mib * 2048)) 'BEGIN {
    for (n = 0; n < sectors; n++) printf "%-511s\n", "smmu-hyp test disk " name ", sector " n
  }' >"$tmp"
  mv "$tmp" "$img"
fi
[ "$(stat -c %s "$img")" -eq $((mib << 20)) ] || { echo "disk: $img has the wrong size" >&2; exit 1; }
quarter=$((mib / 4))
for q in 0 1 2 3; do
  dd if="$img" bs=1M skip=$((q * quarter)) count=$quarter status=none | md5sum | cut -d ' ' -f 1
done | paste -sd :

#!/usr/bin/env bash
# The IOMMU front doors compared on Debian's Linux (`make bench`): O_DIRECT
# reads of an NVMe disk, one at a time (tests/linux/scenarios/bench.sh:
# dio-bench, 4 KiB random and 1 MiB sequential), for each case
#
#   a  the hyp's virtio-iommu front door   (iommu=virtio; needs that front door)
#   b  Linux's own arm-smmu-v3 driver, no hyp (QEMU's SMMUv3 given to Linux)
#   c  QEMU's virtio-iommu-pci, no hyp
#   d  no IOMMU, no hyp
#   e  the hyp's paravirtual front door     (iommu=pv, linux/pv-iommu)
#
# Each case boots BENCH_REPS times (default 3, the cases taking turns)
# without -icount for MB/s and IOPS (wall clock, BENCH_SECONDS per
# measurement, default 5; the table has the median of the boots, as the
# machine's load moves them), and once with -icount shift=0,sleep=off (one
# instruction per nanosecond, deterministic) where Linux's function_graph
# tracer times the IOMMU driver's map (map_pages + iotlb_sync_map) and
# unmap (unmap_pages + iotlb_sync) in instructions, the tracer's own cost
# (its time for the pv driver's empty iotlb_sync) taken off. For e, the
# driver's own counters also give the instructions of one HYP_MAP and one
# HYP_UNMAP round trip (hvc to return). Ratios are to b. Needs `make images
# linux-kit`.
#
#   tests/linux/bench.sh [CASE...]      (default: b c d e)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${BENCH_SECONDS:-5}
reps=${BENCH_REPS:-3}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(b c d e)

kernel=$(ls target/linux/pkg/boot/vmlinuz-*)
initramfs=target/linux/initramfs-bench.cpio.gz
hyp=target/images/qemu-virt/smmu-hyp.bin
[ -f "$initramfs" ] && [ -f "$hyp" ] || { echo "bench: run make images linux-kit first" >&2; exit 1; }
image=$(mktemp --suffix=.img)
trap 'rm -f "$image"' EXIT
dd if=/dev/urandom of="$image" bs=1M count=64 status=none
disk=(-drive "file=$image,if=none,id=d0,format=raw,snapshot=on" -device nvme,drive=d0,serial=d0)
kargs="console=ttyAMA0 panic=-1 scenario=bench"

# The board's QEMU arguments without -icount (as tests/linux.rs boots Linux).
board_args() {
  grep -v '^#' board/qemu-virt/qemu-args | sed '/^-icount$/,+1d'
}

# Boots case $1 with the kernel arguments $2 and QEMU arguments after;
# prints the scenario's "bench: " lines.
boot() {
  local case=$1 args=$2 machine
  shift 2
  case $case in
  a | e)
    local door=pv
    [ "$case" = a ] && door=virtio
    # shellcheck disable=SC2046 # one argument per line
    timeout 300 qemu-system-aarch64 $(board_args) -no-reboot "${disk[@]}" "$@" \
      -kernel "$hyp" -append "semihosting iommu=$door" \
      -device "guest-loader,addr=0x50000000,kernel=$kernel,bootargs=$kargs $args" \
      -device "guest-loader,addr=0x58000000,initrd=$initramfs" ;;
  b | c | d)
    machine=virt,gic-version=3
    local extra=()
    [ "$case" = b ] && machine=$machine,iommu=smmuv3
    [ "$case" = c ] && extra=(-device virtio-iommu-pci)
    timeout 300 qemu-system-aarch64 -M "$machine" -cpu max -m 1G -nographic -nic none \
      -no-reboot "${disk[@]}" "${extra[@]}" "$@" \
      -kernel "$kernel" -initrd "$initramfs" -append "$kargs $args" ;;
  esac | tr -d '\r' | grep '^bench: ' || true
}

name() {
  case $1 in
  a) echo "the hyp's virtio-iommu" ;;
  b) echo "arm-smmu-v3, no hyp" ;;
  c) echo "QEMU virtio-iommu, no hyp" ;;
  d) echo "no IOMMU, no hyp" ;;
  e) echo "pv-iommu hypercalls" ;;
  esac
}

# field FILE PATTERN N: the Nth word of the first line matching the
# extended regex PATTERN (nothing if none does).
field() {
  { grep -m 1 -E -- "$2" "$1" || true; } | awk -v n="$3" '{ print $n }'
}

out=$(mktemp -d)
trap 'rm -rf "$out" "$image"' EXIT
for rep in $(seq "$reps"); do
  for c in "${cases[@]}"; do
    echo "bench: case $c ($(name "$c")), boot $rep of $reps" >&2
    boot "$c" "seconds=$seconds" | tee "$out/$c.speed.$rep" | sed "s/^bench: /bench: $c: /"
  done
done
for c in "${cases[@]}"; do
  # No IOMMU driver to time without an IOMMU.
  [ "$c" = d ] && { : >"$out/$c.trace"; continue; }
  echo "bench: case $c ($(name "$c")), -icount" >&2
  boot "$c" "seconds=1 trace=1" -icount shift=0,sleep=off | tee "$out/$c.trace" |
    sed "s/^bench: /bench: $c: /"
done

# median CASE PATTERN N: the median over the boots of field N of the line
# matching PATTERN.
median() {
  local r
  for r in $(seq "$reps"); do field "$out/$1.speed.$r" "$2" "$3"; done |
    sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# The tracer's own cost: its time for a function that does nothing (the pv
# driver's iotlb_sync), when case e ran.
overhead=0
[ -f "$out/e.trace" ] && overhead=$(field "$out/e.trace" "traced pv_iotlb_sync " 6)
overhead=${overhead:-0}
echo "bench: tracer cost per traced call: $overhead instructions (taken off below; 0 without case e)"

printf '%-4s %-26s %8s %8s %8s %9s %9s %9s %10s %10s\n' case what "4K IOPS" "4K MB/s" "1M MB/s" "RAM IOPS" "map ins" "unmap ins" "HYP_MAP" "HYP_UNMAP"
for c in "${cases[@]}"; do
  t="$out/$c.trace"
  iops=$(median "$c" "rand4k:" 10)
  mb4=$(median "$c" "rand4k:" 12)
  mb1=$(median "$c" "seq1m:" 12)
  ram=$(median "$c" "ram0 rand4k:" 10)
  map=- unmap=- hmap=- hunmap=-
  m=$(field "$t" 'traced [a-z_]+_map_pages ' 6)
  sm=$(field "$t" 'traced [a-z_]+_iotlb_sync_map ' 6)
  u=$(field "$t" 'traced [a-z_]+_unmap_pages ' 6)
  y=$(field "$t" 'traced [a-z_]+_iotlb_sync ' 6)
  [ -n "$m" ] && map=$((m - overhead))
  [ -n "$m" ] && [ -n "$sm" ] && map=$((map + sm - overhead))
  [ -n "$u" ] && unmap=$((u - overhead))
  [ -n "$u" ] && [ -n "$y" ] && unmap=$((unmap + y - overhead))
  if grep -q 'pv maps' "$t"; then
    hmap=$(($(field "$t" 'pv map_ticks' 4) / $(field "$t" 'pv maps ' 4)))
    hunmap=$(($(field "$t" 'pv unmap_ticks' 4) / $(field "$t" 'pv unmaps ' 4)))
  fi
  printf '%-4s %-26s %8s %8s %8s %9s %9s %9s %10s %10s\n' "$c" "$(name "$c")" "${iops:--}" "${mb4:--}" "${mb1:--}" "${ram:--}" "$map" "$unmap" "$hmap" "$hunmap"
  echo "$c ${iops:-0} ${mb1:-0} ${ram:-0} $map $unmap" >>"$out/table"
done

# Ratios to b, when b ran.
read -r _ b_iops b_mb1 b_ram b_map b_unmap < <(grep '^b ' "$out/table" || echo "b 0 0 0 - -")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'; }
if [ "${b_iops:-0}" != 0 ]; then
  while read -r c iops mb1 ram map unmap; do
    echo "bench: $c vs b: 4K IOPS x$(ratio "$iops" "$b_iops"), 1M MB/s x$(ratio "$mb1" "$b_mb1"), RAM disk IOPS x$(ratio "$ram" "$b_ram"), instructions per map x$(ratio "$map" "$b_map"), per unmap x$(ratio "$unmap" "$b_unmap")"
  done <"$out/table"
fi

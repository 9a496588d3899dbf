#!/usr/bin/env bash
# `make bench`, the Linux part: the IOMMU front doors compared on Debian's
# Linux. O_DIRECT reads of an NVMe disk (a 64 MiB image from disk.sh), one
# request at a time (the `bench` scenario: dio-bench, 4 KiB random and
# 1 MiB sequential, each request a DMA map and unmap through Linux's IOMMU
# driver), with the same kernel, initramfs, disk and QEMU, through
#
#   a  the hyp's virtio-iommu         (Linux at EL1 under the hyp, iommu=virtio)
#   b  Linux's own arm-smmu-v3 driver on QEMU's SMMUv3, no hyp
#   c  QEMU's virtio-iommu-pci, no hyp
#   d  no IOMMU, no hyp
#   e  the hyp's paravirtual front door (iommu=pv, linux/pv-iommu)
#
# (b)-(d) boot Linux directly at EL1 (virtualization=off). Every case runs
# on the same CPU model, BENCH_CPU (default `max,pauth=off`): with pointer
# authentication, which Debian's kernel uses in nearly every function,
# QEMU's TCG calls a helper per PAC instruction and flushes its whole TLB
# whenever Linux changes SCTLR_EL1's key-enable bits (about twice per NVMe
# read, at each switch between the reader and a kernel thread or idle).
# That was ~36% of a 4 KiB read's time without the hyp and ~45% under it,
# costs hardware does not have (docs/pv-iommu.md, "The CPU model";
# BENCH_CPU=max measures with them). Each boot also
# reads a RAM disk the same way: system calls through the block layer
# without a device or DMA, so its ratio is what running under the hyp
# costs without any IOMMU work (on QEMU's TCG about 15%: its extra checks
# whenever EL2 is enabled, docs/pv-iommu.md).
#
# Wall-clock figures move with the machine's load: every case boots
# BENCH_REPS times (default 3), the cases taking turns, BENCH_SECONDS per
# measurement (default 5), and the table has each case's medians, with
# ratios to (b). Then (a) and (e) boot once more under `-icount
# shift=0,sleep=off` on one CPU, where a nanosecond of the counter is one
# instruction: the hyp's virtio-iommu logs at power-off the time in EL2
# per MAP and per UNMAP request; pv_iommu's counters give the time per
# HYP_MAP, HYP_MAP_LIST and HYP_UNMAP hypercall, `hvc` to return. Run by `make bench`
# (or `make bench-linux BENCH_CASES="a e"`), which passes how the board
# boots the hyp: QEMU, QEMU_LINUX_ARGS, HYP_BIN, BOARD_BOOTARGS,
# EL1_KERNEL_ADDR, EL1_RAMDISK_ADDR.
#
#   BENCH_REPS=5 BENCH_SECONDS=3 make bench-linux BENCH_CASES="a b"   (default: a b c d e)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
reps=${BENCH_REPS:-3}
seconds=${BENCH_SECONDS:-5}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(a b c d e)

kernel=$(ls target/linux/pkg/boot/vmlinuz-*)
initramfs=target/linux/initramfs-bench.cpio.gz
hyp=${HYP_BIN:?bench: run by make bench}
[ -f "$initramfs" ] && [ -f "$hyp" ] || { echo "bench: run make images linux-kit first" >&2; exit 1; }
bash tests/linux/disk.sh nvme 64 >/dev/null
disk=(-drive "file=target/linux/disks/nvme-64.img,if=none,id=d0,format=raw,snapshot=on"
  -device nvme,drive=d0,serial=d0)
kargs="console=ttyAMA0 panic=-1 scenario=bench"
# The board's QEMU arguments for Linux (no -icount: Linux never reaches
# init with the board's shift=10), and QEMU's virt machine without the hyp.
read -ra board <<<"$QEMU_LINUX_ARGS"
cpu=${BENCH_CPU:-max,pauth=off}
board_cpu=
for i in "${!board[@]}"; do
  if [ "${board[$i]}" = -cpu ]; then board[i + 1]=$cpu board_cpu=yes; fi
done
[ -n "$board_cpu" ] || board+=(-cpu "$cpu")
common=(-cpu "$cpu" -m 1G -nographic -nic none -no-reboot -device edu,dma_mask=0xffffffffffffffff)
log=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$log"' EXIT

name() {
  case $1 in
  a) echo "hyp virtio-iommu" ;;
  b) echo "arm-smmu-v3, no hyp" ;;
  c) echo "QEMU virtio-iommu, no hyp" ;;
  d) echo "no IOMMU, no hyp" ;;
  e) echo "hyp pv-iommu" ;;
  esac
}

# boot CASE LOG SECONDS [QEMU ARGS...]: one boot of the scenario, which
# must pass.
boot() {
  local case=$1 out=$2 args="$kargs seconds=$3"
  shift 3
  case $case in
  a | e)
    local door=virtio
    [ "$case" = e ] && door=pv
    timeout 600 "$QEMU" "${board[@]}" "${disk[@]}" "$@" \
      -kernel "$hyp" -append "$BOARD_BOOTARGS iommu=$door" \
      -device "guest-loader,addr=$EL1_KERNEL_ADDR,kernel=$kernel,bootargs=$args" \
      -device "guest-loader,addr=$EL1_RAMDISK_ADDR,initrd=$initramfs" ;;
  b) timeout 600 qemu-system-aarch64 -M virt,gic-version=3,iommu=smmuv3 "${common[@]}" \
       "${disk[@]}" "$@" -kernel "$kernel" -initrd "$initramfs" -append "$args" ;;
  c) timeout 600 qemu-system-aarch64 -M virt,gic-version=3 -device virtio-iommu-pci \
       "${common[@]}" "${disk[@]}" "$@" -kernel "$kernel" -initrd "$initramfs" -append "$args" ;;
  d) timeout 600 qemu-system-aarch64 -M virt,gic-version=3 "${common[@]}" "${disk[@]}" "$@" \
       -kernel "$kernel" -initrd "$initramfs" -append "$args" ;;
  esac 2>&1 </dev/null | tr -d '\r' >"$out" || true
  if ! grep -q '^linux: [0-9]* passed, 0 failed' "$out"; then
    echo "bench: case $case ($(name "$case")) failed:" >&2
    tail -n 20 "$out" >&2
    exit 1
  fi
}

# field FILE PATTERN N: word N of the first match of PATTERN, to the end
# of its line.
field() {
  { grep -m 1 -o -E -- "$2.*" "$1" || true; } | awk -v n="$3" '{ print $n }'
}

for rep in $(seq "$reps"); do
  for c in "${cases[@]}"; do
    boot "$c" "$log/$c.$rep" "$seconds"
    # "... dio-bench: /dev/nvme0n1 rand4k: N reads in T us: I IOPS, M MB/s"
    echo "$(field "$log/$c.$rep" 'dio-bench: /dev/nvme0n1 seq1m:' 11)" \
      "$(field "$log/$c.$rep" 'dio-bench: /dev/nvme0n1 rand4k:' 9)" \
      "$(field "$log/$c.$rep" 'dio-bench: /dev/ram0 rand4k:' 9)" >>"$log/$c"
    echo "bench: round $rep, ($c) $(name "$c"): $(tail -n 1 "$log/$c" | awk '{ printf "%s MB/s sequential, %s IOPS random, %s IOPS RAM disk", $1, $2, $3 }');" \
      "$(sed -n "s/.*the disk's IOMMU: //p" "$log/$c.$rep")"
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
declare -A seq rand ram
for c in "${cases[@]}"; do
  seq[$c]=$(cut -d ' ' -f 1 "$log/$c" | median)
  rand[$c]=$(cut -d ' ' -f 2 "$log/$c" | median)
  ram[$c]=$(cut -d ' ' -f 3 "$log/$c" | median)
done
echo "bench: O_DIRECT reads of a 64 MiB NVMe disk, one at a time, median of $reps interleaved rounds of ${seconds} s each, -cpu $cpu, ratio to (b):"
printf 'bench: %-30s %17s %17s %17s\n' "" "1 MiB seq MB/s" "4 KiB rand IOPS" "RAM disk IOPS"
for c in "${cases[@]}"; do
  printf 'bench: %-30s %8s (%6s) %8s (%6s) %8s (%6s)\n' "($c) $(name "$c")" \
    "${seq[$c]}" "$(ratio "${seq[$c]}" "${seq[b]:-0}")" \
    "${rand[$c]}" "$(ratio "${rand[$c]}" "${rand[b]:-0}")" \
    "${ram[$c]}" "$(ratio "${ram[$c]}" "${ram[b]:-0}")"
done

# The hyp's side, deterministic: one CPU, one instruction per virtual ns.
for c in "${cases[@]}"; do
  case $c in
  a)
    boot a "$log/a.icount" 1 -icount shift=0,sleep=off -smp 1
    line=$(grep -m 1 'virtio-iommu: [0-9]* kicks' "$log/a.icount")
    map=$(echo "$line" | sed -n 's/.* MAP (\([0-9]*\) ns each in EL2).*/\1/p')
    unmap=$(echo "$line" | sed -n 's/.* UNMAP (\([0-9]*\) ns each).*/\1/p')
    echo "bench: (a) hyp-side instructions per virtio-iommu request, in EL2: MAP $map, UNMAP $unmap" \
      "(requests: $(echo "$line" | sed 's/.*kicks; //'))"
    ;;
  e)
    boot e "$log/e.icount" 1 -icount shift=0,sleep=off -smp 1
    pv() { field "$log/e.icount" "^bench: pv $1 " 4; }
    per_call() { awk -v t="$1" -v n="$2" -v hz="$3" 'BEGIN { if (n > 0 && hz > 0) printf "%d", t * 1e9 / hz / n; else print "-" }'; }
    echo "bench: (e) instructions per pv-iommu hypercall, hvc to return:" \
      "HYP_MAP $(per_call "$(pv map_ticks)" "$(pv maps)" "$(pv counter_hz)")," \
      "HYP_MAP_LIST $(per_call "$(pv map_list_ticks)" "$(pv map_lists)" "$(pv counter_hz)")" \
      "($(per_call "$(pv map_list_ticks)" "$(pv map_list_entries)" "$(pv counter_hz)") per entry)," \
      "HYP_UNMAP $(per_call "$(pv unmap_ticks)" "$(pv unmaps)" "$(pv counter_hz)")" \
      "($(pv maps) maps, $(pv map_lists) lists of $(pv map_list_entries) maps, $(pv unmaps) unmaps)"
    ;;
  esac
done

#!/usr/bin/env bash
# `make bench`, part 3: O_DIRECT reads of an NVMe disk by Debian's Linux
# (the `iobench` scenario, linux/iobench) under four IOMMUs, on the same
# QEMU, kernel, initramfs and disk image:
#
#   a  the hyp's virtio-iommu (Linux at EL1 under the hyp, iommu=virtio)
#   b  Linux's own arm-smmu-v3 driver on QEMU's SMMUv3, no hyp
#   c  QEMU's virtio-iommu-pci, no hyp
#   d  no IOMMU, no hyp
#
# (b)-(d) boot Linux directly at EL1 (virtualization=off). Each boot also
# times 4 KiB reads of /dev/zero: system calls without a device, so (a)'s
# ratio there is what running under the hyp costs on QEMU with no IOMMU
# work at all (the host stage-2 makes every TLB refill of TCG's a two-stage
# walk). Rounds
# alternate a, b, c, d so that a change of the machine's load hits every
# configuration alike; each configuration's figure is the median of its
# rounds, and the ratios are to (b). Then one more run of (a) under
# `-icount shift=0,sleep=off` on one CPU, whose power-off line gives the
# hyp's time per MAP and per UNMAP request in instructions (one virtual
# nanosecond per instruction), with the TLB invalidations and CMD_SYNCs it
# issued.
#
#   ROUNDS=5 SEQ_MIB=64 RAND_READS=4096 tests/linux/iobench.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rounds=${ROUNDS:-3}
seq_mib=${SEQ_MIB:-64}
rand_reads=${RAND_READS:-4096}
kernel=$(ls target/linux/pkg/boot/vmlinuz-*)
initrd=target/linux/initramfs-iobench.cpio.gz
hyp=target/images/qemu-virt/smmu-hyp.bin
bash tests/linux/disk.sh nvme "$seq_mib" >/dev/null
disk="target/linux/disks/nvme-$seq_mib.img"
args="console=ttyAMA0 panic=-1 scenario=iobench seq_mib=$seq_mib rand_reads=$rand_reads"
# The board's QEMU arguments without -icount (Linux never reaches init
# with the board's shift=10).
mapfile -t board < <(grep -v '^#' board/qemu-virt/qemu-args | sed '/^-icount$/,+1d')
common=(-cpu max -m 1G -nographic -nic none -no-reboot
  -device edu,dma_mask=0xffffffffffffffff
  -drive "file=$disk,if=none,id=n0,format=raw,snapshot=on" -device nvme,drive=n0,serial=n0)
log=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$log"' EXIT

# Boots configuration $1 with extra QEMU arguments $2...; the log goes to
# $log/$1.<round>.
boot() {
  local cfg=$1 out=$2
  shift 2
  case $cfg in
  a) qemu-system-aarch64 "${board[@]}" -no-reboot "$@" -kernel "$hyp" -append semihosting \
       -device "guest-loader,addr=0x50000000,kernel=$kernel,bootargs=$args" \
       -device "guest-loader,addr=0x58000000,initrd=$initrd" \
       -drive "file=$disk,if=none,id=n0,format=raw,snapshot=on" -device nvme,drive=n0,serial=n0 ;;
  b) qemu-system-aarch64 -M virt,gic-version=3,iommu=smmuv3 "${common[@]}" "$@" \
       -kernel "$kernel" -initrd "$initrd" -append "$args" ;;
  c) qemu-system-aarch64 -M virt,gic-version=3 -device virtio-iommu-pci "${common[@]}" "$@" \
       -kernel "$kernel" -initrd "$initrd" -append "$args" ;;
  d) qemu-system-aarch64 -M virt,gic-version=3 "${common[@]}" "$@" \
       -kernel "$kernel" -initrd "$initrd" -append "$args" ;;
  esac >"$out" 2>&1 </dev/null
  if ! grep -q 'linux: 5 passed, 0 failed' "$out"; then
    echo "bench: configuration $cfg failed:" >&2
    tail -n 20 "$out" >&2
    exit 1
  fi
}

declare -A names seq_med rand_med sys_med
names=([a]="hyp virtio-iommu" [b]="Linux arm-smmu-v3" [c]="QEMU virtio-iommu-pci" [d]="no IOMMU")
for r in $(seq 1 "$rounds"); do
  for cfg in a b c d; do
    boot $cfg "$log/$cfg.$r"
    seq=$(sed -n 's/.*iobench: seq .* ns: \([0-9]*\) MB\/s/\1/p' "$log/$cfg.$r")
    rand=$(sed -n 's/.*iobench: rand .* ns: \([0-9]*\) IOPS/\1/p' "$log/$cfg.$r")
    sys=$(sed -n 's/.*iobench: sys .* ns: \([0-9]*\) calls\/s/\1/p' "$log/$cfg.$r")
    echo "$seq $rand $sys" >>"$log/$cfg"
    echo "bench: round $r ($cfg, ${names[$cfg]}): $seq MB/s sequential, $rand IOPS random, $sys system calls/s; $(sed -n "s/.*the disk's IOMMU: //p" "$log/$cfg.$r")"
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for cfg in a b c d; do
  seq_med[$cfg]=$(cut -d ' ' -f 1 "$log/$cfg" | median)
  rand_med[$cfg]=$(cut -d ' ' -f 2 "$log/$cfg" | median)
  sys_med[$cfg]=$(cut -d ' ' -f 3 "$log/$cfg" | median)
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "bench: O_DIRECT reads of a $seq_mib MiB NVMe disk, median of $rounds alternating rounds, ratio to (b):"
for cfg in a b c d; do
  printf 'bench: (%s) %-22s 1 MiB sequential %5s MB/s (%sx)   4 KiB random %6s IOPS (%sx)   system calls %7s/s (%sx)\n' \
    $cfg "${names[$cfg]}" "${seq_med[$cfg]}" "$(ratio "${seq_med[$cfg]}" "${seq_med[b]}")" \
    "${rand_med[$cfg]}" "$(ratio "${rand_med[$cfg]}" "${rand_med[b]}")" \
    "${sys_med[$cfg]}" "$(ratio "${sys_med[$cfg]}" "${sys_med[b]}")"
done
goal() { awk -v v="$1" -v g="$2" 'BEGIN { print (v >= g) ? "met" : "MISSED" }'; }
echo "bench: goal (a) >= 0.9x (b) sequential: $(goal "$(ratio "${seq_med[a]}" "${seq_med[b]}")" 0.9)"
echo "bench: goal (a) >= 0.8x (b) random: $(goal "$(ratio "${rand_med[a]}" "${rand_med[b]}")" 0.8)"
echo "bench: goal (a) ahead of (c): sequential $(goal "$(ratio "${seq_med[a]}" "${seq_med[c]}")" 1.0001), random $(goal "$(ratio "${rand_med[a]}" "${rand_med[c]}")" 1.0001)"

# The hyp's side, deterministic: one CPU, one instruction per virtual ns.
boot a "$log/icount" -icount shift=0,sleep=off -smp 1
line=$(grep 'virtio-iommu: [0-9]* kicks' "$log/icount")
map=$(echo "$line" | sed -n 's/.* MAP (\([0-9]*\) ns each in EL2).*/\1/p')
unmap=$(echo "$line" | sed -n 's/.* UNMAP (\([0-9]*\) ns each).*/\1/p')
echo "bench: hyp-side cost under -icount shift=0: MAP $map instructions, UNMAP $unmap instructions (from the hyp's counter; requests $(echo "$line" | sed 's/.*kicks; //'))"
grep -E '^\[INFO \] (iommu|smmu0): [0-9]' "$log/icount" | sed 's/^\[INFO \] /bench: (a) at power-off: /'

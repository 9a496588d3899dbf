# Linux's DMA through the paravirtual front door (the hyp's bootarg
# iommu=pv, docs/pv-iommu.md): the repo's pv_iommu module drives the hyp's
# SMMU with hypercalls for a disk (NVMe or virtio-blk-pci) and QEMU's edu
# device. The harness boots it on 4 CPUs with the disk backed by a 64 MiB
# image (snapshot=on: writes stay in QEMU) and passes disk= (nvme0n1 or vda)
# and disk_md5s=, the md5s of the image's four 16 MiB quarters. The disk
# checks are checks.sh's, shared with the other front doors.
# modules: nvme virtio_blk
# repo modules: pv-iommu edu-dma hyp-probe
# repo programs: simd-check

mib=64
disk=$(arg disk)

compatibles() {
  find /proc/device-tree/ -name compatible | while read -r f; do tr '\0' '\n' <"$f"; done
}

pv_node_and_no_smmu() {
  compatibles | grep -x 'smmu-hyp,pv-iommu' && ! compatibles | grep -qx 'arm,smmu-v3'
}

# The driver found the hyp's ABI and SMMU (its probe makes HYP_ABI_VERSION,
# HYP_FEATURES and HYP_SMMU_INFO) and registered an IOMMU.
driver_probes() {
  repo_module pv_iommu || return 1
  dmesg | grep 'pv-iommu pv-iommu-0: smmu0 through hypercalls' && [ -e /sys/class/iommu/pv-iommu-0 ]
}

# Two tasks load V0-V31, FPCR and FPSR, read the disk with O_DIRECT (an
# IOMMU map and unmap per read, each a hypercall) and check them, while a
# reader keeps the other CPUs' I/O going.
simd_survives_io() {
  local task ok=0
  for task in 1 2; do
    simd-check "/dev/$disk" 1 "$mib" >"/tmp/simd.$task" 2>&1 &
  done
  dd if="/dev/$disk" of=/dev/null bs=64k iflag=direct 2>/dev/null &
  wait
  for task in 1 2; do
    cat "/tmp/simd.$task"
    grep -q 'V0-V31, FPCR and FPSR intact' "/tmp/simd.$task" || ok=1
  done
  return $ok
}

edu_pci() {
  grep -l 0x11e8 /sys/bus/pci/devices/*/device | while read -r f; do
    d=${f%/device}
    [ "$(cat "$d/vendor")" = 0x1234 ] && basename "$d"
  done | head -n 1
}

# The edu device writes to an IOVA nobody mapped (edu_dma: the physical
# address of a page of its own): no byte changes, the hyp's SMMU blocks it
# and the driver reports the fault, naming the device, its StreamID (its
# requester ID, per the board's iommu-map) and the IOVA.
device_fault_reaches_the_log() {
  local pci sid target line waited=0
  pci=$(edu_pci)
  [ -n "$pci" ] || { echo "no edu device"; return 1; }
  # shellcheck disable=SC2046 # domain bus device function
  set -- $(echo "$pci" | tr ':.' '  ')
  sid=$(printf '%#x' $((0x$2 << 8 | 0x$3 << 3 | $4)))
  repo_module edu_dma || return 1
  dmesg | grep -q "edu_dma $pci: a DMA through its mapping at IOVA .* landed" ||
    { echo "the DMA that should land did not"; return 1; }
  target=$(dmesg | sed -n "s/.*edu_dma $pci: a DMA to IOVA \(0x[0-9a-f]*\), never mapped, changed no byte/\1/p")
  [ -n "$target" ] || { echo "the DMA to an unmapped IOVA changed memory"; return 1; }
  # The driver drains the hyp's fault log every 100 ms.
  while :; do
    line=$(dmesg | grep "edu_dma $pci: pv-iommu-0: F_TRANSLATION (0x10) from StreamID $sid: write at IOVA $target" | head -n 1)
    [ -n "$line" ] && break
    [ $waited -ge 30 ] && { echo "no fault reported"; return 1; }
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "${line#*] }"
}

# The IOMMU core never unmaps part of a block: edu_dma asks it to, in a
# domain of its own, and the driver passes the request on as it is (no
# WHOLE_LEAF), which the hyp refuses with PARTIAL_BLOCK (-10).
partial_unmap_refused() {
  dmesg | grep -q 'pv-iommu-0: HYP_UNMAP(0x40001000, 1 x 0x1000): -10 (would split a block)' &&
    dmesg | grep 'edu_dma .*: a 4 KiB unmap inside a 2 MiB block unmapped 0 bytes'
}

# Every call succeeded but the one partial_unmap_refused makes.
no_hypercall_failed() {
  ! dmesg | grep -E 'HYP_[A-Z_]+.*: -[0-9]+' | grep -v 'would split a block'
}

stats_line() {
  echo "$1 domains, $2 streams, $3 bytes mapped, $4 DMA page references"
}

# Unbound from their drivers, the devices (the disk's and edu) stay in their default domains
# with only the ITS doorbell page Linux mapped for MSIs (one 4 KiB MMIO
# page per domain at most): no RAM page stays referenced.
unbound_leave_only_doorbells() {
  local pci
  for pci in $used_pcis $(edu_pci); do
    echo "$pci" >"/sys/bus/pci/devices/$pci/driver/unbind" || return 1
  done
  # shellcheck disable=SC2046 # four numbers
  set -- $(hyp_stats) || return 1
  stats_line "$@"
  [ "$4" -eq 0 ] && [ "$3" -le $(($1 * 4096)) ] && [ "$1" -gt 0 ]
}

# Removed, the devices leave their groups: the driver detached every
# stream and freed every domain.
removed_leave_nothing() {
  local pci
  for pci in $used_pcis $(edu_pci); do
    echo 1 >"/sys/bus/pci/devices/$pci/remove" || return 1
  done
  # shellcheck disable=SC2046 # four numbers
  set -- $(hyp_stats) || return 1
  stats_line "$@"
  [ "$*" = "0 0 0 0" ]
}

check "the hyp describes its SMMU as a pv-iommu node, and no SMMU" pv_node_and_no_smmu
check "pv_iommu discovers the hyp's ABI and SMMU and registers an IOMMU" driver_probes
check "/dev/$disk appears (its probe waited for the IOMMU)" wait_for "/dev/$disk" 10
used_pcis=$(disk_pci "$disk")
check "$disk is in a DMA domain of the pv IOMMU" disk_in_dma_group "$disk" pv-iommu
check "$disk: $mib MiB read by DMA match the image" disk_reads_md5s "$disk" "$mib" "$(arg disk_md5s)"
check "$disk: its MSI-X interrupts arrive" disk_msix_rises "$disk"
check "$disk read by 4 tasks at once on $(grep -c '^processor' /proc/cpuinfo) CPUs" \
  concurrent_quarter_reads "$mib" "$(arg disk_md5s)" "$disk"
check "FP/SIMD: V0-V31, FPCR and FPSR of tasks doing I/O survive the hypercalls" simd_survives_io
check "$disk: $mib MiB written by DMA read back" \
  disk_rotate_write_read_back "$disk" "$mib" "$(arg disk_md5s)"
check "a device's DMA to an unmapped IOVA is blocked and reported in Linux's log" \
  device_fault_reaches_the_log
check "an unmap of part of a 2 MiB block is refused, never split" partial_unmap_refused
check "every other hypercall of the driver succeeded" no_hypercall_failed
check "unbound, the devices leave no page referenced, only MSI doorbells mapped" \
  unbound_leave_only_doorbells
check "removed, they leave no domain, stream or mapping in the hyp" removed_leave_nothing

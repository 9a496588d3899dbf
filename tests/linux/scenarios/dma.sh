# Debian's Linux DMAs through the hyp's stage-2 tables, through either IOMMU
# front door (door=virtio: the hyp's virtio-iommu device, driven by Linux's
# own virtio_iommu, docs/virtio-iommu.md; door=pv: the repo's pv_iommu
# driver over the hypercalls, docs/pv-iommu.md). An NVMe disk (nvme0n1)
# and a virtio-blk disk (vda, iommu_platform=on) behind the SMMU, each a
# 64 MiB image of known content (tests/linux/disk.sh; the md5s of its
# quarters are nvme_md5s= and vblk_md5s=), sit in DMA domains of that
# IOMMU. Their content is read with O_DIRECT (with concurrent=1, both disks'
# quarters at once), a task keeps V0-V31, FPCR and FPSR live across I/O,
# each disk's quarters are rotated by O_DIRECT writes and read back, MSI-X
# interrupts are counted. At the end the devices are unbound (only the MSI
# doorbells stay mapped) and removed (nothing stays in the hyp); the
# harness also reads the hyp's counters at power-off.
# modules: virtio_mmio virtio_iommu nvme virtio_blk
# repo modules: pv-iommu hyp-probe
# repo programs: simd-check

mib=64
door=$(arg door)
driver=$(iommu_driver "$door")
nvme_md5s=$(arg nvme_md5s)
vblk_md5s=$(arg vblk_md5s)

# A task loads V0-V31, FPCR and FPSR, reads the disk with O_DIRECT (an
# IOMMU map and unmap per read: hypercalls, or requests the hyp serves in
# a trapped MMIO store) and checks them, while a reader keeps the other
# CPUs' I/O going.
simd_survives_io() {
  simd-check /dev/nvme0n1 1 "$mib" >/tmp/simd 2>&1 &
  dd if=/dev/vda of=/dev/null bs=64k iflag=direct 2>/dev/null &
  wait
  cat /tmp/simd
  grep -q 'V0-V31, FPCR and FPSR intact' /tmp/simd
}

# pv_iommu's counters (debugfs): the disks' scatter-gather maps went to
# the hyp as HYP_MAP_LIST batches, none refused. The O_DIRECT reads of
# scattered user pages make lists of ~27 maps on average; 8 would already
# be batching, not one list per map or two.
pv_maps_batched() {
  local lists entries errors
  lists=$(pv_stat map_lists)
  entries=$(pv_stat map_list_entries)
  errors=$(pv_stat map_list_errors)
  echo "$lists HYP_MAP_LIST calls for $entries maps, $errors refused; $(pv_stat maps) single HYP_MAPs"
  [ "$lists" -gt 0 ] && [ "$entries" -ge $((8 * lists)) ] && [ "$errors" -eq 0 ]
}

no_iommu_error() {
  ! dmesg | grep -iE 'fault from EP|virtio_iommu.*(error|fail|could not)|HYP_[A-Z_]+.*: -[0-9]+|F_[A-Z_]+ \(0x|(nvme|blk).*(timeout|error)'
}

check "the hyp gives Linux its $door IOMMU and no SMMU" front_door "$door"
check "/dev/nvme0n1 appears (its probe waited for the IOMMU)" wait_for /dev/nvme0n1 10
check "/dev/vda appears" wait_for /dev/vda 10
pcis="$(disk_pci nvme0n1) $(disk_pci vda)"
check "nvme0n1 is in a DMA domain of the $door IOMMU" disk_in_dma_group nvme0n1 "$driver"
check "vda is in a DMA domain of the $door IOMMU" disk_in_dma_group vda "$driver"
start=$(cut -d ' ' -f 1 /proc/uptime)
if [ "$(arg concurrent)" = 1 ]; then
  check "both disks' $mib MiB read by DMA at once match their images" \
    disks_read_at_once "$mib" nvme0n1 "$nvme_md5s" vda "$vblk_md5s"
else
  check "nvme0n1: $mib MiB read by DMA match the image" disk_reads_md5s nvme0n1 "$mib" "$nvme_md5s"
  check "vda: $mib MiB read by DMA match the image" disk_reads_md5s vda "$mib" "$vblk_md5s"
fi
check "nvme0n1: its MSI-X interrupts arrive" disk_msix_rises nvme0n1
check "vda: its MSI-X interrupts arrive" disk_msix_rises vda
check "FP/SIMD: V0-V31, FPCR and FPSR of a task doing I/O survive the hyp's traps" simd_survives_io
if [ "$(arg concurrent)" = 1 ]; then
  check "both disks: $mib MiB written by DMA at once read back" \
    disks_rotate_write_read_back "$mib" nvme0n1 "$nvme_md5s" vda "$vblk_md5s"
else
  check "nvme0n1: $mib MiB written by DMA read back" \
    disks_rotate_write_read_back "$mib" nvme0n1 "$nvme_md5s"
  check "vda: $mib MiB written by DMA read back" disks_rotate_write_read_back "$mib" vda "$vblk_md5s"
fi
echo "linux: disk I/O from uptime $start s to $(cut -d ' ' -f 1 /proc/uptime) s"
if [ "$door" = pv ]; then
  check "pv_iommu batched the disks' maps" pv_maps_batched
fi
check "no IOMMU fault, error or timeout in Linux's log" no_iommu_error
# shellcheck disable=SC2086 # two PCI functions
check "unbound, the disks leave no page referenced, only MSI doorbells mapped" \
  unbound_leave_only_doorbells $pcis
# shellcheck disable=SC2086
check "removed, they leave no domain, stream or mapping in the hyp" removed_leave_nothing $pcis

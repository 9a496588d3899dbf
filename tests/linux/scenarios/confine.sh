# A device's DMA cannot leave the pages Linux mapped for it, through either
# IOMMU front door (door=virtio or door=pv, as in dma.sh): QEMU's edu
# device, bound by the edu_dma module (linux/edu-dma/), DMAs through its
# mapping, then writes to the physical address of a page Linux never mapped
# for it (used as an IOVA). The SMMU blocks the write and logs the fault,
# which reaches Linux's log: with virtio, the SMMU raises its event-queue
# interrupt, which EL1's device tree gives the hyp's virtio-iommu device,
# Linux's handler reads the device's InterruptStatus and the hyp turns the
# SMMU's records into virtio fault records on the event queue; with pv,
# pv_iommu drains them with HYP_FAULT_POP. edu_dma also asks the IOMMU core
# to unmap 4 KiB inside a 2 MiB block, which must unmap nothing, and maps
# scatter-gather lists (sg_maps below).
# modules: virtio_mmio virtio_iommu
# repo modules: pv-iommu edu-dma hyp-probe

door=$(arg door)

edu_pci() {
  grep -l 0x11e8 /sys/bus/pci/devices/*/device | while read -r f; do
    d=${f%/device}
    [ "$(cat "$d/vendor")" = 0x1234 ] && basename "$d"
  done | head -n 1
}
edu=$(edu_pci)
# Its StreamID: its requester ID, per the board's iommu-map.
# shellcheck disable=SC2046 # domain bus device function
set -- $(echo "$edu" | tr ':.' '  ')
sid=$((0x$2 << 8 | 0x$3 << 3 | $4))

bind_edu() {
  repo_module edu_dma || return 1
  [ -e "/sys/bus/pci/drivers/edu_dma/$edu" ]
}

mapped_dma_landed() {
  dmesg | grep -o 'a DMA through its mapping at IOVA .* landed: .*'
}

# The IOMMU core never unmaps part of a block; with pv the driver passes
# the request on as it is (no WHOLE_LEAF) and the hyp refuses it with
# PARTIAL_BLOCK (-10); Linux's virtio-iommu driver refuses it itself, as
# the virtio spec has the device do.
partial_unmap_refused() {
  if [ "$door" = pv ]; then
    dmesg | grep -q 'pv-iommu-0: HYP_UNMAP(0x40001000, 1 x 0x1000): -10 (would split a block)' ||
      { echo "the hyp did not refuse it"; return 1; }
  fi
  dmesg | grep -o 'a 4 KiB unmap inside a 2 MiB block unmapped 0 bytes.*'
}

# One iommu_map_sg of 200 discontiguous pages maps each (with pv: more than
# the 128 maps one HYP_MAP_LIST carries, so pv_iommu sends the list in two).
# A list mapped over a live page: pv_iommu's HYP_MAP_LIST is refused
# (EXISTS) and the driver leaves nothing of the range mapped, the live page
# included (arm-smmu-v3 would keep it: the core undoes only what it mapped
# before the failing page; docs/pv-iommu.md, Batched maps); Linux's
# virtio-iommu driver does not report the failed MAP request of its batch
# (only logged here).
sg_maps() {
  dmesg | grep -o 'a scatter-gather map of 200 discontiguous pages translates each' || return 1
  line=$(dmesg | grep -o 'a scatter-gather map over a live mapping returned .*') || return 1
  echo "$line"
  [ "$door" = pv ] || return 0
  [ "$line" = "a scatter-gather map over a live mapping returned -17; 0 of its 100 pages translate" ] ||
    return 1
  # The core's own rollback of the emptied range is not an error.
  ! dmesg | grep 'HYP_UNMAP(.*): -7' || return 1
  # The only lists of the run: 128 maps sent when the queue filled, the
  # other 72 at iotlb_sync_map, and the refused one of 100.
  lists="$(pv_stat map_lists) lists of $(pv_stat map_list_entries) maps, $(pv_stat map_list_errors) refused"
  echo "$lists"
  [ "$lists" = "3 lists of 300 maps, 1 refused" ]
}

# The IOVA the module aimed at, from its log line.
target=""
unmapped_dma_changed_nothing() {
  line=$(dmesg | grep -o 'a DMA to IOVA 0x[0-9a-f]*, never mapped, changed no byte') || return 1
  echo "$line"
  target=$(echo "$line" | sed 's/a DMA to IOVA \(0x[0-9a-f]*\),.*/\1/')
}

# What the front door's driver logs for the blocked write: virtio_iommu
# each fault record it reads from the event queue, pv_iommu each record it
# pops (every 100 ms). Both are asynchronous: wait (at most 5 s).
fault_reached_linux() {
  local pattern i=0
  case $door in
  virtio) pattern="page fault from EP $sid at $target \[W\]" ;;
  pv) pattern="pv-iommu-0: F_TRANSLATION (0x10) from StreamID $(printf '%#x' $sid): write at IOVA $target" ;;
  esac
  while [ $i -lt 50 ]; do
    line=$(dmesg | grep -o "$pattern" | head -n 1)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

check "the hyp gives Linux its $door IOMMU and no SMMU" front_door "$door"
check "the edu device binds to the edu_dma module" bind_edu
check "it is in a DMA domain of the $door IOMMU" pci_iommu_in_dma_group "$edu" "$(iommu_driver "$door")"
check "a DMA through its mapping lands" mapped_dma_landed
check "an unmap of part of a 2 MiB block is refused, never split" partial_unmap_refused
check "scatter-gather maps: each page where it belongs; one over a live page refused, none of its range left (the live page neither)" sg_maps
check "a DMA to an IOVA Linux never mapped changes no byte of memory" unmapped_dma_changed_nothing
check "the SMMU's fault reaches Linux's log through the $door IOMMU" fault_reached_linux
check "unbound, the device leaves no page referenced, only an MSI doorbell mapped" \
  unbound_leave_only_doorbells "$edu"
check "removed, it leaves no domain, stream or mapping in the hyp" removed_leave_nothing "$edu"

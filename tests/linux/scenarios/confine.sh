# A device's DMA cannot leave the pages Linux mapped for it: QEMU's edu
# device, bound by the edu_dma module (linux/edu-dma/), DMAs through its
# mapping, then to the physical address of a page Linux never mapped for it
# (used as an IOVA). The SMMU blocks the write and logs the fault; it
# raises its event-queue interrupt, which EL1's device tree gives the
# hyp's virtio-iommu device; Linux's handler reads the device's
# InterruptStatus, the hyp turns the SMMU's records into virtio fault
# records on the event queue, and Linux's virtio-iommu driver logs them.
# modules: virtio_mmio virtio_iommu
# repo modules: edu-dma

edu=/sys/bus/pci/devices/0000:00:01.0

bind_edu() {
  insmod "/lib/modules/$(uname -r)/extra/edu_dma.ko.xz" || return 1
  [ -e /sys/bus/pci/drivers/edu_dma/0000:00:01.0 ]
}

in_a_dma_domain() {
  type=$(cat "$edu/iommu_group/type")
  echo "group type $type, IOMMU $(basename "$(readlink "$edu/iommu")")"
  [ "$type" = DMA ]
}

mapped_dma_landed() {
  dmesg | grep -o 'a DMA through its mapping at IOVA .* landed: .*'
}

# The IOVA the module aimed at, from its log line.
target=""
unmapped_dma_changed_nothing() {
  line=$(dmesg | grep -o 'a DMA to IOVA 0x[0-9a-f]*, never mapped, changed no byte') || return 1
  echo "$line"
  target=$(echo "$line" | sed 's/a DMA to IOVA \(0x[0-9a-f]*\),.*/\1/')
}

# Linux's virtio-iommu driver logs each fault record it reads from the
# event queue ("page fault from EP <endpoint> at <address> [W]"); the
# interrupt path is asynchronous, so wait for it (at most 5 s).
fault_reached_linux() {
  i=0
  while [ $i -lt 50 ]; do
    line=$(dmesg | grep -o "page fault from EP [0-9]* at $target \[W\]" | head -n 1)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

check "the edu device binds to the edu_dma module" bind_edu
check "it is in a DMA domain of the hyp's virtio-iommu" in_a_dma_domain
check "a DMA through its mapping lands" mapped_dma_landed
check "a DMA to an IOVA Linux never mapped changes no byte of memory" unmapped_dma_changed_nothing
check "the SMMU's fault reaches Linux's log through the virtio-iommu event queue" fault_reached_linux
check "an unmap of part of a 2 MiB block is refused, never split" \
  sh -c "dmesg | grep -o 'a 4 KiB unmap inside a 2 MiB block unmapped 0 bytes.*'"

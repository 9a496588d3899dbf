# The guest side of `make bench` (tests/linux/bench.sh): O_DIRECT reads of
# the NVMe disk with dio-bench, one request at a time, 4 KiB random and
# 1 MiB sequential, through whatever IOMMU the machine gives Linux (the
# hyp's virtio-iommu or paravirtual IOMMU, QEMU's SMMUv3 driven by Linux's
# arm-smmu-v3, QEMU's virtio-iommu-pci, or none), for seconds= each. A RAM
# disk (brd) read the same way is the reference without DMA: what the rest
# of the machine (the hyp's traps and stage 2, QEMU) costs the same system
# calls. The results are in the check lines; with the paravirtual IOMMU the
# driver's own counters follow as "bench: pv ..." lines.
# modules: virtio_mmio virtio_iommu nvme brd
# repo modules: pv-iommu
# repo programs: dio-bench

seconds=$(arg seconds)

if compatibles | grep -qx 'smmu-hyp,pv-iommu'; then
  check "the paravirtual IOMMU driver probes" repo_module pv_iommu
fi

the_disks_iommu() {
  local pci
  pci=$(disk_pci nvme0n1) || return 1
  if [ -e "/sys/bus/pci/devices/$pci/iommu_group/type" ]; then
    pci_iommu_in_dma_group "$pci" \
      "$(basename "$(readlink -f "/sys/bus/pci/devices/$pci/iommu/device/driver")")"
  else
    echo "$pci: no IOMMU"
  fi
}

check "the NVMe disk appears" wait_for /dev/nvme0n1 10
check "the disk's IOMMU" the_disks_iommu
check "4 KiB random reads" dio-bench /dev/nvme0n1 rand4k "$seconds" 64
check "1 MiB sequential reads" dio-bench /dev/nvme0n1 seq1m "$seconds" 64
check "4 KiB random reads of a RAM disk" dio-bench /dev/ram0 rand4k "$seconds" 16
mount -t debugfs none /sys/kernel/debug
for stats in /sys/kernel/debug/pv_iommu/*/stats; do
  [ -e "$stats" ] && sed 's/^/bench: pv /' "$stats"
done

# The guest side of `make bench` (tests/linux/iobench.sh): O_DIRECT reads of
# the NVMe disk with linux/iobench, 1 MiB sequential and 4 KiB random, under
# whatever IOMMU the machine gives Linux (the hyp's virtio-iommu, QEMU's
# SMMUv3 or virtio-iommu-pci driven by Linux, or none), and 4 KiB reads of
# /dev/zero (system calls only: what running under the hyp costs without
# any device). The results are in the check lines.
# modules: virtio_mmio virtio_iommu nvme
# repo tools: iobench

disk_appears() {
  i=0
  while [ ! -b /dev/nvme0n1 ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && return 1
    sleep 0.1
  done
}

iommu() {
  f=$(readlink -f /sys/class/nvme/nvme0/device)
  if [ -e "$f/iommu_group/type" ]; then
    echo "group type $(cat "$f/iommu_group/type"), IOMMU $(basename "$(readlink "$f/iommu")")"
  else
    echo "no IOMMU"
  fi
}

check "the NVMe disk appears" disk_appears
check "the disk's IOMMU" iommu
check "sequential" iobench seq /dev/nvme0n1 "$(arg seq_mib)"
check "random" iobench rand /dev/nvme0n1 "$(arg seq_mib)" "$(arg rand_reads)"
check "system calls" iobench sys /dev/zero 100000

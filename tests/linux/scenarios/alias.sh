# PCI DMA aliases through the paravirtual IOMMU (door=pv, docs/pv-iommu.md,
# "Shared StreamIDs"): behind a PCIe-to-PCI bridge (QEMU's pcie-pci-bridge),
# a virtio-blk disk (vda, iommu_platform=on; vblk_md5s= as in dma.sh) and an
# e1000 NIC both carry the bridge's alias (secondary bus << 8 | 0) besides
# their own requester IDs. The disk, whose probe waited for the IOMMU first
# (virtio-pci is built in), must attach and DMA; the NIC, bound later (its
# module loads at boot, before the IOMMU), shares the alias and must be
# refused with -ENODEV, logged, and Linux must not warn or oops. (QEMU
# allows no device at devfn 0 behind the bridge, where the alias would also
# be the device's own ID twice.)
# modules: virtio_blk e1000
# repo modules: pv-iommu

mib=64
vblk_md5s=$(arg vblk_md5s)

nic_pci() {
  grep -l 0x100e /sys/bus/pci/devices/*/device | head -n 1 | xargs dirname | xargs basename
}

nic_refused() {
  local nic disk
  nic=$(nic_pci) || return 1
  disk=$(disk_pci vda) || return 1
  dmesg | grep -o "$nic: shares a StreamID with $disk (a PCI DMA alias): no IOMMU for it" ||
    { echo "no refusal logged for $nic"; return 1; }
  [ ! -e "/sys/bus/pci/devices/$nic/iommu_group" ] || { echo "$nic has an IOMMU group"; return 1; }
}

no_warning_or_oops() {
  ! dmesg | grep -E 'WARNING:|Oops|BUG:|Call trace:|HYP_[A-Z_]+\(.*: -[0-9]+'
}

check "the hyp gives Linux its pv IOMMU and no SMMU" front_door pv
check "/dev/vda appears (its probe waited for the IOMMU)" wait_for /dev/vda 10
check "vda, with the bridge alias among its StreamIDs, is in a DMA domain" disk_in_dma_group vda pv-iommu
check "vda: $mib MiB read by DMA match the image" disk_reads_md5s vda "$mib" "$vblk_md5s"
check "the NIC sharing vda's alias is refused an IOMMU, logged" nic_refused
check "no warning, oops or failed hypercall in Linux's log" no_warning_or_oops

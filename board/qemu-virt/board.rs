// QEMU virt: board facts the hyp needs before it can read the device tree.

/// PL011 that QEMU wires to -serial/-nographic, used until the device tree
/// names the console (and for failures before the tree can be read).
pub const EARLY_UART: Option<u64> = Some(0x0900_0000);

/// Bus masters that no SMMU sits in front of, by `compatible`: the hyp
/// removes their nodes from EL1's device tree and the host stage-2 hides
/// their registers (they could write any physical address). fw_cfg's DMA
/// interface writes wherever its DMA address register points; virtio-mmio
/// transports DMA straight to physical memory.
pub const HIDDEN_BUS_MASTERS: &[&str] = &["qemu,fw-cfg-mmio", "virtio,mmio"];

/// Where the hyp's virtio-iommu device appears to EL1 (`iommu=virtio`,
/// `docs/virtio-iommu.md`): a page nothing on QEMU `virt` decodes, between
/// the last virtio-mmio transport (0x0a00_3e00) and the platform bus
/// (0x0c00_0000) in `hw/arm/virt.c`'s memory map. Not one of the
/// transports themselves: those are QEMU's bus masters, hidden from EL1,
/// and a device of the hyp's must not share a trapped page with them.
pub const VIRTIO_IOMMU_WINDOW: Option<u64> = Some(0x0b00_0000);

// Arm FVP Base RevC (never booted; its device tree is checked by host
// tests, see README.md): board facts needed before the device tree.

/// UART0 of the FVP Base platform (PL011).
pub const EARLY_UART: Option<u64> = Some(0x1c09_0000);

/// Bus masters that no SMMU sits in front of, by `compatible`: the hyp
/// removes their nodes from EL1's device tree and the host stage-2 hides
/// their registers. The FVP's SMMU fronts PCIe only; on the motherboard
/// bus its virtio devices and the PL111 CLCD (whose frame buffer base
/// register names any physical address it then reads) master directly.
pub const HIDDEN_BUS_MASTERS: &[&str] = &["virtio,mmio", "arm,pl111"];

/// Where the hyp's virtio-iommu device would appear to EL1: none chosen,
/// since no FVP model runs here to check that a range is free
/// (`iommu=virtio` then leaves EL1 without an IOMMU).
pub const VIRTIO_IOMMU_WINDOW: Option<u64> = None;

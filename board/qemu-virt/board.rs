// QEMU virt: board facts the hyp needs before it can read the device tree.

/// PL011 that QEMU wires to -serial/-nographic, used until the device tree
/// names the console (and for failures before the tree can be read).
pub const EARLY_UART: Option<u64> = Some(0x0900_0000);

/// Bus masters that no SMMU sits in front of, by `compatible`: the hyp
/// removes their nodes from EL1's device tree. fw_cfg's DMA interface and
/// the virtio-mmio transports write physical memory directly.
pub const HIDDEN_BUS_MASTERS: &[&str] = &["qemu,fw-cfg-mmio", "virtio,mmio"];

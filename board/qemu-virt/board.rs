// QEMU virt: board facts the hyp needs before it can read the device tree.

/// PL011 that QEMU wires to -serial/-nographic, used until the device tree
/// names the console (and for failures before the tree can be read).
pub const EARLY_UART: Option<u64> = Some(0x0900_0000);

/// Device-tree `compatible`s of bus masters that no SMMU sits in front of:
/// EL1 must not reach them (they could write any physical address), so
/// the host stage-2 hides their registers. fw_cfg's DMA interface writes
/// wherever its DMA address register points; virtio-mmio transports DMA
/// straight to physical memory.
pub const HIDDEN_BUS_MASTERS: &[&str] = &["qemu,fw-cfg-mmio", "virtio,mmio"];

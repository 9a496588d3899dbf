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

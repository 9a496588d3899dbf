// QEMU virt: board facts the hyp needs before it can read the device tree.

/// PL011 that QEMU wires to -serial/-nographic, used until the device tree
/// names the console (and for failures before the tree can be read).
pub const EARLY_UART: Option<u64> = Some(0x0900_0000);

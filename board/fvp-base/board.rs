// Arm FVP Base RevC (UNTESTED): board facts needed before the device tree.

/// UART0 of the FVP Base platform (PL011).
pub const EARLY_UART: Option<u64> = Some(0x1c09_0000);

/// Device-tree `compatible`s of bus masters that no SMMU sits in front of
/// (hidden from EL1 by the host stage-2). None is known on the FVP Base
/// RevC device tree; its PCIe sits behind the SMMU.
pub const HIDDEN_BUS_MASTERS: &[&str] = &[];

// Arm FVP Base RevC (never booted; its device tree is checked by host
// tests, see README.md): board facts needed before the device tree.

/// UART0 of the FVP Base platform (PL011).
pub const EARLY_UART: Option<u64> = Some(0x1c09_0000);

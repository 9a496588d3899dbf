//! Turning the host stage-2 on for this CPU.

use core::arch::asm;

/// Installs the host stage-2 (`VTCR_EL2`, `VTTBR_EL2` with VMID 0) and
/// discards any stage-1+2 translation this CPU may hold for VMID 0. Takes
/// effect for EL1 once `HCR_EL2.VM` is set (on entry to EL1).
///
/// # Safety
/// `vttbr` must point at a complete host stage-2 whose descriptors are
/// visible to this CPU's walker (written before a `DSB` on this or another
/// CPU that the caller has synchronised with), and no EL1 code may be
/// running on this CPU.
pub unsafe fn install_host(vtcr: u64, vttbr: u64) {
    // SAFETY: the caller's contract; these registers only affect EL1&0
    // translation, and EL1 is not running.
    unsafe {
        asm!(
            "dsb ishst",
            "msr vtcr_el2, {vtcr}",
            "msr vttbr_el2, {vttbr}",
            "isb",
            "tlbi vmalls12e1",
            "dsb nsh",
            "isb",
            vtcr = in(reg) vtcr,
            vttbr = in(reg) vttbr,
            options(nostack),
        )
    }
}

//! This CPU's GICv3 interface, set up to take group-1 interrupts at any
//! priority (the suites that wait for one keep IRQs masked in PSTATE, so
//! nothing is taken: an interrupt is only acknowledged, or ends a WFI).

use crate::probe;

// Register offsets (IHI 0069).
const GICD_CTLR: u64 = 0x0;
const GICR_WAKER: u64 = 0x14;

/// The distributor's groups on, the redistributor at `redistributor`
/// (RD_base, this CPU's) awake, EL1's CPU interface taking group 1.
pub fn interface_on(distributor: u64, redistributor: u64) {
    // GICD_CTLR: ARE, EnableGrp1, EnableGrp0 (single security state).
    let _ = probe::write32(distributor + GICD_CTLR, (1 << 4) | 0b11);
    let waker = redistributor + GICR_WAKER;
    let _ = probe::write32(waker, probe::read32(waker).unwrap_or(0) & !(1 << 1));
    // SAFETY: GICv3 CPU interface registers of this CPU (ICC_SRE_EL2
    // lets EL1 use them); IRQs stay masked in PSTATE.
    unsafe {
        core::arch::asm!(
            "mov {t}, #1",
            "msr S3_0_C12_C12_5, {t}", // ICC_SRE_EL1.SRE
            "isb",
            "mov {t}, #0xff",
            "msr S3_0_C4_C6_0, {t}", // ICC_PMR_EL1
            "mov {t}, #1",
            "msr S3_0_C12_C12_7, {t}", // ICC_IGRPEN1_EL1
            "isb",
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// EL1's CPU interface no longer takes group 1.
pub fn interface_off() {
    // SAFETY: as in `interface_on`.
    unsafe { core::arch::asm!("msr S3_0_C12_C12_7, xzr", "isb", options(nostack)) };
}

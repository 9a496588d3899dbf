//! Entering an EL1 kernel.

use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTVOFF_EL2, HCR_EL2, ID_AA64PFR0_EL1, MIDR_EL1, MPIDR_EL1, Readable, SCTLR_EL1,
    VMPIDR_EL2, Writeable,
};
use core::arch::asm;

/// HCR_EL2 for the EL1 kernel: AArch64 EL1 (RW), EL1 `smc` trapped to EL2
/// (TSC) so PSCI goes through the hyp, pointer-authentication instructions
/// not trapped (API, APK), and accesses to IMPLEMENTATION DEFINED system
/// registers trapped (TIDCP): the hyp cannot know what they control, so
/// EL1 gets an undefined instruction for them.
pub const HCR_EL2_VALUE: u64 = (1 << 31) | (1 << 19) | (1 << 41) | (1 << 40) | (1 << 20);
/// HCR_EL2.VM: EL1&0 accesses go through the stage-2 in VTTBR_EL2.
pub const HCR_EL2_VM: u64 = 1 << 0;
/// SCTLR_EL1 RES1 bits; MMU and caches off, as the arm64 boot protocol asks.
const SCTLR_EL1_RESET: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);
/// SPSR_EL2 for the entry: EL1h with D, A, I and F masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// ICC_SRE_EL2: system-register GIC interface for EL2 (SRE) and for EL1
/// (Enable).
const ICC_SRE_EL2_VALUE: u64 = (1 << 0) | (1 << 3);

/// Sets up EL2's controls for an EL1 kernel and enters it at `entry` with
/// x0 = `dtb` (arm64 boot protocol: x1..x3 zero). EL2's stack restarts at
/// `el2_stack_top` for the traps that follow. With `stage2`, EL1 runs behind
/// the stage-2 this CPU installed (`stage2::install_host`).
///
/// # Safety
/// `entry` must hold an EL1 kernel whose image is cleaned to the point of
/// coherency (it starts with its MMU off), and `el2_stack_top` must be this
/// CPU's EL2 stack, with nothing on it still in use. With `stage2`, a
/// complete stage-2 must be installed on this CPU.
pub unsafe fn enter(entry: u64, dtb: u64, el2_stack_top: u64, stage2: bool) -> ! {
    HCR_EL2.set(HCR_EL2_VALUE | if stage2 { HCR_EL2_VM } else { 0 });
    SCTLR_EL1.set(SCTLR_EL1_RESET);
    // EL1 may read the physical counter and use the physical timer.
    CNTHCTL_EL2.set(0b11);
    CNTVOFF_EL2.set(0);
    // The IDs EL1 reads are the real ones.
    // SAFETY: VPIDR_EL2 only changes what EL1 reads as MIDR_EL1.
    unsafe { asm!("msr vpidr_el2, {}", in(reg) MIDR_EL1.get(), options(nostack)) };
    VMPIDR_EL2.set(MPIDR_EL1.get());
    // ID_AA64PFR0_EL1.GIC, bits 27:24: GICv3 system registers implemented.
    if (ID_AA64PFR0_EL1.get() >> 24) & 0xf != 0 {
        // SAFETY: GICv3 system registers are implemented (checked above).
        unsafe { asm!("msr icc_sre_el2, {}", "isb", in(reg) ICC_SRE_EL2_VALUE, options(nostack)) };
    }
    // SAFETY: the caller guarantees `entry` and the stack; nothing after the
    // `eret` returns here.
    unsafe {
        asm!(
            "msr elr_el2, {entry}",
            "msr spsr_el2, {spsr}",
            "mov sp, {stack}",
            "mov x1, xzr",
            "mov x2, xzr",
            "mov x3, xzr",
            "eret",
            entry = in(reg) entry,
            spsr = in(reg) SPSR_EL1H_MASKED,
            stack = in(reg) el2_stack_top,
            in("x0") dtb,
            options(noreturn),
        )
    }
}

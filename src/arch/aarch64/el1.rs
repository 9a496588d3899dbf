//! Entering an EL1 kernel.

use crate::el2_controls::{El2Controls, HSTR_EL2_VALUE, IdRegs};
use crate::platform::GicVersion;
use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTVOFF_EL2, HCR_EL2, MIDR_EL1, MPIDR_EL1, Readable, SCTLR_EL1, VMPIDR_EL2,
    Writeable,
};
use core::arch::asm;

/// Reads a system register by name or `S<op0>_<op1>_C<n>_C<m>_<op2>`
/// encoding (the assembler knows no SVE/SME/FGT names without the target
/// features).
macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an ID or control register has no side effect; the
        // callers read only registers that exist on this CPU.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// Writes a system register (see [`read_sysreg!`]).
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let v: u64 = $value;
        // SAFETY: EL2 trap and control registers only change what EL1 may
        // do; the callers write only registers that exist on this CPU,
        // before EL1 runs.
        unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack)) };
    }};
}

/// The ID registers `El2Controls` depends on. Reserved ID encodings read as
/// zero, so the newer ones are safe to read on every CPU.
fn id_regs() -> IdRegs {
    let mut id = IdRegs {
        pfr0: read_sysreg!("id_aa64pfr0_el1"),
        pfr1: read_sysreg!("id_aa64pfr1_el1"),
        pfr2: read_sysreg!("S3_0_C0_C4_2"),
        dfr0: read_sysreg!("id_aa64dfr0_el1"),
        isar1: read_sysreg!("id_aa64isar1_el1"),
        isar2: read_sysreg!("S3_0_C0_C6_2"),
        mmfr0: read_sysreg!("id_aa64mmfr0_el1"),
        mmfr1: read_sysreg!("id_aa64mmfr1_el1"),
        mmfr3: read_sysreg!("S3_0_C0_C7_3"),
        smfr0: read_sysreg!("S3_0_C0_C4_5"),
        ..IdRegs::default()
    };
    if id.pmuv3() {
        id.pmcr = read_sysreg!("pmcr_el0");
    }
    if id.spe_version() != 0 {
        // PMBIDR_EL1.P, bit 4.
        id.spe_buffer_prohibited = read_sysreg!("S3_0_C9_C10_7") & (1 << 4) != 0;
    }
    if id.trbe() {
        // TRBIDR_EL1.P, bit 4.
        id.trbe_prohibited = read_sysreg!("S3_0_C9_C11_7") & (1 << 4) != 0;
    }
    if id.sme() {
        // SMIDR_EL1.SMPS, bit 15.
        id.sme_priority_mapping = read_sysreg!("S3_1_C0_C0_6") & (1 << 15) != 0;
    }
    if id.mpam() {
        // MPAMIDR_EL1.HAS_HCR, bit 17.
        id.mpam_has_hcr = read_sysreg!("S3_0_C10_C4_4") & (1 << 17) != 0;
    }
    if id.amu() {
        // AMCGCR_EL0.CG1NC, bits 15:8.
        id.amu_aux_counters = (read_sysreg!("S3_3_C13_C2_2") >> 8) as u8;
    }
    id
}

/// Writes the EL2 controls (and the few EL1 ones) an EL1 kernel expects
/// (booting.rst), for a machine whose device tree describes a `gic`: see
/// `crate::el2_controls`. Returns the HCR_EL2 bits that depend on the
/// CPU's features.
fn write_el2_controls(gic: GicVersion) -> u64 {
    let c = El2Controls::for_el1(&id_regs(), gic);
    write_sysreg!("hstr_el2", HSTR_EL2_VALUE);
    write_sysreg!("cptr_el2", c.cptr);
    // SAFETY: a barrier only; ZCR_EL2/SMCR_EL2 are accessible once the
    // CPTR_EL2 write above has taken effect.
    unsafe { asm!("isb", options(nomem, nostack)) };
    if let Some(zcr) = c.zcr {
        write_sysreg!("S3_4_C1_C2_0", zcr); // ZCR_EL2
    }
    if let Some(smcr) = c.smcr {
        write_sysreg!("S3_4_C1_C2_6", smcr); // SMCR_EL2
    }
    if c.smprimap {
        write_sysreg!("S3_4_C1_C2_5", 0); // SMPRIMAP_EL2
    }
    if let Some(hcrx) = c.hcrx {
        write_sysreg!("S3_4_C1_C2_2", hcrx); // HCRX_EL2
    }
    write_sysreg!("mdcr_el2", c.mdcr);
    if let Some(pmscr) = c.pmscr {
        write_sysreg!("S3_4_C9_C9_0", pmscr); // PMSCR_EL2
    }
    if let Some(fgt) = c.fgt {
        write_sysreg!("S3_4_C1_C1_4", fgt.hfgrtr); // HFGRTR_EL2
        write_sysreg!("S3_4_C1_C1_5", fgt.hfgwtr); // HFGWTR_EL2
        write_sysreg!("S3_4_C1_C1_6", fgt.hfgitr); // HFGITR_EL2
        write_sysreg!("S3_4_C3_C1_4", fgt.hdfgrtr); // HDFGRTR_EL2
        write_sysreg!("S3_4_C3_C1_5", fgt.hdfgwtr); // HDFGWTR_EL2
        if let Some(hafgrtr) = fgt.hafgrtr {
            write_sysreg!("S3_4_C3_C1_6", hafgrtr); // HAFGRTR_EL2
        }
        if let Some(hdfgxtr2) = fgt.hdfgxtr2 {
            write_sysreg!("S3_4_C3_C1_0", hdfgxtr2); // HDFGRTR2_EL2
            write_sysreg!("S3_4_C3_C1_1", hdfgxtr2); // HDFGWTR2_EL2
            write_sysreg!("S3_4_C3_C1_2", 0); // HFGRTR2_EL2
            write_sysreg!("S3_4_C3_C1_3", 0); // HFGWTR2_EL2
            write_sysreg!("S3_4_C3_C1_7", 0); // HFGITR2_EL2
        }
    }
    if let Some(sre) = c.icc_sre {
        write_sysreg!("S3_4_C12_C9_5", sre); // ICC_SRE_EL2
        // SAFETY: a barrier only, so the read below sees the write.
        unsafe { asm!("isb", options(nomem, nostack)) };
        // SRE may be RAZ/WI (EL3 keeps the memory-mapped interface): the
        // ICH registers exist for EL2 only when it reads back as 1.
        let sre_set = read_sysreg!("S3_4_C12_C9_5") & 1 != 0;
        if let (Some(ich_hcr), true) = (c.ich_hcr, sre_set) {
            write_sysreg!("S3_4_C12_C11_0", ich_hcr); // ICH_HCR_EL2
        }
    }
    if let Some(mpam) = c.mpam {
        write_sysreg!("S3_4_C10_C5_0", mpam.mpam2); // MPAM2_EL2
        if let Some(mpamhcr) = mpam.mpamhcr {
            write_sysreg!("S3_4_C10_C4_0", mpamhcr); // MPAMHCR_EL2
        }
    }
    if let Some(brbcr) = c.brbcr {
        write_sysreg!("S2_4_C9_C0_0", brbcr); // BRBCR_EL2
    }
    if let Some(amu) = c.amu {
        write_sysreg!("S3_3_C13_C2_5", amu.set0); // AMCNTENSET0_EL0
        write_sysreg!("S3_3_C13_C3_1", amu.set1); // AMCNTENSET1_EL0
    }
    if c.gcs {
        write_sysreg!("S3_0_C2_C5_0", 0); // GCSCR_EL1
        write_sysreg!("S3_0_C2_C5_2", 0); // GCSCRE0_EL1
        write_sysreg!("S3_4_C2_C5_0", 0); // GCSCR_EL2
    }
    if let Some(trfcr) = c.trfcr {
        write_sysreg!("S3_4_C1_C2_1", trfcr); // TRFCR_EL2
    }
    c.hcr
}

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

/// Sets up EL2's controls for an EL1 kernel and enters it at `entry` with
/// x0 = `dtb` (arm64 boot protocol: x1..x3 zero). EL2's stack restarts at
/// `el2_stack_top` for the traps that follow. With `stage2`, EL1 runs behind
/// the stage-2 this CPU installed (`stage2::install_host`). `gic` is the
/// interrupt controller the device tree EL1 gets describes.
///
/// # Safety
/// `entry` must hold an EL1 kernel whose image is cleaned to the point of
/// coherency (it starts with its MMU off), and `el2_stack_top` must be this
/// CPU's EL2 stack, with nothing on it still in use. With `stage2`, a
/// complete stage-2 must be installed on this CPU.
pub unsafe fn enter(entry: u64, dtb: u64, el2_stack_top: u64, stage2: bool, gic: GicVersion) -> ! {
    let features = write_el2_controls(gic);
    HCR_EL2.set(HCR_EL2_VALUE | features | if stage2 { HCR_EL2_VM } else { 0 });
    SCTLR_EL1.set(SCTLR_EL1_RESET);
    // EL1 may read the physical counter and use the physical timer.
    CNTHCTL_EL2.set(0b11);
    CNTVOFF_EL2.set(0);
    // The IDs EL1 reads are the real ones.
    // SAFETY: VPIDR_EL2 only changes what EL1 reads as MIDR_EL1.
    unsafe { asm!("msr vpidr_el2, {}", in(reg) MIDR_EL1.get(), options(nostack)) };
    VMPIDR_EL2.set(MPIDR_EL1.get());
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

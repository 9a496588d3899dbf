//! Exceptions the hyp makes EL1 take: an external abort for an access the
//! host stage-2 refuses, an undefined instruction for a trap the hyp does
//! not handle.
//!
//! The hyp does what the CPU would have done had the exception been routed
//! to EL1 (Arm ARM, `AArch64.TakeException`): it writes the EL1 syndrome
//! registers (`ESR_EL1`, `FAR_EL1`), saves the interrupted context in
//! `ELR_EL1`/`SPSR_EL1`, and returns from EL2 to EL1's vector with the
//! PSTATE an exception entry produces. This module computes those values;
//! the arch code writes them.

use crate::pstate::{at_el1, sctlr, spsr};

/// What EL1 is made to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// A synchronous external abort on a data access to `far` (a virtual
    /// address; `far` is `None` when the faulting address is not known).
    DataAbort { far: Option<u64>, write: bool },
    /// A synchronous external abort on an instruction fetch from `far`.
    InstructionAbort { far: Option<u64> },
    /// An undefined instruction (`EC = 0`, "unknown reason").
    Undefined,
}

/// EL1's state at the moment of the trap, as EL2 sees it.
#[derive(Clone, Copy, Debug)]
pub struct Interrupted {
    /// `ELR_EL2`: the instruction that trapped.
    pub pc: u64,
    /// `SPSR_EL2`: EL1's (or EL0's) PSTATE.
    pub pstate: u64,
    /// `VBAR_EL1`.
    pub vbar_el1: u64,
    /// `SCTLR_EL1` (SPAN, DSSBS, SPINTMASK decide bits of the new PSTATE).
    pub sctlr_el1: u64,
    /// What the CPU implements of what decides the new PSTATE.
    pub features: EntryFeatures,
}

/// The CPU features that decide bits of the PSTATE an exception entry
/// produces (Arm ARM, `AArch64.TakeException`): without one, its PSTATE
/// bit does not exist and stays 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryFeatures {
    /// FEAT_PAN: PSTATE.PAN.
    pub pan: bool,
    /// FEAT_SSBS: PSTATE.SSBS.
    pub ssbs: bool,
    /// FEAT_MTE (instructions only, `ID_AA64PFR1_EL1.MTE` >= 1, not only
    /// FEAT_MTE2): PSTATE.TCO, set on every exception entry.
    pub mte: bool,
    /// FEAT_NMI: PSTATE.ALLINT.
    pub nmi: bool,
}

impl EntryFeatures {
    /// From `ID_AA64PFR1_EL1` (SSBS [7:4], MTE [11:8], NMI [39:36]) and
    /// `ID_AA64MMFR1_EL1` (PAN [23:20]).
    pub fn from_id_registers(pfr1: u64, mmfr1: u64) -> Self {
        let field = |reg: u64, shift: u32| (reg >> shift) & 0xf;
        Self {
            pan: field(mmfr1, 20) != 0,
            ssbs: field(pfr1, 4) != 0,
            mte: field(pfr1, 8) != 0,
            nmi: field(pfr1, 36) != 0,
        }
    }
}

/// The register values that deliver an [`Injected`] exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub esr_el1: u64,
    /// `FAR_EL1`, or `None` to leave it as it is (UNKNOWN for this class).
    pub far_el1: Option<u64>,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    /// Where EL2 returns to: the vector entry in EL1.
    pub elr_el2: u64,
    /// The PSTATE EL2 returns with.
    pub spsr_el2: u64,
}

mod esr {
    pub const IL: u64 = 1 << 25;
    pub const EC_SHIFT: u32 = 26;
    pub const EC_UNKNOWN: u64 = 0x00;
    pub const EC_IABT_LOWER: u64 = 0x20;
    pub const EC_IABT_CURRENT: u64 = 0x21;
    pub const EC_DABT_LOWER: u64 = 0x24;
    pub const EC_DABT_CURRENT: u64 = 0x25;
    /// Write not Read (data aborts).
    pub const WNR: u64 = 1 << 6;
    /// FAR not Valid.
    pub const FNV: u64 = 1 << 10;
    /// Fault status: synchronous external abort, not on a table walk.
    pub const FSC_EXTERNAL: u64 = 0b01_0000;
}

/// Offset of the synchronous vector EL1 takes an exception from `pstate`
/// to: current EL with SP_EL0, current EL with SP_EL1, lower EL AArch64,
/// lower EL AArch32.
fn vector_offset(pstate: u64) -> u64 {
    let m = pstate & spsr::M_MASK;
    if m & spsr::M_AARCH32 != 0 {
        0x600
    } else if m == spsr::M_EL1T {
        0x000
    } else if m == spsr::M_EL1H {
        0x200
    } else {
        0x400
    }
}

/// PSTATE on entry to an EL1 exception handler (Arm ARM,
/// `AArch64.TakeException`): EL1h with D, A, I, F masked; DIT kept; with
/// FEAT_PAN, PAN set when `SCTLR_EL1.SPAN` is 0, else kept; with
/// FEAT_SSBS, SSBS from `SCTLR_EL1.DSSBS`; with FEAT_MTE, TCO set; with
/// FEAT_NMI, ALLINT the inverse of `SCTLR_EL1.SPINTMASK` (whatever
/// `SCTLR_EL1.NMI` says: it decides what ALLINT masks, not its value);
/// UAO, BTYPE, SS, IL and the rest clear.
fn entry_pstate(old: u64, sctlr_el1: u64, features: EntryFeatures) -> u64 {
    let mut new = spsr::M_EL1H | spsr::DAIF | (old & spsr::DIT);
    if features.pan {
        if sctlr_el1 & sctlr::SPAN == 0 {
            new |= spsr::PAN;
        } else {
            new |= old & spsr::PAN;
        }
    }
    if features.ssbs && sctlr_el1 & sctlr::DSSBS != 0 {
        new |= spsr::SSBS;
    }
    if features.mte {
        new |= spsr::TCO;
    }
    if features.nmi && sctlr_el1 & sctlr::SPINTMASK == 0 {
        new |= spsr::ALLINT;
    }
    new
}

/// The register values that make EL1 take `what` where it was interrupted.
pub fn deliver(what: Injected, at: &Interrupted) -> Delivery {
    let same_el = at_el1(at.pstate);
    let (ec, iss, far) = match what {
        Injected::DataAbort { far, write } => (
            if same_el {
                esr::EC_DABT_CURRENT
            } else {
                esr::EC_DABT_LOWER
            },
            esr::FSC_EXTERNAL
                | if write { esr::WNR } else { 0 }
                | if far.is_none() { esr::FNV } else { 0 },
            far,
        ),
        Injected::InstructionAbort { far } => (
            if same_el {
                esr::EC_IABT_CURRENT
            } else {
                esr::EC_IABT_LOWER
            },
            esr::FSC_EXTERNAL | if far.is_none() { esr::FNV } else { 0 },
            far,
        ),
        Injected::Undefined => (esr::EC_UNKNOWN, 0, None),
    };
    Delivery {
        esr_el1: (ec << esr::EC_SHIFT) | esr::IL | iss,
        far_el1: far,
        elr_el1: at.pc,
        spsr_el1: at.pstate,
        elr_el2: at.vbar_el1 + vector_offset(at.pstate),
        spsr_el2: entry_pstate(at.pstate, at.sctlr_el1, at.features),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esr::{Esr, ec};

    const VBAR: u64 = 0xffff_8000_1001_0800;

    /// A CPU with every feature that decides a PSTATE bit.
    fn at(pstate: u64, sctlr_el1: u64) -> Interrupted {
        Interrupted {
            pc: 0xffff_8000_1234_5678,
            pstate,
            vbar_el1: VBAR,
            sctlr_el1,
            features: EntryFeatures {
                pan: true,
                ssbs: true,
                mte: true,
                nmi: true,
            },
        }
    }

    /// EL1h with interrupts unmasked and the N flag set.
    const EL1H: u64 = 0x8000_0005;
    /// EL0 (AArch64).
    const EL0: u64 = 0x2000_0000;

    #[test]
    fn a_data_abort_from_el1_goes_to_the_current_el_vector_with_the_same_el_class() {
        let d = deliver(
            Injected::DataAbort {
                far: Some(0xdead_b000),
                write: true,
            },
            &at(EL1H, 0),
        );
        let esr = Esr(d.esr_el1);
        assert_eq!(esr.class(), ec::DABT_CURRENT);
        assert!(esr.il());
        assert_eq!(esr.iss() & 0x3f, 0x10, "synchronous external abort");
        assert_ne!(esr.iss() & (1 << 6), 0, "WnR");
        assert_eq!(esr.iss() & (1 << 10), 0, "FAR valid");
        assert_eq!(d.far_el1, Some(0xdead_b000));
        assert_eq!(d.elr_el2, VBAR + 0x200);
        assert_eq!(d.elr_el1, 0xffff_8000_1234_5678);
        assert_eq!(d.spsr_el1, EL1H);
    }

    #[test]
    fn an_abort_from_el0_goes_to_the_lower_el_vector_with_the_lower_el_class() {
        let d = deliver(
            Injected::DataAbort {
                far: Some(0x1000),
                write: false,
            },
            &at(EL0, 0),
        );
        assert_eq!(Esr(d.esr_el1).class(), ec::DABT_LOWER);
        assert_eq!(Esr(d.esr_el1).iss() & (1 << 6), 0, "a read");
        assert_eq!(d.elr_el2, VBAR + 0x400);
        let i = deliver(
            Injected::InstructionAbort { far: Some(0x1000) },
            &at(EL0, 0),
        );
        assert_eq!(Esr(i.esr_el1).class(), ec::IABT_LOWER);
        let i = deliver(
            Injected::InstructionAbort { far: Some(0x1000) },
            &at(EL1H, 0),
        );
        assert_eq!(Esr(i.esr_el1).class(), ec::IABT_CURRENT);
    }

    #[test]
    fn the_vector_depends_on_the_stack_pointer_and_the_execution_state() {
        assert_eq!(vector_offset(0b0100), 0x000);
        assert_eq!(vector_offset(0b0101), 0x200);
        assert_eq!(vector_offset(0b0000), 0x400);
        assert_eq!(vector_offset(0b1_0000), 0x600);
    }

    #[test]
    fn an_unknown_address_is_reported_as_far_not_valid() {
        let d = deliver(
            Injected::DataAbort {
                far: None,
                write: false,
            },
            &at(EL1H, 0),
        );
        assert_ne!(Esr(d.esr_el1).iss() & (1 << 10), 0);
        assert_eq!(d.far_el1, None);
    }

    #[test]
    fn an_undefined_instruction_has_the_unknown_class_and_keeps_far() {
        let d = deliver(Injected::Undefined, &at(EL1H, 0));
        assert_eq!(Esr(d.esr_el1).class(), ec::UNKNOWN);
        assert_eq!(Esr(d.esr_el1).iss(), 0);
        assert!(Esr(d.esr_el1).il());
        assert_eq!(d.far_el1, None);
    }

    #[test]
    fn the_handler_runs_in_el1h_with_interrupts_masked_and_pan_per_span() {
        let d = deliver(Injected::Undefined, &at(EL0, 0));
        assert_eq!(d.spsr_el2 & 0x1f, 0b0101, "EL1h");
        assert_eq!(d.spsr_el2 & (0b1111 << 6), 0b1111 << 6, "DAIF");
        assert_ne!(d.spsr_el2 & spsr::PAN, 0, "SPAN = 0 sets PAN");
        assert_eq!(d.spsr_el2 >> 28, 0, "flags not carried over");
        let d = deliver(Injected::Undefined, &at(EL0, sctlr::SPAN));
        assert_eq!(d.spsr_el2 & spsr::PAN, 0, "SPAN = 1 keeps PAN (clear)");
        let d = deliver(Injected::Undefined, &at(EL0 | spsr::PAN, sctlr::SPAN));
        assert_ne!(d.spsr_el2 & spsr::PAN, 0, "SPAN = 1 keeps PAN (set)");
    }

    #[test]
    fn without_feat_pan_no_pan_bit_is_set() {
        let mut a = at(EL0, 0);
        a.features.pan = false;
        assert_eq!(deliver(Injected::Undefined, &a).spsr_el2 & spsr::PAN, 0);
    }

    #[test]
    fn ssbs_tco_dit_and_allint_follow_the_architecture() {
        let mut a = at(EL1H | spsr::DIT | spsr::SSBS, sctlr::SPINTMASK);
        let d = deliver(Injected::Undefined, &a);
        assert_ne!(d.spsr_el2 & spsr::DIT, 0, "DIT kept");
        assert_eq!(d.spsr_el2 & spsr::SSBS, 0, "SSBS from DSSBS = 0");
        assert_ne!(d.spsr_el2 & spsr::TCO, 0, "TCO set with FEAT_MTE");
        assert_eq!(d.spsr_el2 & spsr::ALLINT, 0, "SPINTMASK = 1");
        a.sctlr_el1 = sctlr::DSSBS;
        let d = deliver(Injected::Undefined, &a);
        assert_ne!(d.spsr_el2 & spsr::SSBS, 0);
        assert_ne!(
            d.spsr_el2 & spsr::ALLINT,
            0,
            "SPINTMASK = 0 sets ALLINT, SCTLR_EL1.NMI or not"
        );
        // Without the features the bits do not exist.
        a.features = EntryFeatures {
            pan: true,
            ..EntryFeatures::default()
        };
        let d = deliver(Injected::Undefined, &a);
        assert_eq!(d.spsr_el2 & (spsr::SSBS | spsr::TCO | spsr::ALLINT), 0);
    }

    #[test]
    fn features_come_from_the_id_registers_and_mte_without_mte2_counts() {
        assert_eq!(
            EntryFeatures::from_id_registers(0, 0),
            EntryFeatures::default()
        );
        // ID_AA64PFR1_EL1.MTE = 1: FEAT_MTE, instructions only.
        let mte = EntryFeatures::from_id_registers(1 << 8, 0);
        assert!(mte.mte && !mte.pan && !mte.ssbs && !mte.nmi);
        let all = EntryFeatures::from_id_registers((1 << 36) | (2 << 8) | (1 << 4), 3 << 20);
        assert_eq!(
            all,
            EntryFeatures {
                pan: true,
                ssbs: true,
                mte: true,
                nmi: true
            }
        );
    }
}

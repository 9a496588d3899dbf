//! EL1's (or EL0's) PSTATE as EL2 holds it in `SPSR_EL2` at a trap, the
//! `SCTLR_EL1` bits that decide how EL1 sees data and exceptions, and what
//! EL2 does to that PSTATE when it steps EL1 past an instruction.
//!
//! Bit positions are the Arm ARM's (`SPSR_EL2` for an exception taken from
//! AArch64, `SCTLR_EL1`).

/// `SPSR_EL2` fields.
pub mod spsr {
    /// M[4:0]: the mode the exception came from.
    pub const M_MASK: u64 = 0b1_1111;
    /// M[4]: AArch32.
    pub const M_AARCH32: u64 = 1 << 4;
    pub const M_EL1T: u64 = 0b0100;
    pub const M_EL1H: u64 = 0b0101;
    /// D, A, I, F.
    pub const DAIF: u64 = 0b1111 << 6;
    /// BTYPE[11:10]: the branch type of the instruction (FEAT_BTI).
    pub const BTYPE: u64 = 0b11 << 10;
    pub const SSBS: u64 = 1 << 12;
    pub const ALLINT: u64 = 1 << 13;
    /// Software step: the state machine of an EL1 debugger stepping.
    pub const SS: u64 = 1 << 21;
    pub const PAN: u64 = 1 << 22;
    pub const DIT: u64 = 1 << 24;
    pub const TCO: u64 = 1 << 25;
}

/// `SCTLR_EL1` fields.
pub mod sctlr {
    pub const SPAN: u64 = 1 << 23;
    /// E0E: EL0's data accesses are big-endian.
    pub const E0E: u64 = 1 << 24;
    /// EE: EL1's data accesses (and stage-1 table walks) are big-endian.
    pub const EE: u64 = 1 << 25;
    pub const DSSBS: u64 = 1 << 44;
    pub const SPINTMASK: u64 = 1 << 62;
}

/// Whether the trapped code ran in AArch32.
pub fn aarch32(pstate: u64) -> bool {
    pstate & spsr::M_AARCH32 != 0
}

/// Whether the trapped code ran at EL1 (rather than EL0).
pub fn at_el1(pstate: u64) -> bool {
    let m = pstate & spsr::M_MASK;
    m == spsr::M_EL1T || m == spsr::M_EL1H
}

/// The PSTATE after EL2 steps EL1 over the instruction that trapped (a
/// trapped `smc`, an emulated load or store), as if it had completed:
/// BTYPE is 0 after any instruction that is not a branch, and a completed
/// instruction advances the software-step state machine (SS = 0, so an
/// EL1 debugger stepping it takes its step exception on return). KVM's
/// `kvm_skip_instr` does the same. An `hvc` is not stepped: ELR already
/// points past it, the CPU having taken the exception as for an executed
/// instruction, and its SPSR stays as it is (as in KVM).
pub fn skipped(pstate: u64) -> u64 {
    pstate & !(spsr::SS | spsr::BTYPE)
}

/// Whether the trapped code's data accesses are big-endian: `SCTLR_EL1.EE`
/// at EL1, `SCTLR_EL1.E0E` at EL0 (KVM's `kvm_vcpu_is_be`). AArch32 code
/// (which says it in PSTATE.E) is never emulated.
pub fn data_big_endian(pstate: u64, sctlr_el1: u64) -> bool {
    let bit = if at_el1(pstate) {
        sctlr::EE
    } else {
        sctlr::E0E
    };
    sctlr_el1 & bit != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EL1h with the N flag, DAIF clear.
    const EL1H: u64 = 0x8000_0005;
    /// EL0 (AArch64).
    const EL0: u64 = 0x2000_0000;

    #[test]
    fn a_skipped_instruction_clears_btype_and_advances_software_step_only() {
        let stepping = EL1H | spsr::SS | spsr::BTYPE | spsr::PAN | spsr::DAIF;
        assert_eq!(skipped(stepping), EL1H | spsr::PAN | spsr::DAIF);
        assert_eq!(skipped(EL0 | spsr::TCO), EL0 | spsr::TCO);
    }

    #[test]
    fn ee_decides_for_el1_and_e0e_for_el0() {
        assert!(data_big_endian(EL1H, sctlr::EE));
        assert!(!data_big_endian(EL1H, sctlr::E0E));
        assert!(data_big_endian(spsr::M_EL1T, sctlr::EE));
        assert!(data_big_endian(EL0, sctlr::E0E));
        assert!(!data_big_endian(EL0, sctlr::EE));
        assert!(!data_big_endian(EL1H, 0));
    }

    #[test]
    fn the_mode_says_el1_el0_or_aarch32() {
        assert!(at_el1(EL1H) && at_el1(spsr::M_EL1T));
        assert!(!at_el1(EL0) && !aarch32(EL0));
        assert!(aarch32(0b1_0000) && !at_el1(0b1_0011));
    }
}

//! Decoding of ESR_ELx, the exception syndrome, for crash reports and traps.

use core::fmt;

/// Exception classes the hyp handles or reports by name.
pub mod ec {
    pub const UNKNOWN: u8 = 0x00;
    pub const WFX: u8 = 0x01;
    pub const FP_ACCESS: u8 = 0x07;
    pub const ILLEGAL_STATE: u8 = 0x0e;
    pub const SVC64: u8 = 0x15;
    pub const HVC64: u8 = 0x16;
    pub const SMC64: u8 = 0x17;
    pub const SYSREG: u8 = 0x18;
    pub const SVE: u8 = 0x19;
    pub const PAC: u8 = 0x1c;
    pub const IABT_LOWER: u8 = 0x20;
    pub const IABT_CURRENT: u8 = 0x21;
    pub const PC_ALIGN: u8 = 0x22;
    pub const DABT_LOWER: u8 = 0x24;
    pub const DABT_CURRENT: u8 = 0x25;
    pub const SP_ALIGN: u8 = 0x26;
    pub const SERROR: u8 = 0x2f;
    pub const BREAKPOINT_LOWER: u8 = 0x30;
    pub const BREAKPOINT_CURRENT: u8 = 0x31;
    pub const SOFTSTEP_LOWER: u8 = 0x32;
    pub const SOFTSTEP_CURRENT: u8 = 0x33;
    pub const WATCHPOINT_LOWER: u8 = 0x34;
    pub const WATCHPOINT_CURRENT: u8 = 0x35;
    pub const BRK64: u8 = 0x3c;
}

/// A decoded exception syndrome.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Esr(pub u64);

impl Esr {
    pub fn class(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// Instruction length: true for a 32-bit instruction.
    pub fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }

    pub fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    /// The 16-bit immediate of HVC/SMC/BRK.
    pub fn imm16(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    pub fn class_name(self) -> &'static str {
        match self.class() {
            ec::UNKNOWN => "Unknown reason",
            ec::WFX => "WFI/WFE",
            ec::FP_ACCESS => "FP/SIMD access trapped",
            ec::ILLEGAL_STATE => "Illegal execution state",
            ec::SVC64 => "SVC (AArch64)",
            ec::HVC64 => "HVC (AArch64)",
            ec::SMC64 => "SMC (AArch64)",
            ec::SYSREG => "MSR/MRS/system instruction trapped",
            ec::SVE => "SVE access trapped",
            ec::PAC => "Pointer authentication failure",
            ec::IABT_LOWER => "Instruction abort from a lower EL",
            ec::IABT_CURRENT => "Instruction abort from the same EL",
            ec::PC_ALIGN => "PC alignment fault",
            ec::DABT_LOWER => "Data abort from a lower EL",
            ec::DABT_CURRENT => "Data abort from the same EL",
            ec::SP_ALIGN => "SP alignment fault",
            ec::SERROR => "SError interrupt",
            ec::BREAKPOINT_LOWER | ec::BREAKPOINT_CURRENT => "Breakpoint",
            ec::SOFTSTEP_LOWER | ec::SOFTSTEP_CURRENT => "Software step",
            ec::WATCHPOINT_LOWER | ec::WATCHPOINT_CURRENT => "Watchpoint",
            ec::BRK64 => "BRK instruction",
            _ => "Unrecognised exception class",
        }
    }

    fn is_abort(self) -> bool {
        matches!(
            self.class(),
            ec::IABT_LOWER | ec::IABT_CURRENT | ec::DABT_LOWER | ec::DABT_CURRENT
        )
    }

    fn is_data_abort(self) -> bool {
        matches!(self.class(), ec::DABT_LOWER | ec::DABT_CURRENT)
    }

    /// For aborts: ISS.FnV clear, i.e. FAR holds the faulting address
    /// (bit 10 of a data or an instruction abort's ISS).
    pub fn abort_far_valid(self) -> bool {
        self.is_abort() && self.iss() & (1 << 10) == 0
    }

    /// For aborts: the fault status (DFSC/IFSC, ISS bits 5:0).
    pub fn fault_status(self) -> Option<FaultStatus> {
        self.is_abort()
            .then(|| FaultStatus::decode((self.iss() & 0x3f) as u8))
    }

    /// For data aborts: the ISS.
    pub fn data_abort(self) -> Option<DataAbortIss> {
        self.is_data_abort().then(|| DataAbortIss::new(self.iss()))
    }
}

/// A data or instruction fault status code (DFSC/IFSC), Arm ARM D24.2
/// (ISS encoding for an exception from a Data Abort). Levels are -1..=3
/// (-1 only with FEAT_LPA2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    AddressSize {
        level: i8,
    },
    Translation {
        level: i8,
    },
    AccessFlag {
        level: i8,
    },
    Permission {
        level: i8,
    },
    /// Synchronous external abort, not on a table walk.
    SyncExternal,
    /// Synchronous external abort on a table walk.
    SyncExternalOnWalk {
        level: i8,
    },
    Alignment,
    TlbConflict,
    /// Any other code (tag check, parity, GPC, implementation defined).
    Other(u8),
}

impl FaultStatus {
    /// Decodes the 6-bit code.
    pub const fn decode(code: u8) -> Self {
        let level = (code & 3) as i8;
        match code & 0x3f {
            0x00..=0x03 => Self::AddressSize { level },
            0x04..=0x07 => Self::Translation { level },
            0x08..=0x0b => Self::AccessFlag { level },
            0x0c..=0x0f => Self::Permission { level },
            0x10 => Self::SyncExternal,
            0x13 => Self::SyncExternalOnWalk { level: -1 },
            0x14..=0x17 => Self::SyncExternalOnWalk { level },
            0x21 => Self::Alignment,
            0x29 => Self::AddressSize { level: -1 },
            0x2b => Self::Translation { level: -1 },
            0x30 => Self::TlbConflict,
            other => Self::Other(other),
        }
    }

    /// The kind of fault, by name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::SyncExternal => "synchronous external abort",
            Self::SyncExternalOnWalk { .. } => "synchronous external abort on a table walk",
            Self::Alignment => "alignment fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::Other(_) => "other fault",
        }
    }

    /// The translation level of the fault, when it has one.
    pub const fn level(self) -> Option<i8> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::SyncExternalOnWalk { level } => Some(level),
            _ => None,
        }
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Some(level) = self.level() {
            write!(f, " at level {level}")?;
        }
        Ok(())
    }
}

/// Width of a data access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    Byte,
    Halfword,
    Word,
    Doubleword,
}

impl AccessSize {
    /// Bytes accessed.
    pub const fn bytes(self) -> u8 {
        match self {
            Self::Byte => 1,
            Self::Halfword => 2,
            Self::Word => 4,
            Self::Doubleword => 8,
        }
    }

    /// The bits an access of this width carries.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Doubleword => u64::MAX,
            _ => (1 << (8 * self.bytes() as u32)) - 1,
        }
    }
}

/// What the instruction syndrome says about the access (ISS.ISV = 1):
/// enough to emulate a single load or store to MMIO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// ISS.SAS.
    pub size: AccessSize,
    /// ISS.SSE: a load sign-extends the value.
    pub sign_extend: bool,
    /// ISS.SRT: the register transferred (31 is XZR/WZR).
    pub register: u8,
    /// ISS.SF: the register is 64 bits wide (else 32).
    pub sixty_four: bool,
    /// ISS.AR: the instruction has acquire/release semantics.
    pub acquire_release: bool,
}

/// The ISS of a data abort (EC 0x24/0x25), Arm ARM D24.2, decoded field
/// by field as it is read (so carrying one costs no more than the raw ISS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbortIss(u32);

impl DataAbortIss {
    /// A data abort's 25-bit ISS.
    pub const fn new(iss: u32) -> Self {
        Self(iss & 0x1ff_ffff)
    }

    const fn bit(self, n: u32) -> bool {
        self.0 & (1 << n) != 0
    }

    /// The instruction syndrome, when valid (ISS.ISV). Without it an
    /// access cannot be emulated from the syndrome alone.
    pub const fn access(self) -> Option<Access> {
        if !self.bit(24) {
            return None;
        }
        let size = match (self.0 >> 22) & 3 {
            0 => AccessSize::Byte,
            1 => AccessSize::Halfword,
            2 => AccessSize::Word,
            _ => AccessSize::Doubleword,
        };
        Some(Access {
            size,
            sign_extend: self.bit(21),
            register: ((self.0 >> 16) & 0x1f) as u8,
            sixty_four: self.bit(15),
            acquire_release: self.bit(14),
        })
    }

    /// ISS.WnR: a write (else a read).
    pub const fn write(self) -> bool {
        self.bit(6)
    }

    /// ISS.FnV clear: FAR holds the faulting address.
    pub const fn far_valid(self) -> bool {
        !self.bit(10)
    }

    /// ISS.S1PTW: a stage-2 fault on the stage-1 table walk.
    pub const fn s1ptw(self) -> bool {
        self.bit(7)
    }

    /// ISS.CM: a cache maintenance or address translation instruction.
    pub const fn cache_maintenance(self) -> bool {
        self.bit(8)
    }

    /// ISS.EA: external abort type (implementation defined).
    pub const fn external(self) -> bool {
        self.bit(9)
    }

    /// ISS.DFSC.
    pub const fn status(self) -> FaultStatus {
        FaultStatus::decode((self.0 & 0x3f) as u8)
    }
}

impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ESR {:#010x}: EC {:#04x} ({}), IL {}, ISS {:#09x}",
            self.0,
            self.class(),
            self.class_name(),
            u8::from(self.il()),
            self.iss()
        )?;
        if let Some(status) = self.fault_status() {
            write!(f, ", {status}")?;
            if let Some(abort) = self.data_abort() {
                write!(f, " on {}", if abort.write() { "write" } else { "read" })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_size_masks_exactly_its_bytes() {
        assert_eq!(AccessSize::Byte.mask(), 0xff);
        assert_eq!(AccessSize::Halfword.mask(), 0xffff);
        assert_eq!(AccessSize::Word.mask(), 0xffff_ffff);
        assert_eq!(AccessSize::Doubleword.mask(), u64::MAX);
    }

    #[test]
    fn decodes_a_level_3_translation_fault_on_write() {
        // EC 0x25, IL, WnR, DFSC 0x07.
        let esr = Esr(0x9600_0047);
        assert_eq!(esr.class(), ec::DABT_CURRENT);
        assert_eq!(
            esr.fault_status(),
            Some(FaultStatus::Translation { level: 3 })
        );
        assert!(esr.data_abort().unwrap().write());
        let text = std::format!("{esr}");
        assert!(text.contains("Data abort from the same EL"), "{text}");
        assert!(
            text.contains("translation fault at level 3 on write"),
            "{text}"
        );
    }

    #[test]
    fn decodes_hvc_and_smc_immediates() {
        let hvc = Esr((u64::from(ec::HVC64) << 26) | (1 << 25) | 0x1234);
        assert_eq!((hvc.class(), hvc.imm16()), (ec::HVC64, 0x1234));
        assert_eq!(hvc.fault_status(), None);
        assert_eq!(hvc.data_abort(), None);
        assert_eq!(
            Esr(u64::from(ec::SMC64) << 26).class_name(),
            "SMC (AArch64)"
        );
        assert_eq!(Esr(0x3f << 26).class_name(), "Unrecognised exception class");
    }

    #[test]
    fn a_data_abort_with_a_valid_syndrome_names_the_access_for_mmio_emulation() {
        // `strh w3, [x1]` to a stage-2 translation fault at level 2, from
        // EL1: EC 0x24, IL, ISV, SAS = halfword, SRT = 3, WnR, DFSC 0x06.
        let iss = (1 << 24) | (1 << 22) | (3 << 16) | (1 << 6) | 0x06;
        let esr = Esr((u64::from(ec::DABT_LOWER) << 26) | (1 << 25) | iss);
        let abort = esr.data_abort().unwrap();
        assert_eq!(
            abort.access(),
            Some(Access {
                size: AccessSize::Halfword,
                sign_extend: false,
                register: 3,
                sixty_four: false,
                acquire_release: false,
            })
        );
        assert!(abort.write() && abort.far_valid() && !abort.s1ptw());
        assert_eq!(abort.status(), FaultStatus::Translation { level: 2 });
        // Every syndrome field at its largest.
        let all = DataAbortIss::new(
            (1 << 24) | (3 << 22) | (1 << 21) | (31 << 16) | (1 << 15) | (1 << 14) | 0x0d,
        );
        let access = all.access().unwrap();
        assert_eq!(access.size.bytes(), 8);
        assert!(access.sign_extend && access.sixty_four && access.acquire_release);
        assert_eq!(access.register, 31);
        assert!(!all.write());
        assert_eq!(all.status(), FaultStatus::Permission { level: 1 });
    }

    #[test]
    fn without_isv_the_access_is_unknown_and_fnv_s1ptw_cm_ea_are_reported() {
        // SAS/SRT bits set but ISV clear: they mean nothing.
        let iss = (3 << 22) | (7 << 16) | (1 << 10) | (1 << 9) | (1 << 8) | (1 << 7) | 0x10;
        let abort = DataAbortIss::new(iss);
        assert_eq!(abort.access(), None);
        assert!(
            !abort.far_valid() && abort.external() && abort.cache_maintenance() && abort.s1ptw()
        );
        assert_eq!(abort.status(), FaultStatus::SyncExternal);
    }

    #[test]
    fn fnv_says_whether_far_holds_an_aborts_address_for_data_and_instruction_aborts() {
        let abort = |class: u8, iss: u64| Esr((u64::from(class) << 26) | (1 << 25) | iss);
        assert!(abort(ec::IABT_LOWER, 0x06).abort_far_valid());
        assert!(!abort(ec::IABT_LOWER, (1 << 10) | 0x10).abort_far_valid());
        assert!(abort(ec::DABT_CURRENT, 0x07).abort_far_valid());
        assert!(!abort(ec::DABT_LOWER, 1 << 10).abort_far_valid());
        assert!(!abort(ec::HVC64, 0).abort_far_valid(), "not an abort");
    }

    #[test]
    fn every_fault_status_code_decodes_to_its_kind_and_level() {
        use FaultStatus as F;
        let cases = [
            (0x00, F::AddressSize { level: 0 }),
            (0x03, F::AddressSize { level: 3 }),
            (0x29, F::AddressSize { level: -1 }),
            (0x04, F::Translation { level: 0 }),
            (0x2b, F::Translation { level: -1 }),
            (0x08, F::AccessFlag { level: 0 }),
            (0x0b, F::AccessFlag { level: 3 }),
            (0x0c, F::Permission { level: 0 }),
            (0x0f, F::Permission { level: 3 }),
            (0x10, F::SyncExternal),
            (0x13, F::SyncExternalOnWalk { level: -1 }),
            (0x15, F::SyncExternalOnWalk { level: 1 }),
            (0x21, F::Alignment),
            (0x30, F::TlbConflict),
            (0x11, F::Other(0x11)),
            (0x3f, F::Other(0x3f)),
        ];
        for (code, want) in cases {
            assert_eq!(FaultStatus::decode(code), want, "{code:#x}");
        }
        assert_eq!(
            std::format!("{}", F::Translation { level: -1 }),
            "translation fault at level -1"
        );
        assert_eq!(std::format!("{}", F::Alignment), "alignment fault");
    }
}

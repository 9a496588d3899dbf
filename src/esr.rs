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

    /// For aborts: the fault status code (DFSC/IFSC) by name.
    pub fn fault_status_name(self) -> Option<&'static str> {
        if !self.is_abort() {
            return None;
        }
        let fsc = self.iss() & 0x3f;
        Some(match fsc {
            0x00..=0x03 => "address size fault",
            0x04..=0x07 => "translation fault",
            0x09..=0x0b => "access flag fault",
            0x0d..=0x0f => "permission fault",
            0x10 => "synchronous external abort",
            0x21 => "alignment fault",
            0x30 => "TLB conflict abort",
            _ => "other fault",
        })
    }

    /// For aborts: the translation level of the fault, when it has one.
    pub fn fault_level(self) -> Option<u32> {
        let fsc = self.iss() & 0x3f;
        (self.is_abort() && fsc < 0x10).then_some(fsc & 3)
    }

    /// For data aborts: whether the access was a write (ISS.WnR).
    pub fn is_write(self) -> Option<bool> {
        matches!(self.class(), ec::DABT_LOWER | ec::DABT_CURRENT)
            .then_some(self.iss() & (1 << 6) != 0)
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
        if let Some(name) = self.fault_status_name() {
            write!(f, ", {name}")?;
            if let Some(level) = self.fault_level() {
                write!(f, " at level {level}")?;
            }
            if let Some(write) = self.is_write() {
                write!(f, " on {}", if write { "write" } else { "read" })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_level_3_translation_fault_on_write() {
        // EC 0x25, IL, WnR, DFSC 0x07.
        let esr = Esr(0x9600_0047);
        assert_eq!(esr.class(), ec::DABT_CURRENT);
        assert_eq!(esr.fault_level(), Some(3));
        assert_eq!(esr.is_write(), Some(true));
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
        assert_eq!(hvc.fault_status_name(), None);
        assert_eq!(
            Esr(u64::from(ec::SMC64) << 26).class_name(),
            "SMC (AArch64)"
        );
        assert_eq!(Esr(0x3f << 26).class_name(), "Unrecognised exception class");
    }
}

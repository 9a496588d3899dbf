//! What an SMMU implements, decoded from SMMU_IDR0..5 and SMMU_AIDR, and the
//! check that it can run this driver.

use core::fmt;

use tock_registers::LocalRegisterCopy;
use tock_registers::fields::Field;

use super::regs::{AIDR, IDR0, IDR1, IDR3, IDR5, SmmuRegs, offset};

/// Raw identification registers, kept for logging and for the fake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdRegs {
    pub idr0: u32,
    pub idr1: u32,
    pub idr2: u32,
    pub idr3: u32,
    pub idr4: u32,
    pub idr5: u32,
    pub iidr: u32,
    pub aidr: u32,
}

impl IdRegs {
    /// Reads the ID registers. Reading has no side effects, so this is safe
    /// to do before deciding whether to touch the SMMU at all.
    pub fn read<R: SmmuRegs + ?Sized>(regs: &R) -> Self {
        Self {
            idr0: regs.read32(offset::IDR0),
            idr1: regs.read32(offset::IDR1),
            idr2: regs.read32(offset::IDR2),
            idr3: regs.read32(offset::IDR3),
            idr4: regs.read32(offset::IDR4),
            idr5: regs.read32(offset::IDR5),
            iidr: regs.read32(offset::IIDR),
            aidr: regs.read32(offset::AIDR),
        }
    }
}

/// Translation table formats (IDR0.TTF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormats {
    Reserved,
    AArch32,
    AArch64,
    AArch32AndAArch64,
}

/// Hardware translation table update (IDR0.HTTU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Httu {
    None,
    AccessFlag,
    AccessFlagAndDirty,
    Reserved,
}

/// Translation table endianness (IDR0.TTENDIAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtEndian {
    Mixed,
    Reserved,
    LittleOnly,
    BigOnly,
}

/// Fault models (IDR0.STALL_MODEL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallModel {
    /// Stall and terminate both supported.
    StallAndTerminate,
    /// Stall not supported: faulting transactions are terminated.
    TerminateOnly,
    /// Stall forced: faults must be resumed by software (CMD_RESUME).
    StallForced,
    Reserved,
}

/// Why an SMMU cannot be driven by this code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// IDR0.S2P == 0: this driver only builds stage-2 translations.
    NoStage2,
    /// IDR0.TTF lacks AArch64 tables (STE.S2AA64 must be 1).
    NoAArch64Tables,
    /// IDR0.TTENDIAN says big-endian tables only; ours are little-endian.
    BigEndianTablesOnly,
    /// IDR5 advertises no translation granule.
    NoGranule,
    /// IDR5.OAS holds a reserved value.
    ReservedOas,
    /// IDR1.TABLES_PRESET: the stream table base is fixed by the
    /// implementation, which this driver does not support.
    PresetTables,
    /// IDR1.QUEUES_PRESET: the queue bases are fixed.
    PresetQueues,
    /// IDR0.STALL_MODEL == forced stall: every stage-2 fault would stall
    /// and need CMD_RESUME handling, which is not implemented.
    ForcedStall,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoStage2 => "no stage-2 translation (IDR0.S2P = 0)",
            Self::NoAArch64Tables => "no AArch64 translation tables (IDR0.TTF)",
            Self::BigEndianTablesOnly => "big-endian translation tables only (IDR0.TTENDIAN)",
            Self::NoGranule => "no translation granule (IDR5.GRAN*)",
            Self::ReservedOas => "reserved output address size (IDR5.OAS)",
            Self::PresetTables => "preset stream table base (IDR1.TABLES_PRESET)",
            Self::PresetQueues => "preset queue bases (IDR1.QUEUES_PRESET)",
            Self::ForcedStall => "forced stall model needs CMD_RESUME (IDR0.STALL_MODEL = 2)",
        })
    }
}

/// Decoded SMMU capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub id: IdRegs,
    /// `SMMUv3.<minor>` from AIDR (major revision 0 is SMMUv3).
    pub arch_major: u8,
    pub arch_minor: u8,
    pub stage1: bool,
    pub stage2: bool,
    pub table_formats: TableFormats,
    /// IDR0.COHACC: the SMMU's table walks and queue accesses are coherent
    /// with the CPU caches.
    pub coherent: bool,
    /// Broadcast TLB maintenance.
    pub btm: bool,
    pub httu: Httu,
    /// IDR0.HYP: EL2 StreamWorld and CMD_TLBI_EL2_* exist.
    pub hyp: bool,
    pub ats: bool,
    pub pri: bool,
    pub msi: bool,
    pub sev: bool,
    pub asid16: bool,
    pub vmid16: bool,
    pub tt_endian: TtEndian,
    pub stall_model: StallModel,
    /// IDR0.TERM_MODEL == 1: terminated transactions always abort.
    pub term_abort_only: bool,
    /// IDR0.ST_LEVEL: 2-level stream tables supported.
    pub two_level_strtab: bool,
    pub sid_bits: u8,
    pub ssid_bits: u8,
    pub cmdq_log2: u8,
    pub evtq_log2: u8,
    pub priq_log2: u8,
    pub attr_types_ovr: bool,
    pub attr_perms_ovr: bool,
    pub queues_preset: bool,
    pub tables_preset: bool,
    pub rel: bool,
    pub had: bool,
    pub xnx: bool,
    pub fwb: bool,
    /// IDR3.STT: small translation tables (S2T0SZ > 39).
    pub stt: bool,
    /// IDR3.RIL: range invalidation (TLBI NUM/SCALE/TG/TTL).
    pub ril: bool,
    pub bbml: u8,
    /// Output address size in bits (0 if IDR5.OAS is reserved).
    pub oas_bits: u8,
    pub gran4k: bool,
    pub gran16k: bool,
    pub gran64k: bool,
}

fn flag<R: tock_registers::RegisterLongName>(
    reg: LocalRegisterCopy<u32, R>,
    field: Field<u32, R>,
) -> bool {
    reg.is_set(field)
}

/// IDR5.OAS encoding to bits; also the STE.S2PS encoding.
pub const fn pa_bits(encoding: u8) -> Option<u8> {
    match encoding {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

impl Features {
    pub fn decode(id: IdRegs) -> Self {
        let idr0 = LocalRegisterCopy::<u32, IDR0::Register>::new(id.idr0);
        let idr1 = LocalRegisterCopy::<u32, IDR1::Register>::new(id.idr1);
        let idr3 = LocalRegisterCopy::<u32, IDR3::Register>::new(id.idr3);
        let idr5 = LocalRegisterCopy::<u32, IDR5::Register>::new(id.idr5);
        let aidr = LocalRegisterCopy::<u32, AIDR::Register>::new(id.aidr);
        Self {
            id,
            arch_major: aidr.read(AIDR::ARCH_MAJOR) as u8,
            arch_minor: aidr.read(AIDR::ARCH_MINOR) as u8,
            stage1: flag(idr0, IDR0::S1P),
            stage2: flag(idr0, IDR0::S2P),
            table_formats: match idr0.read(IDR0::TTF) {
                1 => TableFormats::AArch32,
                2 => TableFormats::AArch64,
                3 => TableFormats::AArch32AndAArch64,
                _ => TableFormats::Reserved,
            },
            coherent: flag(idr0, IDR0::COHACC),
            btm: flag(idr0, IDR0::BTM),
            httu: match idr0.read(IDR0::HTTU) {
                0 => Httu::None,
                1 => Httu::AccessFlag,
                2 => Httu::AccessFlagAndDirty,
                _ => Httu::Reserved,
            },
            hyp: flag(idr0, IDR0::HYP),
            ats: flag(idr0, IDR0::ATS),
            pri: flag(idr0, IDR0::PRI),
            msi: flag(idr0, IDR0::MSI),
            sev: flag(idr0, IDR0::SEV),
            asid16: flag(idr0, IDR0::ASID16),
            vmid16: flag(idr0, IDR0::VMID16),
            tt_endian: match idr0.read(IDR0::TTENDIAN) {
                0 => TtEndian::Mixed,
                2 => TtEndian::LittleOnly,
                3 => TtEndian::BigOnly,
                _ => TtEndian::Reserved,
            },
            stall_model: match idr0.read(IDR0::STALL_MODEL) {
                0 => StallModel::StallAndTerminate,
                1 => StallModel::TerminateOnly,
                2 => StallModel::StallForced,
                _ => StallModel::Reserved,
            },
            term_abort_only: flag(idr0, IDR0::TERM_MODEL),
            two_level_strtab: idr0.read(IDR0::ST_LEVEL) == 1,
            sid_bits: idr1.read(IDR1::SIDSIZE) as u8,
            ssid_bits: idr1.read(IDR1::SSIDSIZE) as u8,
            cmdq_log2: idr1.read(IDR1::CMDQS) as u8,
            evtq_log2: idr1.read(IDR1::EVENTQS) as u8,
            priq_log2: idr1.read(IDR1::PRIQS) as u8,
            attr_types_ovr: flag(idr1, IDR1::ATTR_TYPES_OVR),
            attr_perms_ovr: flag(idr1, IDR1::ATTR_PERMS_OVR),
            queues_preset: flag(idr1, IDR1::QUEUES_PRESET),
            tables_preset: flag(idr1, IDR1::TABLES_PRESET),
            rel: flag(idr1, IDR1::REL),
            had: flag(idr3, IDR3::HAD),
            xnx: flag(idr3, IDR3::XNX),
            fwb: flag(idr3, IDR3::FWB),
            stt: flag(idr3, IDR3::STT),
            ril: flag(idr3, IDR3::RIL),
            bbml: idr3.read(IDR3::BBML) as u8,
            oas_bits: pa_bits(idr5.read(IDR5::OAS) as u8).unwrap_or(0),
            gran4k: flag(idr5, IDR5::GRAN4K),
            gran16k: flag(idr5, IDR5::GRAN16K),
            gran64k: flag(idr5, IDR5::GRAN64K),
        }
    }

    pub fn read<R: SmmuRegs + ?Sized>(regs: &R) -> Self {
        Self::decode(IdRegs::read(regs))
    }

    /// Refuses an SMMU this driver cannot drive correctly. Called before
    /// anything is written to the SMMU.
    pub fn check(&self) -> Result<(), Unsupported> {
        if !self.stage2 {
            return Err(Unsupported::NoStage2);
        }
        if !matches!(
            self.table_formats,
            TableFormats::AArch64 | TableFormats::AArch32AndAArch64
        ) {
            return Err(Unsupported::NoAArch64Tables);
        }
        if self.tt_endian == TtEndian::BigOnly {
            return Err(Unsupported::BigEndianTablesOnly);
        }
        if !(self.gran4k || self.gran16k || self.gran64k) {
            return Err(Unsupported::NoGranule);
        }
        if self.oas_bits == 0 {
            return Err(Unsupported::ReservedOas);
        }
        if self.tables_preset {
            return Err(Unsupported::PresetTables);
        }
        if self.queues_preset {
            return Err(Unsupported::PresetQueues);
        }
        if self.stall_model == StallModel::StallForced {
            return Err(Unsupported::ForcedStall);
        }
        Ok(())
    }
}

impl fmt::Display for Features {
    /// One line for the boot log, e.g.
    /// `SMMUv3.1 S1+S2 AArch64 coherent sid=16 ssid=0 strtab=2lvl cmdq=2^19
    /// evtq=2^19 oas=44 gran=4K,16K,64K vmid16 asid16 ril bbml=2 had xnx
    /// stall=no term=abort`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SMMUv3.{}", self.arch_minor)?;
        if self.arch_major != 0 {
            write!(f, " (AIDR major {})", self.arch_major)?;
        }
        f.write_str(match (self.stage1, self.stage2) {
            (true, true) => " S1+S2",
            (false, true) => " S2",
            (true, false) => " S1",
            (false, false) => " no-stages",
        })?;
        f.write_str(match self.table_formats {
            TableFormats::AArch64 => " AArch64",
            TableFormats::AArch32AndAArch64 => " AArch32+AArch64",
            TableFormats::AArch32 => " AArch32",
            TableFormats::Reserved => " TTF=reserved",
        })?;
        f.write_str(if self.coherent {
            " coherent"
        } else {
            " non-coherent"
        })?;
        write!(
            f,
            " sid={} ssid={} strtab={} cmdq=2^{} evtq=2^{} oas={} gran=",
            self.sid_bits,
            self.ssid_bits,
            if self.two_level_strtab {
                "2lvl"
            } else {
                "linear"
            },
            self.cmdq_log2,
            self.evtq_log2,
            self.oas_bits
        )?;
        let mut sep = "";
        for (present, name) in [
            (self.gran4k, "4K"),
            (self.gran16k, "16K"),
            (self.gran64k, "64K"),
        ] {
            if present {
                write!(f, "{sep}{name}")?;
                sep = ",";
            }
        }
        for (present, name) in [
            (self.vmid16, " vmid16"),
            (self.asid16, " asid16"),
            (self.ril, " ril"),
            (self.hyp, " hyp"),
            (self.btm, " btm"),
            (self.ats, " ats"),
            (self.pri, " pri"),
            (self.msi, " msi"),
            (self.had, " had"),
            (self.xnx, " xnx"),
            (self.fwb, " fwb"),
            (self.stt, " stt"),
        ] {
            if present {
                f.write_str(name)?;
            }
        }
        if self.bbml != 0 {
            write!(f, " bbml={}", self.bbml)?;
        }
        match self.httu {
            Httu::None => {}
            Httu::AccessFlag => f.write_str(" httu=a")?,
            Httu::AccessFlagAndDirty => f.write_str(" httu=ad")?,
            Httu::Reserved => f.write_str(" httu=reserved")?,
        }
        f.write_str(match self.stall_model {
            StallModel::StallAndTerminate => " stall=yes",
            StallModel::TerminateOnly => " stall=no",
            StallModel::StallForced => " stall=forced",
            StallModel::Reserved => " stall=reserved",
        })?;
        f.write_str(if self.term_abort_only {
            " term=abort"
        } else {
            " term=raz/abort"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::string::ToString;

    /// QEMU 10 `-M virt,iommu=smmuv3` (nested), as `docs/qemu.md` lists.
    pub(crate) const QEMU_NESTED: IdRegs = IdRegs {
        idr0: 0x0d44_101b,
        idr1: 0x0273_0010,
        idr2: 0,
        idr3: 0x1414,
        idr4: 0,
        idr5: 0x74,
        iidr: 0,
        aidr: 0x1,
    };

    #[test]
    fn decodes_qemu_nested() {
        let f = Features::decode(QEMU_NESTED);
        assert!(f.stage1 && f.stage2);
        assert_eq!(f.table_formats, TableFormats::AArch64);
        assert!(f.coherent && !f.btm && !f.hyp && !f.ats && !f.pri && !f.msi);
        assert_eq!(f.httu, Httu::None);
        assert!(f.asid16 && f.vmid16);
        assert_eq!(f.tt_endian, TtEndian::LittleOnly);
        assert_eq!(f.stall_model, StallModel::TerminateOnly);
        assert!(f.term_abort_only && f.two_level_strtab);
        assert_eq!((f.sid_bits, f.ssid_bits), (16, 0));
        assert_eq!((f.cmdq_log2, f.evtq_log2), (19, 19));
        assert!(f.ril && f.had && f.xnx);
        assert_eq!(f.bbml, 2);
        assert_eq!(f.oas_bits, 44);
        assert!(f.gran4k && f.gran16k && f.gran64k);
        assert_eq!((f.arch_major, f.arch_minor), (0, 1));
        assert_eq!(f.check(), Ok(()));
    }

    #[test]
    fn stage_variants() {
        let s1 = Features::decode(IdRegs {
            idr0: 0x0d44_101a,
            idr3: 0x1404,
            ..QEMU_NESTED
        });
        assert!(s1.stage1 && !s1.stage2 && !s1.xnx);
        assert_eq!(s1.check(), Err(Unsupported::NoStage2));

        let s2 = Features::decode(IdRegs {
            idr0: 0x0d44_1019,
            ..QEMU_NESTED
        });
        assert!(!s2.stage1 && s2.stage2 && s2.xnx);
        assert_eq!(s2.check(), Ok(()));
    }

    #[test]
    fn refusals() {
        let with = |idr0: u32, idr1: u32, idr5: u32| {
            Features::decode(IdRegs {
                idr0,
                idr1,
                idr5,
                ..QEMU_NESTED
            })
            .check()
        };
        let base0 = QEMU_NESTED.idr0;
        let base1 = QEMU_NESTED.idr1;
        // TTF = AArch32 only.
        assert_eq!(
            with((base0 & !0xc) | 0x4, base1, 0x74),
            Err(Unsupported::NoAArch64Tables)
        );
        // TTENDIAN = big-endian only.
        assert_eq!(
            with(base0 | (3 << 21), base1, 0x74),
            Err(Unsupported::BigEndianTablesOnly)
        );
        assert_eq!(with(base0, base1, 0x04), Err(Unsupported::NoGranule));
        assert_eq!(with(base0, base1, 0x77), Err(Unsupported::ReservedOas));
        assert_eq!(
            with(base0, base1 | (1 << 30), 0x74),
            Err(Unsupported::PresetTables)
        );
        assert_eq!(
            with(base0, base1 | (1 << 29), 0x74),
            Err(Unsupported::PresetQueues)
        );
        assert_eq!(
            with((base0 & !(3 << 24)) | (2 << 24), base1, 0x74),
            Err(Unsupported::ForcedStall)
        );
    }

    #[test]
    fn boot_line() {
        let line = Features::decode(QEMU_NESTED).to_string();
        assert_eq!(
            line,
            "SMMUv3.1 S1+S2 AArch64 coherent sid=16 ssid=0 strtab=2lvl cmdq=2^19 evtq=2^19 \
             oas=44 gran=4K,16K,64K vmid16 asid16 ril had xnx bbml=2 stall=no term=abort"
        );
        assert!(Unsupported::NoStage2.to_string().contains("S2P"));
    }
}

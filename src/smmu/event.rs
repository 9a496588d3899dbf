//! Event queue records (32 bytes): decoding into [`Event`].
//!
//! Layout (SMMUv3 spec section 7.3, cross-checked with Linux `EVTQ_*` and
//! QEMU `EVT_SET_*`):
//! - dword 0: event id `[7:0]`, SSV `[11]`, SSID `[31:12]`, StreamID `[63:32]`
//! - dword 1: STAG `[15:0]`, Stall `[31]`, PnU `[33]`, InD `[34]`, RnW `[35]`,
//!   S2 `[39]`, CLASS `[41:40]`
//! - dword 2: input address
//! - dword 3: IPA `[51:12]` (translation-class faults) or fetch address
//!   `[51:3]` (fetch and walk-abort faults)

use core::fmt;

use tock_registers::fields::Field;
use tock_registers::{LocalRegisterCopy, RegisterLongName, register_bitfields};

register_bitfields![u64,
    pub EVT0 [
        ID OFFSET(0) NUMBITS(8) [],
        SSV OFFSET(11) NUMBITS(1) [],
        SSID OFFSET(12) NUMBITS(20) [],
        SID OFFSET(32) NUMBITS(32) []
    ],
    pub EVT1 [
        STAG OFFSET(0) NUMBITS(16) [],
        STALL OFFSET(31) NUMBITS(1) [],
        PNU OFFSET(33) NUMBITS(1) [],
        IND OFFSET(34) NUMBITS(1) [],
        RNW OFFSET(35) NUMBITS(1) [],
        S2 OFFSET(39) NUMBITS(1) [],
        CLASS OFFSET(40) NUMBITS(2) []
    ],
    pub EVT3 [
        FETCH_ADDR OFFSET(3) NUMBITS(49) [],
        IPA OFFSET(12) NUMBITS(40) []
    ]
];

/// Bytes per event record.
pub const EVENT_BYTES: usize = 32;

/// Event types (the record's first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// 0x01 F_UUT: unsupported upstream transaction.
    Uut,
    /// 0x02 C_BAD_STREAMID: StreamID out of range or its level-1
    /// descriptor is invalid.
    BadStreamId,
    /// 0x03 F_STE_FETCH: fetching the STE aborted.
    SteFetch,
    /// 0x04 C_BAD_STE: invalid or ILLEGAL STE.
    BadSte,
    /// 0x05 F_BAD_ATS_TREQ.
    BadAtsTreq,
    /// 0x06 F_STREAM_DISABLED.
    StreamDisabled,
    /// 0x07 F_TRANSL_FORBIDDEN: translated ATS traffic not allowed.
    TranslForbidden,
    /// 0x08 C_BAD_SUBSTREAMID.
    BadSubstreamId,
    /// 0x09 F_CD_FETCH.
    CdFetch,
    /// 0x0A C_BAD_CD.
    BadCd,
    /// 0x0B F_WALK_EABT: external abort during a table walk.
    WalkEabt,
    /// 0x10 F_TRANSLATION.
    Translation,
    /// 0x11 F_ADDR_SIZE.
    AddrSize,
    /// 0x12 F_ACCESS.
    Access,
    /// 0x13 F_PERMISSION.
    Permission,
    /// 0x20 F_TLB_CONFLICT.
    TlbConflict,
    /// 0x21 F_CFG_CONFLICT.
    CfgConflict,
    /// 0x24 E_PAGE_REQUEST.
    PageRequest,
    /// 0x25 F_VMS_FETCH.
    VmsFetch,
    /// Anything else (reserved or implementation defined).
    Other(u8),
}

impl EventKind {
    pub const fn from_id(id: u8) -> Self {
        match id {
            0x01 => Self::Uut,
            0x02 => Self::BadStreamId,
            0x03 => Self::SteFetch,
            0x04 => Self::BadSte,
            0x05 => Self::BadAtsTreq,
            0x06 => Self::StreamDisabled,
            0x07 => Self::TranslForbidden,
            0x08 => Self::BadSubstreamId,
            0x09 => Self::CdFetch,
            0x0a => Self::BadCd,
            0x0b => Self::WalkEabt,
            0x10 => Self::Translation,
            0x11 => Self::AddrSize,
            0x12 => Self::Access,
            0x13 => Self::Permission,
            0x20 => Self::TlbConflict,
            0x21 => Self::CfgConflict,
            0x24 => Self::PageRequest,
            0x25 => Self::VmsFetch,
            other => Self::Other(other),
        }
    }

    pub const fn id(self) -> u8 {
        match self {
            Self::Uut => 0x01,
            Self::BadStreamId => 0x02,
            Self::SteFetch => 0x03,
            Self::BadSte => 0x04,
            Self::BadAtsTreq => 0x05,
            Self::StreamDisabled => 0x06,
            Self::TranslForbidden => 0x07,
            Self::BadSubstreamId => 0x08,
            Self::CdFetch => 0x09,
            Self::BadCd => 0x0a,
            Self::WalkEabt => 0x0b,
            Self::Translation => 0x10,
            Self::AddrSize => 0x11,
            Self::Access => 0x12,
            Self::Permission => 0x13,
            Self::TlbConflict => 0x20,
            Self::CfgConflict => 0x21,
            Self::PageRequest => 0x24,
            Self::VmsFetch => 0x25,
            Self::Other(id) => id,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Uut => "F_UUT",
            Self::BadStreamId => "C_BAD_STREAMID",
            Self::SteFetch => "F_STE_FETCH",
            Self::BadSte => "C_BAD_STE",
            Self::BadAtsTreq => "F_BAD_ATS_TREQ",
            Self::StreamDisabled => "F_STREAM_DISABLED",
            Self::TranslForbidden => "F_TRANSL_FORBIDDEN",
            Self::BadSubstreamId => "C_BAD_SUBSTREAMID",
            Self::CdFetch => "F_CD_FETCH",
            Self::BadCd => "C_BAD_CD",
            Self::WalkEabt => "F_WALK_EABT",
            Self::Translation => "F_TRANSLATION",
            Self::AddrSize => "F_ADDR_SIZE",
            Self::Access => "F_ACCESS",
            Self::Permission => "F_PERMISSION",
            Self::TlbConflict => "F_TLB_CONFLICT",
            Self::CfgConflict => "F_CFG_CONFLICT",
            Self::PageRequest => "E_PAGE_REQUEST",
            Self::VmsFetch => "F_VMS_FETCH",
            Self::Other(_) => "UNKNOWN",
        }
    }

    /// Records whose dword 2 is the faulting input address.
    const fn has_input_addr(self) -> bool {
        matches!(
            self,
            Self::Uut
                | Self::BadAtsTreq
                | Self::TranslForbidden
                | Self::WalkEabt
                | Self::Translation
                | Self::AddrSize
                | Self::Access
                | Self::Permission
                | Self::TlbConflict
                | Self::PageRequest
        )
    }

    /// Translation-class faults: dword 3 holds the IPA.
    const fn has_ipa(self) -> bool {
        matches!(
            self,
            Self::Translation | Self::AddrSize | Self::Access | Self::Permission
        )
    }

    /// Fetch faults: dword 3 holds the physical address that aborted.
    const fn has_fetch_addr(self) -> bool {
        matches!(
            self,
            Self::SteFetch | Self::CdFetch | Self::WalkEabt | Self::VmsFetch
        )
    }

    /// Faults that carry the S2/CLASS/RnW/PnU/InD/Stall details: those
    /// with an input address, except page requests.
    const fn has_access_info(self) -> bool {
        self.has_input_addr() && !matches!(self, Self::PageRequest)
    }
}

/// What the faulting access was doing (EVT1.CLASS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultClass {
    /// Fetching a context descriptor.
    Cd,
    /// A translation table walk (e.g. a stage-1 walk through stage 2).
    TranslationTable,
    /// The input transaction itself.
    Input,
    Reserved,
}

impl fmt::Display for FaultClass {
    /// The CLASS names of the SMMUv3 spec (event records, 7.3).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cd => "CD",
            Self::TranslationTable => "TT",
            Self::Input => "IN",
            Self::Reserved => "reserved",
        })
    }
}

/// A decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub sid: u32,
    /// SubstreamID, when the record says it is valid (SSV).
    pub ssid: Option<u32>,
    pub stall: bool,
    pub stag: u16,
    /// Privileged (1) or unprivileged access.
    pub pnu: bool,
    /// Instruction (1) or data access.
    pub ind: bool,
    /// Read (1) or write access.
    pub rnw: bool,
    /// The fault came from stage 2.
    pub s2: bool,
    pub class: FaultClass,
    pub input_addr: Option<u64>,
    pub ipa: Option<u64>,
    pub fetch_addr: Option<u64>,
    /// The record as read, for anything not decoded above.
    pub raw: [u64; 4],
}

fn get<R: RegisterLongName>(word: u64, field: Field<u64, R>) -> u64 {
    LocalRegisterCopy::<u64, R>::new(word).read(field)
}

impl Event {
    /// A placeholder for fixed-capacity storage.
    pub const EMPTY: Self = Self {
        kind: EventKind::Other(0),
        sid: 0,
        ssid: None,
        stall: false,
        stag: 0,
        pnu: false,
        ind: false,
        rnw: false,
        s2: false,
        class: FaultClass::Input,
        input_addr: None,
        ipa: None,
        fetch_addr: None,
        raw: [0; 4],
    };

    /// Decodes a record. Total: any 32 bytes give an `Event` (fields that
    /// the event type does not define are left `None`/false).
    pub fn decode(raw: [u64; 4]) -> Self {
        let kind = EventKind::from_id(get(raw[0], EVT0::ID) as u8);
        let info = kind.has_access_info();
        let flag = |f| info && get(raw[1], f) != 0;
        Self {
            kind,
            sid: get(raw[0], EVT0::SID) as u32,
            ssid: (get(raw[0], EVT0::SSV) != 0).then(|| get(raw[0], EVT0::SSID) as u32),
            stall: flag(EVT1::STALL),
            stag: if info {
                get(raw[1], EVT1::STAG) as u16
            } else {
                0
            },
            pnu: flag(EVT1::PNU),
            ind: flag(EVT1::IND),
            rnw: flag(EVT1::RNW),
            s2: flag(EVT1::S2),
            class: match get(raw[1], EVT1::CLASS) {
                _ if !info => FaultClass::Input,
                0 => FaultClass::Cd,
                1 => FaultClass::TranslationTable,
                2 => FaultClass::Input,
                _ => FaultClass::Reserved,
            },
            input_addr: kind.has_input_addr().then_some(raw[2]),
            ipa: kind.has_ipa().then(|| get(raw[3], EVT3::IPA) << 12),
            fetch_addr: kind
                .has_fetch_addr()
                .then(|| get(raw[3], EVT3::FETCH_ADDR) << 3),
            raw,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:#04x}) sid={:#x}",
            self.kind.name(),
            self.kind.id(),
            self.sid
        )?;
        if let Some(ssid) = self.ssid {
            write!(f, " ssid={ssid:#x}")?;
        }
        if let Some(a) = self.input_addr {
            write!(f, " addr={a:#x}")?;
        }
        if let Some(ipa) = self.ipa {
            write!(f, " ipa={ipa:#x}")?;
        }
        if let Some(fa) = self.fetch_addr {
            write!(f, " fetch={fa:#x}")?;
        }
        if self.kind.has_access_info() {
            write!(
                f,
                " {}{} class={}",
                if self.rnw { "read" } else { "write" },
                if self.s2 { " s2" } else { " s1" },
                self.class
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    /// Builds a record the way QEMU's `EVT_SET_*` macros do (32-bit words).
    fn qemu_record(
        id: u8,
        sid: u32,
        rnw: bool,
        s2: bool,
        class: u32,
        addr: u64,
        addr2: u64,
    ) -> [u64; 4] {
        let mut w = [0u32; 8];
        w[0] = id as u32;
        w[1] = sid;
        w[3] |= u32::from(rnw) << 3;
        w[3] |= u32::from(s2) << 7;
        w[3] |= class << 8;
        w[4] = addr as u32;
        w[5] = (addr >> 32) as u32;
        w[6] = addr2 as u32;
        w[7] = (addr2 >> 32) as u32;
        let d = |i: usize| u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32);
        [d(0), d(1), d(2), d(3)]
    }

    #[test]
    fn stage2_translation_fault_as_qemu_records_it() {
        // As QEMU records it (`docs/qemu.md`): F_TRANSLATION with S2 = 1,
        // CLASS = IN, input address and IPA filled in.
        let e = Event::decode(qemu_record(
            0x10,
            8,
            false,
            true,
            2,
            0x8000_7000,
            0x8000_7000,
        ));
        assert_eq!(e.kind, EventKind::Translation);
        assert_eq!(e.sid, 8);
        assert!(e.s2 && !e.rnw);
        assert_eq!(e.class, FaultClass::Input);
        assert_eq!(e.input_addr, Some(0x8000_7000));
        assert_eq!(e.ipa, Some(0x8000_7000));
        assert_eq!(e.fetch_addr, None);
        assert_eq!(e.ssid, None);
        assert_eq!(
            e.to_string(),
            "F_TRANSLATION (0x10) sid=0x8 addr=0x80007000 ipa=0x80007000 write s2 class=IN"
        );
    }

    #[test]
    fn every_kind_round_trips() {
        let ids = [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x10, 0x11, 0x12,
            0x13, 0x20, 0x21, 0x24, 0x25,
        ];
        for id in ids {
            let k = EventKind::from_id(id);
            assert!(!matches!(k, EventKind::Other(_)), "{id:#x}");
            assert_eq!(k.id(), id);
            assert_ne!(k.name(), "UNKNOWN");
        }
        assert_eq!(EventKind::from_id(0xee), EventKind::Other(0xee));
        assert_eq!(EventKind::from_id(0xee).id(), 0xee);
    }

    #[test]
    fn field_positions() {
        let raw = [
            0x0000_0123_0000_0000 | (0xabcde << 12) | (1 << 11) | 0x13,
            (1 << 35) | (1 << 39) | (1 << 40) | (1 << 33) | (1 << 34) | (1 << 31) | 0x55,
            0xffff_0000_1234_5678,
            0xfff0_0000_0000_0fff | 0x0009_8765_4321_0000,
        ];
        let e = Event::decode(raw);
        assert_eq!(e.kind, EventKind::Permission);
        assert_eq!(e.sid, 0x123);
        assert_eq!(e.ssid, Some(0xabcde));
        assert!(e.rnw && e.s2 && e.pnu && e.ind && e.stall);
        assert_eq!(e.stag, 0x55);
        assert_eq!(e.class, FaultClass::TranslationTable);
        assert_eq!(e.input_addr, Some(0xffff_0000_1234_5678));
        // IPA is bits `[51:12]`; the junk outside is dropped.
        assert_eq!(e.ipa, Some(0x0009_8765_4321_0000));

        let fetch = Event::decode([0x03, 0, 0, 0x000f_ffff_ffff_fff8 | 0x7]);
        assert_eq!(fetch.kind, EventKind::SteFetch);
        assert_eq!(fetch.fetch_addr, Some(0x000f_ffff_ffff_fff8));
        assert_eq!(fetch.input_addr, None);

        // Configuration errors carry no access details even if bits are set.
        let bad = Event::decode([0x02 | (7 << 32), u64::MAX, 5, 6]);
        assert_eq!(bad.kind, EventKind::BadStreamId);
        assert_eq!(bad.sid, 7);
        assert!(!bad.rnw && !bad.s2);
        assert_eq!(bad.input_addr, None);
    }
}

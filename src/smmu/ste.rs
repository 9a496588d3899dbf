//! Stream table entries (64 bytes) for stage-2-only translation, and the
//! ordered update protocol that changes a live STE without the SMMU ever
//! seeing a mixture of two configurations.
//!
//! The SMMU may fetch an STE at any time, one 64-bit word at a time, and
//! cache it until CMD_CFGI_STE + CMD_SYNC. Each aligned 64-bit store is
//! single-copy atomic. Which words matter depends on word 0: an invalid
//! (V = 0) or abort STE ignores words 1..7, a translating one uses them. So:
//!
//! 1. bits the *current* configuration ignores are written first, then
//!    CFGI + SYNC;
//! 2. if only one word's used bits differ, that word is written (one atomic
//!    store: old or new, never a mix), then CFGI + SYNC;
//! 3. otherwise word 0 goes to abort first (CFGI + SYNC), the other words
//!    are written (CFGI + SYNC), then word 0 gets the new config
//!    (CFGI + SYNC);
//! 4. bits the *new* configuration ignores are tidied last; they need no
//!    invalidation (the SMMU ignores them), only a cache clean.
//!
//! Resulting sync counts: abort -> S2 = 2, S2 -> abort = 1, S2 -> S2 with a
//! different VMID and table = 3 (not hitless: DMA aborts in between),
//! S2 -> S2 changing only one word (e.g. the VMID) = 1 (hitless).

use core::fmt;

use tock_registers::fields::Field;
use tock_registers::{LocalRegisterCopy, RegisterLongName, register_bitfields};

use super::error::SmmuError;
use super::features::{Features, pa_bits};

register_bitfields![u64,
    pub STE0 [
        V OFFSET(0) NUMBITS(1) [],
        CONFIG OFFSET(1) NUMBITS(3) [
            Abort = 0,
            Bypass = 4,
            S1Trans = 5,
            S2Trans = 6,
            Nested = 7
        ]
    ],
    pub STE1 [
        EATS OFFSET(28) NUMBITS(2) [],
        STRW OFFSET(30) NUMBITS(2) [],
        SHCFG OFFSET(44) NUMBITS(2) [
            NonShareable = 0,
            Incoming = 1,
            Outer = 2,
            Inner = 3
        ]
    ],
    pub STE2 [
        S2VMID OFFSET(0) NUMBITS(16) [],
        S2T0SZ OFFSET(32) NUMBITS(6) [],
        S2SL0 OFFSET(38) NUMBITS(2) [],
        S2IR0 OFFSET(40) NUMBITS(2) [],
        S2OR0 OFFSET(42) NUMBITS(2) [],
        S2SH0 OFFSET(44) NUMBITS(2) [],
        S2TG OFFSET(46) NUMBITS(2) [],
        S2PS OFFSET(48) NUMBITS(3) [],
        S2AA64 OFFSET(51) NUMBITS(1) [],
        S2ENDI OFFSET(52) NUMBITS(1) [],
        S2AFFD OFFSET(53) NUMBITS(1) [],
        S2PTW OFFSET(54) NUMBITS(1) [],
        S2HD OFFSET(55) NUMBITS(1) [],
        S2HA OFFSET(56) NUMBITS(1) [],
        S2S OFFSET(57) NUMBITS(1) [],
        S2R OFFSET(58) NUMBITS(1) []
    ],
    pub STE3 [
        S2TTB OFFSET(4) NUMBITS(48) []
    ]
];

pub const STE_WORDS: usize = 8;
pub const STE_BYTES: usize = 64;

/// The stage-2 parameters of a domain, as plain values from the page-table
/// code. Encodings are the STE's (which are VTCR_EL2's):
/// - `tg`: 0 = 4K, 1 = 64K, 2 = 16K granule;
/// - `sl0`: start level, 4K: 0 = L2, 1 = L1, 2 = L0; 16K/64K: 0 = L3,
///   1 = L2, 2 = L1;
/// - `ps`: output size, 0..=6 = 32, 36, 40, 42, 44, 48, 52 bits;
/// - `t0sz`: input (IPA) size is 64 - t0sz bits;
/// - `ttb`: physical address of the start-level table (concatenated tables
///   included), aligned to its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Config {
    pub vmid: u16,
    pub t0sz: u8,
    pub sl0: u8,
    pub tg: u8,
    pub ps: u8,
    pub ttb: u64,
}

/// Why a stage-2 configuration would give an ILLEGAL STE (C_BAD_STE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S2ConfigError {
    /// VMID above 255 without IDR0.VMID16.
    VmidTooLarge(u16),
    /// S2TG = 3 is reserved.
    BadGranule(u8),
    /// The granule is not in IDR5.
    GranuleNotSupported(u8),
    /// S2PS above 6 is reserved.
    BadPs(u8),
    /// S2PS larger than IDR5.OAS.
    PsTooLarge { ps_bits: u8, oas_bits: u8 },
    /// T0SZ outside [min, max] for this SMMU, granule and S2PS.
    T0szOutOfRange { t0sz: u8, min: u8, max: u8 },
    /// SL0 is reserved for the granule, or the start level resolves no
    /// address bits for this T0SZ.
    BadStartLevel { sl0: u8, tg: u8, t0sz: u8 },
    /// The start level would need more than 16 concatenated tables.
    TooManyConcatenatedTables,
    /// S2TTB not aligned to the start-level table size.
    TtbMisaligned { ttb: u64, align: u64 },
    /// S2TTB outside the S2PS output range.
    TtbOutOfRange(u64),
}

impl fmt::Display for S2ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::VmidTooLarge(v) => write!(f, "VMID {v} needs 16-bit VMIDs"),
            Self::BadGranule(tg) => write!(f, "reserved S2TG {tg}"),
            Self::GranuleNotSupported(tg) => write!(f, "granule S2TG {tg} not supported"),
            Self::BadPs(ps) => write!(f, "reserved S2PS {ps}"),
            Self::PsTooLarge { ps_bits, oas_bits } => {
                write!(f, "S2PS of {ps_bits} bits above the {oas_bits}-bit OAS")
            }
            Self::T0szOutOfRange { t0sz, min, max } => {
                write!(f, "S2T0SZ {t0sz} outside {min}..={max}")
            }
            Self::BadStartLevel { sl0, tg, t0sz } => {
                write!(f, "S2SL0 {sl0} invalid for S2TG {tg} and S2T0SZ {t0sz}")
            }
            Self::TooManyConcatenatedTables => f.write_str("more than 16 concatenated tables"),
            Self::TtbMisaligned { ttb, align } => {
                write!(f, "S2TTB {ttb:#x} not aligned to {align:#x}")
            }
            Self::TtbOutOfRange(ttb) => write!(f, "S2TTB {ttb:#x} beyond S2PS"),
        }
    }
}

/// Granule size in bits for an S2TG encoding.
const fn granule_bits(tg: u8) -> Option<u32> {
    match tg {
        0 => Some(12),
        1 => Some(16),
        2 => Some(14),
        _ => None,
    }
}

impl S2Config {
    /// Checks the combination the way the SMMU does before it accepts an
    /// STE, plus QEMU's stricter reading (IPA size <= S2PS), so an STE that
    /// passes is valid on both.
    pub fn validate(&self, f: &Features) -> Result<(), S2ConfigError> {
        if !f.vmid16 && self.vmid > 0xff {
            return Err(S2ConfigError::VmidTooLarge(self.vmid));
        }
        let g = granule_bits(self.tg).ok_or(S2ConfigError::BadGranule(self.tg))?;
        let supported = match g {
            12 => f.gran4k,
            14 => f.gran16k,
            _ => f.gran64k,
        };
        if !supported {
            return Err(S2ConfigError::GranuleNotSupported(self.tg));
        }
        let ps_bits = pa_bits(self.ps).ok_or(S2ConfigError::BadPs(self.ps))?;
        if ps_bits > f.oas_bits {
            return Err(S2ConfigError::PsTooLarge {
                ps_bits,
                oas_bits: f.oas_bits,
            });
        }
        // Stage-2 input size with AArch64 tables is the OAS, and beyond 48
        // bits only with the 64K granule. QEMU additionally bounds it by the
        // STE's S2PS; honour both.
        let mut ias = f.oas_bits.min(ps_bits);
        if g != 16 {
            ias = ias.min(48);
        }
        let min = 64 - ias;
        let max = if f.stt { 48 } else { 39 };
        if self.t0sz < min || self.t0sz > max {
            return Err(S2ConfigError::T0szOutOfRange {
                t0sz: self.t0sz,
                min,
                max,
            });
        }
        let bad_level = S2ConfigError::BadStartLevel {
            sl0: self.sl0,
            tg: self.tg,
            t0sz: self.t0sz,
        };
        let start_level: u32 = match (g, self.sl0) {
            (12, 0) => 2,
            (12, 1) => 1,
            (12, 2) => 0,
            (_, 0) if g != 12 => 3,
            (_, 1) if g != 12 => 2,
            (_, 2) if g != 12 => 1,
            _ => return Err(bad_level),
        };
        let stride = g - 3;
        let ia_bits = 64 - u32::from(self.t0sz);
        // Bits resolved below the start level, plus the page offset.
        let below = g + (3 - start_level) * stride;
        if ia_bits <= below {
            return Err(bad_level);
        }
        let index_bits = ia_bits - below;
        if index_bits > stride + 4 {
            return Err(S2ConfigError::TooManyConcatenatedTables);
        }
        let align = (8u64 << index_bits).max(16);
        if !self.ttb.is_multiple_of(align) {
            return Err(S2ConfigError::TtbMisaligned {
                ttb: self.ttb,
                align,
            });
        }
        if self.ttb >> ps_bits != 0 {
            return Err(S2ConfigError::TtbOutOfRange(self.ttb));
        }
        Ok(())
    }
}

/// What an STE does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteConfig {
    /// V = 0: traffic is terminated and C_BAD_STE recorded.
    Invalid,
    /// Config = abort: terminated silently.
    Abort,
    Bypass,
    Stage1,
    Stage2,
    Nested,
    /// Config 1..=3 (reserved).
    Reserved,
}

/// One stream table entry, as the eight little-endian words in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ste(pub [u64; STE_WORDS]);

fn get<R: RegisterLongName>(word: u64, field: Field<u64, R>) -> u64 {
    LocalRegisterCopy::<u64, R>::new(word).read(field)
}

impl Ste {
    /// All zero: V = 0.
    pub const INVALID: Self = Self([0; STE_WORDS]);
    /// V = 1, Config = abort: the default for every StreamID without a
    /// domain. Traffic is terminated without filling the event queue.
    pub const ABORT: Self = Self([1, 0, 0, 0, 0, 0, 0, 0]);

    /// A stage-2-only STE for `cfg`:
    /// - S2AA64 = 1 (AArch64 tables; QEMU aborts on S2AA64 = 0);
    /// - S2R = 1 (record faults), S2S = 0 (terminate, never stall);
    /// - S2IR0/S2OR0/S2SH0 = WBWA, WBWA, inner shareable when the SMMU is
    ///   coherent (IDR0.COHACC), else non-cacheable, outer shareable (the
    ///   walker then reads what EL2 cleaned to PoC);
    /// - S2ENDI = 0 (little-endian), S2AFFD = 0 (an access-flag fault is a
    ///   fault: the page-table code sets AF), S2PTW = 0 (only matters with
    ///   a stage 1), S2HA = S2HD = 0;
    /// - SHCFG = use incoming when IDR1.ATTR_TYPES_OVR (else RES0).
    pub fn s2(cfg: &S2Config, f: &Features) -> Result<Self, S2ConfigError> {
        cfg.validate(f)?;
        let w0 = STE0::V::SET + STE0::CONFIG::S2Trans;
        let w1 = if f.attr_types_ovr {
            STE1::SHCFG::Incoming.value
        } else {
            0
        };
        let (ir, or, sh) = if f.coherent { (1, 1, 3) } else { (0, 0, 2) };
        let w2 = STE2::S2VMID.val(cfg.vmid.into())
            + STE2::S2T0SZ.val(cfg.t0sz.into())
            + STE2::S2SL0.val(cfg.sl0.into())
            + STE2::S2IR0.val(ir)
            + STE2::S2OR0.val(or)
            + STE2::S2SH0.val(sh)
            + STE2::S2TG.val(cfg.tg.into())
            + STE2::S2PS.val(cfg.ps.into())
            + STE2::S2AA64::SET
            + STE2::S2R::SET;
        let w3 = STE3::S2TTB.val(cfg.ttb >> 4);
        Ok(Self([w0.value, w1, w2.value, w3.value, 0, 0, 0, 0]))
    }

    pub fn config(&self) -> SteConfig {
        if get(self.0[0], STE0::V) == 0 {
            return SteConfig::Invalid;
        }
        match get(self.0[0], STE0::CONFIG) {
            0 => SteConfig::Abort,
            4 => SteConfig::Bypass,
            5 => SteConfig::Stage1,
            6 => SteConfig::Stage2,
            7 => SteConfig::Nested,
            _ => SteConfig::Reserved,
        }
    }

    /// The stage-2 fields, if this is a stage-2 STE.
    pub fn s2_config(&self) -> Option<S2Config> {
        if self.config() != SteConfig::Stage2 {
            return None;
        }
        let w2 = self.0[2];
        Some(S2Config {
            vmid: get(w2, STE2::S2VMID) as u16,
            t0sz: get(w2, STE2::S2T0SZ) as u8,
            sl0: get(w2, STE2::S2SL0) as u8,
            tg: get(w2, STE2::S2TG) as u8,
            ps: get(w2, STE2::S2PS) as u8,
            ttb: get(self.0[3], STE3::S2TTB) << 4,
        })
    }

    /// Bits the SMMU interprets given word 0 (conservative: a translating
    /// or bypass STE is treated as using whole words).
    pub fn used_bits(&self) -> [u64; STE_WORDS] {
        let v = STE0::V::SET.value;
        let v_cfg = v | STE0::CONFIG.val(7).value;
        match self.config() {
            SteConfig::Invalid => [v, 0, 0, 0, 0, 0, 0, 0],
            SteConfig::Abort => [v_cfg, 0, 0, 0, 0, 0, 0, 0],
            SteConfig::Bypass => [v_cfg, u64::MAX, 0, 0, 0, 0, 0, 0],
            _ => [u64::MAX; STE_WORDS],
        }
    }

    /// Whether the SMMU would treat both entries identically.
    pub fn same_effect(&self, other: &Self) -> bool {
        let used = self.used_bits();
        used == other.used_bits() && (0..STE_WORDS).all(|i| (self.0[i] ^ other.0[i]) & used[i] == 0)
    }
}

impl fmt::Display for Ste {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.s2_config() {
            Some(c) => write!(
                f,
                "S2 vmid={} t0sz={} sl0={} tg={} ps={} ttb={:#x}",
                c.vmid, c.t0sz, c.sl0, c.tg, c.ps, c.ttb
            ),
            None => write!(f, "{:?} {:#x?}", self.config(), self.0),
        }
    }
}

/// Where an STE lives, as the update protocol needs it.
pub trait SteWriter {
    /// Current value of word `i` (0..8) in memory.
    fn read(&self, i: usize) -> u64;
    /// One aligned 64-bit store to word `i`.
    fn write(&mut self, i: usize, value: u64);
    /// Makes all writes so far visible to the SMMU, then CMD_CFGI_STE for
    /// this StreamID + CMD_SYNC, waiting for completion.
    fn sync(&mut self) -> Result<(), SmmuError>;
    /// Makes all writes so far visible to the SMMU (cache clean for a
    /// non-coherent SMMU) without invalidating anything.
    fn flush(&mut self);
}

/// What an update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteUpdate {
    pub syncs: u32,
    pub words_written: u32,
    /// False when traffic was aborted during the change (two or more used
    /// words had to change).
    pub hitless: bool,
}

fn write_words<W: SteWriter>(w: &mut W, words: &[u64; STE_WORDS], out: &mut SteUpdate) -> bool {
    let mut changed = false;
    for (i, &v) in words.iter().enumerate() {
        if w.read(i) != v {
            w.write(i, v);
            out.words_written += 1;
            changed = true;
        }
    }
    changed
}

fn sync<W: SteWriter>(w: &mut W, out: &mut SteUpdate) -> Result<(), SmmuError> {
    w.sync()?;
    out.syncs += 1;
    Ok(())
}

/// Changes the STE behind `w` to `target` so that every state the SMMU can
/// observe is the old configuration, the new one, or abort (see the module
/// comment). On error the entry is in one of those states.
pub fn write_ste<W: SteWriter>(w: &mut W, target: &Ste) -> Result<SteUpdate, SmmuError> {
    let cur = Ste(core::array::from_fn(|i| w.read(i)));
    let mut out = SteUpdate {
        hitless: true,
        ..SteUpdate::default()
    };
    if cur == *target {
        return Ok(out);
    }
    let cur_used = cur.used_bits();
    let tgt_used = target.used_bits();
    debug_assert!((0..STE_WORDS).all(|i| target.0[i] & !tgt_used[i] == 0));

    // Every bit the current configuration ignores can take its final value
    // right away; a word is critical if bits the target uses still differ.
    let mut unused_update = [0u64; STE_WORDS];
    let mut critical = 0u32;
    for i in 0..STE_WORDS {
        unused_update[i] = (cur.0[i] & cur_used[i]) | (target.0[i] & !cur_used[i]);
        if unused_update[i] & tgt_used[i] != target.0[i] {
            critical |= 1 << i;
        }
    }

    match critical.count_ones() {
        0 => {
            // Same V/Config (so same used bits) and equal used bits: only
            // ignored bits differ.
            write_words(&mut *w, &target.0, &mut out);
            w.flush();
        }
        1 => {
            let c = critical.trailing_zeros() as usize;
            unused_update[c] = cur.0[c];
            if write_words(&mut *w, &unused_update, &mut out) {
                sync(w, &mut out)?;
            }
            w.write(c, target.0[c]);
            out.words_written += 1;
            sync(w, &mut out)?;
            if write_words(&mut *w, &target.0, &mut out) {
                w.flush();
            }
        }
        _ => {
            out.hitless = false;
            w.write(0, Ste::ABORT.0[0]);
            out.words_written += 1;
            sync(w, &mut out)?;
            let mut rest = target.0;
            rest[0] = Ste::ABORT.0[0];
            if write_words(&mut *w, &rest, &mut out) {
                sync(w, &mut out)?;
            }
            w.write(0, target.0[0]);
            out.words_written += 1;
            sync(w, &mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smmu::features::IdRegs;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    fn qemu() -> Features {
        Features::decode(IdRegs {
            idr0: 0x0d44_101b,
            idr1: 0x0273_0010,
            idr3: 0x1414,
            idr5: 0x74,
            aidr: 1,
            ..IdRegs::default()
        })
    }

    /// 4K granule, 40-bit IPA starting at level 0, 44-bit PA (a QEMU-safe
    /// configuration: `docs/qemu.md`, defect 1).
    fn cfg(vmid: u16, ttb: u64) -> S2Config {
        S2Config {
            vmid,
            t0sz: 24,
            sl0: 2,
            tg: 0,
            ps: 4,
            ttb,
        }
    }

    #[test]
    fn s2_layout_matches_the_verified_qemu_ste() {
        let f = qemu();
        let ste = Ste::s2(&cfg(3, 0x4123_4000), &f).unwrap();
        // word0 = valid | Config = stage 2 (0xD); word2 = VMID | T0SZ<<32 |
        // SL0<<38 | IR0=1<<40 | OR0=1<<42 | SH0=3<<44 | TG<<46 | PS<<48 |
        // S2AA64<<51 | S2R<<58; word3 = table base.
        assert_eq!(ste.0[0], 0xd);
        assert_eq!(ste.0[1], 0);
        let w2 = 3
            | (24 << 32)
            | (2 << 38)
            | (1 << 40)
            | (1 << 42)
            | (3 << 44)
            | (4 << 48)
            | (1 << 51)
            | (1 << 58);
        assert_eq!(ste.0[2], w2);
        assert_eq!(ste.0[3], 0x4123_4000);
        assert_eq!(&ste.0[4..], &[0; 4]);
        assert_eq!(ste.config(), SteConfig::Stage2);
        assert_eq!(ste.s2_config(), Some(cfg(3, 0x4123_4000)));
        // Never emit S2AA64 = 0, never stall, never big-endian.
        assert_ne!(ste.0[2] & (1 << 51), 0);
        assert_eq!(ste.0[2] & ((1 << 52) | (1 << 57)), 0);
    }

    #[test]
    fn non_coherent_walks_are_non_cacheable() {
        let mut f = qemu();
        f.coherent = false;
        f.attr_types_ovr = true;
        let ste = Ste::s2(&cfg(1, 0x1000), &f).unwrap();
        assert_eq!((ste.0[2] >> 40) & 0x3f, 2 << 4); // IR0 = OR0 = NC, SH0 = OSH
        assert_eq!(ste.0[1], 1 << 44); // SHCFG = use incoming
    }

    #[test]
    fn validation() {
        let f = qemu();
        let ok = |c: S2Config| c.validate(&f);
        assert_eq!(ok(cfg(1, 0x1000)), Ok(()));
        // 39-bit IPA from level 1, 4K (the other QEMU-safe setup).
        assert_eq!(
            ok(S2Config {
                t0sz: 25,
                sl0: 1,
                ..cfg(1, 0x1000)
            }),
            Ok(())
        );
        // 40-bit from level 1: two concatenated tables, 8 KiB aligned.
        assert_eq!(
            ok(S2Config {
                sl0: 1,
                ..cfg(1, 0x2000)
            }),
            Ok(())
        );
        assert_eq!(
            ok(S2Config {
                sl0: 1,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::TtbMisaligned {
                ttb: 0x1000,
                align: 0x2000
            })
        );
        // 40-bit from level 2 needs 2^19 entries: impossible.
        assert_eq!(
            ok(S2Config {
                sl0: 0,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::TooManyConcatenatedTables)
        );
        // 39-bit from level 0 resolves nothing at level 0.
        assert!(matches!(
            ok(S2Config {
                t0sz: 25,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::BadStartLevel { .. })
        ));
        assert!(matches!(
            ok(S2Config {
                sl0: 3,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::BadStartLevel { .. })
        ));
        assert_eq!(
            ok(S2Config {
                tg: 3,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::BadGranule(3))
        );
        assert_eq!(
            ok(S2Config {
                ps: 7,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::BadPs(7))
        );
        assert_eq!(
            ok(S2Config {
                ps: 5,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::PsTooLarge {
                ps_bits: 48,
                oas_bits: 44
            })
        );
        // IPA wider than S2PS: QEMU rejects (t0sz >= 64 - eff_ps).
        assert_eq!(
            ok(S2Config {
                ps: 2,
                t0sz: 23,
                sl0: 2,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::T0szOutOfRange {
                t0sz: 23,
                min: 24,
                max: 39
            })
        );
        assert_eq!(
            ok(S2Config {
                t0sz: 40,
                sl0: 0,
                ..cfg(1, 0x1000)
            }),
            Err(S2ConfigError::T0szOutOfRange {
                t0sz: 40,
                min: 20,
                max: 39
            })
        );
        assert_eq!(
            ok(S2Config {
                ps: 2,
                ttb: 1 << 40,
                ..cfg(1, 0)
            }),
            Err(S2ConfigError::TtbOutOfRange(1 << 40))
        );
        // 64K granule, 42-bit IPA from level 2 (sl0 = 1): 16 + 13 = 29 bits
        // below, 13 index bits = one 64 KiB table.
        assert_eq!(
            ok(S2Config {
                tg: 1,
                t0sz: 22,
                sl0: 1,
                ..cfg(1, 0x1_0000)
            }),
            Ok(())
        );
        let mut narrow = f;
        narrow.vmid16 = false;
        assert_eq!(
            cfg(256, 0x1000).validate(&narrow),
            Err(S2ConfigError::VmidTooLarge(256))
        );
        narrow.gran16k = false;
        assert_eq!(
            S2Config {
                tg: 2,
                t0sz: 28,
                sl0: 1,
                ..cfg(1, 0x1000)
            }
            .validate(&narrow),
            Err(S2ConfigError::GranuleNotSupported(2))
        );
    }

    /// Records every 64-bit store and every sync, and after each store
    /// checks every entry the SMMU could assemble from the words it may have
    /// read since the last sync (a fetch is not atomic across words).
    struct Recorder {
        mem: [u64; STE_WORDS],
        old: Ste,
        new: Ste,
        /// Distinct values each word has had since the last sync.
        window: [BTreeSet<u64>; STE_WORDS],
        syncs: u32,
        stores: Vec<(usize, u64)>,
        flushes: u32,
    }

    impl Recorder {
        fn new(old: Ste, new: Ste) -> Self {
            let mut r = Self {
                mem: old.0,
                old,
                new,
                window: Default::default(),
                syncs: 0,
                stores: Vec::new(),
                flushes: 0,
            };
            r.reset_window();
            r
        }

        fn reset_window(&mut self) {
            for i in 0..STE_WORDS {
                self.window[i] = BTreeSet::from([self.mem[i]]);
            }
        }

        fn audit(&self) {
            let choices: Vec<Vec<u64>> = self
                .window
                .iter()
                .map(|s| s.iter().copied().collect())
                .collect();
            let total: usize = choices.iter().map(Vec::len).product();
            assert!(total <= 1 << 12, "window too wide to enumerate");
            for mut k in 0..total {
                let mut ste = [0u64; STE_WORDS];
                for i in 0..STE_WORDS {
                    ste[i] = choices[i][k % choices[i].len()];
                    k /= choices[i].len();
                }
                let seen = Ste(ste);
                assert!(
                    seen.same_effect(&self.old)
                        || seen.same_effect(&self.new)
                        || seen.same_effect(&Ste::ABORT),
                    "SMMU could observe {seen:x?}\n old {:x?}\n new {:x?}\n stores {:x?}",
                    self.old,
                    self.new,
                    self.stores
                );
            }
        }
    }

    impl SteWriter for Recorder {
        fn read(&self, i: usize) -> u64 {
            self.mem[i]
        }
        fn write(&mut self, i: usize, value: u64) {
            self.mem[i] = value;
            self.stores.push((i, value));
            self.window[i].insert(value);
            self.audit();
        }
        fn sync(&mut self) -> Result<(), SmmuError> {
            self.syncs += 1;
            self.reset_window();
            Ok(())
        }
        fn flush(&mut self) {
            self.flushes += 1;
        }
    }

    fn transition(old: Ste, new: Ste) -> (SteUpdate, Recorder) {
        let mut r = Recorder::new(old, new);
        let u = write_ste(&mut r, &new).unwrap();
        assert_eq!(r.mem, new.0, "final entry");
        assert_eq!(u.syncs, r.syncs);
        (u, r)
    }

    #[test]
    fn abort_to_s2_takes_two_syncs() {
        let s2 = Ste::s2(&cfg(1, 0x1000), &qemu()).unwrap();
        let (u, r) = transition(Ste::ABORT, s2);
        assert_eq!(u.syncs, 2);
        assert!(u.hitless);
        // Word 0 is written last.
        assert_eq!(r.stores.last().map(|s| s.0), Some(0));
    }

    #[test]
    fn invalid_to_s2_takes_two_syncs() {
        let s2 = Ste::s2(&cfg(1, 0x1000), &qemu()).unwrap();
        assert_eq!(transition(Ste::INVALID, s2).0.syncs, 2);
    }

    #[test]
    fn s2_to_abort_takes_one_sync_and_tidies_without_one() {
        let s2 = Ste::s2(&cfg(1, 0x1000), &qemu()).unwrap();
        let (u, r) = transition(s2, Ste::ABORT);
        assert_eq!(u.syncs, 1);
        // Word 0 first, then the ignored words cleared and cleaned.
        assert_eq!(r.stores.first(), Some(&(0, 1)));
        assert_eq!(r.flushes, 1);
    }

    #[test]
    fn s2_to_other_domain_breaks_through_abort_with_three_syncs() {
        let f = qemu();
        let a = Ste::s2(&cfg(1, 0x1000), &f).unwrap();
        let b = Ste::s2(&cfg(2, 0x5000), &f).unwrap();
        let (u, r) = transition(a, b);
        assert_eq!(u.syncs, 3);
        assert!(!u.hitless);
        assert_eq!(r.stores.first(), Some(&(0, 1)));
    }

    #[test]
    fn s2_vmid_only_change_is_hitless_with_one_sync() {
        let f = qemu();
        let a = Ste::s2(&cfg(1, 0x1000), &f).unwrap();
        let b = Ste::s2(&cfg(9, 0x1000), &f).unwrap();
        let (u, r) = transition(a, b);
        assert_eq!(u.syncs, 1);
        assert!(u.hitless);
        assert_eq!(r.stores.len(), 1);
    }

    #[test]
    fn no_change_no_sync() {
        let s2 = Ste::s2(&cfg(1, 0x1000), &qemu()).unwrap();
        assert_eq!(
            transition(s2, s2).0,
            SteUpdate {
                syncs: 0,
                words_written: 0,
                hitless: true
            }
        );
    }

    #[test]
    fn garbage_in_ignored_words_is_cleaned_up() {
        // An abort entry with junk in words the SMMU ignores: no sync needed.
        let mut dirty = Ste::ABORT;
        dirty.0[5] = 0xdead;
        let (u, r) = transition(dirty, Ste::ABORT);
        assert_eq!(u.syncs, 0);
        assert_eq!(r.flushes, 1);
    }

    #[test]
    fn the_audit_catches_a_naive_writer() {
        // Writing words in index order without syncs exposes a torn entry.
        let f = qemu();
        let a = Ste::s2(&cfg(1, 0x1000), &f).unwrap();
        let b = Ste::s2(&cfg(2, 0x5000), &f).unwrap();
        let result = std::panic::catch_unwind(|| {
            let mut r = Recorder::new(a, b);
            for i in 0..STE_WORDS {
                r.write(i, b.0[i]);
            }
        });
        assert!(result.is_err());
    }
}

//! Stage-2 translation configuration: granule, IPA size, output size, start
//! level and root-table concatenation, plus the STE fields that describe it.
//!
//! The rules are those of the Arm ARM pseudocode `AArch64.S2InvalidSL` and
//! `AArch64.S2InconsistentSL` (without FEAT_LPA2 / FEAT_TTST / 52-bit PA):
//!
//! * a table at level `l` resolves `stride = granule_shift - 3` bits; the
//!   lowest IPA bit it resolves is `shift(l) = granule_shift + (3 - l) * stride`;
//! * the start level must resolve at least 1 and at most `stride + 4` bits of
//!   the IPA. More than `stride` bits means `2^(bits - stride)` tables
//!   concatenated into one physically contiguous, size-aligned root (at most
//!   16);
//! * start levels: 4K {0, 1, 2}, 16K {1, 2, 3}, 64K {1, 2, 3}. Level 0 with
//!   16K needs FEAT_LPA2 and level 3 with 4K needs FEAT_TTST: not supported;
//! * PAMax restrictions (`S2InvalidSL`): 4K starting at level 0 and 64K
//!   starting at level 1 need an output size of at least 44 bits, 16K
//!   starting at level 1 at least 42 bits. The SMMU's OAS plays PAMax here.
//!
//! Several start levels are often legal for one IPA size (4K, 40 bits: level
//! 0 with 2 entries, or level 1 with 2 concatenated tables); the caller
//! chooses through [`StartLevelPolicy`]. QEMU 10 walks concatenated roots
//! wrongly (see `docs/pgtable.md`), so the QEMU board uses
//! [`StartLevelPolicy::NoConcatenation`].

use super::error::Error;

/// Smallest IPA size supported, in bits.
pub const MIN_IPA_BITS: u32 = 32;
/// Largest IPA size supported, in bits (52-bit IPAs need FEAT_LPA/LPA2).
pub const MAX_IPA_BITS: u32 = 48;
/// Most tables the architecture allows to concatenate at the start level.
pub const MAX_CONCATENATED: usize = 16;

/// Translation granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granule {
    /// 4 KiB pages, 2 MiB and 1 GiB blocks.
    Size4K,
    /// 16 KiB pages, 32 MiB blocks.
    Size16K,
    /// 64 KiB pages, 512 MiB blocks.
    Size64K,
}

impl Granule {
    /// All granules, for tests and probing.
    pub const ALL: [Granule; 3] = [Granule::Size4K, Granule::Size16K, Granule::Size64K];

    /// log2 of the granule size.
    pub const fn shift(self) -> u32 {
        match self {
            Granule::Size4K => 12,
            Granule::Size16K => 14,
            Granule::Size64K => 16,
        }
    }

    /// Granule size in bytes (also the size of every non-root table).
    pub const fn size(self) -> u64 {
        1 << self.shift()
    }

    /// IPA bits resolved by one full table.
    pub const fn stride(self) -> u32 {
        self.shift() - 3
    }

    /// Descriptors in one granule-sized table.
    pub const fn entries(self) -> usize {
        1 << self.stride()
    }

    /// `STE.S2TG` / `VTCR_EL2.TG0` encoding.
    pub const fn s2tg(self) -> u8 {
        match self {
            Granule::Size4K => 0b00,
            Granule::Size16K => 0b10,
            Granule::Size64K => 0b01,
        }
    }

    /// `TG` field of a range TLBI command (`CMD_TLBI_S2_IPA` with RIL).
    /// Note that it differs from [`s2tg`](Self::s2tg).
    pub const fn tlbi_tg(self) -> u8 {
        match self {
            Granule::Size4K => 1,
            Granule::Size16K => 2,
            Granule::Size64K => 3,
        }
    }

    /// Whether a leaf (block or page) descriptor is legal at `level`
    /// (`AArch64.BlockDescSupported` without LPA2 / 52-bit PA).
    pub const fn leaf_allowed(self, level: u32) -> bool {
        matches!(
            (self, level),
            (_, 3) | (Granule::Size4K, 1 | 2) | (Granule::Size16K | Granule::Size64K, 2)
        )
    }

    /// Lowest start level supported with this granule.
    const fn min_start_level(self) -> u32 {
        match self {
            Granule::Size4K => 0,
            Granule::Size16K | Granule::Size64K => 1,
        }
    }

    /// Highest start level supported with this granule.
    const fn max_start_level(self) -> u32 {
        match self {
            Granule::Size4K => 2,
            Granule::Size16K | Granule::Size64K => 3,
        }
    }

    /// Lowest IPA bit resolved by a table at `level`: entries at `level`
    /// each map `1 << level_shift(level)` bytes.
    pub const fn level_shift(self, level: u32) -> u32 {
        self.shift() + (3 - level) * self.stride()
    }
}

/// How [`Config::new`] picks the start level when several are legal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLevelPolicy {
    /// The deepest legal start level: fewest walk levels, concatenating up to
    /// 16 root tables when that saves a level (what KVM does).
    FewestLevels,
    /// The deepest legal start level that needs no concatenation.
    /// [`Error::BadConfig`] if every legal start level concatenates
    /// (see [`Config::requires_concatenation`]).
    NoConcatenation,
    /// Exactly this level, if legal.
    Level(u8),
}

/// A validated stage-2 configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    granule: Granule,
    ipa_bits: u8,
    oas_bits: u8,
    start_level: u8,
}

/// `STE.S2PS` encoding of a supported output size, or `None`.
const fn ps_encoding(oas_bits: u32) -> Option<u8> {
    match oas_bits {
        32 => Some(0b000),
        36 => Some(0b001),
        40 => Some(0b010),
        42 => Some(0b011),
        44 => Some(0b100),
        48 => Some(0b101),
        _ => None,
    }
}

impl Config {
    /// Validates `granule`, `ipa_bits` (32..=48), `oas_bits` (32, 36, 40,
    /// 42, 44 or 48: the SMMU's `IDR5.OAS`) and picks a start level.
    pub fn new(
        granule: Granule,
        ipa_bits: u32,
        oas_bits: u32,
        policy: StartLevelPolicy,
    ) -> Result<Config, Error> {
        if !(MIN_IPA_BITS..=MAX_IPA_BITS).contains(&ipa_bits) || ps_encoding(oas_bits).is_none() {
            return Err(Error::BadConfig);
        }
        let legal = |l: u32| Self::start_level_legal(granule, ipa_bits, oas_bits, l);
        let concatenates = |l: u32| ipa_bits - granule.level_shift(l) > granule.stride();
        let levels = granule.min_start_level()..=granule.max_start_level();
        let level = match policy {
            StartLevelPolicy::FewestLevels => levels.rev().find(|&l| legal(l)),
            StartLevelPolicy::NoConcatenation => {
                levels.rev().find(|&l| legal(l) && !concatenates(l))
            }
            StartLevelPolicy::Level(l) => Some(u32::from(l)).filter(|&l| legal(l)),
        }
        .ok_or(Error::BadConfig)?;
        Ok(Config {
            granule,
            ipa_bits: ipa_bits as u8,
            oas_bits: oas_bits as u8,
            start_level: level as u8,
        })
    }

    /// Whether the architecture allows a stage-2 walk of `ipa_bits` to start
    /// at `level` with this granule and output size (see the module docs).
    pub fn start_level_legal(granule: Granule, ipa_bits: u32, oas_bits: u32, level: u32) -> bool {
        if level < granule.min_start_level() || level > granule.max_start_level() {
            return false;
        }
        let pamax_ok = match (granule, level) {
            (Granule::Size4K, 0) | (Granule::Size64K, 1) => oas_bits >= 44,
            (Granule::Size16K, 1) => oas_bits >= 42,
            _ => true,
        };
        let shift = granule.level_shift(level);
        pamax_ok && ipa_bits > shift && ipa_bits - shift <= granule.stride() + 4
    }

    /// Whether every legal start level for this combination concatenates
    /// root tables (so a board that must avoid concatenation cannot use it).
    /// With OAS = 48 that is only 16K with a 48-bit IPA; smaller output sizes
    /// add 4K with 40..=43 bits (OAS < 44), 64K with 43..=46 bits (OAS < 44),
    /// and 16K with 37..=40 bits (OAS < 42).
    pub fn requires_concatenation(granule: Granule, ipa_bits: u32, oas_bits: u32) -> bool {
        let any = |no_concat: bool| {
            (granule.min_start_level()..=granule.max_start_level()).any(|l| {
                Self::start_level_legal(granule, ipa_bits, oas_bits, l)
                    && (!no_concat || ipa_bits - granule.level_shift(l) <= granule.stride())
            })
        };
        any(false) && !any(true)
    }

    /// The translation granule.
    pub const fn granule(&self) -> Granule {
        self.granule
    }

    /// IPA (input) size in bits.
    pub const fn ipa_bits(&self) -> u32 {
        self.ipa_bits as u32
    }

    /// Output (physical) address size in bits.
    pub const fn oas_bits(&self) -> u32 {
        self.oas_bits as u32
    }

    /// Level of the root table.
    pub const fn start_level(&self) -> u32 {
        self.start_level as u32
    }

    /// Number of levels walked.
    pub const fn levels(&self) -> u32 {
        4 - self.start_level as u32
    }

    /// Descriptors in the root (all concatenated tables together).
    pub const fn root_entries(&self) -> usize {
        1 << (self.ipa_bits() - self.granule.level_shift(self.start_level()))
    }

    /// Number of concatenated tables forming the root (1 = none).
    pub const fn concatenated_tables(&self) -> usize {
        let n = self.root_entries() / self.granule.entries();
        if n == 0 { 1 } else { n }
    }

    /// Bytes allocated for the root: one granule, or the concatenated
    /// tables (the root must be aligned to this size).
    pub const fn root_size(&self) -> u64 {
        self.granule.size() * self.concatenated_tables() as u64
    }

    /// `STE.S2T0SZ` (= `VTCR_EL2.T0SZ`): 64 - IPA bits.
    pub const fn s2t0sz(&self) -> u8 {
        64 - self.ipa_bits
    }

    /// `STE.S2SL0` (= `VTCR_EL2.SL0`) encoding of the start level. Its
    /// meaning depends on the granule: 4K counts from level 2, 16K and 64K
    /// from level 3.
    pub const fn s2sl0(&self) -> u8 {
        match self.granule {
            Granule::Size4K => 2 - self.start_level,
            Granule::Size16K | Granule::Size64K => 3 - self.start_level,
        }
    }

    /// `STE.S2TG` encoding.
    pub const fn s2tg(&self) -> u8 {
        self.granule.s2tg()
    }

    /// `STE.S2PS` encoding of the output size.
    pub const fn s2ps(&self) -> u8 {
        match ps_encoding(self.oas_bits as u32) {
            Some(ps) => ps,
            None => unreachable!(),
        }
    }

    /// Bitmap of the leaf sizes this configuration can map (Linux's
    /// `pgsize_bitmap`): the page size plus every block size at or below
    /// the start level.
    pub const fn leaf_sizes(&self) -> u64 {
        let mut bitmap = 0;
        let mut level = self.start_level();
        while level <= 3 {
            if self.granule.leaf_allowed(level) {
                bitmap |= 1 << self.granule.level_shift(level);
            }
            level += 1;
        }
        bitmap
    }
}

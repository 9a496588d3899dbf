//! The stream table: one STE per StreamID, linear or 2-level.
//!
//! - Linear (`STRTAB_BASE_CFG.FMT = 0`): 2^sid_bits STEs, the table aligned
//!   to its size. Used when the SMMU has no 2-level support or when the
//!   StreamID space is small (`Budget::linear_max_sid_bits`, default 8 bits
//!   = 256 STEs = 16 KiB). Every STE starts as abort.
//! - 2-level (`FMT = 1`, SPLIT = 8 as in Linux): a level-1 table of
//!   2^(sid_bits - 8) descriptors, aligned to its size, each covering 256
//!   StreamIDs with a 16 KiB level-2 table allocated on first attach. A
//!   level-1 descriptor with SPAN = 0 is invalid: traffic from those
//!   StreamIDs is terminated and recorded as C_BAD_STREAMID (the same
//!   outcome as a StreamID beyond the table), so "no domain" means "abort"
//!   in both formats. A new level-2 table is filled with abort STEs before
//!   its descriptor is published; the caller then issues
//!   CMD_CFGI_STE_RANGE over its 256 StreamIDs + CMD_SYNC, in case the SMMU
//!   cached the invalid descriptor.
//!
//! Level-2 tables are tracked in a fixed array of [`MAX_L2_TABLES`] slots
//! (no allocator): the 2-level format lets a sparse StreamID space cost
//! memory only where devices are.

use core::fmt;

use tock_registers::register_bitfields;

use super::dma::{DmaMemory, DmaRegion, dma_wmb};
use super::error::SmmuError;
use super::hw::Hw;
use super::poll::Clock;
use super::regs::{STRTAB_BASE, STRTAB_BASE_CFG, SmmuRegs};
use super::ste::{STE_BYTES, Ste};

register_bitfields![u64,
    /// Level-1 stream table descriptor.
    pub L1STD [
        /// 0 = invalid; else the level-2 table holds 2^(SPAN-1) STEs.
        SPAN OFFSET(0) NUMBITS(5) [],
        L2PTR OFFSET(6) NUMBITS(46) []
    ]
];

/// StreamID bits resolved by a level-2 table (Linux uses 8 too: one PCI
/// bus per table).
pub const SPLIT: u8 = 8;
/// Level-2 tables the driver can track.
pub const MAX_L2_TABLES: usize = 64;
const L2_STES: usize = 1 << SPLIT;
const L2_BYTES: usize = L2_STES * STE_BYTES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTableFormat {
    Linear,
    TwoLevel { split: u8 },
}

impl fmt::Display for StreamTableFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Linear => f.write_str("linear"),
            Self::TwoLevel { split } => write!(f, "2-level (split {split})"),
        }
    }
}

struct L2Table {
    l1_index: u32,
    region: DmaRegion,
}

pub struct StreamTable {
    format: StreamTableFormat,
    sid_bits: u8,
    /// The linear table, or the level-1 table.
    base: DmaRegion,
    l2: [Option<L2Table>; MAX_L2_TABLES],
}

/// Writes abort STEs into `count` consecutive entries.
fn fill_abort(region: &DmaRegion, count: usize) {
    for i in 0..count {
        for (w, value) in Ste::ABORT.0.iter().enumerate() {
            region.write_u64(i * STE_BYTES + w * 8, *value);
        }
    }
}

impl StreamTable {
    /// Allocates the table for `sid_bits` StreamIDs. All StreamIDs abort.
    pub(crate) fn new<R, M, C>(
        hw: &Hw<'_, R, M, C>,
        sid_bits: u8,
        two_level: bool,
    ) -> Result<Self, SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let (format, base) = if two_level && sid_bits > SPLIT {
            let bytes = (8usize << (sid_bits - SPLIT)).max(64);
            let base = hw.alloc(bytes, bytes)?;
            // Zeroed memory is SPAN = 0 everywhere: all invalid.
            hw.clean(&base, 0, bytes);
            (StreamTableFormat::TwoLevel { split: SPLIT }, base)
        } else {
            let count = 1usize << sid_bits;
            let bytes = count * STE_BYTES;
            let base = hw.alloc(bytes, bytes)?;
            fill_abort(&base, count);
            hw.clean(&base, 0, bytes);
            (StreamTableFormat::Linear, base)
        };
        Ok(Self {
            format,
            sid_bits,
            base,
            l2: [const { None }; MAX_L2_TABLES],
        })
    }

    pub fn format(&self) -> StreamTableFormat {
        self.format
    }

    pub fn sid_bits(&self) -> u8 {
        self.sid_bits
    }

    /// StreamIDs below this value are covered.
    pub fn sid_limit(&self) -> u64 {
        1u64 << self.sid_bits
    }

    /// Level-2 tables allocated so far.
    pub fn l2_tables(&self) -> usize {
        self.l2.iter().flatten().count()
    }

    /// SMMU_STRTAB_BASE value (with the read-allocate hint).
    pub fn strtab_base(&self) -> u64 {
        (STRTAB_BASE::RA::SET + STRTAB_BASE::ADDR.val(self.base.pa() >> 6)).value
    }

    /// SMMU_STRTAB_BASE_CFG value.
    pub fn strtab_base_cfg(&self) -> u32 {
        let log2 = STRTAB_BASE_CFG::LOG2SIZE.val(self.sid_bits.into());
        match self.format {
            StreamTableFormat::Linear => (STRTAB_BASE_CFG::FMT::Linear + log2).value,
            StreamTableFormat::TwoLevel { split } => {
                (STRTAB_BASE_CFG::FMT::TwoLevel + STRTAB_BASE_CFG::SPLIT.val(split.into()) + log2)
                    .value
            }
        }
    }

    fn l1_index(sid: u32) -> u32 {
        sid >> SPLIT
    }

    fn find_l2(&self, l1_index: u32) -> Option<&L2Table> {
        self.l2.iter().flatten().find(|t| t.l1_index == l1_index)
    }

    /// Where the STE of `sid` lives: `None` if `sid` is in a level-2 range
    /// that has no table yet (the caller range-checks `sid`).
    pub(crate) fn ste_location(&self, sid: u32) -> Option<(&DmaRegion, usize)> {
        debug_assert!(u64::from(sid) < self.sid_limit());
        match self.format {
            StreamTableFormat::Linear => Some((&self.base, sid as usize * STE_BYTES)),
            StreamTableFormat::TwoLevel { .. } => self
                .find_l2(Self::l1_index(sid))
                .map(|t| (&t.region, (sid as usize % L2_STES) * STE_BYTES)),
        }
    }

    /// Reads the STE of `sid` (`None`: no level-2 table, traffic aborts).
    pub fn read_ste(&self, sid: u32) -> Option<Ste> {
        self.ste_location(sid)
            .map(|(region, off)| Ste(core::array::from_fn(|w| region.read_u64(off + w * 8))))
    }

    /// Makes sure the level-2 table for `sid` exists. Returns `Some(first
    /// StreamID, CFGI range)` when a table was just published, which the
    /// caller must invalidate (CMD_CFGI_STE_RANGE + CMD_SYNC).
    pub(crate) fn ensure_l2<R, M, C>(
        &mut self,
        hw: &Hw<'_, R, M, C>,
        sid: u32,
    ) -> Result<Option<(u32, u8)>, SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        if self.format == StreamTableFormat::Linear {
            return Ok(None);
        }
        let l1_index = Self::l1_index(sid);
        if self.find_l2(l1_index).is_some() {
            return Ok(None);
        }
        let slot = self
            .l2
            .iter()
            .position(Option::is_none)
            .ok_or(SmmuError::TooManyL2Tables)?;
        let region = hw.alloc(L2_BYTES, L2_BYTES)?;
        fill_abort(&region, L2_STES);
        hw.clean(&region, 0, L2_BYTES);
        // The SMMU must see abort STEs before it can find the table.
        dma_wmb();
        let desc =
            (L1STD::SPAN.val(u64::from(SPLIT) + 1) + L1STD::L2PTR.val(region.pa() >> 6)).value;
        let off = l1_index as usize * 8;
        self.base.write_u64(off, desc);
        hw.clean(&self.base, off, 8);
        self.l2[slot] = Some(L2Table { l1_index, region });
        Ok(Some((l1_index << SPLIT, SPLIT - 1)))
    }

    /// Gives every region back (probe failure paths only).
    pub(crate) fn into_regions(self, mut f: impl FnMut(DmaRegion)) {
        for t in self.l2.into_iter().flatten() {
            f(t.region);
        }
        f(self.base);
    }
}

//! The invalidation gather: what an operation needs invalidated, as data.
//!
//! `unmap` records, for every run of leaves it cleared, an IPA range with
//! the leaf level (the TTL hint) and whether walk-cache entries must go too
//! (`leaf = false`, needed whenever a table was freed). It also collects the
//! freed tables: single tables in a free list threaded through their first
//! descriptor, whole subtrees (up to [`SUBTREE_CAPACITY`]) by their root, so
//! their pages are not even touched before the sync. The SMMU driver turns the gather into
//! commands through [`Gather::invalidations`] (or lets
//! [`PageTable::flush`](super::PageTable::flush) do it through
//! [`TlbMaintenance`]), issues **one** `CMD_SYNC`, and only then are the
//! tables released.
//!
//! Encodings:
//!
//! * without range invalidation (`SMMU_IDR3.RIL` = 0): one
//!   [`Invalidation::Page`] per leaf (per page inside a range whose leaf
//!   level is unknown), never more than one per page. When that would be
//!   [`PER_PAGE_LIMIT`] (512) commands or more, a single
//!   [`Invalidation::VmidAll`] replaces them: the same threshold as Linux's
//!   `CMDQ_MAX_TLBI_OPS`, adopted after per-page floods caused multi-second
//!   lockups (CVE-2023-52484). 512 also matches "one full 4K level-3 table".
//! * with RIL: each range becomes [`Invalidation::Range`] commands, 5 bits
//!   of the page count per command (the `NUM` field), so a range of `n`
//!   pages takes at most `ceil((floor(log2 n) + 1) / 5)` commands, well
//!   within `ceil(log2 n) + 1`. A command with `TTL = 0`, `SCALE = 0` and
//!   `NUM = 0` is illegal on SMMUv3, so such a range is widened by one page
//!   (downwards when possible); over-invalidating is always safe.
//!
//! TTL hints: leaf ranges whose leaves all sit at one level carry that level
//! (1, 2 or 3); anything else, and every non-leaf invalidation, carries 0
//! ("no hint"), because a non-leaf TTL would restrict which walk-cache
//! levels are hit. With RIL the hint is part of the range command; without
//! RIL `TTL` is RES0 on SMMUv3 and the driver must ignore it.
//!
//! The gather holds at most [`GATHER_CAPACITY`] ranges and never allocates.
//! Contiguous runs merge; when the array is full the new range is folded
//! into the last one (covering the gap, leaf flag and-ed, level hint
//! dropped when different): strictly more is invalidated, never less.

use super::config::Config;
use super::memory::PhysAddr;

/// Ranges kept before folding.
pub const GATHER_CAPACITY: usize = 32;

/// Without RIL, this many per-page commands or more collapse into one
/// VMID-wide invalidation.
pub const PER_PAGE_LIMIT: u64 = 512;

/// Whole subtrees a gather keeps by their root; more are threaded into the
/// free list table by table.
pub const SUBTREE_CAPACITY: usize = 8;

/// `level` of a range whose leaves are not all at one level.
pub const LEVEL_MIXED: u8 = 0xff;

/// One invalidation command for the stage-2 VMID of this table (the driver
/// adds the VMID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// `CMD_TLBI_S2_IPA` without range (`TG` = 0): removes cached entries
    /// translating `ipa`; with `leaf = false` also walk-cache entries on its
    /// path. `ttl` is a hint usable only by an SMMU with RIL (see module
    /// docs); 0 = none.
    Page {
        /// Address inside the leaf to invalidate.
        ipa: u64,
        /// Only leaf entries need to go (`Leaf` = 1).
        leaf: bool,
        /// Level of the leaf (1-3) or 0.
        ttl: u8,
    },
    /// `CMD_TLBI_S2_IPA` with range: `(num + 1) << scale` pages of the
    /// granule given by `tg` from `base`.
    Range {
        /// First address of the range.
        base: u64,
        /// Granule: 1 = 4K, 2 = 16K, 3 = 64K.
        tg: u8,
        /// `SCALE` field (0..=31).
        scale: u8,
        /// `NUM` field (0..=31): `NUM + 1` chunks of `2^SCALE` pages.
        num: u8,
        /// Level of every leaf in the range (1-3) or 0.
        ttl: u8,
        /// Only leaf entries need to go.
        leaf: bool,
    },
    /// `CMD_TLBI_S12_VMALL`: everything for the VMID.
    VmidAll,
}

impl Invalidation {
    /// IPA range `[start, end)` whose cached entries this command reaches
    /// (`Page` reaches the entry covering its address). `granule_shift` is
    /// the table's granule; used by the auditor and tests.
    pub fn span(&self, granule_shift: u32) -> (u64, u64) {
        match *self {
            Invalidation::Page { ipa, .. } => (ipa, ipa + 1),
            Invalidation::Range {
                base, scale, num, ..
            } => (
                base,
                base.saturating_add((u64::from(num) + 1) << scale << granule_shift),
            ),
            Invalidation::VmidAll => (0, u64::MAX),
        }
    }
}

/// A recorded range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Level of every leaf in the range, or [`LEVEL_MIXED`].
    pub level: u8,
    /// Only leaf entries need to go.
    pub leaf: bool,
}

const EMPTY: InvRange = InvRange {
    start: 0,
    end: 0,
    level: LEVEL_MIXED,
    leaf: true,
};

/// Invalidations and tables to free, accumulated by `unmap`.
#[derive(Clone, Debug)]
pub struct Gather {
    ranges: [InvRange; GATHER_CAPACITY],
    len: usize,
    vmid_all: bool,
    /// Hull of every range and freed-table span: `map` must not write there
    /// before the sync (see [`Gather::intersects`]).
    hull: (u64, u64),
    granule_shift: u32,
    stride: u32,
    tg: u8,
    /// Freed tables form a list threaded through their first descriptor.
    /// Those pages are unreachable from the root, and a page address has
    /// bit 0 clear, so the link reads as an invalid descriptor to a walker
    /// still holding a stale pointer to the page.
    pub(crate) free_head: PhysAddr,
    pub(crate) free_count: usize,
    /// Whole subtrees unlinked by `unmap`, as (root, level, occupancy):
    /// released after the sync by walking them, so their pages are not
    /// touched before.
    pub(crate) subtrees: [(PhysAddr, u8, u16); SUBTREE_CAPACITY],
    pub(crate) subtree_count: usize,
    pub(crate) subtree_tables: usize,
}

impl Gather {
    /// An empty gather for tables of `cfg`.
    pub fn new(cfg: &Config) -> Gather {
        Gather {
            ranges: [EMPTY; GATHER_CAPACITY],
            len: 0,
            vmid_all: false,
            hull: (u64::MAX, 0),
            granule_shift: cfg.granule().shift(),
            stride: cfg.granule().stride(),
            tg: cfg.granule().tlbi_tg(),
            free_head: 0,
            free_count: 0,
            subtrees: [(0, 0, 0); SUBTREE_CAPACITY],
            subtree_count: 0,
            subtree_tables: 0,
        }
    }

    /// Nothing to invalidate and nothing to free.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.vmid_all && self.free_count == 0 && self.subtree_count == 0
    }

    /// Number of `CMD_SYNC`s the gather needs: 1 if anything is pending,
    /// else 0. Never more: all commands go before a single sync.
    pub fn syncs(&self) -> usize {
        usize::from(!self.is_empty())
    }

    /// The recorded ranges.
    pub fn ranges(&self) -> &[InvRange] {
        &self.ranges[..self.len]
    }

    /// Whether a VMID-wide invalidation was requested explicitly.
    pub fn is_vmid_all(&self) -> bool {
        self.vmid_all
    }

    /// Tables waiting to be freed after the sync.
    pub fn freed_tables(&self) -> usize {
        self.free_count + self.subtree_tables
    }

    /// Whether `[start, end)` touches anything pending: a range to
    /// invalidate or the span of a table removed by the pending unmaps.
    /// Conservative (uses the hull).
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        self.vmid_all || (start < self.hull.1 && end > self.hull.0)
    }

    /// The commands, in order, for an SMMU with (`ril = true`) or without
    /// range invalidation. Allocation-free.
    pub fn invalidations(&self, ril: bool) -> Invalidations<'_> {
        let mut it = Invalidations {
            ranges: self.ranges(),
            mode: Mode::Done,
            idx: 0,
            addr: 0,
            end: 0,
            step: 0,
            pages: 0,
            ttl: 0,
            leaf: false,
            granule_shift: self.granule_shift,
            stride: self.stride,
            tg: self.tg,
        };
        if self.vmid_all {
            it.mode = Mode::VmidAll;
        } else if self.len == 0 {
            it.mode = Mode::Done;
        } else if ril {
            it.mode = Mode::Range;
            it.load(0);
        } else {
            let per_page: u64 = self
                .ranges()
                .iter()
                .map(|r| (r.end - r.start).div_ceil(1 << it.step_shift(r)))
                .sum();
            if per_page >= PER_PAGE_LIMIT {
                it.mode = Mode::VmidAll;
            } else {
                it.mode = Mode::PerPage;
                it.load(0);
            }
        }
        it
    }

    /// Calls `f` with each command [`invalidations`](Self::invalidations)
    /// would yield, in the same order, without the iterator's state machine
    /// (what [`PageTable::flush`](super::PageTable::flush) uses).
    pub fn for_each_invalidation<F: FnMut(Invalidation)>(&self, ril: bool, mut f: F) {
        if self.vmid_all {
            return f(Invalidation::VmidAll);
        }
        let granule = 1u64 << self.granule_shift;
        if !ril {
            let step_shift = |r: &InvRange| {
                if r.level == LEVEL_MIXED {
                    self.granule_shift
                } else {
                    self.granule_shift + (3 - u32::from(r.level)) * self.stride
                }
            };
            let per_page: u64 = self
                .ranges()
                .iter()
                .map(|r| (r.end - r.start).div_ceil(1 << step_shift(r)))
                .sum();
            if per_page >= PER_PAGE_LIMIT {
                return f(Invalidation::VmidAll);
            }
            for r in self.ranges() {
                let ttl = Invalidations::ttl_of(r);
                let step = 1 << step_shift(r);
                let mut ipa = r.start;
                while ipa < r.end {
                    f(Invalidation::Page {
                        ipa,
                        leaf: r.leaf,
                        ttl,
                    });
                    ipa += step;
                }
            }
            return;
        }
        for r in self.ranges() {
            let ttl = Invalidations::ttl_of(r);
            let mut base = r.start;
            let mut pages = (r.end - r.start).div_ceil(granule);
            if ttl == 0 && pages & 0x1f == 1 {
                if base >= granule {
                    base -= granule;
                }
                pages += 1;
            }
            while pages > 0 {
                let (scale, num) = range_chunk(pages);
                f(Invalidation::Range {
                    base,
                    tg: self.tg,
                    scale: scale as u8,
                    num: (num - 1) as u8,
                    ttl,
                    leaf: r.leaf,
                });
                base = base.saturating_add(num << (scale + self.granule_shift));
                pages -= num << scale;
            }
        }
    }

    /// Number of commands [`invalidations`](Self::invalidations) yields.
    pub fn command_count(&self, ril: bool) -> usize {
        self.invalidations(ril).count()
    }

    /// Records that cached translations for `[start, end)` must go. `level`
    /// is the level of every leaf in it (or [`LEVEL_MIXED`]), `leaf = false`
    /// asks for walk-cache entries too.
    pub(crate) fn add(&mut self, start: u64, end: u64, level: u8, leaf: bool) {
        debug_assert!(start < end);
        self.hull = (self.hull.0.min(start), self.hull.1.max(end));
        if self.len > 0 {
            let last = &mut self.ranges[self.len - 1];
            let touches = start <= last.end && end >= last.start;
            let overlaps = start < last.end && end > last.start;
            // Adjacent runs of the same level merge losslessly; overlapping
            // ones must merge (a level mismatch only loses the hint).
            if (touches && last.level == level) || overlaps {
                Self::fold(last, start, end, level, leaf);
                return;
            }
        }
        if self.len == GATHER_CAPACITY {
            // Out of room: over-invalidate the gap rather than drop anything.
            Self::fold(
                &mut self.ranges[GATHER_CAPACITY - 1],
                start,
                end,
                level,
                leaf,
            );
            return;
        }
        self.ranges[self.len] = InvRange {
            start,
            end,
            level,
            leaf,
        };
        self.len += 1;
    }

    fn fold(r: &mut InvRange, start: u64, end: u64, level: u8, leaf: bool) {
        r.start = r.start.min(start);
        r.end = r.end.max(end);
        r.leaf &= leaf;
        if r.level != level {
            r.level = LEVEL_MIXED;
        }
    }

    /// Records that a table covering `[start, end)` was removed, so `map`
    /// must not install anything there before the sync.
    pub(crate) fn note_table_span(&mut self, start: u64, end: u64) {
        self.hull = (self.hull.0.min(start), self.hull.1.max(end));
    }

    /// Asks for a VMID-wide invalidation (used when tearing down).
    pub(crate) fn invalidate_all(&mut self) {
        self.vmid_all = true;
        self.hull = (0, u64::MAX);
    }

    /// Forgets everything (after the sync, once the free list is released).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.vmid_all = false;
        self.hull = (u64::MAX, 0);
        self.free_head = 0;
        self.free_count = 0;
        self.subtree_count = 0;
        self.subtree_tables = 0;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Done,
    VmidAll,
    PerPage,
    Range,
}

/// Iterator over the commands of a [`Gather`].
#[derive(Clone, Debug)]
pub struct Invalidations<'a> {
    ranges: &'a [InvRange],
    mode: Mode,
    idx: usize,
    // Per-page state.
    addr: u64,
    end: u64,
    step: u64,
    // Range state (`addr` is the base).
    pages: u64,
    ttl: u8,
    leaf: bool,
    granule_shift: u32,
    stride: u32,
    tg: u8,
}

impl Invalidations<'_> {
    /// log2 of the distance between leaves of `r`.
    fn step_shift(&self, r: &InvRange) -> u32 {
        if r.level == LEVEL_MIXED {
            self.granule_shift
        } else {
            self.granule_shift + (3 - u32::from(r.level)) * self.stride
        }
    }

    fn ttl_of(r: &InvRange) -> u8 {
        if r.leaf && r.level != LEVEL_MIXED {
            r.level
        } else {
            0
        }
    }

    fn load(&mut self, idx: usize) {
        self.idx = idx;
        let Some(r) = self.ranges.get(idx).copied() else {
            self.mode = Mode::Done;
            return;
        };
        self.ttl = Self::ttl_of(&r);
        self.leaf = r.leaf;
        match self.mode {
            Mode::PerPage => {
                self.step = 1 << self.step_shift(&r);
                self.addr = r.start;
                self.end = r.end;
            }
            Mode::Range => {
                let granule = 1u64 << self.granule_shift;
                self.addr = r.start;
                self.pages = (r.end - r.start).div_ceil(granule);
                if self.ttl == 0 && self.pages & 0x1f == 1 {
                    // TTL = SCALE = NUM = 0 is an illegal command: widen.
                    if self.addr >= granule {
                        self.addr -= granule;
                    }
                    self.pages += 1;
                }
            }
            Mode::Done | Mode::VmidAll => {}
        }
    }
}

impl Iterator for Invalidations<'_> {
    type Item = Invalidation;

    fn next(&mut self) -> Option<Invalidation> {
        loop {
            match self.mode {
                Mode::Done => return None,
                Mode::VmidAll => {
                    self.mode = Mode::Done;
                    return Some(Invalidation::VmidAll);
                }
                Mode::PerPage => {
                    if self.addr < self.end {
                        let ipa = self.addr;
                        self.addr += self.step;
                        return Some(Invalidation::Page {
                            ipa,
                            leaf: self.leaf,
                            ttl: self.ttl,
                        });
                    }
                    self.load(self.idx + 1);
                }
                Mode::Range => {
                    if self.pages > 0 {
                        let (scale, num) = range_chunk(self.pages);
                        let cmd = Invalidation::Range {
                            base: self.addr,
                            tg: self.tg,
                            scale: scale as u8,
                            num: (num - 1) as u8,
                            ttl: self.ttl,
                            leaf: self.leaf,
                        };
                        self.addr = self
                            .addr
                            .saturating_add(num << (scale + self.granule_shift));
                        self.pages -= num << scale;
                        return Some(cmd);
                    }
                    self.load(self.idx + 1);
                }
            }
        }
    }
}

/// The next range command for `pages` remaining pages, as (SCALE, NUM + 1):
/// Linux's split, where the lowest set bit gives SCALE and the next 5 bits
/// give NUM + 1. SCALE is a 5-bit field, so counts of 2^31 pages and more
/// use SCALE = 31 with up to 32 chunks.
#[inline(always)]
fn range_chunk(pages: u64) -> (u32, u64) {
    let scale = pages.trailing_zeros().min(31);
    let num = if scale < 31 {
        (pages >> scale) & 0x1f
    } else {
        (pages >> 31).min(32)
    };
    (scale, num)
}

/// How invalidations reach the SMMU(s) that may cache this table. The
/// driver implements it over its command queue; the host tests implement it
/// with the BBM auditor.
pub trait TlbMaintenance {
    /// Error of a failed sync (e.g. a `CMD_SYNC` timeout).
    type Error;

    /// Whether every SMMU concerned implements range invalidation
    /// (`SMMU_IDR3.RIL`).
    fn range_invalidation(&self) -> bool;

    /// Queues one command.
    fn invalidate(&mut self, inv: Invalidation);

    /// Issues `CMD_SYNC` and waits until every command queued before it has
    /// completed. On error the engine keeps its free list (leaking is safe,
    /// freeing a possibly cached table is not).
    fn sync(&mut self) -> Result<(), Self::Error>;
}

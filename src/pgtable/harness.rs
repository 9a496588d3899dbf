//! Reference model and random-operation harness, shared by the unit tests
//! and the `cargo fuzz` target (through the `testing` feature).
//!
//! [`RefModel`] is an independent, deliberately simple implementation of the
//! engine's contract: a sorted map of leaves (IOVA -> size, PA, prot), the
//! same "largest leaf alignment allows" rule, the same argument checks.
//! [`Harness`] drives the engine (under the BBM auditor) and the model with
//! the same operations and panics on the first difference, on any auditor
//! violation, on a second sync in one operation, or on a leaked table.

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::audit::{AuditedMemory, AuditedTlb};
use super::config::{Config, Granule, StartLevelPolicy};
use super::descriptor::{MemType, Prot};
use super::engine::{Leaf, PageTable, UnmapFlags, Unmapped};
use super::error::Error;
use super::gather::{Invalidation, PER_PAGE_LIMIT};

/// A run of `count` equal-sized leaves with contiguous output addresses
/// and one protection: how the model stores mappings (a 1 GiB map of pages
/// is one extent, not 262,144 entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Extent {
    count: u64,
    size: u64,
    pa: u64,
    prot: Prot,
}

impl Extent {
    fn len(&self) -> u64 {
        self.count * self.size
    }
}

/// The reference model.
#[derive(Clone, Debug)]
pub struct RefModel {
    /// Leaf sizes the configuration can use, largest first.
    leaf_sizes: Vec<u64>,
    granule: u64,
    ipa_limit: u64,
    oa_limit: u64,
    extents: BTreeMap<u64, Extent>,
    leaves: usize,
}

impl RefModel {
    /// An empty model of a table with configuration `cfg`.
    pub fn new(cfg: &Config) -> RefModel {
        let bitmap = cfg.leaf_sizes();
        let leaf_sizes = (0..64)
            .rev()
            .filter(|b| bitmap & (1 << b) != 0)
            .map(|b| 1u64 << b)
            .collect();
        RefModel {
            leaf_sizes,
            granule: cfg.granule().size(),
            ipa_limit: 1 << cfg.ipa_bits(),
            oa_limit: 1 << cfg.oas_bits(),
            extents: BTreeMap::new(),
            leaves: 0,
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.leaves
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// All leaves as (iova, size, pa, prot), in IOVA order.
    pub fn leaves(&self) -> impl Iterator<Item = (u64, u64, u64, Prot)> + '_ {
        self.extents.iter().flat_map(|(&start, e)| {
            (0..e.count).map(move |k| (start + k * e.size, e.size, e.pa + k * e.size, e.prot))
        })
    }

    /// The extent containing `addr`, as (its start, it).
    fn extent_at(&self, addr: u64) -> Option<(u64, Extent)> {
        let (&start, &e) = self.extents.range(..=addr).next_back()?;
        (addr < start + e.len()).then_some((start, e))
    }

    fn leaf_containing(&self, addr: u64) -> Option<(u64, u64)> {
        let (start, e) = self.extent_at(addr)?;
        Some((start + (addr - start) / e.size * e.size, e.size))
    }

    fn any_in(&self, start: u64, end: u64) -> bool {
        self.extent_at(start).is_some() || self.extents.range(start..end).next().is_some()
    }

    /// What `map` must return, without changing the model.
    pub fn check_map(&self, iova: u64, pa: u64, size: u64) -> Result<(), Error> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if !(iova | pa | size).is_multiple_of(self.granule) {
            return Err(Error::Unaligned);
        }
        let end = iova.checked_add(size).ok_or(Error::Wraps)?;
        let pa_end = pa.checked_add(size).ok_or(Error::Wraps)?;
        if end > self.ipa_limit {
            return Err(Error::OutOfRange);
        }
        if pa_end > self.oa_limit {
            return Err(Error::OutputOutOfRange);
        }
        if self.any_in(iova, end) {
            return Err(Error::Overlap);
        }
        Ok(())
    }

    /// Maps like the engine: at each address the largest leaf size that
    /// the IOVA, the PA and the remaining size allow.
    pub fn map(&mut self, iova: u64, pa: u64, size: u64, prot: Prot) -> Result<(), Error> {
        self.check_map(iova, pa, size)?;
        let (mut addr, mut out, end) = (iova, pa, iova + size);
        let mut cur: Option<(u64, Extent)> = None;
        while addr < end {
            let s = *self
                .leaf_sizes
                .iter()
                .find(|&&s| addr.is_multiple_of(s) && out.is_multiple_of(s) && end - addr >= s)
                .expect("the granule always fits");
            match &mut cur {
                Some((_, e)) if e.size == s => e.count += 1,
                _ => {
                    if let Some((start, e)) = cur.take() {
                        self.extents.insert(start, e);
                    }
                    cur = Some((
                        addr,
                        Extent {
                            count: 1,
                            size: s,
                            pa: out,
                            prot,
                        },
                    ));
                }
            }
            self.leaves += 1;
            addr += s;
            out += s;
        }
        if let Some((start, e)) = cur {
            self.extents.insert(start, e);
        }
        Ok(())
    }

    /// Unmaps like the engine.
    pub fn unmap(&mut self, iova: u64, size: u64, whole: bool) -> Result<Unmapped, Error> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if !(iova | size).is_multiple_of(self.granule) {
            return Err(Error::Unaligned);
        }
        let mut end = iova.checked_add(size).ok_or(Error::Wraps)?;
        if end > self.ipa_limit {
            return Err(Error::OutOfRange);
        }
        let mut start = iova;
        if let Some((base, _)) = self.leaf_containing(start)
            && base < start
        {
            if !whole {
                return Err(Error::PartialBlock);
            }
            start = base;
        }
        if let Some((base, len)) = self.leaf_containing(end - 1)
            && base + len > end
        {
            if !whole {
                return Err(Error::PartialBlock);
            }
            end = base + len;
        }
        // Extents touching [start, end): both ends fall on leaf boundaries,
        // so an extent sticking out keeps whole leaves on its outer side.
        let mut touched: Vec<(u64, Extent)> = Vec::new();
        if let Some((s0, e0)) = self.extent_at(start) {
            touched.push((s0, e0));
        }
        for (&s1, &e1) in self.extents.range(start..end) {
            if touched.first().is_none_or(|&(s0, _)| s0 != s1) {
                touched.push((s1, e1));
            }
        }
        let mut bytes = 0;
        for (s0, e) in touched {
            self.extents.remove(&s0);
            let e_end = s0 + e.len();
            let (lo, hi) = (s0.max(start), e_end.min(end));
            bytes += hi - lo;
            self.leaves -= ((hi - lo) / e.size) as usize;
            if s0 < lo {
                let count = (lo - s0) / e.size;
                self.extents.insert(s0, Extent { count, ..e });
            }
            if hi < e_end {
                let count = (e_end - hi) / e.size;
                let pa = e.pa + (hi - s0);
                self.extents.insert(hi, Extent { count, pa, ..e });
            }
        }
        if bytes == 0 {
            return Err(Error::NotMapped);
        }
        Ok(Unmapped {
            iova: start,
            size: end - start,
            bytes,
        })
    }

    /// The leaf containing `iova` as (iova, size, pa, prot).
    pub fn leaf_at(&self, iova: u64) -> Option<(u64, u64, u64, Prot)> {
        let (start, e) = self.extent_at(iova)?;
        let base = start + (iova - start) / e.size * e.size;
        Some((base, e.size, e.pa + (base - start), e.prot))
    }

    /// Translation of `iova`.
    pub fn translate(&self, iova: u64) -> Option<u64> {
        self.leaf_at(iova).map(|(b, _, pa, _)| pa + (iova - b))
    }
}

/// A stream of random words: a PRNG for tests, the fuzzer's bytes for
/// fuzzing.
pub trait Entropy {
    /// The next word, or `None` when exhausted.
    fn word(&mut self) -> Option<u64>;
}

/// SplitMix64: tiny, fast, good enough for test generation.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl Entropy for SplitMix {
    fn word(&mut self) -> Option<u64> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Some(z ^ (z >> 31))
    }
}

/// Fuzzer input as entropy: two bytes per word, so small inputs still drive
/// many operations.
#[derive(Clone, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Entropy for Bytes<'_> {
    fn word(&mut self) -> Option<u64> {
        let (w, rest) = match self.0 {
            [] => return None,
            [a] => (u64::from(*a), &[][..]),
            [a, b, rest @ ..] => (u64::from(*a) | u64::from(*b) << 8, rest),
        };
        self.0 = rest;
        // Spread 16 bits over 64 so modulo arithmetic sees all bits.
        Some(w.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (w << 48))
    }
}

/// One operation of the random harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `map`, optionally with allocation failing after `fail_after`
    /// successful allocations.
    Map {
        /// IOVA.
        iova: u64,
        /// PA.
        pa: u64,
        /// Size.
        size: u64,
        /// Protection.
        prot: Prot,
        /// Failure injection.
        fail_after: Option<u64>,
    },
    /// `unmap`.
    Unmap {
        /// IOVA.
        iova: u64,
        /// Size.
        size: u64,
        /// [`UnmapFlags::WHOLE_LEAVES`].
        whole: bool,
    },
    /// `iova_to_phys` / `leaf_at`.
    Translate {
        /// IOVA.
        iova: u64,
    },
    /// Clear a whole aligned block-sized region (whole leaves), then map it
    /// back as pages: builds full subtrees that later unmaps remove whole.
    Remap {
        /// IOVA (aligned to `size`).
        iova: u64,
        /// Size (a block size).
        size: u64,
        /// PA (deliberately not aligned to `size`).
        pa: u64,
    },
    /// Full comparison of every leaf and table invariant.
    Check,
}

/// Counters of a harness run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations applied.
    pub ops: u64,
    /// Successful maps.
    pub maps: u64,
    /// Successful unmaps.
    pub unmaps: u64,
    /// Operations that returned an error (all matched the model).
    pub errors: u64,
    /// Maps that failed on injected allocation failure and rolled back.
    pub rollbacks: u64,
    /// Translations compared.
    pub translates: u64,
    /// Full checks.
    pub checks: u64,
    /// Invalidation commands issued.
    pub commands: u64,
    /// VMID-wide invalidations among them.
    pub vmid_alls: u64,
    /// Syncs issued.
    pub syncs: u64,
    /// Most leaves alive at once.
    pub max_leaves: usize,
    /// Mismatches found (always 0: the harness panics on the first).
    pub mismatches: u64,
}

/// Engine + auditor + model, driven in lock step.
pub struct Harness {
    cfg: Config,
    /// The engine under test.
    pub pt: PageTable<AuditedMemory>,
    /// Its TLB (auditor).
    pub tlb: AuditedTlb,
    /// The reference model.
    pub model: RefModel,
    window: (u64, u64),
    recent: Vec<(u64, u64)>,
    /// Counters.
    pub stats: Stats,
}

const RECENT: usize = 64;

impl Harness {
    /// A harness for `cfg` whose random operations target the IOVA window
    /// `[base, base + size)`.
    pub fn new(cfg: Config, ril: bool, base: u64, size: u64) -> Harness {
        assert!(base + size <= 1 << cfg.ipa_bits());
        let (mem, tlb) = AuditedMemory::new(&cfg, ril);
        let mut pt = PageTable::new(cfg, mem).expect("root allocation");
        let root = pt.root();
        pt.memory_mut().attach_root(root, cfg.root_size());
        Harness {
            cfg,
            pt,
            tlb,
            model: RefModel::new(&cfg),
            window: (base, size),
            recent: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn assert_clean(&mut self, what: &dyn core::fmt::Debug) {
        let mut a = self.pt.memory().auditor();
        assert!(
            a.violation_count() == 0,
            "BBM auditor: {} violation(s) after {what:?}: {:?}",
            a.violation_count(),
            a.take_violations()
        );
    }

    /// Flushes, checks exactly `expect_sync` syncs happened, and that the
    /// walker holds nothing stale afterwards.
    fn flush_and_audit(&mut self, expect_sync: bool, what: &dyn core::fmt::Debug) {
        self.pt.memory().check_published();
        let syncs_before = self.tlb.auditor().syncs;
        let commands = self.pt.gather().command_count(self.tlb.ril);
        if !self.tlb.ril && !self.pt.gather().is_empty() {
            assert!(
                (commands as u64) < PER_PAGE_LIMIT,
                "{commands} per-page commands after {what:?}"
            );
        }
        assert_eq!(
            !self.pt.gather().is_empty(),
            expect_sync,
            "gather after {what:?}"
        );
        self.pt.flush(&mut self.tlb).unwrap_or_else(|e| match e {});
        let log = self.tlb.take_log();
        self.stats.commands += log.len() as u64;
        self.stats.vmid_alls += log.iter().filter(|i| **i == Invalidation::VmidAll).count() as u64;
        let syncs = self.tlb.auditor().syncs - syncs_before;
        assert_eq!(syncs, u64::from(expect_sync), "syncs after {what:?}");
        self.stats.syncs += syncs;
        self.pt.memory().auditor().check_quiescent();
        self.assert_clean(what);
    }

    fn live_writes(&self) -> (u64, usize) {
        (
            self.pt.memory().auditor().writes_to_reachable(),
            self.pt.memory().host().live_pages(),
        )
    }

    /// Applies `op` to engine and model; panics on any difference.
    pub fn apply(&mut self, op: Op) {
        self.stats.ops += 1;
        match op {
            Op::Map {
                iova,
                pa,
                size,
                prot,
                fail_after,
            } => {
                let expected = self.model.check_map(iova, pa, size);
                let before = self.live_writes();
                if let Some(n) = fail_after {
                    self.pt.memory_mut().host_mut().fail_after(n);
                }
                let got = self.pt.map(iova, pa, size, prot);
                self.pt.memory_mut().host_mut().clear_failure();
                match (expected, got) {
                    (Ok(()), Ok(())) => {
                        self.model.map(iova, pa, size, prot).expect("model agrees");
                        self.stats.maps += 1;
                        if self.recent.len() == RECENT {
                            self.recent.remove(0);
                        }
                        self.recent.push((iova, size));
                    }
                    (Ok(()), Err(Error::NoMemory)) if fail_after.is_some() => {
                        assert_eq!(
                            self.live_writes(),
                            before,
                            "rollback changed tables: {op:?}"
                        );
                        self.stats.rollbacks += 1;
                    }
                    (Err(e), Err(g)) if e == g => {
                        assert_eq!(self.live_writes(), before, "failed map wrote: {op:?}");
                        self.stats.errors += 1;
                    }
                    (e, g) => panic!("{op:?}: model {e:?}, engine {g:?}"),
                }
                self.flush_and_audit(false, &op);
            }
            Op::Unmap { iova, size, whole } => {
                let flags = if whole {
                    UnmapFlags::WHOLE_LEAVES
                } else {
                    UnmapFlags::EXACT
                };
                let before = self.live_writes();
                let expected = self.model.unmap(iova, size, whole);
                let got = self.pt.unmap(iova, size, flags);
                assert_eq!(got, expected, "{op:?}");
                match got {
                    Ok(u) => {
                        self.stats.unmaps += 1;
                        self.recent
                            .retain(|&(i, s)| i + s <= u.iova || i >= u.iova + u.size);
                    }
                    Err(_) => {
                        assert_eq!(self.live_writes(), before, "failed unmap wrote: {op:?}");
                        self.stats.errors += 1;
                    }
                }
                self.flush_and_audit(got.is_ok(), &op);
            }
            Op::Translate { iova } => {
                self.stats.translates += 1;
                let got = self
                    .pt
                    .leaf_at(iova)
                    .map(|l| (l.iova, l.size, l.pa, l.prot));
                assert_eq!(got, self.model.leaf_at(iova), "{op:?}");
                assert_eq!(self.pt.iova_to_phys(iova), self.model.translate(iova));
            }
            Op::Remap { iova, size, pa } => {
                self.apply(Op::Unmap {
                    iova,
                    size,
                    whole: true,
                });
                self.apply(Op::Map {
                    iova,
                    pa,
                    size,
                    prot: Prot::RW,
                    fail_after: None,
                });
            }
            Op::Check => self.check_full(),
        }
        self.stats.max_leaves = self.stats.max_leaves.max(self.model.len());
    }

    /// Compares every leaf, checks no table is empty, and that the engine's
    /// table count and the allocator agree.
    pub fn check_full(&mut self) {
        self.stats.checks += 1;
        let mut leaves: Vec<Leaf> = Vec::new();
        self.pt.walk(0, u64::MAX, &mut |l| leaves.push(*l));
        assert_eq!(leaves.len(), self.model.len(), "leaf count");
        for (l, (iova, size, pa, prot)) in leaves.iter().zip(self.model.leaves()) {
            assert_eq!((l.iova, l.size, l.pa, l.prot), (iova, size, pa, prot));
        }
        let mut tables = 0;
        self.pt.walk_tables(&mut |t| {
            if !t.root {
                tables += 1;
                assert!(
                    t.valid > 0,
                    "empty table left at {:#x} (level {})",
                    t.pa,
                    t.level
                );
                assert_eq!(Some(t.valid), t.recorded, "occupancy of {:#x}", t.pa);
            }
        });
        assert_eq!(tables, self.pt.table_count(), "table count");
        let root_pages = self.cfg.concatenated_tables();
        assert_eq!(
            self.pt.memory().host().live_pages(),
            root_pages + tables,
            "allocator balance"
        );
    }

    /// Runs up to `max_ops` generated operations (fewer if `e` runs dry),
    /// with a full check every `check_every` operations.
    pub fn run(&mut self, e: &mut impl Entropy, max_ops: u64, check_every: u64) {
        for i in 0..max_ops {
            let Some(op) = self.gen_op(e) else { break };
            self.apply(op);
            if check_every != 0 && (i + 1) % check_every == 0 {
                self.check_full();
            }
        }
    }

    /// Unmaps everything, checks that only the root is left, tears the table
    /// down and checks that no page leaked. Returns the counters.
    pub fn finish(mut self) -> Stats {
        self.check_full();
        let (base, size) = self.window;
        if !self.model.is_empty() {
            self.apply(Op::Unmap {
                iova: base,
                size,
                whole: true,
            });
        }
        assert!(self.model.is_empty());
        self.check_full();
        assert_eq!(self.pt.table_count(), 0);
        let root = self.pt.root();
        let size = self.cfg.root_size();
        self.pt.memory_mut().detach_root(root, size);
        let mut tlb = self.tlb;
        let mem = self.pt.destroy(&mut tlb).unwrap_or_else(|e| match e {});
        mem.auditor().check_quiescent();
        assert_eq!(mem.auditor().violation_count(), 0);
        assert_eq!(mem.host().live_pages(), 0, "leaked table pages");
        self.stats
    }

    fn below(e: &mut impl Entropy, n: u64) -> Option<u64> {
        Some(if n == 0 { 0 } else { e.word()? % n })
    }

    /// Generates one operation, biased towards interesting cases: block
    /// sizes and alignments, overlaps, partial-block unmaps, ranges reaching
    /// the end of the window, bad arguments and allocation failures.
    pub fn gen_op(&self, e: &mut impl Entropy) -> Option<Op> {
        let g = self.cfg.granule().size();
        let sizes = &self.model.leaf_sizes;
        let blocks: Vec<u64> = sizes.iter().copied().filter(|&s| s > g).collect();
        let (wbase, wsize) = self.window;
        let ipa_limit = 1u64 << self.cfg.ipa_bits();
        let oa_limit = 1u64 << self.cfg.oas_bits();
        let kind = Self::below(e, 100)?;
        let pick_block = |e: &mut _| -> Option<u64> {
            Some(if blocks.is_empty() {
                g
            } else {
                // Smaller blocks more often.
                let i = Self::below(e, blocks.len() as u64 * 3)? as usize;
                blocks[blocks.len() - 1 - (i % blocks.len()).min(i / 3)]
            })
        };
        let size_of = |e: &mut _| -> Option<u64> {
            let r = Self::below(e, 100)?;
            let pages = match r {
                0..=44 => 1 + Self::below(e, 4)?,
                45..=69 => 5 + Self::below(e, 60)?,
                70..=79 => 65 + Self::below(e, 960)?,
                _ => {
                    let b = pick_block(e)?;
                    let n = 1 + Self::below(e, 3)?;
                    let extra = if Self::below(e, 3)? == 0 {
                        Self::below(e, 16)? * g
                    } else {
                        0
                    };
                    return Some((b * n + extra).min(wsize));
                }
            };
            Some((pages * g).min(wsize))
        };
        let place = |e: &mut _, size: u64| -> Option<u64> {
            let align = if Self::below(e, 2)? == 0 {
                g
            } else {
                pick_block(e)?
            };
            let room = wsize - size;
            let off = Self::below(e, room + 1)? & !(align - 1);
            Some(wbase + off.min(room & !(g - 1)))
        };
        Some(match kind {
            0..=49 => {
                let size = size_of(e)?;
                let iova = place(e, size)?;
                let big = sizes[0];
                let congruent = Self::below(e, 10)? < 6;
                let room = oa_limit - size.min(oa_limit);
                let mut pa = Self::below(e, room + 1)? & !(big - 1);
                if congruent {
                    pa += iova & (big - 1);
                } else {
                    pa += Self::below(e, big)? & !(g - 1);
                }
                while pa + size > oa_limit && pa >= g {
                    pa -= big.min(pa) & !(g - 1);
                }
                let r = Self::below(e, 1 << 8)?;
                let prot = Prot {
                    read: r & 1 != 0,
                    write: r & 2 != 0,
                    no_exec: r & 4 != 0,
                    mem: match (r >> 3) % 3 {
                        0 => MemType::Normal,
                        1 => MemType::NonCacheable,
                        _ => MemType::Device,
                    },
                };
                let fail_after = if r >> 5 == 0 {
                    Some(Self::below(e, 3)?)
                } else {
                    None
                };
                Op::Map {
                    iova,
                    pa,
                    size,
                    prot,
                    fail_after,
                }
            }
            50..=84 => {
                let whole = Self::below(e, 10)? < 3;
                let r = Self::below(e, 20)?;
                let (iova, size) = if r < 12 && !self.recent.is_empty() {
                    let (i, s) = self.recent[Self::below(e, self.recent.len() as u64)? as usize];
                    if r < 2 && s > g {
                        // Part of it: partial-block unmaps, holes.
                        let cut = (1 + Self::below(e, s / g - 1)?) * g;
                        if Self::below(e, 2)? == 0 {
                            (i, cut)
                        } else {
                            (i + cut, s - cut)
                        }
                    } else {
                        (i, s)
                    }
                } else if r < 15 {
                    // A wide sweep keeps the window from filling up.
                    let size = (1 + Self::below(e, wsize / 16 / g)?) * g;
                    return Some(Op::Unmap {
                        iova: place(e, size)?,
                        size,
                        whole: true,
                    });
                } else {
                    let size = size_of(e)?;
                    (place(e, size)?, size)
                };
                Op::Unmap { iova, size, whole }
            }
            85..=93 | 95..=96 => Op::Translate {
                iova: wbase + Self::below(e, wsize)?,
            },
            94 => {
                // Mostly the smallest block (a full level-3 table of pages),
                // rarely the largest that fits the window twice (a full
                // level-2 table of full level-3 tables: costly to audit).
                let fits: Vec<u64> = blocks.iter().copied().filter(|&b| 2 * b <= wsize).collect();
                let size = match (fits.first(), fits.last()) {
                    (Some(&big), _) if Self::below(e, 100)? == 0 => big,
                    (_, Some(&small)) => small,
                    _ => g,
                };
                let first = wbase.next_multiple_of(size);
                let n = (wbase + wsize - first) / size;
                if n == 0 {
                    return Some(Op::Check);
                }
                let iova = first + Self::below(e, n)? * size;
                let pa = (Self::below(e, oa_limit / size - 1)? * size) + g;
                Op::Remap { iova, size, pa }
            }
            _ => {
                // Bad arguments.
                let r = Self::below(e, 10)?;
                let iova = place(e, g)?;
                match r {
                    0 => Op::Map {
                        iova: iova + g / 2,
                        pa: 0,
                        size: g,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    1 => Op::Map {
                        iova,
                        pa: g / 2,
                        size: g,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    2 => Op::Map {
                        iova,
                        pa: 0,
                        size: g + 8,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    3 => Op::Map {
                        iova,
                        pa: 0,
                        size: 0,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    4 => Op::Map {
                        iova: !(g - 1),
                        pa: 0,
                        size: 2 * g,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    5 => Op::Map {
                        iova: ipa_limit - g,
                        pa: 0,
                        size: 2 * g,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    6 => Op::Map {
                        iova,
                        pa: oa_limit - g,
                        size: 2 * g,
                        prot: Prot::RW,
                        fail_after: None,
                    },
                    7 => Op::Unmap {
                        iova: iova + g / 2,
                        size: g,
                        whole: false,
                    },
                    8 => Op::Unmap {
                        iova,
                        size: 0,
                        whole: true,
                    },
                    _ => Op::Unmap {
                        iova: ipa_limit - g,
                        size: 2 * g,
                        whole: false,
                    },
                }
            }
        })
    }
}

/// The configurations the fuzz target picks from (first input byte).
pub fn fuzz_configs() -> Vec<(Config, u64, u64)> {
    use Granule::*;
    use StartLevelPolicy::*;
    let c = |g, ipa, oas, p| Config::new(g, ipa, oas, p).expect("valid fuzz config");
    alloc::vec![
        (c(Size4K, 39, 44, FewestLevels), 0, 4 << 30),
        (
            c(Size4K, 40, 44, FewestLevels),
            (1 << 39) - (2 << 30),
            4 << 30
        ),
        (
            c(Size4K, 48, 48, NoConcatenation),
            (1 << 48) - (4 << 30),
            4 << 30
        ),
        (c(Size4K, 32, 40, FewestLevels), 0, 4 << 30),
        (c(Size16K, 36, 44, NoConcatenation), 1 << 33, 1 << 30),
        (
            c(Size16K, 48, 48, FewestLevels),
            (1 << 47) - (1 << 29),
            1 << 30
        ),
        (c(Size64K, 42, 44, FewestLevels), 0, 4 << 30),
        (c(Size64K, 32, 40, FewestLevels), 0, 4 << 30),
    ]
}

/// Entry point of the fuzz target: byte 0 picks the configuration, byte 1
/// range invalidation on or off, the rest drives the operations.
pub fn fuzz_one(data: &[u8]) {
    let [sel, ril, rest @ ..] = data else { return };
    let configs = fuzz_configs();
    let (cfg, base, size) = configs[usize::from(*sel) % configs.len()];
    let mut h = Harness::new(cfg, ril & 1 != 0, base, size);
    h.run(&mut Bytes(rest), u64::MAX, 64);
    h.finish();
}

//! The break-before-make auditor: a model of an SMMU walker whose caches may
//! hold any descriptor that was reachable and valid since the last
//! completed invalidation covering it.
//!
//! It sits between the engine and [`HostMemory`] ([`AuditedMemory`]
//! implements [`TableMemory`]) and receives the commands and syncs
//! ([`AuditedTlb`] implements [`TlbMaintenance`]): the same two traits the
//! engine uses on hardware. It tracks
//!
//! * every page: *fresh* (allocated, unreachable), *live* (reachable from
//!   the root, at a known level and IPA), *detached* (unlinked but possibly
//!   still walked through a cached pointer);
//! * the *stale* set: descriptors that are no longer reachable in memory but
//!   that the walker may still hold (TLB entries for leaves, walk-cache
//!   entries for tables), each with its level and IPA span;
//! * invalidations issued since the last sync, and values written but not
//!   yet published (the non-coherent-SMMU hook).
//!
//! Rules (each failure is a [`Violation`]):
//!
//! 1. a valid descriptor is never overwritten by a different valid one
//!    (except for the ignored bits of a table descriptor, where the engine
//!    keeps occupancy counts: the walker cannot tell the difference);
//! 2. a valid descriptor is never written where the walker may still hold a
//!    different one for an overlapping IPA range (break, invalidate, *sync*,
//!    then make), nor into a detached table;
//! 3. a table is linked only if it is fresh;
//! 4. a table page is freed only when it is not live and no cached table
//!    descriptor may still point at it (its invalidation has completed);
//! 5. a sync only forgets what the invalidations issued before it cover:
//!    leaf entries need an address match and a TTL of 0 or their level,
//!    walk-cache entries need a non-leaf invalidation with TTL 0. After an
//!    operation's sync the stale set must be empty, otherwise an
//!    invalidation missed an address the walker could still hold;
//! 6. commands are legal (range `TG` matches the granule, no range command
//!    with `TTL = SCALE = NUM = 0`);
//! 7. every descriptor written into a live table is published before the
//!    operation returns, and every descriptor written into a fresh table
//!    before that table is linked, unless memory already held a value the
//!    walker cannot tell apart;
//! 8. descriptors are well formed (no block where the level forbids it, AF
//!    set, addresses aligned and inside the output size);
//! 9. a table is linked only after a barrier that follows every write to
//!    it, the allocator's zeroing included: the walker may see stores in
//!    any order until a barrier orders them, so it could follow the link
//!    and read the page's earlier contents (a coherent walker too).

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::config::Config;
use super::descriptor as desc;
use super::gather::{Invalidation, TlbMaintenance};
use super::hostmem::{HOST_BASE, HostMemory};
use super::memory::{PhysAddr, TableMemory};

/// One break of the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Rule 1.
    ValidToValid {
        /// Table written.
        table: PhysAddr,
        /// Descriptor index.
        index: usize,
        /// Valid value in memory.
        old: u64,
        /// Different valid value written.
        new: u64,
    },
    /// Rule 2: a make while the walker may hold another descriptor.
    MakeBeforeInvalidate {
        /// Span start of the descriptor written.
        ipa: u64,
        /// Its level.
        level: u32,
        /// Value written.
        new: u64,
        /// Level of the possibly cached descriptor.
        stale_level: u32,
        /// The possibly cached descriptor.
        stale: u64,
    },
    /// Rule 2: a valid descriptor written into a detached table.
    MakeInDetached {
        /// Table written.
        table: PhysAddr,
        /// Descriptor index.
        index: usize,
    },
    /// A write to a page that is not allocated.
    WriteToFree {
        /// Table written.
        table: PhysAddr,
        /// Descriptor index.
        index: usize,
    },
    /// Rule 3.
    LinkNotFresh {
        /// The table linked.
        table: PhysAddr,
    },
    /// Rule 4: the page is still reachable from the root.
    FreeLive {
        /// Page freed.
        pa: PhysAddr,
    },
    /// Rule 4: a cached table descriptor may still point at the page.
    FreeCached {
        /// Page freed.
        pa: PhysAddr,
    },
    /// Rule 5: after the sync the walker may still hold this descriptor.
    Missed {
        /// Span start.
        ipa: u64,
        /// Level.
        level: u32,
        /// Descriptor.
        desc: u64,
    },
    /// Rule 5: commands issued and never synced.
    Unsynced {
        /// How many.
        commands: usize,
    },
    /// Rule 6.
    IllegalCommand(Invalidation),
    /// Rule 7.
    Unpublished {
        /// Table.
        table: PhysAddr,
        /// Descriptor index.
        index: usize,
    },
    /// Rule 8.
    Malformed {
        /// Table.
        table: PhysAddr,
        /// Descriptor index.
        index: usize,
        /// Value.
        desc: u64,
    },
    /// Rule 9.
    Unordered {
        /// Table linked.
        table: PhysAddr,
        /// A descriptor written since the last barrier.
        index: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Fresh,
    Live { level: u32, base: u64 },
    Detached { level: u32, base: u64 },
}

const MAX_RECORDED: usize = 64;

/// The walker model and its records.
#[derive(Debug)]
pub struct Auditor {
    granule_shift: u32,
    stride: u32,
    start: u32,
    entries: usize,
    tg: u8,
    leaf_levels: u8,
    oa_limit: u64,
    /// State of every arena page (`None`: not allocated).
    pages: Vec<Option<Page>>,
    /// Per level, (span base, descriptor) the walker may still hold.
    stale: [BTreeSet<(u64, u64)>; 4],
    /// Stale table descriptors pointing at each page.
    stale_refs: BTreeMap<PhysAddr, u32>,
    pending: Vec<Invalidation>,
    /// What a non-coherent walker reads: each slot's last published value.
    shadow: Vec<u64>,
    /// Slots written since the last `check_published`, and a bitmap of them.
    dirty: Vec<PhysAddr>,
    dirty_bits: Vec<u64>,
    /// Barriers so far, and for each slot how many there had been when it
    /// was last written: a slot is ordered before later writes once a
    /// barrier followed its write.
    barriers: u64,
    written_at: Vec<u64>,
    violations: Vec<Violation>,
    violation_count: usize,
    /// Syncs completed.
    pub syncs: u64,
    /// Commands received.
    pub commands: u64,
    /// Descriptor writes seen.
    pub writes: u64,
    live_writes: u64,
}

impl Auditor {
    fn new(cfg: &Config) -> Auditor {
        let g = cfg.granule();
        let mut leaf_levels = 0;
        for l in 0..=3 {
            if g.leaf_allowed(l) {
                leaf_levels |= 1 << l;
            }
        }
        Auditor {
            granule_shift: g.shift(),
            stride: g.stride(),
            start: cfg.start_level(),
            entries: g.entries(),
            tg: g.tlbi_tg(),
            leaf_levels,
            oa_limit: 1 << cfg.oas_bits(),
            pages: Vec::new(),
            stale: Default::default(),
            stale_refs: BTreeMap::new(),
            pending: Vec::new(),
            shadow: Vec::new(),
            dirty: Vec::new(),
            dirty_bits: Vec::new(),
            barriers: 0,
            written_at: Vec::new(),
            violations: Vec::new(),
            violation_count: 0,
            syncs: 0,
            commands: 0,
            writes: 0,
            live_writes: 0,
        }
    }

    fn span(&self, level: u32) -> u64 {
        1 << (self.granule_shift + (3 - level) * self.stride)
    }

    fn page_of(&self, addr: u64) -> PhysAddr {
        addr & !((1 << self.granule_shift) - 1)
    }

    fn page(&self, pa: PhysAddr) -> Option<Page> {
        let i = (pa.checked_sub(HOST_BASE)? >> self.granule_shift) as usize;
        self.pages.get(i).copied().flatten()
    }

    fn set_page(&mut self, pa: PhysAddr, state: Option<Page>) {
        let i = ((pa - HOST_BASE) >> self.granule_shift) as usize;
        if i >= self.pages.len() {
            self.pages.resize(i + 1, None);
        }
        self.pages[i] = state;
    }

    fn slot(addr: u64) -> usize {
        ((addr - HOST_BASE) / 8) as usize
    }

    fn violate(&mut self, v: Violation) {
        self.violation_count += 1;
        if self.violations.len() < MAX_RECORDED {
            self.violations.push(v);
        }
    }

    /// Violations recorded so far (the first 64).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Total number of violations.
    pub fn violation_count(&self) -> usize {
        self.violation_count
    }

    /// Forgets recorded violations (tests that provoke them on purpose).
    pub fn take_violations(&mut self) -> Vec<Violation> {
        self.violation_count = 0;
        core::mem::take(&mut self.violations)
    }

    /// Descriptor writes into reachable (live) tables so far.
    pub fn writes_to_reachable(&self) -> u64 {
        self.live_writes
    }

    /// Descriptors the walker may hold that are no longer in memory.
    pub fn stale_count(&self) -> usize {
        self.stale.iter().map(BTreeSet::len).sum()
    }

    /// Rule 5: after an operation's sync nothing may remain stale and
    /// nothing may remain unsynced. Records violations and resets.
    pub fn check_quiescent(&mut self) {
        if !self.pending.is_empty() {
            let commands = self.pending.len();
            self.violate(Violation::Unsynced { commands });
            self.pending.clear();
        }
        let mut missed = Vec::new();
        for level in 0..4u32 {
            for &(ipa, desc) in &self.stale[level as usize] {
                missed.push(Violation::Missed { ipa, level, desc });
            }
        }
        for v in missed {
            self.violate(v);
        }
        self.clear_stale();
    }

    fn clear_stale(&mut self) {
        for m in &mut self.stale {
            m.clear();
        }
        self.stale_refs.clear();
    }

    fn push_stale(&mut self, level: u32, base: u64, d: u64) {
        if self.stale[level as usize].insert((base, d)) && desc::is_table(d, level) {
            *self.stale_refs.entry(desc::address(d)).or_default() += 1;
        }
    }

    /// Rule 2 for a make of `new` at `level` over `[base, base + span)`.
    fn check_make(&mut self, level: u32, base: u64, new: u64) {
        let end = base + self.span(level);
        let mut found = Vec::new();
        for l in self.start..=3 {
            let set = &self.stale[l as usize];
            if set.is_empty() {
                continue;
            }
            let lo = base & !(self.span(l) - 1);
            for &(k, d) in set.range((lo, 0)..(end, 0)) {
                if !(l == level && k == base && d == new) {
                    found.push(Violation::MakeBeforeInvalidate {
                        ipa: base,
                        level,
                        new,
                        stale_level: l,
                        stale: d,
                    });
                }
            }
        }
        for v in found {
            self.violate(v);
        }
    }

    fn well_formed(&self, level: u32, d: u64) -> bool {
        let span = self.span(level);
        if desc::is_table(d, level) {
            return desc::address(d) & ((1 << self.granule_shift) - 1) == 0
                && desc::address(d) < self.oa_limit;
        }
        let is_page = d & desc::TABLE_OR_PAGE != 0;
        let type_ok = if level == 3 {
            is_page
        } else {
            !is_page && self.leaf_levels & (1 << level) != 0
        };
        type_ok
            && d & desc::AF != 0
            && desc::address(d) & (span - 1) == 0
            && desc::address(d) + span <= self.oa_limit
    }

    /// What a walker at `level` makes of `d`: occupancy bits are ignored.
    fn view(d: u64, level: u32) -> u64 {
        if desc::is_table(d, level) {
            d & !desc::OCCUPANCY_MASK
        } else {
            d
        }
    }

    fn on_alloc(&mut self, pa: PhysAddr, size: u64) {
        let mut p = pa;
        while p < pa + size {
            assert!(
                self.page(p).is_none(),
                "allocator handed out page {p:#x} twice"
            );
            self.set_page(p, Some(Page::Fresh));
            p += 1 << self.granule_shift;
        }
        // The allocator hands out zeroed memory the walker also reads as zero,
        // once a barrier orders the zeroing.
        let (lo, hi) = (Self::slot(pa), Self::slot(pa + size));
        if hi > self.shadow.len() {
            self.shadow.resize(hi, 0);
            self.dirty_bits.resize(hi.div_ceil(64), 0);
            self.written_at.resize(hi, 0);
        }
        self.shadow[lo..hi].fill(0);
        self.written_at[lo..hi].fill(self.barriers);
    }

    fn on_free(&mut self, pa: PhysAddr, size: u64) {
        let mut p = pa;
        while p < pa + size {
            match self.page(p) {
                Some(Page::Live { .. }) => self.violate(Violation::FreeLive { pa: p }),
                Some(_) => {}
                None => panic!("free of unallocated page {p:#x}"),
            }
            self.set_page(p, None);
            if self.stale_refs.get(&p).copied().unwrap_or(0) > 0 {
                self.violate(Violation::FreeCached { pa: p });
            }
            p += 1 << self.granule_shift;
        }
    }

    fn on_write(&mut self, host: &HostMemory, table: PhysAddr, index: usize, old: u64, new: u64) {
        self.writes += 1;
        let addr = table + 8 * index as u64;
        let page = self.page_of(addr);
        let slot_in_page = ((addr - page) / 8) as usize;
        if self.page(page).is_some() {
            self.written_at[Self::slot(addr)] = self.barriers;
        }
        let (level, base, live) = match self.page(page) {
            None => {
                self.violate(Violation::WriteToFree { table, index });
                return;
            }
            Some(Page::Fresh) => return,
            Some(Page::Live { level, base }) => (level, base, true),
            Some(Page::Detached { level, base }) => (level, base, false),
        };
        let slot_base = base + slot_in_page as u64 * self.span(level);
        if live {
            self.live_writes += 1;
            let s = Self::slot(addr);
            if self.dirty_bits[s / 64] & (1 << (s % 64)) == 0 {
                self.dirty_bits[s / 64] |= 1 << (s % 64);
                self.dirty.push(addr);
            }
        }
        match (desc::is_valid(old), desc::is_valid(new)) {
            (true, true) => {
                let ignored_only = desc::is_table(old, level)
                    && desc::is_table(new, level)
                    && (old ^ new) & !desc::OCCUPANCY_MASK == 0;
                if old != new && !ignored_only {
                    self.violate(Violation::ValidToValid {
                        table,
                        index,
                        old,
                        new,
                    });
                }
            }
            (true, false) => {
                // Break: the walker may keep using the old value (and, for a
                // table, everything below it) until invalidated.
                if live {
                    self.push_stale(level, slot_base, old);
                    if desc::is_table(old, level) {
                        self.detach(host, desc::address(old), level + 1, slot_base);
                    }
                }
            }
            (false, true) => {
                if !live {
                    self.violate(Violation::MakeInDetached { table, index });
                    return;
                }
                if !self.well_formed(level, new) {
                    self.violate(Violation::Malformed {
                        table,
                        index,
                        desc: new,
                    });
                }
                self.check_make(level, slot_base, new);
                if desc::is_table(new, level) {
                    self.link(host, desc::address(new), level + 1, slot_base);
                }
            }
            (false, false) => {}
        }
    }

    fn detach(&mut self, host: &HostMemory, table: PhysAddr, level: u32, base: u64) {
        match self.page(table) {
            Some(Page::Live { .. }) => self.set_page(table, Some(Page::Detached { level, base })),
            _ => panic!("tree corrupt: detached table {table:#x} was not live"),
        }
        let span = self.span(level);
        for i in 0..self.entries {
            let d = host.read(table, i);
            if desc::is_valid(d) {
                let b = base + i as u64 * span;
                self.push_stale(level, b, d);
                if desc::is_table(d, level) {
                    self.detach(host, desc::address(d), level + 1, b);
                }
            }
        }
    }

    fn link(&mut self, host: &HostMemory, table: PhysAddr, level: u32, base: u64) {
        if self.page(table) != Some(Page::Fresh) {
            self.violate(Violation::LinkNotFresh { table });
            return;
        }
        self.set_page(table, Some(Page::Live { level, base }));
        let span = self.span(level);
        let first = Self::slot(table);
        for i in 0..self.entries {
            let d = host.read(table, i);
            // Everything the walker will read from the new table must be
            // what was written: published before the link.
            if Self::view(d, level) != Self::view(self.shadow[first + i], level) {
                self.violate(Violation::Unpublished { table, index: i });
            }
            // ... and ordered before the link.
            if self.written_at[first + i] == self.barriers {
                self.violate(Violation::Unordered { table, index: i });
            }
            if desc::is_valid(d) {
                let b = base + i as u64 * span;
                self.check_make(level, b, d);
                if desc::is_table(d, level) {
                    self.link(host, desc::address(d), level + 1, b);
                }
            }
        }
    }

    fn on_publish(&mut self, host: &HostMemory, table: PhysAddr, first: usize, count: usize) {
        let s = Self::slot(table);
        for i in first..first + count {
            self.shadow[s + i] = host.read(table, i);
        }
    }

    fn on_barrier(&mut self) {
        self.barriers += 1;
    }

    fn on_invalidate(&mut self, inv: Invalidation) {
        self.commands += 1;
        if let Invalidation::Range {
            tg,
            scale,
            num,
            ttl,
            ..
        } = inv
            && (tg != self.tg || scale > 31 || num > 31 || ttl > 3 || (ttl | scale | num) == 0)
        {
            self.violate(Violation::IllegalCommand(inv));
        }
        self.pending.push(inv);
    }

    fn on_sync(&mut self) {
        self.syncs += 1;
        let pending = core::mem::take(&mut self.pending);
        for inv in pending {
            let (leaf_only, ttl) = match inv {
                Invalidation::VmidAll => {
                    self.clear_stale();
                    continue;
                }
                Invalidation::Page { leaf, ttl, .. } | Invalidation::Range { leaf, ttl, .. } => {
                    (leaf, ttl)
                }
            };
            let (lo, hi) = inv.span(self.granule_shift);
            self.forget(lo, hi, leaf_only, u32::from(ttl));
        }
    }

    /// Drops stale entries an invalidation of `[lo, hi)` reaches.
    fn forget(&mut self, lo: u64, hi: u64, leaf_only: bool, ttl: u32) {
        for level in self.start..=3 {
            let set = &self.stale[level as usize];
            if set.is_empty() {
                continue;
            }
            let key_lo = lo & !(self.span(level) - 1);
            let hits: Vec<(u64, u64)> = set
                .range((key_lo, 0)..(hi, 0))
                .filter(|&&(_, d)| {
                    if desc::is_table(d, level) {
                        !leaf_only && ttl == 0
                    } else {
                        ttl == 0 || ttl == level
                    }
                })
                .copied()
                .collect();
            for (b, d) in hits {
                self.stale[level as usize].remove(&(b, d));
                if desc::is_table(d, level) {
                    let t = desc::address(d);
                    if let Some(c) = self.stale_refs.get_mut(&t) {
                        *c -= 1;
                        if *c == 0 {
                            self.stale_refs.remove(&t);
                        }
                    }
                }
            }
        }
    }
}

/// [`TableMemory`] that reports everything to an [`Auditor`].
#[derive(Debug)]
pub struct AuditedMemory {
    host: HostMemory,
    audit: Rc<RefCell<Auditor>>,
    /// Test hook: barriers are silently dropped (a memory whose barrier
    /// does nothing), to prove the auditor notices.
    pub drop_barriers: bool,
}

impl AuditedMemory {
    /// Host memory for `cfg` and an auditor, plus a TLB handle (with or
    /// without range invalidation) sharing that auditor.
    pub fn new(cfg: &Config, ril: bool) -> (AuditedMemory, AuditedTlb) {
        let audit = Rc::new(RefCell::new(Auditor::new(cfg)));
        let tlb = AuditedTlb {
            audit: audit.clone(),
            ril,
            drop_if: None,
            log: Vec::new(),
        };
        (
            AuditedMemory {
                host: HostMemory::new(cfg.granule()),
                audit,
                drop_barriers: false,
            },
            tlb,
        )
    }

    /// The underlying host memory.
    pub fn host(&self) -> &HostMemory {
        &self.host
    }

    /// The underlying host memory, mutably (failure injection).
    pub fn host_mut(&mut self) -> &mut HostMemory {
        &mut self.host
    }

    /// The auditor.
    pub fn auditor(&self) -> core::cell::RefMut<'_, Auditor> {
        self.audit.borrow_mut()
    }

    /// Models the STE starting to use `root` (a fresh, possibly
    /// concatenated, root of `size` bytes): its pages become live.
    pub fn attach_root(&mut self, root: PhysAddr, size: u64) {
        let mut a = self.audit.borrow_mut();
        let span = a.span(a.start);
        let start = a.start;
        let per_page = a.entries as u64 * span;
        let mut p = root;
        let mut k = 0;
        while p < root + size {
            assert_eq!(a.page(p), Some(Page::Fresh), "root not fresh");
            a.set_page(
                p,
                Some(Page::Live {
                    level: start,
                    base: k * per_page,
                }),
            );
            p += 1 << a.granule_shift;
            k += 1;
        }
    }

    /// Models the STE no longer using `root` (after `CMD_CFGI_STE` and its
    /// sync): no new walk starts, but every descriptor reachable until now
    /// may still be cached.
    pub fn detach_root(&mut self, root: PhysAddr, size: u64) {
        let mut a = self.audit.borrow_mut();
        let start = a.start;
        let span = a.span(start);
        let entries = a.entries;
        let mut p = root;
        let mut k = 0;
        while p < root + size {
            let base = k * entries as u64 * span;
            a.set_page(p, Some(Page::Detached { level: start, base }));
            for i in 0..entries {
                let d = self.host.read(p, i);
                if desc::is_valid(d) {
                    let b = base + i as u64 * span;
                    a.push_stale(start, b, d);
                    if desc::is_table(d, start) {
                        a.detach(&self.host, desc::address(d), start + 1, b);
                    }
                }
            }
            p += 1 << a.granule_shift;
            k += 1;
        }
    }

    /// Rule 7: every descriptor written into a live table since the last
    /// check was published (or the walker cannot tell the difference).
    pub fn check_published(&self) {
        let mut a = self.audit.borrow_mut();
        let dirty = core::mem::take(&mut a.dirty);
        for &addr in &dirty {
            let s = Auditor::slot(addr);
            a.dirty_bits[s / 64] &= !(1 << (s % 64));
            let page = a.page_of(addr);
            if let Some(Page::Live { level, .. }) = a.page(page) {
                let index = ((addr - page) / 8) as usize;
                let now = self.host.read(page, index);
                if Auditor::view(now, level) != Auditor::view(a.shadow[s], level) {
                    a.violate(Violation::Unpublished { table: page, index });
                }
            }
        }
        // Keep the allocation for next time.
        a.dirty = dirty;
        a.dirty.clear();
    }
}

// SAFETY: forwards allocation to `HostMemory` (which upholds the
// contract) and only adds checks.
unsafe impl TableMemory for AuditedMemory {
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr> {
        let pa = self.host.alloc_table(size)?;
        self.audit.borrow_mut().on_alloc(pa, size);
        Some(pa)
    }

    fn free_table(&mut self, pa: PhysAddr, size: u64) {
        self.audit.borrow_mut().on_free(pa, size);
        self.host.free_table(pa, size);
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.host.read(table, index)
    }

    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        if !self.host.is_allocated(table + 8 * index as u64) {
            self.audit
                .borrow_mut()
                .violate(Violation::WriteToFree { table, index });
            return;
        }
        let old = self.host.read(table, index);
        self.audit
            .borrow_mut()
            .on_write(&self.host, table, index, old, desc);
        self.host.write(table, index, desc);
    }

    fn barrier_before_link(&mut self) {
        if !self.drop_barriers {
            self.audit.borrow_mut().on_barrier();
        }
    }

    fn publish(&mut self, table: PhysAddr, first: usize, count: usize) {
        self.audit
            .borrow_mut()
            .on_publish(&self.host, table, first, count);
    }
}

/// [`TlbMaintenance`] that reports to an [`Auditor`].
#[derive(Debug)]
pub struct AuditedTlb {
    audit: Rc<RefCell<Auditor>>,
    /// Whether to advertise range invalidation.
    pub ril: bool,
    /// Test hook: commands for which this returns true are silently dropped
    /// (a buggy driver), to prove the auditor notices.
    pub drop_if: Option<fn(&Invalidation) -> bool>,
    /// Commands received since the last [`take_log`](Self::take_log).
    pub log: Vec<Invalidation>,
}

impl AuditedTlb {
    /// The commands received since the last call.
    pub fn take_log(&mut self) -> Vec<Invalidation> {
        core::mem::take(&mut self.log)
    }

    /// The auditor.
    pub fn auditor(&self) -> core::cell::RefMut<'_, Auditor> {
        self.audit.borrow_mut()
    }
}

impl TlbMaintenance for AuditedTlb {
    type Error = core::convert::Infallible;

    fn range_invalidation(&self) -> bool {
        self.ril
    }

    fn invalidate(&mut self, inv: Invalidation) {
        self.log.push(inv);
        if self.drop_if.is_some_and(|f| f(&inv)) {
            return;
        }
        self.audit.borrow_mut().on_invalidate(inv);
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        self.audit.borrow_mut().on_sync();
        Ok(())
    }
}

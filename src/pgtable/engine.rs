//! The page-table engine: `map`, `unmap`, `flush`, `iova_to_phys`, walks.
//!
//! Break-before-make by construction:
//!
//! * `map` only ever writes into invalid slots (an overlap is an error), and
//!   it first checks the whole range and reserves every table it will need,
//!   so a failure (overlap or allocation) happens before the first write:
//!   the tables are left exactly as they were and the gather stays empty.
//!   A new table is filled while unreachable, then linked after a barrier
//!   (the walker must not see the link before the contents); every write into
//!   a reachable table is invalid -> valid, which needs no invalidation
//!   because the SMMU does not cache translation faults.
//! * `unmap` never splits a block and never rewrites a valid descriptor
//!   with another valid one: it only writes invalid descriptors, records
//!   what the walker may still cache in the gather, and queues tables that
//!   became empty for release after the sync.
//! * The only valid -> valid writes are occupancy-count updates in the
//!   ignored bits of table descriptors (see `descriptor.rs`), which the
//!   walker cannot observe.
//! * `map` refuses ([`Error::SyncPending`]) to write where an unmap's
//!   invalidation is still pending, so "make" can only follow a completed
//!   "invalidate + sync".
//!
//! Walks are recursive over levels (depth at most 4, a few words of stack
//! per level) and handle a whole run of entries of one table in a loop, so a
//! large map or unmap never re-walks from the root per page.

use core::fmt;

use super::config::Config;
use super::descriptor::{self as desc, Prot};
use super::error::Error;
use super::gather::{Gather, LEVEL_MIXED, SUBTREE_CAPACITY, TlbMaintenance};
use super::memory::{PhysAddr, TableMemory};

/// Options of [`PageTable::unmap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UnmapFlags(u32);

impl UnmapFlags {
    /// Default: a range covering part of a leaf is an error
    /// ([`Error::PartialBlock`]) and nothing changes.
    pub const EXACT: UnmapFlags = UnmapFlags(0);
    /// Unmap every leaf the range touches, even partly, and report the real
    /// range removed (the Linux/AMD behaviour). Blocks are still never split.
    pub const WHOLE_LEAVES: UnmapFlags = UnmapFlags(1);

    /// Whether all flags of `other` are set.
    pub const fn contains(self, other: UnmapFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Result of a successful [`PageTable::unmap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Unmapped {
    /// Start of the range actually covered (before the request's start only
    /// with [`UnmapFlags::WHOLE_LEAVES`]).
    pub iova: u64,
    /// Size of the range actually covered.
    pub size: u64,
    /// Bytes that were mapped in it and are now unmapped (holes excluded).
    pub bytes: u64,
}

/// A leaf (block or page) mapping, as reported by walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// First IOVA of the leaf.
    pub iova: u64,
    /// Size of the leaf.
    pub size: u64,
    /// Output address of its first byte.
    pub pa: PhysAddr,
    /// Level of its table.
    pub level: u32,
    /// Its permissions.
    pub prot: Prot,
    /// The raw descriptor.
    pub desc: u64,
}

/// A table, as reported by [`PageTable::walk_tables`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableInfo {
    /// Physical address.
    pub pa: PhysAddr,
    /// Level.
    pub level: u32,
    /// First IOVA it covers.
    pub base: u64,
    /// Number of valid descriptors in it.
    pub valid: usize,
    /// The occupancy count recorded in its parent's descriptor (`None` for
    /// the root). Always equal to `valid`.
    pub recorded: Option<usize>,
    /// Whether it is the (possibly concatenated) root.
    pub root: bool,
}

/// Tables reserved by `map` before its first write, threaded through their
/// first descriptor (they are unreachable until linked).
struct Pool {
    head: PhysAddr,
    count: usize,
}

impl Pool {
    fn take<M: TableMemory>(&mut self, mem: &mut M) -> PhysAddr {
        debug_assert!(self.count > 0);
        let pa = self.head;
        self.head = mem.read(pa, 0);
        // Back to the zeroed state the allocator handed out. Both values are
        // invalid descriptors, so a non-coherent walker seeing either is fine
        // and the write needs no publishing.
        mem.write(pa, 0, 0);
        self.count -= 1;
        pa
    }
}

/// Walk-cache entry: a level-3 table and the descriptor linking it.
#[derive(Clone, Copy, Debug)]
struct LeafTable {
    /// First IOVA the table covers.
    base: u64,
    table: PhysAddr,
    parent: PhysAddr,
    index: usize,
}

const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// A stage-2 IO page table.
///
/// Dropping it without [`destroy`](Self::destroy) leaks its tables (which is
/// safe: freeing them needs a VMID-wide invalidation first).
pub struct PageTable<M: TableMemory> {
    cfg: Config,
    mem: M,
    root: PhysAddr,
    gather: Gather,
    /// Non-root tables linked in the tree.
    tables: usize,
    granule_shift: u32,
    stride: u32,
    start: u32,
    root_entries: usize,
    entries: usize,
    /// Bit `l` set: leaves are legal at level `l`.
    leaf_levels: u8,
    ipa_limit: u64,
    oa_limit: u64,
    /// Address and level of the leaf most recently cleared by `unmap`: the
    /// spot for a non-leaf invalidation when its table is freed.
    last_leaf: (u64, u32),
    /// A software walk cache: the last level-3 table the engine walked to
    /// and the descriptor linking it. Valid while both stay linked, so it is
    /// dropped whenever any table is unlinked. Lets the one-page-per-call
    /// pattern skip the walk from the root.
    leaf_table: Option<LeafTable>,
}

impl<M: TableMemory> PageTable<M> {
    /// An empty table for `cfg`, with its root allocated from `mem`.
    pub fn new(cfg: Config, mut mem: M) -> Result<PageTable<M>, Error> {
        let root = mem.alloc_table(cfg.root_size()).ok_or(Error::NoMemory)?;
        mem.publish(root, 0, cfg.root_entries());
        let g = cfg.granule();
        let mut leaf_levels = 0;
        for level in cfg.start_level()..=3 {
            if g.leaf_allowed(level) {
                leaf_levels |= 1 << level;
            }
        }
        Ok(PageTable {
            cfg,
            mem,
            root,
            gather: Gather::new(&cfg),
            tables: 0,
            granule_shift: g.shift(),
            stride: g.stride(),
            start: cfg.start_level(),
            root_entries: cfg.root_entries(),
            entries: g.entries(),
            leaf_levels,
            ipa_limit: 1 << cfg.ipa_bits(),
            oa_limit: 1 << cfg.oas_bits(),
            last_leaf: (0, 3),
            leaf_table: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Physical address of the root (all concatenated tables): `STE.S2TTB`.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The table memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The table memory, mutably (for allocator bookkeeping; writing
    /// descriptors behind the engine's back voids every guarantee).
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Invalidations and freed tables pending since the last
    /// [`flush`](Self::flush).
    pub fn gather(&self) -> &Gather {
        &self.gather
    }

    /// Number of non-root tables linked in the tree (tables waiting in the
    /// gather's free list are not counted).
    pub fn table_count(&self) -> usize {
        self.tables
    }

    /// Bytes of table memory in use, root included (pending frees
    /// excluded).
    pub fn table_bytes(&self) -> u64 {
        self.cfg.root_size() + (self.tables as u64) * self.granule_size()
    }

    #[inline(always)]
    fn granule_size(&self) -> u64 {
        1 << self.granule_shift
    }

    #[inline(always)]
    fn shift(&self, level: u32) -> u32 {
        self.granule_shift + (3 - level) * self.stride
    }

    #[inline(always)]
    fn entries_at(&self, level: u32) -> usize {
        if level == self.start {
            self.root_entries
        } else {
            self.entries
        }
    }

    #[inline(always)]
    fn index(&self, addr: u64, level: u32) -> usize {
        ((addr >> self.shift(level)) as usize) & (self.entries_at(level) - 1)
    }

    /// Whether `[addr, e_end)`, inside one entry at `level`, is mapped by a
    /// single leaf there: the entry is fully covered, a leaf is legal at
    /// that level and the output address is aligned to it.
    #[inline(always)]
    fn leaf_fits(&self, level: u32, addr: u64, e_end: u64, pa: u64) -> bool {
        let span = 1u64 << self.shift(level);
        level == 3
            || (self.leaf_levels & (1 << level) != 0
                && e_end - addr == span
                && pa & (span - 1) == 0)
    }

    fn check_input(&self, iova: u64, size: u64) -> Result<u64, Error> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if (iova | size) & (self.granule_size() - 1) != 0 {
            return Err(Error::Unaligned);
        }
        let end = iova.checked_add(size).ok_or(Error::Wraps)?;
        if end > self.ipa_limit {
            return Err(Error::OutOfRange);
        }
        Ok(end)
    }

    /// Maps `[iova, iova + size)` to `[pa, pa + size)` with `prot`, using
    /// the largest leaf that alignment allows at each step.
    ///
    /// All or nothing: on any error nothing was written and nothing stays
    /// allocated. Errors, in the order they are checked: `ZeroSize`,
    /// `Unaligned`, `Wraps`, `OutOfRange`, `OutputOutOfRange`,
    /// `SyncPending`, `Overlap`, `NoMemory`. A successful map needs no
    /// invalidation (its gather contribution is empty).
    pub fn map(&mut self, iova: u64, pa: PhysAddr, size: u64, prot: Prot) -> Result<(), Error> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if (iova | pa | size) & (self.granule_size() - 1) != 0 {
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
        if self.gather.intersects(iova, end) {
            return Err(Error::SyncPending);
        }
        if let Some(c) = self.cached(iova, end) {
            // Inside one existing level-3 table: pages only, no new table.
            let first = self.index(iova, 3);
            let stop = first + (size >> self.granule_shift) as usize;
            if (first..stop).any(|i| desc::is_valid(self.mem.read(c.table, i))) {
                return Err(Error::Overlap);
            }
            self.write_pages(c.table, first, stop, pa, prot.leaf_attrs());
            self.add_occupancy(c.parent, c.index, (stop - first) as isize);
            return Ok(());
        }
        // Phase 1: reject overlaps and count the tables to create, without
        // writing anything.
        let need = self.count_tables(self.root, self.start, iova, end, pa)?;
        // Phase 2: reserve them all; a failure returns them untouched.
        let mut pool = self.reserve(need)?;
        // Phase 3: write. Cannot fail any more.
        self.map_range(
            self.root,
            self.start,
            iova,
            end,
            pa,
            prot.leaf_attrs(),
            &mut pool,
        );
        debug_assert_eq!(pool.count, 0);
        self.tables += need as usize;
        Ok(())
    }

    fn count_tables(
        &self,
        table: PhysAddr,
        level: u32,
        start: u64,
        end: u64,
        pa: u64,
    ) -> Result<u64, Error> {
        let shift = self.shift(level);
        let mut idx = self.index(start, level);
        if level == 3 {
            let stop = idx + ((end - start) >> shift) as usize;
            while idx < stop {
                if desc::is_valid(self.mem.read(table, idx)) {
                    return Err(Error::Overlap);
                }
                idx += 1;
            }
            return Ok(0);
        }
        let span = 1u64 << shift;
        let mut addr = start;
        let mut need = 0;
        while addr < end {
            let e_end = (align_down(addr, span) + span).min(end);
            let pa_e = pa + (addr - start);
            let d = self.mem.read(table, idx);
            if desc::is_valid(d) {
                if !desc::is_table(d, level) {
                    return Err(Error::Overlap);
                }
                need += self.count_tables(desc::address(d), level + 1, addr, e_end, pa_e)?;
            } else if !self.leaf_fits(level, addr, e_end, pa_e) {
                need += 1 + self.count_fresh(level + 1, addr, e_end, pa_e);
            }
            addr = e_end;
            idx += 1;
        }
        Ok(need)
    }

    /// Tables needed below a new (empty) table at `level` mapping
    /// `[start, end)`, without visiting every entry: all fully covered
    /// entries of a level share the same output alignment, so one of them
    /// stands for all.
    fn count_fresh(&self, level: u32, start: u64, end: u64, pa: u64) -> u64 {
        if level == 3 {
            return 0;
        }
        let span = 1u64 << self.shift(level);
        let mut need = 0;
        let mut addr = start;
        if addr & (span - 1) != 0 {
            let e_end = (align_down(addr, span) + span).min(end);
            need += 1 + self.count_fresh(level + 1, addr, e_end, pa);
            addr = e_end;
        }
        let full_end = align_down(end, span).max(addr);
        if addr < full_end {
            let pa_e = pa + (addr - start);
            if !self.leaf_fits(level, addr, addr + span, pa_e) {
                let n = (full_end - addr) / span;
                need += n * (1 + self.count_fresh(level + 1, addr, addr + span, pa_e));
            }
            addr = full_end;
        }
        if addr < end {
            need += 1 + self.count_fresh(level + 1, addr, end, pa + (addr - start));
        }
        need
    }

    fn reserve(&mut self, n: u64) -> Result<Pool, Error> {
        let mut pool = Pool { head: 0, count: 0 };
        let size = self.granule_size();
        while (pool.count as u64) < n {
            match self.mem.alloc_table(size) {
                Some(pa) => {
                    self.mem.write(pa, 0, pool.head);
                    pool.head = pa;
                    pool.count += 1;
                }
                None => {
                    // Nothing is linked yet: hand the pages straight back.
                    while pool.count > 0 {
                        let pa = pool.head;
                        pool.head = self.mem.read(pa, 0);
                        pool.count -= 1;
                        self.mem.free_table(pa, size);
                    }
                    return Err(Error::NoMemory);
                }
            }
        }
        Ok(pool)
    }

    /// Maps `[start, end)` below `table`; returns how many descriptors of
    /// `table` went from invalid to valid (for its occupancy count).
    #[allow(clippy::too_many_arguments)]
    fn map_range(
        &mut self,
        table: PhysAddr,
        level: u32,
        start: u64,
        end: u64,
        pa: u64,
        attrs: u64,
        pool: &mut Pool,
    ) -> usize {
        let shift = self.shift(level);
        let span = 1u64 << shift;
        let first = self.index(start, level);
        if level == 3 {
            let stop = first + ((end - start) >> shift) as usize;
            self.write_pages(table, first, stop, pa, attrs);
            return stop - first;
        }
        let mut made = 0;
        let mut idx = first;
        let mut addr = start;
        while addr < end {
            let e_end = (align_down(addr, span) + span).min(end);
            let pa_e = pa + (addr - start);
            if self.leaf_fits(level, addr, e_end, pa_e) {
                self.mem.write(table, idx, desc::leaf(pa_e, level, attrs));
                made += 1;
            } else {
                let d = self.mem.read(table, idx);
                let child = if desc::is_valid(d) {
                    let child = desc::address(d);
                    let n = self.map_range(child, level + 1, addr, e_end, pa_e, attrs, pool);
                    // Only ignored bits change: no break-before-make needed.
                    self.mem
                        .write(table, idx, desc::with_occupancy(d, desc::occupancy(d) + n));
                    child
                } else {
                    // Fill the new table while it is unreachable, then link it
                    // (invalid -> valid).
                    let child = pool.take(&mut self.mem);
                    let n = self.map_range(child, level + 1, addr, e_end, pa_e, attrs, pool);
                    self.mem.barrier_before_link();
                    self.mem
                        .write(table, idx, desc::with_occupancy(desc::table(child), n));
                    made += 1;
                    child
                };
                self.remember(level + 1, addr, child, table, idx);
            }
            addr = e_end;
            idx += 1;
        }
        self.mem.publish(table, first, idx - first);
        made
    }

    /// The hot loop of `map`: pages `first..stop` of a level-3 table.
    #[inline(always)]
    fn write_pages(&mut self, table: PhysAddr, first: usize, stop: usize, pa: u64, attrs: u64) {
        let mut d = desc::leaf(pa, 3, attrs);
        for idx in first..stop {
            self.mem.write(table, idx, d);
            d += 1 << self.granule_shift;
        }
        self.mem.publish(table, first, stop - first);
    }

    /// Adds `delta` to the occupancy count in descriptor `index` of
    /// `table`. Only ignored bits change, so this needs neither
    /// break-before-make nor publishing.
    #[inline(always)]
    fn add_occupancy(&mut self, table: PhysAddr, index: usize, delta: isize) {
        let d = self.mem.read(table, index);
        let n = desc::occupancy(d).wrapping_add_signed(delta);
        self.mem.write(table, index, desc::with_occupancy(d, n));
    }

    /// Records `child`, linked from descriptor `index` of `parent`, in the
    /// walk cache if it is a level-3 table.
    #[inline(always)]
    fn remember(&mut self, level: u32, addr: u64, child: PhysAddr, parent: PhysAddr, index: usize) {
        if level == 3 {
            self.leaf_table = Some(LeafTable {
                base: align_down(addr, 1 << self.shift(2)),
                table: child,
                parent,
                index,
            });
        }
    }

    /// The cached level-3 table, if `[start, end)` lies inside it.
    #[inline(always)]
    fn cached(&self, start: u64, end: u64) -> Option<LeafTable> {
        let c = self.leaf_table?;
        (start >= c.base && end - c.base <= 1 << self.shift(2)).then_some(c)
    }

    /// Base and size of the leaf translating `addr`, if any.
    fn leaf_span(&self, addr: u64) -> Option<(u64, u64)> {
        self.leaf_at(addr).map(|l| (l.iova, l.size))
    }

    /// Unmaps `[iova, iova + size)`. Never splits a block.
    ///
    /// With [`UnmapFlags::EXACT`], a range covering part of a leaf fails with
    /// `PartialBlock` and changes nothing; with
    /// [`UnmapFlags::WHOLE_LEAVES`] the covering leaves go entirely and the
    /// returned range says what was really removed. Holes are fine and are
    /// not counted in [`Unmapped::bytes`]; a range with nothing mapped at all
    /// is `NotMapped` (and changes nothing).
    ///
    /// The invalidations needed accumulate in the gather; tables left empty
    /// are unlinked and queued for release. Call [`flush`](Self::flush)
    /// before reporting completion to the caller; several unmaps may share
    /// one flush.
    pub fn unmap(&mut self, iova: u64, size: u64, flags: UnmapFlags) -> Result<Unmapped, Error> {
        let mut end = self.check_input(iova, size)?;
        let mut start = iova;
        if let Some(c) = self.cached(start, end) {
            // Inside one level-3 table: no leaf can stick out. If the table
            // cannot become empty, nothing needs unlinking either.
            let first = self.index(start, 3);
            let stop = first + (size >> self.granule_shift) as usize;
            let d = self.mem.read(c.parent, c.index);
            if desc::occupancy(d) > stop - first {
                let bytes = self.clear_pages(c.table, first, stop, start);
                if bytes == 0 {
                    return Err(Error::NotMapped);
                }
                let cleared = (bytes >> self.granule_shift) as usize;
                self.mem.write(
                    c.parent,
                    c.index,
                    desc::with_occupancy(d, desc::occupancy(d) - cleared),
                );
                return Ok(Unmapped { iova, size, bytes });
            }
        }
        let whole = flags.contains(UnmapFlags::WHOLE_LEAVES);
        // Only the two ends can cut a leaf.
        if let Some((base, _)) = self.leaf_span(start)
            && base < start
        {
            if !whole {
                return Err(Error::PartialBlock);
            }
            start = base;
        }
        if let Some((base, len)) = self.leaf_span(end - 1)
            && base + len > end
        {
            if !whole {
                return Err(Error::PartialBlock);
            }
            end = base + len;
        }
        let (bytes, _) = self.unmap_range(self.root, self.start, start, end);
        if bytes == 0 {
            // Nothing valid was found, so nothing was written.
            return Err(Error::NotMapped);
        }
        Ok(Unmapped {
            iova: start,
            size: end - start,
            bytes,
        })
    }

    /// Records a run of leaves at `level` cleared by this unmap; returns its
    /// size.
    #[inline(always)]
    fn end_run(&mut self, start: u64, end: u64, level: u32) -> u64 {
        self.gather.add(start, end, level as u8, true);
        self.last_leaf = (end - (1 << self.shift(level)), level);
        end - start
    }

    /// Clears every leaf in `[start, end)` below `table` (leaves are known
    /// to be fully covered). Returns the bytes unmapped and how many
    /// descriptors of `table` became invalid.
    fn unmap_range(&mut self, table: PhysAddr, level: u32, start: u64, end: u64) -> (u64, usize) {
        let shift = self.shift(level);
        let first = self.index(start, level);
        if level == 3 {
            let stop = first + ((end - start) >> shift) as usize;
            let bytes = self.clear_pages(table, first, stop, start);
            return (bytes, (bytes >> shift) as usize);
        }
        let span = 1u64 << shift;
        let mut idx = first;
        let mut addr = start;
        let mut bytes = 0;
        let mut cleared = 0;
        let mut wrote = false;
        let mut run: Option<u64> = None;
        while addr < end {
            let e_end = (align_down(addr, span) + span).min(end);
            let d = self.mem.read(table, idx);
            if desc::is_valid(d) && !desc::is_table(d, level) {
                self.mem.write(table, idx, 0);
                cleared += 1;
                if run.is_none() {
                    run = Some(addr);
                }
            } else {
                if let Some(rs) = run.take() {
                    bytes += self.end_run(rs, addr, level);
                }
                if desc::is_valid(d) {
                    let child = desc::address(d);
                    let occupancy = desc::occupancy(d);
                    let base = align_down(addr, span);
                    if e_end - addr == span {
                        // The whole subtree goes: unlink it once instead of
                        // clearing every leaf.
                        bytes += self.free_subtree(child, level + 1, addr, occupancy);
                        self.mem.write(table, idx, 0);
                        self.gather.note_table_span(base, base + span);
                        cleared += 1;
                        wrote = true;
                    } else {
                        let (b, k) = self.unmap_range(child, level + 1, addr, e_end);
                        bytes += b;
                        if k == occupancy {
                            self.mem.write(table, idx, 0);
                            // One non-leaf invalidation inside the table's
                            // span drops the walk-cache entry pointing to
                            // it; on the last leaf cleared it merges with
                            // that leaf's own invalidation.
                            let (hint, hint_level) = if b > 0 {
                                self.last_leaf
                            } else {
                                (addr, level + 1)
                            };
                            let hint_end = hint + (1 << self.shift(hint_level));
                            self.gather.add(hint, hint_end, hint_level as u8, false);
                            self.gather.note_table_span(base, base + span);
                            self.push_free(child);
                            cleared += 1;
                            wrote = true;
                        } else if k > 0 {
                            self.mem
                                .write(table, idx, desc::with_occupancy(d, occupancy - k));
                            self.remember(level + 1, addr, child, table, idx);
                            wrote = true;
                        }
                    }
                }
            }
            addr = e_end;
            idx += 1;
        }
        if let Some(rs) = run {
            bytes += self.end_run(rs, addr, level);
        }
        if wrote || cleared > 0 {
            self.mem.publish(table, first, idx - first);
        }
        (bytes, cleared)
    }

    /// The hot loop of `unmap`: clears the valid pages among `first..stop`
    /// of a level-3 table (the first at IOVA `addr`), records their runs in
    /// the gather and publishes. Returns the bytes cleared.
    fn clear_pages(&mut self, table: PhysAddr, first: usize, stop: usize, mut addr: u64) -> u64 {
        let page = 1u64 << self.granule_shift;
        let mut bytes = 0;
        let mut run: Option<u64> = None;
        for idx in first..stop {
            if desc::is_valid(self.mem.read(table, idx)) {
                self.mem.write(table, idx, 0);
                if run.is_none() {
                    run = Some(addr);
                }
            } else if let Some(rs) = run.take() {
                bytes += self.end_run(rs, addr, 3);
            }
            addr += page;
        }
        if let Some(rs) = run {
            bytes += self.end_run(rs, addr, 3);
        }
        if bytes != 0 {
            self.mem.publish(table, first, stop - first);
        }
        bytes
    }

    /// Unlinked subtree with `occupancy` valid descriptors at its top:
    /// records its leaves for invalidation (with walk-cache entries) and
    /// queues it for release after the sync. Returns the bytes it mapped.
    fn free_subtree(&mut self, table: PhysAddr, level: u32, base: u64, occupancy: usize) -> u64 {
        let (bytes, tables) = self.scan_subtree(table, level, base, occupancy);
        self.tables -= tables;
        self.leaf_table = None;
        let g = &mut self.gather;
        if g.subtree_count < SUBTREE_CAPACITY {
            // Occupancy 0 marks a table without child tables: released
            // without reading it.
            let walk = if tables == 1 { 0 } else { occupancy as u16 };
            g.subtrees[g.subtree_count] = (table, level as u8, walk);
            g.subtree_count += 1;
            g.subtree_tables += tables;
        } else {
            self.tables += tables;
            self.thread_subtree(table, level, occupancy);
        }
        bytes
    }

    /// Records the leaves of an unlinked subtree in the gather (non-leaf
    /// invalidations). Returns its bytes and its number of tables. Full
    /// level-3 tables are not read at all: their occupancy says it all.
    fn scan_subtree(
        &mut self,
        table: PhysAddr,
        level: u32,
        base: u64,
        occupancy: usize,
    ) -> (u64, usize) {
        let span = 1u64 << self.shift(level);
        if level == 3 && occupancy == self.entries {
            let end = base + span * self.entries as u64;
            self.gather.add(base, end, 3, false);
            return (end - base, 1);
        }
        let n = self.entries;
        if occupancy == n {
            // A full table of blocks, or of full level-3 tables: one run,
            // found by a simple counting loop the compiler vectorises (with
            // plain loads). The first entry tells which loop to try.
            let first = self.mem.read(table, 0);
            if level == 2 && desc::is_table(first, 2) {
                let full = (0..n)
                    .filter(|&i| {
                        let d = self.mem.read(table, i);
                        desc::is_table(d, 2) && desc::occupancy(d) == n
                    })
                    .count();
                if full == n {
                    self.gather.add(base, base + span * n as u64, 3, false);
                    return (span * n as u64, n + 1);
                }
            } else if !desc::is_table(first, level) {
                let leaves = (0..n)
                    .filter(|&i| !desc::is_table(self.mem.read(table, i), level))
                    .count();
                if leaves == n {
                    // All valid (occupancy) and none a table: all leaves.
                    self.gather
                        .add(base, base + span * n as u64, level as u8, false);
                    return (span * n as u64, 1);
                }
            }
        }
        let mut bytes = 0;
        let mut tables = 1;
        let mut run: Option<u64> = None;
        // Consecutive full level-3 children form one run of pages, found
        // without reading them (the common case of a big unmap).
        let mut full_run: Option<u64> = None;
        let mut addr = base;
        let mut seen = 0;
        for idx in 0..self.entries {
            let d = self.mem.read(table, idx);
            if level == 2 && desc::is_table(d, 2) && desc::occupancy(d) == self.entries {
                seen += 1;
                tables += 1;
                if let Some(rs) = run.take() {
                    self.gather.add(rs, addr, 2, false);
                    bytes += addr - rs;
                }
                if full_run.is_none() {
                    full_run = Some(addr);
                }
                addr += span;
                continue;
            }
            if let Some(rs) = full_run.take() {
                self.gather.add(rs, addr, 3, false);
                bytes += addr - rs;
            }
            if desc::is_valid(d) && !desc::is_table(d, level) {
                seen += 1;
                if run.is_none() {
                    run = Some(addr);
                }
            } else {
                if let Some(rs) = run.take() {
                    self.gather.add(rs, addr, level as u8, false);
                    bytes += addr - rs;
                }
                if desc::is_valid(d) {
                    seen += 1;
                    let child = desc::address(d);
                    let (b, t) = self.scan_subtree(child, level + 1, addr, desc::occupancy(d));
                    bytes += b;
                    tables += t;
                }
            }
            addr += span;
            if seen == occupancy && run.is_none() {
                // The rest of the table is invalid.
                break;
            }
        }
        if let Some(rs) = run {
            self.gather.add(rs, addr, level as u8, false);
            bytes += addr - rs;
        }
        if let Some(rs) = full_run {
            self.gather.add(rs, addr, 3, false);
            bytes += addr - rs;
        }
        if bytes == 0 {
            // Cannot happen (empty tables are always freed), but if it did the
            // walk cache would still need a non-leaf invalidation.
            self.gather
                .add(base, base + self.granule_size(), LEVEL_MIXED, false);
        }
        (bytes, tables)
    }

    /// Calls `f` on every table of an unlinked subtree, children before
    /// parents (so a table is visited after its descriptors were read).
    fn for_each_table<F: FnMut(&mut Self, PhysAddr)>(
        &mut self,
        table: PhysAddr,
        level: u32,
        occupancy: usize,
        f: &mut F,
    ) {
        if level < 3 {
            let mut seen = 0;
            for idx in 0..self.entries {
                if seen == occupancy {
                    break;
                }
                let d = self.mem.read(table, idx);
                if desc::is_valid(d) {
                    seen += 1;
                    if desc::is_table(d, level) {
                        let child = desc::address(d);
                        if level == 2 {
                            // Level-3 tables have no children: no need to recurse.
                            f(self, child);
                        } else {
                            self.for_each_table(child, level + 1, desc::occupancy(d), f);
                        }
                    }
                }
            }
        }
        f(self, table);
    }

    /// Out of subtree slots: thread every table of the subtree into the
    /// free list instead.
    fn thread_subtree(&mut self, table: PhysAddr, level: u32, occupancy: usize) {
        self.for_each_table(table, level, occupancy, &mut |pt, t| pt.push_free(t));
    }

    fn push_free(&mut self, table: PhysAddr) {
        // Any unlink may invalidate the walk cache's table or its parent.
        self.leaf_table = None;
        // The page is already unlinked. The link is a page address, so bit 0
        // is clear and a walker still holding a stale pointer to the page
        // reads an invalid descriptor (a legal "break").
        self.mem.write(table, 0, self.gather.free_head);
        self.gather.free_head = table;
        self.gather.free_count += 1;
        self.tables -= 1;
    }

    /// Issues the pending invalidations, exactly one sync, and then releases
    /// the tables freed by the pending unmaps. Does nothing (not even a sync)
    /// when nothing is pending. If the sync fails the gather is kept (retry
    /// later, or leak).
    pub fn flush<T: TlbMaintenance>(&mut self, tlb: &mut T) -> Result<(), T::Error> {
        if self.gather.is_empty() {
            return Ok(());
        }
        self.gather
            .for_each_invalidation(tlb.range_invalidation(), |inv| tlb.invalidate(inv));
        tlb.sync()?;
        // The walker cannot reach these tables any more: release them in
        // batches (one allocator call, so one lock, per batch).
        if self.gather.free_count == 0 && self.gather.subtree_count == 0 {
            self.gather.clear();
            return Ok(());
        }
        let size = self.granule_size();
        if self.gather.free_count == 0
            && self.gather.subtree_count == 1
            && self.gather.subtree_tables == 1
        {
            // One table (e.g. a table of blocks): no batch to set up.
            self.mem.free_table(self.gather.subtrees[0].0, size);
            self.gather.clear();
            return Ok(());
        }
        let mut batch = FreeBatch::new();
        let mut pa = self.gather.free_head;
        for _ in 0..self.gather.free_count {
            let next = self.mem.read(pa, 0);
            batch.push(&mut self.mem, pa, size);
            pa = next;
        }
        for i in 0..self.gather.subtree_count {
            let (root, level, occupancy) = self.gather.subtrees[i];
            self.for_each_table(
                root,
                u32::from(level),
                usize::from(occupancy),
                &mut |pt, t| batch.push(&mut pt.mem, t, size),
            );
        }
        batch.finish(&mut self.mem, size);
        self.gather.clear();
        Ok(())
    }

    /// Frees every table, root included, and returns the memory.
    ///
    /// The caller must already have made every STE stop using this table
    /// (and synced the `CMD_CFGI_STE`), so no new walk can start; this then
    /// issues a VMID-wide invalidation and a sync before freeing anything.
    /// If the sync fails the tables are leaked.
    pub fn destroy<T: TlbMaintenance>(mut self, tlb: &mut T) -> Result<M, T::Error> {
        self.leaf_table = None;
        self.gather.invalidate_all();
        self.flush(tlb)?;
        self.free_all(self.root, self.start);
        self.mem.free_table(self.root, self.cfg.root_size());
        Ok(self.mem)
    }

    fn free_all(&mut self, table: PhysAddr, level: u32) {
        if level == 3 {
            return;
        }
        for idx in 0..self.entries_at(level) {
            let d = self.mem.read(table, idx);
            if desc::is_table(d, level) {
                let child = desc::address(d);
                self.free_all(child, level + 1);
                self.mem.free_table(child, self.granule_size());
            }
        }
    }

    /// The leaf translating `iova`, if any.
    pub fn leaf_at(&self, iova: u64) -> Option<Leaf> {
        if iova >= self.ipa_limit {
            return None;
        }
        let mut table = self.root;
        for level in self.start..=3 {
            let d = self.mem.read(table, self.index(iova, level));
            if !desc::is_valid(d) {
                return None;
            }
            if desc::is_table(d, level) {
                table = desc::address(d);
                continue;
            }
            let size = 1u64 << self.shift(level);
            return Some(Leaf {
                iova: align_down(iova, size),
                size,
                pa: desc::address(d) & !(size - 1),
                level,
                prot: Prot::from_leaf(d),
                desc: d,
            });
        }
        None
    }

    /// The physical address `iova` translates to, if mapped.
    pub fn iova_to_phys(&self, iova: u64) -> Option<PhysAddr> {
        self.leaf_at(iova).map(|l| l.pa + (iova - l.iova))
    }

    /// Calls `f` for every leaf intersecting `[start, end)`, in IOVA order
    /// (leaves are reported whole even if they stick out of the range).
    pub fn walk<F: FnMut(&Leaf)>(&self, start: u64, end: u64, f: &mut F) {
        let end = end.min(self.ipa_limit);
        if start < end {
            self.walk_range(self.root, self.start, start, end, f);
        }
    }

    fn walk_range<F: FnMut(&Leaf)>(
        &self,
        table: PhysAddr,
        level: u32,
        start: u64,
        end: u64,
        f: &mut F,
    ) {
        let span = 1u64 << self.shift(level);
        let mut idx = self.index(start, level);
        let mut addr = start;
        while addr < end {
            let e_end = (align_down(addr, span) + span).min(end);
            let d = self.mem.read(table, idx);
            if desc::is_table(d, level) {
                self.walk_range(desc::address(d), level + 1, addr, e_end, f);
            } else if desc::is_valid(d) {
                f(&Leaf {
                    iova: align_down(addr, span),
                    size: span,
                    pa: desc::address(d) & !(span - 1),
                    level,
                    prot: Prot::from_leaf(d),
                    desc: d,
                });
            }
            addr = e_end;
            idx += 1;
        }
    }

    /// Calls `f` for every table, parents before children.
    pub fn walk_tables<F: FnMut(&TableInfo)>(&self, f: &mut F) {
        self.walk_tables_at(self.root, self.start, 0, None, f);
    }

    fn walk_tables_at<F: FnMut(&TableInfo)>(
        &self,
        table: PhysAddr,
        level: u32,
        base: u64,
        recorded: Option<usize>,
        f: &mut F,
    ) {
        let n = self.entries_at(level);
        let valid = (0..n)
            .filter(|&i| desc::is_valid(self.mem.read(table, i)))
            .count();
        f(&TableInfo {
            pa: table,
            level,
            base,
            valid,
            recorded,
            root: level == self.start,
        });
        if level == 3 {
            return;
        }
        let span = 1u64 << self.shift(level);
        for i in 0..n {
            let d = self.mem.read(table, i);
            if desc::is_table(d, level) {
                let child = desc::address(d);
                let base = base + i as u64 * span;
                self.walk_tables_at(child, level + 1, base, Some(desc::occupancy(d)), f);
            }
        }
    }

    /// Writes a human-readable dump of the tables: one line per table and
    /// per leaf, indented by level.
    pub fn dump<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        writeln!(
            w,
            "stage-2 {:?}, {}-bit IPA, {}-bit PA, start level {}, {} root table(s) at {:#x}",
            self.cfg.granule(),
            self.cfg.ipa_bits(),
            self.cfg.oas_bits(),
            self.start,
            self.cfg.concatenated_tables(),
            self.root
        )?;
        self.dump_table(w, self.root, self.start, 0)
    }

    fn dump_table<W: fmt::Write>(
        &self,
        w: &mut W,
        table: PhysAddr,
        level: u32,
        base: u64,
    ) -> fmt::Result {
        let span = 1u64 << self.shift(level);
        let indent = 2 * (level - self.start) as usize;
        for i in 0..self.entries_at(level) {
            let d = self.mem.read(table, i);
            if !desc::is_valid(d) {
                continue;
            }
            let va = base + i as u64 * span;
            if desc::is_table(d, level) {
                writeln!(
                    w,
                    "{:indent$}L{level}[{i}] {va:#x}..{:#x} table {:#x}",
                    "",
                    va + span,
                    desc::address(d)
                )?;
                self.dump_table(w, desc::address(d), level + 1, va)?;
            } else {
                writeln!(
                    w,
                    "{:indent$}L{level}[{i}] {va:#x}..{:#x} -> {:#x} {:?} ({d:#018x})",
                    "",
                    va + span,
                    desc::address(d) & !(span - 1),
                    Prot::from_leaf(d)
                )?;
            }
        }
        Ok(())
    }
}

/// Tables waiting to go back to the allocator in one call.
struct FreeBatch {
    tables: [PhysAddr; FreeBatch::CAPACITY],
    len: usize,
}

impl FreeBatch {
    const CAPACITY: usize = 32;

    fn new() -> Self {
        Self {
            tables: [0; Self::CAPACITY],
            len: 0,
        }
    }

    fn push<M: TableMemory>(&mut self, mem: &mut M, pa: PhysAddr, size: u64) {
        if self.len == Self::CAPACITY {
            self.finish(mem, size);
        }
        self.tables[self.len] = pa;
        self.len += 1;
    }

    fn finish<M: TableMemory>(&mut self, mem: &mut M, size: u64) {
        if self.len > 0 {
            mem.free_tables(&self.tables[..self.len], size);
            self.len = 0;
        }
    }
}

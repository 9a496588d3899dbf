//! The table-memory trait: the only way the engine reaches memory.
//!
//! On hardware the hypervisor implements it over identity-mapped memory
//! (PA == VA): `read`/`write` are volatile 64-bit accesses at
//! `table + index * 8`, `alloc_table` takes pages from the hypervisor's pool
//! and zeroes them. Host tests implement it over a vector with an auditor in
//! between (see `audit.rs`), which is how break-before-make is checked.
//!
//! The engine performs every descriptor write with one 64-bit store, so a
//! walker never observes a torn descriptor as long as `write` is a single
//! aligned 64-bit store (a plain `str` on AArch64 is single-copy atomic).

/// A physical address (the SMMU's view).
pub type PhysAddr = u64;

/// Memory for translation tables.
///
/// What the engine promises an implementation: it calls `read`, `write`
/// and `publish` only with a `table` that `alloc_table` returned and that
/// is not freed yet, and an index inside it (`size / 8` descriptors); it
/// frees each table once, with the size it was allocated with, after no
/// walker can reach it. An implementation over raw memory relies on this
/// to dereference `table + index * 8`.
///
/// # Safety
///
/// An implementation promises that every table returned by
/// [`alloc_table`](Self::alloc_table):
/// - is `size` bytes of zeroed memory aligned to `size`, that nothing else
///   (no other table, no other user, no device other than the walker this
///   table is for) reads or writes until it is freed;
/// - is at the physical address it returns, so that the walker, given
///   that address (an STE's `S2TTB`, a table descriptor), reads exactly
///   what [`write`](Self::write) stored there (after
///   [`publish`](Self::publish) on a non-coherent walker);
///
/// and that `write` changes only descriptor `index` of `table`, with one
/// single-copy-atomic 64-bit store.
///
/// The engine cannot check any of this: a table at a wrong address hands
/// a device whatever memory lies there.
pub unsafe trait TableMemory {
    /// Allocates `size` bytes for a table and returns its physical address,
    /// or `None` when out of memory (the engine turns that into
    /// [`Error::NoMemory`](super::Error::NoMemory) and rolls back).
    ///
    /// `size` is the granule size for every table except a concatenated
    /// root, which is up to 16 granules. The memory must be aligned to
    /// `size`, zeroed, and, on a non-coherent SMMU, already cleaned to the
    /// point of coherency so the walker reads zeroes.
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr>;

    /// Returns a table to the allocator. The engine only calls this once no
    /// walker can reach the table any more (after the invalidation that
    /// removed it and its sync completed). The page contents are arbitrary.
    fn free_table(&mut self, pa: PhysAddr, size: u64);

    /// Returns several tables of `size` bytes at once, under the same
    /// conditions as [`free_table`](Self::free_table). The default frees
    /// them one by one; an allocator behind a lock takes it once per batch.
    fn free_tables(&mut self, tables: &[PhysAddr], size: u64) {
        for &pa in tables {
            self.free_table(pa, size);
        }
    }

    /// Reads descriptor `index` of the table at `table`. For a concatenated
    /// root `index` runs over all its tables. A plain load is enough: only
    /// the engine writes descriptors (no hardware access/dirty updates are
    /// enabled), and plain loads let the compiler vectorise scans.
    fn read(&self, table: PhysAddr, index: usize) -> u64;

    /// Writes descriptor `index` of the table at `table` with one 64-bit
    /// single-copy-atomic store.
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64);

    /// Orders every earlier write to table memory (the allocator's zeroing
    /// included) before every later one, as the walker observes them. The
    /// engine calls it right before the store that links a new table: a
    /// walker may follow that link as soon as it sees it, and without the
    /// barrier it could read the new table's earlier contents, e.g. a
    /// reused page's old descriptors (Linux's io-pgtable-arm issues
    /// `dma_wmb()` before installing a table). Needed for a coherent
    /// walker as much as for a non-coherent one: [`publish`](Self::publish)
    /// may do nothing. For an SMMU on AArch64: `DMB OSHST`.
    fn barrier_before_link(&mut self);

    /// Called after the engine wrote descriptors `first..first + count` of
    /// `table` and before it relies on the walker seeing them (before it
    /// returns from `map`/`unmap`, so before any invalidation for them is
    /// issued). A non-coherent SMMU cleans those lines to the point of
    /// coherency here (`DC CVAC` + `DSB ISHST`); a coherent one needs
    /// nothing, hence the empty default. A new table is published before the
    /// descriptor linking it is written. Writes the walker cannot observe
    /// are not published: free-list links in unreachable pages and
    /// occupancy counts in ignored bits of table descriptors.
    #[inline(always)]
    fn publish(&mut self, table: PhysAddr, first: usize, count: usize) {
        let _ = (table, first, count);
    }
}

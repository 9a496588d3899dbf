//! The hyp's physical page pool: a buddy allocator over the carve-out.
//!
//! Hands out naturally aligned, physically contiguous power-of-two runs of
//! [`PAGE_SIZE`] pages (page tables, stream tables, queues). Exhaustion is
//! an error value; the caller decides what it means. `buddy_system_allocator::Heap`
//! keeps its free lists inside the free memory itself, so the pool needs no
//! other allocator; the hyp's memory is identity mapped, so the addresses it
//! returns are physical addresses.

use super::PAGE_SIZE;
use crate::memmap::PhysRange;
use buddy_system_allocator::Heap;
use core::alloc::Layout;
use core::ptr::NonNull;

/// The pool has no run of the requested size and alignment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OutOfMemory;

/// A page pool over one or more ranges of identity-mapped memory.
pub struct PagePool {
    heap: Heap<33>,
}

fn layout(size: u64, align: u64) -> Result<Layout, OutOfMemory> {
    let size = size.max(PAGE_SIZE).next_power_of_two();
    let align = align.max(PAGE_SIZE).next_power_of_two();
    Layout::from_size_align(size as usize, align as usize).map_err(|_| OutOfMemory)
}

impl PagePool {
    pub const fn new() -> Self {
        Self { heap: Heap::new() }
    }

    /// Adds the whole pages inside `range` to the pool.
    ///
    /// # Safety
    /// `range` must be memory that nothing else uses, readable and writable
    /// at the address equal to its physical address, for as long as the pool
    /// lives.
    pub unsafe fn add(&mut self, range: PhysRange) {
        let start = range.start.next_multiple_of(PAGE_SIZE);
        let end = range.end() & !(PAGE_SIZE - 1);
        if end > start {
            // SAFETY: the caller guarantees the range is ours to manage.
            unsafe { self.heap.add_to_heap(start as usize, end as usize) };
        }
    }

    /// Allocates `size` bytes (rounded up to a power-of-two number of pages)
    /// aligned to `align` (at least a page). The memory is not zeroed.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<PhysRange, OutOfMemory> {
        let layout = layout(size, align)?;
        let ptr = self.heap.alloc(layout).map_err(|_| OutOfMemory)?;
        Ok(PhysRange::new(ptr.as_ptr() as u64, layout.size() as u64))
    }

    /// Returns a range that [`alloc`](Self::alloc) handed out with the same
    /// `align`.
    pub fn free(&mut self, range: PhysRange, align: u64) {
        let (Ok(layout), Some(ptr)) = (
            layout(range.size, align),
            NonNull::new(range.start as *mut u8),
        ) else {
            return;
        };
        // SAFETY: `range` came from `alloc` with this layout (caller's
        // contract, as for any allocator).
        unsafe { self.heap.dealloc(ptr, layout) };
    }

    /// Bytes currently handed out.
    pub fn used_bytes(&self) -> usize {
        self.heap.stats_alloc_actual()
    }

    /// Bytes the pool manages.
    pub fn total_bytes(&self) -> usize {
        self.heap.stats_total_bytes()
    }
}

impl Default for PagePool {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Page-aligned host memory standing in for the carve-out.
    fn arena(pages: usize) -> (Vec<u8>, PhysRange) {
        let buf = std::vec![0u8; (pages + 1) * PAGE_SIZE as usize];
        let start = (buf.as_ptr() as u64).next_multiple_of(PAGE_SIZE);
        (buf, PhysRange::new(start, pages as u64 * PAGE_SIZE))
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_counted() {
        let (_buf, range) = arena(64);
        let mut pool = PagePool::new();
        // SAFETY: `_buf` outlives `pool` and is used for nothing else.
        unsafe { pool.add(range) };
        assert_eq!(pool.total_bytes(), 64 * 4096);
        let a = pool.alloc(0x1000, 0x1000).unwrap();
        let b = pool.alloc(0x3000, 0x1000).unwrap();
        assert_eq!(b.size, 0x4000, "rounded up to a power of two");
        let c = pool.alloc(0x1_0000, 0x1_0000).unwrap();
        assert_eq!(c.start % 0x1_0000, 0);
        assert!(!a.overlaps(&b) && !b.overlaps(&c) && !a.overlaps(&c));
        for r in [a, b, c] {
            assert!(range.contains_range(&r));
        }
        assert_eq!(pool.used_bytes(), (1 + 4 + 16) * 4096);
        pool.free(a, 0x1000);
        pool.free(b, 0x1000);
        pool.free(c, 0x1_0000);
        assert_eq!(pool.used_bytes(), 0);
    }

    #[test]
    fn exhaustion_is_an_error_and_recovers_after_free() {
        let (_buf, range) = arena(4);
        let mut pool = PagePool::new();
        // SAFETY: as above.
        unsafe { pool.add(range) };
        let all: Vec<_> = (0..4)
            .map(|_| pool.alloc(0x1000, 0x1000).unwrap())
            .collect();
        assert_eq!(pool.alloc(0x1000, 0x1000), Err(OutOfMemory));
        pool.free(all[2], 0x1000);
        assert_eq!(pool.alloc(0x1000, 0x1000), Ok(all[2]));
        assert_eq!(pool.alloc(0x8000, 0x1000), Err(OutOfMemory));
    }
}

//! Stage-2 table memory for the page-table engine: pages from the hyp's
//! pool, identity mapped, read and written with single 64-bit accesses.

use super::mem::PAGE_POOL;
use crate::arch::aarch64::cache;
use crate::mem::PAGE_SIZE;
use crate::memmap::PhysRange;
use crate::pgtable::{PhysAddr, TableMemory};
use crate::smmu::dma::dma_wmb;

/// Tables for the SMMU walker. `coherent` is the SMMU's IDR0.COHACC: a
/// non-coherent walker reads RAM, so descriptors are cleaned to the point
/// of coherency as the engine publishes them.
pub struct PoolTables {
    pub coherent: bool,
}

// SAFETY: tables are pool pages, handed out once until freed, zeroed (and
// cleaned for a non-coherent walker) before they are returned, identity
// mapped so the address returned is the one the walker reads; `write` is
// one aligned 64-bit volatile store.
unsafe impl TableMemory for PoolTables {
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr> {
        let range = PAGE_POOL.lock().alloc(size, size).ok()?;
        // SAFETY: the pool just handed this range to us; it is normal
        // memory mapped read-write at its physical address.
        unsafe { cache::zero(range.start, range.size) };
        if !self.coherent {
            cache::clean_to_poc(range.start, range.size);
        }
        Some(range.start)
    }

    fn free_table(&mut self, pa: PhysAddr, size: u64) {
        let size = size.next_power_of_two().max(PAGE_SIZE);
        PAGE_POOL.lock().free(PhysRange::new(pa, size), size);
    }

    fn free_tables(&mut self, tables: &[PhysAddr], size: u64) {
        let size = size.next_power_of_two().max(PAGE_SIZE);
        let mut pool = PAGE_POOL.lock();
        for &pa in tables {
            pool.free(PhysRange::new(pa, size), size);
        }
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a table this memory allocated (the engine's
        // contract) and `index` is inside it.
        unsafe { core::ptr::read_volatile((table as *const u64).add(index)) }
    }

    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // SAFETY: as for `read`; an aligned 64-bit store is single-copy
        // atomic, so the walker never sees half a descriptor.
        unsafe { core::ptr::write_volatile((table as *mut u64).add(index), desc) }
    }

    fn barrier_before_link(&mut self) {
        dma_wmb();
    }

    fn publish(&mut self, table: PhysAddr, first: usize, count: usize) {
        if !self.coherent {
            cache::clean_to_poc(table + first as u64 * 8, count as u64 * 8);
        }
    }
}

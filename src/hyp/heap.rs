//! EL2's global allocator, used at boot only: the device-tree writer
//! (`vm-fdt`, in `crate::dt::el1_tree`) needs `alloc`.
//!
//! The heap is a few pages of the page pool, sized from the input tree
//! before anything is allocated, so that writing the tree cannot run out:
//! an allocation failure would still be an EL2 panic with a message
//! ("memory allocation of N bytes failed"), never a hang, since stable Rust
//! has no way to recover from one. Nothing allocates after boot.

use super::mem::PAGE_POOL;
use crate::mem::PAGE_SIZE;
use crate::memmap::PhysRange;
use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// The smallest heap given, whatever the tree's size.
const MIN_HEAP: u64 = 256 << 10;

/// Bytes of heap that reading and rewriting a tree of `tree_bytes` needs,
/// with room to spare: the parsed nodes, the writer's output and strings,
/// and the buddy allocator's rounding to powers of two.
pub fn size_for_tree(tree_bytes: u64) -> u64 {
    (tree_bytes.saturating_mul(8) + (64 << 10))
        .max(MIN_HEAP)
        .next_power_of_two()
}

/// Gives the heap `bytes` from the page pool; returns the range, or `None`
/// when the pool cannot.
pub fn init(bytes: u64) -> Option<PhysRange> {
    let range = PAGE_POOL.lock().alloc(bytes, PAGE_SIZE).ok()?;
    // SAFETY: the range was just taken from the pool, so nothing else uses
    // it; the pool is identity mapped read-write for the hyp's lifetime.
    unsafe {
        HEAP.lock()
            .add_to_heap(range.start as usize, range.end() as usize)
    };
    Some(range)
}

//! Memory the SMMU reads and writes (queues, stream tables): the allocation
//! and cache-maintenance boundary.

use core::ptr::NonNull;

/// Allocation failures. Exhaustion is an error value, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// No memory satisfying the size and alignment is left.
    Exhausted,
}

/// A block of DMA memory owned by the driver: its physical address (what the
/// SMMU is told) and a CPU pointer to it (what the driver writes through).
///
/// Not `Clone`: the value is the ownership token handed back to
/// [`DmaMemory::free`].
#[derive(Debug)]
pub struct DmaRegion {
    pa: u64,
    va: NonNull<u8>,
    size: usize,
}

// SAFETY: a region is exclusively owned memory; moving the token to another
// CPU (e.g. the driver behind a lock) does not create aliasing.
unsafe impl Send for DmaRegion {}

impl DmaRegion {
    /// Describes memory handed out by a [`DmaMemory`] implementation.
    pub const fn new(pa: u64, va: NonNull<u8>, size: usize) -> Self {
        Self { pa, va, size }
    }

    pub const fn pa(&self) -> u64 {
        self.pa
    }

    pub const fn va(&self) -> NonNull<u8> {
        self.va
    }

    pub const fn size(&self) -> usize {
        self.size
    }

    /// Pointer to the 64-bit word at `offset`; panics on an offset outside
    /// the region or misaligned (a driver bug, never data-dependent).
    fn word(&self, offset: usize) -> *mut u64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.size,
            "DMA access at {offset:#x} outside a {:#x}-byte region",
            self.size
        );
        // SAFETY: the offset is inside the region checked above, so the
        // result stays within the same allocation.
        unsafe { self.va.as_ptr().add(offset).cast::<u64>() }
    }

    /// Reads a 64-bit word the SMMU may write concurrently (volatile: the
    /// compiler must not cache or merge it).
    pub(crate) fn read_u64(&self, offset: usize) -> u64 {
        let p = self.word(offset);
        // SAFETY: `DmaMemory`'s contract makes the region valid, 8-byte
        // aligned memory owned by us for its lifetime; `word` bounds-checked
        // the offset.
        unsafe { p.read_volatile() }
    }

    /// Writes a 64-bit word the SMMU may read concurrently. An aligned
    /// 64-bit store is single-copy atomic, which the STE update protocol
    /// relies on.
    pub(crate) fn write_u64(&self, offset: usize, value: u64) {
        let p = self.word(offset);
        // SAFETY: as in `read_u64`.
        unsafe { p.write_volatile(value) }
    }
}

/// Orders earlier stores to DMA memory before later ones as seen by the
/// SMMU (Linux's `dma_wmb`): e.g. a level-2 table's contents before the
/// level-1 descriptor that points at it.
#[inline(always)]
pub(crate) fn dma_wmb() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier instruction; it changes no state. Not `nomem`, so
    // the compiler does not move memory accesses across it either.
    unsafe {
        core::arch::asm!("dmb oshst", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}

/// Provider of DMA memory for the SMMU's queues and tables.
///
/// # Safety
///
/// An implementation promises that every region returned by
/// [`alloc_zeroed`](Self::alloc_zeroed):
/// - is `size` bytes (or more) of zeroed, physically contiguous normal
///   memory that nothing else uses until it is freed;
/// - has `va` mapped in the current address space and `pa` its physical
///   (SMMU-visible) address, both aligned to the requested `align`.
///
/// The driver checks the alignment and size it can see, but it has to trust
/// the mapping.
pub unsafe trait DmaMemory {
    /// Allocates `size` zeroed bytes aligned to `align` (a power of two).
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<DmaRegion, DmaError>;

    /// Returns a region.
    ///
    /// # Safety
    ///
    /// `region` came from this allocator, the driver no longer uses any
    /// pointer into it, and the SMMU has been told to stop accessing it.
    unsafe fn free(&self, region: DmaRegion);

    /// Makes CPU writes to `region[offset..offset + len]` visible to a
    /// non-coherent SMMU (clean to the point of coherency). Only called when
    /// `SMMU_IDR0.COHACC == 0`.
    fn clean_for_device(&self, region: &DmaRegion, offset: usize, len: usize);

    /// Makes SMMU writes to `region[offset..offset + len]` visible to the
    /// CPU (invalidate to the point of coherency). Only called when
    /// `SMMU_IDR0.COHACC == 0`.
    fn invalidate_for_cpu(&self, region: &DmaRegion, offset: usize, len: usize);
}

// SAFETY: forwards to an implementation that upholds the contract.
unsafe impl<T: DmaMemory + ?Sized> DmaMemory for &T {
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<DmaRegion, DmaError> {
        (**self).alloc_zeroed(size, align)
    }
    unsafe fn free(&self, region: DmaRegion) {
        // SAFETY: the caller upholds `free`'s contract.
        unsafe { (**self).free(region) }
    }
    fn clean_for_device(&self, region: &DmaRegion, offset: usize, len: usize) {
        (**self).clean_for_device(region, offset, len)
    }
    fn invalidate_for_cpu(&self, region: &DmaRegion, offset: usize, len: usize) {
        (**self).invalidate_for_cpu(region, offset, len)
    }
}

//! Physical memory as the hyp accounts for it: the one record of who owns
//! each RAM page, and the hyp's own page pool.
//!
//! * [`ownership`]: per-page owner (EL1, EL2, or `no-map` reserved memory
//!   nobody may hand on) and DMA reference counts,
//!   the only page-state record. Every user (the IOMMU service today; a
//!   host stage-2 and guests later) borrows the same
//!   [`OwnershipTracker`], so a page can never be EL2's in one place and
//!   reachable by a device in another. Also what a physical range outside
//!   RAM is ([`PhysPolicy`]: MMIO a device may be given, or forbidden: the
//!   hyp's own MMIO, listed once by [`forbidden_mmio`]).
//! * [`page_pool`]: the buddy allocator the hyp's tables and queues come
//!   from.
//!
//! Every page size the hyp uses for RAM (ownership granularity, pool
//! pages, the EL2 stage-1 granule) is [`PAGE_SIZE`].

pub mod ownership;
pub mod page_pool;

pub use ownership::{
    MAX_FORBIDDEN, Owner, OwnershipError, OwnershipTracker, PaClass, PhysPolicy, forbidden_mmio,
};
pub use page_pool::{OutOfMemory, PagePool};

/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// The hyp's page: 4 KiB.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

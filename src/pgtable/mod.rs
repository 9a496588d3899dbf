//! Stage-2 LPAE IO page tables for the SMMUv3, with break-before-make by
//! construction and an invalidation gather handed back as data.
//!
//! * [`Config`]: granule, IPA and output sizes, start level, concatenation,
//!   and the STE fields (`S2T0SZ`, `S2SL0`, `S2TG`, `S2PS`).
//! * [`TableMemory`]: how tables are allocated, read, written and (for a
//!   non-coherent SMMU) published. The engine allocates nothing else.
//! * [`PageTable`]: `map` / `unmap` / `flush` / `iova_to_phys` / walks.
//! * [`Gather`] / [`Invalidation`] / [`TlbMaintenance`]: what must be
//!   invalidated after an unmap, per page, as SMMUv3 range commands, or
//!   VMID-wide, followed by exactly one sync, after which freed tables are
//!   released.
//!
//! The usage contract for the SMMU driver:
//!
//! ```text
//! let cfg = Config::new(Granule::Size4K, 40, oas, StartLevelPolicy::NoConcatenation)?;
//! let mut pt = PageTable::new(cfg, mem)?;            // STE: pt.root(), cfg.s2t0sz(), ...
//! pt.map(iova, pa, size, Prot::RW)?;                 // no invalidation needed
//! let r = pt.unmap(iova, size, UnmapFlags::EXACT)?;  // gather filled
//! pt.flush(&mut smmu_tlb)?;                           // TLBIs + one CMD_SYNC + frees
//! ```
//!
//! See `docs/pgtable.md` for the format, the BBM rules and how the host-side
//! auditor checks them.

mod config;
pub mod descriptor;
mod engine;
mod error;
mod gather;
mod memory;

#[cfg(any(test, feature = "testing"))]
pub mod audit;
#[cfg(any(test, feature = "testing"))]
pub mod harness;
#[cfg(any(test, feature = "testing"))]
pub mod hostmem;

#[cfg(test)]
mod tests;

pub use config::{Config, Granule, MAX_CONCATENATED, MAX_IPA_BITS, MIN_IPA_BITS, StartLevelPolicy};
pub use descriptor::{MemType, Prot};
pub use engine::{Leaf, PageTable, TableInfo, UnmapFlags, Unmapped};
pub use error::Error;
pub use gather::{
    GATHER_CAPACITY, Gather, InvRange, Invalidation, Invalidations, LEVEL_MIXED, PER_PAGE_LIMIT,
    SUBTREE_CAPACITY, TlbMaintenance,
};
pub use memory::{PhysAddr, TableMemory};

//! IOMMU domains: the stage-2 page-table engine joined to the SMMU driver,
//! behind a typed core that every front end (the hypercalls today,
//! `crate::hypercall::calls`) drives.
//!
//! * [`api`]: the core's argument and result types; no ABI bits.
//! * [`service`]: [`IommuService`], the core: one method per operation,
//!   every semantic check.
//! * [`backend`]: what the service needs from an SMMU and from table memory.
//! * [`tlb`]: the engine's invalidations as SMMU commands, one CMD_SYNC per
//!   SMMU.
//! * [`domain`], [`attach`], [`vmid`], [`unmap`], [`error`]: its parts.
//!
//! Page ownership is not here: the service borrows the one record in
//! `crate::mem::ownership`.

pub mod api;
pub mod attach;
pub mod backend;
pub mod domain;
pub mod error;
pub mod service;
pub mod tlb;
pub mod unmap;
pub mod vmid;

pub use api::{DomainId, Pages, StreamRef, UnmapMode};
pub use attach::StreamRange;
pub use backend::{SmmuBackend, SmmuStats, TableAllocator};
pub use domain::DomainSlot;
pub use error::IommuError;
pub use service::{IommuService, MAX_MAP_LIST, ServiceConfig, ServiceError};

#[cfg(test)]
pub(crate) mod tests;

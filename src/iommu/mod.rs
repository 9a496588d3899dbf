//! IOMMU domains: the stage-2 page-table engine joined to the SMMU driver,
//! and the service behind the IOMMU hypercalls.
//!
//! * [`backend`]: what the service needs from an SMMU and from table memory.
//! * [`tlb`]: the engine's invalidations as SMMU commands, one CMD_SYNC per
//!   SMMU.
//! * [`service`]: [`IommuService`], one method per hypercall; [`calls`]
//!   plugs it into the dispatcher.
//! * [`domain`], [`attach`], [`vmid`], [`unmap`], [`prot`], [`error`]: its
//!   parts.

pub mod attach;
pub mod backend;
pub mod calls;
pub mod domain;
pub mod error;
pub mod prot;
pub mod service;
pub mod tlb;
pub mod unmap;
pub mod vmid;

pub use attach::StreamRange;
pub use backend::{SmmuBackend, SmmuStats, TableAllocator};
pub use domain::DomainSlot;
pub use error::IommuError;
pub use service::{IommuService, ServiceConfig, ServiceError};

#[cfg(test)]
mod tests;

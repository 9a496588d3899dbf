//! Device drivers that are not the SMMU.
pub mod edu;
pub mod pl011;

//! Device drivers that are not the SMMU.
pub mod pl011;

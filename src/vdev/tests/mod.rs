//! Host tests of the virtio-iommu device: a driver written from the spec
//! (`driver`) drives the device over test memory that audits every access
//! (`memory`) and a model of the IOMMU core (`backend`).

pub mod backend;
pub mod driver;
pub mod memory;

mod faults;
mod malformed;
mod ordering;
mod random;
mod requests;
mod service;
mod transport;

//! smmu-hyp: a pKVM-style EL2 component that owns the Arm SMMUv3.
//!
//! Everything that does not need the CPU (device tree, memory map, page
//! tables, SMMU encodings, hypercall validation) lives in this library and is
//! unit-tested on the host. Code that touches system registers lives under
//! `arch` and only builds for `aarch64-unknown-none`.
#![cfg_attr(not(test), no_std)]

pub mod bootargs;
pub mod checks;
pub mod console;
pub mod drivers;
pub mod esr;
pub mod exit;
pub mod hypercall;
pub mod image;
pub mod iommu;
pub mod layout;
pub mod memmap;
pub mod ownership;
pub mod page_pool;
pub mod pci;
pub mod pgtable;
pub mod platform;
pub mod smccc;
pub mod smmu;
pub mod stage1;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod hyp;
pub mod smp;
pub mod vdev;

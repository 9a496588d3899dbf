//! smmu-hyp: a pKVM-style EL2 component that owns the Arm SMMUv3.
//!
//! Everything that does not need the CPU (device tree, memory map, page
//! tables, SMMU encodings, hypercall validation) lives in this library and is
//! unit-tested on the host. Code that touches system registers lives under
//! `arch` and only builds for `aarch64-unknown-none`.
#![cfg_attr(not(test), no_std)]

pub mod pgtable;
pub mod memmap;
pub mod platform;
pub mod bootargs;
pub mod esr;
pub mod image;
pub mod stage1;
pub mod exit;
pub mod layout;
pub mod page_pool;
pub mod smccc;
pub mod hypercall;
pub mod drivers;
pub mod console;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod hyp;

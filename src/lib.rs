//! smmu-hyp: a pKVM-style EL2 component that owns the Arm SMMUv3.
//!
//! Everything that does not need the CPU (device tree, memory map, page
//! tables, SMMU encodings, hypercall validation) lives in this library and is
//! unit-tested on the host. Code that touches system registers lives under
//! `arch` and only builds for `aarch64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod bootargs;
pub mod checks;
pub mod console;
pub mod drivers;
pub mod dt;
pub mod el2_controls;
pub mod esr;
pub mod exit;
pub mod host_s2;
pub mod hypercall;
pub mod image;
pub mod inject;
pub mod iommu;
pub mod layout;
pub mod mem;
pub mod memmap;
pub mod multiboot;
pub mod pci;
pub mod pgtable;
pub mod platform;
pub mod pstate;
pub mod smccc;
pub mod smmu;
pub mod stacks;
pub mod stage1;
pub mod vdev;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod hyp;
pub mod smp;

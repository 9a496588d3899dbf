//! AArch64 EL2: boot constants, system registers, exceptions, MMU, EL1 entry.

pub mod cache;
pub mod el1;
pub mod exception;
pub mod image;
pub mod inject;
pub mod mmu;
pub mod semihosting;
pub mod smc;
pub mod stage2;

use aarch64_cpu::registers::{CurrentEL, Readable};

/// CPTR_EL2 (E2H = 0): RES1 bits set, TFP = 0 so FP/SIMD is not trapped
/// (compiled Rust uses it); SVE (TZ) and SME (TSM) stay trapped.
pub const CPTR_EL2_VALUE: u64 = 0x33ff;

/// CPUs the hyp has stacks for: as many as the device tree may list.
pub const MAX_CPUS: usize = crate::platform::MAX_CPUS;
/// One stack slot: a 4 KiB unmapped guard page below a 64 KiB stack. Must
/// match the `.stacks` section in `linker/hyp.ld`.
pub const STACK_GUARD_SIZE: usize = 0x1000;
pub const STACK_SLOT_SIZE: usize = 0x11000;

/// This CPU's MPIDR_EL1.
pub fn mpidr() -> u64 {
    use aarch64_cpu::registers::MPIDR_EL1;
    MPIDR_EL1.get()
}

/// The exception level the CPU runs at (2 for the hyp).
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

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

/// CPTR_EL2 (E2H = 0) from the first instruction: FP/SIMD not trapped
/// (compiled Rust uses it); SVE and SME trapped until an EL1 kernel starts
/// (`el1::enter` untraps them, see `crate::el2_controls`).
pub const CPTR_EL2_VALUE: u64 = crate::el2_controls::CPTR_EL2_BOOT;

/// This CPU's MPIDR_EL1.
pub fn mpidr() -> u64 {
    use aarch64_cpu::registers::MPIDR_EL1;
    MPIDR_EL1.get()
}

/// The exception level the CPU runs at (2 for the hyp).
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

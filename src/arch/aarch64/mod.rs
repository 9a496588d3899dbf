//! AArch64 EL2: boot constants, system registers, exceptions, MMU, EL1 entry.

pub mod cache;
pub mod el1;
pub mod exception;
pub mod image;
pub mod mmu;
pub mod semihosting;
pub mod smc;

use aarch64_cpu::registers::{CurrentEL, Readable};

/// CPTR_EL2 (E2H = 0): RES1 bits set, TFP = 0 so FP/SIMD is not trapped
/// (compiled Rust uses it); SVE (TZ) and SME (TSM) stay trapped.
pub const CPTR_EL2_VALUE: u64 = 0x33ff;

/// CPUs the hyp has stacks for: as many as the device tree may list.
pub const MAX_CPUS: usize = crate::platform::MAX_CPUS;
/// One stack slot: an unmapped guard page below a 64 KiB stack. Must
/// match the `.stacks` section in `linker/hyp.ld`.
pub const STACK_GUARD_SIZE: usize = crate::mem::PAGE_SIZE as usize;
pub const STACK_SLOT_SIZE: usize = 0x11000;
/// An exception taken from EL2 with less than this much of its stack slot
/// below SP (the guard page, then room for a crash report) is handled on
/// an emergency stack (`vectors.S`).
pub const EXCEPTION_STACK_MIN: usize = STACK_GUARD_SIZE + 0x1000;

/// The emergency stack of an exception taken from EL2 whose SP is in no
/// stack slot (say, before `boot.S` set one up). One for all CPUs: such an
/// exception ends the run.
#[repr(C, align(16))]
pub struct WildSpStack([u8; WILD_SP_STACK_SIZE]);
pub const WILD_SP_STACK_SIZE: usize = 0x2000;
/// Written only by `vectors.S`, as a stack.
pub static mut WILD_SP_STACK: WildSpStack = WildSpStack([0; WILD_SP_STACK_SIZE]);

/// This CPU's MPIDR_EL1.
pub fn mpidr() -> u64 {
    use aarch64_cpu::registers::MPIDR_EL1;
    MPIDR_EL1.get()
}

/// The exception level the CPU runs at (2 for the hyp).
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

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

/// HCR_EL2 from the first instruction (`boot.S`), whatever firmware left:
/// E2H = 0 and TGE = 0, the layout every EL2 register is used with; RW,
/// EL1 is AArch64. `el1::enter` sets the value EL1 runs with.
pub const HCR_EL2_BOOT: u64 = 1 << 31;

/// SCTLR_EL2 from the first instruction (`boot.S`): see
/// [`mmu::SCTLR_EL2_BOOT`].
pub const SCTLR_EL2_BOOT: u64 = mmu::SCTLR_EL2_BOOT;

// `boot.S` builds both from two 16-bit immediates.
const _: () = assert!(HCR_EL2_BOOT >> 32 == 0 && SCTLR_EL2_BOOT >> 32 == 0);

/// An exception taken from EL2 with less than this much of its stack slot
/// below SP (the guard page, then room for a crash report) is handled on
/// an emergency stack (`vectors.S`).
pub const EXCEPTION_STACK_MIN: u64 = crate::layout::STACK_GUARD_SIZE + 0x1000;

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

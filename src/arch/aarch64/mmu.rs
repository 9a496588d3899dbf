//! The EL2 stage-1 MMU and caches: the register values every CPU uses, and
//! turning them on for the boot CPU. Secondary CPUs turn theirs on in
//! `boot.S`, from the same values (see `smp::boot_data`).

use super::cache;
use crate::memmap::PhysRange;
use crate::smp::boot_data::MmuRegisters;
use crate::stage1;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable,
};
use core::arch::asm;

/// SCTLR_EL2 RES1 bits (E2H = 0).
const SCTLR_EL2_RES1: u64 = (1 << 4)
    | (1 << 5)
    | (1 << 11)
    | (1 << 16)
    | (1 << 18)
    | (1 << 22)
    | (1 << 23)
    | (1 << 28)
    | (1 << 29);
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_SA: u64 = 1 << 3;
const SCTLR_I: u64 = 1 << 12;
/// Writable implies never-executable.
const SCTLR_WXN: u64 = 1 << 19;

/// SCTLR_EL2 while the MMU is off (`boot.S`, before the first data
/// access): little-endian, no alignment check, MMU and data cache off,
/// the instruction cache on (booting.rst lets the loader enter with it
/// either way).
pub const SCTLR_EL2_BOOT: u64 = SCTLR_EL2_RES1 | SCTLR_I;

/// The registers for the identity map rooted at `root`. TCR_EL2's output
/// size comes from this CPU's ID_AA64MMFR0_EL1.PARange; every CPU of the
/// system is expected to report the same.
pub fn registers(root: u64) -> MmuRegisters {
    let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
    MmuRegisters {
        mair: stage1::MAIR_EL2_VALUE,
        tcr: stage1::tcr_el2(pa_range),
        ttbr0: root,
        sctlr: SCTLR_EL2_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I | SCTLR_WXN,
    }
}

/// Enables the MMU on the boot CPU.
///
/// `written_with_mmu_off` is memory this CPU wrote while the MMU was off
/// (tables, BSS, its stack): its lines are invalidated first so that no
/// stale cache line from before the hand-over can shadow what is in RAM.
///
/// # Safety
/// `regs.ttbr0` must be a complete identity map of everything the hyp
/// touches from here on, including the code running now and its stack.
pub unsafe fn enable(regs: &MmuRegisters, written_with_mmu_off: PhysRange) {
    cache::invalidate_to_poc(written_with_mmu_off.start, written_with_mmu_off.size);
    MAIR_EL2.set(regs.mair);
    TCR_EL2.set(regs.tcr);
    TTBR0_EL2.set(regs.ttbr0);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating EL2's TLB only costs walks.
    unsafe { asm!("tlbi alle2", "dsb nsh", "isb", options(nostack)) };
    SCTLR_EL2.set(regs.sctlr);
    barrier::isb(barrier::SY);
    cache::invalidate_icache();
}

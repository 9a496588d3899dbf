//! The generic timer's virtual counter, for timing from EL1. Under QEMU
//! with `-icount shift=N` virtual time advances 2^N ns per instruction, so
//! counter ticks convert to guest instructions deterministically.

use core::arch::asm;

/// CNTVCT_EL0, after an ISB so earlier instructions are done.
#[inline(always)]
pub fn ticks() -> u64 {
    let t: u64;
    // SAFETY: reading the virtual counter has no side effects; EL1 may
    // always read it.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t
}

/// CNTFRQ_EL0: counter ticks per second.
pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: as for `ticks`.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f
}

/// Nanoseconds of virtual time in `ticks` counter ticks.
pub fn nanos(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(frequency().max(1))) as u64
}

//! Data and instruction cache maintenance by address range.

use core::arch::asm;

/// The smallest data cache line, from CTR_EL0.DminLine.
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

macro_rules! dc_range {
    ($name:ident, $op:literal, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(start: u64, size: u64) {
            let line = dcache_line();
            let mut addr = start & !(line - 1);
            while addr < start + size {
                // SAFETY: cache maintenance by VA of mapped memory (or any
                // address with the MMU off); it does not change memory
                // contents as seen by this CPU.
                unsafe { asm!(concat!("dc ", $op, ", {}"), in(reg) addr, options(nostack)) };
                addr += line;
            }
            // SAFETY: a barrier only.
            unsafe { asm!("dsb sy", options(nostack)) };
        }
    };
}

dc_range!(
    clean_to_poc,
    "cvac",
    "Writes dirty lines of the range back to the point of coherency."
);
dc_range!(
    clean_invalidate_to_poc,
    "civac",
    "Writes dirty lines of the range back and discards them, so the next read comes from the point of coherency."
);
dc_range!(
    invalidate_to_poc,
    "ivac",
    "Discards the range's lines. Only for memory whose latest contents are in RAM (written with the MMU off)."
);

/// Invalidates all instruction caches to the point of unification.
pub fn invalidate_icache() {
    // SAFETY: invalidating the I-cache only costs refetches.
    unsafe { asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
}

/// Zeroes `[start, start + size)` of normal memory the caller may write,
/// a cache block at a time with `DC ZVA` where the architecture allows it
/// (`DCZID_EL0.DZP` clear; at EL2 nothing traps it), else with stores. A
/// 4 KiB table then costs 64 instructions instead of hundreds of stores.
///
/// # Safety
///
/// The range is mapped, writable normal memory that nothing else uses.
pub unsafe fn zero(start: u64, size: u64) {
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    let block = 4u64 << (dczid & 0xf);
    let prohibited = dczid & (1 << 4) != 0;
    if prohibited || !start.is_multiple_of(block) || !size.is_multiple_of(block) {
        // SAFETY: the caller's guarantee.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, size as usize) };
        return;
    }
    let mut addr = start;
    while addr < start + size {
        // SAFETY: zeroes one whole, aligned block inside the caller's
        // range (normal memory: DC ZVA on device memory would fault).
        unsafe { asm!("dc zva, {}", in(reg) addr, options(nostack)) };
        addr += block;
    }
}

//! The client side of the hypercall ABI (`smmu_hyp::hypercall::abi`), and
//! firmware calls that the hyp traps.

use core::arch::asm;

/// Makes an SMCCC call through `hvc #0` and returns x0..x3.
pub fn hvc(args: [u64; 4]) -> [u64; 4] {
    let mut r = args;
    // SAFETY: an SMCCC call to the hyp; it preserves x4..x17 but declare
    // them clobbered as SMCCC 1.0 allows.
    unsafe {
        asm!("hvc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2], inout("x3") r[3],
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
            out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
            out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack))
    };
    r
}

/// Makes an SMCCC call through `smc #0` (trapped by the hyp).
pub fn smc(args: [u64; 4]) -> [u64; 4] {
    let mut r = args;
    // SAFETY: as for `hvc`.
    unsafe {
        asm!("smc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2], inout("x3") r[3],
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
            out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
            out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack))
    };
    r
}

/// An SMCCC call with x0..x6 through `hvc #0`; returns x0..x3.
pub fn hvc8(args: [u64; 8]) -> [u64; 4] {
    let mut r = args;
    // SAFETY: as for `hvc`.
    unsafe {
        asm!("hvc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2], inout("x3") r[3],
            inout("x4") r[4], inout("x5") r[5], inout("x6") r[6], inout("x7") r[7],
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack))
    };
    [r[0], r[1], r[2], r[3]]
}

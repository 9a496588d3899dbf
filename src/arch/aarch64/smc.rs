//! Calls to firmware (PSCI) through `smc`.

use crate::smccc::Firmware;
use core::arch::asm;

/// Firmware reached with `smc #0`.
pub struct SmcFirmware;

impl Firmware for SmcFirmware {
    fn call(&self, args: [u64; 4]) -> [u64; 4] {
        let mut r = args;
        // SAFETY: an SMCCC call; firmware may clobber x4..x17 (SMCCC 1.0),
        // which are declared clobbered, and touches no memory of ours.
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
}

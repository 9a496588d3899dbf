//! Arm semihosting: ending a run under QEMU (`-semihosting`) with a status.

use core::arch::asm;

const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Ends the run with `status`. Without a semihosting host, `hlt` traps as
/// an undefined instruction, so only call this when semihosting is known to
/// be there.
pub fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status)];
    loop {
        // SAFETY: the semihosting host reads the two-word block and ends the
        // run; the block outlives the call.
        unsafe {
            asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack))
        };
    }
}

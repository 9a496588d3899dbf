//! Exit statuses of a run, shared by the hyp, the EL1 test kernel and the
//! QEMU test harness. On QEMU they reach the host through semihosting.

/// Everything asked for ran and passed.
pub const SUCCESS: u32 = 0;
/// The EL1 test kernel reported at least one failed check.
pub const TEST_FAILURE: u32 = 1;
/// EL2 took an exception it did not expect (the crash report precedes it).
pub const EL2_EXCEPTION: u32 = 3;
/// EL2 panicked (message and location precede it).
pub const EL2_PANIC: u32 = 4;
/// EL2 could not boot: bad device tree, no memory, no payload...
pub const BOOT_FAILURE: u32 = 5;
/// An exception from EL1 nobody expected: one the EL1 test kernel took
/// (an abort or undefined instruction the hyp injected lands there too),
/// or, reported by the hyp, an interrupt or SError taken from EL1, which
/// `HCR_EL2` never routes to EL2.
pub const EL1_EXCEPTION: u32 = 6;
/// EL2 overflowed a stack into its guard page (the decoded crash report,
/// made on an emergency stack, precedes it).
pub const EL2_STACK_OVERFLOW: u32 = 7;

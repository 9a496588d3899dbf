//! EL2 scenarios selected with `test=<name>` in bootargs, used by the QEMU
//! tests to check behaviour that only EL2 itself can show.

mod smmu_bench;
mod smmu_dma;

/// A check's detail for a result: `ok`, or the error.
struct Outcome<'r, T, E>(&'r Result<T, E>);

impl<T, E: core::fmt::Display> core::fmt::Display for Outcome<'_, T, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(_) => f.write_str("ok"),
            Err(e) => write!(f, "{e}"),
        }
    }
}

/// A check's detail for an address that may be missing.
struct Address(Option<u64>);

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a:#x}"),
            None => f.write_str("none"),
        }
    }
}

/// Runs the scenario named in bootargs, if it is one of EL2's.
pub fn run(name: &str) {
    match name {
        "smmu" => super::end_run(smmu_dma::run()),
        "smmu-concat" => super::end_run(smmu_dma::run_concatenation_pin()),
        "smmu-bench" => super::end_run(smmu_bench::run()),
        "el2-fault" => {
            log::info!("selftest: reading an unmapped address at EL2");
            // SAFETY: deliberately unsound: the address is unmapped and the
            // fault ends the run with a crash report, which is the test.
            let value = unsafe { core::ptr::read_volatile(0x10 as *const u64) };
            log::error!("selftest: the read returned {value:#x} instead of faulting");
        }
        "el2-panic" => panic!("selftest: deliberate EL2 panic"),
        "el2-wild-sp" => {
            log::info!("selftest: faulting at EL2 with SP outside every stack");
            // SAFETY: deliberately unsound: SP points at unmapped memory and
            // the load faults; the crash report (on the emergency stack) ends
            // the run, which is the test.
            unsafe {
                core::arch::asm!(
                    "mov sp, {sp}",
                    "ldr xzr, [sp]",
                    "b .",
                    sp = in(reg) 0x10u64,
                    options(noreturn)
                )
            }
        }
        "el2-stack-overflow" => {
            log::info!("selftest: recursing until EL2's boot stack overflows");
            let depth = recurse(0);
            log::error!("selftest: recursion returned at depth {depth} instead of faulting");
        }
        "el2-cpu-stack-overflow" => overflow_last_cpu_stack(),
        _ => {}
    }
}

/// Moves to the pool stack of the device tree's last CPU (a secondary,
/// never started: EL1 has not run yet) and recurses until it overflows.
/// `vectors.S` finds the CPUs' stacks only through the boot data record,
/// so this checks that record and the slot arithmetic for a slot other
/// than the boot CPU's.
fn overflow_last_cpu_stack() {
    let Some(stacks) = super::boot::LAYOUT.get().map(|l| l.stacks) else {
        log::error!("selftest: no boot layout");
        return;
    };
    let cpu = stacks.count - 1;
    let Some(top) = stacks.top(cpu) else {
        return;
    };
    log::info!("selftest: recursing on cpu{cpu}'s stack in the pool until it overflows");
    // SAFETY: that CPU never started, so nothing uses its stack, which is
    // mapped read-write; nothing returns here (the overflow ends the run).
    unsafe {
        core::arch::asm!(
            "mov sp, {top}",
            "bl {overflow}",
            top = in(reg) top,
            overflow = sym overflow_this_stack,
            options(noreturn)
        )
    }
}

/// Recurses on the current stack until it overflows.
extern "C" fn overflow_this_stack() -> ! {
    let depth = recurse(0);
    log::error!("selftest: recursion returned at depth {depth} instead of faulting");
    super::end_run(crate::exit::TEST_FAILURE)
}

/// Recurses with a 1 KiB frame until the stack runs into its guard page
/// (`black_box` keeps the frames and the recursion real).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    core::hint::black_box(&mut frame);
    if core::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + u64::from(frame[0])
}

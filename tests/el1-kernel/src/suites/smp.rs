//! Secondary CPUs through the hyp's PSCI interception.
//!
//! EL1 runs with its MMU off, so the CPUs talk through plain volatile
//! accesses to device memory (no exclusives needed).

use crate::hyp_client::smc;
use crate::println;
use crate::report::Report;
use smmu_hyp::platform::Platform;
use smmu_hyp::smccc::psci;
use smmu_hyp::smp::{ALREADY_ON, INVALID_ADDRESS};

/// CPUs this kernel can start (`entry.S` and `linker.ld` have a stack for each).
pub const MAX_CPUS: usize = 16;

/// `ARRIVED[i]` is the context value CPU `i` was started with, written by
/// CPU `i` itself.
static mut ARRIVED: [u64; MAX_CPUS] = [0; MAX_CPUS];

unsafe extern "C" {
    fn el1_secondary_entry();
}

fn arrived(cpu: usize) -> u64 {
    // SAFETY: an aligned read of a static; other CPUs only write it.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(ARRIVED[cpu])) }
}

/// Where CPU_ON starts a secondary CPU (from `entry.S`).
pub extern "C" fn secondary_main(cpu: u64) -> ! {
    if super::smp_stress::active() {
        super::smp_stress::worker(cpu as usize);
    }
    let el = crate::current_el();
    println!("el1: cpu{cpu} up at EL{el}");
    // SAFETY: each CPU writes only its own slot.
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!(ARRIVED[cpu as usize]),
            0x100 | cpu | el << 8,
        )
    };
    smc([u64::from(psci::CPU_OFF), 0, 0, 0]);
    println!("el1: cpu{cpu}: CPU_OFF returned");
    loop {
        core::hint::spin_loop();
    }
}

/// Where CPU_ON should start an EL1 CPU: `el1_secondary_entry` in
/// `entry.S` (stack, vectors, then [`secondary_main`]).
pub fn entry_point() -> u64 {
    el1_secondary_entry as *const () as u64
}

fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    smc([u64::from(psci::CPU_ON), mpidr, entry, context])[0] as i64
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let entry = entry_point();
    let cpus = platform.cpus.len();
    report.check("more than one CPU", cpus > 1, format_args!("{cpus} CPUs"));
    for cpu in 1..cpus.min(MAX_CPUS) {
        let r = cpu_on(platform.cpus[cpu], entry, cpu as u64);
        // Wait before printing: the new CPU prints its own line first (the
        // console has no lock).
        let mut polls = 0u64;
        while r == 0 && arrived(cpu) == 0 && polls < 100_000_000 {
            polls += 1;
            core::hint::spin_loop();
        }
        report.check("CPU_ON accepted", r == 0, format_args!("cpu{cpu}: {r}"));
        let seen = arrived(cpu);
        report.check(
            "secondary CPU entered EL1 at the requested entry with its context",
            seen == 0x100 | cpu as u64 | 1 << 8,
            format_args!("cpu{cpu}: {seen:#x} after {polls} polls"),
        );
    }
    let r = cpu_on(platform.cpus[0], entry, 0);
    report.check(
        "CPU_ON of a running CPU is ALREADY_ON",
        r as u64 == ALREADY_ON,
        format_args!("{r}"),
    );
    let r = cpu_on(0xff, entry, 0);
    report.check(
        "CPU_ON of an unknown MPIDR is INVALID_PARAMETERS",
        r as u64 == psci::INVALID_PARAMETERS,
        format_args!("{r}"),
    );
    if cpus > 1 {
        // The hyp's own image: EL1 code must never start there.
        let r = cpu_on(platform.cpus[1], 0x4020_0000, 0);
        report.check(
            "CPU_ON into EL2 memory is INVALID_ADDRESS",
            r as u64 == INVALID_ADDRESS,
            format_args!("{r}"),
        );
        let r = smc([u64::from(psci::AFFINITY_INFO), platform.cpus[0], 0, 0])[0];
        report.check(
            "AFFINITY_INFO of the boot CPU is ON (0)",
            r == 0,
            format_args!("{}", r as i64),
        );
    }
    println!("el1: smp suite done");
}

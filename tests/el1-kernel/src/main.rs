//! The EL1 test kernel: booted by the hyp at EL1, it exercises the hyp
//! through hypercalls and trapped firmware calls, prints one line per check
//! and ends the run with a status (0 = all passed, 1 = a check failed).
//!
//! The suite comes from `suite=<name>` in bootargs (`demo` by default).
#![no_std]
#![no_main]

mod arena;
mod console;
mod dma_device;
mod el2_layout;
mod fixture;
mod fuzz_gen;
mod hyp_client;
mod hyp_state;
mod iommu;
mod model;
mod msi_frames;
mod probe;
mod report;
mod rng;
mod suites;
mod timer;

use core::arch::global_asm;
use smmu_hyp::arch::aarch64::semihosting;
use smmu_hyp::{bootargs, exit, platform};

global_asm!(
    include_str!("entry.S"),
    main = sym kernel_main,
    exception = sym unexpected_exception,
    secondary = sym suites::smp::secondary_main,
);
global_asm!(include_str!("fp.S"), options(raw));

extern "C" fn kernel_main(dtb_pa: u64) -> ! {
    // SAFETY: the hyp passes the DTB in x0, per the arm64 boot protocol; its
    // header bounds the slice.
    let dtb = unsafe {
        let header = &*(dtb_pa as *const [u8; 8]);
        let size = platform::dtb_total_size(header).unwrap_or(0);
        core::slice::from_raw_parts(dtb_pa as *const u8, size)
    };
    let Ok(platform) = platform::Platform::parse(dtb, dtb_pa) else {
        semihosting::exit(exit::BOOT_FAILURE)
    };
    if let Some(uart) = platform.uart {
        console::init(uart.start);
    }
    let suite = bootargs::value(platform.bootargs, "suite").unwrap_or("demo");
    println!(
        "el1: test kernel running at EL{}, suite {suite}",
        current_el()
    );
    let mut report = report::new();
    suites::run(suite, &platform, &mut report);
    report::finish(&report)
}

fn current_el() -> u64 {
    let el: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { core::arch::asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack)) };
    (el >> 2) & 3
}

extern "C" fn unexpected_exception(esr: u64, elr: u64, far: u64) -> ! {
    println!(
        "el1: unexpected exception: {}, ELR {elr:#x}, FAR {far:#x}",
        smmu_hyp::esr::Esr(esr)
    );
    semihosting::exit(exit::EL1_EXCEPTION)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("el1: panic: {info}");
    semihosting::exit(exit::TEST_FAILURE)
}

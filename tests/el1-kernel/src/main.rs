//! The EL1 test kernel: booted by the hyp at EL1, it exercises the hyp
//! through hypercalls and trapped firmware calls, prints one line per check
//! and ends the run with a status (0 = all passed, 1 = a check failed).
//!
//! The suite comes from `suite=<name>` in bootargs (`demo` by default).
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

mod arena;
mod console;
mod dma_device;
mod el2_layout;
mod fixture;
mod fuzz_gen;
mod gic_cpu;
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

/// The device tree at `pa`, as a slice of its declared size (empty if
/// there is none).
///
/// # Safety
/// `pa` must be 0 or hold a device tree that EL1 may read.
unsafe fn tree_at(pa: u64) -> &'static [u8] {
    if pa == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees a tree at `pa`; its header bounds the
    // slice.
    unsafe {
        let header = &*(pa as *const [u8; 8]);
        let size = platform::dtb_total_size(header).unwrap_or(0);
        core::slice::from_raw_parts(pa as *const u8, size)
    }
}

/// Where the ramdisk is, from `/chosen/linux,initrd-start` of the tree the
/// hyp handed over.
fn ramdisk(el1_tree: &[u8]) -> Option<u64> {
    let tree = fdt::Fdt::new(el1_tree).ok()?;
    let chosen = tree.find_node("/chosen")?;
    let start = chosen.property("linux,initrd-start")?.as_usize()?;
    Some(start as u64)
}

extern "C" fn kernel_main(dtb_pa: u64) -> ! {
    // SAFETY: the hyp passes its tree for EL1 in x0 (arm64 boot protocol).
    let dtb = unsafe { tree_at(dtb_pa) };
    let Ok(el1_view) = platform::Platform::parse(dtb, dtb_pa) else {
        semihosting::exit(exit::BOOT_FAILURE)
    };
    if let Some(uart) = el1_view.uart {
        console::init(uart.start);
    }
    let suite = bootargs::value(el1_view.bootargs, "suite").unwrap_or("demo");
    println!(
        "el1: test kernel running at EL{}, suite {suite}",
        current_el()
    );
    // The suites check the hyp against the hardware, which the tree the hyp
    // hands EL1 partly hides (the SMMUs and the PCIe iommu-map, which give
    // the StreamIDs). The harness passes the board's own tree, as QEMU
    // generates it, as the ramdisk; the bootargs stay this kernel's.
    let board = ramdisk(dtb).and_then(|pa| {
        // SAFETY: the hyp described the ramdisk in /chosen; the harness
        // put a device tree there.
        let tree = unsafe { tree_at(pa) };
        platform::Platform::parse(tree, pa).ok()
    });
    let platform = match board {
        Some(board) => {
            println!("el1: the board's device tree came as the ramdisk");
            platform::Platform {
                bootargs: el1_view.bootargs,
                ..board
            }
        }
        None => el1_view,
    };
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

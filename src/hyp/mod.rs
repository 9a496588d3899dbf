//! The hyp itself: boot, traps from EL1, crash reports, and how a run ends.

pub mod boot;
pub mod cpus;
mod crash;
#[cfg(feature = "selftest")]
pub mod domain;
pub mod gic;
mod heap;
pub mod host_s2;
pub mod iommu;
pub mod mem;
pub mod mmio;
mod payload;
#[cfg(feature = "selftest")]
mod selftest;
pub mod smmu;
pub mod tables;
pub mod trap;
pub mod viommu;

use crate::arch::aarch64::{semihosting, smc::SmcFirmware};
use crate::platform::{GicVersion, PsciConduit};
use crate::smccc::{Firmware, psci};
use core::sync::atomic::{AtomicBool, Ordering};

/// Facts about the board the hyp needs before the device tree is read.
pub mod board {
    include!(concat!(env!("BOARD_DIR"), "/board.rs"));
}

/// What the hyp keeps from the device tree and bootargs after boot (the
/// DTB itself belongs to EL1 once EL1 runs, so nothing borrows from it).
pub struct RunConfig {
    pub psci: Option<PsciConduit>,
    /// The GIC EL1's device tree describes: the CPU interface EL1 gets
    /// (`el1::enter`).
    pub gic: GicVersion,
}

static CONFIG: spin::Once<RunConfig> = spin::Once::new();

/// `semihosting` is in bootargs: end runs through semihosting. Set by the
/// boot CPU before anything can fail (a plain store, valid with the MMU
/// off).
static SEMIHOSTING: AtomicBool = AtomicBool::new(false);

pub fn set_semihosting(on: bool) {
    SEMIHOSTING.store(on, Ordering::Relaxed);
}

/// Firmware for PSCI, when the device tree names an `smc` conduit (an `hvc`
/// conduit would be the hyp itself).
pub fn firmware() -> Option<&'static dyn Firmware> {
    match CONFIG.get()?.psci {
        Some(PsciConduit::Smc) => Some(&SmcFirmware),
        _ => None,
    }
}

/// Runs the EL2 self-test `name` (bootargs `test=<name>`); the scenarios
/// end the run. Only `smmu-hyp-selftest.bin` has them.
fn run_selftest(name: &str) {
    #[cfg(feature = "selftest")]
    selftest::run(name);
    #[cfg(not(feature = "selftest"))]
    log::warn!("test={name}: this image has no EL2 self-tests (smmu-hyp-selftest.bin has)");
}

/// Ends the run with `status`: through semihosting when bootargs say it is
/// there (QEMU, FVP), else PSCI SYSTEM_OFF (status lost), else parks.
/// Before the device tree names the PSCI conduit, SYSTEM_OFF goes through
/// SMC, the conduit firmware offers to EL2.
pub fn end_run(status: u32) -> ! {
    if SEMIHOSTING.load(Ordering::Relaxed) {
        semihosting::exit(status);
    }
    let firmware = match CONFIG.get() {
        Some(_) => firmware(),
        None => Some(&SmcFirmware as &dyn Firmware),
    };
    if let Some(fw) = firmware {
        fw.call([u64::from(psci::SYSTEM_OFF), 0, 0, 0]);
    }
    loop {
        aarch64_cpu::asm::wfe();
    }
}

//! The test kernel's checks, printed on its console; the verdict ends the
//! run.

use smmu_hyp::arch::aarch64::semihosting;
use smmu_hyp::checks::Checks;

pub type Report = Checks;

pub fn new() -> Report {
    Checks::new("el1", crate::console::print)
}

pub fn finish(report: &Report) -> ! {
    semihosting::exit(report.finish())
}

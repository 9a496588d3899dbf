//! Counting checks and ending the run with the verdict.

use crate::println;
use smmu_hyp::arch::aarch64::semihosting;
use smmu_hyp::exit;

pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    pub fn new() -> Self {
        Self {
            passed: 0,
            failed: 0,
        }
    }

    /// Records one check: `ok` with what was seen.
    pub fn check(&mut self, name: &str, ok: bool, seen: core::fmt::Arguments<'_>) {
        if ok {
            self.passed += 1;
            println!("el1: ok   {name}: {seen}");
        } else {
            self.failed += 1;
            println!("el1: FAIL {name}: {seen}");
        }
    }

    /// Prints the totals and ends the run.
    pub fn finish(&self) -> ! {
        println!("el1: {} passed, {} failed", self.passed, self.failed);
        semihosting::exit(if self.failed == 0 && self.passed > 0 {
            exit::SUCCESS
        } else {
            exit::TEST_FAILURE
        })
    }
}

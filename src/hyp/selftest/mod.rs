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
        _ => {}
    }
}

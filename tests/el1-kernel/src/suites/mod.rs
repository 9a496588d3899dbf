//! The test suites, selected with `suite=<name>`.

pub mod smp;

use crate::hyp_client::{hvc, smc};
use crate::println;
use crate::report::Report;
use smmu_hyp::hypercall::abi;
use smmu_hyp::platform::Platform;
use smmu_hyp::smccc::{self, psci};

pub fn run(suite: &str, platform: &Platform<'_>, report: &mut Report) {
    match suite {
        "demo" => demo(report),
        "smccc" => smccc_calls(report),
        "psci" => psci_calls(report),
        "system-off" => system_off(),
        "boot-info" => boot_info(platform, report),
        "smp" => smp::run(platform, report),
        _ => {
            report.check("known suite", false, format_args!("unknown suite {suite}"));
        }
    }
}

/// The hypercall round trip `make run` shows.
fn demo(report: &mut Report) {
    let version = hvc([u64::from(abi::HYP_ABI_VERSION), 0, 0, 0]);
    report.check(
        "HYP_ABI_VERSION round trip",
        version[0] == abi::ABI_VERSION,
        format_args!("x0 = {:#x}", version[0]),
    );
    let echo = hvc([u64::from(abi::HYP_ECHO), 0x1111, 0x2222, 0x3333]);
    report.check(
        "HYP_ECHO returns its arguments",
        echo == [0, 0x1111, 0x2222, 0x3333],
        format_args!("x0..x3 = {:x?}", echo),
    );
}

/// SMCCC conventions over `hvc`: version, features, unknown IDs.
fn smccc_calls(report: &mut Report) {
    let v = hvc([u64::from(smccc::SMCCC_VERSION), 0, 0, 0])[0];
    report.check(
        "SMCCC_VERSION is 1.1",
        v == smccc::VERSION_1_1,
        format_args!("{v:#x}"),
    );
    let f = hvc([
        u64::from(smccc::SMCCC_ARCH_FEATURES),
        u64::from(smccc::SMCCC_VERSION),
        0,
        0,
    ])[0];
    report.check(
        "SMCCC_ARCH_FEATURES(SMCCC_VERSION) = 0",
        f == 0,
        format_args!("{f:#x}"),
    );
    for fid in [
        0xc600_ff00u64,
        0x8600_0000,
        0xc500_0000,
        0x0,
        0xffff_ffff,
        0xdead_beef_c600_7777,
    ] {
        let r = hvc([fid, 1, 2, 3])[0] as i64;
        report.check(
            "unknown function ID returns NOT_SUPPORTED (-1)",
            r == abi::NOT_SUPPORTED,
            format_args!("fid {fid:#x} -> {r}"),
        );
    }
}

/// PSCI through the hyp: safe calls reach firmware, CPU_ON is validated by
/// EL2 (the `smp` suite starts CPUs).
fn psci_calls(report: &mut Report) {
    let v = smc([u64::from(psci::VERSION), 0, 0, 0])[0];
    report.check(
        "PSCI_VERSION forwarded to firmware",
        (0x1_0000..0x10_0000).contains(&v),
        format_args!("{v:#x}"),
    );
    let on = smc([u64::from(psci::CPU_ON), 1, 0x4000_0000, 0])[0];
    report.check(
        "CPU_ON of a CPU the device tree lacks is INVALID_PARAMETERS",
        on == psci::INVALID_PARAMETERS,
        format_args!("{}", on as i64),
    );
    let unknown = smc([0xc200_0001, 0, 0, 0])[0];
    report.check(
        "unknown SMC returns NOT_SUPPORTED",
        unknown == smccc::NOT_SUPPORTED,
        format_args!("{}", unknown as i64),
    );
}

/// SYSTEM_OFF through the hyp powers the machine off (status 0 on QEMU).
fn system_off() {
    println!("el1: calling PSCI SYSTEM_OFF");
    smc([u64::from(psci::SYSTEM_OFF), 0, 0, 0]);
    println!("el1: SYSTEM_OFF returned");
}

/// What the EL1 kernel sees of the machine.
fn boot_info(platform: &Platform<'_>, report: &mut Report) {
    let ram = platform.ram.total_size();
    report.check(
        "device tree passed in x0",
        ram > 0,
        format_args!("{} MiB of RAM, {} CPU(s)", ram >> 20, platform.cpus.len()),
    );
}

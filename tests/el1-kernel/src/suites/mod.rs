//! The test suites, selected with `suite=<name>`.

pub mod attack;
pub mod bad_input;
pub mod bench;
pub mod demo;
pub mod deny;
pub mod dma;
pub mod fp;
pub mod fuzz;
pub mod gic_attack;
pub mod psci;
pub mod smp;
pub mod smp_stress;

use crate::hyp_client::{hvc, smc};
use crate::println;
use crate::report::Report;
use smmu_hyp::hypercall::abi;
use smmu_hyp::mem::PAGE_SIZE as PAGE;
use smmu_hyp::platform::Platform;
use smmu_hyp::smccc;

pub fn run(suite: &str, platform: &Platform<'_>, report: &mut Report) {
    match suite {
        "demo" => demo::run(platform, report),
        "attack" => attack::run(platform, report),
        "fp" => fp::run(platform, report),
        "iommu" => iommu(report),
        "smccc" => smccc_calls(report),
        "psci" => psci::run(platform, report),
        "system-off" => system_off(),
        "boot-info" => boot_info(platform, report),
        "smp" => smp::run(platform, report),
        "dma" => dma::run(platform, report),
        "bad-input" => bad_input::run(platform, report),
        "deny" => deny::run(platform, report),
        "fuzz" => fuzz::run(platform, report),
        "smp-stress" => smp_stress::run(platform, report),
        "bench" => bench::run(platform, report),
        _ => {
            report.check("known suite", false, format_args!("unknown suite {suite}"));
        }
    }
}

/// A number from bootargs (`key=`), decimal or 0x-prefixed hex.
pub fn number(platform: &Platform<'_>, key: &str) -> Option<u64> {
    let v = smmu_hyp::bootargs::value(platform.bootargs, key)?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
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

/// SYSTEM_OFF through the hyp powers the machine off (status 0 on QEMU).
fn system_off() {
    println!("el1: calling PSCI SYSTEM_OFF");
    smc([u64::from(smccc::psci::SYSTEM_OFF), 0, 0, 0]);
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

/// A page-aligned buffer; only its address is used (devices fill it).
#[repr(align(4096))]
struct Page(#[allow(dead_code)] [u8; PAGE as usize]);
static mut BUF: Page = Page([0; PAGE as usize]);

fn iommu(report: &mut Report) {
    use crate::hyp_client::hvc8;
    use smmu_hyp::hypercall::{abi::prot, client};
    let info = client::decode_iommu_info(hvc8(client::iommu_info()));
    report.check(
        "IOMMU_INFO",
        matches!(info, Ok(i) if i.smmus == 1),
        format_args!("{info:?}"),
    );
    let s = client::decode_smmu_info(hvc8(client::smmu_info(0)));
    report.check("SMMU_INFO", s.is_ok(), format_args!("{s:x?}"));
    let d = client::decode_domain_alloc(hvc8(client::domain_alloc(40, 0)));
    report.check("DOMAIN_ALLOC", d.is_ok(), format_args!("{d:x?}"));
    let Ok(d) = d else { return };
    let a = client::decode_unit(hvc8(client::attach(0, 8, d.id)));
    report.check("ATTACH", a.is_ok(), format_args!("{a:?}"));
    let buf = core::ptr::addr_of!(BUF) as u64;
    let m = client::decode_map(hvc8(client::map(
        d.id,
        0x10_0000,
        buf,
        PAGE,
        1,
        prot::READ | prot::WRITE,
    )));
    report.check("MAP", m == Ok(PAGE), format_args!("{m:?} buf {buf:#x}"));
    let t = client::decode_iova_to_phys(hvc8(client::iova_to_phys(d.id, 0x10_0010)));
    report.check(
        "IOVA_TO_PHYS",
        matches!(t, Ok(t) if t.pa == buf + 0x10),
        format_args!("{t:x?}"),
    );
    let e = client::decode_map(hvc8(client::map(
        d.id,
        0x20_0000,
        0x4020_0000,
        PAGE,
        1,
        prot::READ,
    )));
    report.check(
        "EL2 image DENIED",
        e == Err(abi::DENIED),
        format_args!("{e:?}"),
    );
    let e = client::decode_map(hvc8(client::map(
        d.id,
        0x20_0000,
        0x905_0000,
        PAGE,
        1,
        prot::READ | prot::MMIO,
    )));
    report.check(
        "SMMU regs DENIED",
        e == Err(abi::DENIED),
        format_args!("{e:?}"),
    );
    let u = client::decode_unmap(hvc8(client::unmap(d.id, 0x10_0000, PAGE, 1, 0)));
    report.check(
        "UNMAP",
        matches!(u, Ok(u) if u.bytes == PAGE),
        format_args!("{u:?}"),
    );
    let st = client::decode_stats(hvc8(client::stats(abi::stats::MEMORY, 0)));
    report.check(
        "no references left",
        matches!(st, Ok(s) if s[1] == 0),
        format_args!("{st:?}"),
    );
    let st = client::decode_stats(hvc8(client::stats(abi::stats::SMMU_COMMANDS, 0)));
    report.check("SMMU commands", st.is_ok(), format_args!("{st:?}"));
    let r = client::decode_unit(hvc8(client::detach(0, 8)));
    report.check("DETACH", r.is_ok(), format_args!("{r:?}"));
    let r = client::decode_unit(hvc8(client::domain_free(d.id)));
    report.check("DOMAIN_FREE", r.is_ok(), format_args!("{r:?}"));
}

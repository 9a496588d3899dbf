//! Debian's unmodified arm64 Linux booted as the EL1 kernel under the hyp
//! (tests/linux/: the kernel and busybox come from Debian's archive, the
//! initramfs runs a scenario of checks and powers off). Run through
//! `make test`, which fetches the kernel once and builds the initramfs.
//!
//! Linux runs without `-icount` (the board's shift=10 never reaches init)
//! and without the edu device's need for it; each boot takes a few seconds.

mod harness;

use harness::{Boot, Run};
use std::path::PathBuf;
use std::time::Duration;

fn linux_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/linux")
}

/// The unpacked kernel Image (`boot/vmlinuz-*` is a raw arm64 Image).
fn kernel() -> PathBuf {
    let boot = linux_dir().join("pkg/boot");
    std::fs::read_dir(&boot)
        .unwrap_or_else(|_| panic!("{} is missing: run `make test`", boot.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .expect("no vmlinuz in target/linux/pkg/boot: run `make test`")
}

/// Boots Linux with the `boot` scenario on `cpus` CPUs and `mem_mib` of RAM.
fn boot_linux(cpus: u32, mem_mib: u32) -> Run {
    let args = format!(
        "console=ttyAMA0 earlycon panic=-1 scenario=boot expect_cpus={cpus} expect_mem_mib={mem_mib}"
    );
    Boot::kernel(kernel(), &args, linux_dir().join("initramfs-boot.cpio.gz"))
        .qemu("-smp", &cpus.to_string())
        .qemu("-m", &format!("{mem_mib}M"))
        // No -icount: instruction counting at shift=10 never reaches init.
        .without_qemu("-icount")
        // A kernel panic (panic=-1) ends the run instead of rebooting.
        .add_flag("-no-reboot")
        .timeout(Duration::from_secs(60))
        .run()
}

/// What every Linux boot must show: the hyp's banner, Linux at EL1 on all
/// CPUs, EL2's memory reserved at the very ranges the hyp reported, every
/// check passed, and `poweroff` ending the run with status 0.
fn expect_linux_ran_under_the_hyp(run: &Run) {
    run.expect_status(0)
        .expect("at CurrentEL = 2")
        .expect("entering EL1 at")
        .expect("CPU: All CPU(s) started at EL1")
        .expect("linux: ok   no SMMU node, driver or IOMMU in Linux")
        .expect_absent("linux: FAIL")
        .expect_absent("Kernel panic")
        .expect("reboot: Power down");
    let banner = run
        .log
        .lines()
        .find(|l| l.contains("hyp image ["))
        .expect("the hyp's memory banner");
    let ranges: Vec<&str> = banner
        .split(['[', ')'])
        .filter(|s| s.starts_with("0x"))
        .collect();
    assert_eq!(ranges.len(), 2, "{banner}");
    let reserved = run
        .log
        .lines()
        .find(|l| l.starts_with("linux: ok   EL2's memory is reserved"))
        .expect("Linux's reserved-memory check");
    for range in ranges {
        assert!(
            reserved.contains(&format!("[{range})")),
            "Linux does not see [{range}) reserved: {reserved}"
        );
    }
    let summary = run
        .log
        .lines()
        .find(|l| l.starts_with("linux: ") && l.ends_with(" failed"))
        .expect("the scenario's summary line");
    assert!(summary.ends_with(", 0 failed"), "{summary}");
}

#[test]
fn linux_boots_under_the_hyp_on_one_cpu_with_1g() {
    expect_linux_ran_under_the_hyp(&boot_linux(1, 1024));
}

#[test]
fn linux_boots_under_the_hyp_on_four_cpus() {
    let run = boot_linux(4, 1024);
    expect_linux_ran_under_the_hyp(&run);
    run.expect("linux: ok   every CPU of the device tree is online: 4 online");
}

#[test]
fn linux_boots_under_the_hyp_with_3g() {
    let run = boot_linux(1, 3072);
    expect_linux_ran_under_the_hyp(&run);
    run.expect("memory: [0x40000000..0x100000000) (3072 MiB)");
}

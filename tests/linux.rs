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

/// The initramfs `make test` built for `scenario` (tests/linux/scenarios/).
fn initramfs(scenario: &str) -> PathBuf {
    linux_dir().join(format!("initramfs-{scenario}.cpio.gz"))
}

/// A boot of Linux with `scenario`, whose checks read `args` from the
/// kernel's command line, on `cpus` CPUs and `mem_mib` of RAM.
fn scenario_boot(scenario: &str, args: &str, cpus: u32, mem_mib: u32) -> Boot {
    let args = format!("console=ttyAMA0 earlycon panic=-1 scenario={scenario} {args}");
    Boot::kernel(kernel(), &args, initramfs(scenario))
        .qemu("-smp", &cpus.to_string())
        .qemu("-m", &format!("{mem_mib}M"))
        // No -icount: instruction counting at shift=10 never reaches init.
        .without_qemu("-icount")
        // A kernel panic (panic=-1) ends the run instead of rebooting.
        .add_flag("-no-reboot")
        .timeout(Duration::from_secs(60))
}

/// Boots Linux with `scenario` (see [`scenario_boot`]).
fn run_scenario(scenario: &str, args: &str, cpus: u32, mem_mib: u32) -> Run {
    scenario_boot(scenario, args, cpus, mem_mib).run()
}

/// Boots Linux with the `boot` scenario on `cpus` CPUs and `mem_mib` of RAM.
fn boot_linux(cpus: u32, mem_mib: u32) -> Run {
    let args = format!("expect_cpus={cpus} expect_mem_mib={mem_mib}");
    run_scenario("boot", &args, cpus, mem_mib)
}

/// What every Linux run must show: the hyp's banner, Linux at EL1, every
/// check passed, no panic, and `poweroff` (PSCI SYSTEM_OFF, through the
/// hyp) ending the run with status 0.
fn expect_scenario_passed(run: &Run) {
    run.expect_status(0)
        .expect("at CurrentEL = 2")
        .expect("entering EL1 at")
        .expect("CPU: All CPU(s) started at EL1")
        .expect_absent("linux: FAIL")
        .expect_absent("Kernel panic")
        .expect("reboot: Power down");
    let summary = run
        .log
        .lines()
        .find(|l| l.starts_with("linux: ") && l.ends_with(" failed"))
        .expect("the scenario's summary line");
    assert!(summary.ends_with(", 0 failed"), "{summary}");
}

/// EL2's RAM as the hyp's banner reports it: its image and its page pool,
/// `[start..end)`.
fn el2_ranges(run: &Run) -> Vec<(u64, u64)> {
    let banner = run
        .log
        .lines()
        .find(|l| l.contains("hyp image ["))
        .expect("the hyp's memory banner");
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let ranges: Vec<(u64, u64)> = banner
        .split(['[', ')'])
        .filter_map(|s| s.split_once(".."))
        .map(|(start, end)| (hex(start), hex(end)))
        .collect();
    assert_eq!(ranges.len(), 2, "{banner}");
    ranges
}

/// What the `boot` scenario must show besides: EL2's memory reserved at
/// the very ranges the hyp reported, no SMMU for Linux, and its ITS and
/// LPIs working through the hyp's GIC emulation.
fn expect_linux_ran_under_the_hyp(run: &Run) {
    expect_scenario_passed(run);
    run.expect("linux: ok   no SMMU node, driver or IOMMU in Linux")
        .expect("gic: 1 ITS control frame(s) and")
        .expect("linux: ok   the ITS and LPIs work through the hyp's emulation")
        // No GIC access of Linux's was refused.
        .expect_absent("; logged once)");
    let reserved = run
        .log
        .lines()
        .find(|l| l.starts_with("linux: ok   EL2's memory is reserved"))
        .expect("Linux's reserved-memory check");
    for (start, end) in el2_ranges(run) {
        let range = format!("[{start:#x}..{end:#x})");
        assert!(
            reserved.contains(&range),
            "Linux does not see {range} reserved: {reserved}"
        );
    }
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

/// What the `attack` scenario aims at besides EL2's RAM, from the board's
/// own device tree (the one Linux gets has none of it).
struct Targets {
    smmu: u64,
    fw_cfg: u64,
    virtio_mmio: u64,
    /// The PCIe host bridge's StreamID (RID 0 through `iommu-map`).
    stream: u32,
}

fn attack_targets() -> Targets {
    let path = std::env::temp_dir().join(format!("smmu-hyp-linux-{}.dtb", std::process::id()));
    Boot::kernel(kernel(), "", initramfs("attack"))
        .without_qemu("-icount")
        .dump_dtb(&path);
    let blob = std::fs::read(&path).expect("the board's device tree");
    let _ = std::fs::remove_file(&path);
    let tree = fdt::Fdt::new(&blob).expect("the board's device tree parses");
    let base = |compatible: &str| {
        tree.find_compatible(&[compatible])
            .and_then(|node| node.reg()?.next())
            .map(|reg| reg.starting_address as u64)
            .unwrap_or_else(|| panic!("no {compatible} node with a reg in the board's tree"))
    };
    // iommu-map = <rid-base smmu-phandle sid-base length> ...
    let map = tree
        .find_compatible(&["pci-host-ecam-generic"])
        .and_then(|node| node.property("iommu-map"))
        .expect("the board's PCIe node has an iommu-map")
        .value;
    let cell = |i: usize| u32::from_be_bytes(map[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(cell(0), 0, "the first iommu-map entry starts at RID 0");
    Targets {
        smmu: base("arm,smmu-v3"),
        fw_cfg: base("qemu,fw-cfg-mmio"),
        virtio_mmio: base("virtio,mmio"),
        stream: cell(2),
    }
}

/// Lines of the hyp's log refusing an EL1 `access` ("read" or "write")
/// to `ipa`.
fn refusals(run: &Run, access: &str, ipa: u64) -> usize {
    let (what, at) = (format!("el1: {access} of "), format!("(IPA {ipa:#x})"));
    run.log
        .lines()
        .filter(|l| l.contains(&what) && l.contains(&at) && l.ends_with("external abort injected"))
        .count()
}

#[test]
fn linux_userspace_and_a_kernel_module_cannot_reach_el2_memory_the_smmu_or_hidden_devices() {
    let t = attack_targets();
    let args = format!(
        "iomem=relaxed smmu_base={:#x} fw_cfg_base={:#x} virtio_mmio_base={:#x} stream={:#x}",
        t.smmu, t.fw_cfg, t.virtio_mmio, t.stream
    );
    let run = run_scenario("attack", &args, 1, 1024);
    expect_scenario_passed(&run);
    run.expect("linux: ok   the hyp still answers hypercalls")
        .expect("linux: ok   the hyp's SMMU still takes commands");

    // The hyp logged each access Linux made, at the address it aimed at:
    // per EL2 range, a read and a write of its first word from userspace
    // and from the kernel, and a kernel read of its last word.
    let mut expected = vec![];
    for (start, end) in el2_ranges(&run) {
        expected.extend([
            ("read", start, 2),
            ("write", start, 2),
            ("read", end - 8, 1),
        ]);
    }
    expected.extend([
        ("read", t.smmu, 1),            // SMMU_IDR0
        ("read", t.smmu + 0x20, 1),     // SMMU_CR0
        ("write", t.smmu + 0x20, 1),    // SMMU_CR0 = 0
        ("read", t.smmu + 0x1_00a8, 1), // SMMU_EVTQ_PROD, page 1
        ("read", t.fw_cfg, 1),          // data
        ("write", t.fw_cfg + 0x8, 1),   // selector
        ("read", t.virtio_mmio, 1),     // MagicValue
    ]);
    for &(access, ipa, count) in &expected {
        assert_eq!(
            refusals(&run, access, ipa),
            count,
            "refused {access}s of {ipa:#x} in the hyp's log"
        );
    }
    // And no other: Linux touched nothing else the hyp keeps.
    let total: usize = expected.iter().map(|&(_, _, count)| count).sum();
    assert_eq!(run.log.matches("external abort injected").count(), total);

    // Linux reported each of the kernel's six accesses as the external
    // abort on its console and killed only that insmod (the checks after
    // it ran).
    let oopses = run
        .log
        .lines()
        .filter(|l| {
            l.starts_with('[') && l.contains("] Internal error: synchronous external abort")
        })
        .count();
    assert_eq!(oopses, 6, "Linux's external-abort oopses");
}

/// A disk image for the DMA scenarios: 64 MiB of reproducible pseudo-random
/// bytes in a temporary file (removed on drop).
struct DiskImage {
    path: PathBuf,
    /// The md5s of its four 16 MiB quarters, `md5:md5:md5:md5` (the
    /// scenarios' `disk_md5s=`), from the host's `md5sum`.
    md5s: String,
}

impl DiskImage {
    const MIB: usize = 64;

    fn new() -> Self {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("smmu-hyp-disk-{}-{n}.img", std::process::id()));
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let bytes: Vec<u8> = (0..Self::MIB << 17)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()
            })
            .collect();
        std::fs::write(&path, &bytes).expect("the disk image");
        let md5s: Vec<String> = bytes
            .chunks(bytes.len() / 4)
            .map(|quarter| {
                use std::io::Write;
                let mut md5sum = std::process::Command::new("md5sum")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("md5sum");
                md5sum.stdin.take().unwrap().write_all(quarter).unwrap();
                let out = md5sum.wait_with_output().unwrap();
                String::from_utf8(out.stdout).unwrap()[..32].to_string()
            })
            .collect();
        Self {
            path,
            md5s: md5s.join(":"),
        }
    }
}

impl Drop for DiskImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Boots Linux with the `pv-iommu` scenario (the hyp's paravirtual IOMMU
/// front door, `iommu=pv`) on 4 CPUs, with one disk: `device` (QEMU's
/// `-device`, its drive `d0`), which Linux names `disk`.
fn pv_iommu_run(device: &str, disk: &str) -> Run {
    let image = DiskImage::new();
    let args = format!("disk={disk} disk_md5s={}", image.md5s);
    let drive = format!(
        "file={},if=none,id=d0,format=raw,snapshot=on",
        image.path.display()
    );
    scenario_boot("pv-iommu", &args, 4, 1024)
        .hyp_args("iommu=pv")
        .add("-drive", &drive)
        .add("-device", device)
        .run()
}

/// What a `pv-iommu` run must show: every check passed (14 of them), the
/// hyp wrote the paravirtual node and the driver probed it.
fn expect_dma_through_the_pv_iommu(run: &Run) {
    expect_scenario_passed(run);
    run.expect("EL1 IOMMU: smmu0 as a paravirtual IOMMU (iommu=pv)")
        .expect("pv-iommu pv-iommu-0: smmu0 through hypercalls")
        .expect("linux: 14 passed, 0 failed");
}

#[test]
fn linux_does_nvme_dma_through_the_paravirtual_iommu_and_a_device_fault_reaches_its_log() {
    let run = pv_iommu_run("nvme,drive=d0,serial=d0", "nvme0n1");
    expect_dma_through_the_pv_iommu(&run);
}

#[test]
fn linux_does_virtio_blk_dma_through_the_paravirtual_iommu() {
    // QEMU refuses iommu_platform on a transitional (legacy) device.
    let device = "virtio-blk-pci,drive=d0,iommu_platform=on,disable-legacy=on";
    let run = pv_iommu_run(device, "vda");
    expect_dma_through_the_pv_iommu(&run);
}

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
fn linux(scenario: &str, args: &str, cpus: u32, mem_mib: u32) -> Boot {
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

/// Runs [`linux`].
fn run_scenario(scenario: &str, args: &str, cpus: u32, mem_mib: u32) -> Run {
    linux(scenario, args, cpus, mem_mib).run()
}

/// Boots Linux with the `boot` scenario on `cpus` CPUs and `mem_mib` of RAM
/// (the hyp's default IOMMU front door, `iommu=virtio`).
fn boot_linux(cpus: u32, mem_mib: u32) -> Run {
    let args = format!("expect_cpus={cpus} expect_mem_mib={mem_mib} hyp_iommu=virtio");
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
        .expect("virtio-iommu: at [0xb000000..0xb000200)")
        .expect("only the hyp's virtio-iommu: the virtio-iommu at 0xb000000")
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

/// A CPU with MTE: Linux sees it advertised and may use it (its tag
/// registers are EL1's: HCR_EL2.ATA), instead of taking an undefined
/// instruction for its first tag-control register write.
#[test]
fn linux_uses_mte_under_the_hyp_when_the_cpu_has_it() {
    let run = linux("boot", "expect_cpus=1 expect_mem_mib=1024", 1, 1024)
        .qemu(
            "-M",
            "virt,virtualization=on,gic-version=3,iommu=smmuv3,mte=on",
        )
        .run();
    expect_linux_ran_under_the_hyp(&run);
    run.expect("CPU features: detected: Memory Tagging Extension")
        .expect_absent("unexpected trap");
}

#[test]
fn linux_boots_under_the_hyp_with_3g() {
    let run = boot_linux(1, 3072);
    expect_linux_ran_under_the_hyp(&run);
    run.expect("memory: [0x40000000..0x100000000) (3072 MiB)");
}

#[test]
fn with_iommu_none_linux_gets_no_iommu_node_and_the_hyp_no_virtio_iommu() {
    let run = linux(
        "boot",
        "expect_cpus=1 expect_mem_mib=1024 hyp_iommu=none",
        1,
        1024,
    )
    .hyp_args("iommu=none")
    .run();
    expect_scenario_passed(&run);
    run.expect("iommu=none: EL1's devices behind the SMMU cannot DMA")
        .expect("only the hyp's virtio-iommu: no virtio-mmio node")
        .expect_absent("virtio-iommu: at");
}

/// A disk image of the DMA scenarios: 64 MiB of known content
/// (`tests/linux/disk.sh`) and the MD5s of its quarters, `md5:md5:md5:md5`.
struct Disk {
    path: PathBuf,
    md5s: String,
}

impl Disk {
    /// QEMU's `-drive` value for this image as drive `id`, its writes
    /// kept in a temporary snapshot.
    fn drive(&self, id: &str) -> String {
        format!(
            "file={},if=none,id={id},format=raw,snapshot=on",
            self.path.display()
        )
    }
}

fn disk(name: &str) -> Disk {
    const MIB: u32 = 64;
    let out = std::process::Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/linux/disk.sh"))
        .args([name, &MIB.to_string()])
        .output()
        .expect("tests/linux/disk.sh");
    assert!(out.status.success(), "disk.sh {name}: {out:?}");
    Disk {
        path: linux_dir().join(format!("disks/{name}-{MIB}.img")),
        md5s: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    }
}

/// An IOMMU front door of the hyp (its `iommu=`; the DMA scenarios'
/// `door=`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    /// The hyp's virtio-iommu device, driven by Linux's `virtio_iommu`.
    Virtio,
    /// The repo's `pv_iommu` driver over the hypercalls.
    Pv,
}

impl Door {
    fn name(self) -> &'static str {
        match self {
            Self::Virtio => "virtio",
            Self::Pv => "pv",
        }
    }

    /// A boot of `scenario` with this front door.
    fn boot(self, scenario: &str, args: &str, cpus: u32) -> Boot {
        linux(
            scenario,
            &format!("door={} {args}", self.name()),
            cpus,
            1024,
        )
        .hyp_args(&format!("iommu={}", self.name()))
    }

    /// What the hyp and Linux log when this front door is up: the hyp's
    /// node for it, and Linux's driver probing it.
    fn expect_up(self, run: &Run) {
        match self {
            Self::Virtio => run
                .expect("virtio-iommu: at [0xb000000..0xb000200)")
                .expect("linux: ok   the hyp gives Linux its virtio IOMMU and no SMMU: the virtio-iommu at 0xb000000"),
            Self::Pv => run
                .expect("pv-iommu: smmu0 as a paravirtual IOMMU node")
                .expect("linux: ok   the hyp gives Linux its pv IOMMU and no SMMU: pv-iommu-0: smmu0 through hypercalls")
                .expect_absent("virtio-iommu: at"),
        };
    }
}

/// Boots the `dma` scenario through `door` on `cpus` CPUs with an NVMe
/// disk and a virtio-blk disk (both behind the SMMU), their I/O
/// `concurrent` or one after the other.
fn dma_run(door: Door, cpus: u32, concurrent: bool) -> Run {
    let (nvme, vblk) = (disk("nvme"), disk("vblk"));
    let args = format!(
        "nvme_md5s={} vblk_md5s={} concurrent={}",
        nvme.md5s,
        vblk.md5s,
        u8::from(concurrent)
    );
    door.boot("dma", &args, cpus)
        // About 15 s on an idle 2-core machine; room for a loaded one.
        .timeout(Duration::from_secs(180))
        .add("-drive", &nvme.drive("n0"))
        .add("-device", "nvme,drive=n0,serial=n0")
        .add("-drive", &vblk.drive("v0"))
        .add(
            "-device",
            "virtio-blk-pci,drive=v0,iommu_platform=on,disable-legacy=on",
        )
        .run()
}

/// The last line of the hyp's log that starts with `prefix` (after the
/// log level).
fn hyp_line<'r>(run: &'r Run, prefix: &str) -> &'r str {
    run.log
        .lines()
        .rev()
        .find(|l| {
            l.strip_prefix("[INFO ] ")
                .is_some_and(|l| l.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no hyp line {prefix:?}\n{}", run.tail()))
}

/// The number just before `what` in `line` ("12 maps" -> 12).
fn count(line: &str, what: &str) -> u64 {
    let at = line
        .find(&format!(" {what}"))
        .unwrap_or_else(|| panic!("no {what:?} in {line:?}"));
    let digits = line[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no count before {what:?} in {line:?}"))
}

/// What every DMA run must show in the hyp's log at power-off: maps and
/// unmaps done with TLB invalidations and syncs and no command error, and,
/// once Linux removed the devices, nothing left mapped, attached or
/// referenced. Through the virtio-iommu, every request was answered and
/// both disks attached and detached.
fn expect_dma_through_the_hyp(run: &Run, door: Door) {
    expect_scenario_passed(run);
    door.expect_up(run);
    run.expect_absent("external abort injected");
    let iommu = hyp_line(run, "iommu: ");
    let maps = count(iommu, "maps");
    let unmaps = count(iommu, "unmaps");
    assert!(maps > 1000 && unmaps > 100, "{iommu}");
    // pv_iommu's polls of an empty fault log (HYP_FAULT_POP: NOT_FOUND)
    // count as refused calls; the scenario finds no other failed call in
    // Linux's log.
    if door == Door::Virtio {
        assert_eq!(count(iommu, "refused"), 0, "{iommu}");
    }
    for left in [
        "domains",
        "streams attached",
        "bytes mapped",
        "DMA page references",
        "bytes of page tables",
    ] {
        assert_eq!(
            count(iommu, left),
            0,
            "{left} after the devices left: {iommu}"
        );
    }
    let smmu = hyp_line(run, "smmu0: ");
    assert!(count(smmu, "TLB invalidations") >= unmaps, "{smmu}");
    assert!(count(smmu, "CMD_SYNCs") >= unmaps, "{smmu}");
    assert_eq!(count(smmu, "command errors"), 0, "{smmu}");
    if door == Door::Virtio {
        let served = hyp_line(run, "virtio-iommu: ");
        assert_eq!(count(served, "ATTACH"), 2, "{served}");
        assert_eq!(count(served, "DETACH"), 2, "{served}");
        // Every map of the core came through the device: its MAP requests
        // and the MSI doorbell of each of the two domains.
        assert_eq!(count(served, "MAP (") + 2, maps, "{served}");
        assert_eq!(count(served, "unanswerable"), 0, "{served}");
    }
}

#[test]
fn linux_dmas_to_nvme_and_virtio_blk_through_the_hyps_virtio_iommu() {
    expect_dma_through_the_hyp(&dma_run(Door::Virtio, 1, false), Door::Virtio);
}

#[test]
fn linux_dmas_to_both_disks_at_once_on_four_cpus_through_the_virtio_iommu() {
    let run = dma_run(Door::Virtio, 4, true);
    expect_dma_through_the_hyp(&run, Door::Virtio);
    run.expect("CPU(s) started at EL1");
}

#[test]
fn linux_dmas_to_both_disks_at_once_on_four_cpus_through_the_paravirtual_iommu() {
    let run = dma_run(Door::Pv, 4, true);
    expect_dma_through_the_hyp(&run, Door::Pv);
    run.expect("CPU(s) started at EL1")
        .expect(", maps batched")
        .expect("linux: ok   pv_iommu batched the disks' maps: ");
}

/// Boots the `confine` scenario through `door`: the edu device's DMA to a
/// page Linux never mapped is blocked, and the fault reaches the SMMU's
/// log and Linux's; scatter-gather maps map each page (with pv, in two
/// HYP_MAP_LISTs), and one over a live mapping is refused (pv).
fn expect_confined(door: Door) -> Run {
    let run = door.boot("confine", "", 1).run();
    expect_scenario_passed(&run);
    door.expect_up(&run);
    let smmu = hyp_line(&run, "smmu0: ");
    assert!(count(smmu, "faults logged") > 0, "{smmu}");
    run
}

#[test]
fn a_device_dma_linux_never_mapped_is_blocked_and_reported_through_the_virtio_iommu() {
    let run = expect_confined(Door::Virtio);
    let served = hyp_line(&run, "virtio-iommu: ");
    assert!(count(served, "faults delivered") > 0, "{served}");
}

#[test]
fn a_device_dma_linux_never_mapped_is_blocked_and_reported_through_the_paravirtual_iommu() {
    expect_confined(Door::Pv)
        .expect("linux: ok   scatter-gather maps: each page where it belongs; one over a live page refused, none of its range left (the live page neither): 3 lists of 300 maps, 1 refused");
}

/// The `alias` scenario: behind a PCIe-to-PCI bridge, a disk with the
/// bridge's alias among its StreamIDs DMAs, and a NIC sharing that alias
/// is refused an IOMMU without a warning (the pv door only: Linux's
/// virtio-iommu driver has its own answer).
#[test]
fn devices_sharing_a_pci_dma_alias_get_one_iommu_and_a_clean_refusal_through_the_paravirtual_iommu()
{
    let vblk = disk("vblk");
    let run = Door::Pv
        .boot("alias", &format!("vblk_md5s={}", vblk.md5s), 1)
        .add("-device", "pcie-pci-bridge,id=br,bus=pcie.0")
        .add("-drive", &vblk.drive("v0"))
        // A conventional bus: only a modern-only virtio device has
        // VIRTIO_F_ACCESS_PLATFORM there.
        .add(
            "-device",
            "virtio-blk-pci,drive=v0,bus=br,addr=1,iommu_platform=on,disable-legacy=on",
        )
        .add("-device", "e1000,bus=br,addr=2")
        .run();
    expect_scenario_passed(&run);
    Door::Pv.expect_up(&run);
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

//! Host tests on small device trees written here: node status, the CPU
//! capacity and the refusals' wording.

use super::*;
use std::string::ToString;
use std::vec::Vec as StdVec;

/// A minimal flattened-device-tree writer (Devicetree Specification v0.4,
/// chapter 5): header, an empty reservation block, structure, strings.
#[derive(Default)]
struct Dtb {
    structs: StdVec<u8>,
    strings: StdVec<u8>,
}

fn words(cells: &[u32]) -> StdVec<u8> {
    cells.iter().flat_map(|c| c.to_be_bytes()).collect()
}

fn text(s: &str) -> StdVec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Dtb {
    fn token(&mut self, t: u32) {
        self.structs.extend(t.to_be_bytes());
    }

    fn pad(&mut self) {
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
    }

    fn begin(&mut self, name: &str) -> &mut Self {
        self.token(1);
        self.structs.extend(text(name));
        self.pad();
        self
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let offset = self.strings.len() as u32;
        self.strings.extend(text(name));
        self.token(3);
        self.structs.extend((value.len() as u32).to_be_bytes());
        self.structs.extend(offset.to_be_bytes());
        self.structs.extend(value);
        self.pad();
        self
    }

    fn end(&mut self) -> &mut Self {
        self.token(2);
        self
    }

    fn finish(&mut self) -> StdVec<u8> {
        self.token(9);
        let (header, rsv) = (40u32, 16u32);
        let structs = header + rsv;
        let strings = structs + self.structs.len() as u32;
        let total = strings + self.strings.len() as u32;
        let mut out = words(&[
            0xd00d_feed,
            total,
            structs,
            strings,
            header,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ]);
        out.extend([0u8; 16]);
        out.extend(&self.structs);
        out.extend(&self.strings);
        out
    }
}

/// Root, a GICv3, and what `body` adds.
fn tree(body: impl FnOnce(&mut Dtb)) -> StdVec<u8> {
    let mut d = Dtb::default();
    d.begin("")
        .prop("#address-cells", &words(&[2]))
        .prop("#size-cells", &words(&[2]));
    d.begin("interrupt-controller@8000000")
        .prop("compatible", &text("arm,gic-v3"))
        .prop(
            "reg",
            &words(&[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000]),
        )
        .end();
    body(&mut d);
    d.end();
    d.finish()
}

fn memory(d: &mut Dtb, base: u32, status: Option<&str>) {
    d.begin(&std::format!("memory@{base:x}"))
        .prop("device_type", &text("memory"))
        .prop("reg", &words(&[0, base, 0, 0x4000_0000]));
    if let Some(s) = status {
        d.prop("status", &text(s));
    }
    d.end();
}

fn cpus(d: &mut Dtb, n: u32, status: impl Fn(u32) -> Option<&'static str>) {
    d.begin("cpus")
        .prop("#address-cells", &words(&[1]))
        .prop("#size-cells", &words(&[0]));
    for i in 0..n {
        d.begin(&std::format!("cpu@{i:x}"))
            .prop("device_type", &text("cpu"))
            .prop("reg", &words(&[i]));
        if let Some(s) = status(i) {
            d.prop("status", &text(s));
        }
        d.end();
    }
    d.end();
}

#[test]
fn disabled_nodes_and_their_subtrees_are_skipped_and_failed_cpus_are_not_counted() {
    let dtb = tree(|d| {
        memory(d, 0x4000_0000, None);
        memory(d, 0x8000_0000, Some("disabled"));
        // A disabled CPU is only quiescent: it can be started.
        cpus(d, 3, |i| [None, Some("disabled"), Some("fail")][i as usize]);
        d.begin("bus@9000000")
            .prop("compatible", &text("simple-bus"))
            .prop("status", &text("disabled"))
            .prop("#address-cells", &words(&[2]))
            .prop("#size-cells", &words(&[2]))
            .prop("ranges", &[]);
        d.begin("iommu@9050000")
            .prop("compatible", &text("arm,smmu-v3"))
            .prop("reg", &words(&[0, 0x0905_0000, 0, 0x2_0000]))
            .end();
        d.end();
    });
    let p = Platform::parse(&dtb, 0).unwrap();
    let ram: StdVec<_> = p.ram.iter().copied().collect();
    assert_eq!(ram, [PhysRange::new(0x4000_0000, 0x4000_0000)]);
    assert_eq!(p.cpus.as_slice(), [0, 1]);
    assert!(p.smmus.is_empty(), "under a disabled bus");
}

#[test]
fn five_hundred_twelve_cpus_parse_and_one_more_is_refused_by_name_and_limit() {
    let dtb = tree(|d| {
        memory(d, 0x4000_0000, None);
        cpus(d, 512, |_| None);
    });
    assert_eq!(Platform::parse(&dtb, 0).unwrap().cpus.len(), MAX_CPUS);
    let dtb = tree(|d| {
        memory(d, 0x4000_0000, None);
        cpus(d, 513, |_| None);
    });
    let e = Platform::parse(&dtb, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "device tree node cpu@200: more than 512 cpus (the hyp's limit)"
    );
}

#[test]
fn a_tree_without_memory_or_without_a_gic_is_refused_with_its_reason() {
    let no_memory = tree(|d| cpus(d, 1, |_| None));
    let e = Platform::parse(&no_memory, 0).unwrap_err();
    assert_eq!(e, PlatformError::NoMemory);
    assert!(
        e.to_string()
            .contains("the boot loader is expected to fill it in")
    );

    let mut d = Dtb::default();
    d.begin("")
        .prop("#address-cells", &words(&[2]))
        .prop("#size-cells", &words(&[2]));
    memory(&mut d, 0x4000_0000, None);
    d.end();
    let no_gic = d.finish();
    assert_eq!(
        Platform::parse(&no_gic, 0).unwrap_err(),
        PlatformError::NoGic
    );
}

#[test]
fn a_gicv3_redistributor_stride_is_read_in_either_cell_width() {
    for stride in [words(&[0, 0x4_0000]), words(&[0x4_0000])] {
        let mut d = Dtb::default();
        d.begin("")
            .prop("#address-cells", &words(&[2]))
            .prop("#size-cells", &words(&[2]));
        memory(&mut d, 0x4000_0000, None);
        d.begin("interrupt-controller@8000000")
            .prop("compatible", &text("arm,gic-v3"))
            .prop(
                "reg",
                &words(&[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000]),
            )
            .prop("redistributor-stride", &stride)
            .end();
        d.end();
        let dtb = d.finish();
        let p = Platform::parse(&dtb, 0).unwrap();
        assert_eq!(p.gic.redistributor_stride, Some(0x4_0000));
    }
    let dtb = tree(|d| memory(d, 0x4000_0000, None));
    let p = Platform::parse(&dtb, 0).unwrap();
    assert_eq!(p.gic.redistributor_stride, None);
}

/// A tree with an SMMU and its PMCGs on a SoC bus at 0x2b00_0000: an
/// MMU-600 PMCG with two pages (enabled) and a HiSilicon one (disabled),
/// an alias naming the first, and a PCIe-like window covering them.
fn smmu_with_pmcgs() -> StdVec<u8> {
    tree(|d| {
        memory(d, 0x4000_0000, None);
        d.begin("aliases")
            .prop("pmu0", &text("/soc/pmu@420000"))
            .end();
        d.begin("soc")
            .prop("compatible", &text("simple-bus"))
            .prop("#address-cells", &words(&[1]))
            .prop("#size-cells", &words(&[1]))
            .prop("ranges", &words(&[0, 0, 0x2b00_0000, 0x100_0000]));
        d.begin("iommu@400000")
            .prop("compatible", &text("arm,smmu-v3"))
            .prop("reg", &words(&[0x40_0000, 0x2_0000]))
            .end();
        let mut mmu600 = text("arm,mmu-600-pmcg");
        mmu600.extend(text("arm,smmu-v3-pmcg"));
        d.begin("pmu@420000")
            .prop("compatible", &mmu600)
            .prop("reg", &words(&[0x42_0000, 0x1000, 0x43_0000, 0x1000]))
            .end();
        d.begin("pmu@440000")
            .prop("compatible", &text("hisilicon,smmu-v3-pmcg-hip08"))
            .prop("reg", &words(&[0x44_0000, 0x1000]))
            .prop("status", &text("disabled"))
            .end();
        d.end();
    })
}

/// The PMCG frames of [`smmu_with_pmcgs`], as the CPU sees them.
const PMCG_FRAMES: [PhysRange; 3] = [
    PhysRange::new(0x2b42_0000, 0x1000),
    PhysRange::new(0x2b43_0000, 0x1000),
    PhysRange::new(0x2b44_0000, 0x1000),
];

#[test]
fn smmu_pmcg_frames_are_collected_through_the_buses_whatever_their_status() {
    let dtb = smmu_with_pmcgs();
    // No board list: PMCGs are found on every board.
    let p = Platform::parse(&dtb, 0).unwrap();
    assert_eq!(p.smmu_pmcgs.as_slice(), PMCG_FRAMES);
    assert!(p.hidden.is_empty());
    assert_eq!(p.smmus.len(), 1);
}

#[test]
fn the_host_stage_2_never_maps_an_smmu_pmcg() {
    use crate::host_s2::{HostView, for_each_run, hidden_mmio};
    let dtb = smmu_with_pmcgs();
    let p = Platform::parse(&dtb, 0).unwrap();
    let hidden: StdVec<PhysRange> = hidden_mmio(&p, true).collect();
    let view = HostView {
        ram: p.ram.as_slice(),
        el2: &[],
        hidden: &hidden,
        trapped: &[],
        ipa_bits: 32,
    };
    let mut mapped = StdVec::new();
    for_each_run(&view, |run, _| mapped.push(run)).unwrap();
    for frame in PMCG_FRAMES {
        assert!(!mapped.iter().any(|r| r.overlaps(&frame)), "{frame} mapped");
    }
    // The page after the PMCG's second frame stays EL1's.
    let between = PhysRange::new(0x2b43_1000, 0x1000);
    assert!(mapped.iter().any(|r| r.contains_range(&between)));
}

#[test]
fn no_device_may_be_given_an_smmu_pmcg_even_inside_an_allowed_window() {
    use crate::mem::{OwnershipTracker, PaClass, PhysPolicy, forbidden_mmio};
    use core::sync::atomic::AtomicU32;
    let dtb = smmu_with_pmcgs();
    let p = Platform::parse(&dtb, 0).unwrap();
    let listed: StdVec<PhysRange> = forbidden_mmio(&p).collect();
    for frame in PMCG_FRAMES {
        assert!(listed.contains(&frame), "{frame} not forbidden");
    }
    let mut policy = PhysPolicy::for_platform(&p, true).unwrap();
    policy
        .allow_window(PhysRange::new(0x2b00_0000, 0x100_0000))
        .unwrap();
    let records: StdVec<AtomicU32> = (0..16).map(|_| AtomicU32::new(0)).collect();
    let ram = [PhysRange::new(0x4000_0000, 0x1_0000)];
    let tracker = OwnershipTracker::new(&ram, &records).unwrap();
    for frame in PMCG_FRAMES {
        let class = policy.classify(&tracker, frame.start, 0x1000);
        assert_eq!(class, PaClass::Forbidden, "{frame}");
    }
    assert_eq!(
        policy.classify(&tracker, 0x2b50_0000, 0x1000),
        PaClass::Mmio,
        "the rest of the window"
    );
}

#[test]
fn el1s_device_tree_has_no_smmu_pmcg_and_no_alias_to_one() {
    use crate::dt::el1_tree::{El1Iommu, El1Tree, write};
    let dtb = smmu_with_pmcgs();
    let spec = El1Tree {
        hidden_compatibles: &[],
        el2_owned: &[],
        bootargs: None,
        initrd: None,
        iommu: El1Iommu::None,
    };
    let out = write(&dtb, &spec).unwrap();
    let fdt = fdt::Fdt::new(&out).unwrap();
    assert!(
        fdt.all_nodes()
            .all(|n| !n.name.starts_with("pmu@") && !n.name.starts_with("iommu@"))
    );
    let aliases = fdt.all_nodes().find(|n| n.name == "aliases").unwrap();
    assert!(aliases.property("pmu0").is_none());
    let p = Platform::parse(&out, 0).unwrap();
    assert!(p.smmu_pmcgs.is_empty() && p.smmus.is_empty());
}

/// CPUs `cpu@0..` with these `enable-method`s (`None`: no property) and,
/// with `conduit`, a PSCI 1.0 node using it.
fn cpus_started_by(d: &mut Dtb, methods: &[Option<&str>], conduit: Option<&str>) {
    d.begin("cpus")
        .prop("#address-cells", &words(&[1]))
        .prop("#size-cells", &words(&[0]));
    for (i, method) in methods.iter().enumerate() {
        d.begin(&std::format!("cpu@{i:x}"))
            .prop("device_type", &text("cpu"))
            .prop("reg", &words(&[i as u32]));
        if let Some(m) = method {
            d.prop("enable-method", &text(m));
        }
        if *method == Some("spin-table") {
            d.prop("cpu-release-addr", &words(&[0, 0x8000_fff8]));
        }
        d.end();
    }
    d.end();
    if let Some(method) = conduit {
        d.begin("psci")
            .prop("compatible", &text("arm,psci-1.0"))
            .prop("method", &text(method))
            .end();
    }
}

#[test]
fn a_spin_table_cpu_still_parses_and_the_boot_check_refuses_it_by_node_and_method() {
    let dtb = tree(|d| {
        memory(d, 0x4000_0000, None);
        cpus_started_by(d, &[Some("psci"), Some("spin-table")], Some("smc"));
    });
    let p = Platform::parse(&dtb, 0).unwrap();
    assert_eq!(p.cpus.as_slice(), [0, 1], "the library parses the tree");
    let e = p.check_cpus_start_through_psci().unwrap_err();
    assert_eq!(
        e,
        CpuStartError::NotPsci(NonPsciCpu {
            node: "cpu@1",
            method: "spin-table"
        })
    );
    assert_eq!(
        e.to_string(),
        "device tree node cpu@1: enable-method \"spin-table\": the hyp starts CPUs only \
         through PSCI (a spin-table CPU waits at EL2 for an address EL1 writes)"
    );
}

#[test]
fn cpus_started_through_psci_over_smc_pass_the_boot_check_and_so_does_a_lone_cpu() {
    let psci = tree(|d| {
        memory(d, 0x4000_0000, None);
        cpus_started_by(d, &[Some("psci"); 4], Some("smc"));
    });
    let p = Platform::parse(&psci, 0).unwrap();
    assert_eq!(p.non_psci_cpu, None);
    assert_eq!(p.check_cpus_start_through_psci(), Ok(()));
    // QEMU names no enable-method with one CPU; the boot CPU needs none.
    let lone = tree(|d| {
        memory(d, 0x4000_0000, None);
        cpus_started_by(d, &[None], None);
    });
    let p = Platform::parse(&lone, 0).unwrap();
    assert_eq!(p.check_cpus_start_through_psci(), Ok(()));
    // A secondary without the property cannot be started by EL1 at all.
    let unstartable = tree(|d| {
        memory(d, 0x4000_0000, None);
        cpus_started_by(d, &[Some("psci"), None], Some("smc"));
    });
    let p = Platform::parse(&unstartable, 0).unwrap();
    assert_eq!(p.check_cpus_start_through_psci(), Ok(()));
}

#[test]
fn several_cpus_without_psci_through_smc_are_refused_by_the_boot_check() {
    for conduit in [Some("hvc"), None] {
        let dtb = tree(|d| {
            memory(d, 0x4000_0000, None);
            cpus_started_by(d, &[Some("psci"), Some("psci")], conduit);
        });
        let p = Platform::parse(&dtb, 0).unwrap();
        let e = p.check_cpus_start_through_psci().unwrap_err();
        assert_eq!(e, CpuStartError::NoSmcPsci { cpus: 2 }, "{conduit:?}");
        assert_eq!(
            e.to_string(),
            "device tree has 2 CPUs and no PSCI 0.2 or later through SMC: the hyp \
             starts secondary CPUs only through the PSCI calls it intercepts"
        );
    }
}

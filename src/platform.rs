//! The platform, read from the flattened device tree.
//!
//! Everything board-specific that the hyp needs at run time comes from here:
//! RAM, reserved memory, the UART, every SMMUv3, the PCIe host bridge (ECAM,
//! windows, `iommu-map`), the GIC, the PSCI conduit, the CPUs and
//! `/chosen`. Parsing never panics on a malformed tree: missing or
//! malformed properties are errors or absent values.

mod bus;
mod gic;
#[cfg(test)]
mod real_dtbs;
#[cfg(test)]
mod synthetic;

pub use gic::{
    Gic, GicVersion, MAX_GIC_MSI_FRAMES, MAX_GIC_REDISTRIBUTOR_REGIONS, MAX_GIC_REGIONS,
};

use crate::memmap::{PhysRange, RangeSet};
use bus::{Bus, MAX_DEPTH, read_cells, reg_entries, translate};
use core::fmt;
use fdt::Fdt;
use fdt::node::FdtNode;
use heapless::Vec;

pub const MAX_RAM_REGIONS: usize = 8;
pub const MAX_RESERVED: usize = 64;
pub const MAX_SMMUS: usize = 4;
pub const MAX_SMMU_IRQS: usize = 4;
pub const MAX_PCI_RANGES: usize = 16;
pub const MAX_IOMMU_MAP: usize = 8;
/// CPUs the device tree may list. A listed CPU costs 8 bytes here; its
/// EL2 stack and state are allocated at boot for the CPUs that exist.
/// Most frames of hidden bus masters (QEMU virt: fw_cfg and 32 virtio-mmio
/// transports).
pub const MAX_HIDDEN: usize = 48;
pub const MAX_CPUS: usize = 512;
/// Most register frames of SMMU performance monitor counter groups.
pub const MAX_SMMU_PMCG_FRAMES: usize = 16;

/// The SMMUv3, which the hyp drives.
pub const SMMU_V3: &str = "arm,smmu-v3";
/// The SMMUv3's performance monitor counter groups (PMCGs; Linux's
/// `drivers/perf/arm_smmuv3_pmu.c`, the `arm,smmu-v3-pmcg` binding). A
/// PMCG is a bus master no SMMU translates: its overflow MSI is a write of
/// `SMMU_PMCG_IRQ_CFG1` to the physical address in `SMMU_PMCG_IRQ_CFG0`,
/// so whoever programs it writes any 32-bit value anywhere. They belong
/// with the SMMUs on every board: EL1 never reaches them.
pub const SMMU_PMCGS: [&str; 3] = [
    "arm,smmu-v3-pmcg",
    "arm,mmu-600-pmcg",
    "hisilicon,smmu-v3-pmcg-hip08",
];

/// Why the device tree could not be used. Each refusal names the node and,
/// for a capacity, the limit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PlatformError<'a> {
    /// Not a flattened device tree (bad magic or truncated).
    BadDeviceTree,
    /// No enabled `memory` node with a non-empty `reg`.
    NoMemory,
    /// No GICv2 or GICv3 interrupt controller.
    NoGic,
    /// More entries than the fixed capacity for this kind.
    TooMany {
        node: &'a str,
        what: &'static str,
        limit: usize,
    },
    /// A property whose length does not match its cell layout.
    Malformed {
        node: &'a str,
        property: &'static str,
    },
    /// A `reg` that no chain of `ranges` maps into the CPU's address space.
    NotMemoryMapped { node: &'a str },
}

impl fmt::Display for PlatformError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDeviceTree => write!(f, "not a valid flattened device tree"),
            Self::NoMemory => write!(
                f,
                "device tree has no memory: no /memory node with a non-empty reg \
                 (the boot loader is expected to fill it in)"
            ),
            Self::NoGic => write!(f, "device tree has no GICv2 or GICv3 interrupt controller"),
            Self::TooMany { node, what, limit } => write!(
                f,
                "device tree node {node}: more than {limit} {what} (the hyp's limit)"
            ),
            Self::Malformed { node, property } => {
                write!(f, "device tree node {node}: malformed {property}")
            }
            Self::NotMemoryMapped { node } => write!(
                f,
                "device tree node {node}: reg is not in the CPU's address space \
                 (no parent ranges translate it)"
            ),
        }
    }
}

/// A CPU node whose `enable-method` is not "psci".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NonPsciCpu<'a> {
    pub node: &'a str,
    /// The method it names (its first string).
    pub method: &'a str,
}

/// Why the hyp cannot take over the CPUs a device tree describes
/// ([`Platform::check_cpus_start_through_psci`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CpuStartError<'a> {
    /// A CPU EL1 would start otherwise than through PSCI. A "spin-table"
    /// CPU waits at EL2, MMU off, polling its `cpu-release-addr` in
    /// memory EL1 is given, and jumps to whatever is written there
    /// (booting.rst): EL1 would run its own code at EL2.
    NotPsci(NonPsciCpu<'a>),
    /// More than one CPU, but no PSCI 0.2 or later (`arm,psci-0.2`,
    /// `arm,psci-1.0`: the standard function IDs) through SMC: the hyp
    /// starts secondaries only through the PSCI calls it intercepts (EL1's
    /// `smc` traps to EL2; an `hvc` conduit would be the hyp itself).
    NoSmcPsci { cpus: usize },
}

impl fmt::Display for CpuStartError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPsci(cpu) => write!(
                f,
                "device tree node {}: enable-method \"{}\": the hyp starts CPUs only \
                 through PSCI (a spin-table CPU waits at EL2 for an address EL1 writes)",
                cpu.node, cpu.method
            ),
            Self::NoSmcPsci { cpus } => write!(
                f,
                "device tree has {cpus} CPUs and no PSCI 0.2 or later through SMC: the \
                 hyp starts secondary CPUs only through the PSCI calls it intercepts"
            ),
        }
    }
}

/// How PSCI calls reach firmware.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PsciConduit {
    Smc,
    Hvc,
}

impl fmt::Display for PsciConduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Smc => "smc",
            Self::Hvc => "hvc",
        })
    }
}

/// One `arm,smmu-v3` node.
#[derive(Clone, Debug)]
pub struct SmmuNode {
    pub regs: PhysRange,
    pub phandle: Option<u32>,
    /// `(name, SPI number)` from `interrupts` + `interrupt-names`.
    pub irqs: Vec<(&'static str, u32), MAX_SMMU_IRQS>,
}

/// The address space of a PCI host-bridge window.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PciSpace {
    Io,
    Mem32,
    Mem64,
}

/// One entry of the host bridge's `ranges`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PciWindow {
    pub space: PciSpace,
    pub prefetchable: bool,
    pub pci_addr: u64,
    pub cpu_addr: u64,
    pub size: u64,
}

/// One entry of `iommu-map`: requester IDs `rid_base..rid_base+length` reach
/// the IOMMU `iommu_phandle` as StreamIDs from `sid_base`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IommuMapEntry {
    pub rid_base: u32,
    pub iommu_phandle: u32,
    pub sid_base: u32,
    pub length: u32,
}

/// A `pci-host-ecam-generic` host bridge.
#[derive(Clone, Debug)]
pub struct PcieHost {
    pub ecam: PhysRange,
    pub bus_start: u8,
    pub bus_end: u8,
    pub windows: Vec<PciWindow, MAX_PCI_RANGES>,
    pub iommu_map: Vec<IommuMapEntry, MAX_IOMMU_MAP>,
    /// `iommu-map-mask`: ANDed into a requester ID before `iommu_map` is
    /// searched (all ones when absent), as the PCI IOMMU binding and Linux's
    /// `of_map_id` define it.
    pub iommu_map_mask: u32,
}

impl PcieHost {
    /// The SMMU (by phandle) and StreamID a requester ID reaches, if mapped.
    pub fn stream_id(&self, rid: u16) -> Option<(u32, u32)> {
        let rid = u32::from(rid) & self.iommu_map_mask;
        self.iommu_map.iter().find_map(|e| {
            let offset = rid.checked_sub(e.rid_base)?;
            (offset < e.length).then(|| (e.iommu_phandle, e.sid_base + offset))
        })
    }

    /// Whether every requester ID of the bridge's buses reaches an IOMMU
    /// for which `driven(phandle)` holds. A bridge for which this is false
    /// has bus masters that could write anywhere: the hyp hides it from
    /// EL1 and gives no device its windows.
    pub fn every_requester_translated(&self, driven: impl Fn(u32) -> bool) -> bool {
        let first = u16::from(self.bus_start) << 8;
        let last = (u16::from(self.bus_end) << 8) | 0xff;
        (first..=last).all(|rid| self.stream_id(rid).is_some_and(|(iommu, _)| driven(iommu)))
    }
}

/// Everything the hyp uses from the device tree.
#[derive(Clone, Debug)]
pub struct Platform<'a> {
    pub model: &'a str,
    /// The DTB itself: `[address, address + totalsize)`.
    pub dtb: PhysRange,
    pub ram: RangeSet<MAX_RAM_REGIONS>,
    /// `/memreserve/` entries and `/reserved-memory` children.
    pub reserved: RangeSet<MAX_RESERVED>,
    /// The `/reserved-memory` children with `no-map` (part of
    /// `reserved`): memory the OS "must not create a virtual mapping of
    /// ... nor permit speculative access to" (Devicetree Specification
    /// v0.4, 3.5.2), e.g. a TEE's carve-out that firmware may firewall.
    /// `/memreserve/` entries are not among them: the specification asks
    /// only that they not be used (5.3), and Linux keeps them in its
    /// linear map.
    pub no_map: RangeSet<MAX_RESERVED>,
    pub uart: Option<PhysRange>,
    pub smmus: Vec<SmmuNode, MAX_SMMUS>,
    pub pcie: Option<PcieHost>,
    pub gic: Gic,
    pub psci: Option<PsciConduit>,
    /// MPIDR affinity values of the CPUs, in tree order.
    pub cpus: Vec<u64, MAX_CPUS>,
    /// The first of those CPUs whose `enable-method` is not "psci" (one
    /// without the property cannot be started by EL1 at all).
    pub non_psci_cpu: Option<NonPsciCpu<'a>>,
    pub bootargs: &'a str,
    /// Register frames of the nodes [`Platform::parse_hiding`] was asked
    /// to hide (bus masters no SMMU sits in front of), disabled ones too.
    pub hidden: Vec<PhysRange, MAX_HIDDEN>,
    /// Register frames of every SMMU PMCG ([`SMMU_PMCGS`]), disabled ones
    /// too: hidden from EL1 and from devices on every board.
    pub smmu_pmcgs: Vec<PhysRange, MAX_SMMU_PMCG_FRAMES>,
    /// One past the highest address any memory-mapped `reg` names (after
    /// bus translation), RAM and PCIe windows included.
    pub phys_limit: u64,
}

fn u32_cells(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

fn is_compatible(node: &FdtNode<'_, '_>, name: &str) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| s == name))
}

fn is_gic(node: &FdtNode<'_, '_>) -> Option<GicVersion> {
    if is_compatible(node, gic::GICV3_COMPATIBLE) {
        Some(GicVersion::V3)
    } else if gic::GICV2_COMPATIBLES
        .iter()
        .any(|c| is_compatible(node, c))
    {
        Some(GicVersion::V2)
    } else {
        None
    }
}

/// A node's `status` (Devicetree Specification v0.4, 2.3.4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Absent, "okay" or "ok".
    Okay,
    /// "disabled" or "reserved": present, not to be used as it is.
    Disabled,
    /// "fail" or "fail-sss": not operational.
    Fail,
}

fn status(node: &FdtNode<'_, '_>) -> Status {
    match node.property("status").and_then(|p| p.as_str()) {
        None | Some("okay") | Some("ok") => Status::Okay,
        Some(s) if s.starts_with("fail") => Status::Fail,
        Some(_) => Status::Disabled,
    }
}

fn is_enabled(node: &FdtNode<'_, '_>) -> bool {
    status(node) == Status::Okay
}

/// A CPU node's `enable-method`: its first string, as Linux reads it
/// (`arch/arm64/kernel/cpu_ops.c`), "?" if it is not text.
fn enable_method<'a>(node: &FdtNode<'_, 'a>) -> Option<&'a str> {
    let value = node.property("enable-method")?.value;
    let first = value.split(|&b| b == 0).next().unwrap_or(&[]);
    Some(core::str::from_utf8(first).unwrap_or("?"))
}

fn phandle(node: &FdtNode<'_, '_>) -> Option<u32> {
    node.property("phandle")
        .and_then(|p| read_cells(p.value, 1))
        .map(|v| v as u32)
}

/// The `reg` entries of `node` (a child of the last bus of `chain`), as CPU
/// physical ranges.
fn regs<'a, const N: usize>(
    node: &FdtNode<'_, 'a>,
    chain: &[Bus<'_>],
    what: &'static str,
) -> Result<Vec<PhysRange, N>, PlatformError<'a>> {
    let mut out = Vec::new();
    let Some(reg) = node.property("reg") else {
        return Ok(out);
    };
    let parent = chain.last().ok_or(PlatformError::BadDeviceTree)?;
    let entries = reg_entries(reg.value, parent).ok_or(PlatformError::Malformed {
        node: node.name,
        property: "reg",
    })?;
    for (addr, size) in entries {
        let start =
            translate(chain, addr).ok_or(PlatformError::NotMemoryMapped { node: node.name })?;
        out.push(PhysRange::new(start, size))
            .map_err(|_| PlatformError::TooMany {
                node: node.name,
                what,
                limit: N,
            })?;
    }
    Ok(out)
}

/// Appends `frames` (of `node`) to `list`, or names the limit.
fn push_all<'a, const N: usize>(
    list: &mut Vec<PhysRange, N>,
    frames: &[PhysRange],
    node: &FdtNode<'_, 'a>,
    what: &'static str,
) -> Result<(), PlatformError<'a>> {
    list.extend_from_slice(frames)
        .map_err(|_| PlatformError::TooMany {
            node: node.name,
            what,
            limit: N,
        })
}

/// The `(name, INTID)` pairs of an SMMU whose interrupt parent is the GIC
/// (three cells per interrupt: type, number, flags; only SPIs).
fn spi_interrupts(node: &FdtNode<'_, '_>) -> Vec<(&'static str, u32), MAX_SMMU_IRQS> {
    const NAMES: [&str; 4] = ["eventq", "priq", "cmdq-sync", "gerror"];
    let mut out = Vec::new();
    let Some(prop) = node.property("interrupts") else {
        return out;
    };
    let names = node
        .property("interrupt-names")
        .map(|p| p.value)
        .unwrap_or(&[]);
    let mut names = names.split(|&b| b == 0).filter(|s| !s.is_empty());
    let cells: Vec<u32, 12> = u32_cells(prop.value).take(12).collect();
    for spec in cells.chunks_exact(3) {
        // Cell 0 is the type (0 = SPI), cell 1 the number within the type.
        let name = names
            .next()
            .and_then(|n| NAMES.iter().copied().find(|k| k.as_bytes() == n));
        if spec[0] == 0 && out.push((name.unwrap_or("irq"), spec[1] + 32)).is_err() {
            break;
        }
    }
    out
}

fn parse_pcie<'a>(
    node: &FdtNode<'_, 'a>,
    chain: &[Bus<'_>],
) -> Result<PcieHost, PlatformError<'a>> {
    let name = node.name;
    let malformed = |property| PlatformError::Malformed {
        node: name,
        property,
    };
    let ecam = *regs::<1>(node, chain, "reg entries")
        .ok()
        .and_then(|r| r.first().copied())
        .as_ref()
        .ok_or(malformed("reg"))?;
    let (bus_start, bus_end) = match node.property("bus-range") {
        Some(p) => {
            let mut cells = u32_cells(p.value);
            let (Some(a), Some(b)) = (cells.next(), cells.next()) else {
                return Err(malformed("bus-range"));
            };
            (a.min(255) as u8, b.min(255) as u8)
        }
        None => (0, ((ecam.size >> 20).saturating_sub(1)).min(255) as u8),
    };
    let mut windows = Vec::new();
    if let Some(p) = node.property("ranges") {
        // Child address: 3 cells (phys.hi, mid, lo); parent: the parent
        // bus's #address-cells; size: the bridge's #size-cells.
        let own = Bus::of(node);
        let parent_cells = chain.last().map_or(2, |b| b.address_cells);
        let entry = (3 + parent_cells + own.size_cells) * 4;
        if own.address_cells != 3 || !p.value.len().is_multiple_of(entry) {
            return Err(malformed("ranges"));
        }
        for e in p.value.chunks_exact(entry) {
            let hi = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let space = match (hi >> 24) & 3 {
                1 => PciSpace::Io,
                2 => PciSpace::Mem32,
                3 => PciSpace::Mem64,
                _ => continue,
            };
            let (parent, size) = e[12..].split_at(parent_cells * 4);
            let parent = read_cells(parent, parent_cells).ok_or(malformed("ranges"))?;
            let window = PciWindow {
                space,
                prefetchable: hi & (1 << 30) != 0,
                pci_addr: read_cells(&e[4..12], 2).unwrap_or(0),
                cpu_addr: translate(chain, parent)
                    .ok_or(PlatformError::NotMemoryMapped { node: name })?,
                size: read_cells(size, own.size_cells).unwrap_or(0),
            };
            windows.push(window).map_err(|_| PlatformError::TooMany {
                node: name,
                what: "PCIe ranges",
                limit: MAX_PCI_RANGES,
            })?;
        }
    }
    let mut iommu_map = Vec::new();
    if let Some(p) = node.property("iommu-map") {
        if p.value.len() % 16 != 0 {
            return Err(malformed("iommu-map"));
        }
        let cells: Vec<u32, { 4 * MAX_IOMMU_MAP }> =
            u32_cells(p.value).take(4 * MAX_IOMMU_MAP).collect();
        if cells.len() * 4 != p.value.len() {
            return Err(PlatformError::TooMany {
                node: name,
                what: "iommu-map entries",
                limit: MAX_IOMMU_MAP,
            });
        }
        for c in cells.chunks_exact(4) {
            let entry = IommuMapEntry {
                rid_base: c[0],
                iommu_phandle: c[1],
                sid_base: c[2],
                length: c[3],
            };
            // Cannot fail: `cells` holds at most MAX_IOMMU_MAP entries.
            let _ = iommu_map.push(entry);
        }
    }
    let iommu_map_mask = match node.property("iommu-map-mask") {
        Some(p) => p
            .as_usize()
            .map(|m| m as u32)
            .ok_or(malformed("iommu-map-mask"))?,
        None => u32::MAX,
    };
    Ok(PcieHost {
        ecam,
        bus_start,
        bus_end,
        windows,
        iommu_map,
        iommu_map_mask,
    })
}

/// What the walk over the tree collects.
#[derive(Default)]
struct Found<'a> {
    /// Compatibles whose nodes' frames go to `hidden`.
    hide: &'static [&'static str],
    hidden: Vec<PhysRange, MAX_HIDDEN>,
    smmu_pmcgs: Vec<PhysRange, MAX_SMMU_PMCG_FRAMES>,
    phys_limit: u64,
    ram: RangeSet<MAX_RAM_REGIONS>,
    smmus: Vec<SmmuNode, MAX_SMMUS>,
    /// Each SMMU's interrupt parent, resolved once the GIC is known.
    smmu_irq_parents: Vec<Option<u32>, MAX_SMMUS>,
    gic: Option<(Gic, Option<u32>)>,
    its: Vec<PhysRange, MAX_GIC_MSI_FRAMES>,
    v2m: Vec<PhysRange, MAX_GIC_MSI_FRAMES>,
    cpus: Vec<u64, MAX_CPUS>,
    non_psci_cpu: Option<NonPsciCpu<'a>>,
    pcie: Option<PcieHost>,
    uart: Option<PhysRange>,
    psci: Option<PsciConduit>,
}

/// UARTs the hyp's PL011 driver can drive (the SBSA generic UART is a
/// PL011 subset).
const UART_COMPATIBLES: [&str; 2] = ["arm,pl011", "arm,sbsa-uart"];

impl<'a> Found<'a> {
    /// Visits every node below `node` depth-first; `chain` holds the buses
    /// from the root to `node` (inclusive), `irq_parent` the interrupt
    /// parent `node`'s children inherit.
    fn walk(
        &mut self,
        node: FdtNode<'_, 'a>,
        chain: &mut Vec<Bus<'a>, MAX_DEPTH>,
        irq_parent: Option<u32>,
    ) -> Result<(), PlatformError<'a>> {
        for child in node.children() {
            let irq_parent = child
                .property("interrupt-parent")
                .and_then(|p| read_cells(p.value, 1))
                .map(|v| v as u32)
                .or(irq_parent);
            if !self.visit(&child, chain, irq_parent)? {
                continue;
            }
            chain
                .push(Bus::of(&child))
                .map_err(|_| PlatformError::TooMany {
                    node: child.name,
                    what: "levels of node nesting",
                    limit: MAX_DEPTH,
                })?;
            let walked = self.walk(child, chain, irq_parent);
            chain.pop();
            walked?;
        }
        Ok(())
    }

    /// Records what `node` describes; returns whether to walk its children.
    fn visit(
        &mut self,
        node: &FdtNode<'_, 'a>,
        chain: &[Bus<'a>],
        irq_parent: Option<u32>,
    ) -> Result<bool, PlatformError<'a>> {
        let name = node.name;
        let device_type = node.property("device_type").and_then(|p| p.as_str());
        if device_type != Some("cpu") {
            self.note_frames(node, chain)?;
        }
        // A CPU whose status is "disabled" is only quiescent and may be
        // started through its enable-method; "fail" means it does not work
        // (Devicetree Specification v0.4, 3.8.1). Other disabled nodes are
        // skipped with their whole subtree.
        if device_type == Some("cpu") {
            if status(node) == Status::Fail {
                return Ok(false);
            }
            if let Some(reg) = node.property("reg") {
                let cells = chain.last().map_or(1, |b| b.address_cells);
                let mpidr = read_cells(reg.value, cells).ok_or(PlatformError::Malformed {
                    node: name,
                    property: "reg",
                })?;
                self.cpus.push(mpidr).map_err(|_| PlatformError::TooMany {
                    node: name,
                    what: "cpus",
                    limit: MAX_CPUS,
                })?;
                if let Some(method) = enable_method(node).filter(|m| *m != "psci") {
                    self.non_psci_cpu
                        .get_or_insert(NonPsciCpu { node: name, method });
                }
            }
            return Ok(false);
        }
        if !is_enabled(node) {
            return Ok(false);
        }
        if device_type == Some("memory") {
            for r in regs::<MAX_RAM_REGIONS>(node, chain, "memory regions")? {
                self.ram.add(r).map_err(|_| PlatformError::TooMany {
                    node: name,
                    what: "memory regions",
                    limit: MAX_RAM_REGIONS,
                })?;
            }
        } else if is_compatible(node, SMMU_V3) {
            let regs = regs::<4>(node, chain, "reg entries")?;
            let regs = *regs.first().ok_or(PlatformError::Malformed {
                node: name,
                property: "reg",
            })?;
            let smmu = SmmuNode {
                regs,
                phandle: phandle(node),
                irqs: spi_interrupts(node),
            };
            let too_many = PlatformError::TooMany {
                node: name,
                what: "SMMUs",
                limit: MAX_SMMUS,
            };
            self.smmus.push(smmu).map_err(|_| too_many)?;
            self.smmu_irq_parents
                .push(irq_parent)
                .map_err(|_| too_many)?;
        } else if is_compatible(node, "pci-host-ecam-generic") {
            if self.pcie.is_none() {
                self.pcie = Some(parse_pcie(node, chain)?);
            }
        } else if UART_COMPATIBLES.iter().any(|c| is_compatible(node, c)) {
            if self.uart.is_none() {
                // A UART the CPU cannot address is of no use; not an error.
                self.uart = regs::<4>(node, chain, "reg entries")
                    .ok()
                    .and_then(|r| r.first().copied());
            }
        } else if let Some(version) = is_gic(node) {
            self.gic_distributor(node, chain, version)?;
        } else if is_compatible(node, gic::ITS_COMPATIBLE)
            || is_compatible(node, gic::V2M_COMPATIBLE)
        {
            let frames = if is_compatible(node, gic::ITS_COMPATIBLE) {
                &mut self.its
            } else {
                &mut self.v2m
            };
            for r in regs::<2>(node, chain, "reg entries")? {
                frames.push(r).map_err(|_| PlatformError::TooMany {
                    node: name,
                    what: "GIC MSI frames (ITS or v2m)",
                    limit: MAX_GIC_MSI_FRAMES,
                })?;
            }
        } else if is_compatible(node, "arm,psci-1.0") || is_compatible(node, "arm,psci-0.2") {
            self.psci = match node.property("method").and_then(|p| p.as_str()) {
                Some("smc") => Some(PsciConduit::Smc),
                Some("hvc") => Some(PsciConduit::Hvc),
                _ => None,
            };
        }
        Ok(true)
    }

    /// Raises `phys_limit` to cover `node`'s memory-mapped frames, and
    /// records them in `hidden` if its compatible is one to hide, in
    /// `smmu_pmcgs` if it is an SMMU PMCG (whatever its status: firmware
    /// or EL1 may enable a disabled device).
    fn note_frames(
        &mut self,
        node: &FdtNode<'_, 'a>,
        chain: &[Bus<'a>],
    ) -> Result<(), PlatformError<'a>> {
        let pmcg = SMMU_PMCGS.iter().any(|c| is_compatible(node, c));
        let hide = pmcg || self.hide.iter().any(|c| is_compatible(node, c));
        let frames = match regs::<16>(node, chain, "reg entries") {
            Ok(frames) => frames,
            // A bus master to hide whose frames cannot be read is a tree
            // the hyp cannot make safe.
            Err(e) if hide => return Err(e),
            // Frames behind a bus the CPU cannot address have no CPU
            // address; malformed ones are refused where they matter.
            Err(_) => return Ok(()),
        };
        for r in &frames {
            self.phys_limit = self.phys_limit.max(r.end());
        }
        if pmcg {
            push_all(&mut self.smmu_pmcgs, &frames, node, "SMMU PMCG frames")
        } else if hide {
            push_all(&mut self.hidden, &frames, node, "hidden bus-master frames")
        } else {
            Ok(())
        }
    }

    fn gic_distributor(
        &mut self,
        node: &FdtNode<'_, 'a>,
        chain: &[Bus<'a>],
        version: GicVersion,
    ) -> Result<(), PlatformError<'a>> {
        const MAX_REGS: usize = 1 + MAX_GIC_REDISTRIBUTOR_REGIONS + 3;
        if self.gic.is_some() {
            return Err(PlatformError::TooMany {
                node: node.name,
                what: "GIC distributors",
                limit: 1,
            });
        }
        let regs = regs::<MAX_REGS>(node, chain, "GIC register frames")?;
        let redistributor_regions = match version {
            GicVersion::V2 => 0,
            GicVersion::V3 => node
                .property("#redistributor-regions")
                .map_or(Some(1), |p| read_cells(p.value, 1))
                .ok_or(PlatformError::Malformed {
                    node: node.name,
                    property: "#redistributor-regions",
                })? as usize,
        };
        let mut gic = Gic::from_regs(node.name, version, &regs, redistributor_regions)?;
        if version == GicVersion::V3
            && let Some(p) = node.property("redistributor-stride")
        {
            let stride =
                read_cells(p.value, p.value.len() / 4).ok_or(PlatformError::Malformed {
                    node: node.name,
                    property: "redistributor-stride",
                })?;
            gic.redistributor_stride = (stride != 0).then_some(stride);
        }
        self.gic = Some((gic, phandle(node)));
        Ok(())
    }
}

impl<'a> Platform<'a> {
    /// Parses the device tree `dtb`, found at physical address `dtb_pa`.
    pub fn parse(dtb: &'a [u8], dtb_pa: u64) -> Result<Self, PlatformError<'a>> {
        Self::parse_hiding(dtb, dtb_pa, &[])
    }

    /// As [`parse`](Self::parse), also collecting in
    /// [`hidden`](Self::hidden) the frames of every node compatible with
    /// one of `hide`.
    pub fn parse_hiding(
        dtb: &'a [u8],
        dtb_pa: u64,
        hide: &'static [&'static str],
    ) -> Result<Self, PlatformError<'a>> {
        let fdt = Fdt::new(dtb).map_err(|_| PlatformError::BadDeviceTree)?;
        let root = fdt.find_node("/").ok_or(PlatformError::BadDeviceTree)?;
        let mut found = Found {
            hide,
            ..Found::default()
        };
        let mut chain = Vec::new();
        // Cannot fail: the chain is empty.
        let _ = chain.push(Bus::of(&root));
        let root_irq_parent = root
            .property("interrupt-parent")
            .and_then(|p| read_cells(p.value, 1))
            .map(|v| v as u32);
        found.walk(root, &mut chain, root_irq_parent)?;
        if found.ram.total_size() == 0 {
            return Err(PlatformError::NoMemory);
        }
        let (mut gic, gic_phandle) = found.gic.ok_or(PlatformError::NoGic)?;
        gic.its = found.its;
        gic.v2m = found.v2m;
        let mut smmus = found.smmus;
        for (smmu, parent) in smmus.iter_mut().zip(&found.smmu_irq_parents) {
            // Interrupts routed through another controller (e.g. a wired-
            // to-MSI bridge) have another cell layout: not SPIs.
            if parent.is_none() || *parent != gic_phandle {
                smmu.irqs.clear();
            }
        }

        let mut reserved = RangeSet::new();
        for r in fdt.memory_reservations() {
            let range = PhysRange::new(r.address() as u64, r.size() as u64);
            reserved.add(range).map_err(|_| PlatformError::TooMany {
                node: "/memreserve/",
                what: "memory reservations",
                limit: MAX_RESERVED,
            })?;
        }
        let mut no_map = RangeSet::new();
        if let Some(rm) = fdt.all_nodes().find(|n| n.name == "reserved-memory") {
            let rm_chain = [Bus::of(&root), Bus::of(&rm)];
            for child in rm.children().filter(is_enabled) {
                let too_many = PlatformError::TooMany {
                    node: child.name,
                    what: "reserved-memory regions",
                    limit: MAX_RESERVED,
                };
                let unmapped = child.property("no-map").is_some();
                for r in regs::<4>(&child, &rm_chain, "reg entries")? {
                    reserved.add(r).map_err(|_| too_many)?;
                    if unmapped {
                        no_map.add(r).map_err(|_| too_many)?;
                    }
                }
            }
        }

        // Not `find_node`: fdt 0.1.5's path lookup stops at FDT_NOP tokens,
        // which QEMU's `-dtb` and boot loaders' tree edits leave behind.
        let chosen = fdt.all_nodes().find(|n| n.name == "chosen");
        let bootargs = chosen
            .and_then(|c| c.property("bootargs"))
            .and_then(|p| p.as_str())
            .unwrap_or("");
        let model = root
            .property("model")
            .and_then(|p| p.as_str())
            .unwrap_or("unknown");

        let mut phys_limit = found.phys_limit;
        for r in found.ram.iter() {
            phys_limit = phys_limit.max(r.end());
        }
        for w in found.pcie.iter().flat_map(|p| p.windows.iter()) {
            phys_limit = phys_limit.max(w.cpu_addr.saturating_add(w.size));
        }
        Ok(Self {
            model,
            dtb: PhysRange::new(dtb_pa, fdt.total_size() as u64),
            hidden: found.hidden,
            smmu_pmcgs: found.smmu_pmcgs,
            phys_limit,
            ram: found.ram,
            reserved,
            no_map,
            uart: found.uart,
            smmus,
            pcie: found.pcie,
            gic,
            psci: found.psci,
            cpus: found.cpus,
            non_psci_cpu: found.non_psci_cpu,
            bootargs,
        })
    }

    /// Whether EL1 can start every CPU only through the PSCI calls the hyp
    /// intercepts: each CPU the tree lists (and so EL1's tree) names no
    /// `enable-method` but "psci", and with more than one CPU PSCI goes
    /// through SMC. The library parses any tree; the hyp refuses to boot
    /// on one that fails this.
    pub fn check_cpus_start_through_psci(&self) -> Result<(), CpuStartError<'a>> {
        if let Some(cpu) = self.non_psci_cpu {
            return Err(CpuStartError::NotPsci(cpu));
        }
        if self.cpus.len() > 1 && self.psci != Some(PsciConduit::Smc) {
            return Err(CpuStartError::NoSmcPsci {
                cpus: self.cpus.len(),
            });
        }
        Ok(())
    }

    /// The SMMU whose phandle is `phandle`.
    pub fn smmu_by_phandle(&self, phandle: u32) -> Option<usize> {
        self.smmus.iter().position(|s| s.phandle == Some(phandle))
    }
}

/// `/chosen/bootargs`, read without parsing the rest of the tree: for what
/// must be known even when the full parse fails (how a run ends).
pub fn chosen_bootargs(dtb: &[u8]) -> Option<&str> {
    let fdt = Fdt::new(dtb).ok()?;
    let chosen = fdt.all_nodes().find(|n| n.name == "chosen")?;
    chosen.property("bootargs")?.as_str()
}

/// The size a DTB at `header` says it has, if the magic is right.
pub fn dtb_total_size(header: &[u8; 8]) -> Option<usize> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (magic == 0xd00d_feed).then_some(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(buses: (u8, u8), map: &[(u32, u32, u32)], mask: u32) -> PcieHost {
        PcieHost {
            ecam: PhysRange::new(0x40_1000_0000, 0x1000_0000),
            bus_start: buses.0,
            bus_end: buses.1,
            windows: Vec::new(),
            iommu_map: map
                .iter()
                .map(|&(rid_base, iommu_phandle, length)| IommuMapEntry {
                    rid_base,
                    iommu_phandle,
                    sid_base: 0,
                    length,
                })
                .collect(),
            iommu_map_mask: mask,
        }
    }

    #[test]
    fn a_bridge_is_translated_only_if_every_requester_reaches_a_driven_iommu() {
        let driven = |phandle| phandle == 1;
        let all = u32::MAX;
        assert!(bridge((0, 255), &[(0, 1, 0x10000)], all).every_requester_translated(driven));
        let split = [(0x8000, 1, 0x8000), (0, 1, 0x8000)];
        assert!(bridge((0, 255), &split, all).every_requester_translated(driven));
        let gap = [(0, 1, 0x100), (0x200, 1, 0xfe00)];
        assert!(!bridge((0, 255), &gap, all).every_requester_translated(driven));
        let refused = [(0, 1, 0x100), (0x100, 2, 0xff00)];
        assert!(!bridge((0, 255), &refused, all).every_requester_translated(driven));
        assert!(!bridge((0, 0), &[], all).every_requester_translated(driven));
        // Only the bridge's own buses matter.
        assert!(bridge((2, 3), &[(0x200, 1, 0x200)], all).every_requester_translated(driven));
        // iommu-map-mask folds every requester into the mapped range.
        assert!(bridge((0, 255), &[(0, 1, 0x100)], 0xff).every_requester_translated(driven));
    }

    const VIRT_1G: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-1g.dtb");
    const VIRT_2G_SMP2: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-2g-smp2.dtb");

    #[test]
    fn qemu_virt_1g() {
        let p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        assert_eq!(
            p.ram.iter().copied().collect::<std::vec::Vec<_>>(),
            [PhysRange::new(0x4000_0000, 1 << 30)]
        );
        assert_eq!(p.uart, Some(PhysRange::new(0x0900_0000, 0x1000)));
        assert_eq!(p.smmus.len(), 1);
        assert_eq!(p.smmus[0].regs, PhysRange::new(0x0905_0000, 0x2_0000));
        let names: std::vec::Vec<_> = p.smmus[0].irqs.iter().map(|i| i.0).collect();
        assert_eq!(names, ["eventq", "priq", "cmdq-sync", "gerror"]);
        assert_eq!(p.psci, Some(PsciConduit::Smc));
        assert_eq!(p.cpus.as_slice(), [0]);
        assert_eq!(p.dtb, PhysRange::new(0x4800_0000, VIRT_1G.len() as u64));
        assert_eq!(p.gic.version, GicVersion::V3);
        assert_eq!(p.gic.distributor, PhysRange::new(0x0800_0000, 0x1_0000));
        assert_eq!(
            p.gic.redistributors.as_slice(),
            [PhysRange::new(0x080a_0000, 0xf6_0000)]
        );
        assert_eq!(
            p.gic.its.as_slice(),
            [PhysRange::new(0x0808_0000, 0x2_0000)]
        );
    }

    #[test]
    fn qemu_virt_pcie_host_bridge() {
        let p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        let pcie = p.pcie.as_ref().unwrap();
        assert_eq!(pcie.ecam, PhysRange::new(0x40_1000_0000, 0x1000_0000));
        assert_eq!((pcie.bus_start, pcie.bus_end), (0, 255));
        let mem32 = pcie
            .windows
            .iter()
            .find(|w| w.space == PciSpace::Mem32)
            .unwrap();
        assert_eq!(
            (mem32.cpu_addr, mem32.pci_addr, mem32.size),
            (0x1000_0000, 0x1000_0000, 0x2eff_0000)
        );
        assert!(pcie.windows.iter().any(|w| w.space == PciSpace::Mem64));
        assert!(pcie.windows.iter().any(|w| w.space == PciSpace::Io));
        // iommu-map = <0 &smmu 0 0x10000>: StreamID == requester ID.
        let smmu = p.smmus[0].phandle.unwrap();
        assert_eq!(pcie.stream_id(0x0008), Some((smmu, 0x8)));
        assert_eq!(pcie.stream_id(0xffff), Some((smmu, 0xffff)));
        assert_eq!(p.smmu_by_phandle(smmu), Some(0));
    }

    #[test]
    fn qemu_virt_2g_two_cpus() {
        let p = Platform::parse(VIRT_2G_SMP2, 0x4000_0000).unwrap();
        assert_eq!(p.ram.total_size(), 2 << 30);
        assert_eq!(p.cpus.as_slice(), [0, 1]);
    }

    #[test]
    fn rejects_garbage_and_truncation_without_panicking() {
        assert_eq!(
            Platform::parse(&[0u8; 64], 0).unwrap_err(),
            PlatformError::BadDeviceTree
        );
        assert_eq!(
            Platform::parse(&VIRT_1G[..100], 0).unwrap_err(),
            PlatformError::BadDeviceTree
        );
        assert_eq!(
            dtb_total_size(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x39, 0xb8]),
            Some(0x39b8)
        );
        assert_eq!(dtb_total_size(&[0; 8]), None);
    }

    /// A host bridge with one `iommu-map` entry to IOMMU 7.
    fn host_mapping(rid_base: u32, sid_base: u32, length: u32, mask: u32) -> PcieHost {
        PcieHost {
            ecam: PhysRange::new(0, 0),
            bus_start: 0,
            bus_end: 255,
            windows: Vec::new(),
            iommu_map: Vec::from_slice(&[IommuMapEntry {
                rid_base,
                iommu_phandle: 7,
                sid_base,
                length,
            }])
            .unwrap(),
            iommu_map_mask: mask,
        }
    }

    #[test]
    fn iommu_map_outside_any_entry_is_none() {
        let host = host_mapping(0x100, 0x40, 0x10, u32::MAX);
        assert_eq!(host.stream_id(0xff), None);
        assert_eq!(host.stream_id(0x100), Some((7, 0x40)));
        assert_eq!(host.stream_id(0x10f), Some((7, 0x4f)));
        assert_eq!(host.stream_id(0x110), None);
    }

    #[test]
    fn iommu_map_mask_is_applied_to_the_requester_id_first() {
        // The mask keeps the bus and drops device and function: the root
        // bus is one StreamID, bus 3 behind a bridge is beyond the entry.
        let host = host_mapping(0, 0x40, 0x10, 0xff00);
        assert_eq!(host.stream_id(0x0008), Some((7, 0x40)));
        assert_eq!(host.stream_id(0x0308), None);
        // One StreamID for all of bus 3.
        let host = host_mapping(0x300, 0x43, 1, 0xff00);
        assert_eq!(host.stream_id(0x0308), Some((7, 0x43)));
        assert_eq!(host.stream_id(0x03ff), Some((7, 0x43)));
        assert_eq!(host.stream_id(0x0408), None);
    }

    #[test]
    fn iommu_map_mask_is_read_from_the_host_bridge() {
        let p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        assert_eq!(p.pcie.unwrap().iommu_map_mask, u32::MAX, "absent on QEMU");
    }
}

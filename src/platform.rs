//! The platform, read from the flattened device tree.
//!
//! Everything board-specific that the hyp needs at run time comes from here:
//! RAM, reserved memory, the UART, every SMMUv3, the PCIe host bridge (ECAM,
//! windows, `iommu-map`), the GIC, the PSCI conduit, the CPUs and
//! `/chosen`. Parsing never panics on a malformed tree: missing or
//! malformed properties are errors or absent values.

use crate::memmap::{PhysRange, RangeSet};
use core::fmt;
use fdt::Fdt;
use fdt::node::FdtNode;
use heapless::Vec;

pub const MAX_RAM_REGIONS: usize = 8;
pub const MAX_RESERVED: usize = 16;
pub const MAX_SMMUS: usize = 4;
pub const MAX_SMMU_IRQS: usize = 4;
pub const MAX_PCI_RANGES: usize = 4;
pub const MAX_IOMMU_MAP: usize = 8;
pub const MAX_GIC_REGIONS: usize = 4;
pub const MAX_CPUS: usize = 8;

/// Why the device tree could not be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PlatformError {
    /// Not a flattened device tree (bad magic or truncated).
    BadDeviceTree,
    /// No `memory` node with a usable `reg`.
    NoMemory,
    /// More entries than the fixed capacity for this kind.
    TooMany(&'static str),
    /// A property whose length does not match its cell layout.
    Malformed(&'static str),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDeviceTree => write!(f, "not a valid flattened device tree"),
            Self::NoMemory => write!(f, "device tree has no memory node"),
            Self::TooMany(what) => write!(f, "device tree has too many {what}"),
            Self::Malformed(what) => write!(f, "malformed device-tree property {what}"),
        }
    }
}

/// How PSCI calls reach firmware.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PsciConduit {
    Smc,
    Hvc,
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
}

impl PcieHost {
    /// The SMMU (by phandle) and StreamID a requester ID reaches, if mapped.
    pub fn stream_id(&self, rid: u16) -> Option<(u32, u32)> {
        let rid = u32::from(rid);
        self.iommu_map.iter().find_map(|e| {
            let offset = rid.checked_sub(e.rid_base)?;
            (offset < e.length).then(|| (e.iommu_phandle, e.sid_base + offset))
        })
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
    pub uart: Option<PhysRange>,
    pub smmus: Vec<SmmuNode, MAX_SMMUS>,
    pub pcie: Option<PcieHost>,
    pub gic: Vec<PhysRange, MAX_GIC_REGIONS>,
    pub psci: Option<PsciConduit>,
    /// MPIDR affinity values of the CPUs, in tree order.
    pub cpus: Vec<u64, MAX_CPUS>,
    pub bootargs: &'a str,
}

/// Reads a big-endian cell array of `cells` 32-bit cells as one number.
fn read_cells(bytes: &[u8], cells: usize) -> Option<u64> {
    if cells == 0 || cells > 2 || bytes.len() < cells * 4 {
        return None;
    }
    Some(bytes[..cells * 4].chunks_exact(4).fold(0u64, |acc, c| {
        (acc << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }))
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

fn regs_of(node: &FdtNode<'_, '_>) -> impl Iterator<Item = PhysRange> {
    node.reg()
        .into_iter()
        .flatten()
        .map(|r| PhysRange::new(r.starting_address as u64, r.size.unwrap_or(0) as u64))
}

fn first_reg(node: &FdtNode<'_, '_>) -> Option<PhysRange> {
    regs_of(node).next()
}

/// The `(name, SPI)` pairs of a GIC-connected node (3-cell interrupts).
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

fn parse_pcie(node: &FdtNode<'_, '_>) -> Result<PcieHost, PlatformError> {
    let ecam = first_reg(node).ok_or(PlatformError::Malformed("pcie reg"))?;
    let (bus_start, bus_end) = match node.property("bus-range") {
        Some(p) => {
            let mut cells = u32_cells(p.value);
            let (Some(a), Some(b)) = (cells.next(), cells.next()) else {
                return Err(PlatformError::Malformed("bus-range"));
            };
            (a.min(255) as u8, b.min(255) as u8)
        }
        None => (0, ((ecam.size >> 20).saturating_sub(1)).min(255) as u8),
    };
    let mut windows = Vec::new();
    if let Some(p) = node.property("ranges") {
        // Child address: 3 cells (phys.hi, mid, lo); parent: the root's
        // #address-cells (2 on every arm64 tree we boot); size: 2 cells.
        const ENTRY: usize = (3 + 2 + 2) * 4;
        if p.value.len() % ENTRY != 0 {
            return Err(PlatformError::Malformed("pcie ranges"));
        }
        for e in p.value.chunks_exact(ENTRY) {
            let hi = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let space = match (hi >> 24) & 3 {
                1 => PciSpace::Io,
                2 => PciSpace::Mem32,
                3 => PciSpace::Mem64,
                _ => continue,
            };
            let window = PciWindow {
                space,
                prefetchable: hi & (1 << 30) != 0,
                pci_addr: read_cells(&e[4..12], 2).unwrap_or(0),
                cpu_addr: read_cells(&e[12..20], 2).unwrap_or(0),
                size: read_cells(&e[20..28], 2).unwrap_or(0),
            };
            windows
                .push(window)
                .map_err(|_| PlatformError::TooMany("pcie ranges"))?;
        }
    }
    let mut iommu_map = Vec::new();
    if let Some(p) = node.property("iommu-map") {
        if p.value.len() % 16 != 0 {
            return Err(PlatformError::Malformed("iommu-map"));
        }
        let cells: Vec<u32, { 4 * MAX_IOMMU_MAP }> =
            u32_cells(p.value).take(4 * MAX_IOMMU_MAP).collect();
        if cells.len() * 4 != p.value.len() {
            return Err(PlatformError::TooMany("iommu-map entries"));
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
    Ok(PcieHost {
        ecam,
        bus_start,
        bus_end,
        windows,
        iommu_map,
    })
}

impl<'a> Platform<'a> {
    /// Parses the device tree `dtb`, found at physical address `dtb_pa`.
    pub fn parse(dtb: &'a [u8], dtb_pa: u64) -> Result<Self, PlatformError> {
        let fdt = Fdt::new(dtb).map_err(|_| PlatformError::BadDeviceTree)?;
        let mut ram = RangeSet::new();
        let mut reserved = RangeSet::new();
        let mut smmus = Vec::new();
        let mut gic = Vec::new();
        let mut cpus = Vec::new();
        let mut pcie = None;
        let mut uart = None;
        let mut psci = None;

        for node in fdt.all_nodes() {
            let device_type = node.property("device_type").and_then(|p| p.as_str());
            if device_type == Some("memory") {
                for r in regs_of(&node) {
                    ram.add(r)
                        .map_err(|_| PlatformError::TooMany("memory regions"))?;
                }
            } else if device_type == Some("cpu") {
                if let Some(reg) = node.property("reg") {
                    let mpidr = read_cells(reg.value, reg.value.len() / 4).unwrap_or(0);
                    cpus.push(mpidr)
                        .map_err(|_| PlatformError::TooMany("cpus"))?;
                }
            } else if is_compatible(&node, "arm,smmu-v3") {
                let regs = first_reg(&node).ok_or(PlatformError::Malformed("smmu reg"))?;
                let phandle = node
                    .property("phandle")
                    .and_then(|p| p.as_usize())
                    .map(|v| v as u32);
                let smmu = SmmuNode {
                    regs,
                    phandle,
                    irqs: spi_interrupts(&node),
                };
                smmus
                    .push(smmu)
                    .map_err(|_| PlatformError::TooMany("SMMUs"))?;
            } else if is_compatible(&node, "pci-host-ecam-generic") && pcie.is_none() {
                pcie = Some(parse_pcie(&node)?);
            } else if is_compatible(&node, "arm,pl011") && uart.is_none() {
                uart = first_reg(&node);
            } else if is_compatible(&node, "arm,gic-v3")
                || is_compatible(&node, "arm,cortex-a15-gic")
                || is_compatible(&node, "arm,gic-v3-its")
                || is_compatible(&node, "arm,gic-v2m-frame")
            {
                // The ITS and v2m frames are the GIC's doorbells: part of
                // it for every purpose the hyp has (never mapped for DMA).
                for r in regs_of(&node) {
                    gic.push(r)
                        .map_err(|_| PlatformError::TooMany("GIC regions"))?;
                }
            } else if is_compatible(&node, "arm,psci-1.0") || is_compatible(&node, "arm,psci-0.2") {
                psci = match node.property("method").and_then(|p| p.as_str()) {
                    Some("smc") => Some(PsciConduit::Smc),
                    Some("hvc") => Some(PsciConduit::Hvc),
                    _ => None,
                };
            }
        }
        if ram.total_size() == 0 {
            return Err(PlatformError::NoMemory);
        }

        for r in fdt.memory_reservations() {
            let range = PhysRange::new(r.address() as u64, r.size() as u64);
            reserved
                .add(range)
                .map_err(|_| PlatformError::TooMany("memory reservations"))?;
        }
        if let Some(rm) = fdt.find_node("/reserved-memory") {
            for child in rm.children() {
                for r in regs_of(&child) {
                    reserved
                        .add(r)
                        .map_err(|_| PlatformError::TooMany("reserved-memory regions"))?;
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
        let model = fdt
            .find_node("/")
            .and_then(|n| n.property("model"))
            .and_then(|p| p.as_str())
            .unwrap_or("unknown");

        Ok(Self {
            model,
            dtb: PhysRange::new(dtb_pa, fdt.total_size() as u64),
            ram,
            reserved,
            uart,
            smmus,
            pcie,
            gic,
            psci,
            cpus,
            bootargs,
        })
    }

    /// The SMMU whose phandle is `phandle`.
    pub fn smmu_by_phandle(&self, phandle: u32) -> Option<usize> {
        self.smmus.iter().position(|s| s.phandle == Some(phandle))
    }
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
        assert!(p.gic.len() >= 2, "GICv3 distributor and redistributors");
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

    #[test]
    fn iommu_map_outside_any_entry_is_none() {
        let host = PcieHost {
            ecam: PhysRange::new(0, 0),
            bus_start: 0,
            bus_end: 0,
            windows: Vec::new(),
            iommu_map: Vec::from_slice(&[IommuMapEntry {
                rid_base: 0x100,
                iommu_phandle: 7,
                sid_base: 0x40,
                length: 0x10,
            }])
            .unwrap(),
        };
        assert_eq!(host.stream_id(0xff), None);
        assert_eq!(host.stream_id(0x100), Some((7, 0x40)));
        assert_eq!(host.stream_id(0x10f), Some((7, 0x4f)));
        assert_eq!(host.stream_id(0x110), None);
    }
}

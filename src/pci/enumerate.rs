//! Finding the functions behind a host bridge and making them usable:
//! bus numbers for bridges, BAR addresses from the host bridge's windows
//! and bridge windows that forward them, and memory decoding, wherever
//! firmware has not done it. Bus mastering is left as it is: the kernel
//! that drives a device turns it on (`bus_master`).
//!
//! The walk is depth first from each root bus, as Linux's
//! `pci_scan_child_bus` does. A bridge (type 1 header: PCIe root port,
//! switch upstream or downstream port) that firmware configured
//! consistently keeps its bus numbers; otherwise it gets the next free
//! secondary bus and, while its children are scanned, every bus up to the
//! root's limit as subordinate, which then shrinks to the highest bus found
//! below. BARs are handed out bottom up; before and after each bridge the
//! allocators move to the next megabyte, so a bridge's memory window (1 MiB
//! granularity) covers its own devices only. Prefetchable BARs go to a
//! prefetchable host window when the host bridge has one (through the
//! bridges' prefetchable windows), otherwise into the memory window, which
//! PCI allows. No I/O BARs are assigned: a bridge this code configures gets
//! its I/O window disabled.
//!
//! Extra root buses: QEMU's `pxb-pcie` expander is a host-bridge function
//! on the root bus whose own root bus (its `bus_nr`) is reached through the
//! same ECAM, and neither the device tree nor its registers say which bus
//! that is. Firmware finds such buses by probing every bus for a device
//! (OVMF's `PciHostBridgeUtilityGetRootBridges`); so does this code, before
//! it assigns any bus number, only when the root bus holds a host bridge
//! beyond 00:00.0, and skipping buses behind bridges firmware numbered.
//! Each root then numbers its bridges below the next root's bus.

use super::bridge::{self, BusRange};
use super::window::{Span, WindowAllocator};
use super::{Bdf, ConfigSpace, header};
use crate::platform::{PciSpace, PciWindow};
use core::fmt;
use heapless::Vec;

pub const MAX_FUNCTIONS: usize = 64;
/// Root buses at most (the host bridge's own and expanders').
pub const MAX_ROOTS: usize = 8;
/// Bridges nested deeper are an error: the walk recurses once per level.
pub const MAX_BRIDGE_DEPTH: usize = 16;

/// One memory BAR after assignment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bar {
    pub index: u8,
    /// CPU physical address.
    pub address: u64,
    pub size: u64,
    pub is_64bit: bool,
}

/// A function found on the bus.
#[derive(Clone, Debug)]
pub struct Function {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub bars: Vec<Bar, 6>,
    /// For a bridge: the buses behind it.
    pub bridge: Option<BusRange>,
}

/// Why enumeration stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PciError {
    TooManyFunctions,
    /// No room left in the memory window for a BAR.
    WindowFull {
        bdf: Bdf,
        bar: u8,
    },
    /// No bus number left for the secondary bus of this bridge.
    BusNumbersExhausted {
        bdf: Bdf,
    },
    /// This bridge is nested deeper than [`MAX_BRIDGE_DEPTH`].
    TooDeep {
        bdf: Bdf,
    },
    /// Prefetchable BARs behind this bridge lie above 4 GiB and its
    /// prefetchable window is 32-bit only.
    PrefetchableWindowTooSmall {
        bdf: Bdf,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyFunctions => write!(f, "more than {MAX_FUNCTIONS} functions"),
            Self::WindowFull { bdf, bar } => write!(f, "no window space for {bdf} BAR{bar}"),
            Self::BusNumbersExhausted { bdf } => write!(f, "no bus number left behind {bdf}"),
            Self::TooDeep { bdf } => {
                write!(f, "bridge {bdf} nested deeper than {MAX_BRIDGE_DEPTH}")
            }
            Self::PrefetchableWindowTooSmall { bdf } => write!(
                f,
                "bridge {bdf} cannot forward prefetchable BARs above 4 GiB"
            ),
        }
    }
}

/// Sizes BAR `index` (the function's memory decoding must be off) and
/// returns (size, is_64bit), or `None` for an absent or I/O BAR.
fn size_bar(cfg: &dyn ConfigSpace, bdf: Bdf, index: u8) -> Option<(u64, bool)> {
    let offset = header::BAR0 + u16::from(index) * 4;
    let original = cfg.read32(bdf, offset);
    if original & header::BAR_IO != 0 {
        return None;
    }
    let is_64bit = original & header::BAR_TYPE_MASK == header::BAR_TYPE_64;
    cfg.write32(bdf, offset, u32::MAX);
    let low = cfg.read32(bdf, offset);
    cfg.write32(bdf, offset, original);
    let mut mask = u64::from(low & !0xf);
    if is_64bit {
        let high_original = cfg.read32(bdf, offset + 4);
        cfg.write32(bdf, offset + 4, u32::MAX);
        mask |= u64::from(cfg.read32(bdf, offset + 4)) << 32;
        cfg.write32(bdf, offset + 4, high_original);
    } else {
        mask |= 0xffff_ffff_0000_0000;
    }
    if mask & 0xffff_fff0 == 0 && !is_64bit {
        return None;
    }
    let size = (!mask).wrapping_add(1);
    (size != 0).then_some((size, is_64bit))
}

/// The bus addresses a bus and everything below it decode: what the bridge
/// above must forward, per kind of window.
#[derive(Clone, Copy, Default, Debug)]
struct Decoded {
    memory: Option<Span>,
    prefetchable: Option<Span>,
}

impl Decoded {
    fn add(&mut self, other: Decoded) {
        self.memory = Span::union(self.memory, other.memory);
        self.prefetchable = Span::union(self.prefetchable, other.prefetchable);
    }
}

/// The walk's state.
struct Walk<'a> {
    cfg: &'a dyn ConfigSpace,
    windows: &'a [PciWindow],
    memory: Option<WindowAllocator>,
    /// `None`: prefetchable BARs share `memory`.
    prefetchable: Option<WindowAllocator>,
    /// The lowest bus number not handed out yet (256: none left).
    next_bus: u16,
    found: &'a mut Vec<Function, MAX_FUNCTIONS>,
}

/// Finds every function below the host bridge's buses `first..=last`,
/// numbering bridges, assigning memory BARs that read as 0 and programming
/// bridge windows, and enables memory decoding on every function (bus
/// mastering is not touched). Functions are appended to `found` in walk order (a bridge
/// before what is behind it); on an error, those found so far stay. (The
/// list is large: the caller decides where it lives, the walk never copies
/// it.)
pub fn enumerate(
    cfg: &dyn ConfigSpace,
    first: u8,
    last: u8,
    windows: &[PciWindow],
    found: &mut Vec<Function, MAX_FUNCTIONS>,
) -> Result<(), PciError> {
    let memory = windows
        .iter()
        .find(|w| w.space == PciSpace::Mem32 && !w.prefetchable)
        .or_else(|| windows.iter().find(|w| w.space == PciSpace::Mem32));
    let prefetchable = windows
        .iter()
        .find(|w| w.space != PciSpace::Io && w.prefetchable && Some(*w) != memory);
    let mut walk = Walk {
        cfg,
        windows,
        memory: memory.copied().map(WindowAllocator::new),
        prefetchable: prefetchable.copied().map(WindowAllocator::new),
        next_bus: 0,
        found,
    };
    let roots = root_buses(cfg, first, last);
    for (i, &root) in roots.iter().enumerate() {
        let limit = roots.get(i + 1).map_or(last, |&next| next - 1);
        walk.next_bus = u16::from(root) + 1;
        walk.scan_bus(root, limit, 0)?;
    }
    Ok(())
}

/// Whether a function answers at `bdf`, and its id dword.
fn present(cfg: &dyn ConfigSpace, bdf: Bdf) -> Option<u32> {
    let id = cfg.read32(bdf, header::VENDOR_DEVICE);
    (id & 0xffff != 0xffff).then_some(id)
}

/// The root buses: `first`, and the expanders' buses found by probing when
/// a host bridge other than 00:00.0 sits on it (see the module header).
/// Buses behind the root bus's bridges that firmware already numbered
/// answer too; they are not roots.
fn root_buses(cfg: &dyn ConfigSpace, first: u8, last: u8) -> Vec<u8, MAX_ROOTS> {
    let mut roots = Vec::new();
    let _ = roots.push(first);
    let mut expander = false;
    let mut numbered: Vec<BusRange, 32> = Vec::new();
    for device in 0..32 {
        let bdf = Bdf::new(first, device, 0);
        if present(cfg, bdf).is_none() {
            continue;
        }
        let class = cfg.read32(bdf, header::CLASS_REVISION) >> 16;
        expander |= device > 0 && class == header::CLASS_HOST_BRIDGE;
        let kind = cfg.read32(bdf, header::HEADER_TYPE_DWORD) & header::HEADER_TYPE_MASK;
        let (_, buses) = bridge::bus_numbers(cfg, bdf);
        if kind == header::HEADER_TYPE_BRIDGE && buses.secondary > first {
            // Cannot fail: at most one per device.
            let _ = numbered.push(buses);
        }
    }
    if !expander {
        return roots;
    }
    let behind_a_bridge = |bus: u8| {
        numbered
            .iter()
            .any(|b| (b.secondary..=b.subordinate).contains(&bus))
    };
    for bus in (u16::from(first) + 1..=u16::from(last)).map(|b| b as u8) {
        if !behind_a_bridge(bus)
            && (0..32).any(|device| present(cfg, Bdf::new(bus, device, 0)).is_some())
            && roots.push(bus).is_err()
        {
            log::warn!(
                "pci: more than {MAX_ROOTS} root buses; bus {bus:02x} and above not scanned"
            );
            break;
        }
    }
    roots
}

impl Walk<'_> {
    /// Scans bus `bus`, whose bridges may use bus numbers up to `limit`.
    /// Returns what the bus and everything below it decode.
    fn scan_bus(&mut self, bus: u8, limit: u8, depth: usize) -> Result<Decoded, PciError> {
        let mut decoded = Decoded::default();
        for device in 0..32 {
            for function in 0..8 {
                let bdf = Bdf::new(bus, device, function);
                let Some(id) = present(self.cfg, bdf) else {
                    if function == 0 {
                        break;
                    }
                    continue;
                };
                let header_dword = self.cfg.read32(bdf, header::HEADER_TYPE_DWORD);
                decoded.add(self.function(bdf, id, header_dword, limit, depth)?);
                if function == 0 && header_dword & header::HEADER_MULTI_FUNCTION == 0 {
                    break;
                }
            }
        }
        Ok(decoded)
    }

    /// Records and sets up one function; for a bridge, everything behind it.
    fn function(
        &mut self,
        bdf: Bdf,
        id: u32,
        header_dword: u32,
        limit: u8,
        depth: usize,
    ) -> Result<Decoded, PciError> {
        let mut f = Function {
            bdf,
            vendor: id as u16,
            device: (id >> 16) as u16,
            class: self.cfg.read32(bdf, header::CLASS_REVISION) >> 8,
            bars: Vec::new(),
            bridge: None,
        };
        let kind = header_dword & header::HEADER_TYPE_MASK;
        if kind != header::HEADER_TYPE_DEVICE && kind != header::HEADER_TYPE_BRIDGE {
            // CardBus bridges and unknown layouts: listed, left alone.
            self.found.push(f).map_err(|_| PciError::TooManyFunctions)?;
            return Ok(Decoded::default());
        }
        let command = self.cfg.read32(bdf, header::COMMAND);
        self.cfg.write32(
            bdf,
            header::COMMAND,
            command & !(header::COMMAND_MEMORY | header::COMMAND_IO),
        );
        let bars = if kind == header::HEADER_TYPE_BRIDGE {
            header::BRIDGE_BARS
        } else {
            header::DEVICE_BARS
        };
        let mut decoded = self.assign_bars(&mut f, bars)?;
        // Listed before what is behind it.
        let index = self.found.len();
        self.found.push(f).map_err(|_| PciError::TooManyFunctions)?;
        if kind == header::HEADER_TYPE_BRIDGE {
            if depth >= MAX_BRIDGE_DEPTH {
                return Err(PciError::TooDeep { bdf });
            }
            let (buses, below) = self.bridge(bdf, limit, depth)?;
            self.found[index].bridge = Some(buses);
            decoded.add(below);
        }
        self.cfg
            .write32(bdf, header::COMMAND, command | header::COMMAND_MEMORY);
        Ok(decoded)
    }

    /// Numbers bridge `bdf` (on bus `bdf.bus`, bus numbers up to `limit`),
    /// scans behind it and opens its windows over what is there. Returns
    /// its buses and its windows.
    fn bridge(
        &mut self,
        bdf: Bdf,
        limit: u8,
        depth: usize,
    ) -> Result<(BusRange, Decoded), PciError> {
        let cfg = self.cfg;
        let (_, set) = bridge::bus_numbers(cfg, bdf);
        // Firmware's numbers, if they are below this bus, unused so far and
        // inside the limit.
        let kept = set.secondary > bdf.bus
            && u16::from(set.secondary) >= self.next_bus
            && set.subordinate >= set.secondary
            && set.subordinate <= limit;
        let scan = if kept {
            set
        } else {
            if self.next_bus > u16::from(limit) {
                return Err(PciError::BusNumbersExhausted { bdf });
            }
            // Forward every bus up to the limit while the children are
            // numbered; shrunk once they are.
            BusRange {
                secondary: self.next_bus as u8,
                subordinate: limit,
            }
        };
        bridge::set_bus_numbers(cfg, bdf, bdf.bus, scan);
        self.next_bus = u16::from(scan.secondary) + 1;
        self.start_granules();
        let below = self.scan_bus(scan.secondary, scan.subordinate, depth + 1)?;
        self.start_granules();
        let buses = if kept {
            self.next_bus = self.next_bus.max(u16::from(set.subordinate) + 1);
            set
        } else {
            BusRange {
                secondary: scan.secondary,
                subordinate: (self.next_bus - 1) as u8,
            }
        };
        bridge::set_bus_numbers(cfg, bdf, bdf.bus, buses);

        // Whole megabytes around what is below; a configured bridge keeps
        // what its windows already forwarded.
        let (mut memory, mut prefetchable) = (
            below.memory.map(Span::bridge_aligned),
            below.prefetchable.map(Span::bridge_aligned),
        );
        if kept {
            memory = Span::union(memory, bridge::memory_window(cfg, bdf));
            prefetchable = Span::union(prefetchable, bridge::prefetchable_window(cfg, bdf));
        } else {
            bridge::disable_io_window(cfg, bdf);
        }
        bridge::set_memory_window(cfg, bdf, memory);
        if !bridge::set_prefetchable_window(cfg, bdf, prefetchable) {
            return Err(PciError::PrefetchableWindowTooSmall { bdf });
        }
        Ok((
            buses,
            Decoded {
                memory,
                prefetchable,
            },
        ))
    }

    /// Moves both allocators to the next bridge-window granule.
    fn start_granules(&mut self) {
        for a in [&mut self.memory, &mut self.prefetchable]
            .into_iter()
            .flatten()
        {
            a.start_granule();
        }
    }

    /// Sizes and, where they read as 0, assigns the first `count` BARs of
    /// `f` (memory decoding is off). Returns the bus addresses they use.
    fn assign_bars(&mut self, f: &mut Function, count: u8) -> Result<Decoded, PciError> {
        let cfg = self.cfg;
        let bdf = f.bdf;
        let mut decoded = Decoded::default();
        let mut index = 0u8;
        while index < count {
            let offset = header::BAR0 + u16::from(index) * 4;
            let Some((size, is_64bit)) = size_bar(cfg, bdf, index) else {
                index += 1;
                continue;
            };
            let low = cfg.read32(bdf, offset);
            let high = if is_64bit {
                cfg.read32(bdf, offset + 4)
            } else {
                0
            };
            let mut bus_addr = u64::from(high) << 32 | u64::from(low & !0xf);
            // A prefetchable BAR goes to the prefetchable window if there is
            // one it can reach (a 32-bit BAR only below 4 GiB).
            let pref = self.prefetchable.as_ref().filter(|a| {
                low & header::BAR_PREFETCHABLE != 0
                    && (is_64bit || (a.window().pci_addr + a.window().size) >> 32 == 0)
            });
            let in_prefetchable = pref.is_some_and(|a| bus_addr == 0 || a.contains(bus_addr));
            let cpu_addr = if bus_addr == 0 {
                let allocator = if in_prefetchable {
                    self.prefetchable.as_mut()
                } else {
                    self.memory.as_mut()
                };
                let (bus, cpu) = allocator
                    .and_then(|a| a.alloc(size))
                    .ok_or(PciError::WindowFull { bdf, bar: index })?;
                bus_addr = bus;
                cfg.write32(bdf, offset, bus_addr as u32);
                if is_64bit {
                    cfg.write32(bdf, offset + 4, (bus_addr >> 32) as u32);
                }
                cpu
            } else {
                // Kept from firmware: the CPU sees it through its window.
                self.windows
                    .iter()
                    .find(|w| (w.pci_addr..w.pci_addr + w.size).contains(&bus_addr))
                    .map_or(bus_addr, |w| w.cpu_addr + (bus_addr - w.pci_addr))
            };
            let span = Some(Span::sized(bus_addr, size));
            if in_prefetchable {
                decoded.prefetchable = Span::union(decoded.prefetchable, span);
            } else {
                decoded.memory = Span::union(decoded.memory, span);
            }
            // Cannot fail: at most six BARs.
            let _ = f.bars.push(Bar {
                index,
                address: cpu_addr,
                size,
                is_64bit,
            });
            index += if is_64bit { 2 } else { 1 };
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{
        BAR_1M, EDU, EXPANDER, FakeEcam, Parent, ROOT_PORT, SWITCH_DOWN, SWITCH_UP, window,
    };
    use super::*;

    /// A 64-bit prefetchable window above 4 GiB.
    fn prefetchable_window() -> PciWindow {
        PciWindow {
            space: PciSpace::Mem64,
            prefetchable: true,
            pci_addr: 0x80_0000_0000,
            cpu_addr: 0x80_0000_0000,
            size: 0x80_0000_0000,
        }
    }

    /// Enumerates all buses: the functions found, or the error.
    fn scan(
        ecam: &FakeEcam,
        windows: &[PciWindow],
    ) -> Result<Vec<Function, MAX_FUNCTIONS>, PciError> {
        let mut found = Vec::new();
        enumerate(ecam, 0, 255, windows, &mut found).map(|()| found)
    }

    fn at(found: &[Function], bdf: Bdf) -> &Function {
        found
            .iter()
            .find(|f| f.bdf == bdf)
            .unwrap_or_else(|| panic!("{bdf} not found"))
    }

    fn buses(ecam: &FakeEcam, id: usize) -> (u8, u8, u8) {
        let v = ecam.reg(id, header::BUS_NUMBERS);
        (v as u8, (v >> 8) as u8, (v >> 16) as u8)
    }

    fn memory_window(ecam: &FakeEcam, id: usize) -> (u64, u64) {
        let v = ecam.reg(id, header::MEMORY_BASE_LIMIT);
        (
            u64::from(v & 0xfff0) << 16,
            u64::from(v & 0xfff0_0000) | 0xf_ffff,
        )
    }

    const ON: u32 = header::COMMAND_MEMORY;

    #[test]
    fn finds_functions_and_assigns_aligned_bars() {
        let ecam = FakeEcam::default();
        // edu at 00:01.0: BAR0 32-bit 1 MiB.
        let edu = ecam.device(Parent::Root(0), 1, EDU, &BAR_1M);
        // 00:02.0: BAR0 64-bit 16 KiB, BAR2 32-bit 4 KiB.
        ecam.device(
            Parent::Root(0),
            2,
            0x1234_5678,
            &[
                (0x10, 0x4, 0xffff_c000),
                (0x14, 0, 0xffff_ffff),
                (0x18, 0, 0xffff_f000),
            ],
        );
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(found.len(), 2);
        let f = &found[0];
        assert_eq!((f.bdf.rid(), f.vendor, f.device), (0x8, 0x1234, 0x11e8));
        assert_eq!(
            f.bars.as_slice(),
            [Bar {
                index: 0,
                address: 0x1000_0000,
                size: 0x10_0000,
                is_64bit: false
            }]
        );
        assert_eq!(ecam.reg(edu, header::BAR0), 0x1000_0000);
        assert_eq!(ecam.reg(edu, header::COMMAND) & ON, ON);
        let other = &found[1];
        assert_eq!(other.bars.len(), 2);
        assert_eq!(
            other.bars[0],
            Bar {
                index: 0,
                address: 0x1010_0000,
                size: 0x4000,
                is_64bit: true
            }
        );
        assert_eq!(other.bars[1].index, 2);
        assert_eq!(other.bars[1].address % 0x1000, 0);
        assert!(other.bars[1].address >= 0x1010_4000);
    }

    #[test]
    fn memory_decoding_goes_on_and_bus_mastering_stays_as_firmware_left_it() {
        let ecam = FakeEcam::default();
        let idle = ecam.device(Parent::Root(0), 1, EDU, &BAR_1M);
        let busy = ecam.device(Parent::Root(0), 2, EDU, &BAR_1M);
        let master = header::COMMAND_BUS_MASTER;
        ecam.write32(Bdf::new(0, 2, 0), header::COMMAND, master);
        scan(&ecam, &[window()]).unwrap();
        let command = |id| ecam.reg(id, header::COMMAND);
        assert_eq!(command(idle), header::COMMAND_MEMORY, "no bus mastering");
        assert_eq!(command(busy), header::COMMAND_MEMORY | master, "untouched");
    }

    #[test]
    fn keeps_firmware_assignments_and_skips_single_function_siblings() {
        let ecam = FakeEcam::default();
        ecam.device(
            Parent::Root(0),
            3,
            0x0001_1af4,
            &[(0x10, 0x1230_0000, 0xffff_f000)],
        );
        // Would be found only if function 0 said multi-function.
        let sibling = ecam.device(Parent::Root(0), 3, 0x0002_1af4, &[]);
        ecam.functions.borrow_mut()[sibling].function = 1;
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bars[0].address, 0x1230_0000);
    }

    #[test]
    fn a_full_window_is_an_error() {
        let ecam = FakeEcam::default();
        ecam.device(Parent::Root(0), 1, EDU, &[(0x10, 0, 0xf000_0000)]);
        let small = PciWindow {
            size: 0x1000_0000 - 1,
            ..window()
        };
        assert_eq!(
            scan(&ecam, &[small]).unwrap_err(),
            PciError::WindowFull {
                bdf: Bdf::new(0, 1, 0),
                bar: 0
            }
        );
    }

    #[test]
    fn an_endpoint_behind_a_root_port_gets_bus_1_a_bar_and_a_window_that_forwards_it() {
        let ecam = FakeEcam::default();
        // A device on the root bus first, so the port's window does not
        // start at the host window's base.
        ecam.device(Parent::Root(0), 1, EDU, &BAR_1M);
        let port = ecam.bridge(Parent::Root(0), 2, ROOT_PORT);
        let edu = ecam.device(Parent::Bridge(port), 0, EDU, &BAR_1M);
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(buses(&ecam, port), (0, 1, 1));
        let f = at(&found, Bdf::new(1, 0, 0));
        assert_eq!(f.bdf.rid(), 0x0100);
        assert_eq!(
            at(&found, Bdf::new(0, 2, 0)).bridge,
            Some(BusRange {
                secondary: 1,
                subordinate: 1
            })
        );
        let bar = f.bars[0].address;
        assert_eq!(bar, 0x1010_0000);
        assert_eq!(u64::from(ecam.reg(edu, header::BAR0)), bar);
        assert_eq!(memory_window(&ecam, port), (bar, bar + 0xf_ffff));
        assert_eq!(ecam.reg(port, header::IO_BASE_LIMIT) & 0xffff, 0x00f0);
        assert_eq!(
            ecam.reg(port, header::PREF_BASE_LIMIT) & 0xfff0_fff0,
            0xfff0,
            "prefetchable window closed"
        );
        for id in [port, edu] {
            assert_eq!(ecam.reg(id, header::COMMAND) & ON, ON);
        }
    }

    #[test]
    fn a_switch_behind_a_root_port_numbers_its_buses_depth_first_with_disjoint_windows() {
        let ecam = FakeEcam::default();
        let port = ecam.bridge(Parent::Root(0), 1, ROOT_PORT);
        let up = ecam.bridge(Parent::Bridge(port), 0, SWITCH_UP);
        let down0 = ecam.bridge(Parent::Bridge(up), 0, SWITCH_DOWN);
        let down1 = ecam.bridge(Parent::Bridge(up), 1, SWITCH_DOWN);
        let a = ecam.device(Parent::Bridge(down0), 0, EDU, &BAR_1M);
        let b = ecam.device(Parent::Bridge(down1), 0, EDU, &[(0x10, 0, 0xffff_f000)]);
        // A second root port after the switch: numbered after it.
        let port2 = ecam.bridge(Parent::Root(0), 2, ROOT_PORT);
        let c = ecam.device(Parent::Bridge(port2), 0, EDU, &BAR_1M);
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(found.len(), 8);
        assert_eq!(buses(&ecam, port), (0, 1, 4));
        assert_eq!(buses(&ecam, up), (1, 2, 4));
        assert_eq!(buses(&ecam, down0), (2, 3, 3));
        assert_eq!(buses(&ecam, down1), (2, 4, 4));
        assert_eq!(buses(&ecam, port2), (0, 5, 5));
        let rids: std::vec::Vec<u16> = found.iter().map(|f| f.bdf.rid()).collect();
        assert_eq!(rids, [0x08, 0x100, 0x200, 0x300, 0x208, 0x400, 0x10, 0x500]);
        // Each endpoint's BAR is inside every window above it, and sibling
        // windows do not overlap.
        let bar = |id| u64::from(ecam.reg(id, header::BAR0));
        let inside = |id, w: (u64, u64)| (w.0..=w.1).contains(&bar(id));
        for (dev, path) in [(a, [port, up, down0]), (b, [port, up, down1])] {
            for bridge in path {
                assert!(
                    inside(dev, memory_window(&ecam, bridge)),
                    "{dev} in {bridge}"
                );
            }
        }
        assert!(inside(c, memory_window(&ecam, port2)));
        let (w0, w1) = (memory_window(&ecam, down0), memory_window(&ecam, down1));
        assert!(w0.1 < w1.0, "{w0:x?} {w1:x?}");
        assert!(memory_window(&ecam, port).1 < memory_window(&ecam, port2).0);
        for id in [port, up, down0, down1, port2] {
            assert_eq!(ecam.reg(id, header::COMMAND) & ON, ON);
        }
    }

    #[test]
    fn an_expander_s_root_bus_is_found_and_numbered_below_it() {
        let ecam = FakeEcam::default();
        // QEMU: the host bridge at 00:00.0, a pxb-pcie at 00:01.0 with
        // bus_nr 0x80, a root port on each root bus.
        ecam.add(Parent::Root(0), 0, 0x0008_1b36, 0, 0x0600_0000, &[]);
        ecam.add(Parent::Root(0), 1, EXPANDER, 0, 0x0600_0000, &[]);
        let port = ecam.bridge(Parent::Root(0), 2, ROOT_PORT);
        ecam.device(Parent::Bridge(port), 0, EDU, &BAR_1M);
        let port2 = ecam.bridge(Parent::Root(0x80), 0, ROOT_PORT);
        ecam.device(Parent::Bridge(port2), 0, EDU, &BAR_1M);
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(buses(&ecam, port), (0, 1, 1));
        assert_eq!(buses(&ecam, port2), (0x80, 0x81, 0x81));
        let behind = at(&found, Bdf::new(0x81, 0, 0));
        assert_eq!(behind.bdf.rid(), 0x8100);
        assert!(!behind.bars.is_empty());
        // A bus behind a bridge firmware numbered is not a root.
        let ecam = FakeEcam::default();
        ecam.add(Parent::Root(0), 1, EXPANDER, 0, 0x0600_0000, &[]);
        let port = ecam.bridge(Parent::Root(0), 2, ROOT_PORT);
        ecam.functions.borrow_mut()[port]
            .regs
            .insert(header::BUS_NUMBERS, 0x0003_0300);
        ecam.device(Parent::Bridge(port), 0, EDU, &BAR_1M);
        ecam.bridge(Parent::Root(0), 3, ROOT_PORT);
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|f| f.bdf.rid())
                .collect::<std::vec::Vec<_>>(),
            [0x08, 0x10, 0x300, 0x18],
            "03:00.0 once, behind its bridge"
        );
        assert_eq!(buses(&ecam, port), (0, 3, 3));
        // Without an expander function nothing beyond the root is probed.
        let ecam = FakeEcam::default();
        ecam.device(Parent::Root(0x80), 0, EDU, &BAR_1M);
        assert!(scan(&ecam, &[window()]).unwrap().is_empty());
    }

    #[test]
    fn a_root_bus_numbers_its_bridges_below_the_next_root_bus() {
        let ecam = FakeEcam::default();
        ecam.add(Parent::Root(0), 1, EXPANDER, 0, 0x0600_0000, &[]);
        let p1 = ecam.bridge(Parent::Root(0), 2, ROOT_PORT);
        ecam.bridge(Parent::Root(0), 3, ROOT_PORT);
        ecam.device(Parent::Root(2), 0, EDU, &[]);
        assert_eq!(
            scan(&ecam, &[window()]).unwrap_err(),
            PciError::BusNumbersExhausted {
                bdf: Bdf::new(0, 3, 0)
            }
        );
        assert_eq!(buses(&ecam, p1), (0, 1, 1));
    }

    #[test]
    fn a_bridge_firmware_numbered_keeps_its_numbers_and_its_window() {
        let ecam = FakeEcam::default();
        let port = ecam.bridge(Parent::Root(0), 1, ROOT_PORT);
        {
            let mut f = ecam.functions.borrow_mut();
            let regs = &mut f[port].regs;
            regs.insert(header::BUS_NUMBERS, 0x0007_0500);
            // Firmware's window: [0x2000_0000, 0x201f_ffff].
            regs.insert(header::MEMORY_BASE_LIMIT, 0x2010_2000);
        }
        ecam.device(
            Parent::Bridge(port),
            0,
            EDU,
            &[(0x10, 0x2000_0000, 0xfff0_0000)],
        );
        let behind = ecam.device(Parent::Bridge(port), 1, EDU, &BAR_1M);
        let found = scan(&ecam, &[window()]).unwrap();
        assert_eq!(buses(&ecam, port), (0, 5, 7));
        assert_eq!(at(&found, Bdf::new(5, 0, 0)).bars[0].address, 0x2000_0000);
        let w = memory_window(&ecam, port);
        assert_eq!(w.0, 0x1000_0000, "grown down to the BAR assigned below");
        assert_eq!(w.1, 0x201f_ffff, "firmware's window kept");
        assert!((w.0..=w.1).contains(&u64::from(ecam.reg(behind, header::BAR0))));
    }

    #[test]
    fn prefetchable_bars_behind_a_bridge_go_through_its_prefetchable_window() {
        let ecam = FakeEcam::default();
        let port = ecam.bridge(Parent::Root(0), 1, ROOT_PORT);
        // BAR0: 64-bit prefetchable 2 MiB; BAR2: 32-bit 4 KiB.
        let dev = ecam.device(
            Parent::Bridge(port),
            0,
            0x1234_5678,
            &[
                (0x10, 0xc, 0xffe0_0000),
                (0x14, 0, 0xffff_ffff),
                (0x18, 0, 0xffff_f000),
            ],
        );
        let found = scan(&ecam, &[window(), prefetchable_window()]).unwrap();
        let f = at(&found, Bdf::new(1, 0, 0));
        assert_eq!(f.bars[0].address, 0x80_0000_0000);
        assert_eq!(f.bars[1].address, 0x1000_0000);
        assert_eq!(ecam.reg(dev, 0x14), 0x80);
        assert_eq!(
            bridge::prefetchable_window(&ecam, Bdf::new(0, 1, 0)),
            Some(Span {
                first: 0x80_0000_0000,
                last: 0x80_001f_ffff
            })
        );
        assert_eq!(memory_window(&ecam, port), (0x1000_0000, 0x100f_ffff));
        // A bridge whose prefetchable window is 32-bit only cannot forward it.
        let ecam = FakeEcam::default();
        let port = ecam.bridge(Parent::Root(0), 1, ROOT_PORT);
        ecam.functions.borrow_mut()[port]
            .regs
            .insert(header::PREF_BASE_LIMIT, 0);
        ecam.device(
            Parent::Bridge(port),
            0,
            0x1234_5678,
            &[(0x10, 0xc, 0xffe0_0000), (0x14, 0, 0xffff_ffff)],
        );
        assert_eq!(
            scan(&ecam, &[window(), prefetchable_window()]).unwrap_err(),
            PciError::PrefetchableWindowTooSmall {
                bdf: Bdf::new(0, 1, 0)
            }
        );
    }

    #[test]
    fn bridges_nested_too_deep_are_an_error() {
        let ecam = FakeEcam::default();
        let mut parent = Parent::Root(0);
        for _ in 0..=MAX_BRIDGE_DEPTH {
            parent = Parent::Bridge(ecam.bridge(parent, 0, SWITCH_DOWN));
        }
        assert!(matches!(
            scan(&ecam, &[window()]),
            Err(PciError::TooDeep { .. })
        ));
    }

    #[test]
    fn requester_ids() {
        assert_eq!(Bdf::new(0, 1, 0).rid(), 0x0008);
        assert_eq!(Bdf::new(2, 31, 7).rid(), 0x02ff);
    }
}

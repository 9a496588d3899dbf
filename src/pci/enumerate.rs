//! Finding functions on the root bus and giving their memory BARs
//! addresses from the host bridge's windows where firmware has not.
//!
//! Only bus `bus_start` is scanned: QEMU `virt` and the boards we target put
//! their endpoints on the root bus. Bridges are listed but not traversed.

use super::{Bdf, ConfigSpace, header};
use crate::platform::{PciSpace, PciWindow};
use core::fmt;
use heapless::Vec;

pub const MAX_FUNCTIONS: usize = 32;

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
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyFunctions => f.write_str("too many PCI functions"),
            Self::WindowFull { bdf, bar } => {
                write!(f, "no room in the memory window for {bdf} BAR{bar}")
            }
        }
    }
}

/// Hands out BAR addresses from a window, bottom up.
struct WindowAllocator {
    window: Option<PciWindow>,
    next: u64,
}

impl WindowAllocator {
    fn new(window: Option<PciWindow>) -> Self {
        Self {
            window,
            next: window.map_or(0, |w| w.pci_addr),
        }
    }

    /// A PCI bus address for `size` bytes, aligned to `size`; and the CPU
    /// address it appears at.
    fn alloc(&mut self, size: u64) -> Option<(u64, u64)> {
        let w = self.window?;
        let start = self.next.checked_next_multiple_of(size)?;
        let end = start.checked_add(size)?;
        if end > w.pci_addr + w.size {
            return None;
        }
        self.next = end;
        Some((start, w.cpu_addr + (start - w.pci_addr)))
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

/// Scans bus `bus`, assigns every memory BAR that reads as 0 from the 32-bit
/// window (64-bit BARs too: they may live below 4 GiB), and enables memory
/// decoding and bus mastering.
pub fn enumerate(
    cfg: &dyn ConfigSpace,
    bus: u8,
    windows: &[PciWindow],
) -> Result<Vec<Function, MAX_FUNCTIONS>, PciError> {
    let mut mem =
        WindowAllocator::new(windows.iter().copied().find(|w| w.space == PciSpace::Mem32));
    let mut found = Vec::new();
    for device in 0..32 {
        for function in 0..8 {
            let bdf = Bdf::new(bus, device, function);
            let id = cfg.read32(bdf, header::VENDOR_DEVICE);
            if id & 0xffff == 0xffff {
                if function == 0 {
                    break;
                }
                continue;
            }
            let header_dword = cfg.read32(bdf, header::HEADER_TYPE_DWORD);
            let mut f = Function {
                bdf,
                vendor: id as u16,
                device: (id >> 16) as u16,
                class: cfg.read32(bdf, header::CLASS_REVISION) >> 8,
                bars: Vec::new(),
            };
            if header_dword & header::HEADER_TYPE_MASK == 0 {
                assign_bars(cfg, &mut f, &mut mem)?;
            }
            found.push(f).map_err(|_| PciError::TooManyFunctions)?;
            if function == 0 && header_dword & header::HEADER_MULTI_FUNCTION == 0 {
                break;
            }
        }
    }
    Ok(found)
}

fn assign_bars(
    cfg: &dyn ConfigSpace,
    f: &mut Function,
    mem: &mut WindowAllocator,
) -> Result<(), PciError> {
    let bdf = f.bdf;
    let command = cfg.read32(bdf, header::COMMAND);
    cfg.write32(bdf, header::COMMAND, command & !header::COMMAND_MEMORY);
    let mut index = 0u8;
    while index < 6 {
        let offset = header::BAR0 + u16::from(index) * 4;
        let Some((size, is_64bit)) = size_bar(cfg, bdf, index) else {
            index += 1;
            continue;
        };
        let current_low = u64::from(cfg.read32(bdf, offset) & !0xf);
        let current_high = if is_64bit {
            u64::from(cfg.read32(bdf, offset + 4))
        } else {
            0
        };
        let mut bus_addr = current_high << 32 | current_low;
        let mut cpu_addr = bus_addr;
        if bus_addr == 0 {
            (bus_addr, cpu_addr) = mem
                .alloc(size)
                .ok_or(PciError::WindowFull { bdf, bar: index })?;
            cfg.write32(bdf, offset, bus_addr as u32);
            if is_64bit {
                cfg.write32(bdf, offset + 4, (bus_addr >> 32) as u32);
            }
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
    cfg.write32(
        bdf,
        header::COMMAND,
        command | header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A fake function: config dwords plus BAR size masks (what reads back
    /// after writing all-ones).
    #[derive(Default)]
    struct FakeFunction {
        regs: HashMap<u16, u32>,
        /// Writable bits and read-only bits (the type) of each BAR dword.
        bar_masks: HashMap<u16, (u32, u32)>,
    }

    #[derive(Default)]
    struct FakeBus {
        functions: RefCell<HashMap<Bdf, FakeFunction>>,
    }

    impl FakeBus {
        fn add(&self, bdf: Bdf, vendor_device: u32, header_type: u32, bars: &[(u16, u32, u32)]) {
            let mut f = FakeFunction::default();
            f.regs.insert(header::VENDOR_DEVICE, vendor_device);
            f.regs.insert(header::HEADER_TYPE_DWORD, header_type << 16);
            f.regs.insert(header::CLASS_REVISION, 0x00ff_0010);
            for &(offset, initial, mask) in bars {
                f.regs.insert(offset, initial);
                f.bar_masks.insert(offset, (mask, initial & !mask));
            }
            self.functions.borrow_mut().insert(bdf, f);
        }

        fn reg(&self, bdf: Bdf, offset: u16) -> u32 {
            self.read32(bdf, offset)
        }
    }

    impl ConfigSpace for FakeBus {
        fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
            let functions = self.functions.borrow();
            let Some(f) = functions.get(&bdf) else {
                return u32::MAX;
            };
            f.regs.get(&offset).copied().unwrap_or(0)
        }

        fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
            let mut functions = self.functions.borrow_mut();
            let Some(f) = functions.get_mut(&bdf) else {
                return;
            };
            let is_bar = (header::BAR0..header::BAR0 + 24).contains(&offset);
            let stored = match f.bar_masks.get(&offset) {
                // Size bits read as zero; type bits are read-only.
                Some(&(mask, read_only)) => (value & mask) | read_only,
                // An unimplemented BAR is hardwired to zero.
                None if is_bar => 0,
                None => value,
            };
            f.regs.insert(offset, stored);
        }
    }

    fn window() -> PciWindow {
        PciWindow {
            space: PciSpace::Mem32,
            prefetchable: false,
            pci_addr: 0x1000_0000,
            cpu_addr: 0x1000_0000,
            size: 0x2eff_0000,
        }
    }

    #[test]
    fn finds_functions_and_assigns_aligned_bars() {
        let bus = FakeBus::default();
        // edu at 00:01.0: BAR0 32-bit 1 MiB.
        bus.add(Bdf::new(0, 1, 0), 0x11e8_1234, 0, &[(0x10, 0, 0xfff0_0000)]);
        // 00:02.0: BAR0 64-bit 16 KiB, BAR2 32-bit 4 KiB.
        bus.add(
            Bdf::new(0, 2, 0),
            0x1234_5678,
            0,
            &[
                (0x10, 0x4, 0xffff_c000),
                (0x14, 0, 0xffff_ffff),
                (0x18, 0, 0xffff_f000),
            ],
        );
        let found = enumerate(&bus, 0, &[window()]).unwrap();
        assert_eq!(found.len(), 2);
        let edu = &found[0];
        assert_eq!(
            (edu.bdf.rid(), edu.vendor, edu.device),
            (0x8, 0x1234, 0x11e8)
        );
        assert_eq!(
            edu.bars.as_slice(),
            [Bar {
                index: 0,
                address: 0x1000_0000,
                size: 0x10_0000,
                is_64bit: false
            }]
        );
        assert_eq!(bus.reg(edu.bdf, header::BAR0), 0x1000_0000);
        let cmd = bus.reg(edu.bdf, header::COMMAND);
        assert_eq!(cmd & 6, 6, "memory decoding and bus mastering on");
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
    fn keeps_firmware_assignments_and_skips_single_function_siblings() {
        let bus = FakeBus::default();
        bus.add(
            Bdf::new(0, 3, 0),
            0x0001_1af4,
            0,
            &[(0x10, 0x1230_0000, 0xffff_f000)],
        );
        // Would be found only if function 0 said multi-function.
        bus.add(Bdf::new(0, 3, 1), 0x0002_1af4, 0, &[]);
        let found = enumerate(&bus, 0, &[window()]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bars[0].address, 0x1230_0000);
    }

    #[test]
    fn a_full_window_is_an_error() {
        let bus = FakeBus::default();
        bus.add(Bdf::new(0, 1, 0), 0x11e8_1234, 0, &[(0x10, 0, 0xf000_0000)]);
        let small = PciWindow {
            size: 0x1000_0000 - 1,
            ..window()
        };
        assert_eq!(
            enumerate(&bus, 0, &[small]).unwrap_err(),
            PciError::WindowFull {
                bdf: Bdf::new(0, 1, 0),
                bar: 0
            }
        );
    }

    #[test]
    fn requester_ids() {
        assert_eq!(Bdf::new(0, 1, 0).rid(), 0x0008);
        assert_eq!(Bdf::new(2, 31, 7).rid(), 0x02ff);
    }
}

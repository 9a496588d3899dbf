//! A fake ECAM for host tests: functions on root buses and behind bridges,
//! routed the way PCI routes configuration requests. A function behind a
//! bridge answers only at the bus number the bridge's secondary register
//! holds, and only if every bridge above it forwards that bus (secondary
//! to subordinate): an unconfigured bridge (bus numbers 0) hides its
//! children, as on real hardware and QEMU before firmware runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::vec::Vec;

use super::{Bdf, ConfigSpace, header};
use crate::platform::{PciSpace, PciWindow};

/// Vendor and device IDs (the id dword) of QEMU's functions.
pub const EDU: u32 = 0x11e8_1234;
pub const ROOT_PORT: u32 = 0x000c_1b36;
pub const SWITCH_UP: u32 = 0x8232_104c;
pub const SWITCH_DOWN: u32 = 0x8233_104c;
pub const EXPANDER: u32 = 0x000b_1b36;
/// A 1 MiB 32-bit BAR0, unassigned.
pub const BAR_1M: [(u16, u32, u32); 1] = [(0x10, 0, 0xfff0_0000)];

/// QEMU `virt`'s 32-bit memory window.
pub fn window() -> PciWindow {
    PciWindow {
        space: PciSpace::Mem32,
        prefetchable: false,
        pci_addr: 0x1000_0000,
        cpu_addr: 0x1000_0000,
        size: 0x2eff_0000,
    }
}

/// Where a function sits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Parent {
    /// On a root bus with this number.
    Root(u8),
    /// On the secondary bus of the bridge with this id.
    Bridge(usize),
}

/// A fake function: config dwords plus, per BAR-like register, the bits
/// software can write (the rest reads as the initial value: BAR size and
/// type bits, the prefetchable window's 64-bit flag).
pub struct FakeFunction {
    pub parent: Parent,
    pub device: u8,
    pub function: u8,
    pub regs: HashMap<u16, u32>,
    masks: HashMap<u16, (u32, u32)>,
}

#[derive(Default)]
pub struct FakeEcam {
    pub functions: RefCell<Vec<FakeFunction>>,
}

impl FakeEcam {
    /// Adds a type 0 function with `bars`: (offset, initial, writable).
    /// Returns its id.
    pub fn device(
        &self,
        parent: Parent,
        device: u8,
        vendor_device: u32,
        bars: &[(u16, u32, u32)],
    ) -> usize {
        self.add(parent, device, vendor_device, 0, 0x00ff_0010, bars)
    }

    /// Adds a bridge with no BARs, a 64-bit prefetchable window, bus
    /// numbers 0 (unconfigured). Returns its id.
    pub fn bridge(&self, parent: Parent, device: u8, vendor_device: u32) -> usize {
        let id = self.add(
            parent,
            device,
            vendor_device,
            header::HEADER_TYPE_BRIDGE,
            0x0604_0000,
            &[],
        );
        let mut functions = self.functions.borrow_mut();
        let f = &mut functions[id];
        for (offset, writable, read_only) in [
            (header::BUS_NUMBERS, 0x00ff_ffff, 0),
            (header::IO_BASE_LIMIT, 0xf0f0, 0),
            (header::MEMORY_BASE_LIMIT, 0xfff0_fff0, 0),
            (header::PREF_BASE_LIMIT, 0xfff0_fff0, 0x0001_0001),
            (header::PREF_BASE_UPPER, u32::MAX, 0),
            (header::PREF_LIMIT_UPPER, u32::MAX, 0),
        ] {
            f.masks.insert(offset, (writable, read_only));
            f.regs.insert(offset, read_only);
        }
        id
    }

    /// Adds a function of `class` (class, subclass, prog-if, revision).
    pub fn add(
        &self,
        parent: Parent,
        device: u8,
        vendor_device: u32,
        header_type: u32,
        class: u32,
        bars: &[(u16, u32, u32)],
    ) -> usize {
        let mut f = FakeFunction {
            parent,
            device,
            function: 0,
            regs: HashMap::new(),
            masks: HashMap::new(),
        };
        f.regs.insert(header::VENDOR_DEVICE, vendor_device);
        f.regs.insert(header::HEADER_TYPE_DWORD, header_type);
        f.regs.insert(header::CLASS_REVISION, class);
        for &(offset, initial, mask) in bars {
            f.regs.insert(offset, initial);
            f.masks.insert(offset, (mask, initial & !mask));
        }
        let mut functions = self.functions.borrow_mut();
        functions.push(f);
        functions.len() - 1
    }

    /// A register of function `id`.
    pub fn reg(&self, id: usize, offset: u16) -> u32 {
        self.functions.borrow()[id]
            .regs
            .get(&offset)
            .copied()
            .unwrap_or(0)
    }

    /// The bus a function answers on, if configuration requests reach it.
    fn bus_of(functions: &[FakeFunction], id: usize) -> Option<u8> {
        match functions[id].parent {
            Parent::Root(bus) => Some(bus),
            Parent::Bridge(b) => {
                Self::bus_of(functions, b)?;
                let buses = functions[b]
                    .regs
                    .get(&header::BUS_NUMBERS)
                    .copied()
                    .unwrap_or(0);
                let secondary = (buses >> 8) as u8;
                (secondary != 0).then_some(secondary)
            }
        }
    }

    /// Whether a request for `bus` is forwarded down to bridge `id`'s
    /// secondary side and through every bridge above it.
    fn forwards(functions: &[FakeFunction], id: usize, bus: u8) -> bool {
        let buses = functions[id]
            .regs
            .get(&header::BUS_NUMBERS)
            .copied()
            .unwrap_or(0);
        let (secondary, subordinate) = ((buses >> 8) as u8, (buses >> 16) as u8);
        secondary != 0
            && (secondary..=subordinate).contains(&bus)
            && match functions[id].parent {
                Parent::Root(_) => true,
                Parent::Bridge(up) => Self::forwards(functions, up, bus),
            }
    }

    fn find(functions: &[FakeFunction], bdf: Bdf) -> Option<usize> {
        (0..functions.len()).find(|&id| {
            let f = &functions[id];
            f.device == bdf.device
                && f.function == bdf.function
                && Self::bus_of(functions, id) == Some(bdf.bus)
                && match f.parent {
                    Parent::Root(_) => true,
                    Parent::Bridge(b) => Self::forwards(functions, b, bdf.bus),
                }
        })
    }
}

impl ConfigSpace for FakeEcam {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        let functions = self.functions.borrow();
        match Self::find(&functions, bdf) {
            Some(id) => functions[id].regs.get(&offset).copied().unwrap_or(0),
            None => u32::MAX,
        }
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        let mut functions = self.functions.borrow_mut();
        let Some(id) = Self::find(&functions, bdf) else {
            return;
        };
        let f = &mut functions[id];
        let is_bar = (header::BAR0..header::BAR0 + 24).contains(&offset);
        let stored = match f.masks.get(&offset) {
            Some(&(mask, read_only)) => (value & mask) | read_only,
            // An unimplemented BAR is hardwired to zero.
            None if is_bar => 0,
            None => value,
        };
        f.regs.insert(offset, stored);
    }
}

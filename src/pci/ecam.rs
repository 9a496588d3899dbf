//! ECAM: configuration space as memory (PCIe enhanced configuration access).

use super::{Bdf, ConfigSpace};

/// An ECAM window at a fixed address, covering buses from `bus_start`.
pub struct Ecam {
    base: u64,
    bus_start: u8,
    bus_end: u8,
}

impl Ecam {
    /// # Safety
    /// `base` must be the ECAM window of the host bridge for buses
    /// `bus_start..=bus_end`, mapped as device memory.
    pub const unsafe fn new(base: u64, bus_start: u8, bus_end: u8) -> Self {
        Self {
            base,
            bus_start,
            bus_end,
        }
    }

    /// The buses the window covers.
    pub fn buses(&self) -> core::ops::RangeInclusive<u8> {
        self.bus_start..=self.bus_end
    }

    /// The address of a dword, `None` outside the window.
    fn address(&self, bdf: Bdf, offset: u16) -> Option<u64> {
        if bdf.bus < self.bus_start
            || bdf.bus > self.bus_end
            || bdf.device > 31
            || bdf.function > 7
            || offset > 0xffc
        {
            return None;
        }
        let bus = u64::from(bdf.bus - self.bus_start);
        Some(
            self.base
                + (bus << 20
                    | u64::from(bdf.device) << 15
                    | u64::from(bdf.function) << 12
                    | u64::from(offset & !3)),
        )
    }
}

impl ConfigSpace for Ecam {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        match self.address(bdf, offset) {
            // SAFETY: inside the mapped ECAM window (`new`'s contract).
            Some(addr) => unsafe { core::ptr::read_volatile(addr as *const u32) },
            None => u32::MAX,
        }
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(addr) = self.address(bdf, offset) {
            // SAFETY: as for `read32`.
            unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
        }
    }
}

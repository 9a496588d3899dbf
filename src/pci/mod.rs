//! PCI: configuration space, enumeration, bus numbers, bridge windows and
//! BAR assignment.
//!
//! The hyp walks the host bridge's ECAM, through PCI-to-PCI bridges (root
//! ports, switch ports), to find the devices behind the SMMU and to learn
//! their requester IDs (which `iommu-map` turns into StreamIDs).
//! Configuration space is reached through [`ConfigSpace`], so enumeration
//! is host-tested against a fake.

pub mod bridge;
pub mod bus_master;
pub mod ecam;
pub mod enumerate;
#[cfg(test)]
mod fake;
mod window;

use core::fmt;

/// Bus/device/function of a PCI function.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Self {
            bus,
            device,
            function,
        }
    }

    /// The requester ID the function puts on its DMA transactions.
    pub fn rid(self) -> u16 {
        (u16::from(self.bus) << 8)
            | (u16::from(self.device & 0x1f) << 3)
            | u16::from(self.function & 7)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Access to the configuration space of every function.
pub trait ConfigSpace {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);
}

/// Configuration header offsets and bits (PCI Local Bus 3.0 and PCI-to-PCI
/// Bridge 1.2: the common part, type 0 and type 1 headers).
pub mod header {
    pub const VENDOR_DEVICE: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const CLASS_REVISION: u16 = 0x08;
    /// Header type is byte 2 of this dword.
    pub const HEADER_TYPE_DWORD: u16 = 0x0c;
    pub const BAR0: u16 = 0x10;

    pub const COMMAND_IO: u32 = 1 << 0;
    pub const COMMAND_MEMORY: u32 = 1 << 1;
    pub const COMMAND_BUS_MASTER: u32 = 1 << 2;
    pub const HEADER_MULTI_FUNCTION: u32 = 0x80 << 16;
    pub const HEADER_TYPE_MASK: u32 = 0x7f << 16;
    pub const HEADER_TYPE_DEVICE: u32 = 0;
    pub const HEADER_TYPE_BRIDGE: u32 = 1 << 16;
    /// Base class and subclass (`CLASS_REVISION >> 16`) of a host bridge.
    pub const CLASS_HOST_BRIDGE: u32 = 0x0600;

    pub const BAR_IO: u32 = 1 << 0;
    pub const BAR_TYPE_64: u32 = 2 << 1;
    pub const BAR_TYPE_MASK: u32 = 3 << 1;
    pub const BAR_PREFETCHABLE: u32 = 1 << 3;
    /// BARs of a type 0 header; a bridge (type 1) has the first two.
    pub const DEVICE_BARS: u8 = 6;
    pub const BRIDGE_BARS: u8 = 2;

    /// Type 1: primary, secondary and subordinate bus numbers (bytes 0-2),
    /// secondary latency timer (byte 3).
    pub const BUS_NUMBERS: u16 = 0x18;
    /// Type 1: I/O base and limit (bytes 0-1); the secondary status above
    /// them is write-1-to-clear, so writes put zeroes there.
    pub const IO_BASE_LIMIT: u16 = 0x1c;
    /// Type 1: memory base and limit, bits 31:20 of each.
    pub const MEMORY_BASE_LIMIT: u16 = 0x20;
    /// Type 1: prefetchable base and limit, bits 31:20 of each; the low
    /// nibble of each half reads 1 when the window is 64-bit.
    pub const PREF_BASE_LIMIT: u16 = 0x24;
    pub const PREF_BASE_UPPER: u16 = 0x28;
    pub const PREF_LIMIT_UPPER: u16 = 0x2c;
    pub const PREF_64BIT: u32 = 1;
}

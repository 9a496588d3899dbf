//! PCI: configuration space, enumeration and BAR assignment.
//!
//! The hyp walks the host bridge's ECAM to find the devices behind the SMMU
//! and to learn their requester IDs (which `iommu-map` turns into
//! StreamIDs). Configuration space is reached through [`ConfigSpace`], so
//! enumeration is host-tested against a fake.

pub mod ecam;
pub mod enumerate;

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

/// Configuration header offsets and bits (type 0 header).
pub mod header {
    pub const VENDOR_DEVICE: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const CLASS_REVISION: u16 = 0x08;
    /// Header type is byte 2 of this dword.
    pub const HEADER_TYPE_DWORD: u16 = 0x0c;
    pub const BAR0: u16 = 0x10;

    pub const COMMAND_MEMORY: u32 = 1 << 1;
    pub const COMMAND_BUS_MASTER: u32 = 1 << 2;
    pub const HEADER_MULTI_FUNCTION: u32 = 0x80 << 16;
    pub const HEADER_TYPE_MASK: u32 = 0x7f << 16;

    pub const BAR_IO: u32 = 1 << 0;
    pub const BAR_TYPE_64: u32 = 2 << 1;
    pub const BAR_TYPE_MASK: u32 = 3 << 1;
}

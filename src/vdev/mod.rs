//! Devices EL2 emulates for EL1 behind MMIO traps, and the virtio-iommu
//! device built from them (see `docs/virtio-iommu.md`).
//!
//! EL2 keeps a device's window out of the host stage-2, decodes the EL1
//! load or store that faults on it, and calls the [`MmioDevice`] that owns
//! the window. Everything here is plain library code: EL1 memory is
//! reached only through [`GuestMemory`], interrupts only through
//! [`InterruptLine`], the IOMMU only through [`IommuBackend`], so the whole
//! device is tested on the host.
//!
//! * [`guest_memory`]: EL1 memory as a device sees it (every access
//!   checked, refusals are values).
//! * [`mmio_transport`]: the virtio-mmio (version 2) register file and its
//!   status state machine.
//! * [`virtqueue`]: the device side of a split virtqueue; every descriptor
//!   is copied once and validated.
//! * [`iommu_wire`]: virtio-iommu layouts and constants.
//! * [`iommu_backend`]: what the device needs from the IOMMU core.
//! * [`virtio_iommu`]: virtio-iommu request semantics over the backend.
//! * [`iommu_device`]: the MMIO device that joins them, with its lock.

pub mod guest_memory;
pub mod iommu_backend;
pub mod iommu_device;
pub mod iommu_wire;
pub mod mmio_transport;
pub mod virtio_iommu;
pub mod virtqueue;

pub use guest_memory::{GuestMemError, GuestMemory};
pub use iommu_backend::IommuBackend;
pub use iommu_device::VirtioIommu;

#[cfg(test)]
mod tests;

/// The width of a trapped load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    Byte,
    Half,
    Word,
    Double,
}

impl AccessSize {
    /// The access size for a width in bytes (1, 2, 4 or 8).
    pub const fn from_bytes(bytes: u64) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Half),
            4 => Some(Self::Word),
            8 => Some(Self::Double),
            _ => None,
        }
    }

    /// The width in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Byte => 1,
            Self::Half => 2,
            Self::Word => 4,
            Self::Double => 8,
        }
    }

    /// The bits an access of this width carries.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Double => u64::MAX,
            _ => (1 << (self.bytes() * 8)) - 1,
        }
    }
}

/// A device behind an MMIO window that EL2 emulates.
///
/// Both methods run on the CPU whose EL1 access trapped, with that EL1
/// stopped; other CPUs may call the same device at the same time, so a
/// device keeps its state behind its own lock. `offset` is relative to the
/// start of the window. A read returns the value zero-extended to 64 bits;
/// a write uses only the low `size` bytes of `value`. Neither may panic on
/// any offset, size or value EL1 can produce.
pub trait MmioDevice: Sync {
    fn read(&self, offset: u64, size: AccessSize) -> u64;
    fn write(&self, offset: u64, size: AccessSize, value: u64);
}

/// A device's interrupt towards EL1.
///
/// `raise` makes the interrupt pending once (for a GIC SPI: a write to
/// `GICD_ISPENDR`). A device raises it for every new event, not only when
/// its interrupt status goes from clear to set, so an event that arrives
/// while EL1 handles an earlier one is never lost. It is called without the
/// device's lock held.
pub trait InterruptLine {
    fn raise(&self);
}

impl<T: InterruptLine + ?Sized> InterruptLine for &T {
    fn raise(&self) {
        (**self).raise();
    }
}

#[cfg(test)]
mod access_size_tests {
    use super::AccessSize;

    #[test]
    fn access_sizes_round_trip_through_their_byte_widths() {
        for bytes in 0..=16 {
            match AccessSize::from_bytes(bytes) {
                Some(s) => {
                    assert_eq!(s.bytes(), bytes);
                    assert_eq!(s.mask().count_ones() as u64, bytes * 8);
                }
                None => assert!(![1, 2, 4, 8].contains(&bytes)),
            }
        }
    }
}

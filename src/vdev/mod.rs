//! Emulated MMIO: register frames EL1 sees but the hyp answers.
//!
//! The host stage-2 leaves every registered window unmapped
//! ([`HostView::trapped`](crate::host_s2::HostView::trapped)), so each
//! EL1 load or store to one takes a stage-2 data abort to EL2. The abort's
//! syndrome describes the access ([`DataAbortIss::access`](crate::esr::DataAbortIss::access));
//! the [`bus`] finds the device whose window holds the address, calls it
//! with the offset in that window, completes a load in EL1's registers, and
//! the hyp steps EL1 past the instruction.
//!
//! A device is anything that implements [`MmioDevice`]: the GIC's table
//! registers ([`gic_its`], [`gic_redist`]) and the virtio-iommu device
//! (`docs/virtio-iommu.md`). Everything here is plain library code: EL1
//! memory is reached only through [`GuestMemory`], interrupts only through
//! [`InterruptLine`], the IOMMU only through [`IommuBackend`], so every
//! device is tested on the host.
//!
//! * [`guest_memory`]: EL1 memory as a device sees it (every access
//!   checked, refusals are values).
//! * [`mmio_transport`]: the virtio-mmio (version 2) register file and its
//!   status state machine.
//! * [`virtqueue`]: the device side of a split virtqueue; every descriptor
//!   is copied once and validated.
//! * [`iommu_wire`]: virtio-iommu layouts and constants.
//! * [`iommu_backend`]: what the virtio-iommu device needs from the IOMMU
//!   core.
//! * [`virtio_iommu`]: virtio-iommu request semantics over the backend.
//! * [`iommu_device`]: the MMIO device that joins them, with its lock.
//! * [`service_backend`]: the backend over the IOMMU core
//!   (`crate::iommu::IommuService`) the hyp runs the device on.

pub mod bus;
pub mod gic;
pub mod gic_its;
pub mod gic_redist;
pub mod guest_memory;
pub mod iommu_backend;
pub mod iommu_device;
pub mod iommu_wire;
pub mod mmio_transport;
pub mod service_backend;
pub mod virtio_iommu;
pub mod virtqueue;

pub use guest_memory::{GuestMemError, GuestMemory};
pub use iommu_backend::IommuBackend;
pub use iommu_device::VirtioIommu;

#[cfg(test)]
mod tests;

/// The width of a trapped load or store (ISS.SAS).
pub use crate::esr::AccessSize;

/// A device behind a trapped MMIO window.
///
/// `offset` is relative to the start of the window the device was
/// registered with; the bus only calls with naturally aligned accesses
/// that lie inside the window. A read returns the value in the low
/// `size` bytes (the bus ignores the rest); a write gets the value in
/// the low `size` bytes, the rest zero.
///
/// EL1 chooses every argument: a device must answer any of them without
/// panicking (a register it does not have reads as zero and ignores
/// writes, as reserved GIC and virtio registers do). Several CPUs may
/// call at once, hence `Sync`; a device keeps its state behind its own
/// lock.
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

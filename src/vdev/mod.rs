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
//! registers ([`gic_its`], [`gic_redist`]) today, a virtio-mmio transport
//! next.

pub mod bus;
pub mod gic;
pub mod gic_its;
pub mod gic_redist;

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
/// call at once, hence `Sync`.
pub trait MmioDevice: Sync {
    fn read(&self, offset: u64, size: AccessSize) -> u64;
    fn write(&self, offset: u64, size: AccessSize, value: u64);
}

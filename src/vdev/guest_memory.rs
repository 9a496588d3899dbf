//! EL1 memory as an emulated device reaches it.
//!
//! Virtqueues live in EL1 RAM (the host's IPA is its PA). A device reads
//! and writes them only through [`GuestMemory`], whose EL2 implementation
//! checks every byte range against the page-ownership record before
//! touching it: EL1-owned RAM only, never EL2's memory, never MMIO. A
//! refusal is a value ([`GuestMemError`]); the device turns it into a
//! request error or `DEVICE_NEEDS_RESET`, never a panic.
//!
//! The trait is safe: the implementation validates every range it is
//! given, so no caller obligation keeps EL2 memory-safe.

use core::fmt;

/// Why EL1 memory could not be accessed. Nothing was read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMemError {
    /// A byte of the range is not EL1-owned RAM (EL2's memory, MMIO, a
    /// hole in the memory map, or RAM EL1 gave away). `pa` is the start of
    /// the refused range.
    NotEl1Memory { pa: u64 },
    /// The range wraps past the top of the address space.
    Wraps { pa: u64 },
}

impl fmt::Display for GuestMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEl1Memory { pa } => write!(f, "{pa:#x} is not EL1-owned RAM"),
            Self::Wraps { pa } => write!(f, "range at {pa:#x} wraps around"),
        }
    }
}

/// EL1 memory, checked on every access.
///
/// * A refused access reads or writes nothing and returns an error.
/// * A naturally aligned access of 2, 4 or 8 bytes is single-copy atomic
///   (one load or store of that size): the rings' index fields are
///   written by EL1 on another CPU while the device reads them, and a torn
///   index would look like a malformed queue.
/// * Other accesses may be split into smaller ones in any order; the
///   device copies what it reads once and validates the copy.
/// * The barriers order the device's accesses as the virtio memory model
///   requires, as seen by EL1 on other CPUs (inner shareable). The
///   defaults are the architectural ones; a test implementation records
///   them to audit the order.
pub trait GuestMemory {
    /// Reads `buf.len()` bytes at `pa`.
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), GuestMemError>;

    /// Writes `data` at `pa`.
    fn write(&self, pa: u64, data: &[u8]) -> Result<(), GuestMemError>;

    /// Whether `len` bytes at `pa` could be written now, without writing
    /// them. Lets a device refuse a request whose reply it could not
    /// deliver before acting on it.
    fn check_writable(&self, pa: u64, len: u64) -> Result<(), GuestMemError>;

    /// Orders earlier reads before later reads (`dmb ishld`).
    fn read_barrier(&self) {
        #[cfg(target_arch = "aarch64")]
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::ISHLD);
        #[cfg(not(target_arch = "aarch64"))]
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
    }

    /// Orders earlier writes before later writes (`dmb ishst`).
    fn write_barrier(&self) {
        #[cfg(target_arch = "aarch64")]
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::ISHST);
        #[cfg(not(target_arch = "aarch64"))]
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    }

    /// Orders earlier reads and writes before later ones (`dmb ish`).
    fn full_barrier(&self) {
        #[cfg(target_arch = "aarch64")]
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::ISH);
        #[cfg(not(target_arch = "aarch64"))]
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

impl<T: GuestMemory + ?Sized> GuestMemory for &T {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), GuestMemError> {
        (**self).read(pa, buf)
    }
    fn write(&self, pa: u64, data: &[u8]) -> Result<(), GuestMemError> {
        (**self).write(pa, data)
    }
    fn check_writable(&self, pa: u64, len: u64) -> Result<(), GuestMemError> {
        (**self).check_writable(pa, len)
    }
    fn read_barrier(&self) {
        (**self).read_barrier();
    }
    fn write_barrier(&self) {
        (**self).write_barrier();
    }
    fn full_barrier(&self) {
        (**self).full_barrier();
    }
}

/// Reads a little-endian `u16` (single-copy atomic when aligned).
pub fn read_le16(mem: &impl GuestMemory, pa: u64) -> Result<u16, GuestMemError> {
    let mut b = [0; 2];
    mem.read(pa, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

/// Writes a little-endian `u16` (single-copy atomic when aligned).
pub fn write_le16(mem: &impl GuestMemory, pa: u64, value: u16) -> Result<(), GuestMemError> {
    mem.write(pa, &value.to_le_bytes())
}

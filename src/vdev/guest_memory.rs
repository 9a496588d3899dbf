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
//! given, so no caller obligation keeps EL2 memory-safe. The hyp's
//! implementation is [`OwnedRam`]: the checks against the ownership
//! record here, the loads and stores behind [`PhysMemory`] (EL2's
//! identity map on the target, a byte array in host tests).

use crate::mem::OwnershipTracker;
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

/// Loads and stores at physical addresses, unchecked: what [`OwnedRam`]
/// uses once a range passed its checks.
///
/// # Safety
///
/// An implementation reads or writes exactly the bytes asked for and no
/// others, and makes an aligned 2-, 4- or 8-byte access one load or store
/// of that size (single-copy atomic, as [`GuestMemory`] promises).
pub unsafe trait PhysMemory {
    /// Reads `buf.len()` bytes at `pa`.
    ///
    /// # Safety
    ///
    /// `[pa, pa + buf.len())` is RAM the implementation reaches.
    unsafe fn read(&self, pa: u64, buf: &mut [u8]);

    /// Writes `data` at `pa`.
    ///
    /// # Safety
    ///
    /// `[pa, pa + data.len())` is RAM the implementation reaches and
    /// whose content nothing of EL2 relies on.
    unsafe fn write(&self, pa: u64, data: &[u8]);
}

// SAFETY: forwards to `T`, which upholds the contract.
unsafe impl<T: PhysMemory + ?Sized> PhysMemory for &T {
    unsafe fn read(&self, pa: u64, buf: &mut [u8]) {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { (**self).read(pa, buf) }
    }
    unsafe fn write(&self, pa: u64, data: &[u8]) {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { (**self).write(pa, data) }
    }
}

/// EL1's RAM as the page-ownership record says it is now: every access
/// is checked, page by page, to lie entirely in RAM EL1 owns (never
/// EL2's memory, never MMIO, never a hole), then made through `P`.
///
/// The check and the access are two steps; they agree because the hyp
/// [seals](OwnershipTracker::seal) the record at the end of boot, so no
/// page changes owner in between. Build an `OwnedRam` over a sealed
/// tracker only.
pub struct OwnedRam<'a, P> {
    tracker: &'a OwnershipTracker<'a>,
    phys: P,
}

impl<'a, P: PhysMemory> OwnedRam<'a, P> {
    pub const fn new(tracker: &'a OwnershipTracker<'a>, phys: P) -> Self {
        Self { tracker, phys }
    }

    /// Refuses `len` bytes at `pa` unless they are EL1's RAM. An empty
    /// range is accepted (nothing is touched).
    fn check(&self, pa: u64, len: u64) -> Result<(), GuestMemError> {
        pa.checked_add(len).ok_or(GuestMemError::Wraps { pa })?;
        if len == 0 || self.tracker.is_el1_ram(pa, len) {
            Ok(())
        } else {
            Err(GuestMemError::NotEl1Memory { pa })
        }
    }
}

impl<P: PhysMemory> GuestMemory for OwnedRam<'_, P> {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), GuestMemError> {
        self.check(pa, buf.len() as u64)?;
        if !buf.is_empty() {
            // SAFETY: `check` found every byte in RAM EL1 owns, and the
            // sealed ownership record (`OwnershipTracker::seal`) keeps it
            // EL1's while we read.
            unsafe { self.phys.read(pa, buf) };
        }
        Ok(())
    }

    fn write(&self, pa: u64, data: &[u8]) -> Result<(), GuestMemError> {
        self.check(pa, data.len() as u64)?;
        if !data.is_empty() {
            // SAFETY: `check` found every byte in RAM EL1 owns, and the
            // sealed ownership record (`OwnershipTracker::seal`) keeps it
            // EL1's until the store: no byte of EL2's memory is written.
            unsafe { self.phys.write(pa, data) };
        }
        Ok(())
    }

    fn check_writable(&self, pa: u64, len: u64) -> Result<(), GuestMemError> {
        self.check(pa, len)
    }
}

#[cfg(test)]
mod owned_ram_tests {
    use super::*;
    use crate::mem::Owner;
    use crate::memmap::PhysRange;
    use core::sync::atomic::AtomicU32;
    use std::sync::Mutex;
    use std::vec::Vec;

    const RAM: PhysRange = PhysRange::new(0x4000_0000, 0x10_0000);
    const EL2: PhysRange = PhysRange::new(0x4008_0000, 0x1000);

    /// An access made: (write, address, length).
    type Access = (bool, u64, usize);

    /// RAM as a byte array that records the accesses made.
    struct ArrayRam(Mutex<(Vec<u8>, Vec<Access>)>);

    // SAFETY: reads and writes exactly the bytes asked (panicking outside
    // the array, which the tests never reach after `check`).
    unsafe impl PhysMemory for ArrayRam {
        unsafe fn read(&self, pa: u64, buf: &mut [u8]) {
            let mut s = self.0.lock().unwrap();
            let at = (pa - RAM.start) as usize;
            buf.copy_from_slice(&s.0[at..at + buf.len()]);
            s.1.push((false, pa, buf.len()));
        }
        unsafe fn write(&self, pa: u64, data: &[u8]) {
            let mut s = self.0.lock().unwrap();
            let at = (pa - RAM.start) as usize;
            s.0[at..at + data.len()].copy_from_slice(data);
            s.1.push((true, pa, data.len()));
        }
    }

    fn with_ram(f: impl FnOnce(&OwnedRam<'_, &ArrayRam>, &ArrayRam)) {
        let pages = OwnershipTracker::pages_needed(&[RAM]).unwrap();
        let records: Vec<AtomicU32> = (0..pages).map(|_| AtomicU32::new(0)).collect();
        let tracker = OwnershipTracker::new(&[RAM], &records).unwrap();
        tracker.set_owner(EL2.start, EL2.size, Owner::El2).unwrap();
        tracker.seal();
        let array = ArrayRam(Mutex::new((vec![0; RAM.size as usize], Vec::new())));
        f(&OwnedRam::new(&tracker, &array), &array);
    }

    #[test]
    fn el1_ram_is_read_and_written_through_the_physical_accessor() {
        with_ram(|mem, array| {
            mem.write(RAM.start + 0x10, &[1, 2, 3]).unwrap();
            let mut back = [0; 3];
            mem.read(RAM.start + 0x10, &mut back).unwrap();
            assert_eq!(back, [1, 2, 3]);
            assert_eq!(mem.check_writable(EL2.start - 8, 8), Ok(()));
            assert_eq!(
                array.0.lock().unwrap().1,
                [(true, RAM.start + 0x10, 3), (false, RAM.start + 0x10, 3)]
            );
        });
    }

    #[test]
    fn el2_memory_holes_mmio_and_wrapping_ranges_are_refused_without_an_access() {
        with_ram(|mem, array| {
            let mut buf = [0; 16];
            let refused = [
                (EL2.start, 8),
                (EL2.start - 4, 8),
                (EL2.end() - 1, 2),
                (RAM.end() - 4, 8),
                (0x0900_0000, 4),
                (RAM.start - 8, 16),
            ];
            for (pa, len) in refused {
                let buf = &mut buf[..len];
                let want = Err(GuestMemError::NotEl1Memory { pa });
                assert_eq!(mem.read(pa, buf), want, "read {pa:#x}");
                assert_eq!(mem.write(pa, buf), want, "write {pa:#x}");
                assert_eq!(mem.check_writable(pa, len as u64), want);
            }
            assert_eq!(
                mem.read(u64::MAX - 3, &mut buf),
                Err(GuestMemError::Wraps { pa: u64::MAX - 3 })
            );
            assert!(array.0.lock().unwrap().1.is_empty(), "nothing touched");
        });
    }

    /// RAM whose every store is preceded by another CPU trying to move the
    /// target page to EL2: what a donate hypercall would do between
    /// `OwnedRam::check` and the store.
    struct RacingRam<'t> {
        bytes: Mutex<Vec<u8>>,
        tracker: &'t OwnershipTracker<'t>,
        landed_in_el2: Mutex<bool>,
    }

    // SAFETY: reads and writes exactly the bytes asked for.
    unsafe impl PhysMemory for RacingRam<'_> {
        unsafe fn read(&self, pa: u64, buf: &mut [u8]) {
            let at = (pa - RAM.start) as usize;
            buf.copy_from_slice(&self.bytes.lock().unwrap()[at..at + buf.len()]);
        }
        unsafe fn write(&self, pa: u64, data: &[u8]) {
            let page = pa & !0xfff;
            let _ = self.tracker.set_owner(page, 0x1000, Owner::El2);
            *self.landed_in_el2.lock().unwrap() = !self.tracker.is_el1_ram(pa, data.len() as u64);
            let at = (pa - RAM.start) as usize;
            self.bytes.lock().unwrap()[at..at + data.len()].copy_from_slice(data);
        }
    }

    #[test]
    fn a_store_never_lands_in_a_page_el1_gave_away_after_the_check() {
        let pages = OwnershipTracker::pages_needed(&[RAM]).unwrap();
        let records: Vec<AtomicU32> = (0..pages).map(|_| AtomicU32::new(0)).collect();
        let tracker = OwnershipTracker::new(&[RAM], &records).unwrap();
        tracker.set_owner(EL2.start, EL2.size, Owner::El2).unwrap();
        tracker.seal();
        let ram = RacingRam {
            bytes: Mutex::new(vec![0; RAM.size as usize]),
            tracker: &tracker,
            landed_in_el2: Mutex::new(false),
        };
        OwnedRam::new(&tracker, &ram)
            .write(RAM.start + 0x5010, &[0xee; 4])
            .unwrap();
        assert!(
            !*ram.landed_in_el2.lock().unwrap(),
            "the device wrote into a page that was EL2's at the time of the store"
        );
    }
}

//! The hyp's memory state: its page pool, and the one ownership record of
//! RAM that every user of RAM pages borrows (`crate::mem`).

use crate::layout::BootLayout;
use crate::mem::{Owner, OwnershipTracker, PAGE_SIZE, PagePool};
use crate::memmap::PhysRange;
use crate::platform::{MAX_RAM_REGIONS, Platform};
use crate::vdev::guest_memory::{OwnedRam, PhysMemory};
use core::sync::atomic::AtomicU32;

/// The hyp's page pool.
pub static PAGE_POOL: spin::Mutex<PagePool> = spin::Mutex::new(PagePool::new());

static OWNERSHIP: spin::Once<OwnershipTracker<'static>> = spin::Once::new();

/// The ownership record of RAM, once [`init_ownership`] built it.
pub fn ownership() -> Option<&'static OwnershipTracker<'static>> {
    OWNERSHIP.get()
}

/// EL1's RAM as the emulated devices and the hypercalls that read it
/// reach it: checked against the sealed ownership record, `None` before
/// the record exists.
pub fn el1_ram() -> Option<OwnedRam<'static, IdentityMap>> {
    ownership().map(|t| OwnedRam::new(t, IdentityMap))
}

/// EL1's RAM through EL2's identity map (RAM is mapped read-write,
/// normal write-back, at its physical address). An aligned 2-, 4- or
/// 8-byte access is one load or store; anything else is copied a byte at
/// a time up to an 8-byte boundary, then 8 bytes at a time.
pub struct IdentityMap;

// SAFETY: each call touches exactly the bytes asked for, and an aligned
// 2-, 4- or 8-byte access is one volatile load or store of that size.
unsafe impl PhysMemory for IdentityMap {
    unsafe fn read(&self, pa: u64, buf: &mut [u8]) {
        let p = pa as *const u8;
        // SAFETY: the caller guarantees the range is RAM, which the
        // identity map maps at its physical address; every wider access is
        // at an address aligned to its size, in EL1's RAM and in `buf`.
        unsafe {
            match buf.len() {
                2 if pa.is_multiple_of(2) => {
                    buf.copy_from_slice(&p.cast::<u16>().read_volatile().to_ne_bytes())
                }
                4 if pa.is_multiple_of(4) => {
                    buf.copy_from_slice(&p.cast::<u32>().read_volatile().to_ne_bytes())
                }
                _ => {
                    let mut i = 0;
                    while i < buf.len() && !(pa + i as u64).is_multiple_of(8) {
                        buf[i] = p.add(i).read_volatile();
                        i += 1;
                    }
                    let dst = buf.as_mut_ptr();
                    while buf.len() - i >= 8 {
                        let word = p.add(i).cast::<u64>().read_volatile();
                        if (dst as usize + i).is_multiple_of(8) {
                            // One store (the target is built with strict
                            // alignment: a copy into a byte slice of unknown
                            // alignment would be eight).
                            dst.add(i).cast::<u64>().write(word);
                        } else {
                            buf[i..i + 8].copy_from_slice(&word.to_ne_bytes());
                        }
                        i += 8;
                    }
                    while i < buf.len() {
                        buf[i] = p.add(i).read_volatile();
                        i += 1;
                    }
                }
            }
        }
    }

    unsafe fn write(&self, pa: u64, data: &[u8]) {
        let p = pa as *mut u8;
        // SAFETY: as for `read`; the caller guarantees nothing of EL2 lives
        // there.
        unsafe {
            match *data {
                [a, b] if pa.is_multiple_of(2) => {
                    p.cast::<u16>().write_volatile(u16::from_ne_bytes([a, b]))
                }
                [a, b, c, d] if pa.is_multiple_of(4) => p
                    .cast::<u32>()
                    .write_volatile(u32::from_ne_bytes([a, b, c, d])),
                _ => {
                    let mut i = 0;
                    while i < data.len() && !(pa + i as u64).is_multiple_of(8) {
                        p.add(i).write_volatile(data[i]);
                        i += 1;
                    }
                    let src = data.as_ptr();
                    while data.len() - i >= 8 {
                        let word = if (src as usize + i).is_multiple_of(8) {
                            src.add(i).cast::<u64>().read()
                        } else {
                            let mut word = [0; 8];
                            word.copy_from_slice(&data[i..i + 8]);
                            u64::from_ne_bytes(word)
                        };
                        p.add(i).cast::<u64>().write_volatile(word);
                        i += 8;
                    }
                    while i < data.len() {
                        p.add(i).write_volatile(data[i]);
                        i += 1;
                    }
                }
            }
        }
    }
}

/// Builds the ownership record (records from the page pool) with the
/// hyp's own memory marked EL2-owned and the device tree's `no-map`
/// reserved memory marked as such. Call once, with the pool up.
pub fn init_ownership(platform: &Platform<'_>, layout: &BootLayout) -> Result<(), &'static str> {
    let mut ram: heapless::Vec<PhysRange, MAX_RAM_REGIONS> = heapless::Vec::new();
    for r in platform.ram.iter() {
        ram.push(*r).map_err(|_| "too many RAM regions")?;
    }
    let pages = OwnershipTracker::pages_needed(&ram).ok_or("too many RAM regions")?;
    let bytes = (pages * core::mem::size_of::<AtomicU32>()) as u64;
    let region = PAGE_POOL
        .lock()
        .alloc(bytes, PAGE_SIZE)
        .map_err(|_| "no pool memory for page records")?;
    // SAFETY: the pool just handed out this range, identity mapped
    // read-write, page aligned, never freed; AtomicU32 has u32's layout and
    // any bit pattern is valid (`OwnershipTracker::new` resets them).
    let records: &'static [AtomicU32] =
        unsafe { core::slice::from_raw_parts(region.start as *const AtomicU32, pages) };
    let tracker = OwnershipTracker::new(&ram, records).map_err(|_| "page records")?;
    for r in layout.el2_owned() {
        tracker
            .set_owner(r.start, r.size, Owner::El2)
            .map_err(|_| "marking EL2 memory")?;
    }
    for r in platform.no_map.iter() {
        tracker
            .mark_no_map(*r)
            .map_err(|_| "marking no-map reserved memory")?;
    }
    // Owners are final from here: `OwnedRam` (the emulated devices' access
    // to EL1 memory) checks a page's owner and then touches it, which is
    // sound only while no owner changes at run time.
    tracker.seal();
    OWNERSHIP.call_once(|| tracker);
    Ok(())
}

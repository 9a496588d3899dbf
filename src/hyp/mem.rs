//! The hyp's memory state: its page pool, and the one ownership record of
//! RAM that every user of RAM pages borrows (`crate::mem`).

use crate::layout::BootLayout;
use crate::mem::{Owner, OwnershipTracker, PAGE_SIZE, PagePool};
use crate::memmap::PhysRange;
use crate::platform::{MAX_RAM_REGIONS, Platform};
use core::sync::atomic::AtomicU32;

/// The hyp's page pool.
pub static PAGE_POOL: spin::Mutex<PagePool> = spin::Mutex::new(PagePool::new());

static OWNERSHIP: spin::Once<OwnershipTracker<'static>> = spin::Once::new();

/// The ownership record of RAM, once [`init_ownership`] built it.
pub fn ownership() -> Option<&'static OwnershipTracker<'static>> {
    OWNERSHIP.get()
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

//! Who owns each page of RAM, and how many DMA mappings reach it.
//!
//! Every page of RAM ([`PAGE_SIZE`]) has one 32-bit record in
//! caller-provided storage (1 GiB of RAM = 262,144 records = 1 MiB, carved
//! from the hyp's pool):
//!
//! ```text
//!  31     30     29..24     23..0
//! EL2  no-map   (unused)  DMA mapping count
//! ```
//!
//! * A page owned by EL2 (image, heap, page tables, stream tables, queues)
//!   can never be mapped for DMA: [`OwnershipTracker::claim_for_dma`]
//!   refuses it.
//! * A page of `no-map` reserved memory ([`Owner::NoMap`]: the device
//!   tree's `/reserved-memory` children with `no-map`, e.g. a TEE's
//!   carve-out that firmware may firewall) stays EL1's to reach with its
//!   own loads and stores, but EL1 may not hand it to anyone: not to a
//!   device ([`OwnershipTracker::claim_for_dma`] refuses it), not to the
//!   GIC or the hyp ([`OwnershipTracker::is_el1_ram`] is false), and it
//!   never changes owner. The hyp itself does not map it
//!   ([`crate::layout::el2_ram`]). Marked once at boot.
//! * A page mapped for DMA carries one reference per mapping. References
//!   are dropped by [`OwnershipTracker::release_after_sync`] only once the
//!   unmap's invalidation and `CMD_SYNC` have completed, so an ownership
//!   change ([`OwnershipTracker::set_owner`]) refuses a page a device may
//!   still reach.
//!
//! Concurrency: every record changes with a compare-and-swap, so CPUs need
//! no lock. A range operation is all-or-nothing: it changes pages in
//! order and, on the first page it cannot change, undoes the pages it
//! already changed. While it runs, another CPU may see some of its pages
//! changed; the two kinds of change never both succeed on one page (a
//! claim needs the page to be EL1's, an ownership change needs it
//! unmapped), so a page is never both EL2's and reachable by a device.
//! A concurrent claim and ownership change of overlapping ranges may both
//! fail; neither is then applied.
//!
//! This is the only record of page state: every user borrows the same
//! tracker (`&OwnershipTracker`), so no second copy can disagree with it.
//!
//! Ownership is fixed after boot: the hyp calls
//! [`OwnershipTracker::seal`] once it has marked its own memory and the
//! `no-map` ranges, and from then on [`OwnershipTracker::set_owner`] and
//! [`OwnershipTracker::mark_no_map`] return [`OwnershipError::Sealed`].
//! Code that checks "EL1 owns this page" and then touches it (the
//! emulated devices' `OwnedRam`) relies on this: the answer cannot change
//! between the check and the access. A future hypercall that donates or
//! shares pages at run time must replace the seal with a pin that
//! ownership changes respect (see `docs/threat-model.md`).
//!
//! Physical addresses outside RAM are classified by [`classify`].

pub mod classify;

pub use classify::{
    ITS_TRANSLATER_PAGE, MAX_ALLOWED, MAX_FORBIDDEN, PaClass, PhysPolicy, TooManyRanges,
    forbidden_mmio,
};

use super::{PAGE_SHIFT, PAGE_SIZE};
use crate::memmap::{PhysRange, RangeSet};
use crate::platform::MAX_RAM_REGIONS;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

const EL2: u32 = 1 << 31;
const NO_MAP: u32 = 1 << 30;
const REF_MASK: u32 = (1 << 24) - 1;
/// Most DMA mappings of one page at once.
pub const MAX_REFS: u32 = REF_MASK;

/// The owner of a RAM page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The EL1 kernel: may be mapped for DMA.
    El1,
    /// The hyp: never mapped for DMA.
    El2,
    /// `no-map` reserved memory: reachable by EL1 itself only, never by
    /// the hyp or a device (see the module docs).
    NoMap,
}

/// Why an ownership operation was refused. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnershipError {
    /// Part of the range is not RAM (or the range is empty or wraps).
    NotRam,
    /// A page is owned by EL2.
    El2Owned,
    /// A page is `no-map` reserved memory.
    NoMap,
    /// A page is not owned by the expected owner (`set_owner` moves pages
    /// from the other owner only).
    WrongOwner,
    /// A page is still mapped for DMA.
    Mapped,
    /// A page's reference count is at [`MAX_REFS`].
    Saturated,
    /// Construction: the storage is shorter than
    /// [`OwnershipTracker::pages_needed`], or RAM has too many regions.
    Storage,
    /// Ownership no longer changes: the tracker was
    /// [sealed](OwnershipTracker::seal) at the end of boot.
    Sealed,
}

#[derive(Clone, Copy, Debug)]
struct Region {
    /// First byte (page aligned).
    start: u64,
    /// One past the last byte (page aligned).
    end: u64,
    /// Index of its first page in the storage.
    first: usize,
}

/// Per-page ownership and DMA reference counts for RAM.
pub struct OwnershipTracker<'a> {
    regions: heapless::Vec<Region, MAX_RAM_REGIONS>,
    pages: &'a [AtomicU32],
    /// Sum of every page's reference count.
    refs: AtomicU64,
    /// Pages owned by EL2.
    el2_pages: AtomicU64,
    /// Releases of a page whose count was already 0 (a bug if ever
    /// non-zero; the count stays at 0).
    underflows: AtomicU64,
    /// Set by [`seal`](Self::seal): owners never change again.
    sealed: AtomicBool,
}

/// The RAM regions, merged and grown to whole pages.
fn page_regions(ram: &[PhysRange]) -> Option<RangeSet<MAX_RAM_REGIONS>> {
    let mut set = RangeSet::new();
    for r in ram {
        set.add(r.align_out(PAGE_SIZE)).ok()?;
    }
    Some(set)
}

impl<'a> OwnershipTracker<'a> {
    /// Records needed to track `ram` (each RAM region grown to whole
    /// pages); `None` if RAM has more than [`MAX_RAM_REGIONS`] regions.
    pub fn pages_needed(ram: &[PhysRange]) -> Option<usize> {
        let set = page_regions(ram)?;
        Some(set.iter().map(|r| (r.size >> PAGE_SHIFT) as usize).sum())
    }

    /// A tracker for `ram` over `storage` (at least
    /// [`pages_needed`](Self::pages_needed) records; their old contents do
    /// not matter). Every page starts owned by EL1 and unmapped; mark the
    /// hyp's memory with [`set_owner`](Self::set_owner) before serving
    /// calls.
    pub fn new(ram: &[PhysRange], storage: &'a [AtomicU32]) -> Result<Self, OwnershipError> {
        let set = page_regions(ram).ok_or(OwnershipError::Storage)?;
        let mut regions = heapless::Vec::new();
        let mut first = 0usize;
        for r in set.iter() {
            let pages = (r.size >> PAGE_SHIFT) as usize;
            regions
                .push(Region {
                    start: r.start,
                    end: r.end(),
                    first,
                })
                .map_err(|_| OwnershipError::Storage)?;
            first = first.checked_add(pages).ok_or(OwnershipError::Storage)?;
        }
        let pages = storage.get(..first).ok_or(OwnershipError::Storage)?;
        for p in pages {
            p.store(0, Ordering::Relaxed);
        }
        Ok(Self {
            regions,
            pages,
            refs: AtomicU64::new(0),
            el2_pages: AtomicU64::new(0),
            underflows: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
        })
    }

    /// The storage records for `[start, start + size)` if the whole range
    /// is RAM (rounded out to pages); `None` if any of it is not, or if it
    /// is empty or wraps.
    fn records(&self, start: u64, size: u64) -> Option<&'a [AtomicU32]> {
        let end = start.checked_add(size)?;
        if size == 0 {
            return None;
        }
        let r = self
            .regions
            .iter()
            .find(|r| start >= r.start && end <= r.end)?;
        let first = r.first + ((start - r.start) >> PAGE_SHIFT) as usize;
        let last = r.first + ((end - r.start).div_ceil(PAGE_SIZE)) as usize;
        self.pages.get(first..last)
    }

    /// Whether `[start, start + size)` touches RAM at all.
    pub fn touches_ram(&self, start: u64, size: u64) -> bool {
        let end = start.saturating_add(size);
        self.regions.iter().any(|r| start < r.end && end > r.start)
    }

    /// Whether `[start, start + size)` is entirely RAM.
    pub fn is_ram(&self, start: u64, size: u64) -> bool {
        self.records(start, size).is_some()
    }

    /// Whether `[start, start + size)` is entirely RAM and every page of
    /// it is owned by EL1, `no-map` reserved memory excluded (false for
    /// an empty or wrapping range): what EL1 may hand the hyp or the GIC.
    pub fn is_el1_ram(&self, start: u64, size: u64) -> bool {
        self.records(start, size).is_some_and(|recs| {
            recs.iter()
                .all(|r| r.load(Ordering::Acquire) & (EL2 | NO_MAP) == 0)
        })
    }

    /// Applies `step` to every record of the range in order; if it fails
    /// on one, applies `undo` to the records already changed. `step`
    /// returns the new value for an old one, or why it cannot change it.
    fn all_or_nothing(
        &self,
        recs: &[AtomicU32],
        step: impl Fn(u32) -> Result<u32, OwnershipError>,
        undo: impl Fn(u32) -> u32,
    ) -> Result<(), OwnershipError> {
        for (i, rec) in recs.iter().enumerate() {
            let r = rec.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| step(v).ok());
            if let Err(old) = r {
                let err = step(old).err().unwrap_or(OwnershipError::NotRam);
                for done in recs.iter().take(i) {
                    // Cannot fail: the closure always returns a value.
                    let _ =
                        done.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(undo(v)));
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Takes one DMA reference on every page of `[start, start + size)`:
    /// all of it must be RAM owned by EL1, with no count saturated.
    /// All-or-nothing.
    pub fn claim_for_dma(&self, start: u64, size: u64) -> Result<(), OwnershipError> {
        let recs = self.records(start, size).ok_or(OwnershipError::NotRam)?;
        self.all_or_nothing(
            recs,
            |v| {
                if v & EL2 != 0 {
                    Err(OwnershipError::El2Owned)
                } else if v & NO_MAP != 0 {
                    Err(OwnershipError::NoMap)
                } else if v & REF_MASK == MAX_REFS {
                    Err(OwnershipError::Saturated)
                } else {
                    Ok(v + 1)
                }
            },
            // Our own increment is still there: nobody releases a
            // reference that was not taken.
            |v| v.saturating_sub(1),
        )?;
        self.refs.fetch_add(recs.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Drops one DMA reference from every RAM page of `[start, start +
    /// size)`. Call only after the unmap that removed the mapping was
    /// invalidated and synced. Pages outside RAM (MMIO mappings) are
    /// skipped; a count already at 0 stays there and is counted in
    /// [`underflows`](Self::underflows).
    pub fn release_after_sync(&self, start: u64, size: u64) {
        let Some(recs) = self.records(start, size) else {
            // A mapping never straddles RAM and non-RAM (claims refuse it),
            // so a range that is not all RAM is all MMIO.
            return;
        };
        let mut released = 0u64;
        for rec in recs {
            let r = rec.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v & REF_MASK != 0).then(|| v - 1)
            });
            match r {
                Ok(_) => released += 1,
                Err(_) => {
                    self.underflows.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.refs.fetch_sub(released, Ordering::Relaxed);
    }

    /// Moves every page of `[start, start + size)` between EL1 and EL2, to
    /// `owner`. Each page must currently belong to the other one; pages
    /// taken from EL1 must not be mapped for DMA; `no-map` pages never
    /// move (and [`Owner::NoMap`] is no target: see
    /// [`mark_no_map`](Self::mark_no_map)). All-or-nothing.
    /// Refused with [`OwnershipError::Sealed`] once the tracker is sealed.
    pub fn set_owner(&self, start: u64, size: u64, owner: Owner) -> Result<(), OwnershipError> {
        self.refuse_if_sealed()?;
        let recs = self.records(start, size).ok_or(OwnershipError::NotRam)?;
        match owner {
            Owner::NoMap => return Err(OwnershipError::WrongOwner),
            Owner::El2 => self.all_or_nothing(
                recs,
                |v| {
                    if v & (EL2 | NO_MAP) != 0 {
                        Err(OwnershipError::WrongOwner)
                    } else if v & REF_MASK != 0 {
                        Err(OwnershipError::Mapped)
                    } else {
                        Ok(v | EL2)
                    }
                },
                |v| v & !EL2,
            )?,
            Owner::El1 => self.all_or_nothing(
                recs,
                |v| {
                    if v & EL2 == 0 {
                        Err(OwnershipError::WrongOwner)
                    } else {
                        Ok(v & !EL2)
                    }
                },
                |v| v | EL2,
            )?,
        }
        let n = recs.len() as u64;
        match owner {
            Owner::El2 => self.el2_pages.fetch_add(n, Ordering::Relaxed),
            _ => self.el2_pages.fetch_sub(n, Ordering::Relaxed),
        };
        Ok(())
    }

    /// Marks the RAM pages of `range` (a `no-map` reserved-memory range,
    /// which may reach past RAM: only its RAM pages are tracked) as
    /// [`Owner::NoMap`], for good. Each must be EL1's, unmapped and not
    /// marked yet; at boot, before any other use. All-or-nothing per RAM
    /// region. Refused with [`OwnershipError::Sealed`] once the tracker is
    /// sealed.
    pub fn mark_no_map(&self, range: PhysRange) -> Result<(), OwnershipError> {
        self.refuse_if_sealed()?;
        for region in &self.regions {
            let start = range.start.max(region.start);
            let end = range.end().min(region.end);
            if start >= end {
                continue;
            }
            let recs = self
                .records(start, end - start)
                .ok_or(OwnershipError::NotRam)?;
            self.all_or_nothing(
                recs,
                |v| match v {
                    0 => Ok(NO_MAP),
                    _ if v & REF_MASK != 0 => Err(OwnershipError::Mapped),
                    _ => Err(OwnershipError::WrongOwner),
                },
                |_| 0,
            )?;
        }
        Ok(())
    }

    /// Fixes every page's owner for good: later
    /// [`set_owner`](Self::set_owner) and [`mark_no_map`](Self::mark_no_map)
    /// calls return [`OwnershipError::Sealed`]; DMA references still come
    /// and go. Call once boot has set ownership, before the tracker is
    /// shared with other CPUs, so no ownership change can be in flight.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    fn refuse_if_sealed(&self) -> Result<(), OwnershipError> {
        if self.sealed.load(Ordering::Acquire) {
            Err(OwnershipError::Sealed)
        } else {
            Ok(())
        }
    }

    fn record(&self, pa: u64) -> Option<u32> {
        Some(
            self.records(pa & !(PAGE_SIZE - 1), PAGE_SIZE)?
                .first()?
                .load(Ordering::Acquire),
        )
    }

    /// The owner of the RAM page holding `pa`; `None` outside RAM.
    pub fn owner(&self, pa: u64) -> Option<Owner> {
        self.record(pa).map(|v| {
            if v & EL2 != 0 {
                Owner::El2
            } else if v & NO_MAP != 0 {
                Owner::NoMap
            } else {
                Owner::El1
            }
        })
    }

    /// The DMA reference count of the RAM page holding `pa`; `None`
    /// outside RAM.
    pub fn refcount(&self, pa: u64) -> Option<u32> {
        self.record(pa).map(|v| v & REF_MASK)
    }

    /// Sum of all DMA reference counts.
    pub fn dma_refs(&self) -> u64 {
        self.refs.load(Ordering::Relaxed)
    }

    /// RAM pages owned by EL2.
    pub fn el2_pages(&self) -> u64 {
        self.el2_pages.load(Ordering::Relaxed)
    }

    /// Releases of unreferenced pages seen (should stay 0).
    pub fn underflows(&self) -> u64 {
        self.underflows.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    const RAM: u64 = 0x4000_0000;

    fn storage(n: usize) -> Vec<AtomicU32> {
        (0..n).map(|_| AtomicU32::new(0xdead_beef)).collect()
    }

    /// 1 MiB of RAM at `RAM`, EL1's but for the EL2 page at `RAM + 0x5000`.
    fn with_an_el2_page(f: impl FnOnce(&OwnershipTracker<'_>)) {
        let ram = [PhysRange::new(RAM, 0x10_0000)];
        let s = storage(256);
        let t = OwnershipTracker::new(&ram, &s).unwrap();
        t.set_owner(RAM + 0x5000, 0x1000, Owner::El2).unwrap();
        f(&t);
    }

    #[test]
    fn sizes_regions_and_refuses_short_storage() {
        let ram = [
            PhysRange::new(RAM, 0x10_0000),
            PhysRange::new(RAM + 0x20_0000, 0x800),
        ];
        assert_eq!(OwnershipTracker::pages_needed(&ram), Some(257));
        let short = storage(256);
        assert_eq!(
            OwnershipTracker::new(&ram, &short).err(),
            Some(OwnershipError::Storage)
        );
        let s = storage(257);
        let t = OwnershipTracker::new(&ram, &s).unwrap();
        assert_eq!(t.owner(RAM), Some(Owner::El1), "storage reset");
        assert_eq!(t.refcount(RAM + 0x20_0fff), Some(0), "partial page tracked");
        assert_eq!(t.owner(RAM + 0x10_0000), None, "hole");
        assert!(t.is_ram(RAM, 0x10_0000));
        assert!(!t.is_ram(RAM, 0x10_1000), "runs into the hole");
        assert!(!t.is_ram(RAM, 0) && !t.is_ram(u64::MAX - 0xfff, 0x2000));
        assert!(t.touches_ram(RAM - 0x1000, 0x2000));
        assert!(!t.touches_ram(0, RAM));
    }

    #[test]
    fn el1_ram_means_every_page_is_ram_and_owned_by_el1() {
        with_an_el2_page(|t| {
            assert!(t.is_el1_ram(RAM, 0x5000));
            assert!(t.is_el1_ram(RAM + 0x800, 0x1000), "unaligned, two pages");
            assert!(!t.is_el1_ram(RAM, 0x6000));
            assert!(!t.is_el1_ram(RAM + 0x4fff, 2), "one byte in the EL2 page");
            assert!(t.is_el1_ram(RAM + 0x6000, 0xfa000));
            assert!(!t.is_el1_ram(RAM + 0x6000, 0xfb000), "past the end of RAM");
            assert!(!t.is_el1_ram(RAM, 0) && !t.is_el1_ram(u64::MAX - 0xfff, 0x2000));
        });
    }

    #[test]
    fn a_sealed_tracker_refuses_every_ownership_change_and_still_counts_dma_references() {
        with_an_el2_page(|t| {
            t.seal();
            assert_eq!(
                t.set_owner(RAM, 0x1000, Owner::El2),
                Err(OwnershipError::Sealed)
            );
            assert_eq!(
                t.set_owner(RAM + 0x5000, 0x1000, Owner::El1),
                Err(OwnershipError::Sealed)
            );
            assert_eq!(
                t.mark_no_map(PhysRange::new(RAM + 0x1000, 0x1000)),
                Err(OwnershipError::Sealed)
            );
            assert_eq!(t.owner(RAM), Some(Owner::El1));
            assert_eq!(t.owner(RAM + 0x1000), Some(Owner::El1));
            assert_eq!(t.owner(RAM + 0x5000), Some(Owner::El2));
            t.claim_for_dma(RAM, 0x1000).unwrap();
            assert_eq!(t.refcount(RAM), Some(1));
            t.release_after_sync(RAM, 0x1000);
            assert_eq!(t.dma_refs(), 0);
        });
    }

    #[test]
    fn claims_refuse_el2_pages_and_are_all_or_nothing() {
        with_an_el2_page(|t| {
            assert_eq!(t.el2_pages(), 1);
            assert_eq!(t.claim_for_dma(RAM, 0x8000), Err(OwnershipError::El2Owned));
            for p in 0..8 {
                assert_eq!(t.refcount(RAM + p * 0x1000), Some(0), "rolled back");
            }
            assert_eq!(t.dma_refs(), 0);
            t.claim_for_dma(RAM, 0x5000).unwrap();
            t.claim_for_dma(RAM + 0x1000, 0x1000).unwrap();
            assert_eq!(t.refcount(RAM + 0x1000), Some(2));
            assert_eq!(t.dma_refs(), 6);
            assert_eq!(
                t.claim_for_dma(RAM + 0xf_f000, 0x2000),
                Err(OwnershipError::NotRam)
            );
            // Mapped pages cannot go to EL2; nothing changes.
            assert_eq!(
                t.set_owner(RAM + 0x4000, 0x1000, Owner::El2),
                Err(OwnershipError::Mapped)
            );
            assert_eq!(
                t.set_owner(RAM + 0x6000, 0x2000, Owner::El1),
                Err(OwnershipError::WrongOwner)
            );
            t.release_after_sync(RAM, 0x5000);
            t.release_after_sync(RAM + 0x1000, 0x1000);
            assert_eq!(t.dma_refs(), 0);
            t.set_owner(RAM + 0x4000, 0x1000, Owner::El2).unwrap();
            t.set_owner(RAM + 0x4000, 0x2000, Owner::El1).unwrap();
            assert_eq!(t.el2_pages(), 0);
            t.release_after_sync(RAM, 0x1000);
            assert_eq!(t.underflows(), 1);
            assert_eq!(t.refcount(RAM), Some(0));
            // MMIO releases are ignored.
            t.release_after_sync(0x900_0000, 0x1000);
            assert_eq!(t.underflows(), 1);
        });
    }

    #[test]
    fn no_map_pages_are_never_el1_ram_for_the_hyp_never_claimed_and_never_move() {
        let ram = [PhysRange::new(RAM, 0x10_0000)];
        let s = storage(256);
        let t = OwnershipTracker::new(&ram, &s).unwrap();
        // A no-map range that starts below RAM: its RAM pages are marked.
        t.mark_no_map(PhysRange::new(RAM - 0x1000, 0x3000)).unwrap();
        assert_eq!(t.owner(RAM), Some(Owner::NoMap));
        assert_eq!(t.owner(RAM + 0x1000), Some(Owner::NoMap));
        assert_eq!(t.owner(RAM + 0x2000), Some(Owner::El1));
        assert!(t.is_ram(RAM, 0x2000), "still RAM");
        assert!(!t.is_el1_ram(RAM, 0x1000));
        assert!(!t.is_el1_ram(RAM + 0x1000, 0x2000), "one no-map page");
        assert!(t.is_el1_ram(RAM + 0x2000, 0x1000));
        assert_eq!(t.claim_for_dma(RAM, 0x1000), Err(OwnershipError::NoMap));
        assert_eq!(
            t.claim_for_dma(RAM + 0x1000, 0x2000),
            Err(OwnershipError::NoMap)
        );
        assert_eq!(t.refcount(RAM + 0x2000), Some(0), "rolled back");
        for owner in [Owner::El2, Owner::El1, Owner::NoMap] {
            assert_eq!(
                t.set_owner(RAM, 0x1000, owner),
                Err(OwnershipError::WrongOwner),
                "{owner:?}"
            );
        }
        assert_eq!(t.owner(RAM), Some(Owner::NoMap));
        assert_eq!(t.el2_pages(), 0);
        // Only EL1's unmapped pages can be marked, once.
        assert_eq!(
            t.mark_no_map(PhysRange::new(RAM, 0x1000)),
            Err(OwnershipError::WrongOwner)
        );
        t.set_owner(RAM + 0x5000, 0x1000, Owner::El2).unwrap();
        t.claim_for_dma(RAM + 0x6000, 0x1000).unwrap();
        for page in [0x5000, 0x6000] {
            assert!(t.mark_no_map(PhysRange::new(RAM + page, 0x1000)).is_err());
        }
        // Outside RAM there is nothing to mark.
        t.mark_no_map(PhysRange::new(0x1000, 0x1000)).unwrap();
    }

    #[test]
    fn saturated_counts_refuse_claims() {
        let ram = [PhysRange::new(RAM, 0x2000)];
        let s = storage(2);
        let t = OwnershipTracker::new(&ram, &s).unwrap();
        s[1].store(MAX_REFS, Ordering::Relaxed);
        assert_eq!(t.claim_for_dma(RAM, 0x2000), Err(OwnershipError::Saturated));
        assert_eq!(t.refcount(RAM), Some(0));
    }

    #[test]
    fn concurrent_claims_and_ownership_changes_never_overlap() {
        let ram = [PhysRange::new(RAM, 0x40_0000)];
        let s: &'static [AtomicU32] = Vec::leak(storage(1024));
        let t = Arc::new(OwnershipTracker::new(&ram, s).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ k;
                    for _ in 0..20_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let start = RAM + (x % 1000) * 0x1000;
                        let size = (1 + (x >> 20) % 16) * 0x1000;
                        if k % 2 == 0 {
                            if t.claim_for_dma(start, size).is_ok() {
                                // A claimed page can never become EL2's.
                                assert_eq!(t.owner(start), Some(Owner::El1));
                                t.release_after_sync(start, size);
                            }
                        } else if t.set_owner(start, size, Owner::El2).is_ok() {
                            assert_eq!(t.refcount(start), Some(0));
                            t.set_owner(start, size, Owner::El1).unwrap();
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.dma_refs(), 0);
        assert_eq!(t.el2_pages(), 0);
        assert_eq!(t.underflows(), 0);
        for p in 0..1024 {
            assert_eq!(t.record(RAM + p * 0x1000), Some(0));
        }
    }
}

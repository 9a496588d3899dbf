//! Host-side table memory (tests, fuzzing, the auditor): a growable arena of
//! granule-sized pages at fake physical addresses, with allocation
//! accounting and failure injection.
//!
//! Freed pages are reused last-in first-out, so a table freed too early is
//! handed out again at once, which is what exposes use-after-free bugs.
//! Reads and writes of pages that are not allocated panic.

extern crate alloc;

use alloc::vec::Vec;

use super::config::Granule;
use super::memory::{PhysAddr, TableMemory};

/// Physical address of the first arena page. Below 4 GiB so that tables are
/// addressable with every supported output size, and aligned to the largest
/// concatenated root (16 x 64 KiB).
pub const HOST_BASE: PhysAddr = 0x4000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageState {
    Unused,
    Allocated,
    Freed,
}

/// Arena-backed [`TableMemory`].
#[derive(Clone, Debug)]
pub struct HostMemory {
    granule: u64,
    words_per_page: usize,
    words: Vec<u64>,
    state: Vec<PageState>,
    free: Vec<usize>,
    live: usize,
    peak: usize,
    allocs: u64,
    frees: u64,
    failed: u64,
    fail_after: Option<u64>,
}

impl HostMemory {
    /// An empty arena of `granule`-sized pages.
    pub fn new(granule: Granule) -> HostMemory {
        HostMemory {
            granule: granule.size(),
            words_per_page: granule.entries(),
            words: Vec::new(),
            state: Vec::new(),
            free: Vec::new(),
            live: 0,
            peak: 0,
            allocs: 0,
            frees: 0,
            failed: 0,
            fail_after: None,
        }
    }

    /// Pages currently allocated.
    pub fn live_pages(&self) -> usize {
        self.live
    }

    /// Most pages allocated at once.
    pub fn peak_pages(&self) -> usize {
        self.peak
    }

    /// Successful allocations so far.
    pub fn allocs(&self) -> u64 {
        self.allocs
    }

    /// Frees so far.
    pub fn frees(&self) -> u64 {
        self.frees
    }

    /// Allocations refused by failure injection so far.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Lets the next `n` allocations succeed and fails every one after that
    /// until [`clear_failure`](Self::clear_failure).
    pub fn fail_after(&mut self, n: u64) {
        self.fail_after = Some(n);
    }

    /// Stops failure injection.
    pub fn clear_failure(&mut self) {
        self.fail_after = None;
    }

    /// Arena page index of `pa`, if it is inside the arena.
    pub fn page_index(&self, pa: PhysAddr) -> Option<usize> {
        let off = pa.checked_sub(HOST_BASE)?;
        let idx = (off / self.granule) as usize;
        (idx < self.state.len()).then_some(idx)
    }

    /// Whether the page holding `pa` is allocated.
    pub fn is_allocated(&self, pa: PhysAddr) -> bool {
        self.page_index(pa)
            .is_some_and(|i| self.state[i] == PageState::Allocated)
    }

    /// A fingerprint of every allocated page and its contents: equal
    /// fingerprints mean the tables are exactly as they were.
    pub fn fingerprint(&self) -> u64 {
        // FNV-1a over (page index, words) of allocated pages.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |v: u64| {
            h ^= v;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        for (i, s) in self.state.iter().enumerate() {
            if *s == PageState::Allocated {
                mix(i as u64);
                let w = &self.words[i * self.words_per_page..(i + 1) * self.words_per_page];
                for &x in w {
                    mix(x);
                }
            }
        }
        h
    }

    fn word(&self, table: PhysAddr, index: usize) -> usize {
        let w = ((table - HOST_BASE) / 8) as usize + index;
        let page = w / self.words_per_page;
        assert!(
            self.state.get(page) == Some(&PageState::Allocated),
            "access to unallocated table memory at {:#x}[{index}]",
            table
        );
        w
    }
}

// SAFETY: host tests only: no walker reads these fake physical addresses.
// Pages are zeroed, size-aligned and exclusively the table's until freed,
// and every access is bounds-checked against the page's state.
unsafe impl TableMemory for HostMemory {
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr> {
        assert!(
            size.is_power_of_two() && size >= self.granule && size <= 16 * self.granule,
            "bad table size {size:#x}"
        );
        if let Some(n) = self.fail_after {
            if n == 0 {
                self.failed += 1;
                return None;
            }
            self.fail_after = Some(n - 1);
        }
        let pages = (size / self.granule) as usize;
        let first = if pages == 1 && !self.free.is_empty() {
            self.free.pop().unwrap_or_default()
        } else {
            // Bump-allocate, aligned to the size (concatenated roots need
            // it); pages skipped for alignment become free pages.
            let mut first = self.state.len();
            while !first.is_multiple_of(pages) {
                self.free.push(first);
                self.state.push(PageState::Unused);
                first += 1;
            }
            self.state.resize(first + pages, PageState::Unused);
            self.words.resize((first + pages) * self.words_per_page, 0);
            first
        };
        for p in first..first + pages {
            self.state[p] = PageState::Allocated;
        }
        self.words[first * self.words_per_page..(first + pages) * self.words_per_page].fill(0);
        self.live += pages;
        self.peak = self.peak.max(self.live);
        self.allocs += 1;
        Some(HOST_BASE + first as u64 * self.granule)
    }

    fn free_table(&mut self, pa: PhysAddr, size: u64) {
        let pages = (size / self.granule) as usize;
        let first = self
            .page_index(pa)
            .expect("free of a page outside the arena");
        assert!(
            (pa - HOST_BASE).is_multiple_of(size),
            "free of misaligned table {pa:#x}"
        );
        for p in first..first + pages {
            assert!(
                self.state[p] == PageState::Allocated,
                "double free of table page {:#x}",
                HOST_BASE + p as u64 * self.granule
            );
            self.state[p] = PageState::Freed;
            self.free.push(p);
        }
        self.live -= pages;
        self.frees += 1;
    }

    #[inline]
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.words[self.word(table, index)]
    }

    #[inline]
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        let w = self.word(table, index);
        self.words[w] = desc;
    }

    /// No walker reads host memory; the auditor wrapping it checks the
    /// engine calls this where it must.
    fn barrier_before_link(&mut self) {}
}

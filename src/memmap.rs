//! Physical address ranges and the arithmetic the boot memory map needs.
//!
//! Fixed capacity, no allocation: the boot map is built before any allocator
//! exists.

use core::fmt;
use heapless::Vec;

/// A half-open physical range `[start, start + size)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PhysRange {
    pub start: u64,
    pub size: u64,
}

impl PhysRange {
    pub const fn new(start: u64, size: u64) -> Self {
        Self { start, size }
    }

    /// Builds `[start, end)`; `None` if `end < start`.
    pub fn from_bounds(start: u64, end: u64) -> Option<Self> {
        end.checked_sub(start).map(|size| Self { start, size })
    }

    /// One past the last byte, saturating at the top of the address space.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end()
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_range(&self, other: &PhysRange) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }

    pub fn overlaps(&self, other: &PhysRange) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.start < other.end()
            && other.start < self.end()
    }

    /// The range grown outwards to `align` (a power of two) on both ends.
    pub fn align_out(&self, align: u64) -> PhysRange {
        let start = self.start & !(align - 1);
        let end = self.end().saturating_add(align - 1) & !(align - 1);
        PhysRange::new(start, end - start)
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}..{:#x})", self.start, self.end())
    }
}

/// Rounds `value` up to `align` (a power of two); `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// Too many disjoint ranges for the fixed capacity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TooManyRanges;

/// A set of disjoint, sorted ranges with room for `N` of them.
#[derive(Clone, Debug, Default)]
pub struct RangeSet<const N: usize> {
    ranges: Vec<PhysRange, N>,
}

impl<const N: usize> RangeSet<N> {
    pub const fn new() -> Self {
        Self { ranges: Vec::new() }
    }

    pub fn iter(&self) -> impl Iterator<Item = &PhysRange> {
        self.ranges.iter()
    }

    /// The ranges, sorted and disjoint.
    pub fn as_slice(&self) -> &[PhysRange] {
        &self.ranges
    }

    pub fn total_size(&self) -> u64 {
        self.ranges.iter().map(|r| r.size).sum()
    }

    pub fn contains_range(&self, range: &PhysRange) -> bool {
        self.ranges.iter().any(|r| r.contains_range(range))
    }

    pub fn overlaps(&self, range: &PhysRange) -> bool {
        self.ranges.iter().any(|r| r.overlaps(range))
    }

    /// Adds `range`, merging it with any range it touches.
    pub fn add(&mut self, range: PhysRange) -> Result<(), TooManyRanges> {
        if range.is_empty() {
            return Ok(());
        }
        let mut merged = range;
        let mut kept: Vec<PhysRange, N> = Vec::new();
        for r in &self.ranges {
            if r.start <= merged.end() && merged.start <= r.end() {
                let start = r.start.min(merged.start);
                merged = PhysRange::new(start, r.end().max(merged.end()) - start);
            } else {
                // Cannot fail: `kept` holds a subset of `self.ranges`.
                let _ = kept.push(*r);
            }
        }
        let at = kept
            .iter()
            .position(|r| r.start > merged.start)
            .unwrap_or(kept.len());
        kept.insert(at, merged).map_err(|_| TooManyRanges)?;
        self.ranges = kept;
        Ok(())
    }

    /// Removes `range`; a range split in two needs one more slot.
    pub fn remove(&mut self, range: PhysRange) -> Result<(), TooManyRanges> {
        if range.is_empty() {
            return Ok(());
        }
        let mut kept: Vec<PhysRange, N> = Vec::new();
        for r in &self.ranges {
            if !r.overlaps(&range) {
                kept.push(*r).map_err(|_| TooManyRanges)?;
                continue;
            }
            if r.start < range.start {
                kept.push(PhysRange::new(r.start, range.start - r.start))
                    .map_err(|_| TooManyRanges)?;
            }
            if r.end() > range.end() {
                kept.push(PhysRange::new(range.end(), r.end() - range.end()))
                    .map_err(|_| TooManyRanges)?;
            }
        }
        self.ranges = kept;
        Ok(())
    }

    /// The lowest `size`-byte range, aligned to `align`, inside the set and
    /// at or above `min`; the set is not changed.
    pub fn find_free(&self, size: u64, align: u64, min: u64) -> Option<PhysRange> {
        self.ranges.iter().find_map(|r| {
            let start = align_up(r.start.max(min), align)?;
            let candidate = PhysRange::new(start, size);
            (start.checked_add(size)? <= r.end()).then_some(candidate)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> RangeSet<8> {
        let mut s = RangeSet::new();
        for &(start, size) in ranges {
            s.add(PhysRange::new(start, size)).unwrap();
        }
        s
    }

    fn list(s: &RangeSet<8>) -> std::vec::Vec<(u64, u64)> {
        s.iter().map(|r| (r.start, r.size)).collect()
    }

    #[test]
    fn add_merges_touching_and_overlapping_ranges_and_sorts() {
        let s = set(&[
            (0x3000, 0x1000),
            (0x1000, 0x1000),
            (0x2000, 0x1000),
            (0x8000, 0x10),
        ]);
        assert_eq!(list(&s), [(0x1000, 0x3000), (0x8000, 0x10)]);
        let s = set(&[(0x1000, 0x4000), (0x2000, 0x1000)]);
        assert_eq!(list(&s), [(0x1000, 0x4000)]);
    }

    #[test]
    fn remove_splits_trims_and_drops() {
        let mut s = set(&[(0x1000, 0x9000)]);
        s.remove(PhysRange::new(0x3000, 0x1000)).unwrap();
        assert_eq!(list(&s), [(0x1000, 0x2000), (0x4000, 0x6000)]);
        s.remove(PhysRange::new(0x0, 0x1800)).unwrap();
        assert_eq!(list(&s), [(0x1800, 0x1800), (0x4000, 0x6000)]);
        s.remove(PhysRange::new(0x1000, 0x10000)).unwrap();
        assert_eq!(list(&s), []);
    }

    #[test]
    fn remove_reports_capacity_exhaustion() {
        let mut s: RangeSet<1> = RangeSet::new();
        s.add(PhysRange::new(0, 0x10000)).unwrap();
        assert_eq!(s.remove(PhysRange::new(0x1000, 0x1000)), Err(TooManyRanges));
    }

    #[test]
    fn find_free_honours_alignment_and_minimum() {
        let s = set(&[(0x1000, 0x1000), (0x20_1000, 0x40_0000)]);
        assert_eq!(
            s.find_free(0x1000, 0x1000, 0),
            Some(PhysRange::new(0x1000, 0x1000))
        );
        assert_eq!(
            s.find_free(0x20_0000, 0x20_0000, 0),
            Some(PhysRange::new(0x40_0000, 0x20_0000))
        );
        assert_eq!(
            s.find_free(0x1000, 0x1000, 0x30_0000),
            Some(PhysRange::new(0x30_0000, 0x1000))
        );
        assert_eq!(s.find_free(0x80_0000, 0x1000, 0), None);
    }

    #[test]
    fn range_predicates() {
        let r = PhysRange::new(0x1000, 0x1000);
        assert!(r.contains(0x1fff) && !r.contains(0x2000));
        assert!(r.overlaps(&PhysRange::new(0x1fff, 1)));
        assert!(!r.overlaps(&PhysRange::new(0x2000, 1)));
        assert!(!r.overlaps(&PhysRange::new(0x1000, 0)));
        assert_eq!(
            PhysRange::new(0x1234, 0x10).align_out(0x1000),
            PhysRange::new(0x1000, 0x1000)
        );
        assert_eq!(PhysRange::new(u64::MAX - 1, 0x10).end(), u64::MAX);
        assert_eq!(PhysRange::from_bounds(2, 1), None);
    }
}

//! Stage-2 VMIDs for domains.
//!
//! VMID 0 is reserved (never handed out: it is what a zeroed STE would
//! carry). A VMID whose TLB entries might still be cached somewhere is
//! *dirty*: the service frees a domain's VMID clean only after a
//! `CMD_TLBI_S12_VMALL` and `CMD_SYNC` on every SMMU that cached it, and
//! must invalidate a dirty VMID on every SMMU before reusing it. Clean
//! VMIDs are preferred.

/// VMIDs tracked (so at most `MAX_VMIDS - 1` usable, 1..=255).
pub const MAX_VMIDS: usize = 256;
const WORDS: usize = MAX_VMIDS / 64;

/// A bitmap allocator of VMIDs `1..=limit`.
#[derive(Clone, Debug)]
pub struct VmidAllocator {
    used: [u64; WORDS],
    dirty: [u64; WORDS],
    limit: u16,
}

/// A VMID handed out by [`VmidAllocator::alloc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vmid {
    pub vmid: u16,
    /// It must be invalidated on every SMMU before use.
    pub dirty: bool,
}

impl VmidAllocator {
    /// VMIDs `1..=limit` (capped at `MAX_VMIDS - 1`; pass 255 when any
    /// SMMU lacks 16-bit VMIDs).
    pub const fn new(limit: u16) -> Self {
        let cap = (MAX_VMIDS - 1) as u16;
        Self {
            used: [0; WORDS],
            dirty: [0; WORDS],
            limit: if limit < cap { limit } else { cap },
        }
    }

    fn bit(v: u16) -> (usize, u64) {
        (usize::from(v) / 64, 1u64 << (v % 64))
    }

    fn is(set: &[u64; WORDS], v: u16) -> bool {
        let (w, b) = Self::bit(v);
        set.get(w).is_some_and(|x| x & b != 0)
    }

    fn set(set: &mut [u64; WORDS], v: u16, on: bool) {
        let (w, b) = Self::bit(v);
        if let Some(x) = set.get_mut(w) {
            if on {
                *x |= b;
            } else {
                *x &= !b;
            }
        }
    }

    /// The lowest free clean VMID, else the lowest free dirty one.
    pub fn alloc(&mut self) -> Option<Vmid> {
        let free = |a: &Self, v: u16| !Self::is(&a.used, v);
        let pick = (1..=self.limit)
            .find(|&v| free(self, v) && !Self::is(&self.dirty, v))
            .or_else(|| (1..=self.limit).find(|&v| free(self, v)))?;
        Self::set(&mut self.used, pick, true);
        Some(Vmid {
            vmid: pick,
            dirty: Self::is(&self.dirty, pick),
        })
    }

    /// Marks a dirty VMID as invalidated everywhere.
    pub fn mark_clean(&mut self, vmid: u16) {
        Self::set(&mut self.dirty, vmid, false);
    }

    /// Returns `vmid`; `clean` says whether no SMMU can cache it any more.
    pub fn free(&mut self, vmid: u16, clean: bool) {
        if vmid == 0 || vmid > self.limit {
            return;
        }
        Self::set(&mut self.used, vmid, false);
        Self::set(&mut self.dirty, vmid, !clean);
    }

    /// VMIDs handed out.
    pub fn in_use(&self) -> u32 {
        self.used.iter().map(|w| w.count_ones()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_reserved_clean_ones_are_preferred_and_limits_hold() {
        let mut a = VmidAllocator::new(3);
        let v: std::vec::Vec<_> = (0..3).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(
            v.iter().map(|v| v.vmid).collect::<std::vec::Vec<_>>(),
            [1, 2, 3]
        );
        assert!(v.iter().all(|v| !v.dirty));
        assert_eq!(a.alloc(), None);
        a.free(1, false);
        a.free(2, true);
        assert_eq!(
            a.alloc(),
            Some(Vmid {
                vmid: 2,
                dirty: false
            })
        );
        assert_eq!(
            a.alloc(),
            Some(Vmid {
                vmid: 1,
                dirty: true
            })
        );
        a.mark_clean(1);
        a.free(1, true);
        assert_eq!(
            a.alloc(),
            Some(Vmid {
                vmid: 1,
                dirty: false
            })
        );
        assert_eq!(a.in_use(), 3);
        a.free(0, true);
        a.free(4, true);
        assert_eq!(a.in_use(), 3);
        assert_eq!(VmidAllocator::new(u16::MAX).limit, 255);
    }
}

//! What EL1 can see of the hyp's IOMMU state, to show that a refused call
//! changed nothing: the counters of `HYP_STATS` (calls, objects, memory)
//! and `HYP_IOVA_TO_PHYS` at chosen addresses.

use crate::iommu;
use core::fmt;
use smmu_hyp::hypercall::abi::stats;
use smmu_hyp::hypercall::client::Translation;

/// Most (domain, iova) pairs a snapshot translates.
pub const MAX_PROBES: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Successful maps, successful unmaps, refused IOMMU calls.
    pub calls: [u64; 3],
    /// Domains, attached streams, bytes mapped.
    pub objects: [u64; 3],
    /// Table bytes, DMA page references, EL2 pages.
    pub memory: [u64; 3],
    xlate: [Result<Translation, i64>; MAX_PROBES],
    n: usize,
    /// Refused calls the snapshot itself made after reading `calls`
    /// (translations of unmapped addresses).
    pub own_refusals: u64,
}

/// Reads the counters, then translates each of `probes`.
pub fn take(probes: &[(u64, u64)]) -> Snapshot {
    let get = |sel| iommu::stats(sel, 0).unwrap_or([u64::MAX; 3]);
    let calls = get(stats::CALLS);
    let objects = get(stats::OBJECTS);
    let memory = get(stats::MEMORY);
    let mut xlate = [Err(0); MAX_PROBES];
    let mut own_refusals = 0;
    let n = probes.len().min(MAX_PROBES);
    for (slot, &(dom, iova)) in xlate.iter_mut().zip(probes) {
        *slot = iommu::iova_to_phys(dom, iova);
        own_refusals += u64::from(slot.is_err());
    }
    Snapshot {
        calls,
        objects,
        memory,
        xlate,
        n,
        own_refusals,
    }
}

impl Snapshot {
    /// Whether `after` (taken with the same probes) shows the same state,
    /// with exactly `refused` refused calls in between.
    pub fn same_as(&self, after: &Snapshot, refused: u64) -> bool {
        self.calls[..2] == after.calls[..2]
            && after.calls[2] == self.calls[2] + self.own_refusals + refused
            && self.objects == after.objects
            && self.memory == after.memory
            && self.xlate[..self.n] == after.xlate[..after.n]
    }

    /// A short description of what differs from `after` (expecting
    /// `refused` refused calls in between).
    pub fn diff<'a>(&'a self, after: &'a Snapshot, refused: u64) -> Diff<'a> {
        Diff(self, after, refused)
    }
}

pub struct Diff<'a>(&'a Snapshot, &'a Snapshot, u64);

impl fmt::Display for Diff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (self.0, self.1);
        let mut same = true;
        let refused = b.calls[2].wrapping_sub(a.calls[2] + a.own_refusals);
        if a.calls[..2] != b.calls[..2] || refused != self.2 {
            write!(
                f,
                "calls {:?} -> {:?} ({refused} refused); ",
                a.calls, b.calls
            )?;
            same = false;
        }
        for (name, x, y) in [
            ("objects", a.objects, b.objects),
            ("memory", a.memory, b.memory),
        ] {
            if x != y {
                write!(f, "{name} {x:?} -> {y:?}; ")?;
                same = false;
            }
        }
        for i in 0..a.n.min(b.n) {
            if a.xlate[i] != b.xlate[i] {
                write!(f, "probe {i}: {:x?} -> {:x?}; ", a.xlate[i], b.xlate[i])?;
                same = false;
            }
        }
        if same {
            write!(f, "state unchanged, {} refused call(s) counted", self.2)?;
        }
        Ok(())
    }
}

//! A DMA domain of the service: one stage-2 page table, its VMID, the
//! streams attached to it, and the SMMUs whose TLBs may hold its
//! translations. Each lives in a [`DomainSlot`] with its own lock, so
//! calls on different domains never wait for each other.

use crate::pgtable::{PageTable, TableMemory};
use crate::platform::MAX_SMMUS;
use crate::smmu::S2Config;

/// Domain ids: slot index in bits 15:0, the slot's generation (never 0)
/// in bits 47:16, so an id of a freed domain stays invalid after its slot
/// is reused.
pub const SLOT_BITS: u32 = 16;
/// Most domain slots a service can have.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;

/// The id of the domain in `slot` at `generation`.
pub const fn domain_id(slot: usize, generation: u32) -> u64 {
    ((generation as u64) << SLOT_BITS) | slot as u64
}

/// Slot and generation of an id; `None` if it cannot be a domain id.
pub const fn split_id(id: u64) -> Option<(usize, u32)> {
    let generation = id >> SLOT_BITS;
    if generation == 0 || generation > u32::MAX as u64 {
        return None;
    }
    Some(((id & (MAX_SLOTS as u64 - 1)) as usize, generation as u32))
}

/// A live domain.
pub struct Domain<M: TableMemory> {
    pub(crate) pt: PageTable<M>,
    pub(crate) vmid: u16,
    /// Streams attached, per SMMU index.
    pub(crate) streams: [u32; MAX_SMMUS],
    /// Bit `i`: SMMU `i` may cache this VMID's translations (a stream is
    /// attached there, or was and the VMID-wide invalidation after the
    /// last detach failed, or an attach there failed after its STE may
    /// have gone live). Every flush goes to these SMMUs.
    pub(crate) tlb_mask: u32,
    /// Bytes mapped.
    pub(crate) mapped: u64,
}

impl<M: TableMemory> Domain<M> {
    pub(crate) fn new(pt: PageTable<M>, vmid: u16) -> Self {
        Self {
            pt,
            vmid,
            streams: [0; MAX_SMMUS],
            tlb_mask: 0,
            mapped: 0,
        }
    }

    /// Streams attached over all SMMUs.
    pub fn attached(&self) -> u32 {
        self.streams.iter().sum()
    }

    /// The STE fields for this domain.
    pub fn s2_config(&self) -> S2Config {
        s2_config(&self.pt, self.vmid)
    }

    /// The page table (read-only: every change goes through the service).
    pub fn table(&self) -> &PageTable<M> {
        &self.pt
    }

    pub fn vmid(&self) -> u16 {
        self.vmid
    }
}

/// What a slot holds.
pub struct SlotState<M: TableMemory> {
    /// Generation of the current or last domain (0 = never used).
    pub(crate) generation: u32,
    pub(crate) domain: Option<Domain<M>>,
}

/// One domain slot, with its lock. The service takes its slots from the
/// caller (`static DOMAINS: [DomainSlot<_>; N] = [const { DomainSlot::new() }; N]`
/// on the target), so their size never lands on a stack.
pub struct DomainSlot<M: TableMemory>(pub(crate) spin::Mutex<SlotState<M>>);

impl<M: TableMemory> DomainSlot<M> {
    pub const fn new() -> Self {
        Self(spin::Mutex::new(SlotState {
            generation: 0,
            domain: None,
        }))
    }
}

impl<M: TableMemory> Default for DomainSlot<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// The stage-2 STE fields for page table `pt` translated with `vmid`.
pub fn s2_config<M: TableMemory>(pt: &PageTable<M>, vmid: u16) -> S2Config {
    let cfg = pt.config();
    S2Config {
        vmid,
        t0sz: cfg.s2t0sz(),
        sl0: cfg.s2sl0(),
        tg: cfg.s2tg(),
        ps: cfg.s2ps(),
        ttb: pt.root(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_zero_generation_is_invalid() {
        assert_eq!(split_id(domain_id(5, 1)), Some((5, 1)));
        assert_eq!(
            split_id(domain_id(0xffff, u32::MAX)),
            Some((0xffff, u32::MAX))
        );
        assert_eq!(split_id(0), None);
        assert_eq!(split_id(0xffff), None);
        assert_eq!(split_id(u64::MAX), None);
        assert_ne!(domain_id(0, 1), 0);
    }
}

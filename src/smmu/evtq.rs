//! The event queue: the SMMU produces 32-byte fault records, EL2 drains them
//! by polling into the bounded [`FaultLog`].
//!
//! Overflow: when the queue is full the SMMU drops new events and toggles
//! EVENTQ_PROD.OVFLG; software acknowledges by copying it into
//! EVENTQ_CONS.OVACKFLG. Each mismatch seen counts as one overflow episode
//! (the architecture does not say how many events were lost).

use tock_registers::LocalRegisterCopy;

use super::dma::{DmaMemory, DmaRegion};
use super::error::SmmuError;
use super::event::{EVENT_BYTES, Event, EventKind};
use super::fault_log::FaultLog;
use super::hw::Hw;
use super::poll::Clock;
use super::queue::{QueueGeometry, QueueRing};
use super::regs::{EVENTQ_CONS, EVENTQ_PROD, SmmuRegs, offset};

/// Events seen, by the kinds a stage-2-only configuration produces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    pub translation: u64,
    pub addr_size: u64,
    pub access: u64,
    pub permission: u64,
    pub walk_eabt: u64,
    pub bad_streamid: u64,
    pub bad_ste: u64,
    pub ste_fetch: u64,
    pub other: u64,
}

impl EventCounts {
    fn count(&mut self, kind: EventKind) {
        *match kind {
            EventKind::Translation => &mut self.translation,
            EventKind::AddrSize => &mut self.addr_size,
            EventKind::Access => &mut self.access,
            EventKind::Permission => &mut self.permission,
            EventKind::WalkEabt => &mut self.walk_eabt,
            EventKind::BadStreamId => &mut self.bad_streamid,
            EventKind::BadSte => &mut self.bad_ste,
            EventKind::SteFetch => &mut self.ste_fetch,
            _ => &mut self.other,
        } += 1;
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtqStats {
    /// Records drained.
    pub events: u64,
    pub by_kind: EventCounts,
    /// OVFLG/OVACKFLG mismatches seen (events were lost).
    pub overflows: u64,
}

pub struct EventQueue {
    ring: QueueRing,
    /// Our consumer pointer (index and wrap).
    cons: u32,
    /// The OVACKFLG value we write back.
    ovack: bool,
    stats: EvtqStats,
}

impl EventQueue {
    pub(crate) fn new<R, M, C>(hw: &Hw<'_, R, M, C>, log2: u8) -> Result<Self, SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let ring = QueueRing::new(hw, log2, EVENT_BYTES)?;
        hw.hand_to_device_for_writing(&ring.region);
        Ok(Self {
            ring,
            cons: 0,
            ovack: false,
            stats: EvtqStats::default(),
        })
    }

    /// SMMU_EVENTQ_BASE value: address, LOG2SIZE and the write-allocate hint.
    pub fn q_base(&self) -> u64 {
        self.ring.q_base()
    }

    pub fn geometry(&self) -> QueueGeometry {
        self.ring.geo
    }

    pub fn stats(&self) -> EvtqStats {
        self.stats
    }

    pub(crate) fn into_region(self) -> DmaRegion {
        self.ring.region
    }

    /// Forgets our pointers; the caller has disabled the queue and is about
    /// to write zero to EVENTQ_PROD/CONS before re-enabling it.
    pub(crate) fn reset_pointers(&mut self) {
        self.cons = 0;
        self.ovack = false;
    }

    fn cons_value(&self) -> u32 {
        let mut v = LocalRegisterCopy::<u32, EVENTQ_CONS::Register>::new(self.cons);
        v.modify(EVENTQ_CONS::OVACKFLG.val(self.ovack.into()));
        v.get()
    }

    /// Moves up to `max` records into `log`; returns how many. Bounded by
    /// `max` even if the SMMU keeps producing (a fault storm must not keep
    /// EL2 here forever).
    pub(crate) fn drain<R, M, C, const N: usize>(
        &mut self,
        hw: &Hw<'_, R, M, C>,
        log: &mut FaultLog<N>,
        max: usize,
    ) -> usize
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let mut drained = 0;
        loop {
            let prod_reg = LocalRegisterCopy::<u32, EVENTQ_PROD::Register>::new(
                hw.regs.read32(offset::EVENTQ_PROD),
            );
            let overflow = prod_reg.is_set(EVENTQ_PROD::OVFLG);
            let mut ack_needed = false;
            if overflow != self.ovack {
                self.stats.overflows += 1;
                self.ovack = overflow;
                ack_needed = true;
                log::warn!("SMMU: event queue overflowed; events were lost");
            }
            let prod = prod_reg.get() & self.ring.geo.ptr_mask();
            if !self.ring.geo.consistent(prod, self.cons) {
                // PROD cannot be more than a queue ahead of us.
                log::error!(
                    "SMMU: inconsistent EVENTQ_PROD {prod:#x} (cons {:#x})",
                    self.cons
                );
                break;
            }
            let mut batch = 0;
            while self.cons != prod && drained < max {
                let off = self.ring.geo.index(self.cons) as usize * EVENT_BYTES;
                hw.invalidate(&self.ring.region, off, EVENT_BYTES);
                let raw = [
                    self.ring.region.read_u64(off),
                    self.ring.region.read_u64(off + 8),
                    self.ring.region.read_u64(off + 16),
                    self.ring.region.read_u64(off + 24),
                ];
                let event = Event::decode(raw);
                log::debug!("SMMU event: {event}");
                self.stats.events += 1;
                self.stats.by_kind.count(event.kind);
                log.push(event);
                self.cons = self.ring.geo.advance(self.cons, 1);
                drained += 1;
                batch += 1;
            }
            if batch > 0 || ack_needed {
                // Frees the slots (and acknowledges overflow); ordered after
                // the record reads by the MMIO write barrier.
                hw.regs.write32(offset::EVENTQ_CONS, self.cons_value());
            }
            if batch == 0 || drained >= max {
                break;
            }
        }
        drained
    }
}

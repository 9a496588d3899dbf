//! What the IOMMU service needs from an SMMU and from table memory, as two
//! small traits.
//!
//! [`SmmuBackend`] is implemented by the driver ([`Smmu`]) for EL2, and by
//! simple thread-safe mocks in host tests (the driver's auditing fake is
//! single-threaded). [`TableAllocator`] hands each new domain its
//! [`TableMemory`].

use crate::pgtable::{Granule, TableMemory};
use crate::smmu::{
    Clock, Command, DmaMemory, Event, Features, S2Config, Smmu, SmmuError, SmmuRegs,
};

/// Counters of one SMMU, as reported by `HYP_STATS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmmuStats {
    /// TLB invalidation commands issued.
    pub tlbis: u64,
    /// CMD_SYNCs completed.
    pub syncs: u64,
    /// Errors of any kind.
    pub errors: u64,
    /// Fault records logged.
    pub faults_logged: u64,
    /// Fault records dropped because the log was full.
    pub faults_dropped: u64,
    /// Event queue overflows (records lost in hardware).
    pub evtq_overflows: u64,
}

/// One SMMU, as the service drives it. Every method is called with the
/// SMMU's lock held.
pub trait SmmuBackend {
    /// Its features.
    fn features(&self) -> &Features;
    /// StreamIDs below this value exist.
    fn sid_limit(&self) -> u64;
    /// Whether its stream table has two levels.
    fn two_level_strtab(&self) -> bool;
    /// Points `sid` at a stage-2 translation (complete, with its syncs,
    /// when it returns).
    fn attach_s2(&mut self, sid: u32, cfg: &S2Config) -> Result<(), SmmuError>;
    /// Makes `sid` abort again (complete when it returns).
    fn detach(&mut self, sid: u32) -> Result<(), SmmuError>;
    /// Queues invalidation commands without a sync.
    fn queue_invalidations(&mut self, cmds: &[Command]) -> Result<(), SmmuError>;
    /// Issues one CMD_SYNC and waits for every earlier command.
    fn sync(&mut self) -> Result<(), SmmuError>;
    /// Moves new event records to the fault log and returns the oldest
    /// logged one, with whether more are logged after it.
    fn pop_fault(&mut self) -> Result<Option<(Event, bool)>, SmmuError>;
    /// Its counters.
    fn stats(&self) -> SmmuStats;
}

impl<R: SmmuRegs, M: DmaMemory, C: Clock, const L: usize> SmmuBackend for Smmu<R, M, C, L> {
    fn features(&self) -> &Features {
        Smmu::features(self)
    }

    fn sid_limit(&self) -> u64 {
        Smmu::sid_limit(self)
    }

    fn two_level_strtab(&self) -> bool {
        matches!(
            self.stream_table_format(),
            crate::smmu::StreamTableFormat::TwoLevel { .. }
        )
    }

    fn attach_s2(&mut self, sid: u32, cfg: &S2Config) -> Result<(), SmmuError> {
        Smmu::attach_s2(self, sid, cfg).map(|_| ())
    }

    fn detach(&mut self, sid: u32) -> Result<(), SmmuError> {
        Smmu::detach(self, sid).map(|_| ())
    }

    fn queue_invalidations(&mut self, cmds: &[Command]) -> Result<(), SmmuError> {
        Smmu::queue_invalidations(self, cmds)
    }

    fn sync(&mut self) -> Result<(), SmmuError> {
        Smmu::sync(self)
    }

    fn pop_fault(&mut self) -> Result<Option<(Event, bool)>, SmmuError> {
        // Records already logged are returned even if the SMMU is now
        // failing; the error only matters when there is nothing to return.
        let drained = self.drain_events();
        let log = self.fault_log_mut();
        match log.pop() {
            Some(e) => Ok(Some((e, !log.is_empty()))),
            None => drained.map(|_| None),
        }
    }

    fn stats(&self) -> SmmuStats {
        let c = self.counters();
        SmmuStats {
            tlbis: c.tlbis(),
            syncs: c.syncs(),
            errors: c.errors(),
            faults_logged: self.fault_log().recorded(),
            faults_dropped: c.fault_log_dropped,
            evtq_overflows: c.evtq.overflows,
        }
    }
}

/// Where domains get their table memory.
pub trait TableAllocator {
    /// The memory one domain's tables live in.
    type Memory: TableMemory;
    /// Memory for a new domain's tables of `granule`. `coherent` is
    /// whether every SMMU walks tables coherently (otherwise descriptors
    /// must be cleaned to the point of coherency as they are published).
    fn table_memory(&self, granule: Granule, coherent: bool) -> Self::Memory;
}

/// A plain function works as an allocator, e.g.
/// `(|_, coherent| PoolTables { coherent }) as fn(Granule, bool) -> PoolTables`.
impl<M: TableMemory> TableAllocator for fn(Granule, bool) -> M {
    type Memory = M;
    fn table_memory(&self, granule: Granule, coherent: bool) -> M {
        self(granule, coherent)
    }
}

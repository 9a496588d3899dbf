//! The page-table engine's invalidations, issued as SMMUv3 commands.
//!
//! [`SmmuTlb`] implements the engine's [`TlbMaintenance`] for every SMMU a
//! domain is attached to: each invalidation becomes a `CMD_TLBI_S2_IPA`
//! (plain or range form) or a `CMD_TLBI_S12_VMALL` for the domain's VMID,
//! commands are written in batches without syncs, and `sync` ends the
//! operation with exactly one `CMD_SYNC` per SMMU. Only after every SMMU's
//! sync completed does the engine free the tables it unlinked.
//!
//! Generic over [`SmmuBackend`], so it drives the real driver
//! ([`crate::smmu::Smmu`]) and the service's test mocks alike.

use super::backend::SmmuBackend;
use crate::pgtable::{Invalidation, TlbMaintenance};
use crate::smmu::{Command, SmmuError};
use heapless::Vec;

/// Commands held before they are written to the queues.
const BATCH: usize = 32;

/// The SMMUs caching one domain's tables, and the domain's VMID.
pub struct SmmuTlb<'a, 'b, S: SmmuBackend> {
    smmus: &'a mut [&'b mut S],
    vmid: u16,
    pending: Vec<Command, BATCH>,
    /// The first error, reported by `sync` (the engine then keeps its
    /// tables: leaking is safe, freeing a possibly cached table is not).
    error: Option<SmmuError>,
}

impl<'a, 'b, S: SmmuBackend> SmmuTlb<'a, 'b, S> {
    pub fn new(smmus: &'a mut [&'b mut S], vmid: u16) -> Self {
        Self {
            smmus,
            vmid,
            pending: Vec::new(),
            error: None,
        }
    }

    fn command(&self, inv: Invalidation) -> Result<Command, SmmuError> {
        let cmd = match inv {
            Invalidation::Page { ipa, leaf, ttl } => {
                // The TTL hint is part of the range form; the plain form
                // (TG = 0) carries none.
                let _ = ttl;
                Command::tlbi_s2_ipa(self.vmid, ipa & !0xfff, leaf, 0, 0, 0, 0)
            }
            Invalidation::Range {
                base,
                tg,
                scale,
                num,
                ttl,
                leaf,
            } => Command::tlbi_s2_ipa(self.vmid, base, leaf, ttl, tg, scale, num),
            Invalidation::VmidAll => Ok(Command::tlbi_s12_vmall(self.vmid)),
        };
        cmd.map_err(SmmuError::InvalidCommand)
    }

    /// Writes the pending commands to every SMMU's queue, without a sync.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        for smmu in self.smmus.iter_mut() {
            if let Err(e) = smmu.queue_invalidations(&self.pending) {
                self.error.get_or_insert(e);
            }
        }
        self.pending.clear();
    }
}

impl<S: SmmuBackend> TlbMaintenance for SmmuTlb<'_, '_, S> {
    type Error = SmmuError;

    fn range_invalidation(&self) -> bool {
        !self.smmus.is_empty() && self.smmus.iter().all(|s| s.features().ril)
    }

    fn invalidate(&mut self, inv: Invalidation) {
        match self.command(inv) {
            Ok(cmd) => {
                if self.pending.is_full() {
                    self.flush();
                }
                // Cannot fail: flushed above when full.
                let _ = self.pending.push(cmd);
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    fn sync(&mut self) -> Result<(), SmmuError> {
        self.flush();
        for smmu in self.smmus.iter_mut() {
            if let Err(e) = smmu.sync() {
                self.error.get_or_insert(e);
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

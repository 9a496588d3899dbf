//! A DMA domain for the EL2 self-tests (`smmu-hyp-selftest.bin` only): one
//! stage-2 page table, its VMID, and the SMMU whose StreamIDs use it. Every
//! change is complete (tables, invalidation, CMD_SYNC, freed tables) when a
//! method returns, except [`Domain::unmap_without_invalidation`], which
//! exists to show that a missing invalidation is observable and which the
//! production image therefore must not contain.

use super::smmu::{HypSmmu, smmu};
use super::tables::PoolTables;
use crate::iommu::tlb::SmmuTlb;
use crate::pgtable::{
    Config, Error, Granule, PageTable, Prot, StartLevelPolicy, UnmapFlags, Unmapped,
};
use crate::smmu::{S2Config, SmmuError};

/// Why a domain operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DomainError {
    /// No such SMMU, or the hyp does not drive it.
    NoSmmu,
    Table(Error),
    Smmu(SmmuError),
}

impl core::fmt::Display for DomainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSmmu => f.write_str("no such SMMU"),
            Self::Table(e) => write!(f, "page table: {e}"),
            Self::Smmu(e) => write!(f, "SMMU: {e}"),
        }
    }
}

impl From<Error> for DomainError {
    fn from(e: Error) -> Self {
        Self::Table(e)
    }
}

impl From<SmmuError> for DomainError {
    fn from(e: SmmuError) -> Self {
        Self::Smmu(e)
    }
}

pub struct Domain {
    pt: PageTable<PoolTables>,
    vmid: u16,
    smmu: &'static spin::Mutex<HypSmmu>,
}

impl Domain {
    /// A domain with an empty 4 KiB-granule table of `ipa_bits`, translated
    /// by SMMU `smmu_index` with `vmid`. The start level never concatenates
    /// (QEMU's SMMU walks concatenated roots wrongly: `docs/qemu.md`,
    /// defect 1).
    pub fn new(smmu_index: usize, vmid: u16, ipa_bits: u32) -> Result<Self, DomainError> {
        Self::with_policy(
            smmu_index,
            vmid,
            ipa_bits,
            StartLevelPolicy::NoConcatenation,
        )
    }

    /// As [`new`](Self::new), with the start level chosen by `policy`.
    pub fn with_policy(
        smmu_index: usize,
        vmid: u16,
        ipa_bits: u32,
        policy: StartLevelPolicy,
    ) -> Result<Self, DomainError> {
        let smmu = smmu(smmu_index).ok_or(DomainError::NoSmmu)?;
        let (oas, coherent) = {
            let s = smmu.lock();
            (u32::from(s.features().oas_bits), s.features().coherent)
        };
        let cfg = Config::new(Granule::Size4K, ipa_bits, oas.min(48), policy)?;
        let pt = PageTable::new(cfg, PoolTables { coherent })?;
        Ok(Self { pt, vmid, smmu })
    }

    /// The STE fields for this domain.
    pub fn s2_config(&self) -> S2Config {
        crate::iommu::domain::s2_config(&self.pt, self.vmid)
    }

    pub fn attach(&mut self, sid: u32) -> Result<(), DomainError> {
        let cfg = self.s2_config();
        self.smmu.lock().attach_s2(sid, &cfg)?;
        Ok(())
    }

    pub fn detach(&mut self, sid: u32) -> Result<(), DomainError> {
        self.smmu.lock().detach(sid)?;
        Ok(())
    }

    /// Maps `[iova, iova + size)` to `pa`. New mappings need no
    /// invalidation (an SMMU does not cache faults); the barrier makes the
    /// descriptors visible before the caller starts DMA.
    pub fn map(&mut self, iova: u64, pa: u64, size: u64, prot: Prot) -> Result<(), DomainError> {
        self.pt.map(iova, pa, size, prot)?;
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        Ok(())
    }

    /// Unmaps, invalidates and syncs, then frees emptied tables.
    pub fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        flags: UnmapFlags,
    ) -> Result<Unmapped, DomainError> {
        let unmapped = self.pt.unmap(iova, size, flags)?;
        self.flush()?;
        Ok(unmapped)
    }

    /// Self-test only: clears the descriptors but issues no invalidation,
    /// to show that a missing TLBI is observable. [`flush`](Self::flush)
    /// must follow.
    pub fn unmap_without_invalidation(
        &mut self,
        iova: u64,
        size: u64,
    ) -> Result<Unmapped, DomainError> {
        Ok(self.pt.unmap(iova, size, UnmapFlags::EXACT)?)
    }

    /// Issues the pending invalidations with one CMD_SYNC and frees tables.
    pub fn flush(&mut self) -> Result<(), DomainError> {
        let mut guard = self.smmu.lock();
        let mut smmus = [&mut *guard];
        let mut tlb = SmmuTlb::new(&mut smmus, self.vmid);
        self.pt.flush(&mut tlb)?;
        Ok(())
    }

    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.pt.iova_to_phys(iova)
    }

    /// The page-table configuration (start level, concatenation, ...).
    pub fn config(&self) -> &Config {
        self.pt.config()
    }

    pub fn table_bytes(&self) -> u64 {
        self.pt.table_bytes()
    }
}

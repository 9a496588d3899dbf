//! The IOMMU service: one method per IOMMU hypercall, over the SMMU
//! drivers, the page-table engine and the RAM ownership records.
//!
//! Every method validates all of its arguments before it changes anything,
//! in the order `docs/hypercall-abi.md` gives, and an error other than
//! `Smmu` (a failing SMMU) leaves the state exactly as it was. `map` and
//! `unmap` return only once the tables, the invalidations and the
//! `CMD_SYNC`s are complete.
//!
//! Locks, always taken in this order (so no two CPUs can deadlock):
//!
//! 1. the attachment table (attach and detach only);
//! 2. one domain slot (every domain call; calls on different domains run
//!    in parallel);
//! 3. SMMU locks, in ascending index order (one per SMMU command queue,
//!    held only to issue commands and wait for their sync);
//! 4. leaf locks held for a few instructions: the VMID allocator.
//!
//! The ownership records need no lock (per-page atomics). There is no
//! global lock on the map/unmap path.

use core::sync::atomic::{AtomicU64, Ordering};

use super::attach::{Attachments, MAX_ATTACHMENTS, MAX_STREAM_RANGES, StreamRange};
use super::backend::{SmmuBackend, TableAllocator};
use super::domain::{Domain, DomainSlot, MAX_SLOTS, SlotState, domain_id, split_id};
use super::error::IommuError;
use super::prot;
use super::tlb::SmmuTlb;
use super::unmap::unmap_and_release;
use super::vmid::VmidAllocator;
use crate::hypercall::abi::{self, smmu_feat, stats};
use crate::hypercall::client::{self, FaultRecord};
use crate::ownership::{OwnershipTracker, PaClass, PhysPolicy};
use crate::pgtable::{
    Config, Granule, Invalidation, MIN_IPA_BITS, MemType, PageTable, StartLevelPolicy,
    TlbMaintenance,
};
use crate::platform::MAX_SMMUS;
use crate::smmu::{Event, FaultClass, SmmuError};

/// What the service is built from (besides its storage). Both lists are
/// copied; only the SMMU references must outlive the service.
pub struct ServiceConfig<'c, 'a, S> {
    /// The SMMUs by index (device-tree order), `None` for one the hyp
    /// does not drive. These indices are the ABI's SMMU indices.
    pub smmus: &'c [Option<&'a spin::Mutex<S>>],
    /// The StreamIDs EL1 may attach, per SMMU (from `iommu-map`).
    pub streams: &'c [StreamRange],
    /// How domain page tables choose their start level
    /// ([`StartLevelPolicy::NoConcatenation`] on QEMU).
    pub start_level: StartLevelPolicy,
}

/// Why the service could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// More SMMUs than `platform::MAX_SMMUS`.
    TooManySmmus,
    /// More stream ranges than [`MAX_STREAM_RANGES`], or one naming an
    /// SMMU index that does not exist.
    BadStreamRanges,
    /// No domain slots, or more than [`MAX_SLOTS`].
    BadSlots,
}

/// What every driven SMMU can do (domains may be attached to any of them).
#[derive(Clone, Copy, Debug)]
struct Caps {
    /// Smallest output size (capped at 48 bits, the engine's limit).
    oas_bits: u32,
    /// Largest domain IPA size.
    max_ipa_bits: u32,
    gran4k: bool,
    gran16k: bool,
    gran64k: bool,
    /// Every SMMU walks tables coherently.
    coherent: bool,
    /// Per SMMU index: StreamIDs below this exist (0 if not driven).
    sid_limit: [u64; MAX_SMMUS],
    /// Bit per driven SMMU.
    all: u32,
}

impl Caps {
    fn granule_ok(&self, g: Granule) -> bool {
        match g {
            Granule::Size4K => self.gran4k,
            Granule::Size16K => self.gran16k,
            Granule::Size64K => self.gran64k,
        }
    }
}

#[derive(Default)]
struct Counters {
    maps: AtomicU64,
    unmaps: AtomicU64,
    errors: AtomicU64,
    domains: AtomicU64,
    mapped: AtomicU64,
    table_bytes: AtomicU64,
}

/// Makes descriptors written by `map` visible to the SMMU's walker before
/// the caller can start DMA (non-coherent walkers get their clean from
/// `TableMemory::publish`).
#[inline(always)]
fn publish_barrier() {
    #[cfg(target_arch = "aarch64")]
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(Ordering::SeqCst);
}

/// Adds a signed change to a counter.
fn adjust(c: &AtomicU64, before: u64, after: u64) {
    c.fetch_add(after.wrapping_sub(before), Ordering::Relaxed);
}

/// The IOMMU service. See the module docs for the locking rules.
pub struct IommuService<'a, S: SmmuBackend, A: TableAllocator> {
    smmus: heapless::Vec<Option<&'a spin::Mutex<S>>, MAX_SMMUS>,
    streams: heapless::Vec<StreamRange, MAX_STREAM_RANGES>,
    slots: &'a [DomainSlot<A::Memory>],
    attachments: spin::Mutex<Attachments>,
    vmids: spin::Mutex<VmidAllocator>,
    tracker: OwnershipTracker<'a>,
    policy: PhysPolicy,
    tables: A,
    start_level: StartLevelPolicy,
    caps: Caps,
    counters: Counters,
}

type Guard<'g, M> = spin::MutexGuard<'g, SlotState<M>>;

impl<'a, S: SmmuBackend, A: TableAllocator> IommuService<'a, S, A> {
    /// Builds the service.
    ///
    /// * `cfg`: the SMMUs, the StreamIDs EL1 may attach, the start-level
    ///   policy;
    /// * `slots`: one [`DomainSlot`] per domain EL1 may have at once (at
    ///   most 255 are usable: one VMID each);
    /// * `tracker`: RAM ownership, with the hyp's own memory (image, page
    ///   pool) already marked EL2-owned;
    /// * `policy`: the MMIO ranges no device may be given (every SMMU's
    ///   registers, the GIC, the hyp's UART, ...);
    /// * `tables`: where domains get table memory.
    ///
    /// Locks each SMMU once to read its features.
    pub fn new(
        cfg: ServiceConfig<'_, 'a, S>,
        slots: &'a [DomainSlot<A::Memory>],
        tracker: OwnershipTracker<'a>,
        policy: PhysPolicy,
        tables: A,
    ) -> Result<Self, ServiceError> {
        let smmus = heapless::Vec::from_slice(cfg.smmus).map_err(|_| ServiceError::TooManySmmus)?;
        let streams =
            heapless::Vec::from_slice(cfg.streams).map_err(|_| ServiceError::BadStreamRanges)?;
        if cfg.streams.iter().any(|r| r.smmu >= cfg.smmus.len()) {
            return Err(ServiceError::BadStreamRanges);
        }
        if slots.is_empty() || slots.len() > MAX_SLOTS {
            return Err(ServiceError::BadSlots);
        }
        let mut caps = Caps {
            oas_bits: 48,
            max_ipa_bits: 48,
            gran4k: true,
            gran16k: true,
            gran64k: true,
            coherent: true,
            sid_limit: [0; MAX_SMMUS],
            all: 0,
        };
        let mut vmid16 = true;
        for (i, s) in cfg.smmus.iter().enumerate() {
            let Some(s) = s else { continue };
            let s = s.lock();
            let f = s.features();
            let oas = u32::from(f.oas_bits).min(48);
            caps.oas_bits = caps.oas_bits.min(oas);
            caps.max_ipa_bits = caps.max_ipa_bits.min(oas);
            caps.gran4k &= f.gran4k;
            caps.gran16k &= f.gran16k;
            caps.gran64k &= f.gran64k;
            caps.coherent &= f.coherent;
            vmid16 &= f.vmid16;
            if let Some(l) = caps.sid_limit.get_mut(i) {
                *l = s.sid_limit();
            }
            caps.all |= 1 << i;
        }
        // One VMID per domain is enough: dirty ones are invalidated
        // before reuse.
        let hw_limit: usize = if vmid16 { usize::from(u16::MAX) } else { 0xff };
        let vmid_limit = slots.len().min(hw_limit) as u16;
        Ok(Self {
            smmus,
            streams,
            slots,
            attachments: spin::Mutex::new(Attachments::new()),
            vmids: spin::Mutex::new(VmidAllocator::new(vmid_limit)),
            tracker,
            policy,
            tables,
            start_level: cfg.start_level,
            caps,
            counters: Counters::default(),
        })
    }

    /// The RAM ownership records (for ownership changes and checks).
    pub fn tracker(&self) -> &OwnershipTracker<'a> {
        &self.tracker
    }

    /// Counts a refused call (for `HYP_STATS`).
    pub(crate) fn count_error(&self) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// SMMU `idx`: OutOfRange beyond the list, NotFound if not driven.
    fn smmu(&self, idx: u64) -> Result<(usize, &'a spin::Mutex<S>), IommuError> {
        let i = usize::try_from(idx).map_err(|_| IommuError::OutOfRange)?;
        match self.smmus.get(i) {
            None => Err(IommuError::OutOfRange),
            Some(None) => Err(IommuError::NotFound),
            Some(Some(s)) => Ok((i, *s)),
        }
    }

    /// SMMU, StreamID range and allow-list checks shared by attach/detach.
    fn stream(&self, smmu: u64, sid: u64) -> Result<(usize, &'a spin::Mutex<S>, u32), IommuError> {
        let (i, s) = self.smmu(smmu)?;
        let limit = self.caps.sid_limit.get(i).copied().unwrap_or(0);
        let sid32 = u32::try_from(sid).map_err(|_| IommuError::OutOfRange)?;
        if sid >= limit {
            return Err(IommuError::OutOfRange);
        }
        if !self.streams.iter().any(|r| r.contains(i, sid32)) {
            return Err(IommuError::Denied);
        }
        Ok((i, s, sid32))
    }

    /// Locks the slot of domain `id`; NotFound unless it holds that live
    /// domain.
    fn lock_domain(&self, id: u64) -> Result<(usize, Guard<'a, A::Memory>), IommuError> {
        let (idx, generation) = split_id(id).ok_or(IommuError::NotFound)?;
        let slot = self.slots.get(idx).ok_or(IommuError::NotFound)?;
        let guard = slot.0.lock();
        if guard.generation != generation || guard.domain.is_none() {
            return Err(IommuError::NotFound);
        }
        Ok((idx, guard))
    }

    /// Runs `f` with a TLB over the SMMUs in `mask`, locked in ascending
    /// order.
    fn with_tlb<R>(&self, mask: u32, vmid: u16, f: impl FnOnce(&mut SmmuTlb<'_, '_, S>) -> R) -> R {
        let mut guards: heapless::Vec<spin::MutexGuard<'a, S>, MAX_SMMUS> = heapless::Vec::new();
        for (i, s) in self.smmus.iter().enumerate() {
            if let Some(s) = s
                && mask & (1 << i) != 0
            {
                // Cannot fail: at most MAX_SMMUS entries.
                let _ = guards.push(s.lock());
            }
        }
        let mut refs: heapless::Vec<&mut S, MAX_SMMUS> = heapless::Vec::new();
        for g in guards.iter_mut() {
            let _ = refs.push(&mut **g);
        }
        let mut tlb = SmmuTlb::new(&mut refs, vmid);
        f(&mut tlb)
    }

    /// TLBI_S12_VMALL for `vmid` and one CMD_SYNC on every SMMU in `mask`.
    fn invalidate_vmid(&self, mask: u32, vmid: u16) -> Result<(), SmmuError> {
        self.with_tlb(mask, vmid, |tlb| {
            tlb.invalidate(Invalidation::VmidAll);
            tlb.sync()
        })
    }

    /// The byte size of `pgcount` pages of `pgsize` for a domain of `cfg`.
    fn size_of(cfg: &Config, pgsize: u64, pgcount: u64) -> Result<u64, IommuError> {
        if !pgsize.is_power_of_two() || cfg.leaf_sizes() & pgsize == 0 || pgcount == 0 {
            return Err(IommuError::InvalidParameter);
        }
        pgsize
            .checked_mul(pgcount)
            .ok_or(IommuError::InvalidParameter)
    }

    /// `HYP_IOMMU_INFO`: SMMU indices, domain slots, attachment capacity.
    pub fn info(&self) -> client::IommuInfo {
        client::IommuInfo {
            smmus: self.smmus.len() as u64,
            max_domains: self.slots.len().min(255) as u64,
            max_attachments: MAX_ATTACHMENTS as u64,
        }
    }

    /// `HYP_SMMU_INFO`.
    pub fn smmu_info(&self, smmu: u64) -> Result<client::SmmuInfo, IommuError> {
        let (_, s) = self.smmu(smmu)?;
        let s = s.lock();
        let f = s.features();
        let flags = [
            (f.ril, smmu_feat::RIL),
            (f.coherent, smmu_feat::COHERENT),
            (f.vmid16, smmu_feat::VMID16),
            (f.stage1, smmu_feat::STAGE1),
            (f.stage2, smmu_feat::STAGE2),
            (f.hyp, smmu_feat::HYP),
            (s.two_level_strtab(), smmu_feat::TWO_LEVEL_STRTAB),
            (f.btm, smmu_feat::BTM),
            (f.ats, smmu_feat::ATS),
            (f.pri, smmu_feat::PRI),
            (f.msi, smmu_feat::MSI),
            (f.gran4k, smmu_feat::GRAN4K),
            (f.gran16k, smmu_feat::GRAN16K),
            (f.gran64k, smmu_feat::GRAN64K),
        ];
        let features = flags
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |acc, (_, bit)| acc | bit);
        let mut pgsizes = 0;
        for (on, g) in [
            (f.gran4k, Granule::Size4K),
            (f.gran16k, Granule::Size16K),
            (f.gran64k, Granule::Size64K),
        ] {
            if on {
                for level in 1..=3 {
                    if g.leaf_allowed(level) {
                        pgsizes |= 1u64 << g.level_shift(level);
                    }
                }
            }
        }
        let oas = u32::from(f.oas_bits);
        Ok(client::SmmuInfo {
            features,
            pgsizes,
            oas_bits: oas,
            max_ipa_bits: oas.min(48),
            sid_bits: s.sid_limit().trailing_zeros(),
        })
    }

    /// `HYP_DOMAIN_ALLOC`: a new empty stage-2 domain of `ipa_bits` with
    /// granule `granule` bytes (0: 4 KiB).
    pub fn domain_alloc(&self, ipa_bits: u64, granule: u64) -> Result<client::Domain, IommuError> {
        let g = match granule {
            0 | 0x1000 => Granule::Size4K,
            0x4000 => Granule::Size16K,
            0x1_0000 => Granule::Size64K,
            _ => return Err(IommuError::InvalidParameter),
        };
        if !self.caps.granule_ok(g) {
            return Err(IommuError::InvalidParameter);
        }
        let ipa = u32::try_from(ipa_bits)
            .ok()
            .filter(|b| (MIN_IPA_BITS..=self.caps.max_ipa_bits).contains(b))
            .ok_or(IommuError::InvalidParameter)?;
        let cfg = Config::new(g, ipa, self.caps.oas_bits, self.start_level)?;
        for (i, slot) in self.slots.iter().enumerate().take(255) {
            let mut st = slot.0.lock();
            if st.domain.is_some() {
                continue;
            }
            let vmid = self.vmids.lock().alloc().ok_or(IommuError::TooMany)?;
            if vmid.dirty {
                // A failed invalidation left it possibly cached somewhere.
                if let Err(e) = self.invalidate_vmid(self.caps.all, vmid.vmid) {
                    self.vmids.lock().free(vmid.vmid, false);
                    return Err(IommuError::Smmu(e));
                }
                self.vmids.lock().mark_clean(vmid.vmid);
            }
            let pt = match PageTable::new(cfg, self.tables.table_memory(g, self.caps.coherent)) {
                Ok(pt) => pt,
                Err(e) => {
                    self.vmids.lock().free(vmid.vmid, true);
                    return Err(e.into());
                }
            };
            adjust(&self.counters.table_bytes, 0, pt.table_bytes());
            let generation = match st.generation.wrapping_add(1) {
                0 => 1,
                g => g,
            };
            st.generation = generation;
            st.domain = Some(Domain::new(pt, vmid.vmid));
            self.counters.domains.fetch_add(1, Ordering::Relaxed);
            return Ok(client::Domain {
                id: domain_id(i, generation),
                pgsizes: cfg.leaf_sizes(),
                ipa_bits: ipa,
            });
        }
        Err(IommuError::TooMany)
    }

    /// `HYP_DOMAIN_FREE`: refused while a stream is attached. Unmaps
    /// everything (releasing pages after the sync), invalidates the VMID
    /// on every SMMU that may cache it, frees the tables.
    ///
    /// On `Smmu` the domain is gone anyway: its tables and the pages still
    /// mapped in it are leaked (never reused), its VMID is invalidated
    /// again before reuse.
    pub fn domain_free(&self, id: u64) -> Result<(), IommuError> {
        let (_, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        if dom.attached() > 0 {
            return Err(IommuError::Busy);
        }
        let (mask, vmid) = (dom.tlb_mask, dom.vmid);
        let limit = 1u64 << dom.pt.config().ipa_bits();
        // Every table of the domain, including those the unmap below frees,
        // leaves the table-bytes counter.
        let tables = dom.pt.table_bytes();
        let unmapped = unmap_and_release(
            &mut dom.pt,
            0,
            limit,
            &mut |pt| self.with_tlb(mask, vmid, |tlb| pt.flush(tlb)),
            &mut |pa, size| self.tracker.release_after_sync(pa, size),
        );
        let Some(dom) = st.domain.take() else {
            return Err(IommuError::NotFound);
        };
        self.counters.domains.fetch_sub(1, Ordering::Relaxed);
        adjust(&self.counters.mapped, dom.mapped, 0);
        adjust(&self.counters.table_bytes, tables, 0);
        if let Err(stopped) = unmapped {
            // Dropping the table leaks its memory, which is safe.
            self.vmids.lock().free(vmid, false);
            return Err(stopped.error);
        }
        match self.with_tlb(mask, vmid, |tlb| dom.pt.destroy(tlb)) {
            Ok(_memory) => {
                // Every SMMU that ever cached the VMID either got the
                // VMID-wide invalidation of `destroy` (the mask) or one at
                // its last detach.
                self.vmids.lock().free(vmid, true);
                Ok(())
            }
            Err(e) => {
                self.vmids.lock().free(vmid, false);
                Err(IommuError::Smmu(e))
            }
        }
    }

    /// `HYP_ATTACH`: points StreamID `sid` behind SMMU `smmu` at domain
    /// `id`.
    pub fn attach(&self, smmu: u64, sid: u64, id: u64) -> Result<(), IommuError> {
        let (si, s, sid) = self.stream(smmu, sid)?;
        let mut att = self.attachments.lock();
        let (slot, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        if att.find(si, sid).is_some() {
            return Err(IommuError::Exists);
        }
        if att.is_full() {
            return Err(IommuError::TooMany);
        }
        let cfg = dom.s2_config();
        let mut smmu = s.lock();
        match smmu.attach_s2(sid, &cfg) {
            Ok(()) => {}
            Err(e) => {
                let err = IommuError::from(e);
                if matches!(err, IommuError::Smmu(_)) {
                    // The STE may have been live, so the SMMU may hold TLB
                    // entries tagged with the VMID even once the detach
                    // below succeeds: keep the SMMU in the mask so flushes
                    // and the free invalidate the VMID there.
                    dom.tlb_mask |= 1 << si;
                    if smmu.detach(sid).is_err() {
                        // The STE may point at the domain: keep it attached
                        // so the domain cannot be freed under the stream. A
                        // later detach retries.
                        dom.streams[si] += 1;
                        att.insert(si, sid, slot as u16);
                    }
                }
                return Err(err);
            }
        }
        dom.streams[si] += 1;
        dom.tlb_mask |= 1 << si;
        att.insert(si, sid, slot as u16);
        Ok(())
    }

    /// `HYP_DETACH`: makes StreamID `sid` behind SMMU `smmu` abort again.
    pub fn detach(&self, smmu: u64, sid: u64) -> Result<(), IommuError> {
        let (si, s, sid) = self.stream(smmu, sid)?;
        let mut att = self.attachments.lock();
        let slot = att.find(si, sid).ok_or(IommuError::NotFound)?;
        let mut st = self
            .slots
            .get(usize::from(slot))
            .ok_or(IommuError::NotFound)?
            .0
            .lock();
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        s.lock().detach(sid)?;
        att.remove(si, sid);
        let n = &mut dom.streams[si];
        *n = n.saturating_sub(1);
        if *n == 0 && self.invalidate_vmid(1 << si, dom.vmid).is_ok() {
            // No stream on this SMMU uses the VMID any more and it holds no
            // entry for it: later flushes can skip it. If the invalidation
            // failed, flushes keep going there (and free invalidates it).
            dom.tlb_mask &= !(1 << si);
        }
        Ok(())
    }

    /// `HYP_MAP`: maps `pgcount` pages of `pgsize` from `iova` to `pa`.
    /// Returns the bytes mapped.
    pub fn map(
        &self,
        id: u64,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot_bits: u64,
    ) -> Result<u64, IommuError> {
        let (_, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        let prot = prot::decode(prot_bits)?;
        let cfg = *dom.pt.config();
        let size = Self::size_of(&cfg, pgsize, pgcount)?;
        if (iova | pa) & (pgsize - 1) != 0 {
            return Err(IommuError::Unaligned);
        }
        let end = iova.checked_add(size).ok_or(IommuError::InvalidParameter)?;
        if end > 1u64 << cfg.ipa_bits() {
            return Err(IommuError::OutOfRange);
        }
        let pa_end = pa.checked_add(size).ok_or(IommuError::InvalidParameter)?;
        if pa_end > 1u64 << cfg.oas_bits() {
            return Err(IommuError::OutOfRange);
        }
        let ram = match self.policy.classify(&self.tracker, pa, size) {
            PaClass::Forbidden => return Err(IommuError::Denied),
            PaClass::Ram if prot.mem == MemType::Device => {
                return Err(IommuError::InvalidParameter);
            }
            PaClass::Mmio if prot.mem != MemType::Device => {
                return Err(IommuError::InvalidParameter);
            }
            PaClass::Ram => true,
            PaClass::Mmio => false,
        };
        if ram {
            self.tracker.claim_for_dma(pa, size)?;
        }
        let unclaim = || {
            if ram {
                // Never mapped, so no sync is needed before dropping it.
                self.tracker.release_after_sync(pa, size);
            }
        };
        let (mask, vmid) = (dom.tlb_mask, dom.vmid);
        if !dom.pt.gather().is_empty() {
            // Only after a failed flush: retry it before writing.
            if let Err(e) = self.with_tlb(mask, vmid, |tlb| dom.pt.flush(tlb)) {
                unclaim();
                return Err(IommuError::Smmu(e));
            }
        }
        let before = dom.pt.table_bytes();
        if let Err(e) = dom.pt.map(iova, pa, size, prot) {
            unclaim();
            return Err(e.into());
        }
        publish_barrier();
        adjust(&self.counters.table_bytes, before, dom.pt.table_bytes());
        dom.mapped += size;
        self.counters.mapped.fetch_add(size, Ordering::Relaxed);
        self.counters.maps.fetch_add(1, Ordering::Relaxed);
        Ok(size)
    }

    /// `HYP_UNMAP`: unmaps `pgcount` pages of `pgsize` from `iova`.
    ///
    /// On `Smmu` part of the range may be unmapped already; the pages whose
    /// invalidation did not complete stay referenced.
    pub fn unmap(
        &self,
        id: u64,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        flags: u64,
    ) -> Result<client::Unmapped, IommuError> {
        let (_, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        if flags & !abi::unmap::ALL != 0 {
            return Err(IommuError::InvalidParameter);
        }
        let cfg = *dom.pt.config();
        let size = Self::size_of(&cfg, pgsize, pgcount)?;
        if iova & (pgsize - 1) != 0 {
            return Err(IommuError::Unaligned);
        }
        let end = iova.checked_add(size).ok_or(IommuError::InvalidParameter)?;
        if end > 1u64 << cfg.ipa_bits() {
            return Err(IommuError::OutOfRange);
        }
        let whole = flags & abi::unmap::WHOLE_LEAF != 0;
        let (mut start, mut stop) = (iova, end);
        if let Some(l) = dom.pt.leaf_at(iova)
            && l.iova < iova
        {
            if !whole {
                return Err(IommuError::PartialBlock);
            }
            start = l.iova;
        }
        if let Some(l) = dom.pt.leaf_at(end - 1)
            && l.iova + l.size > end
        {
            if !whole {
                return Err(IommuError::PartialBlock);
            }
            stop = l.iova + l.size;
        }
        let (mask, vmid) = (dom.tlb_mask, dom.vmid);
        let before = dom.pt.table_bytes();
        let r = unmap_and_release(
            &mut dom.pt,
            start,
            stop,
            &mut |pt| self.with_tlb(mask, vmid, |tlb| pt.flush(tlb)),
            &mut |pa, size| self.tracker.release_after_sync(pa, size),
        );
        adjust(&self.counters.table_bytes, before, dom.pt.table_bytes());
        let bytes = match r {
            Ok(b) => b,
            Err(stopped) => stopped.bytes,
        };
        dom.mapped -= bytes.min(dom.mapped);
        self.counters.mapped.fetch_sub(bytes, Ordering::Relaxed);
        match r {
            Ok(0) => Err(IommuError::NotFound),
            Ok(bytes) => {
                self.counters.unmaps.fetch_add(1, Ordering::Relaxed);
                Ok(client::Unmapped {
                    bytes,
                    iova: start,
                    size: stop - start,
                })
            }
            Err(stopped) => Err(stopped.error),
        }
    }

    /// `HYP_IOVA_TO_PHYS`.
    pub fn iova_to_phys(&self, id: u64, iova: u64) -> Result<client::Translation, IommuError> {
        let (_, st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_ref() else {
            return Err(IommuError::NotFound);
        };
        if iova >= 1u64 << dom.pt.config().ipa_bits() {
            return Err(IommuError::OutOfRange);
        }
        let leaf = dom.pt.leaf_at(iova).ok_or(IommuError::NotFound)?;
        Ok(client::Translation {
            pa: leaf.pa + (iova - leaf.iova),
            prot: prot::encode(leaf.prot),
            leaf_size: leaf.size,
        })
    }

    /// `HYP_FAULT_POP`: the oldest fault record of SMMU `smmu`.
    pub fn fault_pop(&self, smmu: u64) -> Result<FaultRecord, IommuError> {
        let (_, s) = self.smmu(smmu)?;
        let popped = s.lock().pop_fault();
        match popped {
            Ok(Some((event, more))) => Ok(fault_record(&event, more)),
            Ok(None) => Err(IommuError::NotFound),
            Err(e) => Err(IommuError::Smmu(e)),
        }
    }

    /// `HYP_STATS`.
    pub fn stats(&self, selector: u64, index: u64) -> Result<[u64; 3], IommuError> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        match selector {
            stats::CALLS => Ok([get(&c.maps), get(&c.unmaps), get(&c.errors)]),
            stats::OBJECTS => Ok([
                get(&c.domains),
                self.attachments.lock().len() as u64,
                get(&c.mapped),
            ]),
            stats::MEMORY => Ok([
                get(&c.table_bytes),
                self.tracker.dma_refs(),
                self.tracker.el2_pages(),
            ]),
            stats::SMMU_COMMANDS | stats::SMMU_EVENTS => {
                let (_, s) = self.smmu(index)?;
                let st = s.lock().stats();
                Ok(if selector == stats::SMMU_COMMANDS {
                    [st.tlbis, st.syncs, st.errors]
                } else {
                    [st.faults_logged, st.faults_dropped, st.evtq_overflows]
                })
            }
            _ => Err(IommuError::InvalidParameter),
        }
    }

    /// VMIDs handed out now.
    pub fn vmids_in_use(&self) -> u32 {
        self.vmids.lock().in_use()
    }

    /// Streams attached now (for tests and the log).
    pub fn attached_streams(&self) -> usize {
        self.attachments.lock().len()
    }

    /// Runs `f` on domain `id` (read-only), for self-tests and host tests.
    pub fn with_domain<R>(&self, id: u64, f: impl FnOnce(&Domain<A::Memory>) -> R) -> Option<R> {
        let (_, st) = self.lock_domain(id).ok()?;
        st.domain.as_ref().map(f)
    }
}

/// The ABI record of a decoded event.
fn fault_record(e: &Event, more: bool) -> FaultRecord {
    use abi::fault;
    let mut flags = 0;
    for (on, bit) in [
        (e.rnw, fault::RNW),
        (e.ind, fault::IND),
        (e.pnu, fault::PNU),
        (e.s2, fault::S2),
        (more, fault::MORE),
    ] {
        if on {
            flags |= bit;
        }
    }
    let class: u64 = match e.class {
        FaultClass::Cd => 0,
        FaultClass::TranslationTable => 1,
        FaultClass::Input => 2,
        FaultClass::Reserved => 3,
    };
    FaultRecord {
        sid: e.sid,
        kind: e.kind.id(),
        flags: flags | class << fault::CLASS_SHIFT,
        input_addr: e.input_addr,
        addr2: e.ipa.or(e.fetch_addr),
    }
}

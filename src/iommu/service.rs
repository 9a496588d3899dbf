//! The IOMMU service: domains, attachments, map and unmap, over the SMMU
//! drivers, the page-table engine and the RAM ownership record it shares
//! with every other user of RAM pages (`crate::mem::ownership`).
//!
//! It speaks typed values only ([`super::api`]); a front end decodes its
//! own encoding into them (the hypercalls: `crate::hypercall::calls`).
//! Every semantic check is here, so every front end shares it.
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

use super::api::{
    DomainId, DomainInfo, Fault, IommuInfo, MapEntry, Pages, SmmuInfo, StatsQuery, StreamRef,
    Translation, UnmapMode, Unmapped,
};
use super::attach::{Attachments, MAX_ATTACHMENTS, MAX_STREAM_RANGES, StreamRange};
use super::backend::{SmmuBackend, TableAllocator};
use super::domain::{Domain, DomainSlot, MAX_SLOTS, SlotState, domain_id, split_id};
use super::error::IommuError;
use super::tlb::SmmuTlb;
use super::unmap::unmap_and_release;
use super::vmid::VmidAllocator;
use crate::mem::{OwnershipTracker, PaClass, PhysPolicy};
use crate::pgtable::{
    Config, Granule, Invalidation, MIN_IPA_BITS, MemType, PageTable, Prot, StartLevelPolicy,
    TlbMaintenance, UnmapFlags,
};
use crate::platform::MAX_SMMUS;
use crate::smmu::SmmuError;

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

impl core::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TooManySmmus => "more SMMUs than the service can hold",
            Self::BadStreamRanges => "too many stream ranges, or one naming no SMMU",
            Self::BadSlots => "no domain slots, or too many",
        })
    }
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

/// Most entries [`IommuService::map_all`] takes at once.
pub const MAX_MAP_LIST: usize = 128;

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
    tracker: &'a OwnershipTracker<'a>,
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
    /// * `tracker`: the RAM ownership record, shared with every other user
    ///   of RAM pages, with the hyp's own memory (image, page pool) already
    ///   marked EL2-owned;
    /// * `policy`: the MMIO ranges no device may be given (every SMMU's
    ///   registers, the GIC, the hyp's UART, ...);
    /// * `tables`: where domains get table memory.
    ///
    /// Locks each SMMU once to read its features.
    pub fn new(
        cfg: ServiceConfig<'_, 'a, S>,
        slots: &'a [DomainSlot<A::Memory>],
        tracker: &'a OwnershipTracker<'a>,
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

    /// The RAM ownership record the service shares.
    pub fn tracker(&self) -> &'a OwnershipTracker<'a> {
        self.tracker
    }

    /// Counts a refused call (for `HYP_STATS`).
    pub(crate) fn count_error(&self) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// SMMU `index`: OutOfRange beyond the list, NotFound if not driven.
    fn smmu(&self, index: usize) -> Result<&'a spin::Mutex<S>, IommuError> {
        match self.smmus.get(index) {
            None => Err(IommuError::OutOfRange),
            Some(None) => Err(IommuError::NotFound),
            Some(Some(s)) => Ok(*s),
        }
    }

    /// The first check of every call that names an SMMU (OutOfRange,
    /// NotFound), for a front end whose ABI reports it before an error of
    /// the front end's own decoding.
    pub fn check_smmu(&self, index: usize) -> Result<(), IommuError> {
        self.smmu(index).map(|_| ())
    }

    /// The first check of every call that names a domain (NotFound), for a
    /// front end whose ABI reports it before an error of the front end's
    /// own decoding.
    pub fn check_domain(&self, id: DomainId) -> Result<(), IommuError> {
        self.lock_domain(id).map(|_| ())
    }

    /// SMMU, StreamID range and allow-list checks shared by attach/detach.
    fn stream(&self, stream: StreamRef) -> Result<&'a spin::Mutex<S>, IommuError> {
        let s = self.smmu(stream.smmu)?;
        let limit = self.caps.sid_limit.get(stream.smmu).copied().unwrap_or(0);
        if u64::from(stream.sid) >= limit {
            return Err(IommuError::OutOfRange);
        }
        if !self
            .streams
            .iter()
            .any(|r| r.contains(stream.smmu, stream.sid))
        {
            return Err(IommuError::Denied);
        }
        Ok(s)
    }

    /// Locks the slot of domain `id`; NotFound unless it holds that live
    /// domain.
    fn lock_domain(&self, id: DomainId) -> Result<(usize, Guard<'a, A::Memory>), IommuError> {
        let (idx, generation) = split_id(id.0).ok_or(IommuError::NotFound)?;
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

    /// The byte size of `pages` for a domain of `cfg`.
    fn size_of(cfg: &Config, pages: Pages) -> Result<u64, IommuError> {
        if !pages.size.is_power_of_two() || cfg.leaf_sizes() & pages.size == 0 || pages.count == 0 {
            return Err(IommuError::InvalidParameter);
        }
        pages
            .size
            .checked_mul(pages.count)
            .ok_or(IommuError::InvalidParameter)
    }

    /// SMMU indices, domain slots, attachment capacity.
    pub fn info(&self) -> IommuInfo {
        IommuInfo {
            smmus: self.smmus.len(),
            max_domains: self.slots.len().min(255),
            max_attachments: MAX_ATTACHMENTS,
        }
    }

    /// SMMU `smmu`: its features and what domains can use on it.
    pub fn smmu_info(&self, smmu: usize) -> Result<SmmuInfo, IommuError> {
        let s = self.smmu(smmu)?.lock();
        let f = s.features();
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
        Ok(SmmuInfo {
            features: *f,
            two_level_strtab: s.two_level_strtab(),
            pgsizes,
            oas_bits: oas,
            max_ipa_bits: oas.min(48),
            sid_bits: s.sid_limit().trailing_zeros(),
        })
    }

    /// The page-table configuration of a domain of `ipa_bits` with
    /// granule `g` (what [`domain_alloc`](Self::domain_alloc) would build):
    /// InvalidParameter for a granule some SMMU lacks or a size out of
    /// range.
    pub fn domain_config(&self, ipa_bits: u32, g: Granule) -> Result<Config, IommuError> {
        if !self.caps.granule_ok(g) {
            return Err(IommuError::InvalidParameter);
        }
        let ipa = Some(ipa_bits)
            .filter(|b| (MIN_IPA_BITS..=self.caps.max_ipa_bits).contains(b))
            .ok_or(IommuError::InvalidParameter)?;
        Ok(Config::new(g, ipa, self.caps.oas_bits, self.start_level)?)
    }

    /// A new empty stage-2 domain of `ipa_bits` with granule `granule`.
    pub fn domain_alloc(&self, ipa_bits: u32, g: Granule) -> Result<DomainInfo, IommuError> {
        let cfg = self.domain_config(ipa_bits, g)?;
        let ipa = cfg.ipa_bits();
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
            return Ok(DomainInfo {
                id: DomainId(domain_id(i, generation)),
                pgsizes: cfg.leaf_sizes(),
                ipa_bits: ipa,
            });
        }
        Err(IommuError::TooMany)
    }

    /// Frees domain `id`; refused while a stream is attached. Unmaps
    /// everything (releasing pages after the sync), invalidates the VMID
    /// on every SMMU that may cache it, frees the tables.
    ///
    /// On `Smmu` the domain is gone anyway: its tables and the pages still
    /// mapped in it are leaked (never reused), its VMID is invalidated
    /// again before reuse.
    pub fn domain_free(&self, id: DomainId) -> Result<(), IommuError> {
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

    /// Points `stream` at domain `id`.
    pub fn attach(&self, stream: StreamRef, id: DomainId) -> Result<(), IommuError> {
        let s = self.stream(stream)?;
        let (si, sid) = (stream.smmu, stream.sid);
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

    /// Makes `stream` abort again.
    pub fn detach(&self, stream: StreamRef) -> Result<(), IommuError> {
        let s = self.stream(stream)?;
        let (si, sid) = (stream.smmu, stream.sid);
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

    /// Maps `pages` from `iova` to `pa` with `prot` (which must allow a
    /// read or a write). Returns the bytes mapped.
    pub fn map(
        &self,
        id: DomainId,
        iova: u64,
        pa: u64,
        pages: Pages,
        prot: Prot,
    ) -> Result<u64, IommuError> {
        // `map_all` of one entry, without its loop and undo (the hot path).
        let (_, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        if !prot.read && !prot.write {
            return Err(IommuError::InvalidParameter);
        }
        let size = self.map_one(dom, &MapEntry { iova, pa, pages }, prot)?;
        publish_barrier();
        self.counters.maps.fetch_add(1, Ordering::Relaxed);
        Ok(size)
    }

    /// Maps every entry of `entries` (at most [`MAX_MAP_LIST`]) with
    /// `prot`, in order, under one hold of the domain's lock. All or nothing: if an entry is refused, the
    /// entries before it are unmapped again (invalidated and synced, as any
    /// unmap) and its error is returned, so nothing stays mapped. Returns
    /// the bytes mapped.
    pub fn map_all(
        &self,
        id: DomainId,
        entries: &[MapEntry],
        prot: Prot,
    ) -> Result<u64, IommuError> {
        let (_, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        if !prot.read && !prot.write || entries.len() > MAX_MAP_LIST {
            return Err(IommuError::InvalidParameter);
        }
        let mut total = 0u64;
        for (k, e) in entries.iter().enumerate() {
            match self.map_one(dom, e, prot) {
                Ok(size) => total += size,
                Err(err) => {
                    // Undone under the same lock: nobody saw the domain with
                    // only part of the entries.
                    return Err(self.unmap_entries(dom, &entries[..k]).err().unwrap_or(err));
                }
            }
        }
        publish_barrier();
        self.counters
            .maps
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(total)
    }

    /// One entry of [`map_all`](Self::map_all), without the barrier that
    /// publishes it. Nothing changes when it fails.
    #[inline(always)]
    fn map_one(
        &self,
        dom: &mut Domain<A::Memory>,
        e: &MapEntry,
        prot: Prot,
    ) -> Result<u64, IommuError> {
        let (iova, pa, pages) = (e.iova, e.pa, e.pages);
        let cfg = *dom.pt.config();
        let size = Self::size_of(&cfg, pages)?;
        if (iova | pa) & (pages.size - 1) != 0 {
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
        let ram = match self.policy.classify(self.tracker, pa, size) {
            PaClass::Forbidden => return Err(IommuError::Denied),
            PaClass::Ram if prot.mem == MemType::Device => {
                return Err(IommuError::InvalidParameter);
            }
            PaClass::Mmio | PaClass::Doorbell if prot.mem != MemType::Device => {
                return Err(IommuError::InvalidParameter);
            }
            // An MSI doorbell is written by devices, never read.
            PaClass::Doorbell if prot.read => return Err(IommuError::Denied),
            PaClass::Ram => true,
            PaClass::Mmio | PaClass::Doorbell => false,
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
        adjust(&self.counters.table_bytes, before, dom.pt.table_bytes());
        dom.mapped += size;
        self.counters.mapped.fetch_add(size, Ordering::Relaxed);
        Ok(size)
    }

    /// Unmaps exactly what [`map_one`](Self::map_one) mapped for each of
    /// `done`, with one flush for all of them, then releases their pages.
    /// If the flush fails every descriptor is gone already, the pages stay
    /// referenced (as after a failed unmap) and the invalidation stays
    /// pending, retried before the domain's next map.
    fn unmap_entries(
        &self,
        dom: &mut Domain<A::Memory>,
        done: &[MapEntry],
    ) -> Result<(), IommuError> {
        let size = |e: &MapEntry| e.pages.size * e.pages.count;
        let before = dom.pt.table_bytes();
        let mut bytes = 0u64;
        let mut unmapped = [false; MAX_MAP_LIST];
        let mut stuck = None;
        for (e, gone) in done.iter().zip(unmapped.iter_mut()) {
            // Exactly the leaves `map_one` wrote (their size was checked), so
            // this cannot fail. If it did, the entry would stay mapped with
            // its pages, and the caller must not hear "nothing mapped".
            match dom.pt.unmap(e.iova, size(e), UnmapFlags::EXACT) {
                Ok(u) => {
                    bytes += u.bytes;
                    *gone = true;
                }
                Err(err) => {
                    debug_assert!(false, "undoing a map failed: {err}");
                    stuck = Some(err);
                }
            }
        }
        let (mask, vmid) = (dom.tlb_mask, dom.vmid);
        let flushed = self.with_tlb(mask, vmid, |tlb| dom.pt.flush(tlb));
        adjust(&self.counters.table_bytes, before, dom.pt.table_bytes());
        dom.mapped -= bytes.min(dom.mapped);
        self.counters.mapped.fetch_sub(bytes, Ordering::Relaxed);
        flushed.map_err(IommuError::Smmu)?;
        for (e, _) in done.iter().zip(unmapped).filter(|(_, gone)| *gone) {
            // MMIO and doorbell entries hold no reference: skipped.
            self.tracker.release_after_sync(e.pa, size(e));
        }
        stuck.map_or(Ok(()), |err| Err(err.into()))
    }

    /// Unmaps `pages` from `iova`.
    ///
    /// On `Smmu` part of the range may be unmapped already; the pages whose
    /// invalidation did not complete stay referenced.
    pub fn unmap(
        &self,
        id: DomainId,
        iova: u64,
        pages: Pages,
        mode: UnmapMode,
    ) -> Result<Unmapped, IommuError> {
        let (_, mut st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_mut() else {
            return Err(IommuError::NotFound);
        };
        let cfg = *dom.pt.config();
        let size = Self::size_of(&cfg, pages)?;
        if iova & (pages.size - 1) != 0 {
            return Err(IommuError::Unaligned);
        }
        let end = iova.checked_add(size).ok_or(IommuError::InvalidParameter)?;
        if end > 1u64 << cfg.ipa_bits() {
            return Err(IommuError::OutOfRange);
        }
        let whole = mode == UnmapMode::WholeLeaves;
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
                Ok(Unmapped {
                    bytes,
                    iova: start,
                    size: stop - start,
                })
            }
            Err(stopped) => Err(stopped.error),
        }
    }

    /// Where `iova` leads in domain `id`.
    pub fn iova_to_phys(&self, id: DomainId, iova: u64) -> Result<Translation, IommuError> {
        let (_, st) = self.lock_domain(id)?;
        let Some(dom) = st.domain.as_ref() else {
            return Err(IommuError::NotFound);
        };
        if iova >= 1u64 << dom.pt.config().ipa_bits() {
            return Err(IommuError::OutOfRange);
        }
        let leaf = dom.pt.leaf_at(iova).ok_or(IommuError::NotFound)?;
        Ok(Translation {
            pa: leaf.pa + (iova - leaf.iova),
            prot: leaf.prot,
            leaf_size: leaf.size,
        })
    }

    /// The oldest fault record of SMMU `smmu`; NotFound when there is none.
    pub fn fault_pop(&self, smmu: usize) -> Result<Fault, IommuError> {
        let popped = self.smmu(smmu)?.lock().pop_fault();
        match popped {
            Ok(Some((event, more))) => Ok(Fault { event, more }),
            Ok(None) => Err(IommuError::NotFound),
            Err(e) => Err(IommuError::Smmu(e)),
        }
    }

    /// The three counters of `query`.
    pub fn stats(&self, query: StatsQuery) -> Result<[u64; 3], IommuError> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        match query {
            StatsQuery::Calls => Ok([get(&c.maps), get(&c.unmaps), get(&c.errors)]),
            StatsQuery::Objects => Ok([
                get(&c.domains),
                self.attachments.lock().len() as u64,
                get(&c.mapped),
            ]),
            StatsQuery::Memory => Ok([
                get(&c.table_bytes),
                self.tracker.dma_refs(),
                self.tracker.el2_pages(),
            ]),
            StatsQuery::SmmuCommands { smmu } => {
                let st = self.smmu(smmu)?.lock().stats();
                Ok([st.tlbis, st.syncs, st.errors])
            }
            StatsQuery::SmmuEvents { smmu } => {
                let st = self.smmu(smmu)?.lock().stats();
                Ok([st.faults_logged, st.faults_dropped, st.evtq_overflows])
            }
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
    pub fn with_domain<R>(
        &self,
        id: DomainId,
        f: impl FnOnce(&Domain<A::Memory>) -> R,
    ) -> Option<R> {
        let (_, st) = self.lock_domain(id).ok()?;
        st.domain.as_ref().map(f)
    }
}

//! The virtio-iommu device's [`IommuBackend`] over the typed IOMMU core
//! ([`IommuService`]): the same domains, page-ownership checks, DMA
//! reference counts, TLBI + `CMD_SYNC` and no-split rule that serve the
//! hypercalls. Nothing here decides what EL1 may map; it translates.
//!
//! * Endpoints are the StreamIDs of one SMMU (the one the PCIe
//!   `iommu-map` names), as the device tree's `iommu-map` lists them.
//! * Domains are service domains with the 4 KiB granule (Linux's driver
//!   needs a granule no larger than its page) and the largest IPA size the
//!   SMMU supports; the page size mask is the domain's leaf sizes.
//! * The MSI doorbells (the ITS translation pages the DMA policy allows,
//!   `crate::mem::PhysPolicy::doorbells`) are the reserved regions, of
//!   type MSI: each new domain maps them identity, write-only, device
//!   memory, through [`IommuService::map`], so the same policy check
//!   applies as to any mapping (`docs/virtio-iommu.md`, "The MSI
//!   doorbell").
//! * A virtio "mapping" is a page-table leaf (a page or a block):
//!   [`mapping_crosses`](IommuBackend::mapping_crosses) asks whether the
//!   leaf holding an address starts below it.
//! * SMMU events of the endpoints become virtio faults; events of other
//!   StreamIDs are not this device's and are dropped (counted).

use core::sync::atomic::{AtomicU64, Ordering};

use super::iommu_backend::{
    BackendError, Fault, FaultReason, IommuBackend, Prot, ReservedKind, ReservedRegion,
};
use super::virtio_iommu::MAX_RESERVED;
use crate::iommu::attach::MAX_STREAM_RANGES;
use crate::iommu::{
    DomainId, IommuError, IommuService, Pages, SmmuBackend, StreamRange, StreamRef, TableAllocator,
    UnmapMode,
};
use crate::memmap::PhysRange;
use crate::pgtable::{Granule, MemType, Prot as PtProt};
use crate::smmu::EventKind;

/// The granule of every domain.
pub const GRANULE: Granule = Granule::Size4K;

/// Most SMMU events one [`IommuBackend::pop_fault`] call looks at to find
/// one of this device's (so a flood of foreign events cannot keep a trap
/// busy).
const MAX_SKIPPED_EVENTS: usize = 64;

/// Why a backend could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendSetupError {
    /// The SMMU index names no SMMU the service drives, or one without
    /// the 4 KiB granule.
    NoSmmu,
    /// No StreamID of that SMMU is listed.
    NoEndpoints,
    /// More doorbells than the device reports, or one that is not
    /// page-aligned.
    BadDoorbells,
}

impl core::fmt::Display for BackendSetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoSmmu => "the SMMU is not driven by the hyp",
            Self::NoEndpoints => "no StreamID of the SMMU is listed for EL1",
            Self::BadDoorbells => "too many or unaligned MSI doorbells",
        })
    }
}

/// The virtio-iommu backend over the IOMMU service. See the module docs.
pub struct ServiceBackend<'a, S: SmmuBackend, A: TableAllocator> {
    service: &'a IommuService<'a, S, A>,
    smmu: usize,
    endpoints: heapless::Vec<StreamRange, MAX_STREAM_RANGES>,
    reserved: heapless::Vec<ReservedRegion, MAX_RESERVED>,
    ipa_bits: u32,
    page_size_mask: u64,
    foreign_events: AtomicU64,
}

/// How an IOMMU core error reads in virtio terms when `map` fails.
const fn map_error(e: IommuError) -> BackendError {
    match e {
        // The service says InvalidParameter for a memory type that does
        // not fit the physical range (RAM with MMIO, MMIO without): a range
        // EL1 may not give the way it asked.
        IommuError::InvalidParameter | IommuError::Denied => BackendError::Denied,
        IommuError::Exists => BackendError::Overlap,
        other => common_error(other),
    }
}

/// The errors every call maps the same way.
const fn common_error(e: IommuError) -> BackendError {
    match e {
        IommuError::NotFound => BackendError::NotFound,
        IommuError::OutOfRange => BackendError::OutOfRange,
        IommuError::Unaligned => BackendError::Unaligned,
        IommuError::PartialBlock => BackendError::WouldSplit,
        IommuError::NoMemory | IommuError::TooMany => BackendError::NoMemory,
        IommuError::InvalidParameter | IommuError::Exists => BackendError::Unsupported,
        IommuError::Denied => BackendError::Denied,
        // Busy: an earlier invalidation failed and still cannot complete.
        IommuError::Busy | IommuError::Smmu(_) => BackendError::Hardware,
    }
}

impl<'a, S: SmmuBackend, A: TableAllocator> ServiceBackend<'a, S, A> {
    /// A backend for the endpoints of SMMU `smmu` listed in `streams` (the
    /// device tree's `iommu-map`), with `doorbells` (page-aligned physical
    /// ranges) as its MSI regions.
    pub fn new(
        service: &'a IommuService<'a, S, A>,
        smmu: usize,
        streams: &[StreamRange],
        doorbells: &[PhysRange],
    ) -> Result<Self, BackendSetupError> {
        let info = service
            .smmu_info(smmu)
            .map_err(|_| BackendSetupError::NoSmmu)?;
        let mut endpoints = heapless::Vec::new();
        for r in streams.iter().filter(|r| r.smmu == smmu && r.count > 0) {
            // Cannot fail: at most as many as the service holds.
            let _ = endpoints.push(*r);
        }
        if endpoints.is_empty() {
            return Err(BackendSetupError::NoEndpoints);
        }
        let page = GRANULE.size();
        let mut reserved: heapless::Vec<ReservedRegion, MAX_RESERVED> = heapless::Vec::new();
        for d in doorbells {
            if d.is_empty() || !d.start.is_multiple_of(page) || !d.size.is_multiple_of(page) {
                return Err(BackendSetupError::BadDoorbells);
            }
            reserved
                .push(ReservedRegion {
                    start: d.start,
                    end: d.end() - 1,
                    kind: ReservedKind::Msi,
                })
                .map_err(|_| BackendSetupError::BadDoorbells)?;
        }
        reserved.sort_unstable_by_key(|r| r.start);
        let ipa_bits = info.max_ipa_bits;
        // A domain's leaf sizes: what Linux splits its mappings by.
        let page_size_mask = service
            .domain_config(ipa_bits, GRANULE)
            .map_err(|_| BackendSetupError::NoSmmu)?
            .leaf_sizes();
        Ok(Self {
            service,
            smmu,
            endpoints,
            reserved,
            ipa_bits,
            page_size_mask,
            foreign_events: AtomicU64::new(0),
        })
    }

    /// SMMU events of StreamIDs that are not this device's endpoints,
    /// dropped so far.
    pub fn foreign_events(&self) -> u64 {
        self.foreign_events.load(Ordering::Relaxed)
    }

    fn stream(&self, endpoint: u32) -> StreamRef {
        StreamRef {
            smmu: self.smmu,
            sid: endpoint,
        }
    }

    fn pages(size: u64) -> Pages {
        let page = GRANULE.size();
        Pages {
            size: page,
            count: size / page,
        }
    }
}

/// A virtio fault for an SMMU event (SMMUv3 event types, section 7.3):
/// translation, address size, access flag and permission faults are
/// mapping faults, with their address and direction (their records carry
/// InputAddr and RnW); a StreamID the SMMU has no valid entry for is a
/// domain fault (the endpoint is not attached); the rest are unknown.
/// Only mapping faults say read or write: the other records' RnW is not
/// defined.
fn fault_of(event: &crate::smmu::Event) -> Fault {
    let mapping = matches!(
        event.kind,
        EventKind::Translation | EventKind::AddrSize | EventKind::Access | EventKind::Permission
    );
    let reason = match event.kind {
        _ if mapping => FaultReason::Mapping,
        EventKind::BadStreamId | EventKind::BadSte | EventKind::StreamDisabled => {
            FaultReason::Domain
        }
        _ => FaultReason::Unknown,
    };
    Fault {
        endpoint: event.sid,
        reason,
        read: mapping && event.rnw,
        write: mapping && !event.rnw,
        address: if mapping { event.input_addr } else { None },
    }
}

impl<S: SmmuBackend, A: TableAllocator> IommuBackend for ServiceBackend<'_, S, A> {
    type Domain = DomainId;

    fn page_size_mask(&self) -> u64 {
        self.page_size_mask
    }

    fn input_range(&self) -> (u64, u64) {
        (0, (1u64 << self.ipa_bits) - 1)
    }

    fn max_domains(&self) -> u32 {
        self.service.info().max_domains as u32
    }

    fn reserved_regions(&self) -> &[ReservedRegion] {
        &self.reserved
    }

    fn endpoint_exists(&self, endpoint: u32) -> bool {
        self.endpoints
            .iter()
            .any(|r| r.contains(self.smmu, endpoint))
    }

    fn domain_alloc(&mut self) -> Result<DomainId, BackendError> {
        let domain = self
            .service
            .domain_alloc(self.ipa_bits, GRANULE)
            .map_err(common_error)?
            .id;
        let doorbell = PtProt {
            read: false,
            write: true,
            no_exec: true,
            mem: MemType::Device,
        };
        for r in self.reserved.iter().filter(|r| r.kind == ReservedKind::Msi) {
            let size = r.end - r.start + 1;
            let mapped = self
                .service
                .map(domain, r.start, r.start, Self::pages(size), doorbell);
            if let Err(e) = mapped {
                // Frees what was mapped so far with the domain.
                let _ = self.service.domain_free(domain);
                return Err(map_error(e));
            }
        }
        Ok(domain)
    }

    fn domain_free(&mut self, domain: DomainId) -> Result<(), BackendError> {
        self.service.domain_free(domain).map_err(common_error)
    }

    fn attach(&mut self, domain: DomainId, endpoint: u32) -> Result<(), BackendError> {
        self.service
            .attach(self.stream(endpoint), domain)
            .map_err(common_error)
    }

    fn detach(&mut self, endpoint: u32) -> Result<(), BackendError> {
        self.service
            .detach(self.stream(endpoint))
            .map_err(common_error)
    }

    fn map(
        &mut self,
        domain: DomainId,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    ) -> Result<(), BackendError> {
        if !prot.read && !prot.write {
            return Err(BackendError::Unsupported);
        }
        let prot = PtProt {
            read: prot.read,
            write: prot.write,
            no_exec: true,
            mem: if prot.mmio {
                MemType::Device
            } else {
                MemType::Normal
            },
        };
        self.service
            .map(domain, iova, pa, Self::pages(size), prot)
            .map(|_| ())
            .map_err(map_error)
    }

    fn unmap(&mut self, domain: DomainId, iova: u64, size: u64) -> Result<u64, BackendError> {
        match self
            .service
            .unmap(domain, iova, Self::pages(size), UnmapMode::Exact)
        {
            Ok(u) => Ok(u.bytes),
            // Nothing was mapped there: virtio's UNMAP succeeds.
            Err(IommuError::NotFound) => Ok(0),
            Err(e) => Err(common_error(e)),
        }
    }

    fn mapping_crosses(&self, domain: DomainId, addr: u64) -> bool {
        self.service
            .iova_to_phys(domain, addr)
            .is_ok_and(|t| !addr.is_multiple_of(t.leaf_size))
    }

    fn pop_fault(&mut self) -> Option<Fault> {
        for _ in 0..MAX_SKIPPED_EVENTS {
            let popped = self.service.fault_pop(self.smmu).ok()?;
            if self.endpoint_exists(popped.event.sid) {
                return Some(fault_of(&popped.event));
            }
            self.foreign_events.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

//! virtio-iommu request semantics (virtio 1.2, "IOMMU Device / Device
//! operations") over an [`IommuBackend`].
//!
//! The driver names domains (any id in the advertised domain range) and
//! endpoints (StreamIDs). A domain exists from the first ATTACH naming it
//! until its last endpoint is detached; then its mappings are removed and
//! its backend domain freed (virtio 1.2 "DETACH request"). Bypass is
//! refused: an endpoint without a domain aborts its DMA, and ATTACH with
//! `VIRTIO_IOMMU_ATTACH_F_BYPASS` is refused. See `docs/virtio-iommu.md`
//! for every status and why.
//!
//! Each request is checked in full before anything changes; a refused
//! request changes nothing (a backend `Hardware` failure excepted, which
//! answers `S_DEVERR`). Statuses come from one table,
//! [`status_of`].

use core::fmt;

use super::iommu_backend::{BackendError, IommuBackend, Prot, ReservedRegion};
use super::iommu_wire::{
    ATTACH_F_BYPASS, Config, RESV_MEM_PROPERTY_LEN, Request, Status, feature, map_flags,
    resv_mem_property,
};
use super::mmio_transport::F_VERSION_1;

/// Domain ids the device keeps at most (the advertised domain range is
/// `0..=min(this, backend limit) - 1`).
pub const MAX_DOMAINS: usize = 32;
/// Endpoints attached at most at once.
pub const MAX_ENDPOINTS: usize = 64;
/// Reserved regions the device reports at most.
pub const MAX_RESERVED: usize = 4;
/// `probe_size`: room for every reserved region, rounded up.
pub const PROBE_SIZE: usize = 128;

const _: () = assert!(MAX_RESERVED * RESV_MEM_PROPERTY_LEN <= PROBE_SIZE);

/// The features the device offers: all but `VIRTIO_IOMMU_F_BYPASS`
/// (superseded by `BYPASS_CONFIG`, which the device offers to say that
/// `bypass` is 0).
pub const OFFERED_FEATURES: u64 = F_VERSION_1
    | feature::INPUT_RANGE
    | feature::DOMAIN_RANGE
    | feature::MAP_UNMAP
    | feature::PROBE
    | feature::MMIO
    | feature::BYPASS_CONFIG;

/// Why the backend cannot back a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The page size mask is 0.
    NoPageSize,
    /// The input range is empty or ends at 2^64 - 1 (so that one past
    /// any address the driver names is representable).
    BadInputRange,
    /// The backend allows no domain.
    NoDomains,
    /// More than [`MAX_RESERVED`] reserved regions, or regions that are
    /// unsorted, overlapping, empty or not granule-aligned.
    BadReservedRegions,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoPageSize => "the IOMMU reports no page size",
            Self::BadInputRange => "the IOMMU's input range is not usable",
            Self::NoDomains => "the IOMMU allows no domain",
            Self::BadReservedRegions => "the reserved regions are not usable",
        })
    }
}

/// The one place backend errors become statuses.
pub const fn status_of(e: BackendError) -> Status {
    match e {
        BackendError::NotFound => Status::NoEnt,
        BackendError::Denied => Status::Fault,
        BackendError::OutOfRange | BackendError::Unaligned | BackendError::WouldSplit => {
            Status::Range
        }
        BackendError::Overlap | BackendError::Unsupported => Status::Inval,
        BackendError::NoMemory => Status::NoMem,
        BackendError::Hardware => Status::DevErr,
    }
}

/// A live domain.
#[derive(Clone, Copy, Debug)]
struct Domain<D> {
    backend: D,
    endpoints: u32,
}

/// An attached endpoint.
#[derive(Clone, Copy, Debug)]
struct Attachment {
    endpoint: u32,
    domain: u32,
}

/// The IOMMU's state as the driver sees it, over the backend.
pub struct IommuState<B: IommuBackend> {
    backend: B,
    domains: [Option<Domain<B::Domain>>; MAX_DOMAINS],
    attachments: heapless::Vec<Attachment, MAX_ENDPOINTS>,
    reserved: heapless::Vec<ReservedRegion, MAX_RESERVED>,
    config: Config,
    granule: u64,
}

type Outcome = Result<(), Status>;

/// `Err(status)` unless `ok`.
fn check(ok: bool, status: Status) -> Outcome {
    if ok { Ok(()) } else { Err(status) }
}

impl<B: IommuBackend> IommuState<B> {
    /// Checks what the backend reports and builds the device's state.
    pub fn new(backend: B) -> Result<Self, SetupError> {
        let mask = backend.page_size_mask();
        if mask == 0 {
            return Err(SetupError::NoPageSize);
        }
        let granule = 1u64 << mask.trailing_zeros();
        let input = backend.input_range();
        if input.0 > input.1 || input.1 == u64::MAX {
            return Err(SetupError::BadInputRange);
        }
        let domains = backend.max_domains().min(MAX_DOMAINS as u32);
        if domains == 0 {
            return Err(SetupError::NoDomains);
        }
        let regions = backend.reserved_regions();
        let reserved =
            heapless::Vec::from_slice(regions).map_err(|_| SetupError::BadReservedRegions)?;
        let aligned = |r: &ReservedRegion| {
            r.start.is_multiple_of(granule)
                && r.end
                    .checked_add(1)
                    .is_some_and(|e| e.is_multiple_of(granule))
        };
        if regions.iter().any(|r| r.start > r.end || !aligned(r))
            || regions.windows(2).any(|w| w[0].end >= w[1].start)
        {
            return Err(SetupError::BadReservedRegions);
        }
        Ok(Self {
            backend,
            domains: [None; MAX_DOMAINS],
            attachments: heapless::Vec::new(),
            reserved,
            config: Config {
                page_size_mask: mask,
                input_range: input,
                domain_range: (0, domains - 1),
                probe_size: PROBE_SIZE as u32,
                bypass: 0,
            },
            granule,
        })
    }

    /// The device configuration space.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Endpoints attached now.
    pub fn attached(&self) -> usize {
        self.attachments.len()
    }

    /// Domains alive now.
    pub fn live_domains(&self) -> usize {
        self.domains.iter().flatten().count()
    }

    /// Device reset: every endpoint detached, every domain freed (virtio
    /// 1.2 "Device initialization": after reset no endpoint is attached).
    /// Backend failures are ignored: what they leave mapped stays pinned,
    /// and the endpoints abort either way.
    pub fn reset(&mut self) {
        for a in core::mem::take(&mut self.attachments) {
            let _ = self.backend.detach(a.endpoint);
        }
        for d in self.domains.iter_mut().filter_map(Option::take) {
            let _ = self.backend.domain_free(d.backend);
        }
    }

    /// Executes `req` with the features `negotiated`. A PROBE writes its
    /// properties into `properties` (`PROBE_SIZE` bytes, zero beyond the
    /// properties); other requests leave it alone.
    pub fn handle(&mut self, req: &Request, negotiated: u64, properties: &mut [u8]) -> Status {
        let has = |f: u64| negotiated & f != 0;
        let r = match *req {
            Request::Attach {
                domain,
                endpoint,
                flags,
                reserved_set,
            } => self.attach(
                domain,
                endpoint,
                flags,
                reserved_set,
                has(feature::BYPASS_CONFIG),
            ),
            Request::Detach { domain, endpoint } => self.detach(domain, endpoint),
            Request::Map { .. } | Request::Unmap { .. } if !has(feature::MAP_UNMAP) => {
                Err(Status::Unsupp)
            }
            Request::Map {
                domain,
                virt_start,
                virt_end,
                phys_start,
                flags,
            } => self.map(
                domain,
                virt_start,
                virt_end,
                phys_start,
                flags,
                has(feature::MMIO),
            ),
            Request::Unmap {
                domain,
                virt_start,
                virt_end,
                reserved_set,
            } => self.unmap(domain, virt_start, virt_end, reserved_set),
            Request::Probe { .. } if !has(feature::PROBE) => Err(Status::Unsupp),
            Request::Probe { endpoint } => self.probe(endpoint, properties),
        };
        match r {
            Ok(()) => Status::Ok,
            Err(s) => s,
        }
    }

    fn attachment(&self, endpoint: u32) -> Option<u32> {
        self.attachments
            .iter()
            .find(|a| a.endpoint == endpoint)
            .map(|a| a.domain)
    }

    fn domain(&self, id: u32) -> Option<Domain<B::Domain>> {
        self.domains.get(id as usize).copied().flatten()
    }

    /// Drops one endpoint from domain `id`, freeing the domain with the
    /// last one. A domain the backend refuses to free (a stream attached
    /// to it through the hypercalls, or a failed SMMU) keeps its slot with
    /// no endpoint, so the device never loses track of it: the next
    /// detach of its last endpoint, or a reset, frees it again.
    fn release(&mut self, id: u32) -> Outcome {
        let Some(slot) = self.domains.get_mut(id as usize) else {
            return Ok(());
        };
        let Some(d) = slot.as_mut() else {
            return Ok(());
        };
        d.endpoints = d.endpoints.saturating_sub(1);
        if d.endpoints > 0 {
            return Ok(());
        }
        let backend = d.backend;
        self.backend.domain_free(backend).map_err(status_of)?;
        *slot = None;
        Ok(())
    }

    /// Detaches `endpoint`, which the device has attached. The backend's
    /// `NotFound` means it is detached already (through the hypercalls,
    /// the other front door on the same streams): that is the state the
    /// device wanted, so it is success.
    fn backend_detach(&mut self, endpoint: u32) -> Outcome {
        match self.backend.detach(endpoint) {
            Ok(()) | Err(BackendError::NotFound) => Ok(()),
            Err(e) => Err(status_of(e)),
        }
    }

    fn attach(
        &mut self,
        id: u32,
        endpoint: u32,
        flags: u32,
        reserved_set: bool,
        bypass_negotiated: bool,
    ) -> Outcome {
        let known = if bypass_negotiated {
            ATTACH_F_BYPASS
        } else {
            0
        };
        check(!reserved_set && flags & !known == 0, Status::Inval)?;
        check(id <= self.config.domain_range.1, Status::Range)?;
        check(self.backend.endpoint_exists(endpoint), Status::NoEnt)?;
        let existing = self.domain(id);
        if flags & ATTACH_F_BYPASS != 0 {
            // An existing domain is never a bypass domain; a new one
            // cannot be created.
            return Err(if existing.is_some() {
                Status::Inval
            } else {
                Status::Unsupp
            });
        }
        let old = self.attachment(endpoint);
        if old == Some(id) {
            return Ok(());
        }
        check(old.is_some() || !self.attachments.is_full(), Status::NoMem)?;
        let (target, created) = match existing {
            Some(d) => (d.backend, None),
            None => {
                let d = self.backend.domain_alloc().map_err(status_of)?;
                (d, Some(d))
            }
        };
        let discard = |s: &mut Self| {
            if let Some(c) = created {
                let _ = s.backend.domain_free(c);
            }
        };
        if old.is_some()
            && let Err(e) = self.backend_detach(endpoint)
        {
            discard(self);
            return Err(e);
        }
        if let Err(e) = self.backend.attach(target, endpoint) {
            discard(self);
            if let Some(old_id) = old {
                let restored = self
                    .domain(old_id)
                    .is_some_and(|d| self.backend.attach(d.backend, endpoint).is_ok());
                if !restored {
                    // The endpoint now aborts; keep the tables true to that.
                    self.attachments.retain(|a| a.endpoint != endpoint);
                    let _ = self.release(old_id);
                }
            }
            return Err(status_of(e));
        }
        match created {
            Some(backend) => {
                self.domains[id as usize] = Some(Domain {
                    backend,
                    endpoints: 1,
                })
            }
            None => {
                if let Some(d) = self.domains[id as usize].as_mut() {
                    d.endpoints += 1;
                }
            }
        }
        match old {
            Some(old_id) => {
                if let Some(a) = self.attachments.iter_mut().find(|a| a.endpoint == endpoint) {
                    a.domain = id;
                }
                self.release(old_id)
            }
            None => {
                // Cannot fail: checked for room above.
                let _ = self.attachments.push(Attachment {
                    endpoint,
                    domain: id,
                });
                Ok(())
            }
        }
    }

    fn detach(&mut self, id: u32, endpoint: u32) -> Outcome {
        check(self.backend.endpoint_exists(endpoint), Status::NoEnt)?;
        check(self.attachment(endpoint) == Some(id), Status::Inval)?;
        self.backend_detach(endpoint)?;
        self.attachments.retain(|a| a.endpoint != endpoint);
        self.release(id)
    }

    /// Whether `[start, end]` meets a reserved region.
    fn hits_reserved(&self, start: u64, end: u64) -> bool {
        self.reserved
            .iter()
            .any(|r| r.start <= end && start <= r.end)
    }

    fn map(
        &mut self,
        id: u32,
        virt_start: u64,
        virt_end: u64,
        phys_start: u64,
        flags: u32,
        mmio_negotiated: bool,
    ) -> Outcome {
        let known = if mmio_negotiated {
            map_flags::ALL
        } else {
            map_flags::READ | map_flags::WRITE
        };
        check(flags & !known == 0, Status::Inval)?;
        let domain = self.domain(id).ok_or(Status::NoEnt)?;
        check(virt_start <= virt_end, Status::Inval)?;
        let (lo, hi) = self.config.input_range;
        check(lo <= virt_start && virt_end <= hi, Status::Range)?;
        // Cannot overflow: `virt_end <= hi < 2^64 - 1`.
        let size = virt_end - virt_start + 1;
        check(
            (virt_start | phys_start | size).is_multiple_of(self.granule),
            Status::Range,
        )?;
        check(phys_start.checked_add(size - 1).is_some(), Status::Range)?;
        check(!self.hits_reserved(virt_start, virt_end), Status::Inval)?;
        let prot = Prot {
            read: flags & map_flags::READ != 0,
            write: flags & map_flags::WRITE != 0,
            mmio: flags & map_flags::MMIO != 0,
        };
        self.backend
            .map(domain.backend, virt_start, phys_start, size, prot)
            .map_err(status_of)
    }

    /// Removes every mapping inside `[virt_start, virt_end]`; `S_RANGE`,
    /// removing nothing, if that would split one. The reserved regions'
    /// own mappings are not driver mappings and stay.
    fn unmap(&mut self, id: u32, virt_start: u64, virt_end: u64, reserved_set: bool) -> Outcome {
        check(!reserved_set, Status::Inval)?;
        let domain = self.domain(id).ok_or(Status::NoEnt)?.backend;
        check(virt_start <= virt_end, Status::Inval)?;
        let (lo, hi) = self.config.input_range;
        check(lo <= virt_start && virt_end <= hi, Status::Range)?;
        // `end` cannot overflow: `virt_end <= hi < 2^64 - 1`.
        let end = virt_end + 1;
        let g = self.granule;
        let whole_granules = virt_start.is_multiple_of(g) && end.is_multiple_of(g);
        if whole_granules && !self.hits_reserved(virt_start, virt_end) {
            // The common case (Linux's): one backend call, which refuses
            // to split a mapping itself, removing nothing.
            return self
                .backend
                .unmap(domain, virt_start, end - virt_start)
                .map(|_| ())
                .map_err(status_of);
        }
        // Inside a reserved region only the backend's own mapping can
        // cross an address, and that is not the driver's to split.
        let crosses = |addr: u64| {
            let reserved = self
                .reserved
                .iter()
                .any(|r| r.start < addr && addr <= r.end);
            !reserved && self.backend.mapping_crosses(domain, addr)
        };
        check(!crosses(virt_start) && !crosses(end), Status::Range)?;
        // Mappings are granule-aligned and none crosses an end, so none
        // meets a partial granule at either end: shrink to whole ones.
        let Some(start) = virt_start.checked_next_multiple_of(g) else {
            return Ok(());
        };
        let end = end - end % g;
        // Unmap the gaps between the reserved regions (sorted; each ends
        // below 2^64 - 1, checked at setup).
        let mut cursor = start;
        for r in &self.reserved {
            if cursor >= end || r.start >= end {
                break;
            }
            if r.end < cursor {
                continue;
            }
            if cursor < r.start {
                self.backend
                    .unmap(domain, cursor, r.start - cursor)
                    .map_err(status_of)?;
            }
            cursor = r.end + 1;
        }
        if cursor < end {
            self.backend
                .unmap(domain, cursor, end - cursor)
                .map_err(status_of)?;
        }
        Ok(())
    }

    fn probe(&mut self, endpoint: u32, properties: &mut [u8]) -> Outcome {
        check(self.backend.endpoint_exists(endpoint), Status::NoEnt)?;
        properties.fill(0);
        for (r, out) in self
            .reserved
            .iter()
            .zip(properties.chunks_exact_mut(RESV_MEM_PROPERTY_LEN))
        {
            out.copy_from_slice(&resv_mem_property(r));
        }
        Ok(())
    }
}

//! What the virtio-iommu device needs from the IOMMU core.
//!
//! [`IommuBackend`] is deliberately narrow: a thin adapter implements it
//! over `iommu::IommuService` (the same domains, ownership checks, DMA
//! reference counts, TLBI + `CMD_SYNC` and no-split policy that serve the
//! hypercalls), and host tests implement it with a model. The device calls
//! it with its own lock held, one call at a time.

use core::fmt;

/// Access a mapping allows, and its memory type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    /// Device memory (an MMIO target such as another device's registers).
    pub mmio: bool,
}

/// What a reserved region of IO virtual addresses is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedKind {
    /// Never mappable.
    Reserved,
    /// An MSI doorbell: the backend maps it itself, identity and
    /// write-only, in every domain (virtio 1.2 `RESV_MEM_T_MSI`).
    Msi,
}

/// A range of IO virtual addresses the driver may not map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedRegion {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
    pub kind: ReservedKind,
}

/// Why a fault happened, in virtio's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultReason {
    Unknown,
    /// The endpoint is not attached to a domain.
    Domain,
    /// The address is not mapped, or not with the access attempted.
    Mapping,
}

/// A DMA fault of an endpoint behind this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub endpoint: u32,
    pub reason: FaultReason,
    pub read: bool,
    pub write: bool,
    /// The faulting IO virtual address, when known.
    pub address: Option<u64>,
}

/// Why the backend refused a call. Except for `Hardware`, nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// No such endpoint or domain.
    NotFound,
    /// A physical range EL1 may not give a device: not its own RAM, EL2's
    /// memory, or MMIO the platform protects.
    Denied,
    /// An address beyond what the domain translates or the SMMU outputs.
    OutOfRange,
    /// An address or size that is not a multiple of the granule.
    Unaligned,
    /// `map`: the range overlaps a mapping.
    Overlap,
    /// `unmap`: a mapping crosses an end of the range.
    WouldSplit,
    /// A combination of protections the backend cannot express.
    Unsupported,
    /// Out of domains, table memory, attachment slots or reference counts.
    NoMemory,
    /// The SMMU failed (timeout, command error). The call may be partly
    /// done; what was not invalidated stays referenced (never reused).
    Hardware,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Denied => "physical range denied",
            Self::OutOfRange => "address out of range",
            Self::Unaligned => "unaligned",
            Self::Overlap => "overlaps a mapping",
            Self::WouldSplit => "would split a mapping",
            Self::Unsupported => "unsupported protection",
            Self::NoMemory => "out of resources",
            Self::Hardware => "SMMU failure",
        })
    }
}

/// The IOMMU core, as the virtio-iommu device drives it.
///
/// Every call that changes translations returns only once they are
/// complete: page tables written, TLBs invalidated, `CMD_SYNC` done. A
/// device may use a new mapping as soon as `map` returns and can no longer
/// use a removed one once `unmap`, `detach` or `domain_free` returns.
pub trait IommuBackend {
    /// A domain (a stage-2 IO page table) of the backend.
    type Domain: Copy + Eq + fmt::Debug;

    /// The page sizes it maps; the lowest set bit is the granule.
    fn page_size_mask(&self) -> u64;

    /// The IO virtual addresses a domain translates (inclusive).
    fn input_range(&self) -> (u64, u64);

    /// How many domains this device may have at once.
    fn max_domains(&self) -> u32;

    /// IO virtual address ranges no driver mapping may use, the same for
    /// every endpoint, sorted and not overlapping. The `Msi` ones are
    /// mapped by [`domain_alloc`](Self::domain_alloc).
    fn reserved_regions(&self) -> &[ReservedRegion];

    /// Whether `endpoint` (a StreamID) is behind this device.
    fn endpoint_exists(&self, endpoint: u32) -> bool;

    /// A new domain with nothing mapped but the `Msi` reserved regions
    /// (identity, write-only, device memory).
    fn domain_alloc(&mut self) -> Result<Self::Domain, BackendError>;

    /// Unmaps everything in `domain` and frees it. No endpoint is
    /// attached to it.
    fn domain_free(&mut self, domain: Self::Domain) -> Result<(), BackendError>;

    /// Points `endpoint`, which is attached nowhere, at `domain`.
    fn attach(&mut self, domain: Self::Domain, endpoint: u32) -> Result<(), BackendError>;

    /// Makes `endpoint` abort all DMA again.
    fn detach(&mut self, endpoint: u32) -> Result<(), BackendError>;

    /// Maps `size` bytes from `iova` to `pa` (all granule-aligned, inside
    /// the input range and outside the reserved regions), after checking
    /// that EL1 may give the physical range to a device.
    fn map(
        &mut self,
        domain: Self::Domain,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    ) -> Result<(), BackendError>;

    /// Removes every mapping inside `[iova, iova + size)` (granule-aligned,
    /// outside the reserved regions) and returns the bytes removed (0 if
    /// none). `WouldSplit`, removing nothing, if a mapping crosses either
    /// end.
    fn unmap(&mut self, domain: Self::Domain, iova: u64, size: u64) -> Result<u64, BackendError>;

    /// Whether a mapping of `domain` contains both `addr - 1` and `addr`
    /// (so a range starting at `addr`, or ending just below it, would
    /// split it).
    fn mapping_crosses(&self, domain: Self::Domain, addr: u64) -> bool;

    /// The oldest DMA fault of an endpoint behind this device not yet
    /// reported.
    fn pop_fault(&mut self) -> Option<Fault>;
}

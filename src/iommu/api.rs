//! What the IOMMU core takes and returns: typed values, no ABI bits. A
//! front end (the hypercalls in `crate::hypercall`, a virtio-iommu device
//! later) decodes its own encoding into these and encodes the results back.

use crate::pgtable::Prot;
use crate::smmu::{Event, Features};

/// A domain, as the service named it at allocation. Opaque to callers: an
/// id of a freed domain never names a domain again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainId(pub u64);

/// StreamID `sid` behind SMMU `smmu` (an index into the service's SMMUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRef {
    pub smmu: usize,
    pub sid: u32,
}

/// `count` pages of `size` bytes: the unit of a map or unmap request, as
/// Linux's `map_pages` gives it. The service checks that `size` is one of
/// the domain's page sizes and that the product does not overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pages {
    pub size: u64,
    pub count: u64,
}

/// One mapping of a batch: `pages` from `iova` to `pa` (see
/// [`IommuService::map_all`](super::IommuService::map_all)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub iova: u64,
    pub pa: u64,
    pub pages: Pages,
}

/// How an unmap treats a page or block that its range covers in part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmapMode {
    /// Refuse it (`PartialBlock`): the range must cover whole leaves.
    Exact,
    /// Remove it entirely (blocks are never split); the result says which
    /// range was really covered.
    WholeLeaves,
}

/// The service's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IommuInfo {
    /// SMMU indices (`0..smmus`; an index may be an SMMU the hyp does not
    /// drive).
    pub smmus: usize,
    /// Most domains at once.
    pub max_domains: usize,
    /// Most attached streams at once, over all SMMUs.
    pub max_attachments: usize,
}

/// One SMMU, as domains can use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuInfo {
    pub features: Features,
    /// Its stream table has two levels.
    pub two_level_strtab: bool,
    /// Bit n set: pages or blocks of 2^n bytes, over its granules.
    pub pgsizes: u64,
    pub oas_bits: u32,
    /// Largest domain IPA size usable on it.
    pub max_ipa_bits: u32,
    /// StreamIDs below `1 << sid_bits` exist.
    pub sid_bits: u32,
}

/// A new domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub id: DomainId,
    /// Bit n set: the domain maps pages or blocks of 2^n bytes.
    pub pgsizes: u64,
    pub ipa_bits: u32,
}

/// What an unmap did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// Bytes that were mapped and are not any more.
    pub bytes: u64,
    /// The range covered: the request, or wider with
    /// [`UnmapMode::WholeLeaves`].
    pub iova: u64,
    pub size: u64,
}

/// Where an IOVA leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    /// The protection of the page or block holding it.
    pub prot: Prot,
    /// The size of that page or block.
    pub leaf_size: u64,
}

/// The oldest fault an SMMU recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub event: Event,
    /// More records are waiting after it.
    pub more: bool,
}

/// Which counters [`IommuService::stats`](super::IommuService::stats)
/// returns; each gives three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsQuery {
    /// Successful maps, successful unmaps, refused calls.
    Calls,
    /// Live domains, attached streams, bytes mapped now.
    Objects,
    /// Page-table bytes in use, DMA page references held, RAM pages owned
    /// by EL2.
    Memory,
    /// Of SMMU `smmu`: TLB invalidations, CMD_SYNCs completed, errors.
    SmmuCommands { smmu: usize },
    /// Of SMMU `smmu`: fault records logged, records dropped by the log,
    /// event queue overflows.
    SmmuEvents { smmu: usize },
}

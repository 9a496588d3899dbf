//! A model of the IOMMU core for host tests: domains as interval maps of
//! whole MAP requests (the virtio notion of a mapping, so no-split is
//! exact), physical ranges checked against EL1 RAM and an MMIO allow-list,
//! per-page DMA reference counts, an injectable failure per call, and
//! asserts on every promise the device makes to a backend (never attach
//! an attached endpoint, never free a domain in use, never map or unmap
//! inside a reserved region).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::vec::Vec;

use super::memory::{Event, Journal};
use crate::vdev::iommu_backend::{
    BackendError, Fault, IommuBackend, Prot, ReservedKind, ReservedRegion,
};

pub const GRANULE: u64 = 0x1000;
/// 4 KiB pages, 2 MiB and 1 GiB blocks.
pub const PAGE_SIZE_MASK: u64 = 0x4020_1000;
/// A 48-bit input range.
pub const INPUT_END: u64 = (1 << 48) - 1;
/// The MSI doorbell (QEMU virt's GITS_TRANSLATER frame).
pub const DOORBELL: ReservedRegion = ReservedRegion {
    start: 0x0809_0000,
    end: 0x0809_ffff,
    kind: ReservedKind::Msi,
};
/// A never-mappable window.
pub const HOLE: ReservedRegion = ReservedRegion {
    start: 0xfee0_0000,
    end: 0xfeef_ffff,
    kind: ReservedKind::Reserved,
};
/// Physical RAM EL1 may give devices (the test memory's RAM but EL2's
/// part, and more RAM the device never reads).
pub const DMA_RAM: Range<u64> = 0x8000_0000..0x1_0000_0000;
/// EL2's memory: never mappable.
pub const EL2_RAM: Range<u64> = 0x7000_0000..0x7010_0000;
/// MMIO a device may target (another device's BAR).
pub const PEER_MMIO: Range<u64> = 0x1000_0000..0x1001_0000;
/// Endpoints behind the device.
pub const ENDPOINTS: Range<u32> = 0x8..0x60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Inclusive.
    pub end: u64,
    pub pa: u64,
    pub prot: Prot,
    /// Made by the backend for a reserved MSI region.
    pub reserved: bool,
}

#[derive(Clone, Debug, Default)]
pub struct FakeDomain {
    /// Start -> mapping.
    pub maps: BTreeMap<u64, Mapping>,
}

impl FakeDomain {
    fn containing(&self, addr: u64) -> Option<(u64, Mapping)> {
        let (&s, &m) = self.maps.range(..=addr).next_back()?;
        (addr <= m.end).then_some((s, m))
    }
}

pub struct FakeBackend {
    journal: Journal,
    pub page_size_mask: u64,
    pub input_end: u64,
    pub max_domains: u32,
    pub reserved: Vec<ReservedRegion>,
    next_id: u32,
    pub domains: BTreeMap<u32, FakeDomain>,
    /// Endpoint -> domain.
    pub attached: BTreeMap<u32, u32>,
    /// Page -> DMA references.
    pub refs: BTreeMap<u64, u32>,
    pub faults: VecDeque<Fault>,
    /// The next call of this name fails with this error, changing nothing.
    pub fail: Option<(&'static str, BackendError)>,
    /// Endpoints that do not exist even inside [`ENDPOINTS`].
    pub missing: BTreeSet<u32>,
}

impl FakeBackend {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            page_size_mask: PAGE_SIZE_MASK,
            input_end: INPUT_END,
            max_domains: 16,
            reserved: vec![DOORBELL, HOLE],
            next_id: 1,
            domains: BTreeMap::new(),
            attached: BTreeMap::new(),
            refs: BTreeMap::new(),
            faults: VecDeque::new(),
            fail: None,
            missing: BTreeSet::new(),
        }
    }

    /// Journals call `name` and returns its injected failure, if any.
    fn enter(&mut self, name: &'static str) -> Result<(), BackendError> {
        self.journal.push(Event::Backend(name));
        match self.fail {
            Some((n, e)) if n == name => {
                self.fail = None;
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// The driver's mappings an endpoint reaches: (start, end, pa, prot).
    pub fn mappings_of(&self, endpoint: u32) -> Vec<(u64, u64, u64, Prot)> {
        let Some(d) = self.attached.get(&endpoint) else {
            return Vec::new();
        };
        self.domains[d]
            .maps
            .iter()
            .filter(|(_, m)| !m.reserved)
            .map(|(&s, m)| (s, m.end, m.pa, m.prot))
            .collect()
    }

    /// What `endpoint` reaches at `iova`.
    pub fn translate(&self, endpoint: u32, iova: u64) -> Option<u64> {
        let d = self.attached.get(&endpoint)?;
        let (s, m) = self.domains[d].containing(iova)?;
        Some(m.pa + (iova - s))
    }

    /// Whether every live domain maps the doorbell, identity.
    pub fn doorbells_intact(&self) -> bool {
        self.domains.values().all(|d| {
            d.maps
                .get(&DOORBELL.start)
                .is_some_and(|m| m.reserved && m.end == DOORBELL.end && m.pa == DOORBELL.start)
        })
    }

    pub fn total_refs(&self) -> u64 {
        self.refs.values().map(|&r| u64::from(r)).sum()
    }

    fn add_refs(&mut self, pa: u64, size: u64, delta: i32) {
        let mut page = pa;
        while page < pa + size {
            let r = self.refs.entry(page).or_insert(0);
            *r = r.checked_add_signed(delta).expect("refcount underflow");
            if *r == 0 {
                self.refs.remove(&page);
            }
            page += GRANULE;
        }
    }

    /// The device never maps or unmaps inside a reserved region.
    fn assert_outside_reserved(&self, start: u64, end: u64) {
        let hit = self
            .reserved
            .iter()
            .find(|r| r.start <= end && start <= r.end);
        assert!(hit.is_none(), "{start:#x}..={end:#x} meets {hit:?}");
    }

    fn remove(&mut self, d: u32, start: u64) {
        let m = self
            .domains
            .get_mut(&d)
            .unwrap()
            .maps
            .remove(&start)
            .unwrap();
        if !m.reserved && !m.prot.mmio {
            self.add_refs(m.pa, m.end - start + 1, -1);
        }
    }
}

impl IommuBackend for FakeBackend {
    type Domain = u32;

    fn page_size_mask(&self) -> u64 {
        self.page_size_mask
    }

    fn input_range(&self) -> (u64, u64) {
        (0, self.input_end)
    }

    fn max_domains(&self) -> u32 {
        self.max_domains
    }

    fn reserved_regions(&self) -> &[ReservedRegion] {
        &self.reserved
    }

    fn endpoint_exists(&self, endpoint: u32) -> bool {
        ENDPOINTS.contains(&endpoint) && !self.missing.contains(&endpoint)
    }

    fn domain_alloc(&mut self) -> Result<u32, BackendError> {
        self.enter("domain_alloc")?;
        if self.domains.len() >= 24 {
            return Err(BackendError::NoMemory);
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut d = FakeDomain::default();
        for r in self.reserved.iter().filter(|r| r.kind == ReservedKind::Msi) {
            d.maps.insert(
                r.start,
                Mapping {
                    end: r.end,
                    pa: r.start,
                    prot: Prot {
                        read: false,
                        write: true,
                        mmio: true,
                    },
                    reserved: true,
                },
            );
        }
        self.domains.insert(id, d);
        Ok(id)
    }

    fn domain_free(&mut self, domain: u32) -> Result<(), BackendError> {
        assert!(
            !self.attached.values().any(|&d| d == domain),
            "domain {domain} freed while attached"
        );
        self.enter("domain_free")?;
        let starts: Vec<u64> = self.domains[&domain].maps.keys().copied().collect();
        for s in starts {
            self.remove(domain, s);
        }
        self.domains.remove(&domain);
        Ok(())
    }

    fn attach(&mut self, domain: u32, endpoint: u32) -> Result<(), BackendError> {
        assert!(
            self.domains.contains_key(&domain),
            "attach to unknown domain"
        );
        assert!(
            !self.attached.contains_key(&endpoint),
            "endpoint {endpoint:#x} attached twice"
        );
        self.enter("attach")?;
        if !self.endpoint_exists(endpoint) {
            return Err(BackendError::NotFound);
        }
        self.attached.insert(endpoint, domain);
        Ok(())
    }

    fn detach(&mut self, endpoint: u32) -> Result<(), BackendError> {
        assert!(
            self.attached.contains_key(&endpoint),
            "detach of a detached endpoint"
        );
        self.enter("detach")?;
        self.attached.remove(&endpoint);
        Ok(())
    }

    fn map(
        &mut self,
        domain: u32,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    ) -> Result<(), BackendError> {
        let end = iova + size - 1;
        self.assert_outside_reserved(iova, end);
        assert!(end <= self.input_end, "map beyond the input range");
        self.enter("map")?;
        if !(iova | pa | size).is_multiple_of(GRANULE) {
            return Err(BackendError::Unaligned);
        }
        if !prot.read && !prot.write {
            return Err(BackendError::Unsupported);
        }
        let pa_range = pa..pa + size;
        let allowed = if prot.mmio { &PEER_MMIO } else { &DMA_RAM };
        if pa_range.start < allowed.start || pa_range.end > allowed.end {
            return Err(BackendError::Denied);
        }
        let d = &self.domains[&domain];
        if d.maps
            .range(..=end)
            .next_back()
            .is_some_and(|(_, m)| m.end >= iova)
        {
            return Err(BackendError::Overlap);
        }
        if !prot.mmio {
            self.add_refs(pa, size, 1);
        }
        self.domains.get_mut(&domain).unwrap().maps.insert(
            iova,
            Mapping {
                end,
                pa,
                prot,
                reserved: false,
            },
        );
        Ok(())
    }

    fn unmap(&mut self, domain: u32, iova: u64, size: u64) -> Result<u64, BackendError> {
        let end = iova + size - 1;
        self.assert_outside_reserved(iova, end);
        assert!((iova | size).is_multiple_of(GRANULE), "unaligned unmap");
        self.enter("unmap")?;
        let d = &self.domains[&domain];
        if self.mapping_crosses(domain, iova)
            || end
                .checked_add(1)
                .is_some_and(|e| self.mapping_crosses(domain, e))
        {
            return Err(BackendError::WouldSplit);
        }
        let starts: Vec<u64> = d.maps.range(iova..=end).map(|(&s, _)| s).collect();
        let mut bytes = 0;
        for s in starts {
            bytes += self.domains[&domain].maps[&s].end - s + 1;
            self.remove(domain, s);
        }
        Ok(bytes)
    }

    fn mapping_crosses(&self, domain: u32, addr: u64) -> bool {
        self.domains[&domain]
            .containing(addr)
            .is_some_and(|(s, _)| s < addr)
    }

    fn pop_fault(&mut self) -> Option<Fault> {
        self.faults.pop_front()
    }
}

//! The IOMMU hypercalls served by the IOMMU core: registers decoded into
//! the core's types ([`crate::iommu::api`]), results and errors encoded
//! back into registers. Every semantic check is the core's; what is here
//! is the ABI's encoding, and the order in which the ABI reports a
//! decoding error next to the core's checks (`docs/hypercall-abi.md`).

use super::abi::{self, fault, map_list, smmu_feat, stats, unmap};
use super::client::FaultRecord;
use super::{CallResult, IommuCalls, prot, status};
use crate::iommu::api::{DomainId, MapEntry, Pages, SmmuInfo, StatsQuery, StreamRef, UnmapMode};
use crate::iommu::{IommuError, IommuService, MAX_MAP_LIST, SmmuBackend, TableAllocator};
use crate::pgtable::Granule;
use crate::smmu::{Event, FaultClass};
use crate::vdev::guest_memory::{GuestMemError, GuestMemory};

/// An SMMU index from a register (one beyond every list if it does not fit).
fn smmu_index(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// A domain granule from `HYP_DOMAIN_ALLOC`'s x2 (0 means 4 KiB).
fn granule(bytes: u64) -> Result<Granule, IommuError> {
    match bytes {
        0 | 0x1000 => Ok(Granule::Size4K),
        0x4000 => Ok(Granule::Size16K),
        0x1_0000 => Ok(Granule::Size64K),
        _ => Err(IommuError::InvalidParameter),
    }
}

/// `HYP_UNMAP`'s flags.
fn unmap_mode(flags: u64) -> Result<UnmapMode, IommuError> {
    if flags & !unmap::ALL != 0 {
        return Err(IommuError::InvalidParameter);
    }
    Ok(if flags & unmap::WHOLE_LEAF != 0 {
        UnmapMode::WholeLeaves
    } else {
        UnmapMode::Exact
    })
}

/// `HYP_STATS`'s selector and SMMU index.
fn stats_query(selector: u64, smmu: u64) -> Result<StatsQuery, IommuError> {
    let smmu = smmu_index(smmu);
    Ok(match selector {
        stats::CALLS => StatsQuery::Calls,
        stats::OBJECTS => StatsQuery::Objects,
        stats::MEMORY => StatsQuery::Memory,
        stats::SMMU_COMMANDS => StatsQuery::SmmuCommands { smmu },
        stats::SMMU_EVENTS => StatsQuery::SmmuEvents { smmu },
        _ => return Err(IommuError::InvalidParameter),
    })
}

/// `HYP_SMMU_INFO`'s x1 feature bits.
fn feature_bits(i: &SmmuInfo) -> u64 {
    let f = &i.features;
    [
        (f.ril, smmu_feat::RIL),
        (f.coherent, smmu_feat::COHERENT),
        (f.vmid16, smmu_feat::VMID16),
        (f.stage1, smmu_feat::STAGE1),
        (f.stage2, smmu_feat::STAGE2),
        (f.hyp, smmu_feat::HYP),
        (i.two_level_strtab, smmu_feat::TWO_LEVEL_STRTAB),
        (f.btm, smmu_feat::BTM),
        (f.ats, smmu_feat::ATS),
        (f.pri, smmu_feat::PRI),
        (f.msi, smmu_feat::MSI),
        (f.gran4k, smmu_feat::GRAN4K),
        (f.gran16k, smmu_feat::GRAN16K),
        (f.gran64k, smmu_feat::GRAN64K),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, bit)| acc | bit)
}

/// The ABI record of a decoded event.
fn fault_record(e: &Event, more: bool) -> FaultRecord {
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

const _: () = assert!(map_list::MAX_ENTRIES as usize <= MAX_MAP_LIST);

/// `HYP_MAP_LIST`'s `count` entries at `list`, copied out of EL1's memory
/// before any is used (EL1 may rewrite the list meanwhile).
fn read_map_list(
    el1: &dyn GuestMemory,
    list: u64,
    count: u64,
) -> Result<heapless::Vec<MapEntry, { map_list::MAX_ENTRIES as usize }>, IommuError> {
    if count == 0 || count > map_list::MAX_ENTRIES || !list.is_multiple_of(8) {
        return Err(IommuError::InvalidParameter);
    }
    let mut entries = heapless::Vec::new();
    for k in 0..count {
        let mut raw = [0u8; map_list::ENTRY_BYTES as usize];
        let at = list
            .checked_add(k * map_list::ENTRY_BYTES)
            .ok_or(IommuError::InvalidParameter)?;
        el1.read(at, &mut raw).map_err(|e| match e {
            GuestMemError::NotEl1Memory { .. } => IommuError::Denied,
            GuestMemError::Wraps { .. } => IommuError::InvalidParameter,
        })?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&raw[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let entry = MapEntry {
            iova: word(0),
            pa: word(1),
            pages: Pages {
                size: word(2),
                count: word(3),
            },
        };
        // Cannot fail: `count` is at most the capacity.
        let _ = entries.push(entry);
    }
    Ok(entries)
}

/// x1..x3 of a result, or its status code; refused calls are counted
/// (`HYP_STATS`) and SMMU failures logged.
fn reply<S: SmmuBackend, A: TableAllocator, T>(
    svc: &IommuService<'_, S, A>,
    r: Result<T, IommuError>,
    regs: impl FnOnce(T) -> [u64; 3],
) -> CallResult {
    match r {
        Ok(v) => Ok(regs(v)),
        Err(e) => {
            if let IommuError::Smmu(cause) = e {
                log::warn!("iommu: SMMU error: {cause}");
            }
            svc.count_error();
            Err(status::code(e))
        }
    }
}

/// The stream of x1 (SMMU index) and x2 (StreamID). StreamIDs have at most
/// 32 bits; a wider one is OUT_OF_RANGE, reported after the SMMU index's
/// own checks as the ABI orders them.
fn stream<S: SmmuBackend, A: TableAllocator>(
    svc: &IommuService<'_, S, A>,
    smmu: u64,
    sid: u64,
) -> Result<StreamRef, IommuError> {
    let smmu = smmu_index(smmu);
    match u32::try_from(sid) {
        Ok(sid) => Ok(StreamRef { smmu, sid }),
        Err(_) => Err(svc.check_smmu(smmu).err().unwrap_or(IommuError::OutOfRange)),
    }
}

/// A decoding error of a call on domain `id`: the ABI reports an unknown
/// domain first.
fn after_domain<S: SmmuBackend, A: TableAllocator>(
    svc: &IommuService<'_, S, A>,
    id: DomainId,
    e: IommuError,
) -> IommuError {
    svc.check_domain(id).err().unwrap_or(e)
}

impl<S: SmmuBackend, A: TableAllocator> IommuCalls for IommuService<'_, S, A> {
    fn iommu_info(&self) -> CallResult {
        let i = self.info();
        Ok([
            i.smmus as u64,
            i.max_domains as u64,
            i.max_attachments as u64,
        ])
    }

    fn smmu_info(&self, smmu: u64) -> CallResult {
        reply(self, IommuService::smmu_info(self, smmu_index(smmu)), |i| {
            [
                feature_bits(&i),
                i.pgsizes,
                abi::smmu_info::pack(i.oas_bits, i.max_ipa_bits, i.sid_bits),
            ]
        })
    }

    fn domain_alloc(&self, ipa_bits: u64, granule_bytes: u64) -> CallResult {
        // An IPA size that does not fit 32 bits is as unsupported as 49.
        let ipa_bits = u32::try_from(ipa_bits).unwrap_or(u32::MAX);
        let r = granule(granule_bytes).and_then(|g| IommuService::domain_alloc(self, ipa_bits, g));
        reply(self, r, |d| [d.id.0, d.pgsizes, u64::from(d.ipa_bits)])
    }

    fn domain_free(&self, domain: u64) -> CallResult {
        reply(
            self,
            IommuService::domain_free(self, DomainId(domain)),
            |()| [0; 3],
        )
    }

    fn attach(&self, smmu: u64, sid: u64, domain: u64) -> CallResult {
        let r =
            stream(self, smmu, sid).and_then(|s| IommuService::attach(self, s, DomainId(domain)));
        reply(self, r, |()| [0; 3])
    }

    fn detach(&self, smmu: u64, sid: u64) -> CallResult {
        let r = stream(self, smmu, sid).and_then(|s| IommuService::detach(self, s));
        reply(self, r, |()| [0; 3])
    }

    fn map(
        &self,
        domain: u64,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot_bits: u64,
    ) -> CallResult {
        let id = DomainId(domain);
        let pages = Pages {
            size: pgsize,
            count: pgcount,
        };
        let r = prot::decode(prot_bits)
            .map_err(|e| after_domain(self, id, e))
            .and_then(|p| IommuService::map(self, id, iova, pa, pages, p));
        reply(self, r, |bytes| [bytes, 0, 0])
    }

    fn unmap(&self, domain: u64, iova: u64, pgsize: u64, pgcount: u64, flags: u64) -> CallResult {
        let id = DomainId(domain);
        let pages = Pages {
            size: pgsize,
            count: pgcount,
        };
        let r = unmap_mode(flags)
            .map_err(|e| after_domain(self, id, e))
            .and_then(|mode| IommuService::unmap(self, id, iova, pages, mode));
        reply(self, r, |u| [u.bytes, u.iova, u.size])
    }

    fn map_list(
        &self,
        domain: u64,
        list: u64,
        count: u64,
        prot_bits: u64,
        el1: &dyn GuestMemory,
    ) -> CallResult {
        let id = DomainId(domain);
        // The prot checks come before the list's, as the ABI orders them.
        let r = prot::decode(prot_bits)
            .and_then(|p| match p.read || p.write {
                true => Ok(p),
                false => Err(IommuError::InvalidParameter),
            })
            .and_then(|p| Ok((p, read_map_list(el1, list, count)?)))
            .map_err(|e| after_domain(self, id, e))
            .and_then(|(p, entries)| IommuService::map_all(self, id, &entries, p));
        reply(self, r, |bytes| [bytes, 0, 0])
    }

    fn iova_to_phys(&self, domain: u64, iova: u64) -> CallResult {
        reply(
            self,
            IommuService::iova_to_phys(self, DomainId(domain), iova),
            |t| [t.pa, prot::encode(t.prot), t.leaf_size],
        )
    }

    fn fault_pop(&self, smmu: u64) -> CallResult {
        reply(self, IommuService::fault_pop(self, smmu_index(smmu)), |f| {
            fault_record(&f.event, f.more).pack()
        })
    }

    fn stats(&self, selector: u64, index: u64) -> CallResult {
        let r = stats_query(selector, index).and_then(|q| IommuService::stats(self, q));
        reply(self, r, |s| s)
    }
}

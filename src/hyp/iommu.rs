//! The IOMMU service behind the hypercalls, built once at boot.

use super::smmu::{HypSmmu, smmu};
use super::tables::PoolTables;
use crate::dt::el1_tree::PvIommu;
use crate::iommu::api::StatsQuery;
use crate::iommu::attach::MAX_STREAM_RANGES;
use crate::iommu::{DomainSlot, IommuService, ServiceConfig, StreamRange};
use crate::mem::PhysPolicy;
use crate::pgtable::{Granule, StartLevelPolicy};
use crate::platform::{MAX_SMMUS, Platform};

/// Table memory for domains: pages from the hyp's pool.
pub type Tables = fn(Granule, bool) -> PoolTables;
pub type Service = IommuService<'static, HypSmmu, Tables>;

/// Domains EL1 may have at once.
const DOMAINS: usize = 32;
static SLOTS: [DomainSlot<PoolTables>; DOMAINS] = [const { DomainSlot::new() }; DOMAINS];
static SERVICE: spin::Once<Service> = spin::Once::new();

/// The service, once `init` built it.
pub fn service() -> Option<&'static Service> {
    SERVICE.get()
}

/// Builds the service after `smmu::probe_all`, over the ownership record
/// (`super::mem`).
pub fn init(platform: &Platform<'_>) {
    if let Err(e) = try_init(platform) {
        log::error!("iommu: no IOMMU service: {e}");
    }
}

fn try_init(platform: &Platform<'_>) -> Result<(), &'static str> {
    let tracker = super::mem::ownership().ok_or("no page ownership record")?;
    let policy = PhysPolicy::for_platform(platform, super::smmu::pcie_translated(platform))
        .map_err(|_| "too many MMIO ranges for the DMA policy")?;
    let smmus: [Option<&'static spin::Mutex<HypSmmu>>; MAX_SMMUS] = core::array::from_fn(smmu);
    let mut streams: heapless::Vec<StreamRange, MAX_STREAM_RANGES> = heapless::Vec::new();
    if let Some(host) = &platform.pcie {
        for e in &host.iommu_map {
            if let Some(i) = platform.smmu_by_phandle(e.iommu_phandle) {
                streams
                    .push(StreamRange {
                        smmu: i,
                        first: e.sid_base,
                        count: e.length,
                    })
                    .map_err(|_| "too many stream ranges")?;
            }
        }
    }
    let tables: Tables = |_, coherent| PoolTables { coherent };
    let svc = IommuService::new(
        ServiceConfig {
            smmus: smmus.get(..platform.smmus.len()).unwrap_or(&[]),
            streams: &streams,
            start_level: StartLevelPolicy::NoConcatenation,
        },
        &SLOTS,
        tracker,
        policy,
        tables,
    )
    .map_err(|e| {
        log::error!("iommu: {e}");
        "bad service configuration"
    })?;
    SERVICE.call_once(|| svc);
    Ok(())
}

/// Logs the service's counters: what it did over the run and what it
/// still holds. The hyp calls it when EL1 powers the machine off or
/// resets it (so a run ends with them, `make run` and the Linux scenarios
/// read them).
pub fn log_stats() {
    let Some(svc) = service() else { return };
    let get = |q| svc.stats(q).unwrap_or([0; 3]);
    let [maps, unmaps, refused] = get(StatsQuery::Calls);
    let [domains, streams, mapped] = get(StatsQuery::Objects);
    let [tables, refs, _] = get(StatsQuery::Memory);
    log::info!(
        "iommu: {maps} maps, {unmaps} unmaps, {refused} refused; left: {domains} domains, \
         {streams} streams attached, {mapped} bytes mapped, {refs} DMA page references, \
         {tables} bytes of page tables"
    );
    for smmu in 0..svc.info().smmus {
        let (Ok([tlbis, syncs, errors]), Ok([faults, dropped, _])) = (
            svc.stats(StatsQuery::SmmuCommands { smmu }),
            svc.stats(StatsQuery::SmmuEvents { smmu }),
        ) else {
            continue;
        };
        log::info!(
            "smmu{smmu}: {tlbis} TLB invalidations, {syncs} CMD_SYNCs, {errors} command errors; \
             {faults} faults logged, {dropped} dropped"
        );
    }
}

/// The SMMUs EL1's device tree describes as paravirtual IOMMUs with
/// `iommu=pv`: every SMMU the service drives (by the phandle its
/// `iommu-map` and `iommus` use); none without a service.
pub fn pv_iommus(platform: &Platform<'_>) -> heapless::Vec<PvIommu, MAX_SMMUS> {
    let mut out = heapless::Vec::new();
    if service().is_none() {
        return out;
    }
    for (i, node) in platform.smmus.iter().enumerate() {
        if let (Some(phandle), Some(_)) = (node.phandle, smmu(i)) {
            // Cannot fail: at most MAX_SMMUS nodes.
            let _ = out.push(PvIommu {
                phandle,
                smmu: i as u32,
            });
        }
    }
    out
}

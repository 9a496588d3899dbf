//! The IOMMU service behind the hypercalls, built once at boot.

use super::boot::PAGE_POOL;
use super::smmu::{HypSmmu, smmu};
use super::tables::PoolTables;
use crate::iommu::{DomainSlot, IommuService, ServiceConfig, StreamRange};
use crate::layout::BootLayout;
use crate::memmap::PhysRange;
use crate::ownership::{MAX_FORBIDDEN, MAX_RAM_REGIONS, Owner, OwnershipTracker, PhysPolicy};
use crate::pgtable::{Granule, StartLevelPolicy};
use crate::platform::{MAX_SMMUS, Platform};
use core::sync::atomic::AtomicU32;

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

/// Builds the service after `smmu::probe_all` and with the page pool up.
pub fn init(platform: &Platform<'_>, layout: &BootLayout) {
    if let Err(e) = try_init(platform, layout) {
        log::error!("iommu: no IOMMU service: {e}");
    }
}

fn try_init(platform: &Platform<'_>, layout: &BootLayout) -> Result<(), &'static str> {
    let mut ram: heapless::Vec<PhysRange, MAX_RAM_REGIONS> = heapless::Vec::new();
    for r in platform.ram.iter() {
        ram.push(*r).map_err(|_| "too many RAM regions")?;
    }
    let pages = OwnershipTracker::pages_needed(&ram).ok_or("too many RAM regions")?;
    let region = PAGE_POOL
        .lock()
        .alloc(pages as u64 * 4, 4096)
        .map_err(|_| "no pool memory for page records")?;
    // SAFETY: the pool just handed out this range, identity mapped
    // read-write, page aligned, never freed; AtomicU32 has u32's layout and
    // any bit pattern is valid (`OwnershipTracker::new` resets them).
    let records: &'static [AtomicU32] =
        unsafe { core::slice::from_raw_parts(region.start as *const AtomicU32, pages) };
    let tracker = OwnershipTracker::new(&ram, records).map_err(|_| "page records")?;
    for r in layout.el2_owned() {
        tracker
            .set_owner(r.start, r.size, Owner::El2)
            .map_err(|_| "marking EL2 memory")?;
    }
    let mut forbidden: heapless::Vec<PhysRange, MAX_FORBIDDEN> = heapless::Vec::new();
    for r in platform
        .smmus
        .iter()
        .map(|s| s.regs)
        .chain(platform.gic.regions())
        .chain(platform.uart)
    {
        forbidden.push(r).map_err(|_| "too many forbidden ranges")?;
    }
    let policy = PhysPolicy::new(&forbidden).map_err(|_| "too many forbidden ranges")?;
    let smmus: [Option<&'static spin::Mutex<HypSmmu>>; MAX_SMMUS] = core::array::from_fn(smmu);
    let mut streams: heapless::Vec<StreamRange, 16> = heapless::Vec::new();
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
    .map_err(|_| "bad service configuration")?;
    SERVICE.call_once(|| svc);
    Ok(())
}

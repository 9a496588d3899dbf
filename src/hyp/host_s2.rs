//! The host stage-2 on this machine: built once by the boot CPU from the
//! device tree and the boot layout, installed on every CPU before it enters
//! EL1. See [`crate::host_s2`] for what it maps and why.

use super::boot::LAYOUT;
use super::smmu::smmu;
use super::tables::PoolTables;
use crate::arch::aarch64::stage2;
use crate::host_s2::{self, HostView};
use crate::memmap::PhysRange;
use crate::platform::Platform;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};

/// Most ranges hidden from EL1.
const MAX_HIDDEN: usize = 48;

/// `VTCR_EL2` and `VTTBR_EL2` of the host stage-2, for every CPU.
#[derive(Clone, Copy, Debug)]
struct Installed {
    vtcr: u64,
    vttbr: u64,
}

static HOST_S2: spin::Once<Installed> = spin::Once::new();

/// Every `reg` range of the nodes whose `compatible` lists one of
/// `compatibles` (disabled nodes included: firmware may enable them).
fn regs_of_compatible<const N: usize>(
    dtb: &fdt::Fdt<'_>,
    compatibles: &[&str],
    out: &mut heapless::Vec<PhysRange, N>,
) -> Result<(), &'static str> {
    for node in dtb.all_nodes() {
        let Some(c) = node.compatible() else { continue };
        if !c.all().any(|s| compatibles.contains(&s)) {
            continue;
        }
        for r in node.reg().into_iter().flatten() {
            let range = PhysRange::new(r.starting_address as u64, r.size.unwrap_or(0) as u64);
            out.push(range).map_err(|_| "too many hidden ranges")?;
        }
    }
    Ok(())
}

/// One past the highest address any `reg` in the tree names (untranslated:
/// an upper bound for the trees the hyp boots on).
fn highest_reg_end(dtb: &fdt::Fdt<'_>) -> u64 {
    dtb.all_nodes()
        .flat_map(|n| n.reg().into_iter().flatten())
        .map(|r| (r.starting_address as u64).saturating_add(r.size.unwrap_or(0) as u64))
        .max()
        .unwrap_or(0)
}

/// Builds the host stage-2 from the platform. After the SMMUs are probed
/// (an SMMU the hyp refused does not translate its host bridge) and with
/// the page pool up. Returns what went wrong if EL1 cannot be confined.
pub fn init(platform: &Platform<'_>, dtb: &[u8]) -> Result<(), &'static str> {
    let layout = LAYOUT.get().ok_or("no boot layout")?;
    let tree = fdt::Fdt::new(dtb).map_err(|_| "unreadable device tree")?;
    let mut hidden: heapless::Vec<PhysRange, MAX_HIDDEN> = heapless::Vec::new();
    for s in platform.smmus.iter() {
        hidden.push(s.regs).map_err(|_| "too many hidden ranges")?;
    }
    regs_of_compatible(&tree, super::board::HIDDEN_BUS_MASTERS, &mut hidden)?;
    let mut limit = highest_reg_end(&tree);
    for r in platform.ram.iter() {
        limit = limit.max(r.end());
    }
    if let Some(host) = &platform.pcie {
        let entries = host.iommu_map.iter().map(|e| {
            let driven = platform
                .smmu_by_phandle(e.iommu_phandle)
                .and_then(smmu)
                .is_some();
            (e.rid_base, e.length, driven)
        });
        let windows = host
            .windows
            .iter()
            .map(|w| PhysRange::new(w.cpu_addr, w.size));
        for w in windows.clone() {
            limit = limit.max(w.end());
        }
        if !host_s2::all_requesters_translated(host.bus_start, host.bus_end, entries) {
            log::warn!(
                "pcie: not every requester is behind an SMMU the hyp drives: \
                 the host bridge is hidden from EL1"
            );
            for r in core::iter::once(host.ecam).chain(windows) {
                hidden.push(r).map_err(|_| "too many hidden ranges")?;
            }
        }
    }
    let pa_bits = host_s2::pa_range_bits(ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)).min(48);
    let el2 = layout.el2_owned();
    let view = HostView {
        ram: platform.ram.as_slice(),
        el2: &el2,
        hidden: &hidden,
        trapped: &[],
        ipa_bits: host_s2::ipa_bits_for(limit, pa_bits),
    };
    let pt = host_s2::build(&view, pa_bits, PoolTables { coherent: true }).map_err(|e| {
        log::error!("host stage-2: {e}");
        "cannot build the host stage-2"
    })?;
    log::info!(
        "host stage-2: {}-bit IPA, {} KiB of tables; hidden from EL1: EL2's RAM and {} MMIO range(s)",
        view.ipa_bits,
        pt.table_bytes() >> 10,
        hidden.len()
    );
    for r in &hidden {
        log::debug!("host stage-2: hidden {r}");
    }
    let installed = Installed {
        vtcr: host_s2::vtcr(pt.config()),
        vttbr: pt.root(),
    };
    // The table serves for the machine's lifetime and never changes again;
    // the engine has no `Drop`, so letting it go leaves the tables in place.
    let _ = pt;
    HOST_S2.call_once(|| installed);
    Ok(())
}

/// Installs the host stage-2 on this CPU; `HCR_EL2.VM` turns it on when the
/// CPU enters EL1. Returns whether there is one.
pub fn install_on_this_cpu() -> bool {
    let Some(s2) = HOST_S2.get() else {
        return false;
    };
    // SAFETY: the boot CPU built the table completely before publishing
    // `HOST_S2` (the `Once` orders it), and EL1 is not running here.
    unsafe { stage2::install_host(s2.vtcr, s2.vttbr) };
    true
}

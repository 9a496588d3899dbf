//! The host stage-2 on this machine: built once by the boot CPU from the
//! device tree and the boot layout, installed on every CPU before it enters
//! EL1. See [`crate::host_s2`] for what it maps and why.

use super::boot::LAYOUT;
use super::tables::PoolTables;
use crate::arch::aarch64::stage2;
use crate::host_s2::{self, HostView};
use crate::memmap::PhysRange;
use crate::platform::Platform;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};

/// Most ranges hidden from EL1: the SMMUs and their PMCGs, the board's
/// hidden bus masters, an untranslated host bridge.
const MAX_HIDDEN: usize = crate::platform::MAX_SMMUS
    + crate::platform::MAX_SMMU_PMCG_FRAMES
    + crate::platform::MAX_HIDDEN
    + 20;

/// `VTCR_EL2` and `VTTBR_EL2` of the host stage-2, for every CPU.
#[derive(Clone, Copy, Debug)]
struct Installed {
    vtcr: u64,
    vttbr: u64,
}

static HOST_S2: spin::Once<Installed> = spin::Once::new();

/// Builds the host stage-2 from the platform. After the SMMUs are probed
/// (an SMMU the hyp refused does not translate its host bridge), with the
/// page pool up and the MMIO bus published (its windows trap). Returns
/// what went wrong if EL1 cannot be confined.
pub fn init(platform: &Platform<'_>) -> Result<(), &'static str> {
    let layout = LAYOUT.get().ok_or("no boot layout")?;
    let pcie_translated = super::smmu::pcie_translated(platform);
    if platform.pcie.is_some() && !pcie_translated {
        log::warn!(
            "pcie: not every requester is behind an SMMU the hyp drives: \
             the host bridge is hidden from EL1"
        );
    }
    let mut hidden: heapless::Vec<PhysRange, MAX_HIDDEN> = heapless::Vec::new();
    for r in host_s2::hidden_mmio(platform, pcie_translated) {
        hidden.push(r).map_err(|_| "too many hidden ranges")?;
    }
    let mut trapped: heapless::Vec<PhysRange, { super::mmio::MAX_WINDOWS }> = heapless::Vec::new();
    for w in super::mmio::bus().into_iter().flat_map(|b| b.windows()) {
        // Cannot fail: the bus holds at most MAX_WINDOWS windows.
        let _ = trapped.push(w);
    }
    let pa_bits = host_s2::pa_range_bits(ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)).min(48);
    let el2 = layout.el2_owned();
    let view = HostView {
        ram: platform.ram.as_slice(),
        el2: &el2,
        hidden: &hidden,
        trapped: &trapped,
        ipa_bits: host_s2::ipa_bits_for(platform.phys_limit, pa_bits),
    };
    let pt = host_s2::build(&view, pa_bits, PoolTables { coherent: true }).map_err(|e| {
        log::error!("host stage-2: {e}");
        "cannot build the host stage-2"
    })?;
    log::info!(
        "host stage-2: {}-bit IPA, {} KiB of tables; hidden from EL1: EL2's RAM and {} MMIO range(s); {} MMIO range(s) emulated",
        view.ipa_bits,
        pt.table_bytes() >> 10,
        hidden.len(),
        trapped.len()
    );
    for r in &hidden {
        log::debug!("host stage-2: hidden {r}");
    }
    for r in &trapped {
        log::debug!("host stage-2: emulated {r}");
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

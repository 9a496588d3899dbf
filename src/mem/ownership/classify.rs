//! What a physical address range handed in by EL1 is: RAM (then the
//! ownership records decide), MMIO a device may be given, an MSI doorbell,
//! or forbidden.
//!
//! Outside RAM, a device may be given only what the hyp *allows*, never
//! "everything else": MMIO is full of bus masters and control registers
//! that would let a device escape its domain (QEMU's fw_cfg, for one,
//! writes any physical address its DMA register names). Allowed are:
//!
//! * the BAR windows of PCIe host bridges whose every requester sits behind
//!   an SMMU the hyp drives (peer-to-peer DMA between translated devices),
//!   as device memory;
//! * the MSI doorbell pages (the ITS's `GITS_TRANSLATER` page, GICv2m
//!   frames), as device memory and write-only: without them no translated
//!   device can raise an MSI (Linux maps the doorbell into every DMA
//!   domain).
//!
//! The hyp's own MMIO (every SMMU frame and SMMU PMCG frame, the GIC, the
//! console UART) is forbidden even where an allowed window would cover it. A range that is
//! partly RAM is forbidden: a mapping is one memory type.

use super::OwnershipTracker;
use crate::mem::PAGE_SIZE;
use crate::memmap::PhysRange;
use crate::platform::{MAX_GIC_REGIONS, MAX_SMMU_PMCG_FRAMES, MAX_SMMUS, PciSpace, Platform};

/// Most forbidden ranges: a server's GIC alone has a dozen frames (D05:
/// distributor, 4 redistributor regions, 3 GICv2 frames, 8 ITSs), plus
/// every SMMU, its PMCGs and the UART.
pub const MAX_FORBIDDEN: usize = 80;
/// The most [`forbidden_mmio`] can list: every SMMU, SMMU PMCG frame, GIC
/// region and a UART.
const MAX_PLATFORM_FORBIDDEN: usize = MAX_SMMUS + MAX_SMMU_PMCG_FRAMES + MAX_GIC_REGIONS + 1;
const _: () = assert!(MAX_PLATFORM_FORBIDDEN <= MAX_FORBIDDEN);

/// The MMIO of `platform` that belongs to the hyp and that no device may
/// be given: every SMMU's registers and its PMCGs' (a device that could
/// program a PMCG's MSI would write anywhere), the GIC and the hyp's
/// console UART. The one list the DMA policy
/// ([`PhysPolicy::for_platform`]) and the EL2 identity map (which adds the
/// PCIe windows it also drives) start from.
pub fn forbidden_mmio<'p>(
    platform: &'p Platform<'_>,
) -> impl Iterator<Item = PhysRange> + Clone + 'p {
    platform
        .smmus
        .iter()
        .map(|s| s.regs)
        .chain(platform.smmu_pmcgs.iter().copied())
        .chain(platform.gic.regions())
        .chain(platform.uart)
}

/// Most allowed MMIO windows and doorbell pages, each.
pub const MAX_ALLOWED: usize = 32;

/// Offset of the page holding `GITS_TRANSLATER` in an ITS frame (the ITS
/// translation register page, GICv3 architecture specification, "ITS
/// register map").
pub const ITS_TRANSLATER_PAGE: u64 = 0x1_0000;

/// Classification of a physical range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaClass {
    /// Entirely RAM: may be mapped (with normal memory attributes) if the
    /// ownership records allow it.
    Ram,
    /// Entirely inside one allowed MMIO window (a translated host bridge's
    /// BARs): may be mapped with device attributes.
    Mmio,
    /// Entirely inside one MSI doorbell page: may be mapped with device
    /// attributes, write-only.
    Doorbell,
    /// Anything else: partly RAM, outside every allowed window, touching
    /// the hyp's own MMIO, or empty / wrapping.
    Forbidden,
}

/// More ranges than a policy's fixed capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyRanges;

/// What MMIO a device may be given (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct PhysPolicy {
    forbidden: heapless::Vec<PhysRange, MAX_FORBIDDEN>,
    windows: heapless::Vec<PhysRange, MAX_ALLOWED>,
    doorbells: heapless::Vec<PhysRange, MAX_ALLOWED>,
}

/// Pushes `range`, grown to whole pages (no mapping is smaller than a
/// page); empty ranges are skipped.
fn push_pages<const N: usize>(
    list: &mut heapless::Vec<PhysRange, N>,
    range: PhysRange,
) -> Result<(), TooManyRanges> {
    if range.is_empty() {
        return Ok(());
    }
    list.push(range.align_out(PAGE_SIZE))
        .map_err(|_| TooManyRanges)
}

impl PhysPolicy {
    /// A policy forbidding `ranges` and allowing no MMIO yet.
    pub fn new(ranges: &[PhysRange]) -> Result<Self, TooManyRanges> {
        let mut p = Self::default();
        for r in ranges {
            p.forbid(*r)?;
        }
        Ok(p)
    }

    /// The policy for `platform`: [`forbidden_mmio`] forbidden, the MSI
    /// doorbells allowed, and the PCIe host bridge's memory windows allowed
    /// if `pcie_translated` (every requester reaches an SMMU the hyp
    /// drives; otherwise its devices are not EL1's to use at all).
    pub fn for_platform(
        platform: &Platform<'_>,
        pcie_translated: bool,
    ) -> Result<Self, TooManyRanges> {
        let mut p = Self::default();
        for r in forbidden_mmio(platform) {
            p.forbid(r)?;
        }
        for its in &platform.gic.its {
            p.allow_doorbell(PhysRange::new(its.start + ITS_TRANSLATER_PAGE, PAGE_SIZE))?;
        }
        for v2m in &platform.gic.v2m {
            p.allow_doorbell(PhysRange::new(v2m.start, PAGE_SIZE))?;
        }
        if let Some(host) = platform.pcie.as_ref().filter(|_| pcie_translated) {
            for w in host.windows.iter().filter(|w| w.space != PciSpace::Io) {
                p.allow_window(PhysRange::new(w.cpu_addr, w.size))?;
            }
        }
        Ok(p)
    }

    /// Adds a forbidden range.
    pub fn forbid(&mut self, range: PhysRange) -> Result<(), TooManyRanges> {
        push_pages(&mut self.forbidden, range)
    }

    /// Allows an MMIO window a device may be given read-write.
    pub fn allow_window(&mut self, range: PhysRange) -> Result<(), TooManyRanges> {
        push_pages(&mut self.windows, range)
    }

    /// Allows an MSI doorbell a device may be given write-only.
    pub fn allow_doorbell(&mut self, range: PhysRange) -> Result<(), TooManyRanges> {
        push_pages(&mut self.doorbells, range)
    }

    /// The forbidden ranges.
    pub fn forbidden(&self) -> &[PhysRange] {
        &self.forbidden
    }

    /// The allowed MMIO windows.
    pub fn windows(&self) -> &[PhysRange] {
        &self.windows
    }

    /// The MSI doorbell pages.
    pub fn doorbells(&self) -> &[PhysRange] {
        &self.doorbells
    }

    /// Classifies `[start, start + size)` against RAM (from `tracker`), the
    /// doorbells, the forbidden ranges and the allowed windows, in that
    /// order (a doorbell page lies inside the GIC, which is forbidden).
    pub fn classify(&self, tracker: &OwnershipTracker<'_>, start: u64, size: u64) -> PaClass {
        let Some(end) = start.checked_add(size) else {
            return PaClass::Forbidden;
        };
        if size == 0 {
            return PaClass::Forbidden;
        }
        if tracker.is_ram(start, size) {
            return PaClass::Ram;
        }
        if tracker.touches_ram(start, size) {
            return PaClass::Forbidden;
        }
        let range = PhysRange::new(start, end - start);
        if self.doorbells.iter().any(|d| d.contains_range(&range)) {
            return PaClass::Doorbell;
        }
        if self.forbidden.iter().any(|f| f.overlaps(&range)) {
            return PaClass::Forbidden;
        }
        if self.windows.iter().any(|w| w.contains_range(&range)) {
            return PaClass::Mmio;
        }
        PaClass::Forbidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;
    use std::vec::Vec;

    fn tracker_over(ram: &[PhysRange], s: &'static [AtomicU32]) -> OwnershipTracker<'static> {
        OwnershipTracker::new(ram, s).unwrap()
    }

    fn records() -> &'static [AtomicU32] {
        Vec::leak((0..256).map(|_| AtomicU32::new(0)).collect())
    }

    #[test]
    fn only_allowed_windows_and_doorbells_are_mmio_and_the_hyps_own_never() {
        let ram = [PhysRange::new(0x4000_0000, 0x10_0000)];
        let t = tracker_over(&ram, records());
        let smmu = PhysRange::new(0x905_0000, 0x2_0000);
        let gic = PhysRange::new(0x800_0000, 0x2_0000);
        let uart = PhysRange::new(0x900_0000, 0x100);
        let mut p = PhysPolicy::new(&[smmu, gic, uart]).unwrap();
        p.allow_window(PhysRange::new(0x1000_0000, 0x1000_0000))
            .unwrap();
        p.allow_doorbell(PhysRange::new(0x801_0000, 0x1000))
            .unwrap();
        // A window that covers the SMMU: the SMMU stays forbidden.
        p.allow_window(PhysRange::new(0x900_0000, 0x10_0000))
            .unwrap();
        let c = |start, size| p.classify(&t, start, size);
        assert_eq!(c(0x4000_0000, 0x10_0000), PaClass::Ram);
        assert_eq!(c(0x3fff_f000, 0x2000), PaClass::Forbidden, "straddles RAM");
        assert_eq!(c(0x1000_0000, 0x1000), PaClass::Mmio, "a BAR");
        assert_eq!(c(0x1fff_f000, 0x1000), PaClass::Mmio, "last window page");
        assert_eq!(
            c(0x1fff_f000, 0x2000),
            PaClass::Forbidden,
            "leaves the window"
        );
        assert_eq!(
            c(0x0902_0000, 0x1000),
            PaClass::Mmio,
            "inside the second window"
        );
        assert_eq!(
            c(0x0a00_0000, 0x1000),
            PaClass::Forbidden,
            "not allowed: fw_cfg-like"
        );
        assert_eq!(c(0, 0x1000), PaClass::Forbidden, "not allowed: flash");
        assert_eq!(
            c(0x905_0000, 0x1000),
            PaClass::Forbidden,
            "SMMU in a window"
        );
        assert_eq!(c(0x906_f000, 0x1000), PaClass::Forbidden, "SMMU last page");
        assert_eq!(c(0x801_0000, 0x1000), PaClass::Doorbell);
        assert_eq!(c(0x801_0000, 0x2000), PaClass::Forbidden, "doorbell + GIC");
        assert_eq!(c(0x800_0000, 0x1000), PaClass::Forbidden, "GIC");
        assert_eq!(c(0x900_0000, 0x1000), PaClass::Forbidden, "UART page");
        assert_eq!(c(0x1000, 0), PaClass::Forbidden);
        assert_eq!(c(u64::MAX - 0xfff, 0x2000), PaClass::Forbidden);
        let many: Vec<_> = (0..=MAX_FORBIDDEN as u64)
            .map(|i| PhysRange::new(i << 20, 1))
            .collect();
        assert!(PhysPolicy::new(&many).is_err());
        let mut full = PhysPolicy::default();
        for i in 0..MAX_ALLOWED as u64 {
            full.allow_window(PhysRange::new(i << 20, 1)).unwrap();
        }
        assert_eq!(
            full.allow_window(PhysRange::new(1 << 40, 1)),
            Err(TooManyRanges)
        );
    }

    #[test]
    fn the_platform_policy_allows_translated_bars_and_msi_doorbells_only() {
        let dtb = include_bytes!("../../../tests/fixtures/qemu-virt-1g.dtb");
        let platform = Platform::parse(dtb, 0x4000_0000).unwrap();
        let p = PhysPolicy::for_platform(&platform, true).unwrap();
        let listed: Vec<PhysRange> = forbidden_mmio(&platform).collect();
        assert_eq!(p.forbidden().len(), listed.len());
        assert_eq!(
            listed.len(),
            platform.smmus.len() + platform.gic.regions().count() + 1,
            "{listed:x?}"
        );
        let ram = [PhysRange::new(0x4000_0000, 0x10_0000)];
        let t = tracker_over(&ram, records());
        let uart = platform.uart.unwrap();
        for r in platform
            .smmus
            .iter()
            .map(|s| s.regs)
            .chain(core::iter::once(platform.gic.distributor))
            .chain(platform.gic.redistributors.iter().copied())
        {
            assert_eq!(
                p.classify(&t, r.start, PAGE_SIZE),
                PaClass::Forbidden,
                "{r}"
            );
        }
        assert_eq!(p.classify(&t, uart.start, PAGE_SIZE), PaClass::Forbidden);
        let host = platform.pcie.as_ref().unwrap();
        assert_eq!(
            p.classify(&t, host.ecam.start, PAGE_SIZE),
            PaClass::Forbidden,
            "ECAM"
        );
        // fw_cfg (0x9020000 on QEMU virt) is nowhere allowed.
        assert_eq!(p.classify(&t, 0x902_0000, PAGE_SIZE), PaClass::Forbidden);
        // The ITS: its control page is the GIC's, its translater page a doorbell.
        let its = platform.gic.its[0];
        assert_eq!(p.classify(&t, its.start, PAGE_SIZE), PaClass::Forbidden);
        let doorbell = its.start + ITS_TRANSLATER_PAGE;
        assert_eq!(p.classify(&t, doorbell, PAGE_SIZE), PaClass::Doorbell);
        assert_eq!(p.doorbells(), [PhysRange::new(doorbell, PAGE_SIZE)]);
        // Every memory window of the bridge is a peer-to-peer window.
        for w in host.windows.iter().filter(|w| w.space != PciSpace::Io) {
            assert_eq!(
                p.classify(&t, w.cpu_addr, PAGE_SIZE),
                PaClass::Mmio,
                "{w:x?}"
            );
        }
        // Not behind a driven SMMU: its windows are not EL1's to give.
        let untranslated = PhysPolicy::for_platform(&platform, false).unwrap();
        let window = host
            .windows
            .iter()
            .find(|w| w.space != PciSpace::Io)
            .unwrap();
        assert_eq!(
            untranslated.classify(&t, window.cpu_addr, PAGE_SIZE),
            PaClass::Forbidden
        );
    }
}

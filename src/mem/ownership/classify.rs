//! What a physical address range handed in by EL1 is: RAM (then the
//! ownership records decide), MMIO a device may be given, or forbidden.
//!
//! Outside RAM, everything is MMIO except the ranges the hyp forbids: the
//! SMMUs' own register frames (a device that could write them would
//! control every translation), the GIC (interrupt routing belongs to EL2
//! and EL1, never to a device) and whatever else the platform adds, e.g.
//! the hyp's console UART. A range that is partly RAM is forbidden: a
//! mapping is one memory type.

use super::OwnershipTracker;
use crate::mem::PAGE_SIZE;
use crate::memmap::PhysRange;
use crate::platform::{MAX_GIC_REGIONS, MAX_SMMUS, Platform};

/// Most forbidden ranges: a server's GIC alone has a dozen frames (D05:
/// distributor, 4 redistributor regions, 3 GICv2 frames, 8 ITSs), plus
/// every SMMU and the UART.
pub const MAX_FORBIDDEN: usize = 64;
/// The most [`forbidden_mmio`] can list: every SMMU, GIC region and a UART.
const MAX_PLATFORM_FORBIDDEN: usize = MAX_SMMUS + MAX_GIC_REGIONS + 1;
const _: () = assert!(MAX_PLATFORM_FORBIDDEN <= MAX_FORBIDDEN);

/// The MMIO of `platform` that belongs to the hyp and that no device may
/// be given: every SMMU's registers, the GIC and the hyp's console UART.
/// The one list the DMA policy ([`PhysPolicy::for_platform`]) and the EL2
/// identity map (which adds the PCIe windows it also drives) start from.
pub fn forbidden_mmio<'p>(
    platform: &'p Platform<'_>,
) -> impl Iterator<Item = PhysRange> + Clone + 'p {
    platform
        .smmus
        .iter()
        .map(|s| s.regs)
        .chain(platform.gic.regions())
        .chain(platform.uart)
}

/// Classification of a physical range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaClass {
    /// Entirely RAM: may be mapped (with normal memory attributes) if the
    /// ownership records allow it.
    Ram,
    /// Entirely outside RAM and outside every forbidden range: may be
    /// mapped with device attributes.
    Mmio,
    /// Partly RAM, or touches a forbidden range, or empty / wrapping.
    Forbidden,
}

/// Too many forbidden ranges for [`MAX_FORBIDDEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyForbidden;

/// The MMIO ranges no device may be given.
#[derive(Clone, Debug, Default)]
pub struct PhysPolicy {
    forbidden: heapless::Vec<PhysRange, MAX_FORBIDDEN>,
}

impl PhysPolicy {
    /// A policy forbidding `ranges` (each grown to whole pages: no mapping
    /// is smaller than a page).
    pub fn new(ranges: &[PhysRange]) -> Result<Self, TooManyForbidden> {
        let mut p = Self::default();
        for r in ranges {
            p.forbid(*r)?;
        }
        Ok(p)
    }

    /// The policy for `platform`: [`forbidden_mmio`].
    pub fn for_platform(platform: &Platform<'_>) -> Result<Self, TooManyForbidden> {
        let mut p = Self::default();
        for r in forbidden_mmio(platform) {
            p.forbid(r)?;
        }
        Ok(p)
    }

    /// Adds a forbidden range.
    pub fn forbid(&mut self, range: PhysRange) -> Result<(), TooManyForbidden> {
        if range.is_empty() {
            return Ok(());
        }
        self.forbidden
            .push(range.align_out(PAGE_SIZE))
            .map_err(|_| TooManyForbidden)
    }

    /// The forbidden ranges.
    pub fn forbidden(&self) -> &[PhysRange] {
        &self.forbidden
    }

    /// Classifies `[start, start + size)` against RAM (from `tracker`) and
    /// the forbidden ranges.
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
        if self.forbidden.iter().any(|f| f.overlaps(&range)) {
            return PaClass::Forbidden;
        }
        PaClass::Mmio
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;
    use std::vec::Vec;

    #[test]
    fn ram_mmio_and_forbidden() {
        let ram = [PhysRange::new(0x4000_0000, 0x10_0000)];
        let s: Vec<AtomicU32> = (0..256).map(|_| AtomicU32::new(0)).collect();
        let t = OwnershipTracker::new(&ram, &s).unwrap();
        let smmu = PhysRange::new(0x905_0000, 0x2_0000);
        let gic = PhysRange::new(0x800_0000, 0x1_0000);
        let uart = PhysRange::new(0x900_0000, 0x100);
        let p = PhysPolicy::new(&[smmu, gic, uart]).unwrap();
        let c = |start, size| p.classify(&t, start, size);
        assert_eq!(c(0x4000_0000, 0x10_0000), PaClass::Ram);
        assert_eq!(c(0x3fff_f000, 0x2000), PaClass::Forbidden, "straddles");
        assert_eq!(c(0x1000_0000, 0x1000), PaClass::Mmio);
        assert_eq!(c(0x905_0000, 0x1000), PaClass::Forbidden, "SMMU");
        assert_eq!(c(0x906_f000, 0x1000), PaClass::Forbidden, "SMMU last page");
        assert_eq!(c(0x907_0000, 0x1000), PaClass::Mmio);
        assert_eq!(c(0x7ff_f000, 0x2000), PaClass::Forbidden, "GIC");
        assert_eq!(c(0x900_0000, 0x1000), PaClass::Forbidden, "UART page");
        assert_eq!(c(0x1000, 0), PaClass::Forbidden);
        assert_eq!(c(u64::MAX - 0xfff, 0x2000), PaClass::Forbidden);
        let many: Vec<_> = (0..=MAX_FORBIDDEN as u64)
            .map(|i| PhysRange::new(i << 20, 1))
            .collect();
        assert!(PhysPolicy::new(&many).is_err());
    }

    #[test]
    fn the_platform_policy_forbids_every_smmu_the_gic_and_the_uart_and_nothing_else() {
        let dtb = include_bytes!("../../../tests/fixtures/qemu-virt-1g.dtb");
        let platform = Platform::parse(dtb, 0x4000_0000).unwrap();
        let p = PhysPolicy::for_platform(&platform).unwrap();
        let listed: Vec<PhysRange> = forbidden_mmio(&platform).collect();
        assert_eq!(p.forbidden().len(), listed.len());
        assert_eq!(
            listed.len(),
            platform.smmus.len() + platform.gic.regions().count() + 1,
            "{listed:x?}"
        );
        let ram = [PhysRange::new(0x4000_0000, 0x10_0000)];
        let s: Vec<AtomicU32> = (0..256).map(|_| AtomicU32::new(0)).collect();
        let t = OwnershipTracker::new(&ram, &s).unwrap();
        let uart = platform.uart.unwrap();
        for r in platform
            .smmus
            .iter()
            .map(|s| s.regs)
            .chain(platform.gic.regions())
        {
            assert_eq!(
                p.classify(&t, r.start, PAGE_SIZE),
                PaClass::Forbidden,
                "{r}"
            );
        }
        assert_eq!(p.classify(&t, uart.start, PAGE_SIZE), PaClass::Forbidden);
        // A PCIe BAR window stays MMIO a device may be given.
        let window = platform.pcie.as_ref().unwrap().windows[0].cpu_addr;
        assert_eq!(p.classify(&t, window, PAGE_SIZE), PaClass::Mmio);
    }
}

//! The Arm Generic Interrupt Controller, as the device tree describes it.
//!
//! Each register frame is kept by its role, because the hyp treats them
//! differently: every frame is denied to devices and mapped as device
//! memory at EL2, and the frames a hyp traps (an ITS's control frame, a
//! redistributor's RD_base frame) must be told apart from the rest.
//!
//! Layouts, from the Linux bindings
//! `interrupt-controller/arm,gic-v3.yaml` and `arm,gic.yaml`:
//! - GICv3 (`arm,gic-v3`): `reg` = distributor, then
//!   `#redistributor-regions` (default 1) redistributor regions, then the
//!   optional GICv2-compatible CPU interface (GICC), hypervisor interface
//!   (GICH) and virtual CPU interface (GICV).
//! - GICv2 (`arm,gic-400`, `arm,cortex-a15-gic`, ...): `reg` = distributor,
//!   CPU interface, then the optional GICH and GICV.
//! - MSI frames are child nodes: `arm,gic-v3-its` (one ITS: its 64 KiB
//!   control frame, then its translation frame) and `arm,gic-v2m-frame`.

use super::PlatformError;
use crate::memmap::PhysRange;
use heapless::Vec;

/// Redistributor regions one GICv3 may list (servers have one per socket
/// or die; QEMU `virt` uses two above 123 CPUs).
pub const MAX_GIC_REDISTRIBUTOR_REGIONS: usize = 16;
/// ITSs (GICv3) or v2m frames (GICv2) of one GIC.
pub const MAX_GIC_MSI_FRAMES: usize = 16;
/// The most register frames [`Gic::regions`] lists: the distributor, every
/// redistributor region, GICC, GICH, GICV and every MSI frame.
pub const MAX_GIC_REGIONS: usize = 1 + MAX_GIC_REDISTRIBUTOR_REGIONS + 3 + 2 * MAX_GIC_MSI_FRAMES;

/// GICv2 distributors with the GICv2 layout (those of Linux's
/// `irq-gic.c` found on arm64 boards).
pub const GICV2_COMPATIBLES: [&str; 5] = [
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "qcom,msm-qgic2",
];
pub const GICV3_COMPATIBLE: &str = "arm,gic-v3";
pub const ITS_COMPATIBLE: &str = "arm,gic-v3-its";
pub const V2M_COMPATIBLE: &str = "arm,gic-v2m-frame";

/// The GIC architecture version of the distributor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GicVersion {
    V2,
    V3,
}

/// One GIC: its distributor and every other register frame, by role.
#[derive(Clone, Debug)]
pub struct Gic {
    pub version: GicVersion,
    /// GICD.
    pub distributor: PhysRange,
    /// GICR regions (GICv3 only): each a run of per-CPU redistributors.
    pub redistributors: Vec<PhysRange, MAX_GIC_REDISTRIBUTOR_REGIONS>,
    /// `redistributor-stride`, when the node gives one (GICv3 only):
    /// otherwise the distance between redistributors follows from
    /// `GICR_TYPER.VLPIS`.
    pub redistributor_stride: Option<u64>,
    /// GICC: the memory-mapped CPU interface (GICv2; optional on GICv3).
    pub cpu_interface: Option<PhysRange>,
    /// GICH: the virtual interface control frame.
    pub hyp_interface: Option<PhysRange>,
    /// GICV: the virtual CPU interface.
    pub vcpu_interface: Option<PhysRange>,
    /// ITS frames (`arm,gic-v3-its`), each as its node's `reg` lists it.
    pub its: Vec<PhysRange, MAX_GIC_MSI_FRAMES>,
    /// GICv2m MSI frames (`arm,gic-v2m-frame`).
    pub v2m: Vec<PhysRange, MAX_GIC_MSI_FRAMES>,
}

impl Gic {
    /// The GIC described by a distributor node's `reg` entries (already
    /// translated to CPU physical addresses) and its
    /// `#redistributor-regions`.
    pub fn from_regs<'a>(
        node: &'a str,
        version: GicVersion,
        regs: &[PhysRange],
        redistributor_regions: usize,
    ) -> Result<Self, PlatformError<'a>> {
        let malformed = PlatformError::Malformed {
            node,
            property: "reg",
        };
        let (&distributor, rest) = regs.split_first().ok_or(malformed)?;
        let mut redistributors = Vec::new();
        let rest = match version {
            GicVersion::V2 => rest,
            GicVersion::V3 => {
                if redistributor_regions > MAX_GIC_REDISTRIBUTOR_REGIONS {
                    return Err(PlatformError::TooMany {
                        node,
                        what: "GIC redistributor regions",
                        limit: MAX_GIC_REDISTRIBUTOR_REGIONS,
                    });
                }
                let (gicr, rest) = rest
                    .split_at_checked(redistributor_regions)
                    .ok_or(malformed)?;
                // Cannot fail: checked against the capacity above.
                redistributors = Vec::from_slice(gicr).map_err(|_| malformed)?;
                rest
            }
        };
        if version == GicVersion::V2 && rest.is_empty() {
            return Err(malformed);
        }
        if rest.len() > 3 {
            return Err(malformed);
        }
        Ok(Self {
            version,
            distributor,
            redistributors,
            redistributor_stride: None,
            cpu_interface: rest.first().copied(),
            hyp_interface: rest.get(1).copied(),
            vcpu_interface: rest.get(2).copied(),
            its: Vec::new(),
            v2m: Vec::new(),
        })
    }

    /// Every register frame: what no device may be given and what EL2 maps
    /// as device memory.
    pub fn regions(&self) -> impl Iterator<Item = PhysRange> + Clone + '_ {
        core::iter::once(self.distributor)
            .chain(self.redistributors.iter().copied())
            .chain(self.cpu_interface)
            .chain(self.hyp_interface)
            .chain(self.vcpu_interface)
            .chain(self.its.iter().copied())
            .chain(self.v2m.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, size: u64) -> PhysRange {
        PhysRange::new(start, size)
    }

    #[test]
    fn gicv3_regs_split_into_distributor_redistributor_regions_and_v2_frames() {
        let regs = [
            r(0x4d00_0000, 0x1_0000),
            r(0x4d10_0000, 0x40_0000),
            r(0x6d10_0000, 0x40_0000),
            r(0xfe00_0000, 0x1_0000),
            r(0xfe01_0000, 0x1_0000),
            r(0xfe02_0000, 0x1_0000),
        ];
        let gic = Gic::from_regs("gic", GicVersion::V3, &regs, 2).unwrap();
        assert_eq!(gic.distributor, regs[0]);
        assert_eq!(gic.redistributors.as_slice(), &regs[1..3]);
        assert_eq!(gic.cpu_interface, Some(regs[3]));
        assert_eq!(gic.hyp_interface, Some(regs[4]));
        assert_eq!(gic.vcpu_interface, Some(regs[5]));
        assert_eq!(gic.regions().count(), 6);
    }

    #[test]
    fn gicv2_needs_a_cpu_interface_and_has_no_redistributors() {
        let regs = [r(0x0800_0000, 0x1_0000), r(0x0801_0000, 0x1_0000)];
        let gic = Gic::from_regs("gic", GicVersion::V2, &regs, 0).unwrap();
        assert!(gic.redistributors.is_empty());
        assert_eq!(gic.cpu_interface, Some(regs[1]));
        assert_eq!(gic.hyp_interface, None);
        let err = Gic::from_regs("intc@8000000", GicVersion::V2, &regs[..1], 0).unwrap_err();
        assert_eq!(
            err,
            PlatformError::Malformed {
                node: "intc@8000000",
                property: "reg"
            }
        );
    }

    #[test]
    fn more_redistributor_regions_than_reg_entries_or_capacity_are_refused() {
        let regs = [r(0x0800_0000, 0x1_0000), r(0x080a_0000, 0xf6_0000)];
        assert!(matches!(
            Gic::from_regs("gic", GicVersion::V3, &regs, 2),
            Err(PlatformError::Malformed { .. })
        ));
        let err = Gic::from_regs("gic", GicVersion::V3, &regs, 17).unwrap_err();
        assert_eq!(
            err.to_string(),
            "device tree node gic: more than 16 GIC redistributor regions (the hyp's limit)"
        );
    }
}

//! Device trees of real SMMUv3 platforms, as Debian's arm64 kernel package
//! (linux-image 6.12, bookworm-backports) ships them. The expected values
//! were read from `dtc -I dtb -O dts` of each file (see
//! `tests/fixtures/README.md`).

use super::*;
use std::vec::Vec as StdVec;

const FVP_BASE_REVC: &[u8] = include_bytes!("../../tests/fixtures/fvp-base-revc.dtb");
const HIP07_D05: &[u8] = include_bytes!("../../tests/fixtures/hip07-d05.dtb");
const K3_J721E_EVM: &[u8] = include_bytes!("../../tests/fixtures/k3-j721e-evm.dtb");
const IMX95_19X19_EVK: &[u8] = include_bytes!("../../tests/fixtures/imx95-19x19-evk.dtb");

/// `board/fvp-base`'s board facts (the tests check some of them).
#[allow(dead_code)]
mod fvp_board {
    include!("../../board/fvp-base/board.rs");
}

fn r(start: u64, size: u64) -> PhysRange {
    PhysRange::new(start, size)
}

fn ram(p: &Platform<'_>) -> StdVec<PhysRange> {
    p.ram.iter().copied().collect()
}

#[test]
fn fvp_base_revc_has_what_board_fvp_base_assumes() {
    let p = Platform::parse(FVP_BASE_REVC, 0x8200_0000).unwrap();
    assert_eq!(p.model, "FVP Base RevC");
    assert_eq!(
        ram(&p),
        [r(0x8000_0000, 0x8000_0000), r(0x8_8000_0000, 0x8000_0000)]
    );
    let reserved: StdVec<_> = p.reserved.iter().copied().collect();
    assert_eq!(
        reserved,
        [r(0x1800_0000, 0x80_0000), r(0x8000_0000, 0x1_0000)],
        "vram@18000000 and the /memreserve/ entry"
    );
    // vram is no-map (outside RAM); the /memreserve/ entry is not.
    assert_eq!(p.no_map.as_slice(), [r(0x1800_0000, 0x80_0000)]);
    // UART0 sits three buses deep: 0x90000 on the iofpga bus, which
    // `ranges` put at 0x1c000000.
    assert_eq!(p.uart, Some(r(0x1c09_0000, 0x1000)));
    assert_eq!(p.uart.map(|u| u.start), fvp_board::EARLY_UART);
    assert_eq!(p.psci, Some(PsciConduit::Smc));
    assert_eq!(
        p.cpus.as_slice(),
        [
            0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100, 0x1_0200, 0x1_0300
        ]
    );

    assert_eq!(p.smmus.len(), 1);
    let smmu = &p.smmus[0];
    assert_eq!(smmu.regs, r(0x2b40_0000, 0x10_0000));
    assert_eq!(smmu.phandle, Some(0xe));
    // SPIs 74/79/75/77 (INTIDs + 32), listed as eventq, gerror, priq,
    // cmdq-sync.
    assert_eq!(
        smmu.irqs.as_slice(),
        [
            ("eventq", 106),
            ("gerror", 111),
            ("priq", 107),
            ("cmdq-sync", 109)
        ]
    );

    let gic = &p.gic;
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.distributor, r(0x2f00_0000, 0x1_0000));
    assert_eq!(gic.redistributors.as_slice(), [r(0x2f10_0000, 0x20_0000)]);
    assert_eq!(gic.cpu_interface, Some(r(0x2c00_0000, 0x2000)));
    assert_eq!(gic.hyp_interface, Some(r(0x2c01_0000, 0x2000)));
    assert_eq!(gic.vcpu_interface, Some(r(0x2c02_f000, 0x2000)));
    assert_eq!(gic.its.as_slice(), [r(0x2f02_0000, 0x2_0000)]);
    assert!(gic.v2m.is_empty());

    let pcie = p.pcie.as_ref().unwrap();
    assert_eq!(pcie.ecam, r(0x4000_0000, 0x1000_0000));
    assert_eq!((pcie.bus_start, pcie.bus_end), (0, 1));
    assert_eq!(
        pcie.windows.as_slice(),
        [PciWindow {
            space: PciSpace::Mem32,
            prefetchable: false,
            pci_addr: 0x5000_0000,
            cpu_addr: 0x5000_0000,
            size: 0x1000_0000,
        }]
    );
    // iommu-map = <0 &smmu 0 0x10000>: StreamID = requester ID.
    assert_eq!(pcie.stream_id(0x0108), Some((0xe, 0x108)));
    assert_eq!(p.smmu_by_phandle(0xe), Some(0));
}

#[test]
fn hip07_d05_has_64_cpus_four_redistributor_regions_and_eight_its() {
    let p = Platform::parse(HIP07_D05, 0).unwrap();
    assert_eq!(p.model, "Hisilicon Hip07 D05 Development Board");
    assert_eq!(ram(&p), [r(0, 0x4000_0000)]);
    assert_eq!(p.uart, Some(r(0x602b_0000, 0x1000)), "arm,sbsa-uart");
    assert_eq!(p.psci, Some(PsciConduit::Smc));
    assert_eq!(p.cpus.len(), 64);
    assert_eq!(p.cpus[0], 0x1_0000);
    assert_eq!(p.cpus[16], 0x3_0000);
    assert_eq!(p.cpus[63], 0x7_0303);

    // Five SMMUv3 nodes; iommu@a0040000 is disabled.
    let smmus: StdVec<_> = p.smmus.iter().map(|s| s.regs).collect();
    assert_eq!(
        smmus,
        [
            r(0xd004_0000, 0x2_0000),
            r(0x8_d004_0000, 0x2_0000),
            r(0x400_d004_0000, 0x2_0000),
            r(0x408_d004_0000, 0x2_0000),
        ]
    );
    assert_eq!(p.smmus[0].phandle, Some(0x70));
    assert!(
        p.smmus.iter().all(|s| s.irqs.is_empty()),
        "their interrupts go through mbigen, not GIC SPIs"
    );

    let gic = &p.gic;
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.distributor, r(0x4d00_0000, 0x1_0000));
    assert_eq!(
        gic.redistributors.as_slice(),
        [
            r(0x4d10_0000, 0x40_0000),
            r(0x6d10_0000, 0x40_0000),
            r(0x400_4d10_0000, 0x40_0000),
            r(0x400_6d10_0000, 0x40_0000),
        ]
    );
    assert_eq!(gic.cpu_interface, Some(r(0xfe00_0000, 0x1_0000)));
    assert_eq!(gic.hyp_interface, Some(r(0xfe01_0000, 0x1_0000)));
    assert_eq!(gic.vcpu_interface, Some(r(0xfe02_0000, 0x1_0000)));
    let its: StdVec<_> = gic.its.iter().map(|f| f.start).collect();
    assert_eq!(
        its,
        [
            0x4c00_0000,
            0x6c00_0000,
            0xc600_0000,
            0x8_c600_0000,
            0x400_4c00_0000,
            0x400_6c00_0000,
            0x400_c600_0000,
            0x408_c600_0000,
        ]
    );
    assert!(gic.its.iter().all(|f| f.size == 0x4_0000));
    assert_eq!(gic.regions().count(), 1 + 4 + 3 + 8);
    // Its PCIe host is `hisilicon,hip07-pcie-ecam` (ECAM with quirks),
    // not the generic host the hyp enumerates.
    assert!(p.pcie.is_none());
}

#[test]
fn k3_j721e_evm_translates_its_smmu_and_gic_through_the_soc_buses() {
    let p = Platform::parse(K3_J721E_EVM, 0).unwrap();
    assert_eq!(p.model, "Texas Instruments J721e EVM");
    assert_eq!(
        ram(&p),
        [r(0x8000_0000, 0x8000_0000), r(0x8_8000_0000, 0x8000_0000)]
    );
    // optee@9e800000 and the remote cores' carve-outs up to 0xa9000000 are
    // contiguous; ipc-memories@aa000000 stands alone.
    let reserved: StdVec<_> = p.reserved.iter().copied().collect();
    assert_eq!(
        reserved,
        [r(0x9e80_0000, 0xa80_0000), r(0xaa00_0000, 0x1c0_0000)]
    );
    assert_eq!(p.uart, None, "its UARTs are 8250s, not PL011s");
    assert_eq!(p.psci, Some(PsciConduit::Smc));
    assert_eq!(p.cpus.as_slice(), [0, 1]);

    assert_eq!(p.smmus.len(), 1);
    assert_eq!(p.smmus[0].regs, r(0x3660_0000, 0x10_0000));
    assert_eq!(p.smmus[0].phandle, Some(0xea));
    assert_eq!(
        p.smmus[0].irqs.as_slice(),
        [("eventq", 0x304 + 32), ("gerror", 0x300 + 32)]
    );

    let gic = &p.gic;
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.distributor, r(0x180_0000, 0x1_0000));
    assert_eq!(gic.redistributors.as_slice(), [r(0x190_0000, 0x10_0000)]);
    assert_eq!(gic.cpu_interface, Some(r(0x6f00_0000, 0x2000)));
    assert_eq!(gic.hyp_interface, Some(r(0x6f01_0000, 0x1000)));
    assert_eq!(gic.vcpu_interface, Some(r(0x6f02_0000, 0x2000)));
    assert_eq!(gic.its.as_slice(), [r(0x182_0000, 0x1_0000)]);
    assert!(p.pcie.is_none(), "ti,j721e-pcie-host, not ECAM-generic");
}

#[test]
fn imx95_19x19_evk_parses_and_its_disabled_smmu_is_skipped() {
    let p = Platform::parse(IMX95_19X19_EVK, 0).unwrap();
    assert_eq!(p.model, "NXP i.MX95 19X19 board");
    assert_eq!(ram(&p), [r(0x8000_0000, 0x8000_0000)]);
    assert_eq!(p.cpus.as_slice(), [0x0, 0x100, 0x200, 0x300, 0x400, 0x500]);
    assert_eq!(p.psci, Some(PsciConduit::Smc));
    // iommu@490d0000 has status = "disabled" in this tree.
    assert!(p.smmus.is_empty());
    assert_eq!(p.gic.version, GicVersion::V3);
    assert_eq!(p.gic.distributor, r(0x4800_0000, 0x1_0000));
    assert_eq!(p.gic.redistributors.as_slice(), [r(0x4806_0000, 0xc_0000)]);
    assert_eq!(p.gic.cpu_interface, None);
    assert_eq!(p.gic.its.as_slice(), [r(0x4804_0000, 0x2_0000)]);
    assert_eq!(p.uart, None, "LPUARTs, not PL011s");
    assert!(p.pcie.is_none(), "fsl,imx95-pcie, not ECAM-generic");
}

/// What `board/fvp-base` assumes holds on the FVP's own tree: the image
/// linked at 0x80200000 (board.ld) lies in RAM, clear of the /memreserve/d
/// first 64 KiB; the pool and the eight CPUs' stacks fit after it, clear
/// of the DTB (here at 0x82000000); an EL1 Image finds room.
#[test]
fn board_fvp_base_boot_layout_fits_the_fvp_tree() {
    use crate::layout::BootLayout;
    let p = Platform::parse(FVP_BASE_REVC, 0x8200_0000).unwrap();
    let image = r(0x8020_0000, 0x10_0000);
    let layout = BootLayout::new(&p, image, 32 << 20, core::iter::empty()).unwrap();
    assert_eq!(layout.pool, r(0x8220_0000, 32 << 20), "above the DTB");
    assert!(!layout.pool.overlaps(&p.dtb));
    assert_eq!(layout.stacks.count, 8);
    assert_eq!(layout.stacks.top(7), Some(layout.pool.end()));
    assert!(!layout.el1_free.overlaps(&r(0x8000_0000, 0x1_0000)));
    let linux = crate::image::ImageHeader {
        text_offset: 0,
        image_size: 0x2b2_0000,
        flags: 0xa,
    };
    let payload = layout.place_payload(&linux).unwrap();
    assert!(p.ram.contains_range(&payload) && !payload.overlaps(&layout.pool));
}

/// The FVP's bus masters outside its SMMU (it fronts PCIe only): the
/// virtio devices and the PL111 CLCD, whose frame buffer base register
/// makes it read any physical address, on the motherboard's bus.
#[test]
fn board_fvp_base_hides_its_virtio_devices_and_its_clcd() {
    let p = Platform::parse_hiding(FVP_BASE_REVC, 0, fvp_board::HIDDEN_BUS_MASTERS).unwrap();
    let hidden: StdVec<_> = p.hidden.to_vec();
    assert!(
        hidden.contains(&r(0x1c1f_0000, 0x1000)),
        "CLCD: {hidden:x?}"
    );
    for virtio in [0x1c13_0000, 0x1c14_0000, 0x1c15_0000, 0x1c20_0000] {
        assert!(hidden.iter().any(|h| h.start == virtio), "{virtio:#x}");
    }
    assert_eq!(hidden.len(), 5);
}

/// TI J721E's `/reserved-memory` children are all `no-map`: OP-TEE's
/// firewalled secure DDR at 0x9e800000, the remote cores' carve-outs up to
/// 0xa9000000 and their IPC memory at 0xaa000000.
const J721E_NO_MAP: [PhysRange; 2] = [
    PhysRange::new(0x9e80_0000, 0xa80_0000),
    PhysRange::new(0xaa00_0000, 0x1c0_0000),
];
const J721E_OPTEE: PhysRange = PhysRange::new(0x9e80_0000, 0x180_0000);

#[test]
fn k3_j721e_no_map_memory_is_left_out_of_the_el2_identity_map() {
    let p = Platform::parse(K3_J721E_EVM, 0).unwrap();
    assert_eq!(p.no_map.as_slice(), J721E_NO_MAP);
    let mapped: crate::memmap::RangeSet<16> = crate::layout::el2_ram(&p, &[]).unwrap();
    for hole in J721E_NO_MAP {
        assert!(!mapped.overlaps(&hole), "{hole} mapped at EL2");
    }
    assert!(!mapped.overlaps(&J721E_OPTEE));
    // The RAM around them stays mapped.
    for ram in [
        r(0x8000_0000, 0x1e80_0000),
        r(0xa900_0000, 0x100_0000),
        r(0xabc0_0000, 0x5440_0000),
        r(0x8_8000_0000, 0x8000_0000),
    ] {
        assert!(mapped.contains_range(&ram), "{ram} not mapped");
    }
}

#[test]
fn k3_j721e_optee_is_never_el1_ram_for_the_hyp_nor_a_devices() {
    use crate::mem::{Owner, OwnershipError, OwnershipTracker};
    use core::sync::atomic::AtomicU32;
    let p = Platform::parse(K3_J721E_EVM, 0).unwrap();
    let ram = ram(&p);
    let pages = OwnershipTracker::pages_needed(&ram).unwrap();
    let records: StdVec<AtomicU32> = (0..pages).map(|_| AtomicU32::new(0)).collect();
    let t = OwnershipTracker::new(&ram, &records).unwrap();
    for no_map in p.no_map.iter() {
        t.mark_no_map(*no_map).unwrap();
    }
    let optee = J721E_OPTEE;
    assert_eq!(t.owner(optee.start), Some(Owner::NoMap));
    assert!(t.is_ram(optee.start, optee.size), "RAM all the same");
    // Not a GIC table, an ITS queue or a virtqueue...
    assert!(!t.is_el1_ram(optee.start, 0x1_0000));
    assert!(!t.is_el1_ram(optee.start - 0x1000, 0x2000), "straddling");
    // ... and no device's.
    assert_eq!(
        t.claim_for_dma(optee.start, 0x1000),
        Err(OwnershipError::NoMap)
    );
    assert_eq!(t.dma_refs(), 0);
    // The page just below is EL1's in every way.
    assert!(t.is_el1_ram(optee.start - 0x1000, 0x1000));
    t.claim_for_dma(optee.start - 0x1000, 0x1000).unwrap();
}

#[test]
fn every_real_board_starts_its_cpus_through_psci_over_smc_so_the_hyp_boots_on_it() {
    for (name, dtb) in [
        ("fvp-base-revc", FVP_BASE_REVC),
        ("hip07-d05", HIP07_D05),
        ("k3-j721e-evm", K3_J721E_EVM),
        ("imx95-19x19-evk", IMX95_19X19_EVK),
    ] {
        let p = Platform::parse(dtb, 0).unwrap();
        assert!(p.cpus.len() > 1, "{name}");
        assert_eq!(p.check_cpus_start_through_psci(), Ok(()), "{name}");
    }
}

use super::*;
use crate::memmap::PhysRange;
use crate::vdev::gic::RedistributorSpan;
use crate::vdev::gic::fake::{FakeFrame, FakeRam};
use std::collections::BTreeMap;

/// EL1's RAM; everything else (e.g. [`EL2`]) is not.
const RAM: PhysRange = PhysRange::new(0x4000_0000, 0x100_0000);
const EL2: u64 = 0x4800_0000;
/// QEMU's redistributor region.
const BASE: u64 = 0x080a_0000;
const SIZE: u64 = 0xf6_0000;
/// GICD_TYPER with 16 interrupt ID bits (QEMU's).
const GICD_TYPER: u32 = 15 << 19;
/// A configuration table for 16 ID bits (56 KiB) and a pending table
/// (8 KiB, 64 KiB-aligned) in EL1's RAM.
const PROP: u64 = 0x4020_0000 | 15;
const PEND: u64 = 0x4030_0000;

fn no_side_effects(_: &mut BTreeMap<u64, u64>, _: u64) {}

/// Two GICv3 redistributors, processors 0 and 1.
fn frame() -> FakeFrame {
    let mut f = FakeFrame::new(no_side_effects);
    f.set(reg::TYPER, 0x1);
    f.set(
        STRIDE_V3 + reg::TYPER,
        0x1 | (1 << 8) | typer::LAST | (1 << 32),
    );
    for rd in [0, STRIDE_V3] {
        f.read_only.insert(rd + reg::TYPER, u64::MAX);
    }
    f
}

type Region<'a> = RedistRegion<&'a FakeFrame, &'a FakeRam>;

fn region<'a>(f: &'a FakeFrame, ram: &'a FakeRam) -> Region<'a> {
    RedistRegion::new(BASE, SIZE, None, f, ram, GICD_TYPER).unwrap()
}

fn ram() -> FakeRam {
    FakeRam::new(&[RAM])
}

fn enable_lpis(r: &Region<'_>, rd: u64) {
    r.write(rd + reg::CTLR, AccessSize::Word, ctlr::ENABLE_LPIS);
}

fn program(r: &Region<'_>, rd: u64, prop: u64, pend: u64) {
    r.write(rd + reg::PROPBASER, AccessSize::Doubleword, prop);
    r.write(rd + reg::PENDBASER, AccessSize::Doubleword, pend);
}

#[test]
fn the_region_is_walked_up_to_the_last_redistributor() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    assert_eq!(
        r.span(),
        RedistributorSpan {
            base: BASE,
            count: 2,
            stride: STRIDE_V3
        }
    );
    assert_eq!(r.first_processor(), 0);
    // The device tree's stride wins over GICR_TYPER.VLPIS.
    let f = FakeFrame::new(no_side_effects);
    f.set(reg::TYPER, 0x1 | (7 << 8));
    f.set(STRIDE_V4 + reg::TYPER, 0x1 | typer::LAST);
    let r = RedistRegion::new(BASE, SIZE, Some(STRIDE_V4), &f, &ram, GICD_TYPER).unwrap();
    assert_eq!((r.span().count, r.span().stride), (2, STRIDE_V4));
    assert_eq!(r.first_processor(), 7);
    let too_small = RedistRegion::new(BASE, 0x1_0000, None, &f, &ram, GICD_TYPER);
    assert!(matches!(too_small, Err(GicError::NoRedistributor)));
}

#[test]
fn a_region_stops_at_its_end_without_a_last_flag_and_refuses_mixed_vlpis() {
    let ram = ram();
    let f = FakeFrame::new(no_side_effects);
    for i in 0..8 {
        f.set(i * STRIDE_V3 + reg::TYPER, 0x1);
    }
    let r = RedistRegion::new(BASE, 3 * STRIDE_V3, None, &f, &ram, GICD_TYPER).unwrap();
    assert_eq!(r.span().count, 3);
    f.set(2 * STRIDE_V3 + reg::TYPER, 0x3);
    let mixed = RedistRegion::new(BASE, 3 * STRIDE_V3, None, &f, &ram, GICD_TYPER);
    assert!(matches!(mixed, Err(GicError::MixedRedistributors)));
}

#[test]
fn lpis_are_enabled_when_both_tables_are_el1_ram() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    program(&r, STRIDE_V3, PROP, PEND);
    enable_lpis(&r, STRIDE_V3);
    assert_eq!(
        r.read(STRIDE_V3 + reg::CTLR, AccessSize::Word),
        ctlr::ENABLE_LPIS
    );
    assert_eq!(
        r.read(reg::CTLR, AccessSize::Word),
        0,
        "the other one untouched"
    );
    assert_eq!(
        r.read(STRIDE_V3 + reg::PROPBASER, AccessSize::Doubleword),
        PROP
    );
}

#[test]
fn a_configuration_table_outside_el1s_ram_is_dropped_and_lpis_stay_off() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    for prop in [EL2 | 15, (RAM.end() - 0x1000) | 15, 0x0905_0000 | 15] {
        program(&r, 0, prop, PEND);
        assert_eq!(
            r.read(reg::PROPBASER, AccessSize::Doubleword),
            0,
            "{prop:#x}"
        );
    }
    enable_lpis(&r, 0);
    assert_eq!(f.get(reg::CTLR) & ctlr::ENABLE_LPIS, 0);
    assert_eq!(r.refusals().count(Refusal::ConfigTableNotEl1Ram), 3);
    assert_eq!(r.refusals().count(Refusal::LpiTablesNotEl1Ram), 1);
}

#[test]
fn a_pending_table_outside_el1s_ram_drops_only_the_enable_bit() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    program(&r, 0, PROP, EL2);
    // EnableLPIs and a DPG bit: the DPG bit stays.
    r.write(reg::CTLR, AccessSize::Word, ctlr::ENABLE_LPIS | (1 << 24));
    assert_eq!(f.get(reg::CTLR), 1 << 24);
    assert_eq!(r.refusals().count(Refusal::LpiTablesNotEl1Ram), 1);
    // A pending table just past the end of EL1's RAM.
    program(&r, 0, PROP, RAM.end());
    enable_lpis(&r, 0);
    assert_eq!(f.get(reg::CTLR) & ctlr::ENABLE_LPIS, 0);
}

#[test]
fn table_sizes_follow_the_smaller_of_propbaser_and_gicd_id_bits() {
    let ram = ram();
    // 20 ID bits at the distributor: the configuration table is 1 MiB less
    // 8 KiB, the pending table 128 KiB.
    let gicd = 19 << 19;
    let f = frame();
    let r = RedistRegion::new(BASE, SIZE, None, &f, &ram, gicd).unwrap();
    let prop = 0x4000_0000 | 19;
    program(&r, 0, prop, RAM.end() - 0x1_0000);
    enable_lpis(&r, 0);
    assert_eq!(f.get(reg::CTLR), 0, "128 KiB do not fit in the last 64 KiB");
    program(&r, 0, prop, RAM.end() - 0x2_0000);
    enable_lpis(&r, 0);
    assert_eq!(f.get(reg::CTLR), ctlr::ENABLE_LPIS);
    // PROPBASER asking for 32 bits is capped by the distributor's 16.
    let (f, ram) = (frame(), ram);
    let r = region(&f, &ram);
    program(&r, 0, 0x4020_0000 | 31, RAM.end() - 0x1_0000);
    enable_lpis(&r, 0);
    assert_eq!(f.get(reg::CTLR), ctlr::ENABLE_LPIS);
    // Fewer than 14 bits still checks the smallest tables.
    assert_eq!(
        config_table(0x4020_0000 | 3, GICD_TYPER),
        (0x4020_0000, 8192)
    );
    assert_eq!(pending_table(3, PEND, GICD_TYPER), (PEND, 2048));
}

#[test]
fn table_bases_cannot_change_while_lpis_are_enabled_or_being_disabled() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    program(&r, 0, PROP, PEND);
    enable_lpis(&r, 0);
    program(&r, 0, 0x4050_0000 | 15, 0x4060_0000);
    assert_eq!(f.get(reg::PROPBASER), PROP);
    assert_eq!(f.get(reg::PENDBASER), PEND);
    // Disabling always passes; while RWP says it is in progress, the bases
    // still cannot change.
    r.write(reg::CTLR, AccessSize::Word, 0);
    assert_eq!(f.get(reg::CTLR), 0);
    f.set(reg::CTLR, ctlr::RWP);
    program(&r, 0, 0x4050_0000 | 15, 0x4060_0000);
    assert_eq!(f.get(reg::PROPBASER), PROP);
    assert_eq!(r.refusals().count(Refusal::LpisEnabled), 4);
    f.set(reg::CTLR, 0);
    program(&r, 0, 0x4050_0000 | 15, 0x4060_0000);
    assert_eq!(f.get(reg::PROPBASER), 0x4050_0000 | 15);
}

#[test]
fn a_base_written_as_two_halves_is_checked_as_a_whole() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    r.write(reg::PROPBASER, AccessSize::Word, PROP & 0xffff_ffff);
    assert_eq!(f.get(reg::PROPBASER), PROP);
    // A high half naming memory far above EL1's RAM is refused.
    r.write(reg::PROPBASER + 4, AccessSize::Word, 0x10);
    assert_eq!(f.get(reg::PROPBASER), PROP);
    assert_eq!(r.read(reg::PROPBASER + 4, AccessSize::Word), 0);
}

#[test]
fn virtual_lpi_table_bases_cannot_be_written() {
    let ram = ram();
    let f = FakeFrame::new(no_side_effects);
    // One GICv4 redistributor: four frames.
    f.set(reg::TYPER, typer::VLPIS | typer::LAST | 1);
    let r = RedistRegion::new(BASE, SIZE, None, &f, &ram, GICD_TYPER).unwrap();
    r.write(reg::VPROPBASER, AccessSize::Doubleword, 0x4020_0000);
    r.write(
        reg::VPENDBASER,
        AccessSize::Doubleword,
        (1 << 63) | 0x4030_0000,
    );
    r.write(reg::VPENDBASER + 4, AccessSize::Word, 1 << 31);
    assert_eq!(f.get(reg::VPROPBASER), 0);
    assert_eq!(f.get(reg::VPENDBASER), 0);
    assert_eq!(r.refusals().count(Refusal::VirtualLpis), 3);
    assert_eq!(r.span().count, 1);
}

#[test]
fn accesses_past_the_last_redistributor_read_zero_and_write_nothing() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    let past = 2 * STRIDE_V3;
    assert_eq!(r.read(past + reg::TYPER, AccessSize::Doubleword), 0);
    r.write(past + reg::CTLR, AccessSize::Word, 1);
    assert!(f.writes.lock().unwrap().is_empty());
    assert_eq!(r.refusals().count(Refusal::NoRedistributor), 2);
}

#[test]
fn only_architected_access_sizes_pass_through() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    // Bytes: the priority registers only.
    r.write(reg::SGI_BASE + 0x41d, AccessSize::Byte, 0xa0);
    assert_eq!(f.get(reg::SGI_BASE + 0x418) >> 40, 0xa0);
    r.write(reg::SGI_BASE + 0x100, AccessSize::Byte, 1);
    r.write(reg::WAKER, AccessSize::Halfword, 0);
    // 64 bits: 64-bit registers only (GICR_CTLR and GICR_WAKER are 32-bit).
    r.write(reg::CTLR, AccessSize::Doubleword, 1);
    assert_eq!(r.read(reg::WAKER & !7, AccessSize::Doubleword), 0);
    assert_eq!(r.refusals().count(Refusal::AccessSize), 4);
    assert_eq!(f.writes.lock().unwrap().len(), 1);
    assert_eq!(
        r.read(STRIDE_V3 + reg::TYPER, AccessSize::Doubleword) >> 32,
        1
    );
    r.write(reg::WAKER, AccessSize::Word, 0);
    r.write(reg::SGI_BASE + 0x100, AccessSize::Word, 0x0800_0000);
    assert_eq!(f.writes.lock().unwrap().len(), 3);
}

#[test]
fn lpis_left_on_by_firmware_over_el2_memory_are_turned_off_at_take_over() {
    let ram = ram();
    let f = frame();
    f.set(reg::CTLR, ctlr::ENABLE_LPIS);
    f.set(reg::PROPBASER, EL2 | 15);
    f.set(STRIDE_V3 + reg::CTLR, ctlr::ENABLE_LPIS);
    f.set(STRIDE_V3 + reg::PROPBASER, PROP);
    f.set(STRIDE_V3 + reg::PENDBASER, PEND);
    let _r = region(&f, &ram);
    assert_eq!(f.get(reg::CTLR), 0);
    assert_eq!(
        f.get(STRIDE_V3 + reg::CTLR),
        ctlr::ENABLE_LPIS,
        "EL1's tables: left on"
    );
    // A redistributor whose EnableLPIs cannot be cleared stops the boot.
    let mut f = frame();
    f.read_only.insert(reg::CTLR, ctlr::ENABLE_LPIS);
    f.set(reg::CTLR, ctlr::ENABLE_LPIS);
    let r = RedistRegion::new(BASE, SIZE, None, &f, &ram, GICD_TYPER);
    assert!(matches!(r, Err(GicError::LpisStuck)));
}

#[test]
fn a_resident_vpe_left_by_firmware_is_made_non_resident() {
    let ram = ram();
    let mut f = FakeFrame::new(no_side_effects);
    f.set(reg::TYPER, typer::VLPIS | typer::LAST);
    f.set(reg::VPENDBASER, VPEND_VALID | EL2);
    let _r = RedistRegion::new(BASE, SIZE, None, &f, &ram, GICD_TYPER).unwrap();
    assert_eq!(f.get(reg::VPENDBASER) & VPEND_VALID, 0);
    f.read_only.insert(reg::VPENDBASER, VPEND_VALID);
    f.set(reg::VPENDBASER, VPEND_VALID);
    let r = RedistRegion::new(BASE, SIZE, None, &f, &ram, GICD_TYPER);
    assert!(matches!(r, Err(GicError::VpeResident)));
}

#[test]
fn padding_between_redistributors_reads_zero_and_ignores_writes() {
    // Two GICv3 redistributors (two frames each) 256 KiB apart: the two
    // frames after each are padding no register decodes.
    let f = FakeFrame::new(no_side_effects);
    f.set(reg::TYPER, 0x1);
    f.set(0x4_0000 + reg::TYPER, 0x1 | typer::LAST);
    let ram = ram();
    let r = RedistRegion::new(BASE, 0x8_0000, Some(0x4_0000), &f, &ram, GICD_TYPER).unwrap();
    assert_eq!(r.span().count, 2);
    f.reads.lock().unwrap().clear();
    for padding in [0x2_0000, 0x3_0000, 0x3_fffc, 0x6_0000] {
        assert_eq!(r.read(padding, AccessSize::Word), 0);
        r.write(padding, AccessSize::Word, 0xdead);
    }
    assert!(f.reads.lock().unwrap().is_empty(), "padding read");
    assert!(f.writes.lock().unwrap().is_empty(), "padding written");
    assert_eq!(r.refusals().count(Refusal::NoRegister), 8);
    // The second redistributor's own frames still pass.
    assert_eq!(
        r.read(0x4_0000 + reg::TYPER, AccessSize::Doubleword),
        0x1 | typer::LAST
    );
}

#[test]
fn a_stride_too_small_for_every_frame_of_a_redistributor_is_refused() {
    // GICv4 redistributors (VLPIS) have four frames: with a 128 KiB stride,
    // redistributor 0's VLPI_base would be redistributor 1's RD_base, and
    // GICR_VPENDBASER would be checked as a GICR_PENDBASER.
    let f = FakeFrame::new(no_side_effects);
    f.set(reg::TYPER, 0x3);
    f.set(STRIDE_V3 + reg::TYPER, 0x3 | typer::LAST);
    let ram = ram();
    let r = RedistRegion::new(BASE, SIZE, Some(STRIDE_V3), &f, &ram, GICD_TYPER);
    assert!(matches!(r, Err(GicError::BadStride)));
    assert!(f.writes_to(reg::VPENDBASER).is_empty());
    // Not a multiple of 64 KiB either; GICv3 frames with a stride that
    // fits are accepted.
    let f = frame();
    let r = RedistRegion::new(BASE, SIZE, Some(STRIDE_V3 + 0x1000), &f, &ram, GICD_TYPER);
    assert!(matches!(r, Err(GicError::BadStride)));
    assert!(RedistRegion::new(BASE, SIZE, Some(STRIDE_V4), &f, &ram, GICD_TYPER).is_ok());
}

#[test]
fn only_architected_registers_pass_through() {
    let (f, ram) = (frame(), ram());
    let r = region(&f, &ram);
    f.reads.lock().unwrap().clear();
    // IMPLEMENTATION DEFINED (a GIC-600's GICR_FCTLR, GICR_PWRR, GICR_CLASSR),
    // reserved, and IMPLEMENTATION DEFINED in SGI_base.
    let unarchitected = [
        0x20,
        0x24,
        0x28,
        0x50,
        0x80,
        0xc4,
        0xc000,
        reg::SGI_BASE,
        reg::SGI_BASE + 0x8c,
        reg::SGI_BASE + 0x460,
        reg::SGI_BASE + 0x0f00,
        reg::SGI_BASE + 0xc000,
        reg::SGI_BASE + 0xffe8,
    ];
    for at in unarchitected {
        assert_eq!(r.read(at, AccessSize::Word), 0, "{at:#x}");
        r.write(at, AccessSize::Word, 1);
    }
    assert!(f.reads.lock().unwrap().is_empty());
    assert!(f.writes.lock().unwrap().is_empty());
    assert_eq!(
        r.refusals().count(Refusal::NoRegister),
        2 * unarchitected.len() as u32
    );
    // What Linux uses passes: GICR_PIDR2, GICR_SYNCR, GICR_INVLPIR, the
    // extended PPI range's GICR_ISENABLER2E and GICR_ICFGR5E, GICR_INMIR0.
    f.set(0xffe8, 0x3b);
    assert_eq!(r.read(0xffe8, AccessSize::Word), 0x3b);
    r.read(0xc0, AccessSize::Word);
    r.write(0xa0, AccessSize::Doubleword, 8192);
    r.write(reg::SGI_BASE + 0x108, AccessSize::Word, 1);
    r.write(reg::SGI_BASE + 0xc14, AccessSize::Word, 2);
    r.write(reg::SGI_BASE + 0xf80, AccessSize::Word, 4);
    assert_eq!(f.writes.lock().unwrap().len(), 4);
    assert_eq!(r.refusals().count(Refusal::NoRegister), 26);
}

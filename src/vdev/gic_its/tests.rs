use super::*;
use crate::memmap::PhysRange;
use crate::smmu::fake::FakeDma;
use crate::vdev::gic::fake::{FakeFrame, FakeRam};
use std::collections::BTreeMap;

/// EL1's RAM; everything else (e.g. [`EL2`]) is not.
const RAM: PhysRange = PhysRange::new(0x4000_0000, 0x100_0000);
/// An address in EL2's memory.
const EL2: u64 = 0x4800_0000;
/// Two redistributors' RD_base frames.
const RD: [u64; 2] = [0x080a_0000, 0x080c_0000];

fn redistributors() -> Redistributors {
    let mut r = Redistributors::default();
    let span = crate::vdev::gic::RedistributorSpan {
        base: RD[0],
        count: 2,
        stride: RD[1] - RD[0],
    };
    r.add(span, 0).unwrap();
    r
}
/// GITS_TYPER: physical LPIs, 12-byte ITT entries, 16 EventID bits, 17
/// DeviceID bits (QEMU's values).
const TYPER: u64 = 1 | (0xb << 4) | (15 << 8) | (16 << 13);
/// A register of the fake itself: while non-zero, the fake ITS reads every
/// command as soon as GITS_CWRITER is written with the ITS enabled.
const CONSUME: u64 = 0xff00;
/// GITS_BASER0: a device table with 8-byte entries.
const DEVICE_BASER: u64 = (1 << 56) | (7 << 48);
/// GITS_BASER1: a collection table with 8-byte entries.
const COLLECTION_BASER: u64 = (4 << 56) | (7 << 48);
/// Page_Size encodings.
const PAGE_4K: u64 = 0 << 8;
const PAGE_64K: u64 = 2 << 8;
/// EL1's command queue (one 4 KiB page: 128 commands).
const QUEUE: u64 = 0x4010_0000;
/// Inner-shareable, write-back: what Linux programs.
const ATTRIBUTES: u64 = (7 << 59) | (1 << 10);

/// The side effects of the real ITS the emulation relies on.
fn hook(regs: &mut BTreeMap<u64, u64>, offset: u64) {
    let get = |regs: &BTreeMap<u64, u64>, r| regs.get(&r).copied().unwrap_or(0);
    match offset {
        // The architecture resets GITS_CREADR when GITS_CBASER is written.
        reg::CBASER => {
            regs.insert(reg::CREADR, 0);
        }
        reg::CWRITER if get(regs, reg::CTLR) & ctlr::ENABLED != 0 && get(regs, CONSUME) != 0 => {
            let to = get(regs, reg::CWRITER) & cwriter::OFFSET;
            regs.insert(reg::CREADR, to);
        }
        _ => {}
    }
}

struct Rig {
    frame: FakeFrame,
    ram: FakeRam,
    dma: FakeDma,
}

fn rig() -> Rig {
    let mut frame = FakeFrame::new(hook);
    frame.set(reg::CTLR, ctlr::QUIESCENT);
    frame.set(reg::TYPER, TYPER);
    frame.set(reg::BASER, DEVICE_BASER | PAGE_64K);
    frame.set(reg::BASER + 8, COLLECTION_BASER | PAGE_64K);
    let fixed = (0b111 << 56) | (0x1f << 48);
    frame.read_only.insert(reg::BASER, fixed);
    frame.read_only.insert(reg::BASER + 8, fixed);
    for n in 2..8 {
        // Unimplemented: RAZ/WI.
        frame.read_only.insert(reg::BASER + 8 * n, u64::MAX);
    }
    frame.read_only.insert(reg::CTLR, ctlr::QUIESCENT);
    frame.read_only.insert(reg::TYPER, u64::MAX);
    Rig {
        frame,
        ram: FakeRam::new(&[RAM]),
        dma: FakeDma::new(),
    }
}

type TestIts<'a> = Its<&'a FakeFrame, &'a FakeRam, &'a FakeDma>;

fn its(r: &Rig) -> TestIts<'_> {
    Its::new(0x0808_0000, &r.frame, &r.ram, &r.dma, &redistributors()).unwrap()
}

/// The same, on an ITS that names redistributors by address.
fn its_pta(r: &Rig) -> TestIts<'_> {
    r.frame.set(reg::TYPER, TYPER | typer::PTA);
    its(r)
}

fn baser_at(pa: u64, page: u64, pages: u64) -> u64 {
    baser::VALID | ATTRIBUTES | page | (pages - 1) | baser::encode_address(pa, page_bytes(page))
}

fn page_bytes(page: u64) -> u64 {
    baser::page_bytes(page).unwrap()
}

fn enable(r: &Rig, its: &TestIts<'_>) {
    its.write(reg::CTLR, AccessSize::Word, ctlr::ENABLED);
    r.frame.set(reg::CTLR, ctlr::ENABLED);
}

// ---------------------------------------------------------------- tables

#[test]
fn an_el1_table_is_given_to_the_its_as_a_zeroed_hyp_copy_and_reads_back_as_el1_wrote_it() {
    let r = rig();
    let its = its(&r);
    let el1_table = 0x4020_0000;
    r.ram.put(el1_table, &[0xdead_beef; 16]);
    let value = DEVICE_BASER | baser_at(el1_table, PAGE_64K, 2);
    its.write(reg::BASER, AccessSize::Doubleword, value);
    assert_eq!(
        its.read(reg::BASER, AccessSize::Doubleword),
        value,
        "EL1 sees its own table"
    );
    let real = r.frame.get(reg::BASER);
    let copy = baser::table_address(real, 0x1_0000);
    assert_ne!(copy, el1_table, "the ITS never gets EL1's memory");
    assert!(
        r.dma.contains(copy, 2 * 0x1_0000),
        "a 128 KiB copy from the hyp's pool"
    );
    assert!(
        copy.is_multiple_of(0x1_0000),
        "aligned to the ITS page size"
    );
    assert_eq!(r.dma.read(copy), 0, "zeroed, not EL1's contents");
    assert_eq!(
        real & !baser::ADDRESS,
        value & !baser::ADDRESS,
        "EL1's other fields"
    );
    assert!(r.dma.state().cleans >= 1, "cleaned for a non-coherent ITS");
    assert_eq!(
        r.ram.reads_of(el1_table),
        0,
        "the hyp never reads EL1's table"
    );
}

#[test]
fn a_table_in_el2_memory_or_mmio_is_dropped_and_reads_back_unchanged() {
    let r = rig();
    let its = its(&r);
    let before = its.read(reg::BASER, AccessSize::Doubleword);
    for pa in [EL2, 0x0905_0000, RAM.end() - 0x1_0000] {
        // The last one starts in EL1's RAM and runs past its end.
        its.write(
            reg::BASER,
            AccessSize::Doubleword,
            DEVICE_BASER | baser_at(pa, PAGE_64K, 2),
        );
        assert_eq!(
            its.read(reg::BASER, AccessSize::Doubleword),
            before,
            "{pa:#x}"
        );
        assert_eq!(r.frame.get(reg::BASER), before);
    }
    assert_eq!(its.refusals().count(Refusal::TableNotEl1Ram), 3);
    assert_eq!(r.dma.live_regions(), 0);
}

#[test]
fn indirect_is_forced_off_so_the_its_reports_flat_tables_only() {
    let r = rig();
    let its = its(&r);
    // Linux's probe: Indirect with Valid clear, then read back.
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser::INDIRECT,
    );
    assert_eq!(
        its.read(reg::BASER, AccessSize::Doubleword) & baser::INDIRECT,
        0
    );
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser::INDIRECT | baser_at(0x4020_0000, PAGE_4K, 1),
    );
    assert_eq!(r.frame.get(reg::BASER) & baser::INDIRECT, 0);
    assert_ne!(
        r.frame.get(reg::BASER) & baser::VALID,
        0,
        "accepted as a flat table"
    );
}

#[test]
fn with_64k_pages_address_bits_51_to_48_come_from_bits_15_to_12() {
    let r = rig();
    let its = its(&r);
    // PA 0x1_0000_4020_0000 is not EL1's RAM; read as a 4 KiB-page value
    // it would be 0x4020_1000, which is.
    let high = 0x1_0000_4020_0000;
    let v = DEVICE_BASER | baser_at(high, PAGE_64K, 1);
    assert_eq!(v & 0xf000, 0x1000);
    its.write(reg::BASER, AccessSize::Doubleword, v);
    assert_eq!(r.frame.get(reg::BASER) & baser::VALID, 0);
    assert_eq!(its.refusals().count(Refusal::TableNotEl1Ram), 1);
    assert_eq!(baser::table_address(v, 0x1_0000), high);
    assert_eq!(baser::table_address(v, 0x1000), 0x4020_1000);
}

#[test]
fn the_table_size_uses_the_page_size_the_its_keeps_not_the_one_el1_wrote() {
    let mut r = rig();
    // An ITS whose page size is fixed at 64 KiB.
    r.frame
        .read_only
        .insert(reg::BASER, (0b111 << 56) | (0x1f << 48) | baser::PAGE_SIZE);
    let its = its(&r);
    // EL1 asks for 2 pages of 4 KiB at the last 8 KiB of its RAM: as
    // 64 KiB pages that table runs 120 KiB past the end.
    let pa = RAM.end() - 0x2000;
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser_at(pa, PAGE_4K, 2),
    );
    assert_eq!(r.frame.get(reg::BASER) & baser::VALID, 0);
    assert_eq!(its.refusals().count(Refusal::TableNotEl1Ram), 1);
    // The same request with room for 64 KiB pages is taken, as 128 KiB.
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser_at(0x4020_0000, PAGE_4K, 2),
    );
    let real = r.frame.get(reg::BASER);
    assert_ne!(real & baser::VALID, 0);
    assert!(
        r.dma
            .contains(baser::table_address(real, 0x1_0000), 0x2_0000)
    );
}

#[test]
fn table_and_queue_writes_while_the_its_is_enabled_or_busy_are_dropped() {
    let r = rig();
    let its = its(&r);
    let table = DEVICE_BASER | baser_at(0x4020_0000, PAGE_64K, 1);
    let queue = cbaser::VALID | ATTRIBUTES | QUEUE;
    for ctl in [ctlr::ENABLED | ctlr::QUIESCENT, ctlr::ENABLED, 0] {
        r.frame.set(reg::CTLR, ctl);
        its.write(reg::BASER, AccessSize::Doubleword, table);
        its.write(reg::CBASER, AccessSize::Doubleword, queue);
        assert_eq!(r.frame.get(reg::BASER) & baser::VALID, 0, "CTLR {ctl:#x}");
        assert_eq!(r.frame.get(reg::CBASER), 0, "CTLR {ctl:#x}");
    }
    assert_eq!(its.refusals().count(Refusal::ItsBusy), 6);
    assert_eq!(r.dma.live_regions(), 0);
}

#[test]
fn rewriting_the_same_table_keeps_the_hyps_copy_and_a_new_one_frees_the_old() {
    let r = rig();
    let its = its(&r);
    let v = DEVICE_BASER | baser_at(0x4020_0000, PAGE_64K, 1);
    its.write(reg::BASER, AccessSize::Doubleword, v);
    let copy = baser::table_address(r.frame.get(reg::BASER), 0x1_0000);
    r.dma.write(copy + 8, 0x1234); // an entry the ITS wrote
    its.write(reg::BASER, AccessSize::Doubleword, v);
    assert_eq!(
        baser::table_address(r.frame.get(reg::BASER), 0x1_0000),
        copy
    );
    assert_eq!(
        r.dma.read(copy + 8),
        0x1234,
        "entries survive (e.g. a resume)"
    );
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser_at(0x4040_0000, PAGE_64K, 1),
    );
    assert_eq!(
        r.dma.live_regions(),
        1,
        "the old copy went back to the pool"
    );
    its.write(reg::BASER, AccessSize::Doubleword, DEVICE_BASER);
    assert_eq!(r.dma.live_regions(), 0, "an invalid table needs no copy");
    assert_eq!(its.read(reg::BASER, AccessSize::Doubleword), DEVICE_BASER);
}

#[test]
fn a_value_the_its_does_not_keep_is_undone() {
    let mut r = rig();
    // An ITS with a 32-bit physical address space: the copy (a host
    // address) does not fit, so the ITS would use another table.
    r.frame.read_only.insert(
        reg::BASER,
        (0b111 << 56) | (0x1f << 48) | (((1 << 16) - 1) << 32),
    );
    let its = its(&r);
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser_at(0x4020_0000, PAGE_64K, 1),
    );
    assert_eq!(
        r.frame.get(reg::BASER),
        DEVICE_BASER | PAGE_64K,
        "the old value back"
    );
    assert_eq!(its.refusals().count(Refusal::DidNotStick), 1);
    assert_eq!(r.dma.live_regions(), 0);
}

#[test]
fn no_pool_memory_for_the_copy_drops_the_write() {
    let r = rig();
    r.dma.state().limit = 0;
    let its = its(&r);
    its.write(
        reg::BASER,
        AccessSize::Doubleword,
        DEVICE_BASER | baser_at(0x4020_0000, PAGE_64K, 1),
    );
    its.write(reg::CBASER, AccessSize::Doubleword, cbaser::VALID | QUEUE);
    assert_eq!(r.frame.get(reg::BASER) & baser::VALID, 0);
    assert_eq!(r.frame.get(reg::CBASER), 0);
    assert_eq!(its.refusals().count(Refusal::NoMemory), 2);
}

#[test]
fn an_unimplemented_table_register_is_left_alone() {
    let r = rig();
    let its = its(&r);
    its.write(
        reg::BASER + 16,
        AccessSize::Doubleword,
        baser_at(0x4020_0000, PAGE_64K, 1),
    );
    assert_eq!(its.read(reg::BASER + 16, AccessSize::Doubleword), 0);
    assert_eq!(r.dma.live_regions(), 0);
}

#[test]
fn a_table_written_as_two_32_bit_halves_is_checked_as_a_whole() {
    let r = rig();
    let its = its(&r);
    let v = DEVICE_BASER | baser_at(0x4020_0000, PAGE_64K, 1);
    its.write(reg::BASER, AccessSize::Word, v & 0xffff_ffff);
    assert_eq!(r.frame.get(reg::BASER) & baser::VALID, 0, "not valid yet");
    its.write(reg::BASER + 4, AccessSize::Word, v >> 32);
    assert_eq!(its.read(reg::BASER, AccessSize::Doubleword), v);
    assert_eq!(its.read(reg::BASER + 4, AccessSize::Word), v >> 32);
    assert_ne!(
        baser::table_address(r.frame.get(reg::BASER), 0x1_0000),
        0x4020_0000
    );
    // The high half naming EL2's memory is refused as a whole.
    let bad = DEVICE_BASER | baser_at(0x80_0000_0000, PAGE_64K, 1);
    its.write(reg::BASER + 4, AccessSize::Word, bad >> 32);
    assert_eq!(its.read(reg::BASER, AccessSize::Doubleword), v);
}

// ----------------------------------------------------------------- queue

/// An ITS with EL1's queue at [`QUEUE`] accepted.
fn with_queue(r: &Rig, pta: bool) -> TestIts<'_> {
    let its = if pta { its_pta(r) } else { its(r) };
    its.write(
        reg::CBASER,
        AccessSize::Doubleword,
        cbaser::VALID | ATTRIBUTES | QUEUE,
    );
    its
}

/// The hyp's copy of the queue, which the ITS reads.
fn copy_of_queue(r: &Rig) -> u64 {
    r.frame.get(reg::CBASER) & cbaser::ADDRESS
}

fn put(r: &Rig, slot: u64, command: [u64; 4]) {
    r.ram.put(QUEUE + 32 * slot, &command);
}

/// What the ITS finds in slot `slot`.
fn seen(r: &Rig, slot: u64) -> [u64; 4] {
    let q = copy_of_queue(r);
    core::array::from_fn(|i| r.dma.read(q + 32 * slot + 8 * i as u64))
}

fn post(its: &TestIts<'_>, slot: u64) {
    its.write(reg::CWRITER, AccessSize::Doubleword, 32 * slot);
}

fn mapd(device: u64, itt: u64, event_bits: u64) -> [u64; 4] {
    [
        cmd::MAPD | (device << 32),
        event_bits - 1,
        cmd::VALID | itt,
        0,
    ]
}

fn mapc(collection: u64, target: u64) -> [u64; 4] {
    [cmd::MAPC, 0, cmd::VALID | target | collection, 0]
}

fn mapti(device: u64, event: u64, lpi: u64, collection: u64) -> [u64; 4] {
    [
        cmd::MAPTI | (device << 32),
        event | (lpi << 32),
        collection,
        0,
    ]
}

#[test]
fn el1s_queue_is_given_to_the_its_as_a_hyp_copy_and_reads_back_as_el1_wrote_it() {
    let r = rig();
    let its = with_queue(&r, false);
    let value = cbaser::VALID | ATTRIBUTES | QUEUE;
    assert_eq!(its.read(reg::CBASER, AccessSize::Doubleword), value);
    assert_eq!(its.read(reg::CBASER, AccessSize::Word), value & 0xffff_ffff);
    let copy = copy_of_queue(&r);
    assert_ne!(copy, QUEUE);
    assert!(copy.is_multiple_of(0x1_0000));
    assert!(r.dma.contains(copy, 0x1000));
    assert_eq!(
        r.frame.get(reg::CBASER) & !cbaser::ADDRESS,
        value & !cbaser::ADDRESS
    );
}

#[test]
fn a_queue_outside_el1s_ram_is_dropped() {
    let r = rig();
    let its = its(&r);
    for pa in [EL2, RAM.end() - 0x1000] {
        // 16 pages at the last page of RAM run past its end.
        its.write(reg::CBASER, AccessSize::Doubleword, cbaser::VALID | pa | 15);
        assert_eq!(its.read(reg::CBASER, AccessSize::Doubleword), 0);
    }
    assert_eq!(its.refusals().count(Refusal::QueueNotEl1Ram), 2);
    assert_eq!(r.dma.live_regions(), 0);
}

#[test]
fn posted_commands_reach_the_its_copy_at_the_same_offsets_before_cwriter_moves() {
    let r = rig();
    let its = with_queue(&r, false);
    let commands = [
        mapd(1, 0x4030_0000, 2),
        mapc(0, 0),
        mapti(1, 0, 8192, 0),
        [cmd::INT | (1 << 32), 0, 0, 0],
        [cmd::SYNC, 0, 0, 0],
    ];
    for (i, c) in commands.iter().enumerate() {
        put(&r, i as u64, *c);
    }
    let cleans = r.dma.state().cleans;
    post(&its, 5);
    for (i, c) in commands.iter().enumerate() {
        assert_eq!(seen(&r, i as u64), *c, "slot {i}");
    }
    assert_eq!(r.frame.get(reg::CWRITER), 5 * 32);
    assert_eq!(its.read(reg::CWRITER, AccessSize::Doubleword), 5 * 32);
    assert!(r.dma.state().cleans > cleans, "cleaned before GITS_CWRITER");
    assert_eq!(its.refusals().count(Refusal::UnknownCommand), 0);
}

#[test]
fn every_refused_command_becomes_a_sync_to_a_real_redistributor() {
    let r = rig();
    let its = with_queue(&r, true);
    let rd0 = RD[0];
    let bad = [
        (mapd(1, EL2, 2), Refusal::IttNotEl1Ram),
        // The ITT starts in EL1's RAM and runs past its end.
        (mapd(1, RAM.end() - 0x100, 8), Refusal::IttNotEl1Ram),
        // More EventID bits than GITS_TYPER allows.
        (mapd(1, 0x4030_0000, 17), Refusal::IttNotEl1Ram),
        (mapc(0, 0x0900_0000), Refusal::NotARedistributor),
        (
            [cmd::SYNC, 0, EL2 & cmd::RDBASE, 0],
            Refusal::NotARedistributor,
        ),
        (
            [cmd::MOVALL, 0, rd0, 0x0900_0000],
            Refusal::NotARedistributor,
        ),
        (
            [cmd::MOVALL, 0, 0x0900_0000, rd0],
            Refusal::NotARedistributor,
        ),
        ([0x00, 0, 0, 0], Refusal::UnknownCommand),
        ([0x02, 0, 0, 0], Refusal::UnknownCommand),
        ([0x10, 0, 0, 0], Refusal::UnknownCommand),
        ([0xff, 0, 0, 0], Refusal::UnknownCommand),
    ];
    let mut commands: Vec<([u64; 4], Refusal)> = bad.to_vec();
    for op in cmd::VIRTUAL {
        commands.push(([op, 0, 0, 0], Refusal::VirtualCommand));
    }
    for (i, (c, _)) in commands.iter().enumerate() {
        put(&r, i as u64, *c);
    }
    post(&its, commands.len() as u64);
    for (i, (c, why)) in commands.iter().enumerate() {
        assert_eq!(its.check(c), Err(*why), "command {i}: {c:x?}");
        assert_eq!(seen(&r, i as u64), [cmd::SYNC, 0, rd0, 0], "slot {i}");
    }
    assert_eq!(its.refusals().count(Refusal::IttNotEl1Ram), 3);
    assert_eq!(its.refusals().count(Refusal::NotARedistributor), 4);
    assert_eq!(its.refusals().count(Refusal::UnknownCommand), 4);
    assert_eq!(its.refusals().count(Refusal::VirtualCommand), 9);
}

#[test]
fn well_formed_commands_pass_unchanged() {
    let r = rig();
    let pta = with_queue(&r, true);
    let rd1 = RD[1];
    for c in [
        mapd(7, 0x4030_0000, 16),
        mapd(7, EL2, 2).map(|w| w & !cmd::VALID), // unmapping names no ITT
        mapc(3, rd1),
        [cmd::MAPC, 0, 0x0900_0000 | 3, 0], // unmapping a collection
        [cmd::SYNC, 0, rd1, 0],
        [cmd::MOVALL, 0, rd1, RD[0]],
        mapti(7, 1, 8200, 3),
        [cmd::MAPI | (7 << 32), 2, 3, 0],
        [cmd::MOVI | (7 << 32), 1, 4, 0],
        [cmd::INV | (7 << 32), 1, 0, 0],
        [cmd::INVALL, 0, 3, 0],
        [cmd::CLEAR | (7 << 32), 1, 0, 0],
        [cmd::DISCARD | (7 << 32), 1, 0, 0],
    ] {
        assert_eq!(pta.check(&c), Ok(()), "{c:x?}");
    }
    // Without PTA, RDbase is a processor number the ITS checks itself.
    let r = rig();
    let no_pta = with_queue(&r, false);
    assert_eq!(no_pta.check(&mapc(0, 5 << 16)), Ok(()));
    assert_eq!(no_pta.check(&[cmd::SYNC, 0, 0x0900_0000, 0]), Ok(()));
}

#[test]
fn each_command_is_read_from_el1s_memory_exactly_once() {
    let r = rig();
    let its = with_queue(&r, false);
    r.frame.set(CONSUME, 1);
    enable(&r, &its);
    // 200 commands through a 128-slot queue, posted in uneven batches, so
    // the copy wraps around.
    let mut next = 0u64;
    for batch in [3u64, 50, 1, 70, 60, 16] {
        for _ in 0..batch {
            put(&r, next % 128, [cmd::INT | (next << 32), next, 0, 0]);
            next += 1;
        }
        post(&its, next % 128);
    }
    for slot in 0..128 {
        for word in 0..4 {
            let pa = QUEUE + 32 * slot + 8 * word;
            // Slots 0..72 were used twice (200 = 128 + 72).
            let expected = if slot < 72 { 2 } else { 1 };
            assert_eq!(r.ram.reads_of(pa), expected, "slot {slot} word {word}");
        }
    }
    assert_eq!(seen(&r, 199 % 128), [cmd::INT | (199 << 32), 199, 0, 0]);
}

#[test]
fn a_command_el1_rewrites_after_posting_never_reaches_the_its() {
    let r = rig();
    let its = with_queue(&r, false);
    put(&r, 0, mapd(1, 0x4030_0000, 2));
    post(&its, 1);
    // EL1 now turns the checked MAPD into one whose ITT is EL2's memory:
    // the ITS reads the copy, which the hyp does not read again.
    put(&r, 0, mapd(1, EL2, 2));
    post(&its, 1);
    assert_eq!(seen(&r, 0), mapd(1, 0x4030_0000, 2));
    assert_eq!(r.ram.reads_of(QUEUE + 16), 1);
}

#[test]
fn a_write_pointer_past_the_end_of_the_queue_is_ignored() {
    let r = rig();
    let its = with_queue(&r, false);
    put(&r, 0, [cmd::SYNC, 0, 0, 0]);
    its.write(reg::CWRITER, AccessSize::Doubleword, 0x1000);
    its.write(reg::CWRITER, AccessSize::Doubleword, 0xf_ffe0);
    assert_eq!(r.frame.get(reg::CWRITER), 0);
    assert_eq!(r.ram.reads_of(QUEUE), 0);
    assert_eq!(its.refusals().count(Refusal::CwriterOutOfRange), 2);
}

/// Slot `i` of EL1's queue holds a SYNC tagged `tag` in DW1.
fn tagged(r: &Rig, slots: std::ops::Range<u64>, tag: u64) {
    for i in slots {
        put(r, i, [cmd::SYNC, tag, 0, 0]);
    }
}

#[test]
fn slots_the_its_may_still_read_are_never_rewritten() {
    let r = rig();
    let its = with_queue(&r, false);
    tagged(&r, 0..128, 1);
    post(&its, 100);
    // EL1 rewrites its queue; then moves the write pointer back to slot 40
    // (allowed: e.g. while the ITS is disabled) and the ITS has read up to
    // slot 20.
    tagged(&r, 0..128, 2);
    post(&its, 40);
    assert_eq!(r.frame.get(reg::CWRITER), 40 * 32, "the pointer moves");
    assert_eq!(
        seen(&r, 39),
        [cmd::SYNC, 1, 0, 0],
        "nothing copied backwards"
    );
    r.frame.set(reg::CREADR, 20 * 32);
    // Slot 10 lies past the write pointer, round the end of the queue:
    // slots 40..128 and 0..10 are copied; 20..40 may still be read.
    post(&its, 10);
    assert_eq!(r.frame.get(reg::CWRITER), 10 * 32);
    for slot in 0..128 {
        let tag = if (10..40).contains(&slot) { 1 } else { 2 };
        assert_eq!(seen(&r, slot)[1], tag, "slot {slot}");
    }
    // As far as possible: up to the slot before GITS_CREADR.
    post(&its, 19);
    assert_eq!(seen(&r, 18)[1], 2);
    assert_eq!(seen(&r, 19)[1], 1, "one slot stays free");
    for slot in 20..40 {
        assert_eq!(
            r.ram.reads_of(QUEUE + 32 * slot),
            1,
            "slot {slot} read once"
        );
    }
    assert_eq!(its.refusals().count(Refusal::ReaderOutOfRange), 0);
}

#[test]
fn a_read_pointer_outside_the_queue_stops_all_copying() {
    let r = rig();
    let its = with_queue(&r, false);
    r.frame.set(reg::CREADR, 0x2000);
    post(&its, 3);
    assert_eq!(r.frame.get(reg::CWRITER), 0);
    assert_eq!(r.ram.reads_of(QUEUE), 0);
    assert_eq!(its.refusals().count(Refusal::ReaderOutOfRange), 1);
}

#[test]
fn the_retry_bit_reaches_the_its_and_other_bits_do_not() {
    let r = rig();
    let its = with_queue(&r, false);
    its.write(
        reg::CWRITER,
        AccessSize::Doubleword,
        cwriter::RETRY | (1 << 40) | 2,
    );
    assert_eq!(
        r.frame.writes_to(reg::CWRITER).last(),
        Some(&cwriter::RETRY)
    );
}

#[test]
fn a_new_queue_takes_over_commands_pending_since_before_it() {
    let r = rig();
    let its = its(&r);
    // EL1 moves GITS_CWRITER before it has a queue: passed through.
    put(&r, 0, mapd(1, EL2, 2));
    put(&r, 1, [cmd::SYNC, 0, 0, 0]);
    its.write(reg::CWRITER, AccessSize::Doubleword, 64);
    assert_eq!(r.frame.get(reg::CWRITER), 64);
    its.write(reg::CBASER, AccessSize::Doubleword, cbaser::VALID | QUEUE);
    // GITS_CREADR restarted at 0: both slots are pending, and checked.
    assert_eq!(seen(&r, 0), [cmd::SYNC, 0, 0, 0]);
    assert_eq!(seen(&r, 1), [cmd::SYNC, 0, 0, 0]);
    assert_eq!(its.refusals().count(Refusal::IttNotEl1Ram), 1);
    // A write pointer outside the new queue restarts at 0.
    r.frame.set(reg::CWRITER, 0x8000);
    its.write(reg::CBASER, AccessSize::Doubleword, cbaser::VALID | QUEUE);
    assert_eq!(r.frame.get(reg::CWRITER), 0);
}

#[test]
fn replacing_or_invalidating_the_queue_frees_the_old_copy() {
    let r = rig();
    let its = with_queue(&r, false);
    assert_eq!(r.dma.live_regions(), 1);
    its.write(
        reg::CBASER,
        AccessSize::Doubleword,
        cbaser::VALID | (QUEUE + 0x1_0000) | 1,
    );
    assert_eq!(r.dma.live_regions(), 1);
    assert!(r.dma.contains(copy_of_queue(&r), 0x2000));
    its.write(reg::CBASER, AccessSize::Doubleword, QUEUE);
    assert_eq!(r.dma.live_regions(), 0);
    // Without a queue GITS_CWRITER passes through.
    post(&its, 3);
    assert_eq!(r.frame.get(reg::CWRITER), 96);
}

// ------------------------------------------------------------ take-over

#[test]
fn an_its_left_enabled_by_firmware_is_disabled_and_its_tables_invalidated() {
    let r = rig();
    r.frame.set(reg::CTLR, ctlr::ENABLED | ctlr::QUIESCENT);
    r.frame.set(
        reg::BASER,
        DEVICE_BASER | baser::VALID | baser::INDIRECT | EL2,
    );
    r.frame.set(reg::CBASER, cbaser::VALID | EL2);
    let _its = its(&r);
    assert_eq!(r.frame.get(reg::CTLR) & ctlr::ENABLED, 0);
    assert_eq!(
        r.frame.get(reg::BASER) & (baser::VALID | baser::INDIRECT),
        0
    );
    assert_eq!(r.frame.get(reg::CBASER) & cbaser::VALID, 0);
}

#[test]
fn an_its_that_never_becomes_quiescent_stops_the_boot() {
    let r = rig();
    r.frame.set(reg::CTLR, ctlr::ENABLED);
    let its = Its::new(0, &r.frame, &r.ram, &r.dma, &redistributors());
    assert!(matches!(its, Err(GicError::ItsNotQuiescent)));
    let none = Redistributors::default();
    let no_redistributor = Its::new(0, &r.frame, &r.ram, &r.dma, &none);
    assert!(matches!(no_redistributor, Err(GicError::NoRedistributor)));
}

// --------------------------------------------------------- access sizes

#[test]
fn unsupported_access_sizes_read_as_zero_and_write_nothing() {
    let r = rig();
    let its = its(&r);
    let before = r.frame.writes.lock().unwrap().len();
    assert_eq!(its.read(reg::TYPER, AccessSize::Byte), 0);
    assert_eq!(its.read(reg::TYPER, AccessSize::Halfword), 0);
    // GITS_CTLR is a 32-bit register.
    assert_eq!(its.read(reg::CTLR, AccessSize::Doubleword), 0);
    its.write(reg::CTLR, AccessSize::Doubleword, ctlr::ENABLED);
    its.write(reg::CBASER + 4, AccessSize::Doubleword, 0);
    its.write(reg::CTLR + 2, AccessSize::Halfword, 1);
    assert_eq!(r.frame.writes.lock().unwrap().len(), before);
    assert_eq!(its.refusals().count(Refusal::AccessSize), 6);
    // Supported ones pass through.
    assert_eq!(its.read(reg::TYPER, AccessSize::Doubleword), TYPER);
    assert_eq!(its.read(reg::TYPER + 4, AccessSize::Word), TYPER >> 32);
}

#[test]
fn gicv4_features_are_hidden_from_el1() {
    let r = rig();
    let v4 = TYPER | (1 << 1) | (1 << 37) | (1 << 39) | (1 << 40) | (0b11 << 41) | (1 << 19);
    r.frame.set(reg::TYPER, v4);
    let its = its(&r);
    assert_eq!(
        its.read(reg::TYPER, AccessSize::Doubleword),
        TYPER | (1 << 19)
    );
    assert_eq!(its.read(reg::TYPER + 4, AccessSize::Word), 0);
    assert_eq!(
        its.read(reg::TYPER, AccessSize::Word),
        (TYPER | (1 << 19)) & 0xffff_ffff
    );
}

#[test]
fn offsets_without_an_architected_register_never_reach_the_its() {
    let r = rig();
    let its = its(&r);
    let writes = r.frame.writes.lock().unwrap().len();
    r.frame.reads.lock().unwrap().clear();
    // A GIC-600's IMPLEMENTATION DEFINED GITS_FCTLR (32-bit), GITS_OPR and
    // GITS_OPSR (64-bit) and GITS_CFGID; reserved offsets; past the last
    // GITS_BASER<n>.
    let words = [
        0x1c, 0x20, 0x24, 0x44, 0x50, 0x98, 0x140, 0xc000, 0xf000, 0xffcc,
    ];
    for at in words {
        assert_eq!(its.read(at, AccessSize::Word), 0, "{at:#x}");
        its.write(at, AccessSize::Word, 1);
    }
    for at in [0x28, 0x30] {
        assert_eq!(its.read(at, AccessSize::Doubleword), 0, "{at:#x}");
        its.write(at, AccessSize::Doubleword, 1);
    }
    assert!(r.frame.reads.lock().unwrap().is_empty());
    assert_eq!(r.frame.writes.lock().unwrap().len(), writes);
    assert_eq!(its.refusals().count(Refusal::NoRegister), 24);
    // The architected ones Linux reads, and the optional ones, pass.
    r.frame.set(0xffe8, 0x3b);
    assert_eq!(its.read(0xffe8, AccessSize::Word), 0x3b, "GITS_PIDR2");
    for at in [0x4, 0x10, 0x14, 0x18, 0x40] {
        its.read(at, AccessSize::Word);
    }
    its.read(0x48, AccessSize::Doubleword);
    assert_eq!(r.frame.reads.lock().unwrap().len(), 7);
    assert_eq!(its.refusals().count(Refusal::NoRegister), 24);
}

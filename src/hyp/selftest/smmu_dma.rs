//! SMMU scenarios with real DMA: the `edu` devices write and read memory
//! through the SMMU while EL2 changes their tables and stream entries, and
//! checks what landed, what was blocked and which events were recorded.
//!
//! Buffers come from the hyp's page pool (this is EL2 testing itself; no
//! EL1 kernel runs). QEMU's SMMU caches translations, so a missing
//! invalidation is visible (scenario 3 shows it).

use super::{Address, Outcome};
use crate::checks::Checks;
use crate::hyp::boot::{PCI_CONFIG, PCI_FUNCTIONS};
use crate::hyp::domain::Domain;
use crate::hyp::mem::PAGE_POOL;
use crate::hyp::smmu::{HypSmmu, smmu};
use crate::mem::PAGE_SIZE as PAGE;
use crate::memmap::PhysRange;
use crate::pci::bus_master;
use crate::pgtable::{Prot, UnmapFlags};
use crate::smmu::{Command, EventKind, SmmuError};
use qemu_edu::{self as edu, Edu};

const SMMU: usize = 0;
const IPA_BITS: u32 = 40;
const PATTERN: u8 = 0x5a;
const SENTINEL: u8 = 0xee;

fn print(args: core::fmt::Arguments<'_>) {
    crate::console::print(args);
}

/// An `edu` device and its StreamID.
struct Device {
    edu: Edu,
    sid: u32,
}

/// Where each domain maps the page its device loads data from: the edu
/// buffer is only reachable by DMA, so data goes RAM -> device -> RAM.
const SOURCE_IOVA: u64 = 0x0100_0000;

impl Device {
    /// Puts `len` bytes of `byte` into the device buffer at 0, by DMA from
    /// the domain's source page.
    fn load(&self, source: PhysRange, byte: u8, len: u64) {
        fill(source, byte);
        let _ = self.edu.read_from(SOURCE_IOVA, 0, len);
    }
}

/// The `edu` devices found at boot, in bus order, with bus mastering on
/// (the hyp's boot leaves it off; this is the self-test's own device).
fn devices() -> heapless::Vec<Device, 2> {
    let mut out = heapless::Vec::new();
    let Some(ecam) = PCI_CONFIG.get() else {
        return out;
    };
    for f in PCI_FUNCTIONS.get().into_iter().flatten() {
        if f.vendor == edu::VENDOR && f.device == edu::DEVICE && !f.bars.is_empty() {
            bus_master::enable(ecam, f.bdf, ecam.buses());
            // SAFETY: BAR0 was assigned at boot inside the PCI window, which
            // is mapped as device memory; memory decoding is on.
            let edu = unsafe { Edu::new(f.bars[0].address) };
            // StreamID = requester ID on this board (`iommu-map` identity).
            let _ = out.push(Device {
                edu,
                sid: u32::from(f.bdf.rid()),
            });
        }
    }
    out
}

/// A page-aligned, zero-filled buffer from the pool.
fn buffer(size: u64) -> PhysRange {
    let range = PAGE_POOL
        .lock()
        .alloc(size, size)
        .expect("self-test buffer");
    fill(range, 0);
    range
}

fn fill(range: PhysRange, byte: u8) {
    // SAFETY: pool memory owned by the self-test, mapped read-write.
    unsafe { core::ptr::write_bytes(range.start as *mut u8, byte, range.size as usize) }
}

fn byte_at(pa: u64) -> u8 {
    // SAFETY: as for `fill`; volatile because a device wrote it.
    unsafe { core::ptr::read_volatile(pa as *const u8) }
}

/// Whether `len` bytes at `pa` all hold `byte`.
fn all_are(pa: u64, len: u64, byte: u8) -> bool {
    (0..len).all(|i| byte_at(pa + i) == byte)
}

fn lock() -> spin::MutexGuard<'static, HypSmmu> {
    smmu(SMMU).expect("smmu0 is driven").lock()
}

/// Drains the event queue and returns the recorded events of `kind` for
/// `sid` and the first one's input address.
fn events(kind: EventKind, sid: u32) -> (usize, Option<u64>) {
    let mut s = lock();
    let _ = s.drain_events();
    let mut count = 0;
    let mut first = None;
    while let Some(e) = s.fault_log_mut().pop() {
        if e.kind == kind && e.sid == sid {
            count += 1;
            first = first.or(e.input_addr);
        }
    }
    (count, first)
}

/// Scenario 1: DMA through a 4 KiB page and a 2 MiB block lands exactly
/// where the tables say.
fn lands_where_mapped(c: &mut Checks, d: &Device, dom: &mut Domain, src: PhysRange) {
    let page = buffer(0x2000);
    fill(page, SENTINEL);
    let iova = 0x1000_0000;
    let ok = dom.map(iova, page.start, PAGE, Prot::RW).is_ok();
    c.check(
        "map a 4 KiB page",
        ok,
        format_args!("iova {iova:#x} -> pa {:#x}", page.start),
    );
    d.load(src, PATTERN, 64);
    let dma = d.edu.write_to(iova + 0x100, 0, 64);
    let landed = all_are(page.start + 0x100, 64, PATTERN);
    let rest = all_are(page.start, 0x100, SENTINEL)
        && all_are(page.start + 0x140, 0x2000 - 0x140, SENTINEL);
    c.check(
        "DMA to a mapped 4 KiB IOVA lands in the mapped page",
        dma.is_ok() && landed,
        format_args!("{}", Outcome(&dma)),
    );
    c.check(
        "memory around it is unchanged",
        rest,
        format_args!("page and the next one checked"),
    );

    let block = buffer(0x20_0000);
    let block_iova = 0x4000_0000;
    let ok = dom
        .map(block_iova, block.start, 0x20_0000, Prot::RW)
        .is_ok();
    c.check(
        "map a 2 MiB block",
        ok,
        format_args!("iova {block_iova:#x} -> pa {:#x}", block.start),
    );
    d.load(src, PATTERN ^ 0xff, 32);
    let dma = d.edu.write_to(block_iova + 0x1_2340, 0, 32);
    let landed = all_are(block.start + 0x1_2340, 32, PATTERN ^ 0xff);
    c.check(
        "DMA into a 2 MiB block lands at the same offset",
        dma.is_ok() && landed,
        format_args!("offset 0x12340"),
    );
    let _ = dom.unmap(block_iova, 0x20_0000, UnmapFlags::EXACT);
    let _ = dom.unmap(iova, PAGE, UnmapFlags::EXACT);
    let _ = events(EventKind::Translation, d.sid);
}

/// Scenarios 2 and 3: after unmap + TLBI + sync the device is blocked and
/// the fault is recorded; without the TLBI it is not blocked.
fn unmap_blocks_and_missing_tlbi_is_visible(
    c: &mut Checks,
    d: &Device,
    dom: &mut Domain,
    src: PhysRange,
) {
    let page = buffer(PAGE);
    let iova = 0x1100_0000;
    let _ = dom.map(iova, page.start, PAGE, Prot::RW);
    d.load(src, PATTERN, 16);
    let _ = d.edu.write_to(iova, 0, 16); // the IOTLB now holds the entry

    // Scenario 3: clear the descriptor, but no TLBI.
    let _ = dom.unmap_without_invalidation(iova, PAGE);
    fill(page, SENTINEL);
    let _ = d.edu.write_to(iova, 0, 16);
    let stale = all_are(page.start, 16, PATTERN);
    c.check(
        "without TLBI the DMA still lands through the stale IOTLB entry",
        stale,
        format_args!("this is what the invalidation must prevent"),
    );
    let flushed = dom.flush();
    c.check(
        "the pending invalidation then completes",
        flushed.is_ok(),
        format_args!("{}", Outcome(&flushed)),
    );

    // Scenario 2: with the invalidation, the device is blocked.
    let _ = events(EventKind::Translation, d.sid);
    let _ = dom.map(iova, page.start, PAGE, Prot::RW);
    let _ = d.edu.write_to(iova, 0, 16);
    let unmapped = dom.unmap(iova, PAGE, UnmapFlags::EXACT);
    c.check(
        "unmap invalidates and syncs",
        unmapped.is_ok(),
        format_args!("{}", Outcome(&unmapped)),
    );
    fill(page, SENTINEL);
    let _ = d.edu.write_to(iova, 0, 16);
    c.check(
        "after unmap the DMA is blocked",
        all_are(page.start, PAGE, SENTINEL),
        format_args!("page unchanged"),
    );
    let (count, addr) = events(EventKind::Translation, d.sid);
    c.check(
        "an F_TRANSLATION event names the StreamID and the address",
        count > 0 && addr == Some(iova),
        format_args!(
            "{count} events for sid {:#x}, first at {}",
            d.sid,
            Address(addr)
        ),
    );
}

/// Scenario 4: detaching the StreamID (STE back to abort) blocks it.
fn detach_blocks(c: &mut Checks, d: &Device, dom: &mut Domain, src: PhysRange) {
    let page = buffer(PAGE);
    let iova = 0x1200_0000;
    let _ = dom.map(iova, page.start, PAGE, Prot::RW);
    d.load(src, PATTERN, 16);
    let _ = d.edu.write_to(iova, 0, 16);
    let before = all_are(page.start, 16, PATTERN);
    let detached = dom.detach(d.sid);
    fill(page, SENTINEL);
    let _ = d.edu.write_to(iova, 0, 16);
    let blocked = all_are(page.start, 16, SENTINEL);
    c.check(
        "detach (STE to abort, CFGI_STE + sync) blocks the device",
        before && detached.is_ok() && blocked,
        format_args!(
            "landed before: {before}, detach: {}, blocked after: {blocked}",
            Outcome(&detached)
        ),
    );
    let _ = dom.attach(d.sid);
    let _ = dom.unmap(iova, PAGE, UnmapFlags::EXACT);
}

/// Scenario 5: a read-only mapping blocks device writes; QEMU records the
/// permission fault only on a fresh walk, so the check follows a TLBI.
fn read_only_blocks_writes(c: &mut Checks, d: &Device, dom: &mut Domain, src: PhysRange) {
    let page = buffer(PAGE);
    fill(page, SENTINEL);
    let iova = 0x1300_0000;
    let _ = dom.map(iova, page.start, PAGE, Prot::RO);
    // Read the read-only page into the device, then out into the source.
    let read = d.edu.read_from(iova, 0, 16);
    fill(src, 0);
    let _ = d.edu.write_to(SOURCE_IOVA, 0, 16);
    c.check(
        "a read-only page can be read",
        read.is_ok() && all_are(src.start, 16, SENTINEL),
        format_args!("{}", Outcome(&read)),
    );
    let _ = events(EventKind::Permission, d.sid);
    d.load(src, PATTERN, 16);
    let _ = d.edu.write_to(iova, 0, 16);
    c.check(
        "a device write to it is blocked",
        all_are(page.start, 16, SENTINEL),
        format_args!("page unchanged"),
    );
    // Drop the cached read-only entry: the next write walks the tables.
    let _ = dom.unmap(iova, PAGE, UnmapFlags::EXACT);
    let _ = dom.map(iova, page.start, PAGE, Prot::RO);
    let _ = d.edu.write_to(iova, 0, 16);
    let (count, addr) = events(EventKind::Permission, d.sid);
    c.check(
        "on a fresh walk the write records F_PERMISSION",
        count > 0 && addr == Some(iova) && all_are(page.start, 16, SENTINEL),
        format_args!("{count} events, first at {}", Address(addr)),
    );
    let _ = dom.unmap(iova, PAGE, UnmapFlags::EXACT);
}

/// Scenario 6a: 100,000 commands through the small command queue.
fn command_queue_wraps(c: &mut Checks) {
    const TOTAL: u64 = 100_000;
    const BATCH: usize = 100;
    let mut s = lock();
    let before = s.counters();
    let cmds = [Command::tlbi_s12_vmall(7); BATCH];
    let mut failures = 0;
    for _ in 0..TOTAL / BATCH as u64 {
        if s.invalidate(&cmds).is_err() {
            failures += 1;
        }
    }
    let after = s.counters();
    let issued = after.cmdq.issued.tlbi_s12_vmall - before.cmdq.issued.tlbi_s12_vmall;
    let syncs = after.syncs() - before.syncs();
    c.check(
        "100,000 commands through the command queue, every CMD_SYNC completes",
        failures == 0
            && issued == TOTAL
            && syncs == TOTAL / BATCH as u64
            && after.errors() == before.errors(),
        format_args!(
            "{issued} issued, {syncs} syncs, {failures} failures, {} publishes",
            after.cmdq.publishes - before.cmdq.publishes
        ),
    );
}

/// Scenario 6b: a 4 KiB faulting DMA makes QEMU record one event per 4
/// bytes; the queue fills, QEMU raises EVENTQ_ABT_ERR, and the driver must
/// recover so that later faults are still recorded.
fn event_queue_overflow_recovers(c: &mut Checks, d: &Device) {
    let _ = events(EventKind::Translation, d.sid);
    let before = lock().counters();
    let _ = d.edu.write_to(0x1400_0000, 0, edu::BUFFER_SIZE);
    let _ = events(EventKind::Translation, d.sid);
    let after = lock().counters();
    let handled = after.gerror.evtq_abort + after.evtq.overflows
        - before.gerror.evtq_abort
        - before.evtq.overflows;
    c.check(
        "an overflowing event queue is recovered and counted",
        handled > 0,
        format_args!(
            "{} queue aborts, {} overflows handled",
            after.gerror.evtq_abort, after.evtq.overflows
        ),
    );
    let _ = d.edu.write_to(0x1400_0000, 0, 4);
    let (count, addr) = events(EventKind::Translation, d.sid);
    c.check(
        "after recovery a new fault is recorded",
        count == 1 && addr == Some(0x1400_0000),
        format_args!("{count} events at {}", Address(addr)),
    );
}

/// Scenario 7: an illegal command is reported (CERROR_ILL), skipped, and
/// the queue keeps working.
fn illegal_command_recovers(c: &mut Checks) {
    let mut s = lock();
    let before = s.counters();
    // Opcode 0x7f is not a command.
    let r = s.submit_unfiltered(&[Command([0x7f, 0])]);
    let after = s.counters();
    c.check(
        "an illegal command is detected through GERROR.CMDQ_ERR / CERROR_ILL",
        matches!(r, Err(SmmuError::CommandFailed(_)))
            && after.cmdq.errors.illegal == before.cmdq.errors.illegal + 1,
        format_args!("{}", Outcome(&r)),
    );
    let next = s.invalidate(&[Command::tlbi_s12_vmall(7)]);
    c.check(
        "the queue keeps working after it",
        next.is_ok(),
        format_args!("{}", Outcome(&next)),
    );
}

/// Scenario 8: two devices in two domains cannot reach each other's memory.
fn domains_are_isolated(
    c: &mut Checks,
    a: &Device,
    b: &Device,
    dom_a: &mut Domain,
    src_a: PhysRange,
) {
    let Ok(mut dom_b) = Domain::new(SMMU, 2, IPA_BITS) else {
        c.check("second domain", false, format_args!("could not be created"));
        return;
    };
    let src_b = buffer(PAGE);
    let _ = dom_b.map(SOURCE_IOVA, src_b.start, PAGE, Prot::RW);
    let _ = dom_b.attach(b.sid);
    let (mem_a, mem_b) = (buffer(PAGE), buffer(PAGE));
    fill(mem_a, SENTINEL);
    fill(mem_b, SENTINEL);
    let iova = 0x1500_0000;
    let _ = dom_a.map(iova, mem_a.start, PAGE, Prot::RW);
    let _ = dom_b.map(iova + PAGE, mem_b.start, PAGE, Prot::RW);
    b.load(src_b, PATTERN, 16);
    a.load(src_a, PATTERN ^ 0xff, 16);
    let _ = b.edu.write_to(iova, 0, 16); // A's IOVA, not mapped in B
    let _ = a.edu.write_to(iova + PAGE, 0, 16); // B's IOVA, not mapped in A
    c.check(
        "a device cannot reach the other domain's memory",
        all_are(mem_a.start, PAGE, SENTINEL) && all_are(mem_b.start, PAGE, SENTINEL),
        format_args!("both buffers unchanged"),
    );
    let _ = b.edu.write_to(iova + PAGE, 0, 16);
    let _ = a.edu.write_to(iova, 0, 16);
    c.check(
        "each device reaches its own domain's memory",
        all_are(mem_b.start, 16, PATTERN) && all_are(mem_a.start, 16, PATTERN ^ 0xff),
        format_args!("both landed"),
    );
    let _ = dom_b.detach(b.sid);
}

/// QEMU defect 1 (`docs/qemu.md`): with a 40-bit IPA starting at level 1 (two
/// concatenated level-1 tables), QEMU walks IPAs >= 512 GiB in the first
/// table. The engine builds the tables as the architecture says (checked by
/// its own walk); this pins what QEMU does with them, so the day QEMU is
/// fixed this check fails and the board can use concatenation again.
pub fn run_concatenation_pin() -> u32 {
    let mut c = Checks::new("el2", print);
    let devs = devices();
    let Some(d) = devs.first() else {
        c.check("an edu device", false, format_args!("none found"));
        return c.finish();
    };
    let dom = Domain::with_policy(SMMU, 3, 40, crate::pgtable::StartLevelPolicy::FewestLevels);
    let Ok(mut dom) = dom else {
        c.check(
            "a concatenated domain",
            false,
            format_args!("{}", Outcome(&dom)),
        );
        return c.finish();
    };
    let cfg = *dom.config();
    c.check(
        "40-bit IPA starts at level 1 with two concatenated tables",
        cfg.start_level() == 1 && cfg.concatenated_tables() == 2,
        format_args!(
            "start level {}, {} tables",
            cfg.start_level(),
            cfg.concatenated_tables()
        ),
    );
    let (src, high, low) = (buffer(PAGE), buffer(PAGE), buffer(PAGE));
    let high_iova = 0x80_0000_7000;
    let _ = dom.map(SOURCE_IOVA, src.start, PAGE, Prot::RW);
    let _ = dom.map(high_iova, high.start, PAGE, Prot::RW);
    let _ = dom.map(0x7000, low.start, PAGE, Prot::RW);
    c.check(
        "the engine's own walk translates the high IPA per the architecture",
        dom.iova_to_phys(high_iova) == Some(high.start),
        format_args!("{high_iova:#x} -> {}", Address(dom.iova_to_phys(high_iova))),
    );
    let _ = dom.attach(d.sid);
    d.load(src, PATTERN, 16);
    let _ = d.edu.write_to(high_iova, 0, 16);
    let in_low = all_are(low.start, 16, PATTERN);
    let in_high = all_are(high.start, 16, PATTERN);
    c.check(
        "QEMU defect 1 still present: DMA to the high IPA lands in the page mapped at the low IPA",
        in_low && !in_high,
        format_args!("landed in the low page: {in_low}, in the high page: {in_high}"),
    );
    let _ = dom.detach(d.sid);
    c.finish()
}

/// Runs every scenario; returns the exit status.
pub fn run() -> u32 {
    let mut c = Checks::new("el2", print);
    let devs = devices();
    if !c.check(
        "two edu devices behind smmu0",
        devs.len() == 2 && smmu(SMMU).is_some(),
        format_args!("{} found", devs.len()),
    ) {
        return c.finish();
    }
    let (a, b) = (&devs[0], &devs[1]);
    let mut dom = match Domain::new(SMMU, 1, IPA_BITS) {
        Ok(d) => d,
        Err(e) => {
            c.check("domain created", false, format_args!("{e}"));
            return c.finish();
        }
    };
    let src = buffer(PAGE);
    let _ = dom.map(SOURCE_IOVA, src.start, PAGE, Prot::RW);
    let attached = dom.attach(a.sid);
    c.check(
        "attach the first device (abort -> stage 2)",
        attached.is_ok(),
        format_args!("{}", Outcome(&attached)),
    );
    lands_where_mapped(&mut c, a, &mut dom, src);
    unmap_blocks_and_missing_tlbi_is_visible(&mut c, a, &mut dom, src);
    detach_blocks(&mut c, a, &mut dom, src);
    read_only_blocks_writes(&mut c, a, &mut dom, src);
    command_queue_wraps(&mut c);
    event_queue_overflow_recovers(&mut c, a);
    illegal_command_recovers(&mut c);
    domains_are_isolated(&mut c, a, b, &mut dom, src);
    let s = lock().counters();
    print(format_args!(
        "el2: smmu0 counters: {} commands issued, {} syncs, {} TLBIs, {} STE updates, {} errors handled\n",
        s.cmdq.issued.total(),
        s.syncs(),
        s.tlbis(),
        s.ste_updates,
        s.errors()
    ));
    c.finish()
}

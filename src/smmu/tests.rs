//! Driver-level tests against the auditing fake SMMU.

use std::vec::Vec;

use super::cmdq::CmdqError;
use super::command::{Command, opcode};
use super::driver::{Budget, Smmu};
use super::error::{SmmuError, WaitFor};
use super::event::EventKind;
use super::fake::{
    Consume, FakeClock, FakeDma, FakeSmmu, Inject, Outcome, QEMU_STAGE1_ONLY, QEMU_STAGE2_ONLY,
    QEMU_VIRT, Trail,
};
use super::fault_log::OverflowPolicy;
use super::features::{IdRegs, Unsupported};
use super::poll::PollBudget;
use super::regs::offset;
use super::ste::{S2Config, Ste, SteConfig};
use super::strtab::{MAX_L2_TABLES, StreamTableFormat};

type TestSmmu<'a, const LOG: usize = 64> = Smmu<&'a FakeSmmu<'a>, &'a FakeDma, &'a FakeClock, LOG>;

fn budget() -> Budget {
    Budget {
        // 1 us per clock read: a wait gives up after ~1000 polls.
        poll: PollBudget {
            timeout_ns: 1_000_000,
            max_polls: 100_000,
        },
        ..Budget::DEFAULT
    }
}

fn probe<'a, const LOG: usize>(
    fake: &'a FakeSmmu<'a>,
    dma: &'a FakeDma,
    clock: &'a FakeClock,
    budget: Budget,
) -> TestSmmu<'a, LOG> {
    let smmu = Smmu::probe(fake, dma, clock, budget).expect("probe");
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
    smmu
}

/// 4K granule, 40-bit IPA from level 0, 44-bit PA.
fn s2(vmid: u16, ttb: u64) -> S2Config {
    S2Config {
        vmid,
        t0sz: 24,
        sl0: 2,
        tg: 0,
        ps: 4,
        ttb,
    }
}

fn writes(fake: &FakeSmmu) -> Vec<(usize, u64)> {
    fake.state()
        .trail
        .iter()
        .filter_map(|t| match *t {
            Trail::Write { off, value } => Some((off, value)),
            Trail::Cmd(_) => None,
        })
        .collect()
}

fn position(trail: &[Trail], pred: impl Fn(&Trail) -> bool) -> usize {
    trail.iter().position(pred).expect("trail entry")
}

#[test]
fn enable_sequence_order_and_values() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let smmu: TestSmmu = probe(&fake, &dma, &clock, budget());

    let trail = fake.state().trail.clone();
    let w = |off: usize| move |t: &Trail| matches!(t, Trail::Write { off: o, .. } if *o == off);
    let gbpa = position(&trail, w(offset::GBPA));
    let first_cr0 = position(&trail, w(offset::CR0));
    let cr1 = position(&trail, w(offset::CR1));
    let strtab = position(&trail, w(offset::STRTAB_BASE));
    let cmdq_base = position(&trail, w(offset::CMDQ_BASE));
    let evtq_base = position(&trail, w(offset::EVENTQ_BASE));
    let queues_on = position(
        &trail,
        |t| matches!(t, Trail::Write { off, value } if *off == offset::CR0 && *value == 0xc),
    );
    let first_cmd = position(&trail, |t| matches!(t, Trail::Cmd(_)));
    let smmuen = position(
        &trail,
        |t| matches!(t, Trail::Write { off, value } if *off == offset::CR0 && *value == 0xd),
    );
    // Abort before anything else, disable before programming, queues
    // before commands, invalidation before SMMUEN, SMMUEN last.
    assert!(gbpa < first_cr0);
    assert!(first_cr0 < cr1 && cr1 < strtab && strtab < cmdq_base && cmdq_base < evtq_base);
    assert!(evtq_base < queues_on && queues_on < first_cmd && first_cmd < smmuen);
    assert_eq!(smmuen, trail.len() - 1);

    // HYP = 0 on QEMU: no TLBI_EL2_ALL (ILLEGAL on hardware).
    assert_eq!(
        fake.executed(),
        [
            Command::cfgi_all(),
            Command::tlbi_nsnh_all(),
            Command::sync()
        ]
    );
    let s = fake.state();
    assert_eq!(s.gbpa & (1 << 20), 1 << 20);
    assert_eq!(s.cr0, 0xd);
    assert_eq!(s.cr1, 0xd75, "WB, inner shareable for tables and queues");
    assert_eq!(s.cr2, 0b110, "RECINVSID | PTM, E2H = 0");
    assert_eq!(s.irq_ctrl, 0);
    // SIDSIZE 16 > 8: 2-level, SPLIT 8.
    assert_eq!(s.strtab_base_cfg, (1 << 16) | (8 << 6) | 16);
    assert_eq!(s.strtab_base >> 62, 1, "RA hint");
    assert_eq!(s.cmdq_base & 0x1f, 8);
    assert_eq!(s.evtq_base & 0x1f, 7);
    drop(s);
    assert_eq!(
        smmu.stream_table_format(),
        StreamTableFormat::TwoLevel { split: 8 }
    );
    assert_eq!(smmu.sid_limit(), 1 << 16);
    let c = smmu.counters();
    assert_eq!(c.syncs(), 1);
    assert_eq!(c.cmdq.issued.cfgi_all, 1);
    assert_eq!(c.cmdq.issued.tlbi_nsnh_all, 1);
    assert_eq!(c.tlbis(), 1);
    assert_eq!(c.errors(), 0);

    // Every StreamID aborts: no level-2 tables yet (C_BAD_STREAMID).
    for sid in [0, 8, 0xffff] {
        assert_eq!(fake.translate(sid), Outcome::Fault(EventKind::BadStreamId));
    }
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn the_event_interrupt_is_enabled_wired_with_the_msi_address_cleared_first() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu<'_, 64> = probe(&fake, &dma, &clock, budget());
    assert_eq!(fake.state().irq_ctrl, 0, "off after probe");
    let from = writes(&fake).len();
    smmu.enable_event_interrupt().unwrap();
    assert_eq!(
        writes(&fake)[from..],
        [(offset::EVENTQ_IRQ_CFG0, 0), (offset::IRQ_CTRL, 1 << 2)]
    );
    let s = fake.state();
    assert_eq!(
        (s.irq_ctrl, s.irq_ctrlack, s.evtq_irq_cfg0),
        (1 << 2, 1 << 2, 0)
    );
    drop(s);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn hyp_smmu_also_invalidates_el2() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(
        &dma,
        IdRegs {
            idr0: QEMU_VIRT.idr0 | (1 << 9),
            ..QEMU_VIRT
        },
    );
    let clock = FakeClock::new(1000);
    let _smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    assert_eq!(
        fake.executed(),
        [
            Command::cfgi_all(),
            Command::tlbi_nsnh_all(),
            Command::tlbi_el2_all(),
            Command::sync()
        ]
    );
}

#[test]
fn refuses_a_stage1_only_smmu_without_touching_it() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_STAGE1_ONLY);
    let clock = FakeClock::new(1000);
    let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
    assert_eq!(r.err(), Some(SmmuError::Unsupported(Unsupported::NoStage2)));
    assert!(fake.state().trail.is_empty());
    assert_eq!(dma.live_regions(), 0);
}

#[test]
fn accepts_a_stage2_only_smmu() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_STAGE2_ONLY);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    smmu.attach_s2(8, &s2(1, 0x4000_0000)).unwrap();
    assert_eq!(fake.translate(8), Outcome::Stage2(s2(1, 0x4000_0000)));
}

/// QEMU's SMMU without IDR0.COHACC.
const NON_COHERENT: IdRegs = IdRegs {
    idr0: QEMU_VIRT.idr0 & !(1 << 4),
    ..QEMU_VIRT
};

#[test]
fn non_coherent_smmu_gets_cache_maintenance() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, NON_COHERENT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    assert_eq!(
        fake.state().cr1,
        (2 << 10) | (2 << 4),
        "NC, outer shareable"
    );
    let cleans = dma.state().cleans;
    assert!(cleans > 0);
    smmu.attach_s2(8, &s2(1, 0x4000_0000)).unwrap();
    assert!(dma.state().cleans > cleans);
    let ste = smmu.read_ste(8).unwrap().unwrap();
    assert_eq!((ste.0[2] >> 40) & 0x3f, 2 << 4, "S2 walks NC, OSH");
    fake.inject_event([0x10 | (8 << 32), 0, 0, 0]);
    smmu.drain_events().unwrap();
    assert!(dma.state().invalidates > 0);
}

#[test]
fn a_non_coherent_smmu_behind_a_cpu_cache_sees_what_the_driver_wrote() {
    // The fake's memory holds stale bytes until the driver cleans the
    // allocator's zeroing and its own writes: a missing clean makes the
    // SMMU fetch garbage STEs or commands.
    let dma = FakeDma::with_cpu_cache();
    let fake = FakeSmmu::new(&dma, NON_COHERENT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    // No level-2 table yet: the zeroed level-1 descriptor is invalid.
    assert_eq!(fake.translate(8), Outcome::Fault(EventKind::BadStreamId));
    smmu.attach_s2(8, &s2(1, 0x4000_0000)).unwrap();
    assert_eq!(fake.translate(8), Outcome::Stage2(s2(1, 0x4000_0000)));
    smmu.detach(8).unwrap();
    assert_eq!(fake.translate(8), Outcome::Abort);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn a_non_coherent_smmu_s_event_records_survive_the_cpu_cache() {
    // The allocator zeroes the event queue through the cache; unless the
    // driver writes those lines back before the SMMU uses the queue, the
    // clean+invalidate before each record is read writes the zeros back
    // over what the SMMU wrote.
    let dma = FakeDma::with_cpu_cache();
    let fake = FakeSmmu::new(&dma, NON_COHERENT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let records = [
        translation_fault(8, 0x8000_7000),
        [0x13 | (9 << 32), 1 << 39, 0x1000, 0x1000],
    ];
    for _ in 0..3 {
        for r in records {
            assert_eq!(fake.inject_event(r), Inject::Written);
        }
        assert_eq!(smmu.drain_events(), Ok(2));
        for r in records {
            assert_eq!(smmu.fault_log_mut().pop().map(|e| e.raw), Some(r));
        }
    }
}

#[test]
fn coherent_smmu_gets_no_cache_maintenance() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    smmu.attach_s2(8, &s2(1, 0x4000_0000)).unwrap();
    fake.inject_event([0x10 | (8 << 32), 0, 0, 0]);
    smmu.drain_events().unwrap();
    let d = dma.state();
    assert_eq!((d.cleans, d.invalidates), (0, 0));
}

#[test]
fn stuck_cr0ack_times_out() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    fake.state_mut().ack_cr0 = false;
    let clock = FakeClock::new(1000);
    let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
    assert_eq!(r.err(), Some(SmmuError::Timeout(WaitFor::Cr0Ack)));
    // CR0ACK stayed 0, which confirms "disabled": memory was returned.
    assert_eq!(dma.live_regions(), 0);
}

#[test]
fn stuck_gbpa_update_times_out_before_allocating() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    fake.state_mut().gbpa_stuck = true;
    let clock = FakeClock::new(1000);
    let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
    assert_eq!(r.err(), Some(SmmuError::Timeout(WaitFor::GbpaUpdate)));
    assert_eq!(dma.state().allocs, 0);
}

#[test]
fn dma_exhaustion_is_an_error_and_leaks_nothing() {
    for fail_at in 0..3 {
        let dma = FakeDma::new();
        dma.state().fail_at = Some(fail_at);
        let fake = FakeSmmu::new(&dma, QEMU_VIRT);
        let clock = FakeClock::new(1000);
        let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
        assert!(
            matches!(r, Err(SmmuError::OutOfMemory { .. })),
            "allocation {fail_at}"
        );
        assert_eq!(dma.live_regions(), 0);
        // Nothing beyond the quiescing writes reached the SMMU.
        assert_eq!(fake.state().cr0, 0);
    }
}

#[test]
fn misaligned_allocations_are_refused() {
    let dma = FakeDma::new();
    dma.state().misalign = true;
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
    assert!(matches!(r, Err(SmmuError::BadAllocation { .. })));
    assert_eq!(dma.live_regions(), 0);
}

/// Asserts that every STE the fake saw at a CFGI was `old`, `new` or abort.
fn assert_snapshots(fake: &FakeSmmu, from: usize, sid: u32, old: &Ste, new: &Ste) -> usize {
    let snaps = fake.state().cfgi_snapshots[from..].to_vec();
    for (s, ste) in &snaps {
        assert_eq!(*s, sid);
        let ste = ste.expect("STE reachable at CFGI");
        assert!(
            ste.same_effect(old) || ste.same_effect(new) || ste.same_effect(&Ste::ABORT),
            "SMMU saw {ste:x?}"
        );
    }
    snaps.len()
}

#[test]
fn ste_transitions_two_level() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let f = *smmu.features();
    let a = Ste::s2(&s2(1, 0x4000_0000), &f).unwrap();
    let b = Ste::s2(&s2(2, 0x4100_0000), &f).unwrap();

    // abort -> S2 in a fresh level-2 range: 1 sync for the range + 2.
    let syncs = smmu.counters().syncs();
    let snaps = fake.state().cfgi_snapshots.len();
    let u = smmu.attach_s2(8, &s2(1, 0x4000_0000)).unwrap();
    assert_eq!((u.syncs, u.hitless), (2, true));
    assert_eq!(smmu.counters().syncs() - syncs, 3);
    assert_eq!(smmu.counters().cmdq.issued.cfgi_ste_range, 1);
    assert_eq!(assert_snapshots(&fake, snaps, 8, &Ste::ABORT, &a), 2);
    assert_eq!(fake.translate(8), Outcome::Stage2(s2(1, 0x4000_0000)));
    // Neighbours in the same level-2 table now abort quietly; others
    // still have no table.
    assert_eq!(fake.translate(9), Outcome::Abort);
    assert_eq!(
        fake.translate(0x100),
        Outcome::Fault(EventKind::BadStreamId)
    );
    assert_eq!(smmu.counters().l2_tables, 1);

    // abort -> S2 in an existing range: 2 syncs.
    let syncs = smmu.counters().syncs();
    smmu.attach_s2(9, &s2(1, 0x4000_0000)).unwrap();
    assert_eq!(smmu.counters().syncs() - syncs, 2);

    // S2 -> other S2 domain (VMID and table): through abort, 3 syncs.
    let syncs = smmu.counters().syncs();
    let snaps = fake.state().cfgi_snapshots.len();
    let u = smmu.attach_s2(8, &s2(2, 0x4100_0000)).unwrap();
    assert_eq!((u.syncs, u.hitless), (3, false));
    assert_eq!(smmu.counters().syncs() - syncs, 3);
    assert_eq!(assert_snapshots(&fake, snaps, 8, &a, &b), 3);
    assert_eq!(fake.translate(8), Outcome::Stage2(s2(2, 0x4100_0000)));

    // S2 -> S2 changing only the VMID: hitless, 1 sync.
    let syncs = smmu.counters().syncs();
    let u = smmu.attach_s2(8, &s2(3, 0x4100_0000)).unwrap();
    assert_eq!((u.syncs, u.hitless), (1, true));
    assert_eq!(smmu.counters().syncs() - syncs, 1);

    // S2 -> abort: 1 sync; ignored words cleared afterwards.
    let syncs = smmu.counters().syncs();
    let snaps = fake.state().cfgi_snapshots.len();
    let c = Ste::s2(&s2(3, 0x4100_0000), &f).unwrap();
    smmu.detach(8).unwrap();
    assert_eq!(smmu.counters().syncs() - syncs, 1);
    assert_eq!(assert_snapshots(&fake, snaps, 8, &c, &Ste::ABORT), 1);
    assert_eq!(fake.translate(8), Outcome::Abort);
    assert_eq!(smmu.read_ste(8).unwrap(), Some(Ste::ABORT));

    // Detaching a StreamID without a level-2 table costs nothing.
    let syncs = smmu.counters().syncs();
    assert_eq!(smmu.detach(0x4000).unwrap().syncs, 0);
    assert_eq!(smmu.counters().syncs(), syncs);
    assert_eq!(smmu.read_ste(0x4000).unwrap(), None);

    let c = smmu.counters();
    assert_eq!((c.attaches, c.detaches, c.ste_breaking_updates), (4, 1, 1));
    assert_eq!(c.errors(), 0);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn stream_id_range_is_checked() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            max_sid_bits: 12,
            ..budget()
        },
    );
    assert_eq!(smmu.sid_limit(), 1 << 12);
    let err = SmmuError::SidOutOfRange {
        sid: 0x1000,
        limit: 0x1000,
    };
    assert_eq!(smmu.attach_s2(0x1000, &s2(1, 0x4000_0000)), Err(err));
    assert_eq!(smmu.detach(0x1000), Err(err));
    assert_eq!(smmu.read_ste(0x1000), Err(err));
    assert!(smmu.attach_s2(0xfff, &s2(1, 0x4000_0000)).is_ok());
    // Beyond LOG2SIZE the SMMU itself refuses the StreamID.
    assert_eq!(
        fake.translate(0x1000),
        Outcome::Fault(EventKind::BadStreamId)
    );
}

#[test]
fn invalid_s2_config_is_refused_before_touching_the_table() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let bad = S2Config {
        tg: 3,
        ..s2(1, 0x4000_0000)
    };
    assert!(matches!(
        smmu.attach_s2(8, &bad),
        Err(SmmuError::InvalidS2Config(_))
    ));
    assert_eq!(smmu.counters().l2_tables, 0);
}

#[test]
fn linear_stream_table() {
    let dma = FakeDma::new();
    // SIDSIZE = 6: 64 STEs.
    let fake = FakeSmmu::new(
        &dma,
        IdRegs {
            idr1: (QEMU_VIRT.idr1 & !0x3f) | 6,
            ..QEMU_VIRT
        },
    );
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    assert_eq!(smmu.stream_table_format(), StreamTableFormat::Linear);
    assert_eq!(fake.state().strtab_base_cfg, 6);
    for sid in 0..64 {
        assert_eq!(fake.translate(sid), Outcome::Abort, "sid {sid}");
    }
    assert_eq!(fake.translate(64), Outcome::Fault(EventKind::BadStreamId));
    let syncs = smmu.counters().syncs();
    smmu.attach_s2(63, &s2(7, 0x4000_0000)).unwrap();
    assert_eq!(
        smmu.counters().syncs() - syncs,
        2,
        "no level-2 range to invalidate"
    );
    assert_eq!(fake.translate(63), Outcome::Stage2(s2(7, 0x4000_0000)));
    assert_eq!(fake.translate(62), Outcome::Abort);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn budget_can_force_a_linear_table() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            max_sid_bits: 8,
            ..budget()
        },
    );
    assert_eq!(smmu.stream_table_format(), StreamTableFormat::Linear);
    assert_eq!(fake.state().strtab_base_cfg, 8);
    assert_eq!(fake.translate(255), Outcome::Abort);
}

#[test]
fn level2_exhaustion_is_an_error() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    for i in 0..MAX_L2_TABLES as u32 {
        smmu.attach_s2(i << 8, &s2(1, 0x4000_0000)).unwrap();
    }
    let next = (MAX_L2_TABLES as u32) << 8;
    assert_eq!(
        smmu.attach_s2(next, &s2(1, 0x4000_0000)),
        Err(SmmuError::TooManyL2Tables)
    );
    assert_eq!(fake.translate(next), Outcome::Fault(EventKind::BadStreamId));
    // Existing tables keep working.
    smmu.attach_s2(1, &s2(1, 0x4000_0000)).unwrap();
}

#[test]
fn level2_allocation_failure_leaves_the_stream_aborting() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let used = dma.state().used;
    dma.state().limit = used;
    assert!(matches!(
        smmu.attach_s2(8, &s2(1, 0x4000_0000)),
        Err(SmmuError::OutOfMemory { .. })
    ));
    assert_eq!(fake.translate(8), Outcome::Fault(EventKind::BadStreamId));
    dma.state().limit = usize::MAX;
    smmu.attach_s2(8, &s2(1, 0x4000_0000)).unwrap();
    assert_eq!(fake.translate(8), Outcome::Stage2(s2(1, 0x4000_0000)));
}

/// A small deterministic generator for batch sizes.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn queue_wraps_through_100k_commands() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            cmdq_log2: 3,
            ..budget()
        },
    );
    // A consumer slower than the producer, so the queue really fills and
    // wraps with commands outstanding.
    fake.state_mut().consume = Consume::PerConsRead(3);
    let base_syncs = smmu.counters().syncs();
    let mut rng = Lcg(1);
    let mut sent = 0u64;
    let mut batches = 0u64;
    let mut batch = Vec::new();
    while sent < 100_000 {
        batch.clear();
        let n = 1 + rng.next(20);
        for _ in 0..n {
            let ipa = (sent % (1 << 28)) << 12;
            batch.push(Command::tlbi_s2_ipa(1, ipa, true, 0, 0, 0, 0).unwrap());
            sent += 1;
        }
        smmu.invalidate(&batch).unwrap();
        batches += 1;
    }
    let c = smmu.counters();
    assert_eq!(c.cmdq.issued.tlbi_s2_ipa, sent);
    assert_eq!(c.syncs() - base_syncs, batches);
    assert_eq!(fake.state().syncs, c.syncs());
    let executed = fake.executed();
    let tlbis = executed
        .iter()
        .filter(|c| c.opcode() == opcode::TLBI_S2_IPA)
        .count() as u64;
    assert_eq!(tlbis, sent, "every command executed exactly once");
    // In order: the IPAs come back as sent.
    let ipas = executed
        .iter()
        .filter(|c| c.opcode() == opcode::TLBI_S2_IPA)
        .map(|c| c.0[1] >> 12);
    for (expect, ipa) in ipas.enumerate() {
        assert_eq!(ipa, expect as u64 % (1 << 28));
    }
    assert_eq!(c.errors(), 0);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn batches_wait_for_n_free_slots_on_a_slow_smmu() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            cmdq_log2: 2,
            ..budget()
        },
    );
    // One command per CONS read: a batch must wait for room for all of
    // it, not just for "not full".
    fake.state_mut().consume = Consume::PerConsRead(1);
    let cmd = |v| Command::tlbi_s12_vmall(v);
    for n in [1usize, 2, 3, 5, 9, 3, 1] {
        let batch: Vec<_> = (0..n as u16).map(cmd).collect();
        smmu.invalidate(&batch).unwrap();
    }
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
    assert_eq!(smmu.counters().cmdq.issued.tlbi_s12_vmall, 24);
    // A 9-command batch with its sync needs 10 slots: three PROD writes.
    assert!(smmu.counters().cmdq.publishes >= 7 + 2);
}

#[test]
fn the_fake_catches_a_producer_overrun() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let _smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            cmdq_log2: 2,
            ..budget()
        },
    );
    fake.state_mut().consume = Consume::Stopped;
    use super::regs::SmmuRegs;
    let prod = fake.read32(offset::CMDQ_PROD);
    // Publishing five new entries into a 4-entry queue.
    fake.write32(offset::CMDQ_PROD, (prod + 5) & 7);
    assert_eq!(fake.violations().len(), 1);
}

#[test]
fn sync_timeout_is_an_error_not_a_hang() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    fake.state_mut().consume = Consume::Stopped;
    assert_eq!(
        smmu.invalidate(&[Command::tlbi_s12_vmall(1)]),
        Err(SmmuError::Timeout(WaitFor::CmdSync))
    );
    assert_eq!(smmu.counters().cmdq.sync_timeouts, 1);
    // The SMMU comes back: the next sync completes the old batch too.
    fake.state_mut().consume = Consume::Eager;
    smmu.invalidate(&[Command::tlbi_s12_vmall(2)]).unwrap();
    assert_eq!(
        fake.executed()
            .iter()
            .filter(|c| c.opcode() == opcode::TLBI_S12_VMALL)
            .count(),
        2
    );
}

#[test]
fn full_queue_on_a_stuck_smmu_times_out_waiting_for_space() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            cmdq_log2: 2,
            ..budget()
        },
    );
    fake.state_mut().consume = Consume::Stopped;
    let batch: Vec<_> = (0..6).map(Command::tlbi_s12_vmall).collect();
    assert_eq!(
        smmu.invalidate(&batch),
        Err(SmmuError::Timeout(WaitFor::CmdqSpace))
    );
    assert_eq!(smmu.counters().cmdq.space_timeouts, 1);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn cerror_ill_is_replaced_acknowledged_and_reported() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    // An implementation that rejects TLBI_S2_IPA.
    fake.state_mut().illegal_opcodes.push(opcode::TLBI_S2_IPA);
    let bad = Command::tlbi_s2_ipa(1, 0x1000, true, 0, 0, 0, 0).unwrap();
    let before = fake.executed().len();
    let r = smmu.invalidate(&[Command::tlbi_s12_vmall(1), bad, Command::tlbi_s12_vmall(2)]);
    match r {
        Err(SmmuError::CommandFailed(f)) => {
            assert_eq!(f.error, CmdqError::Illegal);
            assert_eq!(f.command, bad);
        }
        other => panic!("{other:?}"),
    }
    let s = fake.state();
    assert_eq!(s.gerror, s.gerrorn, "CMDQ_ERR acknowledged");
    drop(s);
    // The SMMU saw: vmall(1), the bad command, then (after the fix) the
    // CMD_SYNC that replaced it, vmall(2) and our sync.
    assert_eq!(
        fake.executed()[before..],
        [
            Command::tlbi_s12_vmall(1),
            bad,
            Command::sync(),
            Command::tlbi_s12_vmall(2),
            Command::sync()
        ]
    );
    let c = smmu.counters();
    assert_eq!((c.cmdq.errors.illegal, c.cmdq.replaced), (1, 1));
    // The queue works again.
    fake.state_mut().illegal_opcodes.clear();
    smmu.invalidate(&[bad]).unwrap();
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn unknown_opcode_through_the_raw_path() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let junk = Command([0xff, 0]);
    assert!(matches!(
        smmu.submit_unfiltered(&[junk]),
        Err(SmmuError::CommandFailed(f)) if f.command == junk
    ));
    smmu.sync().unwrap();
    assert_eq!(smmu.counters().cmdq.errors.illegal, 1);
}

#[test]
fn cerror_abt_is_retried() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    fake.state_mut().fetch_aborts = 2;
    smmu.invalidate(&[Command::tlbi_s12_vmall(1)]).unwrap();
    let c = smmu.counters();
    assert_eq!((c.cmdq.errors.abort, c.cmdq.replaced), (2, 0));
    assert_eq!(fake.executed().last(), Some(&Command::sync()));
}

#[test]
fn invalidate_refuses_what_the_smmu_would_reject() {
    let dma = FakeDma::new();
    // No RIL, no VMID16, no HYP.
    let fake = FakeSmmu::new(
        &dma,
        IdRegs {
            idr0: QEMU_VIRT.idr0 & !(1 << 18),
            idr3: QEMU_VIRT.idr3 & !(1 << 10),
            ..QEMU_VIRT
        },
    );
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let refused = |op| Err(SmmuError::CommandNotAllowed { opcode: op });
    assert_eq!(
        smmu.invalidate(&[Command::sync()]),
        refused(opcode::CMD_SYNC)
    );
    assert_eq!(
        smmu.invalidate(&[Command::prefetch_config(1)]),
        refused(opcode::PREFETCH_CONFIG)
    );
    assert_eq!(
        smmu.invalidate(&[Command::tlbi_el2_all()]),
        refused(opcode::TLBI_EL2_ALL)
    );
    let range = Command::tlbi_s2_ipa(1, 0, true, 3, 1, 0, 3).unwrap();
    assert_eq!(smmu.invalidate(&[range]), refused(opcode::TLBI_S2_IPA));
    assert_eq!(
        smmu.invalidate(&[Command::tlbi_s12_vmall(256)]),
        refused(opcode::TLBI_S12_VMALL)
    );
    // Nothing was issued for refused batches, even partially.
    let before = smmu.counters().cmdq.issued.total();
    assert_eq!(
        smmu.invalidate(&[Command::tlbi_s12_vmall(1), Command::sync()]),
        refused(opcode::CMD_SYNC)
    );
    assert_eq!(smmu.counters().cmdq.issued.total(), before);
    smmu.invalidate(&[
        Command::tlbi_s12_vmall(255),
        Command::tlbi_s2_ipa(1, 0x1000, true, 0, 0, 0, 0).unwrap(),
        Command::cfgi_ste(3, true),
    ])
    .unwrap();
}

#[test]
fn one_sync_per_invalidation_batch() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    let syncs = smmu.counters().syncs();
    let batch: Vec<_> = (0..100u64)
        .map(|i| Command::tlbi_s2_ipa(4, i << 12, true, 3, 1, 0, 0).unwrap())
        .collect();
    smmu.invalidate(&batch).unwrap();
    let c = smmu.counters();
    assert_eq!(c.syncs() - syncs, 1);
    assert_eq!(c.cmdq.issued.tlbi_s2_ipa, 100);
    assert_eq!(c.cmdq.publishes, 2, "probe batch + this batch");
}

fn translation_fault(sid: u32, ipa: u64) -> [u64; 4] {
    [
        0x10 | (u64::from(sid) << 32),
        (1 << 39) | (2 << 40),
        ipa,
        ipa & 0x000f_ffff_ffff_f000,
    ]
}

#[test]
fn events_are_decoded_into_the_fault_log() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    assert_eq!(
        fake.inject_event(translation_fault(8, 0x8000_7000)),
        Inject::Written
    );
    assert_eq!(
        fake.inject_event([0x13 | (9 << 32), 1 << 39, 0x1000, 0x1000]),
        Inject::Written
    );
    assert_eq!(
        fake.inject_event([0x02 | (0x300 << 32), 0, 0, 0]),
        Inject::Written
    );
    assert_eq!(smmu.drain_events().unwrap(), 3);
    assert_eq!(smmu.drain_events().unwrap(), 0);
    let log: Vec<_> = smmu.fault_log().iter().copied().collect();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].kind, EventKind::Translation);
    assert_eq!(
        (log[0].sid, log[0].ipa, log[0].s2),
        (8, Some(0x8000_7000), true)
    );
    assert_eq!(log[1].kind, EventKind::Permission);
    assert_eq!(log[2].kind, EventKind::BadStreamId);
    assert_eq!(log[2].sid, 0x300);
    let c = smmu.counters();
    assert_eq!(c.evtq.events, 3);
    assert_eq!(
        (
            c.evtq.by_kind.translation,
            c.evtq.by_kind.permission,
            c.evtq.by_kind.bad_streamid
        ),
        (1, 1, 1)
    );
    // CONS caught up with PROD.
    let s = fake.state();
    assert_eq!(s.evtq_cons & 0xff, s.evtq_prod & 0xff);
}

#[test]
fn fault_log_overflow_through_the_driver() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu<4> = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            fault_log_policy: OverflowPolicy::DropOldest,
            ..budget()
        },
    );
    for i in 0..10 {
        assert_eq!(
            fake.inject_event(translation_fault(i, 0x1000)),
            Inject::Written
        );
    }
    assert_eq!(smmu.drain_events().unwrap(), 10);
    let sids: Vec<_> = smmu.fault_log().iter().map(|e| e.sid).collect();
    assert_eq!(sids, [6, 7, 8, 9]);
    assert_eq!(smmu.counters().fault_log_dropped, 6);
    assert_eq!(smmu.fault_log_mut().pop().map(|e| e.sid), Some(6));
}

#[test]
fn drain_is_bounded_per_call() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            max_events_per_drain: 5,
            ..budget()
        },
    );
    for i in 0..12 {
        fake.inject_event(translation_fault(i, 0x1000));
    }
    assert_eq!(smmu.drain_events().unwrap(), 5);
    assert_eq!(smmu.drain_events().unwrap(), 5);
    assert_eq!(smmu.drain_events().unwrap(), 2);
}

#[test]
fn event_queue_overflow_handshake() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            evtq_log2: 2,
            ..budget()
        },
    );
    let results: Vec<_> = (0..6)
        .map(|i| fake.inject_event(translation_fault(i, 0)))
        .collect();
    assert_eq!(results[..4], [Inject::Written; 4]);
    assert_eq!(results[4..], [Inject::Overflowed; 2]);
    assert_eq!(smmu.drain_events().unwrap(), 4);
    let c = smmu.counters();
    assert_eq!(c.evtq.overflows, 1);
    {
        let s = fake.state();
        assert_eq!(
            s.evtq_cons >> 31,
            s.evtq_prod >> 31,
            "OVACKFLG follows OVFLG"
        );
    }
    // A second episode toggles the flag back and is counted again.
    for i in 0..5 {
        fake.inject_event(translation_fault(i, 0));
    }
    assert_eq!(smmu.drain_events().unwrap(), 4);
    assert_eq!(smmu.counters().evtq.overflows, 2);
    assert_eq!(smmu.drain_events().unwrap(), 0);
    assert_eq!(smmu.counters().evtq.overflows, 2);
}

#[test]
fn qemu_eventq_abort_is_recovered() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    fake.state_mut().qemu_evtq_full = true;
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(
        &fake,
        &dma,
        &clock,
        Budget {
            evtq_log2: 2,
            ..budget()
        },
    );
    let results: Vec<_> = (0..6)
        .map(|i| fake.inject_event(translation_fault(i, 0)))
        .collect();
    assert_eq!(results[4..], [Inject::Aborted; 2]);
    let trail_len = fake.state().trail.len();
    assert_eq!(smmu.drain_events().unwrap(), 4);
    let c = smmu.counters();
    assert_eq!((c.gerror.evtq_abort, c.gerror.evtq_resets), (1, 1));
    {
        let s = fake.state();
        assert_eq!(s.gerror, s.gerrorn, "acknowledged");
        assert_eq!(s.cr0, 0xd, "event queue enabled again");
        // The restart: EVENTQEN off, pointers zeroed, EVENTQEN on.
        let restart: Vec<_> = s.trail[trail_len..]
            .iter()
            .filter_map(|t| match *t {
                Trail::Write { off, value } if off != offset::EVENTQ_CONS || value == 0 => {
                    Some((off, value))
                }
                _ => None,
            })
            .collect();
        assert!(restart.contains(&(offset::CR0, 0x9)));
        assert!(restart.contains(&(offset::EVENTQ_PROD, 0)));
        assert_eq!(
            restart.last(),
            Some(&(offset::GERRORN, u64::from(s.gerrorn)))
        );
    }
    // New events land at the start of the queue and are drained.
    assert_eq!(fake.inject_event(translation_fault(42, 0)), Inject::Written);
    assert_eq!(smmu.drain_events().unwrap(), 1);
    assert_eq!(smmu.fault_log().iter().last().map(|e| e.sid), Some(42));
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn service_failure_mode_is_reported() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    fake.state_mut().gerror ^= 1 << 8;
    assert_eq!(smmu.drain_events(), Err(SmmuError::ServiceFailureMode));
    assert_eq!(smmu.drain_events(), Err(SmmuError::ServiceFailureMode));
    assert_eq!(smmu.counters().gerror.sfm, 1, "counted once");
    let s = fake.state();
    assert_ne!(s.gerror, s.gerrorn, "SFM is not acknowledged");
}

#[test]
fn other_global_errors_are_counted_and_acknowledged() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    // MSI_EVENTQ_ABT_ERR and PRIQ_ABT_ERR.
    fake.state_mut().gerror ^= (1 << 5) | (1 << 3);
    assert_eq!(smmu.service_gerror(), Ok(0));
    assert_eq!(smmu.counters().gerror.other, 2);
    let s = fake.state();
    assert_eq!(s.gerror, s.gerrorn);
    assert_eq!(
        writes(&fake).last(),
        Some(&(offset::GERRORN, u64::from(s.gerrorn)))
    );
}

#[test]
fn ste_readback_matches_config() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_VIRT);
    let clock = FakeClock::new(1000);
    let mut smmu: TestSmmu = probe(&fake, &dma, &clock, budget());
    smmu.attach_s2(0x12, &s2(5, 0x4000_2000)).unwrap();
    let ste = smmu.read_ste(0x12).unwrap().unwrap();
    assert_eq!(ste.config(), SteConfig::Stage2);
    assert_eq!(ste.s2_config(), Some(s2(5, 0x4000_2000)));
    assert_eq!(ste, fake.fetch_ste(0x12).unwrap());
}

#[test]
fn a_refused_smmu_can_still_be_made_to_abort_traffic() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_STAGE1_ONLY);
    let clock = FakeClock::new(1000);
    let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
    assert!(r.is_err());
    super::driver::abort_all_traffic(&&fake, &&clock, super::PollBudget::DEFAULT).unwrap();
    assert_ne!(
        super::SmmuRegs::read32(&&fake, super::regs::offset::GBPA) & (1 << 20),
        0,
        "GBPA.ABORT set"
    );
    assert_eq!(dma.live_regions(), 0);
}

#[test]
fn a_refused_smmu_that_firmware_left_enabled_ends_disabled_and_aborting() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_STAGE1_ONLY);
    let clock = FakeClock::new(1000);
    {
        // Firmware enabled it (GBPA still bypass, which SMMUEN overrides).
        let mut s = fake.state_mut();
        s.cr0 = 0xd;
        s.cr0ack = 0xd;
    }
    let r: Result<TestSmmu, _> = Smmu::probe(&fake, &dma, &clock, budget());
    assert!(matches!(r, Err(SmmuError::Unsupported(_))));
    super::driver::abort_all_traffic(&&fake, &&clock, PollBudget::DEFAULT).unwrap();
    let (cr0, cr0ack, gbpa) = {
        let s = fake.state();
        (s.cr0, s.cr0ack, s.gbpa)
    };
    assert_eq!((cr0, cr0ack), (0, 0), "SMMUEN and the queues off");
    assert_ne!(gbpa & (1 << 20), 0, "GBPA.ABORT set");
    assert_eq!(fake.translate(0x8), Outcome::Abort);
    // Disabled after the abort was in place, never before.
    let writes: Vec<usize> = fake
        .state()
        .trail
        .iter()
        .filter_map(|t| match t {
            Trail::Write { off, .. } => Some(*off),
            Trail::Cmd(_) => None,
        })
        .collect();
    assert_eq!(writes, [offset::GBPA, offset::CR0]);
    assert_eq!(fake.violations(), Vec::<std::string::String>::new());
}

#[test]
fn a_refused_smmu_whose_gbpa_update_never_completes_is_left_enabled() {
    let dma = FakeDma::new();
    let fake = FakeSmmu::new(&dma, QEMU_STAGE1_ONLY);
    let clock = FakeClock::new(1000);
    {
        let mut s = fake.state_mut();
        s.cr0 = 0xd;
        s.cr0ack = 0xd;
        s.gbpa = 0x1000 | (1 << 31);
    }
    let poll = PollBudget {
        timeout_ns: 1_000_000,
        max_polls: 1000,
    };
    assert_eq!(
        super::driver::abort_all_traffic(&&fake, &&clock, poll),
        Err(SmmuError::Timeout(WaitFor::GbpaUpdate))
    );
    assert_eq!(fake.state().cr0, 0xd, "disabling would open the bypass");
}

//! Host tests of the IOMMU service: fixtures shared by the directed tests,
//! the model-based fuzz and the concurrency test.
//!
//! Two SMMU backends: the real driver on the auditing fake SMMU (single
//! threaded, checks the programming rules and records every command) and
//! [`MockSmmu`], a small thread-safe stand-in for the concurrency test and
//! for injecting SMMU failures.

mod concurrency;
mod directed;
mod fuzz;
mod map_list;

use std::boxed::Box;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::vec::Vec;

use super::api::{DomainId, StatsQuery};
use super::attach::StreamRange;
use super::backend::{SmmuBackend, SmmuStats, TableAllocator};
use super::domain::DomainSlot;
use super::service::{IommuService, ServiceConfig};
use crate::hypercall::{self, client};
use crate::mem::{Owner, OwnershipTracker, PhysPolicy};
use crate::memmap::PhysRange;
use crate::pgtable::hostmem::HostMemory;
use crate::pgtable::{Granule, PhysAddr, StartLevelPolicy, TableMemory};
use crate::smmu::fake::{FakeClock, FakeDma, FakeSmmu, QEMU_VIRT, Trail};
use crate::smmu::{Budget, Command, Event, Features, PollBudget, S2Config, Smmu, SmmuError};
use crate::vdev::guest_memory::{OwnedRam, PhysMemory};

/// RAM of the test machine: 64 MiB.
pub const RAM: PhysRange = PhysRange::new(0x8000_0000, 64 << 20);
/// The hyp's image and pool at the start of RAM.
pub const EL2_MEM: PhysRange = PhysRange::new(0x8000_0000, 2 << 20);
/// First RAM byte EL1 owns.
pub const EL1_RAM: u64 = 0x8020_0000;
/// `no-map` reserved memory (a TEE's carve-out) inside RAM: EL1's to
/// touch, no device's.
pub const NO_MAP: PhysRange = PhysRange::new(0x8300_0000, 2 << 20);
pub const GIC: PhysRange = PhysRange::new(0x800_0000, 0x2_0000);
/// SMMU `i`'s registers.
pub const fn smmu_regs(i: u64) -> PhysRange {
    PhysRange::new(0x905_0000 + i * 0x2_0000, 0x2_0000)
}
/// A free MMIO window (a PCIe BAR).
pub const MMIO: u64 = 0x1000_0000;
/// The MMIO a device may be given: a PCIe window at [`MMIO`], and one right
/// after RAM.
pub const MMIO_WINDOWS: [PhysRange; 2] = [
    PhysRange::new(MMIO, 0x1000_0000),
    PhysRange::new(RAM.end(), 0x100_0000),
];
/// An MSI doorbell page inside the GIC (an ITS translater page).
pub const DOORBELL: PhysRange = PhysRange::new(GIC.start + 0x1_0000, 0x1000);
/// StreamIDs EL1 may attach (sorted by SMMU: a service over fewer SMMUs
/// takes a prefix).
pub const STREAMS: [StreamRange; 3] = [
    StreamRange {
        smmu: 0,
        first: 0,
        count: 64,
    },
    StreamRange {
        smmu: 0,
        first: 0x1000,
        count: 8,
    },
    StreamRange {
        smmu: 1,
        first: 0x100,
        count: 16,
    },
];
/// Table memory without a practical limit.
pub const UNLIMITED: i64 = 1 << 40;

pub const R: u64 = crate::hypercall::abi::prot::READ;
pub const W: u64 = crate::hypercall::abi::prot::WRITE;
pub const RW: u64 = R | W;

// ---------------------------------------------------------------- tables

/// Table memory shared by every domain of a service, with a byte limit.
pub struct TableBudget {
    live: AtomicI64,
    limit: AtomicI64,
}

impl TableBudget {
    pub fn new(limit: i64) -> Arc<Self> {
        Arc::new(Self {
            live: AtomicI64::new(0),
            limit: AtomicI64::new(limit),
        })
    }

    /// Bytes of table memory allocated now.
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::SeqCst)
    }

    /// Lets at most `bytes` more be allocated.
    pub fn set_left(&self, bytes: i64) {
        self.limit.store(self.live() + bytes, Ordering::SeqCst);
    }

    /// No practical limit again.
    pub fn unlimit(&self) {
        self.limit.store(UNLIMITED, Ordering::SeqCst);
    }

    fn take(&self, bytes: i64) -> bool {
        let live = self.live.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if live > self.limit.load(Ordering::SeqCst) {
            self.live.fetch_sub(bytes, Ordering::SeqCst);
            return false;
        }
        true
    }
}

#[derive(Clone)]
pub struct HostTables(pub Arc<TableBudget>);

/// One domain's host table memory, charged to the shared budget.
pub struct BudgetMemory {
    pub host: HostMemory,
    budget: Arc<TableBudget>,
}

// SAFETY: forwards to `HostMemory`, which upholds the contract; the
// budget only refuses allocations.
unsafe impl TableMemory for BudgetMemory {
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr> {
        if !self.budget.take(size as i64) {
            return None;
        }
        self.host.alloc_table(size)
    }
    fn free_table(&mut self, pa: PhysAddr, size: u64) {
        self.host.free_table(pa, size);
        self.budget.live.fetch_sub(size as i64, Ordering::SeqCst);
    }
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.host.read(table, index)
    }
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        self.host.write(table, index, desc)
    }
    fn barrier_before_link(&mut self) {
        self.host.barrier_before_link()
    }
}

impl TableAllocator for HostTables {
    type Memory = BudgetMemory;
    fn table_memory(&self, granule: Granule, _coherent: bool) -> BudgetMemory {
        BudgetMemory {
            host: HostMemory::new(granule),
            budget: Arc::clone(&self.0),
        }
    }
}

// ---------------------------------------------------------------- service

pub type Svc<'a, S> = IommuService<'a, S, HostTables>;

/// What a service borrows: the RAM ownership record (with the hyp's own
/// memory marked EL2-owned and [`NO_MAP`] marked, as at boot) and domain
/// slots.
pub struct Storage {
    /// The tracker's records (leaked: the tracker borrows them for as long
    /// as the test runs).
    pub records: &'static [AtomicU32],
    pub tracker: OwnershipTracker<'static>,
    pub slots: Vec<DomainSlot<BudgetMemory>>,
}

impl Storage {
    pub fn new(slots: usize) -> Self {
        let n = OwnershipTracker::pages_needed(&[RAM]).unwrap_or(0);
        let records: &'static [AtomicU32] = Vec::leak((0..n).map(|_| AtomicU32::new(0)).collect());
        let tracker = OwnershipTracker::new(&[RAM], records).expect("tracker");
        tracker
            .set_owner(EL2_MEM.start, EL2_MEM.size, Owner::El2)
            .expect("EL2 memory");
        tracker.mark_no_map(NO_MAP).expect("no-map memory");
        Self {
            records,
            tracker,
            slots: (0..slots).map(|_| DomainSlot::new()).collect(),
        }
    }

    /// Reference count of the RAM page holding `pa`.
    pub fn refcount(&self, pa: u64) -> u32 {
        let i = ((pa - RAM.start) >> 12) as usize;
        self.records[i].load(Ordering::SeqCst) & 0xff_ffff
    }
}

/// A service over `smmus` with the test platform's RAM, EL2 memory and
/// forbidden ranges.
pub fn service<'a, S: SmmuBackend>(
    smmus: &'a [Option<&'a spin::Mutex<S>>],
    storage: &'a Storage,
    budget: &Arc<TableBudget>,
) -> Svc<'a, S> {
    let mut policy =
        PhysPolicy::new(&[GIC, smmu_regs(0), smmu_regs(1), smmu_regs(2)]).expect("policy");
    for w in MMIO_WINDOWS {
        policy.allow_window(w).expect("policy");
    }
    policy.allow_doorbell(DOORBELL).expect("policy");
    let n = STREAMS.iter().filter(|r| r.smmu < smmus.len()).count();
    IommuService::new(
        ServiceConfig {
            smmus,
            streams: &STREAMS[..n],
            start_level: StartLevelPolicy::NoConcatenation,
        },
        &storage.slots,
        &storage.tracker,
        policy,
        HostTables(Arc::clone(budget)),
    )
    .expect("service")
}

#[test]
fn the_service_and_its_slots_can_live_in_statics() {
    fn shareable<S: SmmuBackend + Send + 'static, A: TableAllocator + Send + Sync>()
    where
        A::Memory: Send + 'static,
    {
        fn sync<T: Send + Sync>() {}
        sync::<IommuService<'static, S, A>>();
    }
    shareable::<MockSmmu<'static>, HostTables>();
    static SLOTS: [DomainSlot<BudgetMemory>; 4] = [const { DomainSlot::new() }; 4];
    assert!(SLOTS[0].0.lock().domain.is_none());
}

/// Makes one call through the dispatcher.
pub fn call<S: SmmuBackend>(svc: &Svc<'_, S>, args: client::Args) -> Result<[u64; 3], i64> {
    client::status(hypercall::dispatch_with(&args, Some(svc)))
}

// ---------------------------------------------------------------- EL1 memory

/// Bytes of a page of [`ListRam`].
const PAGE_BYTES: u64 = 0x1000;

/// Where the tests put their lists: EL1's RAM, away from what they map.
pub const LIST: u64 = EL1_RAM + 0x100_0000;

/// EL1's RAM behind the ownership checks (which refuse everything that is
/// not EL1's before a load is made): two pages at [`LIST`], zeros
/// elsewhere.
pub struct ListRam {
    bytes: RefCell<Vec<u8>>,
    /// How many times each byte was read.
    reads: RefCell<Vec<u32>>,
}

impl ListRam {
    pub fn new() -> Self {
        Self {
            bytes: RefCell::new(std::vec![0; 2 * PAGE_BYTES as usize]),
            reads: RefCell::new(std::vec![0; 2 * PAGE_BYTES as usize]),
        }
    }

    /// Reads of each byte of `len` at `at` since the last call.
    pub fn reads(&self, at: u64, len: usize) -> Vec<u32> {
        let mut reads = self.reads.borrow_mut();
        let counts = reads[(at - LIST) as usize..][..len].to_vec();
        reads.fill(0);
        counts
    }

    /// Writes `entries` at `at`.
    pub fn put(&self, at: u64, entries: &[[u64; 4]]) {
        let mut bytes = self.bytes.borrow_mut();
        for (k, e) in entries.iter().enumerate() {
            let off =
                (at - LIST) as usize + k * crate::hypercall::abi::map_list::ENTRY_BYTES as usize;
            let entry = client::map_list_entry(e[0], e[1], e[2], e[3]);
            bytes[off..off + entry.len()].copy_from_slice(&entry);
        }
    }
}

// SAFETY: touches only the buffer, and no byte but those asked for.
unsafe impl PhysMemory for ListRam {
    unsafe fn read(&self, pa: u64, buf: &mut [u8]) {
        let (bytes, mut reads) = (self.bytes.borrow(), self.reads.borrow_mut());
        for (i, b) in buf.iter_mut().enumerate() {
            let off = (pa + i as u64).wrapping_sub(LIST) as usize;
            *b = bytes.get(off).copied().unwrap_or(0);
            if let Some(n) = reads.get_mut(off) {
                *n += 1;
            }
        }
    }
    unsafe fn write(&self, _: u64, _: &[u8]) {
        unreachable!("HYP_MAP_LIST only reads");
    }
}

/// One call through the dispatcher, with EL1's RAM readable.
pub fn call_el1<S: SmmuBackend>(
    svc: &Svc<'_, S>,
    storage: &Storage,
    ram: &ListRam,
    args: client::Args,
) -> Result<[u64; 3], i64> {
    let el1 = OwnedRam::new(&storage.tracker, ram);
    client::status(hypercall::dispatch_el1(&args, Some(svc), &el1))
}

// ---------------------------------------------------------------- fakes

pub type Driver<'a> = Smmu<&'a FakeSmmu<'a>, &'a FakeDma, &'a FakeClock>;

fn driver_budget() -> Budget {
    Budget {
        poll: PollBudget {
            timeout_ns: 1_000_000,
            max_polls: 100_000,
        },
        ..Budget::DEFAULT
    }
}

/// Runs `f` with `n` fake SMMUs driven by the real driver, plus (if
/// `absent`) an SMMU index the hyp does not drive.
pub fn with_fakes<R>(
    n: usize,
    absent: bool,
    f: impl FnOnce(&[FakeSmmu<'_>], &[Option<&spin::Mutex<Driver<'_>>>]) -> R,
) -> R {
    let dmas: Vec<FakeDma> = (0..n).map(|_| FakeDma::new()).collect();
    let clock = FakeClock::new(1000);
    let fakes: Vec<FakeSmmu<'_>> = dmas.iter().map(|d| FakeSmmu::new(d, QEMU_VIRT)).collect();
    let drivers: Vec<spin::Mutex<Driver<'_>>> = fakes
        .iter()
        .zip(&dmas)
        .map(|(fake, dma)| {
            spin::Mutex::new(Smmu::probe(fake, dma, &clock, driver_budget()).expect("probe"))
        })
        .collect();
    let mut refs: Vec<Option<&spin::Mutex<Driver<'_>>>> = drivers.iter().map(Some).collect();
    if absent {
        refs.push(None);
    }
    let r = f(&fakes, &refs);
    for fake in &fakes {
        assert_eq!(fake.violations(), Vec::<std::string::String>::new());
    }
    r
}

/// Commands and register writes each fake has seen.
pub fn activity(fakes: &[FakeSmmu<'_>]) -> Vec<usize> {
    fakes.iter().map(|f| f.state().trail.len()).collect()
}

/// CMD_SYNCs each fake has executed.
pub fn syncs(fakes: &[FakeSmmu<'_>]) -> Vec<u64> {
    fakes.iter().map(|f| f.state().syncs).collect()
}

/// Commands each fake executed after the first `from[i]` trail entries.
pub fn commands_since(fake: &FakeSmmu<'_>, from: usize) -> Vec<Command> {
    fake.state()
        .trail
        .iter()
        .skip(from)
        .filter_map(|t| match t {
            Trail::Cmd(c) => Some(*c),
            Trail::Write { .. } => None,
        })
        .collect()
}

/// An F_TRANSLATION record for `sid` at `addr` (a stage-2 read).
pub fn translation_fault(sid: u32, addr: u64) -> [u64; 4] {
    [
        0x10 | u64::from(sid) << 32,
        (1 << 35) | (1 << 39) | (2 << 40),
        addr,
        addr & !0xfff,
    ]
}

// ---------------------------------------------------------------- mock

/// A thread-safe SMMU stand-in: records STEs and commands, can fail syncs
/// and attaches, and can run a probe at each sync (to observe what is true
/// while the sync is in flight).
pub struct MockSmmu<'p> {
    features: Features,
    pub stes: std::collections::BTreeMap<u32, S2Config>,
    pub tlbis: u64,
    /// Every command queued.
    pub commands: Vec<Command>,
    pub syncs: u64,
    pub fail_syncs: bool,
    /// Attaches write the STE (it goes live) and then fail, as when the
    /// sync after word 0 times out.
    pub fail_attach_after_ste: bool,
    pub events: VecDeque<Event>,
    pub on_sync: Option<Box<dyn Fn() + Send + 'p>>,
}

impl<'p> MockSmmu<'p> {
    pub fn new() -> Self {
        Self {
            features: Features::decode(QEMU_VIRT),
            stes: Default::default(),
            tlbis: 0,
            commands: Vec::new(),
            syncs: 0,
            fail_syncs: false,
            fail_attach_after_ste: false,
            events: VecDeque::new(),
            on_sync: None,
        }
    }
}

impl SmmuBackend for MockSmmu<'_> {
    fn features(&self) -> &Features {
        &self.features
    }
    fn sid_limit(&self) -> u64 {
        1 << 16
    }
    fn two_level_strtab(&self) -> bool {
        true
    }
    fn attach_s2(&mut self, sid: u32, cfg: &S2Config) -> Result<(), SmmuError> {
        self.stes.insert(sid, *cfg);
        if self.fail_attach_after_ste {
            return Err(SmmuError::Timeout(crate::smmu::WaitFor::CmdSync));
        }
        Ok(())
    }
    fn detach(&mut self, sid: u32) -> Result<(), SmmuError> {
        self.stes.remove(&sid);
        Ok(())
    }
    fn queue_invalidations(&mut self, cmds: &[Command]) -> Result<(), SmmuError> {
        self.tlbis += cmds.len() as u64;
        self.commands.extend_from_slice(cmds);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), SmmuError> {
        if let Some(probe) = &self.on_sync {
            probe();
        }
        if self.fail_syncs {
            return Err(SmmuError::Timeout(crate::smmu::WaitFor::CmdSync));
        }
        self.syncs += 1;
        Ok(())
    }
    fn pop_fault(&mut self) -> Result<Option<(Event, bool)>, SmmuError> {
        Ok(self
            .events
            .pop_front()
            .map(|e| (e, !self.events.is_empty())))
    }
    fn stats(&self) -> SmmuStats {
        SmmuStats {
            tlbis: self.tlbis,
            syncs: self.syncs,
            ..SmmuStats::default()
        }
    }
}

// ---------------------------------------------------------------- state

/// Everything a refused call must leave unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Per domain id: table fingerprint, bytes mapped, streams attached.
    pub domains: Vec<Option<(u64, u64, u32)>>,
    pub refcounts: Vec<u32>,
    pub objects: [u64; 3],
    pub memory: [u64; 3],
    pub calls_ok: [u64; 2],
    pub table_live: i64,
    pub vmids: u32,
}

impl Snapshot {
    pub fn take<S: SmmuBackend>(
        svc: &Svc<'_, S>,
        ids: &[u64],
        storage: &Storage,
        budget: &TableBudget,
    ) -> Self {
        let stat = |query| svc.stats(query).expect("stats");
        let calls = stat(StatsQuery::Calls);
        Self {
            domains: ids
                .iter()
                .map(|&id| {
                    svc.with_domain(DomainId(id), |d| {
                        (
                            d.table().memory().host.fingerprint(),
                            d.mapped,
                            d.attached(),
                        )
                    })
                })
                .collect(),
            refcounts: storage
                .records
                .iter()
                .map(|r| r.load(Ordering::SeqCst))
                .collect(),
            objects: stat(StatsQuery::Objects),
            memory: stat(StatsQuery::Memory),
            calls_ok: [calls[0], calls[1]],
            table_live: budget.live(),
            vmids: svc.vmids_in_use(),
        }
    }
}

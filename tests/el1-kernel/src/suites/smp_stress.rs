//! Suite `smp-stress` (boot with 4 to 8 CPUs; `make test` uses 8): every
//! CPU maps, translates and unmaps at once, in its own domain and in one
//! shared domain (its own ranges there, plus a few IOVAs all CPUs fight
//! over: exactly one map wins, the others get EXISTS), while the boot CPU
//! keeps the `edu` device copying through a stable mapping of the shared
//! domain. Every result is checked where it happens (a translation right
//! after a map must be the CPU's own page); at the end the boot CPU checks
//! each CPU's last mappings with DMA, the counters against what the CPUs
//! did, and that everything can be torn down.
//!
//! EL1 runs with its MMU off, so there are no exclusives: the CPUs talk
//! through per-CPU slots that only their owner writes, and a start flag
//! only the boot CPU writes (plain loads and stores, with barriers).
//! Every wait is bounded: a hang is reported, not waited for.

use crate::arena;
use crate::dma_device::{self, DmaDevice};
use crate::hyp_client::smc;
use crate::iommu::{self, RW};
use crate::println;
use crate::report::Report;
use crate::timer;
use core::sync::atomic::{AtomicU64, Ordering, fence};
use smmu_hyp::hypercall::abi::{self, prot, stats};
use smmu_hyp::platform::Platform;
use smmu_hyp::smccc::psci;

use smmu_hyp::mem::PAGE_SIZE as PAGE;
const SZ_2M: u64 = 0x20_0000;
const MAX_CPUS: usize = 8;
const DEFAULT_ITERS: u64 = 300;
/// Pages of the arena's page half each CPU owns.
const PAGES_PER_CPU: u64 = 64;
const PRIVATE_IOVA: u64 = 0x100_0000;
/// CPU `c` works at `SHARED_IOVA + c * SHARED_STRIDE` in the shared domain.
const SHARED_IOVA: u64 = 0x1000_0000;
const SHARED_STRIDE: u64 = 0x100_0000;
/// IOVAs of the shared domain every CPU tries to map.
const CONTENDED_IOVA: u64 = 0x2000_0000;
const CONTENDED: u64 = 4;
const BLOCK_IOVA: u64 = 0x4000_0000;
/// Where each CPU leaves its last mapping, for the DMA check at the end:
/// at this IOVA in its own domain and at this offset into its range of
/// the shared domain, so it must lie inside one stride and past the pages
/// the rounds use there.
const FINAL_IOVA: u64 = 0x80_0000;
const FINAL_PAGE: u64 = 60;
/// The boot CPU's stable DMA mapping in the shared domain.
const STABLE_SRC: u64 = 0x3000_0000;
const STABLE_DST: u64 = 0x3000_1000;
/// Pages of a CPU's shared range (and of its own domain) that the rounds map.
const ROUND_PAGES: u64 = 8 * 4;

// Every CPU's IOVAs in the shared domain are its own: its range holds its
// rounds' pages and its final page, the ranges of all CPUs end before the
// contended IOVAs, and those before the boot CPU's stable mapping. The
// CPUs' pages fit in the arena's page half.
const _: () = {
    assert!(ROUND_PAGES * PAGE <= FINAL_IOVA && FINAL_IOVA + PAGE <= SHARED_STRIDE);
    assert!(FINAL_IOVA + PAGE <= PRIVATE_IOVA);
    assert!(SHARED_IOVA + MAX_CPUS as u64 * SHARED_STRIDE <= CONTENDED_IOVA);
    assert!(CONTENDED_IOVA + CONTENDED * PAGE <= STABLE_SRC);
    assert!(FINAL_PAGE < PAGES_PER_CPU && MAX_CPUS as u64 * PAGES_PER_CPU <= 512);
};
/// DMA rounds the boot CPU waits for the others at most once its own
/// work is done (about 0.3 s of virtual time each). A CPU stuck inside
/// EL2 would stop the boot CPU too: the harness's timeout catches that.
const MAX_WAIT_ROUNDS: u64 = 1000;

/// Written by the boot CPU before it starts the others, read-only after.
struct Config {
    /// Non-zero: a CPU started now runs [`worker`].
    active: AtomicU64,
    go: AtomicU64,
    iters: AtomicU64,
    shared: AtomicU64,
    domains: [AtomicU64; MAX_CPUS],
}

/// What one CPU did, written only by that CPU.
#[repr(align(64))]
struct Slot {
    iters: AtomicU64,
    maps: AtomicU64,
    unmaps: AtomicU64,
    won: AtomicU64,
    lost: AtomicU64,
    errors: AtomicU64,
    /// The first error: iteration << 32 | step << 16 | (status & 0xffff).
    first_error: AtomicU64,
    done: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Self {
            iters: AtomicU64::new(0),
            maps: AtomicU64::new(0),
            unmaps: AtomicU64::new(0),
            won: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Adds one to a counter this CPU owns (a plain load and store).
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

static CONFIG: Config = Config {
    active: AtomicU64::new(0),
    go: AtomicU64::new(0),
    iters: AtomicU64::new(0),
    shared: AtomicU64::new(0),
    domains: [const { AtomicU64::new(0) }; MAX_CPUS],
};
static SLOTS: [Slot; MAX_CPUS] = [const { Slot::new() }; MAX_CPUS];

/// Whether CPUs started now are stress workers.
pub fn active() -> bool {
    CONFIG.active.load(Ordering::Relaxed) != 0
}

/// CPU `c`'s page `j`.
fn page(c: usize, j: u64) -> u64 {
    arena::pa(arena::page(c as u64 * PAGES_PER_CPU + j))
}

fn shared_base(c: usize) -> u64 {
    SHARED_IOVA + c as u64 * SHARED_STRIDE
}

/// Where a secondary CPU goes when the suite is active (from
/// `smp::secondary_main`): wait for the start, work, report, power off.
pub fn worker(cpu: usize) -> ! {
    let cpu = cpu.min(MAX_CPUS - 1);
    let mut polls = 0u64;
    while CONFIG.go.load(Ordering::Relaxed) == 0 && polls < 1 << 40 {
        polls += 1;
        core::hint::spin_loop();
    }
    fence(Ordering::SeqCst);
    let iters = CONFIG.iters.load(Ordering::Relaxed);
    for i in 0..iters {
        iteration(cpu, i);
    }
    finish(cpu);
    smc([u64::from(psci::CPU_OFF), 0, 0, 0]);
    loop {
        core::hint::spin_loop();
    }
}

/// Records a failed step (the first one in detail).
fn fail(cpu: usize, i: u64, step: u64, status: i64) {
    let s = &SLOTS[cpu];
    if s.errors.load(Ordering::Relaxed) == 0 {
        s.first_error.store(
            i << 32 | step << 16 | (status as u64 & 0xffff),
            Ordering::Relaxed,
        );
    }
    Slot::bump(&s.errors);
}

/// `Ok` of the expected value, else a failed step.
fn expect<T: PartialEq>(cpu: usize, i: u64, step: u64, r: Result<T, i64>, want: T) -> bool {
    match r {
        Ok(v) if v == want => true,
        Ok(_) => {
            fail(cpu, i, step, 0x7fff);
            false
        }
        Err(e) => {
            fail(cpu, i, step, e);
            false
        }
    }
}

fn translation(dom: u64, iova: u64) -> Result<(u64, u64), i64> {
    iommu::iova_to_phys(dom, iova).map(|t| (t.pa, t.leaf_size))
}

/// One round of work for `cpu`.
fn iteration(cpu: usize, i: u64) {
    let s = &SLOTS[cpu];
    let dom = CONFIG.domains[cpu].load(Ordering::Relaxed);
    let shared = CONFIG.shared.load(Ordering::Relaxed);
    let k = i % 8;
    let pa = page(cpu, k * 4);
    let own = PRIVATE_IOVA + k * 4 * PAGE;
    let mine = shared_base(cpu) + k * 4 * PAGE;

    // A few IOVAs every CPU wants: one map wins, the rest see EXISTS. The
    // winner holds it for the whole round.
    let slot = CONTENDED_IOVA + (i % CONTENDED) * PAGE;
    let prize = page(cpu, 40 + i % CONTENDED);
    let won = match iommu::map(shared, slot, prize, PAGE, 1, RW) {
        Ok(_) => {
            Slot::bump(&s.maps);
            Slot::bump(&s.won);
            true
        }
        Err(abi::EXISTS) => {
            Slot::bump(&s.lost);
            false
        }
        Err(e) => {
            fail(cpu, i, 5, e);
            false
        }
    };

    if expect(cpu, i, 1, iommu::map(dom, own, pa, PAGE, 4, RW), 4 * PAGE) {
        Slot::bump(&s.maps);
    }
    expect(
        cpu,
        i,
        2,
        translation(dom, own + 0x2345),
        (pa + 0x2345, PAGE),
    );
    if expect(
        cpu,
        i,
        3,
        iommu::map(shared, mine, pa, PAGE, 4, RW),
        4 * PAGE,
    ) {
        Slot::bump(&s.maps);
    }
    expect(
        cpu,
        i,
        4,
        translation(shared, mine + 0x3456),
        (pa + 0x3456, PAGE),
    );

    // Every CPU maps the same 2 MiB of RAM as a block, in its own domain:
    // the page references of one range change from all CPUs at once.
    if k == 7 {
        let block = arena::pa(arena::BLOCK);
        if expect(
            cpu,
            i,
            8,
            iommu::map(dom, BLOCK_IOVA, block, SZ_2M, 1, RW),
            SZ_2M,
        ) {
            Slot::bump(&s.maps);
        }
        expect(
            cpu,
            i,
            9,
            translation(dom, BLOCK_IOVA + 0x1_2345),
            (block + 0x1_2345, SZ_2M),
        );
        let u = iommu::unmap(dom, BLOCK_IOVA, SZ_2M, 1, 0).map(|u| u.bytes);
        if expect(cpu, i, 10, u, SZ_2M) {
            Slot::bump(&s.unmaps);
        }
    }

    let u = iommu::unmap(dom, own, PAGE, 4, 0).map(|u| u.bytes);
    if expect(cpu, i, 11, u, 4 * PAGE) {
        Slot::bump(&s.unmaps);
    }
    match iommu::iova_to_phys(dom, own) {
        Err(abi::NOT_FOUND) => {}
        Err(e) => fail(cpu, i, 12, e),
        Ok(_) => fail(cpu, i, 12, 0x7fff),
    }
    let u = iommu::unmap(shared, mine, PAGE, 4, 0).map(|u| u.bytes);
    if expect(cpu, i, 13, u, 4 * PAGE) {
        Slot::bump(&s.unmaps);
    }
    if won {
        expect(cpu, i, 6, translation(shared, slot + 8), (prize + 8, PAGE));
        let u = iommu::unmap(shared, slot, PAGE, 1, 0).map(|u| u.bytes);
        if expect(cpu, i, 7, u, PAGE) {
            Slot::bump(&s.unmaps);
        }
    }
    s.iters.store(i + 1, Ordering::Relaxed);
}

/// Leaves one page mapped in the CPU's domain and in its shared range,
/// then says it is done.
fn finish(cpu: usize) {
    let s = &SLOTS[cpu];
    let dom = CONFIG.domains[cpu].load(Ordering::Relaxed);
    let shared = CONFIG.shared.load(Ordering::Relaxed);
    let pa = page(cpu, FINAL_PAGE);
    let n = s.iters.load(Ordering::Relaxed);
    if expect(
        cpu,
        n,
        14,
        iommu::map(dom, FINAL_IOVA, pa, PAGE, 1, RW),
        PAGE,
    ) {
        Slot::bump(&s.maps);
    }
    let at = shared_base(cpu) + FINAL_IOVA;
    if expect(cpu, n, 15, iommu::map(shared, at, pa, PAGE, 1, RW), PAGE) {
        Slot::bump(&s.maps);
    }
    fence(Ordering::SeqCst);
    s.done.store(1, Ordering::Relaxed);
}

fn done(cpu: usize) -> bool {
    SLOTS[cpu].done.load(Ordering::Relaxed) != 0
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let cpus = platform.cpus.len().min(MAX_CPUS);
    report.check(
        "4 CPUs or more",
        cpus >= 4,
        format_args!(
            "{cpus} CPUs work, of {} booted (boot with -smp 4 to 8)",
            platform.cpus.len()
        ),
    );
    let dev = dma_device::find(platform);
    dma_device::check_found(report, &dev);
    let Some(dev) = dev else { return };
    let iters = crate::suites::number(platform, "iters").unwrap_or(DEFAULT_ITERS);
    let _ = iommu::drain_faults(dev.smmu);

    // Domains: one per CPU and the shared one, with the device attached
    // to the shared one and the boot CPU's stable mapping in it.
    let mut ok = true;
    for c in 0..cpus {
        let d = iommu::alloc(40, 0);
        ok &= d.is_ok();
        CONFIG.domains[c].store(d.map_or(0, |d| d.id), Ordering::Relaxed);
    }
    let shared = iommu::alloc(40, 0).map_or(0, |d| d.id);
    CONFIG.shared.store(shared, Ordering::Relaxed);
    CONFIG.iters.store(iters, Ordering::Relaxed);
    let setup = [
        iommu::attach(dev.smmu, dev.sid, shared),
        iommu::map(shared, STABLE_SRC, page(0, 62), PAGE, 1, prot::READ).map(|_| ()),
        iommu::map(shared, STABLE_DST, page(0, 63), PAGE, 1, RW).map(|_| ()),
    ];
    ok &= shared != 0 && setup.iter().all(Result::is_ok);
    report.check(
        "a domain per CPU and a shared one with the device attached",
        ok,
        format_args!("{} domains, shared {shared:#x}: {setup:?}", cpus + 1),
    );
    if !ok {
        return;
    }
    let before = iommu::stats(stats::CALLS, 0).unwrap_or([0; 3]);

    // Start the others; they wait for `go`.
    CONFIG.active.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let entry = super::smp::entry_point();
    let mut started = 0;
    for c in 1..cpus {
        let r = smc([u64::from(psci::CPU_ON), platform.cpus[c], entry, c as u64])[0];
        started += u32::from(r == 0);
    }
    report.check(
        "CPU_ON of every other CPU",
        started as usize == cpus - 1,
        format_args!("{started} started, {iters} rounds each"),
    );
    let t0 = timer::ticks();
    fence(Ordering::SeqCst);
    CONFIG.go.store(1, Ordering::Relaxed);

    // The boot CPU works too, and keeps DMA going through the shared
    // domain while the others change it.
    let (mut dma_ok, mut dma_bad, mut rounds, mut own) = (0u64, 0u64, 0u64, 0u64);
    let mut waited = 0;
    while own < iters || (!(1..cpus).all(done) && waited < MAX_WAIT_ROUNDS) {
        waited += u64::from(own == iters);
        if dma_round(&dev, rounds as u8) {
            dma_ok += 1;
        } else {
            dma_bad += 1;
        }
        if own < iters {
            iteration(0, own);
            own += 1;
        }
        rounds += 1;
    }
    finish(0);
    let elapsed = timer::nanos(timer::ticks() - t0);
    let all = (0..cpus).all(done);
    report.check(
        "every CPU finished in bounded time (no deadlock)",
        all,
        format_args!(
            "{rounds} DMA rounds, {} ms of virtual time; done: {}",
            elapsed / 1_000_000,
            Done(cpus)
        ),
    );
    report.check(
        "DMA through the shared domain kept landing while it changed",
        dma_bad == 0 && dma_ok > 0,
        format_args!("{dma_ok} copies landed, {dma_bad} did not"),
    );
    let faults = iommu::drain_faults(dev.smmu);
    report.check(
        "no fault was recorded",
        faults == 0,
        format_args!("{faults} records"),
    );
    results(report, cpus, iters);
    if !all {
        return;
    }
    final_dma(report, &dev, cpus, shared);
    counters(report, cpus, before);
    teardown(report, &dev, cpus, shared);
}

/// One copy of a fresh token through the stable mapping.
fn dma_round(dev: &DmaDevice, token: u8) -> bool {
    let src = arena::page(62);
    let dst = arena::page(63);
    let bytes: [u8; 8] = core::array::from_fn(|i| token ^ (i as u8).wrapping_mul(0x25));
    arena::put(src, &bytes);
    arena::fill(dst, 8, !bytes[0]);
    dev.copy(STABLE_SRC, STABLE_DST, 8).is_ok() && arena::holds(dst, &bytes)
}

/// The per-CPU results.
fn results(report: &mut Report, cpus: usize, iters: u64) {
    for (c, s) in SLOTS.iter().enumerate().take(cpus) {
        let errors = s.errors.load(Ordering::Relaxed);
        let first = s.first_error.load(Ordering::Relaxed);
        report.check(
            "CPU's every map, translation and unmap was right",
            errors == 0 && s.iters.load(Ordering::Relaxed) == iters,
            format_args!(
                "cpu{c}: {} rounds, {} maps, {} unmaps, contended {} won / {} EXISTS, {errors} errors{}",
                s.iters.load(Ordering::Relaxed),
                s.maps.load(Ordering::Relaxed),
                s.unmaps.load(Ordering::Relaxed),
                s.won.load(Ordering::Relaxed),
                s.lost.load(Ordering::Relaxed),
                FirstError(errors, first)
            ),
        );
    }
    let won: u64 = SLOTS.iter().map(|s| s.won.load(Ordering::Relaxed)).sum();
    let lost: u64 = SLOTS.iter().map(|s| s.lost.load(Ordering::Relaxed)).sum();
    report.check(
        "contended maps: each won by one CPU, the others saw EXISTS",
        won + lost == iters * cpus as u64 && won > 0,
        format_args!("{won} won, {lost} EXISTS"),
    );
}

/// The device writes into each CPU's last mappings, through its domain
/// and through the shared one.
fn final_dma(report: &mut Report, dev: &DmaDevice, cpus: usize, shared: u64) {
    // The device buffer now holds a known token.
    let token: [u8; 8] = *b"cpu-done";
    arena::put(arena::page(62), &token);
    let loaded = dev.read_from(STABLE_SRC, 8).is_ok();
    let mut landed = 0;
    let _ = iommu::detach(dev.smmu, dev.sid);
    for c in 0..cpus {
        let target = arena::page(c as u64 * PAGES_PER_CPU + FINAL_PAGE);
        for (dom, iova) in [
            (CONFIG.domains[c].load(Ordering::Relaxed), FINAL_IOVA),
            (shared, shared_base(c) + FINAL_IOVA),
        ] {
            arena::fill(target, 8, 0);
            let a = iommu::attach(dev.smmu, dev.sid, dom);
            let w = dev.write_to(iova, 8);
            let d = iommu::detach(dev.smmu, dev.sid);
            if a.is_ok() && w.is_ok() && d.is_ok() && arena::holds(target, &token) {
                landed += 1;
            }
        }
    }
    let _ = iommu::attach(dev.smmu, dev.sid, shared);
    report.check(
        "each CPU's last mappings take DMA, in its domain and the shared one",
        loaded && landed == 2 * cpus,
        format_args!("{landed} of {} DMAs landed", 2 * cpus),
    );
}

/// The hyp's counters agree with what the CPUs did.
fn counters(report: &mut Report, cpus: usize, before: [u64; 3]) {
    let calls = iommu::stats(stats::CALLS, 0).unwrap_or([0; 3]);
    let objects = iommu::stats(stats::OBJECTS, 0).unwrap_or([0; 3]);
    let memory = iommu::stats(stats::MEMORY, 0).unwrap_or([0; 3]);
    let maps: u64 = SLOTS.iter().map(|s| s.maps.load(Ordering::Relaxed)).sum();
    let unmaps: u64 = SLOTS.iter().map(|s| s.unmaps.load(Ordering::Relaxed)).sum();
    // Left mapped: two pages per CPU and the two stable pages.
    let pages = 2 * cpus as u64 + 2;
    report.check(
        "the hyp's counters agree: maps, unmaps, domains, bytes and page references",
        calls[0] - before[0] == maps
            && calls[1] - before[1] == unmaps
            && objects == [cpus as u64 + 1, 1, pages * PAGE]
            && memory[1] == pages,
        format_args!(
            "maps +{} (CPUs {maps}), unmaps +{} (CPUs {unmaps}), OBJECTS {objects:?}, MEMORY {memory:x?}",
            calls[0] - before[0],
            calls[1] - before[1]
        ),
    );
}

fn teardown(report: &mut Report, dev: &DmaDevice, cpus: usize, shared: u64) {
    let mut ok = iommu::detach(dev.smmu, dev.sid).is_ok();
    for c in 0..cpus {
        ok &= iommu::free(CONFIG.domains[c].load(Ordering::Relaxed)).is_ok();
    }
    ok &= iommu::free(shared).is_ok();
    let objects = iommu::stats(stats::OBJECTS, 0);
    let memory = iommu::stats(stats::MEMORY, 0);
    report.check(
        "teardown: nothing left",
        ok && objects == Ok([0, 0, 0]) && matches!(memory, Ok([0, 0, _])),
        format_args!("OBJECTS {objects:?}, MEMORY {memory:?}"),
    );
    println!("el1: smp-stress done");
}

/// Which CPUs are done, e.g. `[1, 1, 0, 1]`.
struct Done(usize);

impl core::fmt::Display for Done {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("[")?;
        for c in 0..self.0 {
            write!(f, "{}{}", if c > 0 { ", " } else { "" }, u8::from(done(c)))?;
        }
        f.write_str("]")
    }
}

/// `; first: round r step s status x` when there were errors.
struct FirstError(u64, u64);

impl core::fmt::Display for FirstError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 == 0 {
            return Ok(());
        }
        let e = self.1;
        write!(
            f,
            "; first: round {} step {} status {}",
            e >> 32,
            (e >> 16) & 0xffff,
            (e & 0xffff) as u16 as i16
        )
    }
}

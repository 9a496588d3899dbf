//! Several CPUs calling at once: threads map and unmap on their own
//! domains and on one shared domain (disjoint and contended ranges, the
//! same physical pages everywhere), while others attach, detach, allocate,
//! free and read counters; lists (HYP_MAP_LIST) race for the contended
//! range too. No deadlock (a watchdog fails the run), no
//! call ever sees another's half-done state, and the final state is
//! consistent: nothing mapped, no reference held, no table or VMID leaked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use std::vec::Vec;

use super::*;
use crate::hypercall::abi::{self, stats, unmap as uflags};
use crate::vdev::guest_memory::OwnedRam;

const THREADS: u64 = 4;
const ROUNDS: u64 = 10_000;
const K4: u64 = 0x1000;
const MIB2: u64 = 2 << 20;
/// Physical pages every thread maps (so reference counts are contended).
const SHARED_PA: u64 = EL1_RAM + (8 << 20);
/// The iova every thread tries to map in the shared domain.
const CONTENDED: u64 = 0x7000_0000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fails the test binary instead of hanging it if `done` is not set in
/// time.
fn watchdog(done: Arc<AtomicBool>, limit: Duration) {
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !done.load(Ordering::SeqCst) {
            if start.elapsed() > limit {
                std::eprintln!("concurrency test: no progress for {limit:?} (deadlock?)");
                std::process::exit(101);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

/// One worker: its own domain (attached to its own StreamID) and its own
/// window of the shared domain.
fn worker<S: SmmuBackend + Send>(svc: &Svc<'_, S>, t: u64, shared: u64, wins: &AtomicU64) {
    let mut rng = Rng(0x1234_5678_9abc_def1 ^ ((t + 1) * 0x9e37_79b9));
    let own = call(svc, client::domain_alloc(39, 0)).expect("own domain")[0];
    call(svc, client::attach(0, t as u32, own)).expect("attach own");
    let window = 0x1000_0000 * (t + 1);
    let ram = ListRam::new();
    for round in 0..ROUNDS {
        let dom = if rng.below(2) == 0 { own } else { shared };
        let k = rng.below(64);
        let iova = window + k * MIB2;
        let pa = SHARED_PA + rng.below(16) * MIB2;
        match rng.below(4) {
            0 => {
                // A block, in a window no other thread uses.
                call(svc, client::map(dom, iova, pa, MIB2, 1, RW)).expect("map block");
                let t = call(svc, client::iova_to_phys(dom, iova + 0x1234)).expect("mapped");
                assert_eq!(t, [pa + 0x1234, RW, MIB2]);
                let u = call(svc, client::unmap(dom, iova, MIB2, 1, 0)).expect("unmap");
                assert_eq!(u, [MIB2, iova, MIB2]);
            }
            1 => {
                // Pages, then a whole-leaf unmap of one of them.
                let n = 1 + rng.below(16);
                call(svc, client::map(dom, iova, pa, K4, n, RW)).expect("map pages");
                let i = rng.below(n);
                let u = call(
                    svc,
                    client::unmap(dom, iova + i * K4, K4, 1, uflags::WHOLE_LEAF),
                )
                .expect("unmap one");
                assert_eq!(u[0], K4);
                let left = call(svc, client::unmap(dom, iova, K4, n, 0));
                if n == 1 {
                    assert_eq!(left, Err(abi::NOT_FOUND));
                } else {
                    assert_eq!(left.expect("unmap rest")[0], (n - 1) * K4);
                }
            }
            2 if rng.below(2) == 0 => {
                // The same race with a list: a page of its own window, then
                // the contended range. All or nothing: a loser's own page is
                // not mapped either.
                let entries = [[iova, pa, K4, 1], [CONTENDED, pa, K4, 4]];
                ram.put(LIST, &entries);
                let el1 = OwnedRam::new(svc.tracker(), &ram);
                let args = client::map_list(shared, LIST, 2, RW);
                match client::status(hypercall::dispatch_el1(&args, Some(svc), &el1)) {
                    Ok(r) => {
                        assert_eq!(r[0], 5 * K4);
                        wins.fetch_add(1, Ordering::Relaxed);
                        let u = call(svc, client::unmap(shared, CONTENDED, K4, 4, 0));
                        assert_eq!(u.expect("winner unmaps")[0], 4 * K4);
                        let u = call(svc, client::unmap(shared, iova, K4, 1, 0));
                        assert_eq!(u.expect("winner unmaps its page")[0], K4);
                    }
                    Err(e) => {
                        assert_eq!(e, abi::EXISTS);
                        let own = call(svc, client::iova_to_phys(shared, iova));
                        assert_eq!(own, Err(abi::NOT_FOUND), "a refused list left a map");
                    }
                }
            }
            2 => {
                // Everyone races for the same range of the shared domain:
                // exactly one mapping at a time, the winner removes it.
                match call(svc, client::map(shared, CONTENDED, pa, K4, 4, RW)) {
                    Ok(_) => {
                        wins.fetch_add(1, Ordering::Relaxed);
                        let got = call(svc, client::iova_to_phys(shared, CONTENDED + 0x3000));
                        assert_eq!(got.expect("winner's mapping")[0], pa + 0x3000);
                        let u = call(svc, client::unmap(shared, CONTENDED, K4, 4, 0));
                        assert_eq!(u.expect("winner unmaps")[0], 4 * K4);
                    }
                    Err(e) => assert_eq!(e, abi::EXISTS),
                }
            }
            _ => {
                // Reads that must never see a half-done state.
                if let Ok(t) = call(svc, client::iova_to_phys(shared, CONTENDED)) {
                    assert!(t[0] >= SHARED_PA && t[0] < SHARED_PA + 16 * MIB2);
                }
                let s = call(svc, client::stats(stats::OBJECTS, 0)).expect("stats");
                assert!(s[0] >= 1);
                let _ = call(svc, client::fault_pop((round % 2) as u32));
            }
        }
    }
    call(svc, client::detach(0, t as u32)).expect("detach own");
    call(svc, client::domain_free(own)).expect("free own");
}

/// Attach/detach churn on the shared domain, and domains coming and going.
fn churner<S: SmmuBackend + Send>(svc: &Svc<'_, S>, shared: u64, stop: &AtomicBool) {
    let mut rng = Rng(0xfeed_beef);
    while !stop.load(Ordering::SeqCst) {
        let sid = 32 + rng.below(16) as u32;
        match call(svc, client::attach(0, sid, shared)) {
            Ok(_) => call(svc, client::detach(0, sid))
                .map(|_| ())
                .expect("detach"),
            Err(e) => panic!("attach {sid}: {}", abi::error_name(e)),
        }
        if let Ok(r) = call(svc, client::domain_alloc(36, 0)) {
            call(svc, client::map(r[0], 0, SHARED_PA, K4, 8, RW)).expect("scratch map");
            call(svc, client::domain_free(r[0])).expect("scratch free");
        }
    }
}

#[test]
fn concurrent_calls_on_separate_and_shared_domains() {
    let done = Arc::new(AtomicBool::new(false));
    watchdog(Arc::clone(&done), Duration::from_secs(60));
    let storage = Storage::new(16);
    let (m0, m1) = (
        spin::Mutex::new(MockSmmu::new()),
        spin::Mutex::new(MockSmmu::new()),
    );
    let smmus = [Some(&m0), Some(&m1)];
    let budget = TableBudget::new(UNLIMITED);
    let svc = service(&smmus, &storage, &budget);
    let shared = call(&svc, client::domain_alloc(40, 0)).expect("shared")[0];
    call(&svc, client::attach(0, 60, shared)).expect("attach shared 0");
    call(&svc, client::attach(1, 0x100, shared)).expect("attach shared 1");
    let wins = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (svc, wins, stop) = (&svc, &wins, &stop);
        let workers: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || worker(svc, t, shared, wins)))
            .collect();
        let churn = s.spawn(move || churner(svc, shared, stop));
        for w in workers {
            w.join().expect("worker");
        }
        stop.store(true, Ordering::SeqCst);
        churn.join().expect("churner");
    });
    assert!(wins.load(Ordering::Relaxed) > 0);
    // Consistent final state.
    assert_eq!(svc.with_domain(DomainId(shared), |d| d.mapped), Some(0));
    assert_eq!(call(&svc, client::stats(stats::OBJECTS, 0)), Ok([1, 2, 0]));
    assert_eq!(svc.tracker().dma_refs(), 0);
    assert_eq!(svc.tracker().underflows(), 0);
    for p in 0..(16 * MIB2 / K4) {
        assert_eq!(storage.refcount(SHARED_PA + p * K4), 0);
    }
    call(&svc, client::detach(0, 60)).unwrap();
    call(&svc, client::detach(1, 0x100)).unwrap();
    call(&svc, client::domain_free(shared)).unwrap();
    assert_eq!(budget.live(), 0, "table memory leaked");
    assert_eq!(svc.vmids_in_use(), 0);
    assert_eq!(svc.attached_streams(), 0);
    assert!(m0.lock().syncs > 0 && m1.lock().syncs > 0);
    assert!(m0.lock().stes.is_empty() && m1.lock().stes.is_empty());
    done.store(true, Ordering::SeqCst);
}

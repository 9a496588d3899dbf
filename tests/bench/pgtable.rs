//! `cargo bench --bench pgtable`: this crate's stage-2 engine against the
//! `aarch64-paging` crate, doing the same work in the same process.
//!
//! Both use a 4K granule, a 39-bit input range starting at level 1, and
//! table pages at identity "physical" addresses, from the same source: a
//! pre-faulted page pool zeroing pages on allocation (default, as the
//! hypervisor's pool does) or the global allocator
//! (`PGTABLE_BENCH_ALLOC=global`, what `aarch64-paging`'s `IdTranslation`
//! uses; `both` runs both). `aarch64-paging` is driven the way its
//! documentation says for a scheme other than identity/linear mapping: a
//! `Translation` implementation and `Mapping::map_range`; unmapping is
//! `map_range` with flags lacking `VALID`, as documented. Its table is not
//! activated, so it does no TLB maintenance; ours does everything it does
//! on hardware except the MMIO: it builds the invalidation gather, hands it
//! to a `TlbMaintenance` (with RIL) that only counts the commands, syncs
//! once per unmap and frees emptied tables after the sync.
//!
//! One line per case: ns per 4 KiB page for map and unmap for each engine,
//! `speedup=` (aarch64-paging time / ours), and the table memory each used
//! after mapping (root included). Median of `PGTABLE_BENCH_ITERS` runs
//! (default 7); `PGTABLE_BENCH_FILTER` selects cases by name.
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::idmap::IdTranslation;
use aarch64_paging::paging::{Constraints, MemoryRegion, PageTable, Stage2, Translation};
use smmu_hyp::pgtable::{
    Config, Granule, Invalidation, PageTable as Ours, PhysAddr, Prot, StartLevelPolicy,
    TableMemory, TlbMaintenance, UnmapFlags,
};

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Where both engines get their table pages from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Alloc {
    /// A pre-faulted pool of 4 KiB pages with a free list, zeroed on
    /// allocation: what the hypervisor's page pool does. Default.
    Pool,
    /// The global allocator (`alloc_zeroed`/`dealloc`), which is what
    /// `aarch64-paging`'s own `IdTranslation` uses; includes the host
    /// kernel's page-fault and trimming costs.
    Global,
}

const POOL_PAGES: usize = 4096;

/// The page pool, shared by both engines (never by both at once).
struct Pool {
    free: Vec<*mut u8>,
}

impl Pool {
    fn new() -> Pool {
        let layout = Layout::from_size_align(POOL_PAGES * PAGE as usize, PAGE as usize).unwrap();
        // SAFETY: non-zero size. The pool lives as long as the process.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null());
        let free = (0..POOL_PAGES)
            .rev()
            .map(|i| {
                // SAFETY: inside the allocation; writing pre-faults the page.
                unsafe {
                    let p = base.add(i * PAGE as usize);
                    p.write_volatile(1);
                    p
                }
            })
            .collect();
        Pool { free }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::new());
}

fn page_alloc(alloc: Alloc) -> *mut u8 {
    match alloc {
        Alloc::Pool => POOL.with_borrow_mut(|p| {
            let page = p.free.pop().expect("bench pool exhausted");
            // SAFETY: a whole pool page, not in use.
            unsafe { page.write_bytes(0, PAGE as usize) };
            page
        }),
        Alloc::Global => {
            let layout = Layout::from_size_align(PAGE as usize, PAGE as usize).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { alloc_zeroed(layout) };
            assert!(!p.is_null());
            p
        }
    }
}

/// # Safety
/// `page` came from `page_alloc(alloc)` and is not used any more.
unsafe fn page_free(alloc: Alloc, page: *mut u8) {
    match alloc {
        Alloc::Pool => POOL.with_borrow_mut(|p| p.free.push(page)),
        Alloc::Global => {
            let layout = Layout::from_size_align(PAGE as usize, PAGE as usize).unwrap();
            // SAFETY: allocated by `page_alloc` with this layout.
            unsafe { dealloc(page, layout) }
        }
    }
}

/// Identity-mapped table memory, as the hypervisor's implementation is
/// over its page pool.
struct BenchMemory {
    alloc: Alloc,
    live: usize,
}

// SAFETY: pages come zeroed from the pool or the global allocator, 4 KiB
// aligned, one table each until freed; no walker reads them (the bench
// counts TLB commands only); `write` is one volatile 64-bit store.
unsafe impl TableMemory for BenchMemory {
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr> {
        // Only 4 KiB tables here: the bench configuration has no
        // concatenated root.
        assert_eq!(size, PAGE);
        self.live += 1;
        Some(page_alloc(self.alloc) as PhysAddr)
    }

    fn free_table(&mut self, pa: PhysAddr, _size: u64) {
        self.live -= 1;
        // SAFETY: the engine frees only tables it got from `alloc_table`,
        // once, when nothing uses them.
        unsafe { page_free(self.alloc, pa as *mut u8) }
    }

    fn free_tables(&mut self, tables: &[PhysAddr], _size: u64) {
        self.live -= tables.len();
        match self.alloc {
            // One pool borrow for the batch, as the hypervisor takes its
            // pool lock once per batch.
            Alloc::Pool => {
                POOL.with_borrow_mut(|p| p.free.extend(tables.iter().map(|&pa| pa as *mut u8)))
            }
            Alloc::Global => {
                for &pa in tables {
                    // SAFETY: as in `free_table`.
                    unsafe { page_free(self.alloc, pa as *mut u8) }
                }
            }
        }
    }

    #[inline(always)]
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // A plain load: nothing but this engine writes the tables (no HTTU),
        // so the compiler may keep or batch reads.
        // SAFETY: the engine only passes tables it allocated here (identity
        // mapped) and indices inside them.
        unsafe { (table as *const u64).add(index).read() }
    }

    #[inline(always)]
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // One 64-bit store the compiler may not split, merge or drop.
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile((table as *mut u64).add(index), desc) }
    }

    #[inline(always)]
    fn barrier_before_link(&mut self) {
        // The store ordering the hyp's `DMB OSHST` gives (free on x86).
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    }
}

/// Counts commands; the sync is free on the host.
#[derive(Default)]
struct CountingTlb {
    commands: u64,
    syncs: u64,
}

impl TlbMaintenance for CountingTlb {
    type Error = ();
    fn range_invalidation(&self) -> bool {
        true
    }
    fn invalidate(&mut self, inv: Invalidation) {
        black_box(inv);
        self.commands += 1;
    }
    fn sync(&mut self) -> Result<(), ()> {
        self.syncs += 1;
        Ok(())
    }
}

/// `aarch64-paging`'s allocation hook over the same pages, counting tables.
/// With [`Alloc::Global`] it is exactly `IdTranslation`.
struct BenchTranslation {
    alloc: Alloc,
    inner: IdTranslation<Stage2Attributes>,
    live: usize,
}

impl Translation<Stage2Attributes> for BenchTranslation {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        self.live += 1;
        if self.alloc == Alloc::Global {
            return self.inner.allocate_table();
        }
        let p = page_alloc(self.alloc);
        // A zeroed, 4 KiB-aligned page is a valid empty `PageTable`.
        (NonNull::new(p.cast()).unwrap(), PhysicalAddress(p as usize))
    }

    unsafe fn deallocate_table(&mut self, page_table: NonNull<PageTable<Stage2Attributes>>) {
        self.live -= 1;
        if self.alloc == Alloc::Global {
            // SAFETY: forwarded from our caller's contract.
            return unsafe { self.inner.deallocate_table(page_table) };
        }
        // SAFETY: forwarded from our caller's contract.
        unsafe { page_free(self.alloc, page_table.as_ptr().cast()) }
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<Stage2Attributes>).unwrap()
    }
}

/// One map: IOVA, PA, size.
type Op = (u64, u64, u64);

struct Run {
    map: Duration,
    unmap: Duration,
    tables: usize,
}

fn ours(ops: &[Op], alloc: Alloc) -> Run {
    let cfg = Config::new(Granule::Size4K, 39, 48, StartLevelPolicy::Level(1)).unwrap();
    let mut pt = Ours::new(cfg, BenchMemory { alloc, live: 0 }).unwrap();
    let mut tlb = CountingTlb::default();
    let t = Instant::now();
    for &(iova, pa, size) in ops {
        pt.map(iova, pa, size, Prot::RW).unwrap();
    }
    let map = t.elapsed();
    let tables = pt.memory().live;
    let t = Instant::now();
    for &(iova, _, size) in ops {
        black_box(pt.unmap(iova, size, UnmapFlags::EXACT).unwrap());
        pt.flush(&mut tlb).unwrap();
    }
    let unmap = t.elapsed();
    assert_eq!(pt.memory().live, 1, "tables left after unmap");
    assert_eq!(tlb.syncs as usize, ops.len(), "one sync per unmap");
    pt.destroy(&mut tlb).unwrap();
    Run { map, unmap, tables }
}

fn theirs(ops: &[Op], alloc: Alloc) -> Run {
    let flags = Stage2Attributes::VALID
        | Stage2Attributes::ACCESS_FLAG
        | Stage2Attributes::S2AP_ACCESS_RW
        | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
        | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
        | Stage2Attributes::SH_INNER
        | Stage2Attributes::XN;
    let translation = BenchTranslation {
        alloc,
        inner: IdTranslation::new(),
        live: 0,
    };
    let mut m = Mapping::new(translation, 1, Stage2);
    let t = Instant::now();
    for &(iova, pa, size) in ops {
        let region = MemoryRegion::new(iova as usize, (iova + size) as usize);
        m.map_range(
            &region,
            PhysicalAddress(pa as usize),
            flags,
            Constraints::empty(),
        )
        .unwrap();
    }
    let map = t.elapsed();
    let tables = m.translation().live;
    let t = Instant::now();
    for &(iova, _, size) in ops {
        let region = MemoryRegion::new(iova as usize, (iova + size) as usize);
        m.map_range(
            &region,
            PhysicalAddress(0),
            Stage2Attributes::empty(),
            Constraints::empty(),
        )
        .unwrap();
    }
    let unmap = t.elapsed();
    black_box(&m);
    drop(m);
    Run { map, unmap, tables }
}

/// Checks both engines translate a sample of the ops identically (so the
/// comparison is of the same work).
fn same_result(ops: &[Op]) {
    let cfg = Config::new(Granule::Size4K, 39, 48, StartLevelPolicy::Level(1)).unwrap();
    let mem = BenchMemory {
        alloc: Alloc::Global,
        live: 0,
    };
    let mut pt = Ours::new(cfg, mem).unwrap();
    let mut m = Mapping::new(IdTranslation::<Stage2Attributes>::new(), 1, Stage2);
    let flags = Stage2Attributes::VALID | Stage2Attributes::ACCESS_FLAG;
    for &(iova, pa, size) in ops {
        pt.map(iova, pa, size, Prot::RW).unwrap();
        let region = MemoryRegion::new(iova as usize, (iova + size) as usize);
        m.map_range(
            &region,
            PhysicalAddress(pa as usize),
            flags,
            Constraints::empty(),
        )
        .unwrap();
    }
    let step = (ops.len() / 64).max(1);
    for &(iova, pa, size) in ops.iter().step_by(step) {
        for off in [0, size / 2, size - PAGE] {
            assert_eq!(pt.iova_to_phys(iova + off), Some(pa + off));
            let va = (iova + off) & !(PAGE - 1);
            let region = MemoryRegion::new(va as usize, (va + PAGE) as usize);
            let mut seen = None;
            m.walk_range(&region, &mut |_, d, level| {
                // Leaves only: table descriptors are visited too.
                if d.is_valid() && (level == 3 || !d.is_table_or_page()) {
                    let size = PAGE << (9 * (3 - level));
                    let expect = (pa + (va - iova)) & !(size - 1);
                    seen = Some(d.output_address().0 as u64 == expect);
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(
                seen,
                Some(true),
                "aarch64-paging differs at {:#x}",
                iova + off
            );
        }
    }
    let mut tlb = CountingTlb::default();
    pt.destroy(&mut tlb).unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn case(name: &str, ops: &[Op], iters: usize, alloc: Alloc) {
    if let Ok(f) = std::env::var("PGTABLE_BENCH_FILTER")
        && !name.contains(&f)
    {
        return;
    }
    same_result(ops);
    let pages: u64 = ops.iter().map(|o| o.2 / PAGE).sum();
    let (mut om, mut ou, mut tm, mut tu) = (vec![], vec![], vec![], vec![]);
    let (mut ot, mut tt) = (0, 0);
    // Single-call cases take microseconds: repeat them so the timer's own
    // cost and noise average out (per-page figures stay per page).
    let reps = if ops.len() < 16 { 64 } else { 1 };
    for _ in 0..iters {
        let (mut a, mut b, mut c, mut d) = (
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        for _ in 0..reps {
            let r = ours(ops, alloc);
            a += r.map;
            b += r.unmap;
            ot = r.tables;
            let r = theirs(ops, alloc);
            c += r.map;
            d += r.unmap;
            tt = r.tables;
        }
        om.push(a / reps);
        ou.push(b / reps);
        tm.push(c / reps);
        tu.push(d / reps);
    }
    let ns = |d: Duration| d.as_nanos() as f64 / pages as f64;
    let (om, ou, tm, tu) = (
        ns(median(om)),
        ns(median(ou)),
        ns(median(tm)),
        ns(median(tu)),
    );
    println!(
        "{name:<26} map: ours={} aarch64-paging={} ns/page speedup={:.2} | \
         unmap: ours={} aarch64-paging={} ns/page speedup={:.2} | \
         tables: ours={ot} ({} KiB) aarch64-paging={tt} ({} KiB)",
        sig(om),
        sig(tm),
        tm / om,
        sig(ou),
        sig(tu),
        tu / ou,
        ot * 4,
        tt * 4,
    );
}

/// Three significant digits.
fn sig(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        let decimals = (2 - x.log10().floor() as i32).max(3) as usize;
        format!("{x:.decimals$}")
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let iters = std::env::var("PGTABLE_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let allocs = match std::env::var("PGTABLE_BENCH_ALLOC").as_deref() {
        Ok("global") => vec![Alloc::Global],
        Ok("both") => vec![Alloc::Pool, Alloc::Global],
        _ => vec![Alloc::Pool],
    };

    // 1 GiB of 4 KiB pages in one call: the output is 4 KiB off a 2 MiB
    // boundary, so neither engine can use blocks.
    let one_call = [(GIB, 8 * GIB + PAGE, GIB)];

    // The DMA-API pattern: one page per call, scattered physical pages
    // (a fixed pseudo-random permutation of 1 GiB of frames).
    let n = GIB / PAGE;
    let scattered: Vec<Op> = (0..n)
        .map(|i| {
            let frame = (i.wrapping_mul(0x9e37_79b1) ^ (i >> 7)) & (n - 1);
            (GIB + i * PAGE, 16 * GIB + frame * PAGE, PAGE)
        })
        .collect();

    // 1 GiB of 2 MiB blocks (output 2 MiB but not 1 GiB aligned).
    let blocks = [(GIB, 8 * GIB + 2 * MIB, GIB)];

    // A random mix of sizes, each mapped and unmapped by its own call.
    let mut mix = Vec::new();
    let mut seed: u64 = 0x1234_5678;
    let mut iova = GIB;
    let mut pa = 32 * GIB;
    while iova < 2 * GIB - 8 * MIB {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = seed >> 33;
        let size = match r % 8 {
            0..=3 => PAGE * (1 + (r >> 3) % 4),
            4 | 5 => PAGE * (5 + (r >> 3) % 60),
            6 => 2 * MIB,
            _ => 2 * MIB * (1 + (r >> 3) % 3) + PAGE * ((r >> 5) % 16),
        };
        let align = if size >= 2 * MIB { 2 * MIB } else { PAGE };
        iova = iova.next_multiple_of(align);
        pa = pa.next_multiple_of(align);
        mix.push((iova, pa, size));
        iova += size + PAGE * ((r >> 9) % 3);
        pa += size + PAGE * ((r >> 11) % 5);
    }

    for alloc in allocs {
        println!(
            "pgtable bench: 4K granule, 39-bit IPA from level 1, median of {iters} runs, \
             table pages from {}; tables counted after map, root included",
            match alloc {
                Alloc::Pool => "a pre-faulted page pool (as in the hypervisor)",
                Alloc::Global => "the global allocator (IdTranslation's default)",
            }
        );
        case("4k-pages-1GiB-one-call", &one_call, iters, alloc);
        case("4k-pages-262144-calls", &scattered, iters, alloc);
        case("2m-blocks-1GiB-one-call", &blocks, iters, alloc);
        case(
            &format!("random-mix-{}-calls", mix.len()),
            &mix,
            iters,
            alloc,
        );
    }
}

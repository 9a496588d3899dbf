//! `cargo bench --bench pgtable`: this crate's stage-2 engine against the
//! `aarch64-paging` crate, doing the same work in the same process.
//!
//! Both use a 4K granule, a 39-bit input range starting at level 1, and
//! tables from the global allocator at identity "physical" addresses (what
//! `aarch64-paging`'s `IdTranslation` does). `aarch64-paging` is driven the
//! way its documentation says for a scheme other than identity/linear
//! mapping: a `Translation` implementation (here `IdTranslation`, wrapped
//! only to count tables) and `Mapping::map_range`; unmapping is
//! `map_range` with flags lacking `VALID`, as documented. Its table is not
//! activated, so it does no TLB maintenance; ours does everything it does
//! on hardware except the MMIO: it builds the invalidation gather, hands it
//! to a `TlbMaintenance` that only counts the commands, and frees emptied
//! tables after the (no-op) sync.
//!
//! One line per case: ns per 4 KiB page for map and unmap for each engine,
//! `speedup=` (aarch64-paging time / ours), and the table memory each used
//! after mapping. Median of `PGTABLE_BENCH_ITERS` runs (default 7).

use std::alloc::{Layout, alloc_zeroed, dealloc};
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

/// Identity-mapped table memory from the global allocator, as the
/// hypervisor's implementation would be over its page pool.
#[derive(Default)]
struct HeapMemory {
    live: usize,
    peak: usize,
}

impl TableMemory for HeapMemory {
    fn alloc_table(&mut self, size: u64) -> Option<PhysAddr> {
        let layout = Layout::from_size_align(size as usize, size as usize).ok()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        if p.is_null() {
            return None;
        }
        self.live += (size / PAGE) as usize;
        self.peak = self.peak.max(self.live);
        Some(p as PhysAddr)
    }

    fn free_table(&mut self, pa: PhysAddr, size: u64) {
        let layout = Layout::from_size_align(size as usize, size as usize).unwrap();
        // SAFETY: the engine frees only tables it got from `alloc_table` with
        // this size, once.
        unsafe { dealloc(pa as *mut u8, layout) };
        self.live -= (size / PAGE) as usize;
    }

    #[inline(always)]
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: the engine only passes tables it allocated here (identity
        // mapped) and indices inside them.
        unsafe { core::ptr::read_volatile((table as *const u64).add(index)) }
    }

    #[inline(always)]
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile((table as *mut u64).add(index), desc) }
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

/// `IdTranslation`, counting the tables it hands out.
struct Counting {
    inner: IdTranslation<Stage2Attributes>,
    live: usize,
    peak: usize,
}

impl Translation<Stage2Attributes> for Counting {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        self.live += 1;
        self.peak = self.peak.max(self.live);
        self.inner.allocate_table()
    }

    unsafe fn deallocate_table(&mut self, page_table: NonNull<PageTable<Stage2Attributes>>) {
        self.live -= 1;
        // SAFETY: forwarded from our caller's contract.
        unsafe { self.inner.deallocate_table(page_table) }
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        self.inner.physical_to_virtual(pa)
    }
}

/// One map: IOVA, PA, size.
type Op = (u64, u64, u64);

struct Run {
    map: Duration,
    unmap: Duration,
    tables: usize,
}

fn ours(ops: &[Op]) -> Run {
    let cfg = Config::new(Granule::Size4K, 39, 48, StartLevelPolicy::Level(1)).unwrap();
    let mut pt = Ours::new(cfg, HeapMemory::default()).unwrap();
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

fn theirs(ops: &[Op]) -> Run {
    let flags = Stage2Attributes::VALID
        | Stage2Attributes::ACCESS_FLAG
        | Stage2Attributes::S2AP_ACCESS_RW
        | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
        | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
        | Stage2Attributes::SH_INNER
        | Stage2Attributes::XN;
    let translation = Counting {
        inner: IdTranslation::new(),
        live: 0,
        peak: 0,
    };
    let mut m = Mapping::new(translation, 1, Stage2);
    let t = Instant::now();
    for &(iova, pa, size) in ops {
        let region = MemoryRegion::new(iova as usize, (iova + size) as usize);
        m.map_range(&region, PhysicalAddress(pa as usize), flags, Constraints::empty())
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
    Run { map, unmap, tables }
}

/// Checks both engines translate a sample of the ops identically (so the
/// comparison is of the same work).
fn same_result(ops: &[Op]) {
    let cfg = Config::new(Granule::Size4K, 39, 48, StartLevelPolicy::Level(1)).unwrap();
    let mut pt = Ours::new(cfg, HeapMemory::default()).unwrap();
    let mut m = Mapping::new(IdTranslation::<Stage2Attributes>::new(), 1, Stage2);
    let flags = Stage2Attributes::VALID | Stage2Attributes::ACCESS_FLAG;
    for &(iova, pa, size) in ops {
        pt.map(iova, pa, size, Prot::RW).unwrap();
        let region = MemoryRegion::new(iova as usize, (iova + size) as usize);
        m.map_range(&region, PhysicalAddress(pa as usize), flags, Constraints::empty())
            .unwrap();
    }
    let step = (ops.len() / 64).max(1);
    for &(iova, pa, size) in ops.iter().step_by(step) {
        for off in [0, size / 2, size - PAGE] {
            assert_eq!(pt.iova_to_phys(iova + off), Some(pa + off));
            let region = MemoryRegion::new((iova + off) as usize, (iova + off + PAGE) as usize);
            let mut seen = None;
            m.walk_range(&region, &mut |mr, d, _| {
                if d.is_valid() {
                    let block = (d.output_address().0 as u64) & !(mr.len() as u64 - 1);
                    seen = Some(block);
                }
                Ok(())
            })
            .unwrap();
            assert!(seen.is_some(), "aarch64-paging lost {:#x}", iova + off);
        }
    }
    let mut tlb = CountingTlb::default();
    pt.destroy(&mut tlb).unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn case(name: &str, ops: &[Op], iters: usize) {
    same_result(ops);
    let pages: u64 = ops.iter().map(|o| o.2 / PAGE).sum();
    let (mut om, mut ou, mut tm, mut tu) = (vec![], vec![], vec![], vec![]);
    let (mut ot, mut tt) = (0, 0);
    for _ in 0..iters {
        let r = ours(ops);
        om.push(r.map);
        ou.push(r.unmap);
        ot = r.tables;
        let r = theirs(ops);
        tm.push(r.map);
        tu.push(r.unmap);
        tt = r.tables;
    }
    let ns = |d: Duration| d.as_nanos() as f64 / pages as f64;
    let (om, ou, tm, tu) = (ns(median(om)), ns(median(ou)), ns(median(tm)), ns(median(tu)));
    println!(
        "{name:<28} map: ours={om:.2} aarch64-paging={tm:.2} ns/page speedup={:.2} | \
         unmap: ours={ou:.2} aarch64-paging={tu:.2} ns/page speedup={:.2} | \
         tables: ours={ot} ({} KiB) aarch64-paging={tt} ({} KiB)",
        tm / om,
        tu / ou,
        ot * 4,
        tt * 4,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let iters = std::env::var("PGTABLE_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!(
        "pgtable bench: 4K granule, 39-bit IPA from level 1, median of {iters} runs; \
         tables counted after map, root included"
    );

    // 1 GiB of 4 KiB pages in one call: the output is 4 KiB off a 2 MiB
    // boundary, so neither engine can use blocks.
    case("4k-pages-1GiB-one-call", &[(GIB, 8 * GIB + PAGE, GIB)], iters);

    // The DMA-API pattern: one page per call, scattered physical pages
    // (a fixed pseudo-random permutation of 1 GiB of frames).
    let n = GIB / PAGE;
    let scattered: Vec<Op> = (0..n)
        .map(|i| {
            let frame = (i.wrapping_mul(0x9e37_79b1) ^ (i >> 7)) & (n - 1);
            (GIB + i * PAGE, 16 * GIB + frame * PAGE, PAGE)
        })
        .collect();
    case("4k-pages-262144-calls", &scattered, iters);

    // 1 GiB of 2 MiB blocks (output 2 MiB but not 1 GiB aligned).
    case("2m-blocks-1GiB-one-call", &[(GIB, 8 * GIB + 2 * MIB, GIB)], iters);

    // A random mix of sizes, each mapped and unmapped by its own call.
    let mut ops = Vec::new();
    let mut seed: u64 = 0x1234_5678;
    let mut iova = GIB;
    let mut pa = 32 * GIB;
    while iova < 2 * GIB - 8 * MIB {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
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
        ops.push((iova, pa, size));
        iova += size + PAGE * ((r >> 9) % 3);
        pa += size + PAGE * ((r >> 11) % 5);
    }
    case(&format!("random-mix-{}-calls", ops.len()), &ops, iters);
}

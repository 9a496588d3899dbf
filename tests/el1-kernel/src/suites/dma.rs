//! Suite `dma`: the happy path with real DMA from the `edu` device.
//!
//! alloc, attach, map (a page, a 2 MiB block, 512 pages that become one
//! block), DMA lands exactly where the tables say, unmap, the same DMA is
//! blocked and leaves memory unchanged, the fault is popped with the right
//! StreamID, address and direction, detach blocks the device, free leaves
//! nothing behind.

use crate::arena;
use crate::dma_device::{self, DmaDevice};
use crate::iommu::{self, RW};
use crate::report::Report;
use smmu_hyp::hypercall::abi::{self, fault, prot, smmu_feat};
use smmu_hyp::platform::Platform;

use smmu_hyp::mem::PAGE_SIZE as SZ_4K;
const SZ_2M: u64 = 0x20_0000;
/// Where the device reads its data from (a page the CPU fills).
pub const SRC_IOVA: u64 = 0x10_0000;
/// Where it writes: two pages, so a stray write would show in the second.
pub const DST_IOVA: u64 = 0x20_0000;
const BLOCK_IOVA: u64 = 0x4000_0000;
const SRC: u64 = arena::page(0);
const DST: u64 = arena::page(1);
const SENTINEL: u8 = 0xee;
/// SMMUv3 event F_TRANSLATION.
pub const F_TRANSLATION: u8 = 0x10;
/// Class of a fault raised by the input transaction itself.
pub const CLASS_INPUT: u8 = 2;

/// A recognisable pattern of `len` bytes in the source page.
fn load_source(len: u64, seed: u8) {
    for i in 0..len {
        arena::write(SRC + i, seed.wrapping_add(i as u8 * 7));
    }
}

fn source_matches(at: u64, len: u64, seed: u8) -> bool {
    (0..len).all(|i| arena::read(at + i) == seed.wrapping_add(i as u8 * 7))
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let dev = dma_device::find(platform);
    dma_device::check_found(report, &dev);
    let Some(dev) = dev else { return };
    let _ = iommu::drain_faults(dev.smmu);

    let info = iommu::iommu_info();
    report.check(
        "IOMMU_INFO lists the SMMU",
        matches!(info, Ok(i) if i.smmus > u64::from(dev.smmu) && i.max_domains > 0),
        format_args!("{info:?}"),
    );
    let smmu = iommu::smmu_info(dev.smmu);
    let need = smmu_feat::STAGE2 | smmu_feat::GRAN4K;
    report.check(
        "SMMU_INFO: stage 2 with 4K pages and 2M blocks",
        matches!(smmu, Ok(s) if s.features & need == need && s.pgsizes & (SZ_4K | SZ_2M) == SZ_4K | SZ_2M),
        format_args!("{smmu:x?}"),
    );

    let d = iommu::alloc(40, 0);
    report.check(
        "DOMAIN_ALLOC(40-bit IPA, 4K granule)",
        matches!(d, Ok(d) if d.ipa_bits == 40 && d.pgsizes & (SZ_4K | SZ_2M) == SZ_4K | SZ_2M),
        format_args!("{d:x?}"),
    );
    let Ok(d) = d else { return };
    let dom = d.id;
    let r = iommu::attach(dev.smmu, dev.sid, dom);
    report.check(
        "ATTACH the device's StreamID",
        r.is_ok(),
        format_args!("smmu{} sid {:#x}: {r:?}", dev.smmu, dev.sid),
    );

    pages_and_translation(report, &dev, dom);
    scatter_list(report, &dev, dom);
    block(report, &dev, dom);
    unmap_blocks(report, &dev, dom);
    detach_blocks(report, &dev, dom);

    let r = iommu::unmap(dom, SRC_IOVA, SZ_4K, 1, 0).and(iommu::unmap(
        dom,
        DST_IOVA + SZ_4K,
        SZ_4K,
        1,
        0,
    ));
    report.check("UNMAP what is left", r.is_ok(), format_args!("{r:?}"));
    let r = iommu::free(dom);
    report.check("DOMAIN_FREE", r.is_ok(), format_args!("{r:?}"));
    let again = iommu::map(dom, SRC_IOVA, arena::pa(SRC), SZ_4K, 1, RW);
    report.check(
        "the freed domain's id is dead",
        again == Err(abi::NOT_FOUND),
        format_args!("MAP -> {}", iommu::code_name(&again)),
    );
    let objects = iommu::stats(abi::stats::OBJECTS, 0);
    let memory = iommu::stats(abi::stats::MEMORY, 0);
    report.check(
        "nothing left: no domain, stream, mapping, table or page reference",
        objects == Ok([0, 0, 0]) && matches!(memory, Ok([0, 0, _])),
        format_args!("OBJECTS {objects:?}, MEMORY {memory:?}"),
    );
}

/// Maps the source page and two destination pages; DMA lands exactly.
fn pages_and_translation(report: &mut Report, dev: &DmaDevice, dom: u64) {
    let r = iommu::map(dom, SRC_IOVA, arena::pa(SRC), SZ_4K, 1, prot::READ);
    report.check(
        "MAP the source page read-only",
        r == Ok(SZ_4K),
        format_args!("iova {SRC_IOVA:#x} -> pa {:#x}: {r:?}", arena::pa(SRC)),
    );
    let r = iommu::map(dom, DST_IOVA, arena::pa(DST), SZ_4K, 2, RW);
    report.check(
        "MAP two destination pages read-write",
        r == Ok(2 * SZ_4K),
        format_args!("iova {DST_IOVA:#x} -> pa {:#x}: {r:?}", arena::pa(DST)),
    );
    let t = iommu::iova_to_phys(dom, DST_IOVA + 0x1234);
    report.check(
        "IOVA_TO_PHYS gives pa, prot and leaf size",
        matches!(t, Ok(t) if t.pa == arena::pa(DST) + 0x1234 && t.prot == RW && t.leaf_size == SZ_4K),
        format_args!("{t:x?}"),
    );
    load_source(64, 0x31);
    arena::fill(DST, 2 * SZ_4K, SENTINEL);
    let dma = dev.copy(SRC_IOVA, DST_IOVA + 0x100, 64);
    let landed = source_matches(DST + 0x100, 64, 0x31);
    let around = arena::all_are(DST, 0x100, SENTINEL)
        && arena::all_are(DST + 0x140, 2 * SZ_4K - 0x140, SENTINEL);
    report.check(
        "DMA through the page lands at the same offset",
        dma.is_ok() && landed,
        format_args!("{dma:?}, 64 bytes at pa {:#x}", arena::pa(DST) + 0x100),
    );
    report.check(
        "the bytes around it are untouched",
        around,
        format_args!("both pages checked"),
    );
    let faults = iommu::drain_faults(dev.smmu);
    report.check(
        "no fault was recorded",
        faults == 0,
        format_args!("{faults} records"),
    );
}

/// A scatter-gather list mapped with one HYP_MAP_LIST: DMA to each IOVA
/// page lands in its own physical page; a list with a refused entry leaves
/// nothing mapped.
fn scatter_list(report: &mut Report, dev: &DmaDevice, dom: u64) {
    const IOVA: u64 = 0x50_0000;
    const LIST: u64 = arena::page(60);
    // Four IOVA pages onto pages 40, 33, 34 and 47 of the arena.
    let list = [
        [IOVA, arena::pa(arena::page(40)), SZ_4K, 1],
        [IOVA + SZ_4K, arena::pa(arena::page(33)), SZ_4K, 2],
        [IOVA + 3 * SZ_4K, arena::pa(arena::page(47)), SZ_4K, 1],
    ];
    let pages = [40, 33, 34, 47].map(arena::page);
    let refs = || iommu::stats(abi::stats::MEMORY, 0).map(|m| m[1]);
    let refs_before = refs();
    let r = iommu::map_list(dom, LIST, &list, RW);
    report.check(
        "MAP_LIST of 3 entries (4 scattered pages) in one call",
        r == Ok(4 * SZ_4K),
        format_args!("{r:?}"),
    );
    let mut landed = true;
    for (k, &page) in pages.iter().enumerate() {
        let seed = 0x60 + k as u8;
        arena::fill(page, SZ_4K, SENTINEL);
        load_source(32, seed);
        let dma = dev.copy(SRC_IOVA, IOVA + k as u64 * SZ_4K + 0x80, 32);
        landed &= dma.is_ok()
            && source_matches(page + 0x80, 32, seed)
            && arena::all_are(page, 0x80, SENTINEL)
            && arena::all_are(page + 0xa0, SZ_4K - 0xa0, SENTINEL);
    }
    report.check(
        "DMA to each IOVA page of the list lands in its own physical page",
        landed && iommu::drain_faults(dev.smmu) == 0,
        format_args!("pages {pages:x?} of the arena"),
    );
    let u = iommu::unmap(dom, IOVA, SZ_4K, 4, 0);
    report.check(
        "one UNMAP removes the list's four pages",
        matches!(u, Ok(u) if u.bytes == 4 * SZ_4K) && refs() == refs_before,
        format_args!("{u:x?}, page references {:?} -> {:?}", refs_before, refs()),
    );

    // The third entry overlaps the first: EXISTS, and the two mapped
    // before it are undone.
    let overlapping = [
        list[0],
        list[1],
        [IOVA, arena::pa(arena::page(47)), SZ_4K, 1],
    ];
    let r = iommu::map_list(dom, LIST, &overlapping, RW);
    let t = iommu::iova_to_phys(dom, IOVA + SZ_4K);
    report.check(
        "MAP_LIST with a refused entry maps nothing",
        r == Err(abi::EXISTS) && t == Err(abi::NOT_FOUND) && refs() == refs_before,
        format_args!(
            "{}, IOVA_TO_PHYS(second page) {}, page references {:?}",
            iommu::code_name(&r),
            iommu::code_name(&t),
            refs()
        ),
    );
    arena::fill(pages[0], SZ_4K, SENTINEL);
    let dma = dev.write_to(IOVA + 0x80, 32);
    let faults = iommu::drain_faults(dev.smmu);
    report.check(
        "DMA to the undone list faults and writes nothing",
        faults > 0 && arena::all_are(pages[0], SZ_4K, SENTINEL),
        format_args!("{dma:?}, {faults} fault records"),
    );
}

/// A 2 MiB block, then 512 pages at 2 MiB-aligned iova and pa, which the
/// hyp maps as one block.
fn block(report: &mut Report, dev: &DmaDevice, dom: u64) {
    let pa = arena::pa(arena::BLOCK);
    let r = iommu::map(dom, BLOCK_IOVA, pa, SZ_2M, 1, RW);
    let t = iommu::iova_to_phys(dom, BLOCK_IOVA + 0x1_2345);
    report.check(
        "MAP a 2 MiB block",
        r == Ok(SZ_2M) && matches!(t, Ok(t) if t.pa == pa + 0x1_2345 && t.leaf_size == SZ_2M),
        format_args!("iova {BLOCK_IOVA:#x} -> pa {pa:#x}: {r:?}, {t:x?}"),
    );
    let window = arena::BLOCK + 0x1_2300;
    arena::fill(window, 0x100, SENTINEL);
    load_source(32, 0x52);
    let dma = dev.copy(SRC_IOVA, BLOCK_IOVA + 0x1_2340, 32);
    let landed = source_matches(arena::BLOCK + 0x1_2340, 32, 0x52)
        && arena::all_are(window, 0x40, SENTINEL)
        && arena::all_are(window + 0x60, 0xa0, SENTINEL);
    report.check(
        "DMA into the block lands at the same offset",
        dma.is_ok() && landed,
        format_args!("{dma:?}, offset 0x12340"),
    );
    let u = iommu::unmap(dom, BLOCK_IOVA, SZ_2M, 1, 0);
    report.check(
        "UNMAP the block",
        matches!(u, Ok(u) if u.bytes == SZ_2M),
        format_args!("{u:x?}"),
    );

    let r = iommu::map(dom, BLOCK_IOVA, pa, SZ_4K, 512, RW);
    let t = iommu::iova_to_phys(dom, BLOCK_IOVA + 0x7_0000);
    report.check(
        "MAP of 512 pages at 2 MiB-aligned iova and pa is one 2 MiB leaf",
        r == Ok(SZ_2M) && matches!(t, Ok(t) if t.leaf_size == SZ_2M && t.pa == pa + 0x7_0000),
        format_args!("{r:?}, {t:x?}"),
    );
    let part = iommu::unmap(dom, BLOCK_IOVA + SZ_4K, SZ_4K, 1, 0);
    report.check(
        "UNMAP of one page of it is PARTIAL_BLOCK",
        part == Err(abi::PARTIAL_BLOCK),
        format_args!("{}", iommu::code_name(&part)),
    );
    let u = iommu::unmap(dom, BLOCK_IOVA, SZ_4K, 512, 0);
    report.check(
        "UNMAP of the 512 pages removes the block",
        matches!(u, Ok(u) if u.bytes == SZ_2M && u.iova == BLOCK_IOVA && u.size == SZ_2M),
        format_args!("{u:x?}"),
    );
}

/// After unmap the same DMA is blocked and the fault names the device.
fn unmap_blocks(report: &mut Report, dev: &DmaDevice, dom: u64) {
    let u = iommu::unmap(dom, DST_IOVA, SZ_4K, 1, 0);
    report.check(
        "UNMAP the first destination page",
        matches!(u, Ok(u) if u.bytes == SZ_4K && u.iova == DST_IOVA && u.size == SZ_4K),
        format_args!("{u:x?}"),
    );
    let t = iommu::iova_to_phys(dom, DST_IOVA);
    report.check(
        "IOVA_TO_PHYS of it is NOT_FOUND",
        t == Err(abi::NOT_FOUND),
        format_args!("{}", iommu::code_name(&t)),
    );
    arena::fill(DST, SZ_4K, SENTINEL);
    load_source(4, 0x77);
    let target = DST_IOVA + 0x100;
    let dma = dev.copy(SRC_IOVA, target, 4);
    report.check(
        "the same DMA is now blocked: the page is unchanged",
        dma.is_ok() && arena::all_are(DST, SZ_4K, SENTINEL),
        format_args!("{dma:?}"),
    );
    let f = iommu::fault_pop(dev.smmu);
    report.check(
        "FAULT_POP: F_TRANSLATION, the device's StreamID, the IOVA, a write",
        matches!(f, Ok(f) if f.sid == dev.sid
            && f.kind == F_TRANSLATION
            && f.input_addr == Some(target)
            && f.flags & fault::RNW == 0
            && f.flags & fault::S2 != 0
            && smmu_hyp::hypercall::abi::fault::class(f.flags) == CLASS_INPUT
            && !f.more()),
        format_args!("{f:x?}"),
    );
    let none = iommu::fault_pop(dev.smmu);
    report.check(
        "then FAULT_POP is NOT_FOUND",
        none.is_err_and(|e| e == abi::NOT_FOUND),
        format_args!("{}", iommu::code_name(&none)),
    );
    let dma = dev.read_from(DST_IOVA + 0x200, 4);
    let f = iommu::fault_pop(dev.smmu);
    report.check(
        "a blocked device read is recorded as a read",
        dma.is_ok()
            && matches!(f, Ok(f) if f.sid == dev.sid
                && f.kind == F_TRANSLATION
                && f.input_addr == Some(DST_IOVA + 0x200)
                && f.flags & fault::RNW != 0),
        format_args!("{f:x?}"),
    );
    let _ = iommu::drain_faults(dev.smmu);
    load_source(16, 0x13);
    let dma = dev.copy(SRC_IOVA, DST_IOVA + SZ_4K + 0x10, 16);
    report.check(
        "the second page still takes DMA",
        dma.is_ok() && source_matches(DST + SZ_4K + 0x10, 16, 0x13),
        format_args!("{dma:?}"),
    );
}

/// Detach makes the stream abort again.
fn detach_blocks(report: &mut Report, dev: &DmaDevice, dom: u64) {
    let r = iommu::detach(dev.smmu, dev.sid);
    report.check("DETACH", r.is_ok(), format_args!("{r:?}"));
    arena::fill(DST + SZ_4K, SZ_4K, SENTINEL);
    load_source(16, 0x99);
    let dma = dev.copy(SRC_IOVA, DST_IOVA + SZ_4K, 16);
    report.check(
        "after DETACH the device is blocked although the page is mapped",
        dma.is_ok()
            && arena::all_are(DST + SZ_4K, SZ_4K, SENTINEL)
            && iommu::iova_to_phys(dom, DST_IOVA + SZ_4K).is_ok(),
        format_args!("{dma:?}"),
    );
    let _ = iommu::drain_faults(dev.smmu);
}

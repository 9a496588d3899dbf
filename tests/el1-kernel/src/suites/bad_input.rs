//! Suite `bad-input`: every class of refused call. Each case checks the
//! status code, that x1..x3 are 0, that the hyp's state is exactly as
//! before (counters, objects, memory, translations around the fixture's
//! mappings, with the refused call counted once) and that the device's
//! DMA still lands where it did.

use crate::arena;
use crate::el2_layout;
use crate::fixture::{BLOCK_IOVA, DST_IOVA, Fixture, HOLE_IOVA, IPA_BITS, PAGE, SZ_2M};
use crate::iommu::{self, RW};
use crate::println;
use crate::report::Report;
use smmu_hyp::hypercall::abi::{self, prot, stats};
use smmu_hyp::platform::Platform;

const NS: i64 = abi::NOT_SUPPORTED;
const INVAL: i64 = abi::INVALID_PARAMETER;
const DENIED: i64 = abi::DENIED;
const NOMEM: i64 = abi::NO_MEMORY;
const BUSY: i64 = abi::BUSY;
const EXISTS: i64 = abi::EXISTS;
const NF: i64 = abi::NOT_FOUND;
const OOR: i64 = abi::OUT_OF_RANGE;
const UNAL: i64 = abi::UNALIGNED;
const PARTIAL: i64 = abi::PARTIAL_BLOCK;
const TOO_MANY: i64 = abi::TOO_MANY;

/// A StreamID behind the SMMU that no device uses.
const SPARE_SID: u64 = 9;
/// A 4K page of EL1 RAM the cases may name (never mapped by the fixture).
const SPARE: u64 = arena::page(5);

fn raw(fid: u32, a: [u64; 6]) -> [u64; 8] {
    [u64::from(fid), a[0], a[1], a[2], a[3], a[4], a[5], 0]
}

fn map(d: u64, iova: u64, pa: u64, pgsize: u64, count: u64, prot: u64) -> [u64; 8] {
    raw(abi::HYP_MAP, [d, iova, pa, pgsize, count, prot])
}

fn unmap(d: u64, iova: u64, pgsize: u64, count: u64, flags: u64) -> [u64; 8] {
    raw(abi::HYP_UNMAP, [d, iova, pgsize, count, flags, 0])
}

fn map_list(d: u64, list: u64, count: u64, prot: u64) -> [u64; 8] {
    raw(abi::HYP_MAP_LIST, [d, list, count, prot, 0, 0])
}

fn attach(smmu: u64, sid: u64, d: u64) -> [u64; 8] {
    raw(abi::HYP_ATTACH, [smmu, sid, d, 0, 0, 0])
}

fn detach(smmu: u64, sid: u64) -> [u64; 8] {
    raw(abi::HYP_DETACH, [smmu, sid, 0, 0, 0, 0])
}

fn xlate(d: u64, iova: u64) -> [u64; 8] {
    raw(abi::HYP_IOVA_TO_PHYS, [d, iova, 0, 0, 0, 0])
}

fn free(d: u64) -> [u64; 8] {
    raw(abi::HYP_DOMAIN_FREE, [d, 0, 0, 0, 0, 0])
}

fn alloc(ipa: u64, granule: u64) -> [u64; 8] {
    raw(abi::HYP_DOMAIN_ALLOC, [ipa, granule, 0, 0, 0, 0])
}

fn stats_call(selector: u64, smmu: u64) -> [u64; 8] {
    raw(abi::HYP_STATS, [selector, smmu, 0, 0, 0, 0])
}

struct Tester<'r> {
    fx: Fixture,
    report: &'r mut Report,
    class: &'static str,
}

impl Tester<'_> {
    /// One refused call: `args` must return `code`, change nothing, and
    /// leave DMA working.
    fn refused(&mut self, case: &str, args: [u64; 8], code: i64) {
        // Unknown functions never reach the IOMMU service: not counted.
        let counted = u64::from(code != NS);
        let before = self.fx.snapshot();
        let r = iommu::call(args);
        let after = self.fx.snapshot();
        let dma = self.fx.dma_works();
        let got = r[0] as i64;
        let ok = got == code && r[1..] == [0, 0, 0] && before.same_as(&after, counted) && dma;
        self.report.check(
            self.class,
            ok,
            format_args!(
                "{case} -> {} ({got}){}; {}; DMA {}",
                abi::error_name(got),
                if got == code { "" } else { " UNEXPECTED" },
                before.diff(&after, counted),
                if dma { "lands" } else { "BROKEN" }
            ),
        );
    }
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let Some(fx) = Fixture::new(platform, report) else {
        return;
    };
    let mut t = Tester {
        fx,
        report,
        class: "",
    };
    unknown_functions(&mut t);
    bad_domain_ids(&mut t);
    smmu_and_stream_ranges(&mut t, platform);
    attached_streams_and_domains(&mut t);
    unaligned(&mut t);
    sizes_and_encodings(&mut t);
    beyond_limits(&mut t);
    overlaps_and_holes(&mut t);
    el2_memory(&mut t, platform);
    map_lists(&mut t, platform);
    too_many_domains(&mut t);
    out_of_memory(&mut t, platform);
    let Tester { fx, report, .. } = t;
    fx.teardown(report);
    let objects = iommu::stats(stats::OBJECTS, 0);
    let memory = iommu::stats(stats::MEMORY, 0);
    report.check(
        "nothing left after the suite",
        objects == Ok([0, 0, 0]) && matches!(memory, Ok([0, 0, _])),
        format_args!("OBJECTS {objects:?}, MEMORY {memory:?}"),
    );
}

fn unknown_functions(t: &mut Tester<'_>) {
    t.class = "unknown function is NOT_SUPPORTED";
    let d = t.fx.dom;
    let a = [d, HOLE_IOVA, arena::pa(SPARE), PAGE, 1, RW];
    t.refused("0xc6000003 (unassigned)", raw(0xc600_0003, a), NS);
    t.refused("0xc600ffff", raw(0xc600_ffff, a), NS);
    t.refused("0xc7000024 (another owner)", raw(0xc700_0024, a), NS);
    t.refused(
        "0x86000024 (SMC32 alias of HYP_MAP)",
        raw(0x8600_0024, a),
        NS,
    );
    t.refused(
        "0x46000024 (yielding alias of HYP_MAP)",
        raw(0x4600_0024, a),
        NS,
    );
    t.refused("0x00000000", raw(0, a), NS);
    t.refused(
        "HYP_FEATURES(0xc6000003)",
        raw(abi::HYP_FEATURES, [0xc600_0003, 0, 0, 0, 0, 0]),
        NS,
    );
}

fn bad_domain_ids(t: &mut Tester<'_>) {
    t.class = "bad domain id is NOT_FOUND";
    let d = t.fx.dom;
    let freed = iommu::alloc(IPA_BITS, 0).map_or(0, |x| x.id);
    let r = iommu::free(freed);
    t.report.check(
        "a domain to free for the stale-id cases",
        freed != 0 && r.is_ok(),
        format_args!("{freed:#x}: {r:?}"),
    );
    let stale = d + (1 << 16);
    let pa = arena::pa(SPARE);
    t.refused("MAP, id 0", map(0, HOLE_IOVA, pa, PAGE, 1, RW), NF);
    t.refused("MAP, freed id", map(freed, HOLE_IOVA, pa, PAGE, 1, RW), NF);
    t.refused(
        "MAP, live slot with the next generation",
        map(stale, HOLE_IOVA, pa, PAGE, 1, RW),
        NF,
    );
    t.refused(
        "MAP, slot 0xffff",
        map(1 << 16 | 0xffff, HOLE_IOVA, pa, PAGE, 1, RW),
        NF,
    );
    t.refused(
        "MAP, generation above 32 bits",
        map(d | 1 << 48, HOLE_IOVA, pa, PAGE, 1, RW),
        NF,
    );
    t.refused(
        "MAP, id u64::MAX",
        map(u64::MAX, HOLE_IOVA, pa, PAGE, 1, RW),
        NF,
    );
    t.refused(
        "UNMAP of a mapped iova, stale id",
        unmap(stale, DST_IOVA, PAGE, 1, 0),
        NF,
    );
    t.refused("UNMAP, freed id", unmap(freed, DST_IOVA, PAGE, 1, 0), NF);
    t.refused("IOVA_TO_PHYS, freed id", xlate(freed, DST_IOVA), NF);
    t.refused("IOVA_TO_PHYS, stale id", xlate(stale, DST_IOVA), NF);
    t.refused("ATTACH, freed id", attach(0, SPARE_SID, freed), NF);
    t.refused("ATTACH, id 0", attach(0, SPARE_SID, 0), NF);
    t.refused("DOMAIN_FREE, freed id (double free)", free(freed), NF);
    t.refused("DOMAIN_FREE, stale id of a live slot", free(stale), NF);
    t.refused("DOMAIN_FREE, id 0", free(0), NF);
}

fn smmu_and_stream_ranges(t: &mut Tester<'_>, platform: &Platform<'_>) {
    let d = t.fx.dom;
    let (smmu, sid) = (u64::from(t.fx.dev.smmu), u64::from(t.fx.dev.sid));
    let smmus = iommu::iommu_info().map_or(1, |i| i.smmus);
    let sid_bits = iommu::smmu_info(t.fx.dev.smmu).map_or(16, |s| s.sid_bits);
    let limit = 1u64 << sid_bits;

    t.class = "SMMU index out of range is OUT_OF_RANGE";
    t.refused("ATTACH, index = count", attach(smmus, SPARE_SID, d), OOR);
    t.refused(
        "ATTACH, index 2^32 (not truncated)",
        attach(1 << 32 | smmu, SPARE_SID, d),
        OOR,
    );
    t.refused(
        "ATTACH, bad index and bad domain: index first",
        attach(smmus, SPARE_SID, 0),
        OOR,
    );
    t.refused("DETACH, index = count", detach(smmus, sid), OOR);
    t.refused(
        "DETACH of the attached device, index 2^32 (not truncated)",
        detach(1 << 32 | smmu, sid),
        OOR,
    );
    t.refused("DETACH, index u64::MAX", detach(u64::MAX, sid), OOR);
    t.refused(
        "SMMU_INFO, index = count",
        raw(abi::HYP_SMMU_INFO, [smmus, 0, 0, 0, 0, 0]),
        OOR,
    );
    t.refused(
        "FAULT_POP, index = count",
        raw(abi::HYP_FAULT_POP, [smmus, 0, 0, 0, 0, 0]),
        OOR,
    );
    t.refused(
        "STATS(SMMU_COMMANDS), index = count",
        stats_call(stats::SMMU_COMMANDS, smmus),
        OOR,
    );
    t.refused(
        "STATS(SMMU_EVENTS), index 2^32",
        stats_call(stats::SMMU_EVENTS, 1 << 32),
        OOR,
    );

    t.class = "StreamID out of range is OUT_OF_RANGE";
    t.refused("ATTACH, sid = 2^sid_bits", attach(smmu, limit, d), OOR);
    t.refused(
        "ATTACH, sid 2^32 + 9 (not truncated)",
        attach(smmu, 1 << 32 | SPARE_SID, d),
        OOR,
    );
    t.refused("ATTACH, sid u64::MAX", attach(smmu, u64::MAX, d), OOR);
    t.refused("DETACH, sid = 2^sid_bits", detach(smmu, limit), OOR);
    t.refused(
        "DETACH of the attached device's sid + 2^32 (not truncated)",
        detach(smmu, 1 << 32 | sid),
        OOR,
    );

    // A StreamID below the limit that the device tree does not put behind
    // this SMMU.
    match (0..limit).rev().find(|&s| !behind(platform, smmu, s)) {
        Some(foreign) => {
            t.class = "StreamID not behind that SMMU is DENIED";
            t.refused("ATTACH", attach(smmu, foreign, d), DENIED);
            t.refused("DETACH", detach(smmu, foreign), DENIED);
        }
        None => println!(
            "el1: note: every StreamID below {limit:#x} is behind smmu{smmu} in this device tree \
             (iommu-map), so DENIED for a StreamID cannot be provoked here"
        ),
    }
}

/// Whether the device tree's `iommu-map` puts StreamID `sid` behind SMMU
/// `smmu`.
fn behind(platform: &Platform<'_>, smmu: u64, sid: u64) -> bool {
    platform.pcie.as_ref().is_some_and(|h| {
        h.iommu_map.iter().any(|e| {
            platform.smmu_by_phandle(e.iommu_phandle) == Some(smmu as usize)
                && (u64::from(e.sid_base)..u64::from(e.sid_base) + u64::from(e.length))
                    .contains(&sid)
        })
    })
}

fn attached_streams_and_domains(t: &mut Tester<'_>) {
    let d = t.fx.dom;
    let (smmu, sid) = (u64::from(t.fx.dev.smmu), u64::from(t.fx.dev.sid));
    let other = iommu::alloc(IPA_BITS, 0).map_or(0, |x| x.id);
    t.report
        .check("a second domain", other != 0, format_args!("{other:#x}"));
    t.class = "attach of an attached stream is EXISTS";
    t.refused("to the same domain", attach(smmu, sid, d), EXISTS);
    t.refused("to another domain", attach(smmu, sid, other), EXISTS);
    t.class = "ATTACH checks the domain before the stream";
    t.refused("attached stream, domain id 0", attach(smmu, sid, 0), NF);
    t.class = "detach of a stream that is not attached is NOT_FOUND";
    t.refused("DETACH", detach(smmu, SPARE_SID), NF);
    t.class = "free of an attached domain is BUSY";
    t.refused("DOMAIN_FREE", free(d), BUSY);
    let r = iommu::free(other);
    t.report.check(
        "the second domain is freed",
        r.is_ok(),
        format_args!("{r:?}"),
    );
}

fn unaligned(t: &mut Tester<'_>) {
    t.class = "unaligned iova or pa is UNALIGNED";
    let d = t.fx.dom;
    let pa = arena::pa(SPARE);
    let block = arena::pa(arena::BLOCK);
    t.refused(
        "MAP, iova + 0x800",
        map(d, HOLE_IOVA + 0x800, pa, PAGE, 1, RW),
        UNAL,
    );
    t.refused("MAP, iova 1", map(d, 1, pa, PAGE, 1, RW), UNAL);
    t.refused(
        "MAP, pa + 0x800",
        map(d, HOLE_IOVA, pa + 0x800, PAGE, 1, RW),
        UNAL,
    );
    t.refused(
        "MAP 2M, iova only 4K-aligned",
        map(d, HOLE_IOVA + PAGE, block, SZ_2M, 1, RW),
        UNAL,
    );
    t.refused(
        "MAP 2M, pa only 4K-aligned",
        map(d, HOLE_IOVA, block + PAGE, SZ_2M, 1, RW),
        UNAL,
    );
    t.refused(
        "UNMAP, iova + 0x800",
        unmap(d, DST_IOVA + 0x800, PAGE, 1, 0),
        UNAL,
    );
    t.refused(
        "UNMAP 2M, iova only 4K-aligned",
        unmap(d, BLOCK_IOVA + PAGE, SZ_2M, 1, 0),
        UNAL,
    );
}

fn sizes_and_encodings(t: &mut Tester<'_>) {
    let d = t.fx.dom;
    let pa = arena::pa(SPARE);
    t.class = "page size not supported is INVALID_PARAMETER";
    t.refused(
        "MAP, pgsize 8K",
        map(d, HOLE_IOVA, pa, 0x2000, 1, RW),
        INVAL,
    );
    t.refused("MAP, pgsize 0", map(d, HOLE_IOVA, pa, 0, 1, RW), INVAL);
    t.refused(
        "MAP, pgsize 12K",
        map(d, HOLE_IOVA, pa, 0x3000, 1, RW),
        INVAL,
    );
    t.refused(
        "MAP, pgsize 16K in a 4K domain",
        map(d, HOLE_IOVA, pa, 0x4000, 1, RW),
        INVAL,
    );
    t.refused(
        "MAP, pgsize 512G (no level-0 blocks)",
        map(d, 0, 0, 1 << 39, 1, RW),
        INVAL,
    );
    t.refused("MAP, pgsize 2^63", map(d, 0, 0, 1 << 63, 1, RW), INVAL);
    t.refused("UNMAP, pgsize 8K", unmap(d, DST_IOVA, 0x2000, 1, 0), INVAL);

    t.class = "zero or overflowing size is INVALID_PARAMETER";
    t.refused("MAP, pgcount 0", map(d, HOLE_IOVA, pa, PAGE, 0, RW), INVAL);
    t.refused("UNMAP, pgcount 0", unmap(d, DST_IOVA, PAGE, 0, 0), INVAL);
    t.refused(
        "MAP, 4K x 2^52 overflows",
        map(d, 0, pa, PAGE, 1 << 52, RW),
        INVAL,
    );
    t.refused(
        "MAP, 2M x 2^43 overflows",
        map(d, 0, 0, SZ_2M, 1 << 43, RW),
        INVAL,
    );
    t.refused(
        "UNMAP, 4K x 2^52 overflows",
        unmap(d, 0, PAGE, 1 << 52, 0),
        INVAL,
    );
    t.refused(
        "MAP, iova range wraps around 2^64",
        map(d, 0u64.wrapping_sub(PAGE), pa, PAGE, 2, RW),
        INVAL,
    );
    t.refused(
        "MAP, pa range wraps around 2^64",
        map(
            d,
            HOLE_IOVA,
            0u64.wrapping_sub(PAGE),
            PAGE,
            2,
            RW | prot::MMIO,
        ),
        INVAL,
    );
    t.refused(
        "UNMAP, iova range wraps around 2^64",
        unmap(d, 0u64.wrapping_sub(PAGE), PAGE, 2, 0),
        INVAL,
    );

    t.class = "bad prot, flags, granule, IPA size or selector is INVALID_PARAMETER";
    t.refused("MAP, prot 0", map(d, HOLE_IOVA, pa, PAGE, 1, 0), INVAL);
    t.refused(
        "MAP, prot NOEXEC only",
        map(d, HOLE_IOVA, pa, PAGE, 1, prot::NOEXEC),
        INVAL,
    );
    t.refused(
        "MAP, unknown prot bit 5",
        map(d, HOLE_IOVA, pa, PAGE, 1, RW | 1 << 5),
        INVAL,
    );
    t.refused(
        "MAP, MMIO with NONCACHEABLE",
        map(
            d,
            HOLE_IOVA,
            0x1000_0000,
            PAGE,
            1,
            RW | prot::MMIO | prot::NONCACHEABLE,
        ),
        INVAL,
    );
    t.refused(
        "MAP, RAM with MMIO",
        map(d, HOLE_IOVA, pa, PAGE, 1, RW | prot::MMIO),
        INVAL,
    );
    t.refused(
        "MAP, non-RAM without MMIO",
        map(d, HOLE_IOVA, 0x1000_0000, PAGE, 1, RW),
        INVAL,
    );
    t.refused(
        "UNMAP, unknown flag bit 1",
        unmap(d, DST_IOVA, PAGE, 1, 2),
        INVAL,
    );
    t.refused("DOMAIN_ALLOC, granule 8K", alloc(40, 0x2000), INVAL);
    t.refused(
        "DOMAIN_ALLOC, granule 4K + 2^32",
        alloc(40, 1 << 32 | 0x1000),
        INVAL,
    );
    t.refused("DOMAIN_ALLOC, 31-bit IPA", alloc(31, 0), INVAL);
    t.refused(
        "DOMAIN_ALLOC, 45-bit IPA (above the OAS)",
        alloc(45, 0),
        INVAL,
    );
    t.refused(
        "DOMAIN_ALLOC, IPA 2^32 + 40 (not truncated)",
        alloc(1 << 32 | 40, 0),
        INVAL,
    );
    t.refused("STATS, selector 5", stats_call(5, 0), INVAL);
    t.refused("STATS, selector u64::MAX", stats_call(u64::MAX, 0), INVAL);
}

fn beyond_limits(t: &mut Tester<'_>) {
    let d = t.fx.dom;
    let pa = arena::pa(SPARE);
    let top = 1u64 << IPA_BITS;
    t.class = "beyond the IPA or output size is OUT_OF_RANGE";
    t.refused("MAP, iova = 2^ipa_bits", map(d, top, pa, PAGE, 1, RW), OOR);
    t.refused(
        "MAP, range crossing 2^ipa_bits",
        map(d, top - PAGE, pa, PAGE, 2, RW),
        OOR,
    );
    t.refused("UNMAP, iova = 2^ipa_bits", unmap(d, top, PAGE, 1, 0), OOR);
    t.refused("IOVA_TO_PHYS, iova = 2^ipa_bits", xlate(d, top), OOR);
    t.refused(
        "MAP, pa = 2^44 (the OAS)",
        map(d, HOLE_IOVA, 1 << 44, PAGE, 1, RW | prot::MMIO),
        OOR,
    );
    t.refused(
        "MAP, pa range crossing 2^44",
        map(d, HOLE_IOVA, (1 << 44) - PAGE, PAGE, 2, RW | prot::MMIO),
        OOR,
    );
}

fn overlaps_and_holes(t: &mut Tester<'_>) {
    let d = t.fx.dom;
    let pa = arena::pa(SPARE);
    let block = arena::pa(arena::BLOCK);
    t.class = "overlap is EXISTS";
    t.refused(
        "MAP the same iova again",
        map(d, DST_IOVA, pa, PAGE, 1, RW),
        EXISTS,
    );
    t.refused(
        "MAP from the page before, covering it",
        map(d, DST_IOVA - PAGE, pa, PAGE, 2, RW),
        EXISTS,
    );
    t.refused(
        "MAP from it into the page after",
        map(d, DST_IOVA, pa, PAGE, 2, RW),
        EXISTS,
    );
    t.refused(
        "MAP a 2M block around it",
        map(d, DST_IOVA & !(SZ_2M - 1), block, SZ_2M, 1, RW),
        EXISTS,
    );
    t.refused(
        "MAP a page inside the block",
        map(d, BLOCK_IOVA + 0x10_0000, pa, PAGE, 1, RW),
        EXISTS,
    );
    t.refused(
        "MAP pages across the block's start",
        map(d, BLOCK_IOVA - PAGE, pa, PAGE, 2, RW),
        EXISTS,
    );

    t.class = "unmap of an unmapped range is NOT_FOUND";
    t.refused("UNMAP one page", unmap(d, HOLE_IOVA, PAGE, 1, 0), NF);
    t.refused("UNMAP 64 pages", unmap(d, HOLE_IOVA, PAGE, 64, 0), NF);
    t.refused("UNMAP a 2M block", unmap(d, HOLE_IOVA, SZ_2M, 1, 0), NF);
    t.refused(
        "UNMAP, WHOLE_LEAF, nothing there",
        unmap(d, HOLE_IOVA, PAGE, 1, abi::unmap::WHOLE_LEAF),
        NF,
    );
    t.refused("IOVA_TO_PHYS of a hole", xlate(d, HOLE_IOVA), NF);
    t.refused(
        "FAULT_POP with no fault",
        raw(abi::HYP_FAULT_POP, [0, 0, 0, 0, 0, 0]),
        NF,
    );

    t.class = "unmap cutting a block is PARTIAL_BLOCK";
    t.refused("its first page", unmap(d, BLOCK_IOVA, PAGE, 1, 0), PARTIAL);
    t.refused(
        "its last page",
        unmap(d, BLOCK_IOVA + SZ_2M - PAGE, PAGE, 1, 0),
        PARTIAL,
    );
    t.refused(
        "from inside it to past its end",
        unmap(d, BLOCK_IOVA + PAGE, PAGE, 512, 0),
        PARTIAL,
    );
    t.refused(
        "from before it into it",
        unmap(d, BLOCK_IOVA - PAGE, PAGE, 2, 0),
        PARTIAL,
    );
}

/// The hyp's memory layout, or a failed check when it cannot be derived.
fn el2_layout(t: &mut Tester<'_>, platform: &Platform<'_>) -> Option<el2_layout::El2Layout> {
    let el2 = el2_layout::derive(platform);
    if el2.is_none() {
        t.report
            .check("EL2 layout", false, format_args!("could not derive it"));
    }
    el2
}

fn el2_memory(t: &mut Tester<'_>, platform: &Platform<'_>) {
    let Some(el2) = el2_layout(t, platform) else {
        return;
    };
    let d = t.fx.dom;
    let (image, pool) = (el2.image.start, el2.pool.start);
    let ram = platform.ram.iter().next().map_or(0, |r| r.start);
    t.class = "EL2 memory is DENIED";
    t.refused(
        "MAP the hyp image's first page",
        map(d, HOLE_IOVA, image, PAGE, 1, RW),
        DENIED,
    );
    t.refused(
        "MAP the page pool's first page",
        map(d, HOLE_IOVA, pool, PAGE, 1, RW),
        DENIED,
    );
    t.refused(
        "MAP the page pool's last page, read-only",
        map(d, HOLE_IOVA, el2.pool.end() - PAGE, PAGE, 1, prot::READ),
        DENIED,
    );
    t.refused(
        "MAP an EL1 page and the image's first page",
        map(d, HOLE_IOVA, image - PAGE, PAGE, 2, RW),
        DENIED,
    );
    t.refused(
        "MAP the 2M block holding the image",
        map(d, HOLE_IOVA, image, SZ_2M, 1, RW),
        DENIED,
    );
    t.class = "a range partly in RAM is DENIED";
    t.refused(
        "MAP the page below RAM and RAM's first page",
        map(d, HOLE_IOVA, ram - PAGE, PAGE, 2, RW),
        DENIED,
    );
    t.class = "RAM with the MMIO bit is INVALID_PARAMETER (memory type before ownership)";
    t.refused(
        "MAP the hyp image as MMIO",
        map(d, HOLE_IOVA, image, PAGE, 1, RW | prot::MMIO),
        INVAL,
    );
}

/// HYP_MAP_LIST: a list EL2 may not read, bad counts, and an entry
/// refused after others mapped (which are undone).
fn map_lists(t: &mut Tester<'_>, platform: &Platform<'_>) {
    let Some(el2) = el2_layout(t, platform) else {
        return;
    };
    let d = t.fx.dom;
    let image = el2.image.start;
    let ram_end = platform.ram.iter().map(|r| r.end()).max().unwrap_or(0);
    let at = arena::page(6);
    let list = arena::pa(at);
    let spare = arena::pa(SPARE);
    let (p7, p8) = (arena::pa(arena::page(7)), arena::pa(arena::page(8)));
    iommu::write_list(
        at,
        &[[HOLE_IOVA, spare, PAGE, 1], [HOLE_IOVA + PAGE, p7, PAGE, 1]],
    );
    t.class = "a HYP_MAP_LIST list EL2 may not read is DENIED";
    t.refused(
        "MAP_LIST in the hyp image",
        map_list(d, image, 1, RW),
        DENIED,
    );
    t.refused(
        "MAP_LIST in the page pool",
        map_list(d, el2.pool.start, 1, RW),
        DENIED,
    );
    t.refused(
        "MAP_LIST running from EL1's RAM into the hyp image",
        map_list(d, image - 32, 2, RW),
        DENIED,
    );
    t.refused("MAP_LIST beyond RAM", map_list(d, ram_end, 1, RW), DENIED);
    t.refused(
        "MAP_LIST running past the end of RAM",
        map_list(d, ram_end - 32, 2, RW),
        DENIED,
    );
    t.class = "a malformed HYP_MAP_LIST is INVALID_PARAMETER";
    t.refused("MAP_LIST of 0 entries", map_list(d, list, 0, RW), INVAL);
    let max = abi::map_list::MAX_ENTRIES;
    t.refused(
        "MAP_LIST of 129 entries",
        map_list(d, list, max + 1, RW),
        INVAL,
    );
    t.refused(
        "MAP_LIST at a list address that is not 8-byte aligned",
        map_list(d, list + 4, 1, RW),
        INVAL,
    );
    t.refused("MAP_LIST with prot 0", map_list(d, list, 2, 0), INVAL);
    t.class = "a HYP_MAP_LIST entry refused after others maps nothing";
    let third_entries = [
        (
            "MAP_LIST whose third entry is the hyp image",
            [HOLE_IOVA + 2 * PAGE, image, PAGE, 1],
            DENIED,
        ),
        (
            "MAP_LIST whose third entry overlaps a mapping",
            [DST_IOVA, p8, PAGE, 1],
            EXISTS,
        ),
        (
            "MAP_LIST whose third entry is unaligned",
            [HOLE_IOVA + 0x800, p8, PAGE, 1],
            UNAL,
        ),
    ];
    for (case, third, code) in third_entries {
        iommu::write_list(
            at,
            &[
                [HOLE_IOVA, spare, PAGE, 1],
                [HOLE_IOVA + PAGE, p7, PAGE, 1],
                third,
            ],
        );
        t.refused(case, map_list(d, list, 3, RW), code);
    }
}

fn too_many_domains(t: &mut Tester<'_>) {
    let max = iommu::iommu_info().map_or(0, |i| i.max_domains);
    let live = iommu::stats(stats::OBJECTS, 0).map_or(0, |o| o[0]);
    let mut ids = [0u64; 256];
    let mut n = 0;
    let mut all_ok = true;
    for slot in ids.iter_mut().take(max.saturating_sub(live) as usize) {
        match iommu::alloc(IPA_BITS, 0) {
            Ok(d) => {
                *slot = d.id;
                n += 1;
            }
            Err(_) => all_ok = false,
        }
    }
    t.report.check(
        "every domain slot can be allocated",
        all_ok && n as u64 + live == max,
        format_args!("{n} more, {max} in all"),
    );
    t.class = "too many domains is TOO_MANY";
    t.refused("DOMAIN_ALLOC with every slot taken", alloc(40, 0), TOO_MANY);
    t.refused("DOMAIN_ALLOC, 64K granule", alloc(42, 0x1_0000), TOO_MANY);
    let freed = ids[..n].iter().all(|&id| iommu::free(id).is_ok());
    let again = iommu::alloc(IPA_BITS, 0);
    let reused = again.map(|d| iommu::free(d.id));
    t.report.check(
        "after freeing them a domain can be allocated again",
        freed && matches!(reused, Ok(Ok(()))),
        format_args!("{again:x?}"),
    );
}

/// Fills the hyp's page pool with page tables of a scratch domain until a
/// map is refused, then checks that every call needing memory is refused
/// with NO_MEMORY and no trace, and that calls needing none still work.
fn out_of_memory(t: &mut Tester<'_>, platform: &Platform<'_>) {
    let scratch = iommu::alloc(44, 0);
    let Ok(scratch) = scratch else {
        t.report.check(
            "a 44-bit scratch domain",
            false,
            format_args!("{scratch:?}"),
        );
        return;
    };
    let e = scratch.id;
    let pa = arena::pa(SPARE);
    let before = iommu::stats(stats::MEMORY, 0).unwrap_or([0; 3]);
    // One page per 1 GiB: each costs a level-2 and a level-3 table (and a
    // level-1 table per 512 GiB).
    let mut gib = 0u64;
    let first_error = loop {
        match iommu::map(e, gib << 30, pa, PAGE, 1, RW) {
            Ok(_) => gib += 1,
            Err(code) => break code,
        }
        if gib == 16 << 10 {
            break 0;
        }
    };
    // Then pages that need only a level-3 table, until that fails too:
    // the pool is now empty down to the last page.
    let mut singles = 0u64;
    let second_error = loop {
        let iova = ((gib.max(1) - 1) << 30) + (singles + 1) * SZ_2M;
        match iommu::map(e, iova, pa, PAGE, 1, RW) {
            Ok(_) => singles += 1,
            Err(code) => break code,
        }
        if singles == 500 {
            break 0;
        }
    };
    let full = iommu::stats(stats::MEMORY, 0).unwrap_or([0; 3]);
    t.report.check(
        "the page pool is exhausted by page tables",
        first_error == NOMEM && second_error == NOMEM,
        format_args!(
            "{gib} GiB regions + {singles} 2M regions mapped, table bytes {:#x} -> {:#x}, then {} / {}",
            before[0],
            full[0],
            abi::error_name(first_error),
            abi::error_name(second_error)
        ),
    );
    t.class = "EL2 out of memory is NO_MEMORY, nothing half-done";
    let next = gib << 30;
    t.refused(
        "MAP needing new level-1/2/3 tables",
        map(e, 1 << 43, pa, PAGE, 1, RW),
        NOMEM,
    );
    t.refused(
        "MAP needing new tables",
        map(e, next, pa, PAGE, 1, RW),
        NOMEM,
    );
    t.refused(
        "MAP of 2 pages in two new 1 GiB regions",
        map(e, next + (1 << 30) - PAGE, pa, PAGE, 2, RW),
        NOMEM,
    );
    t.refused(
        "MAP of a 2M block needing a new level-2 table",
        map(e, next, arena::pa(arena::BLOCK), SZ_2M, 1, RW),
        NOMEM,
    );
    t.refused("DOMAIN_ALLOC (root table)", alloc(40, 0), NOMEM);
    // A StreamID EL1 may attach whose level-2 stream table (256 StreamIDs
    // each) does not exist yet.
    let smmu = u64::from(t.fx.dev.smmu);
    let fresh = (0x300..0x1_0000)
        .step_by(0x100)
        .find(|&sid| behind(platform, smmu, sid));
    match fresh {
        Some(sid) => t.refused(
            "ATTACH of a StreamID needing a new level-2 stream table",
            attach(smmu, sid, e),
            NOMEM,
        ),
        None => println!(
            "el1: note: no StreamID outside the first level-2 stream table is behind \
             smmu{smmu} here, so ATTACH cannot be made to need memory"
        ),
    }

    t.class = "EL2 out of memory: calls needing no memory still work";
    let d = t.fx.dom;
    let m = iommu::map(d, DST_IOVA + 2 * PAGE, pa, PAGE, 1, RW);
    let u = iommu::unmap(d, DST_IOVA + 2 * PAGE, PAGE, 1, 0);
    t.report.check(
        t.class,
        m == Ok(PAGE) && u.is_ok_and(|u| u.bytes == PAGE) && t.fx.dma_works(),
        format_args!("MAP next to a mapped page {m:?}, UNMAP {u:?}, DMA"),
    );
    let f = iommu::free(e);
    let after = iommu::stats(stats::MEMORY, 0).unwrap_or([0; 3]);
    t.report.check(
        "freeing the scratch domain gives every table and page reference back",
        f.is_ok() && after[0] + 0x1000 == before[0] && after[1] == before[1],
        format_args!("{f:?}; MEMORY {before:x?} -> {after:x?}"),
    );
    let again = iommu::alloc(40, 0).map(|x| iommu::free(x.id));
    t.report.check(
        "then domains can be allocated again",
        matches!(again, Ok(Ok(()))),
        format_args!("{again:?}"),
    );
}

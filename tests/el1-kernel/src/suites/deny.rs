//! Suite `deny`: no device may be given EL2's memory (the hyp image and
//! its page pool, which holds every page table, stream table, queue and
//! page record), the SMMUs' registers, the GIC, the hyp's UART, or any MMIO
//! outside the allow-list (fw_cfg, virtio-mmio, flash, the ECAM); the MSI
//! doorbell only write-only. Every page of each is tried, alone and as
//! part of larger ranges and blocks, with every memory type; each is
//! DENIED and nothing is ever mapped. The pages just outside EL2's memory,
//! a device BAR and the doorbell (write-only) are mappable, so the denial
//! is exact rather than blanket.

use crate::el2_layout::{self, El2Layout};
use crate::hyp_state::{self, Snapshot};
use crate::iommu::{self, RW};
use crate::report::Report;
use smmu_hyp::hypercall::abi::{self, prot};
use smmu_hyp::memmap::PhysRange;
use smmu_hyp::platform::Platform;

use smmu_hyp::mem::PAGE_SIZE as PAGE;
const SZ_2M: u64 = 0x20_0000;
const SZ_1G: u64 = 1 << 30;
const IPA_BITS: u32 = 40;
/// Where every attempt maps (nothing ever stays there).
const IOVA: u64 = 0x4000_0000;

struct Denier<'r> {
    report: &'r mut Report,
    dom: u64,
    /// Calls refused so far, to account for the refused-call counter.
    refused: u64,
    /// Successful maps (and as many unmaps) of the controls.
    controls: u64,
    /// Maps that should have been refused and were not (each undone at
    /// once, and failed by its own check).
    wrongly_mapped: u64,
}

impl Denier<'_> {
    /// Maps `pgcount` pages of `pgsize` at `pa`; true if DENIED.
    fn denied(&mut self, pa: u64, pgsize: u64, pgcount: u64, prot: u64) -> bool {
        let iova = IOVA & !(pgsize.min(SZ_1G) - 1);
        let r = iommu::map(self.dom, iova, pa, pgsize, pgcount, prot);
        if r.is_err() {
            self.refused += 1;
        } else {
            // Never leave anything behind, even on a failed check.
            let _ = iommu::unmap(self.dom, iova, pgsize, pgcount, 0);
            self.wrongly_mapped += 1;
        }
        r == Err(abi::DENIED)
    }

    /// Every page of `range`, one call each, with `prot`.
    fn every_page(&mut self, what: &str, range: PhysRange, prot: u64) {
        let first = range.start & !(PAGE - 1);
        let pages = (range.end() - first).div_ceil(PAGE);
        let mut refused = 0;
        let mut wrong = None;
        for i in 0..pages {
            if self.denied(first + i * PAGE, PAGE, 1, prot) {
                refused += 1;
            } else if wrong.is_none() {
                wrong = Some(first + i * PAGE);
            }
        }
        self.report.check(
            what,
            refused == pages,
            format_args!(
                "[{:#x}..{:#x}): {refused} of {pages} pages DENIED{}",
                range.start,
                range.end(),
                Wrong(wrong)
            ),
        );
    }

    /// One call covering `pgcount` pages of `pgsize` from `pa`.
    fn whole(&mut self, what: &str, pa: u64, pgsize: u64, pgcount: u64, prot: u64) {
        let ok = self.denied(pa, pgsize, pgcount, prot);
        self.report
            .check(what, ok, format_args!("{pgcount} x {pgsize:#x} at {pa:#x}"));
    }

    /// A page EL1 owns or a BAR: mapped, translated, unmapped.
    fn allowed(&mut self, what: &str, pa: u64, pages: u64, prot: u64) {
        let m = iommu::map(self.dom, IOVA, pa, PAGE, pages, prot);
        let t = iommu::iova_to_phys(self.dom, IOVA);
        let u = iommu::unmap(self.dom, IOVA, PAGE, pages, 0);
        let ok = m == Ok(pages * PAGE)
            && matches!(t, Ok(t) if t.pa == pa && t.prot == prot)
            && matches!(u, Ok(u) if u.bytes == pages * PAGE);
        if ok {
            self.controls += 1;
        }
        self.report.check(
            what,
            ok,
            format_args!("pa {pa:#x}: map {m:?}, unmap {}", iommu::code_name(&u)),
        );
    }
}

/// ", first not denied: pa" or nothing.
struct Wrong(Option<u64>);

impl core::fmt::Display for Wrong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(pa) => write!(f, ", first not denied: {pa:#x}"),
            None => Ok(()),
        }
    }
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let el2 = el2_layout::derive(platform);
    report.check(
        "EL2 memory as EL1 can derive it (image at RAM base + 2 MiB, pool after it, STATS page count)",
        el2.is_some(),
        format_args!(
            "image {}, pool {}",
            el2.map_or(PhysRange::new(0, 0), |l| l.image),
            el2.map_or(PhysRange::new(0, 0), |l| l.pool)
        ),
    );
    let Some(el2) = el2 else { return };
    let d = iommu::alloc(IPA_BITS, 0);
    report.check("a domain to map into", d.is_ok(), format_args!("{d:x?}"));
    let Ok(d) = d else { return };
    let probe = [(d.id, IOVA), (d.id, IOVA + SZ_2M - PAGE)];
    let start = hyp_state::take(&probe);
    let mut t = Denier {
        report,
        dom: d.id,
        refused: 0,
        controls: 0,
        wrongly_mapped: 0,
    };
    el2_memory(&mut t, &el2, platform);
    registers(&mut t, platform);
    let end = hyp_state::take(&probe);
    let Denier {
        report,
        refused,
        controls,
        wrongly_mapped,
        ..
    } = t;
    nothing_mapped(report, &start, &end, refused, controls + wrongly_mapped);
    let r = iommu::free(d.id);
    report.check("DOMAIN_FREE", r.is_ok(), format_args!("{r:?}"));
}

fn el2_memory(t: &mut Denier<'_>, el2: &El2Layout, platform: &Platform<'_>) {
    let (image, pool) = (el2.image, el2.pool);
    t.every_page("every page of the hyp image is DENIED", image, RW);
    t.every_page(
        "every page of the page pool (page tables, stream tables, queues) is DENIED",
        pool,
        RW,
    );
    t.every_page(
        "every page of the hyp image, read-only, is DENIED",
        image,
        prot::READ,
    );
    for (what, p) in [
        ("non-cacheable", RW | prot::NONCACHEABLE),
        ("no-exec", prot::WRITE | prot::NOEXEC),
    ] {
        let ok = t.denied(pool.start, PAGE, 1, p);
        t.report.check(
            "the memory type makes no difference: DENIED",
            ok,
            format_args!("{what}, pool page {:#x}", pool.start),
        );
    }
    t.whole(
        "the whole image in one call is DENIED",
        image.start,
        PAGE,
        image.size.div_ceil(PAGE),
        RW,
    );
    t.whole(
        "the whole pool as 2 MiB blocks in one call is DENIED",
        pool.start,
        SZ_2M,
        pool.size / SZ_2M,
        RW,
    );
    t.whole(
        "the 2 MiB block holding the image is DENIED",
        image.start & !(SZ_2M - 1),
        SZ_2M,
        1,
        RW,
    );
    if let Some(ram) = platform.ram.iter().next()
        && ram.start % SZ_1G == 0
        && ram.size >= SZ_1G
    {
        t.whole(
            "the 1 GiB block holding EL2's memory is DENIED",
            ram.start,
            SZ_1G,
            1,
            RW,
        );
    }
    t.whole(
        "an EL1 page and the image's first page in one call are DENIED",
        image.start - PAGE,
        PAGE,
        2,
        RW,
    );
    t.whole(
        "the image's last page and the page after it are DENIED",
        image.end() - PAGE,
        PAGE,
        2,
        RW,
    );
    t.whole(
        "the pool's last page and the page after it are DENIED",
        pool.end() - PAGE,
        PAGE,
        2,
        RW,
    );
    t.allowed(
        "the page below the image is EL1's: mappable",
        image.start - PAGE,
        1,
        RW,
    );
    if image.end() < pool.start {
        t.allowed(
            "the pages between the image and the pool are EL1's: mappable",
            image.end(),
            (pool.start - image.end()) / PAGE,
            RW,
        );
    }
    t.allowed(
        "the page after the pool is EL1's: mappable",
        pool.end(),
        1,
        RW,
    );
}

fn registers(t: &mut Denier<'_>, platform: &Platform<'_>) {
    for s in platform.smmus.iter() {
        let regs = s.regs;
        let pages = regs.size.div_ceil(PAGE);
        t.every_page(
            "every page of the SMMU's registers is DENIED (as MMIO)",
            regs,
            RW | prot::MMIO,
        );
        t.every_page(
            "every page of the SMMU's registers is DENIED (as RAM)",
            regs,
            RW,
        );
        t.whole(
            "all of the SMMU's registers in one call are DENIED",
            regs.start,
            PAGE,
            pages,
            RW | prot::MMIO,
        );
        t.whole(
            "the 2 MiB block holding the SMMU's registers is DENIED",
            regs.start & !(SZ_2M - 1),
            SZ_2M,
            1,
            RW | prot::MMIO,
        );
    }
    for gic in platform.gic.regions() {
        t.every_page(
            "every page of the GIC region is DENIED",
            gic,
            RW | prot::MMIO,
        );
        t.whole(
            "the whole GIC region in one call is DENIED",
            gic.start,
            PAGE,
            gic.size.div_ceil(PAGE),
            RW | prot::MMIO,
        );
    }
    let (frames, n) = crate::msi_frames::find(platform);
    for frame in &frames[..n] {
        t.every_page(
            "every page of the GIC's MSI frame (ITS) is DENIED",
            *frame,
            RW | prot::MMIO,
        );
    }
    if let Some(doorbell) = crate::msi_frames::its_doorbell(platform) {
        t.allowed(
            "the ITS's MSI doorbell page is mappable write-only",
            doorbell.start,
            1,
            prot::WRITE | prot::MMIO,
        );
        let ok = t.denied(doorbell.start, PAGE, 1, prot::READ | prot::MMIO);
        t.report.check(
            "the MSI doorbell is never readable: DENIED",
            ok,
            format_args!("{doorbell}"),
        );
    }
    if let Some(uart) = platform.uart {
        t.every_page("the hyp's UART is DENIED", uart, RW | prot::MMIO);
    }
    // MMIO outside the allow-list: bus masters outside the SMMU, the PCIe
    // configuration space, flash.
    for (what, compatible) in [
        (
            "fw_cfg (a bus master outside the SMMU) is DENIED",
            "qemu,fw-cfg-mmio",
        ),
        (
            "a virtio-mmio transport (a bus master outside the SMMU) is DENIED",
            "virtio,mmio",
        ),
        ("flash is DENIED", "cfi-flash"),
    ] {
        match crate::msi_frames::first_reg(platform, compatible) {
            Some(r) => t.whole(what, r.start & !(PAGE - 1), PAGE, 1, RW | prot::MMIO),
            None => {
                t.report
                    .check(what, false, format_args!("no {compatible} node"));
            }
        }
    }
    if let Some(host) = &platform.pcie {
        t.every_page(
            "the first bus of the PCIe configuration space (ECAM) is DENIED",
            PhysRange::new(host.ecam.start, 0x10_0000),
            RW | prot::MMIO,
        );
    }
    if let Some(dev) = crate::dma_device::find(platform) {
        t.allowed(
            "a device's BAR (peer-to-peer DMA) is mappable as MMIO",
            dev.bar0,
            1,
            RW | prot::MMIO,
        );
    }
}

/// `maps`: successful maps the suite made (and undid at once).
fn nothing_mapped(report: &mut Report, start: &Snapshot, end: &Snapshot, refused: u64, maps: u64) {
    let ok = end.objects == start.objects
        && end.memory == start.memory
        && end.calls[0] == start.calls[0] + maps
        && end.calls[1] == start.calls[1] + maps;
    report.check(
        "nothing was mapped: bytes mapped, tables and page references as before",
        ok,
        format_args!(
            "OBJECTS {:?} -> {:?}, MEMORY {:x?} -> {:x?}, maps {} -> {} ({maps} undone at once)",
            start.objects, end.objects, start.memory, end.memory, start.calls[0], end.calls[0]
        ),
    );
    let counted = end.calls[2] - start.calls[2] - start.own_refusals;
    report.check(
        "every refusal was counted once",
        counted == refused,
        format_args!("{refused} refused, counter +{counted}"),
    );
}

//! A live DMA setup to check refused calls against: one domain with the
//! `edu` device attached, a source page (read-only), a destination page
//! (read-write) and a 2 MiB block. [`Fixture::dma_works`] proves with real
//! DMA that the device still reaches exactly what it did.

use crate::arena;
use crate::dma_device::{self, DmaDevice};
use crate::hyp_state::{self, Snapshot};
use crate::iommu::{self, RW};
use crate::report::Report;
use smmu_hyp::hypercall::abi::prot;
use smmu_hyp::platform::Platform;

pub use smmu_hyp::mem::PAGE_SIZE as PAGE;
pub const SZ_2M: u64 = 0x20_0000;
pub const IPA_BITS: u32 = 40;
pub const SRC_IOVA: u64 = 0x10_0000;
pub const DST_IOVA: u64 = 0x20_0000;
pub const BLOCK_IOVA: u64 = 0x4000_0000;
/// Never mapped by the fixture.
pub const HOLE_IOVA: u64 = 0x3000_0000;
pub const SRC: u64 = arena::page(0);
pub const DST: u64 = arena::page(1);
/// Offset in the block where [`Fixture::dma_works`] writes.
const BLOCK_OFFSET: u64 = 0x5_4320;

pub struct Fixture {
    pub dev: DmaDevice,
    pub dom: u64,
    token: u8,
}

impl Fixture {
    /// Sets it up, with one check per step.
    pub fn new(platform: &Platform<'_>, report: &mut Report) -> Option<Self> {
        let dev = dma_device::find(platform);
        dma_device::check_found(report, &dev);
        let dev = dev?;
        let _ = iommu::drain_faults(dev.smmu);
        let d = iommu::alloc(IPA_BITS, 0);
        let dom = d.map_or(0, |d| d.id);
        let steps = [
            d.map(|_| ()),
            iommu::attach(dev.smmu, dev.sid, dom),
            iommu::map(dom, SRC_IOVA, arena::pa(SRC), PAGE, 1, prot::READ).map(|_| ()),
            iommu::map(dom, DST_IOVA, arena::pa(DST), PAGE, 1, RW).map(|_| ()),
            iommu::map(dom, BLOCK_IOVA, arena::pa(arena::BLOCK), SZ_2M, 1, RW).map(|_| ()),
        ];
        let ok = steps.iter().all(Result::is_ok);
        report.check(
            "fixture: a domain with the device attached, a source page, a destination page and a 2 MiB block",
            ok,
            format_args!("domain {dom:#x}: {steps:?}"),
        );
        let mut f = Self { dev, dom, token: 0 };
        let dma = f.dma_works();
        report.check(
            "fixture: DMA through it works",
            dma,
            format_args!("page and block"),
        );
        (ok && dma).then_some(f)
    }

    /// The addresses whose translations a snapshot compares: the three
    /// mappings, their neighbours and a hole.
    pub fn probes(&self) -> [(u64, u64); 6] {
        let d = self.dom;
        [
            (d, SRC_IOVA),
            (d, DST_IOVA),
            (d, DST_IOVA - PAGE),
            (d, DST_IOVA + PAGE),
            (d, BLOCK_IOVA + BLOCK_OFFSET),
            (d, HOLE_IOVA),
        ]
    }

    pub fn snapshot(&self) -> Snapshot {
        hyp_state::take(&self.probes())
    }

    /// The device copies a fresh 8-byte token from the source page into
    /// the destination page and into the block; both land, nothing faults.
    pub fn dma_works(&mut self) -> bool {
        self.token = self.token.wrapping_add(1);
        let token: [u8; 8] = core::array::from_fn(|i| self.token ^ (i as u8 * 0x11));
        arena::put(SRC, &token);
        arena::fill(DST, 8, !token[0]);
        arena::fill(arena::BLOCK + BLOCK_OFFSET, 8, !token[0]);
        let dma = self.dev.copy(SRC_IOVA, DST_IOVA, 8).is_ok()
            && self.dev.write_to(BLOCK_IOVA + BLOCK_OFFSET, 8).is_ok();
        let faults = iommu::drain_faults(self.dev.smmu);
        dma && faults == 0
            && arena::holds(DST, &token)
            && arena::holds(arena::BLOCK + BLOCK_OFFSET, &token)
    }

    /// Undoes it all.
    pub fn teardown(self, report: &mut Report) {
        let d = self.dom;
        let r = [
            iommu::detach(self.dev.smmu, self.dev.sid),
            iommu::unmap(d, SRC_IOVA, PAGE, 1, 0).map(|_| ()),
            iommu::unmap(d, DST_IOVA, PAGE, 1, 0).map(|_| ()),
            iommu::unmap(d, BLOCK_IOVA, SZ_2M, 1, 0).map(|_| ()),
            iommu::free(d),
        ];
        report.check(
            "fixture: detach, unmap and free",
            r.iter().all(Result::is_ok),
            format_args!("{r:?}"),
        );
    }
}

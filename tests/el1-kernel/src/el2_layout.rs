//! Where EL2's own memory is, as far as EL1 can tell.
//!
//! The ABI does not expose the hyp's physical ranges, so this derives them
//! from what the boot protocol and the ABI do give: the hyp image is
//! loaded at RAM base + 2 MiB (the arm64 Image load address with
//! `text_offset` 0, independent of the device tree), its page pool of
//! `hyp_mem` MiB (default 32) starts at the next 2 MiB boundary after the
//! image, and `HYP_STATS(MEMORY)` x3 counts the RAM pages EL2 owns, which
//! is the image plus the pool. Every hyp allocation (page tables, stream
//! tables, queues, page records) comes from the pool.

use crate::iommu;
use smmu_hyp::bootargs;
use smmu_hyp::hypercall::abi::stats;
use smmu_hyp::memmap::PhysRange;
use smmu_hyp::platform::Platform;

const SZ_2M: u64 = 0x20_0000;
use smmu_hyp::mem::PAGE_SIZE as PAGE;

#[derive(Clone, Copy, Debug)]
pub struct El2Layout {
    /// The hyp image (code, data, BSS, stacks).
    pub image: PhysRange,
    /// The page pool.
    pub pool: PhysRange,
}

pub fn derive(platform: &Platform<'_>) -> Option<El2Layout> {
    let el2_pages = iommu::stats(stats::MEMORY, 0).ok()?[2];
    let ram = platform.ram.iter().next()?;
    let mib: u64 = bootargs::value(platform.bootargs, "hyp_mem")
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let pool_size = mib << 20;
    let image_size = (el2_pages * PAGE).checked_sub(pool_size)?;
    let image = PhysRange::new(ram.start + SZ_2M, image_size);
    let pool_start = image.end().div_ceil(SZ_2M) * SZ_2M;
    Some(El2Layout {
        image,
        pool: PhysRange::new(pool_start, pool_size),
    })
}

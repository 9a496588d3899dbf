//! Loading the EL1 kernel and handing it its device tree.

use super::board;
use crate::arch::aarch64::cache;
use crate::dt::el1_tree::{self, El1Iommu, El1Tree};
use crate::image::{HEADER_SIZE, ImageHeader};
use crate::layout::BootLayout;
use crate::memmap::PhysRange;
use crate::multiboot::BootModules;

/// Copies the kernel Image in the `multiboot,kernel` module to where its
/// header asks and returns the range it occupies (its entry point is the
/// start).
pub fn load_kernel(module: PhysRange, layout: &BootLayout) -> Result<PhysRange, &'static str> {
    if module.size < HEADER_SIZE as u64 {
        return Err("EL1 kernel module too small for an Image header");
    }
    // SAFETY: the module lies in RAM, which the hyp maps read-write, and is
    // excluded from every hyp allocation.
    let src =
        unsafe { core::slice::from_raw_parts(module.start as *const u8, module.size as usize) };
    let header =
        ImageHeader::parse(src).map_err(|_| "EL1 kernel is not a little-endian arm64 Image")?;
    if header.image_size < module.size {
        return Err("EL1 kernel is larger than its header's image_size");
    }
    let dest = layout
        .place_payload(&header)
        .ok_or("no free RAM for the EL1 kernel")?;
    // SAFETY: `dest` is free RAM (not the hyp's, not a boot module, not the
    // DTB), mapped read-write; source and destination do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dest.start as *mut u8, src.len()) };
    // EL1 starts with its MMU off: its view of memory is the point of
    // coherency.
    cache::clean_to_poc(dest.start, dest.size);
    cache::invalidate_icache();
    log::info!(
        "EL1 kernel: {} bytes from module {} to {}",
        module.size,
        module,
        dest
    );
    Ok(dest)
}

/// Writes EL1's device tree (`crate::dt::el1_tree`) from the boot loader's
/// `dtb` into its own 2 MiB region of EL1 RAM and returns its address, for
/// x0; `iommu` is what it describes in the SMMUs' place. After this the
/// hyp never reads `dtb` again: its RAM is EL1's.
pub fn write_el1_tree(
    dtb: &[u8],
    modules: &BootModules<'_>,
    kernel: PhysRange,
    layout: &BootLayout,
    iommu: El1Iommu<'_>,
) -> Result<u64, &'static str> {
    let owned = layout.el2_owned();
    let spec = El1Tree {
        hidden_compatibles: board::HIDDEN_BUS_MASTERS,
        el2_owned: &owned,
        bootargs: modules.kernel.and_then(|k| k.bootargs),
        initrd: modules.ramdisk,
        iommu,
    };
    let tree = match el1_tree::write(dtb, &spec) {
        // The device stays on its trapped window, unknown to EL1: its
        // accesses there abort, as anywhere EL1's tree names nothing.
        Err(e @ el1_tree::El1TreeError::VirtioIommu(_)) => {
            log::error!("EL1 device tree: {e}: EL1's devices behind the SMMU cannot DMA");
            el1_tree::write(
                dtb,
                &El1Tree {
                    iommu: El1Iommu::None,
                    ..spec
                },
            )
        }
        written => written,
    }
    .map_err(|e| {
        log::error!("EL1 device tree: {e}");
        "cannot write the EL1 device tree"
    })?;
    let dest = layout
        .place_el1_tree(tree.len() as u64, kernel)
        .ok_or("no free 2 MiB region for the EL1 device tree (or it is over 2 MiB)")?;
    // SAFETY: `dest` is free EL1 RAM, mapped read-write, outside the kernel
    // image and the heap `tree` lives in.
    unsafe { core::ptr::copy_nonoverlapping(tree.as_ptr(), dest.start as *mut u8, tree.len()) };
    cache::clean_to_poc(dest.start, dest.size);
    log::info!("EL1 device tree: {} bytes at {}", tree.len(), dest);
    Ok(dest.start)
}

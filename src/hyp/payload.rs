//! Loading the EL1 payload: an arm64 Image passed as the initrd.

use crate::arch::aarch64::cache;
use crate::image::{HEADER_SIZE, ImageHeader};
use crate::layout::BootLayout;
use crate::memmap::PhysRange;

/// Copies the Image in `initrd` to where its header asks and returns its
/// entry point.
pub fn load(initrd: Option<PhysRange>, layout: &BootLayout) -> Result<u64, &'static str> {
    let initrd = initrd.ok_or("no EL1 payload (pass it as the initrd)")?;
    if initrd.size < HEADER_SIZE as u64 {
        return Err("EL1 payload too small for an Image header");
    }
    // SAFETY: the initrd lies in RAM, which the hyp maps read-write, and is
    // excluded from every hyp allocation.
    let src =
        unsafe { core::slice::from_raw_parts(initrd.start as *const u8, initrd.size as usize) };
    let header =
        ImageHeader::parse(src).map_err(|_| "EL1 payload is not a little-endian arm64 Image")?;
    if header.image_size < initrd.size {
        return Err("EL1 payload is larger than its header's image_size");
    }
    let dest = layout
        .place_payload(&header)
        .ok_or("no free RAM for the EL1 payload")?;
    // SAFETY: `dest` is free RAM (not the hyp's, not the initrd, not the
    // DTB), mapped read-write; source and destination do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dest.start as *mut u8, src.len()) };
    // EL1 starts with its MMU off: its view of memory is the point of
    // coherency.
    cache::clean_to_poc(dest.start, dest.size);
    cache::invalidate_icache();
    log::info!(
        "EL1 payload: {} bytes from initrd {} to {}",
        initrd.size,
        initrd,
        dest
    );
    Ok(dest.start)
}

//! The interrupt controller's MSI frames (GICv3 ITS, GICv2m), read from
//! the device tree by the test kernel itself: they are part of "the GIC"
//! that no device may be given, and the hyp's own parser is what is under
//! test.

use smmu_hyp::memmap::PhysRange;
use smmu_hyp::platform::Platform;

const COMPATIBLE: [&str; 2] = ["arm,gic-v3-its", "arm,gic-v2m-frame"];

/// Up to 4 frames: `(frames, count)`.
pub fn find(platform: &Platform<'_>) -> ([PhysRange; 4], usize) {
    let mut out = [PhysRange::new(0, 0); 4];
    let mut n = 0;
    // SAFETY: the device tree the hyp passed in x0, whose header gave this
    // size (`Platform::parse` validated it); EL1 reads it physically.
    let dtb = unsafe {
        core::slice::from_raw_parts(platform.dtb.start as *const u8, platform.dtb.size as usize)
    };
    let Ok(fdt) = fdt::Fdt::new(dtb) else {
        return (out, 0);
    };
    for node in fdt.all_nodes() {
        let Some(compatible) = node.compatible() else {
            continue;
        };
        if !compatible.all().any(|c| COMPATIBLE.contains(&c)) {
            continue;
        }
        for r in node.reg().into_iter().flatten() {
            if n < out.len() {
                out[n] = PhysRange::new(r.starting_address as u64, r.size.unwrap_or(0) as u64);
                n += 1;
            }
        }
    }
    (out, n)
}

/// The first `reg` of the first node compatible with `compatible` in the
/// board's tree (the hyp's parser is what is under test, so this reads the
/// tree itself).
pub fn first_reg(platform: &Platform<'_>, compatible: &str) -> Option<PhysRange> {
    // SAFETY: as in `find`.
    let dtb = unsafe {
        core::slice::from_raw_parts(platform.dtb.start as *const u8, platform.dtb.size as usize)
    };
    let fdt = fdt::Fdt::new(dtb).ok()?;
    let r = fdt.find_compatible(&[compatible])?.reg()?.next()?;
    Some(PhysRange::new(
        r.starting_address as u64,
        r.size.unwrap_or(0) as u64,
    ))
}

/// The MSI doorbell page of the first ITS: the page of `GITS_TRANSLATER`
/// (ITS frame + 64 KiB), the only GIC page a device may be given.
pub fn its_doorbell(platform: &Platform<'_>) -> Option<PhysRange> {
    let its = first_reg(platform, "arm,gic-v3-its")?;
    Some(PhysRange::new(its.start + 0x1_0000, 0x1000))
}

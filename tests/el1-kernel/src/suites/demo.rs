//! Suite `demo`, what `make run` shows: the hypercall round trip, then one
//! short DMA story with the `edu` device (the `dma` suite is the full
//! version).

use crate::arena;
use crate::dma_device;
use crate::hyp_client::hvc;
use crate::iommu::{self, RW};
use crate::println;
use crate::report::Report;
use smmu_hyp::hypercall::abi::{self, prot};
use smmu_hyp::platform::Platform;

use smmu_hyp::mem::PAGE_SIZE as PAGE;
const SRC_IOVA: u64 = 0x10_0000;
const DST_IOVA: u64 = 0x20_0000;
const SRC: u64 = arena::page(0);
const DST: u64 = arena::page(1);
const MESSAGE: &[u8; 16] = b"hello, DMA world";

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let version = hvc([u64::from(abi::HYP_ABI_VERSION), 0, 0, 0]);
    report.check(
        "HYP_ABI_VERSION round trip",
        version[0] == abi::ABI_VERSION,
        format_args!("x0 = {:#x}", version[0]),
    );
    let echo = hvc([u64::from(abi::HYP_ECHO), 0x1111, 0x2222, 0x3333]);
    report.check(
        "HYP_ECHO returns its arguments",
        echo == [0, 0x1111, 0x2222, 0x3333],
        format_args!("x0..x3 = {:x?}", echo),
    );

    let dev = dma_device::find(platform);
    dma_device::check_found(report, &dev);
    let Some(dev) = dev else { return };
    println!("el1: the device can only reach memory through the SMMU, which EL2 owns:");
    let d = iommu::alloc(40, 0);
    report.check(
        "DOMAIN_ALLOC: a new stage-2 DMA domain",
        d.is_ok(),
        format_args!("{}", Shown(d.map(|d| d.id))),
    );
    let Ok(d) = d else { return };
    let r = iommu::attach(dev.smmu, dev.sid, d.id);
    report.check(
        "ATTACH: the device now translates through it",
        r.is_ok(),
        format_args!("StreamID {:#x}", dev.sid),
    );
    arena::put(SRC, MESSAGE);
    arena::fill(DST, PAGE, 0);
    let a = iommu::map(d.id, SRC_IOVA, arena::pa(SRC), PAGE, 1, prot::READ);
    let b = iommu::map(d.id, DST_IOVA, arena::pa(DST), PAGE, 1, RW);
    report.check(
        "MAP: two pages of EL1 RAM at IOVAs 0x100000 (read) and 0x200000 (write)",
        a.is_ok() && b.is_ok(),
        format_args!("pa {:#x} and {:#x}", arena::pa(SRC), arena::pa(DST)),
    );
    let dma = dev.copy(SRC_IOVA, DST_IOVA, MESSAGE.len() as u64);
    report.check(
        "the device copies the message by DMA: it lands in the second page",
        dma.is_ok() && arena::holds(DST, MESSAGE),
        format_args!("\"{}\"", Text(DST, MESSAGE.len())),
    );
    let u = iommu::unmap(d.id, DST_IOVA, PAGE, 1, 0);
    report.check(
        "UNMAP the second page (TLB invalidated and synced before the call returns)",
        u.is_ok(),
        format_args!("{} bytes", u.map_or(0, |u| u.bytes)),
    );
    arena::fill(DST, PAGE, 0);
    let dma = dev.copy(SRC_IOVA, DST_IOVA, 4);
    report.check(
        "the same DMA again is blocked: the page stays empty",
        dma.is_ok() && arena::all_are(DST, PAGE, 0),
        format_args!("nothing written"),
    );
    let f = iommu::fault_pop(dev.smmu);
    report.check(
        "FAULT_POP: the SMMU reported it",
        matches!(f, Ok(f) if f.kind == 0x10 && f.sid == dev.sid && f.input_addr == Some(DST_IOVA)),
        format_args!(
            "event {:#x} (F_TRANSLATION), StreamID {:#x}, IOVA {:#x}",
            f.map_or(0, |f| f.kind),
            f.map_or(0, |f| f.sid),
            f.map_or(0, |f| f.input_addr.unwrap_or(0))
        ),
    );
    let _ = iommu::drain_faults(dev.smmu);
    let done = iommu::unmap(d.id, SRC_IOVA, PAGE, 1, 0).is_ok()
        && iommu::detach(dev.smmu, dev.sid).is_ok()
        && iommu::free(d.id).is_ok();
    let objects = iommu::stats(abi::stats::OBJECTS, 0);
    let [domains, streams, mapped] = objects.unwrap_or([u64::MAX; 3]);
    report.check(
        "UNMAP, DETACH, DOMAIN_FREE: nothing left",
        done && objects == Ok([0, 0, 0]),
        format_args!("{domains} domains, {streams} streams, {mapped} bytes mapped"),
    );
}

/// `Ok(id)` as a hex id, or the error's name.
struct Shown(Result<u64, i64>);

impl core::fmt::Display for Shown {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(id) => write!(f, "id {id:#x}"),
            Err(e) => f.write_str(abi::error_name(e)),
        }
    }
}

/// `len` arena bytes at `offset` as text.
struct Text(u64, usize);

impl core::fmt::Display for Text {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for i in 0..self.1 as u64 {
            let b = arena::read(self.0 + i);
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            core::fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

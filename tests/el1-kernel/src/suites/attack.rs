//! Suite `attack`: EL1 behaves as a hostile kernel would, with its own
//! loads and stores. Every access to EL2's memory (the hyp image with its
//! stacks and identity-map tables, the page pool with every page table,
//! stream table, queue and page record), to an SMMU's registers or to a bus
//! master outside any SMMU (QEMU's fw_cfg) takes an external abort that EL1
//! catches in its own vectors, nothing is read or changed, and the hyp
//! serves the next hypercall. Traps EL1 provokes (`hvc #1`, an
//! IMPLEMENTATION DEFINED register) are answered, not fatal. The GIC's
//! table registers are attacked in [`super::gic_attack`].

use crate::el2_layout;
use crate::fixture::{Fixture, PAGE};
use crate::hyp_client::hvc;
use crate::iommu;
use crate::probe::{self, Fault};
use crate::report::Report;
use smmu_hyp::esr::ec;
use smmu_hyp::hypercall::abi::{self, prot};
use smmu_hyp::memmap::PhysRange;
use smmu_hyp::platform::Platform;

/// Synchronous external abort, not on a translation table walk.
const DFSC_EXTERNAL: u32 = 0x10;

struct Attacker<'r> {
    report: &'r mut Report,
}

impl Attacker<'_> {
    /// Whether the hyp still answers a hypercall.
    fn hyp_serves(&self) -> bool {
        hvc([abi::HYP_ABI_VERSION.into(), 0, 0, 0])[0] == abi::ABI_VERSION
    }

    /// Whether `r` is the abort an access to `addr` must take.
    fn aborted(r: Result<u64, Fault>, addr: u64, write: bool) -> bool {
        match r {
            Err(f) => {
                f.esr.class() == ec::DABT_CURRENT
                    && f.esr.iss() & 0x3f == DFSC_EXTERNAL
                    && (f.esr.iss() & (1 << 6) != 0) == write
                    && f.far == addr
            }
            Ok(_) => false,
        }
    }

    /// Reads and writes `addr`: both must abort, and the hyp serve on.
    fn refused(&mut self, what: &str, addr: u64) {
        let read = probe::read(addr);
        let write = probe::write(addr, 0x5a5a_5a5a_5a5a_5a5a);
        let ok = Self::aborted(read, addr, false)
            && Self::aborted(write.map(|()| 0), addr, true)
            && self.hyp_serves();
        self.report.check(
            what,
            ok,
            format_args!(
                "{addr:#x}: read {}, write {}",
                Seen(read),
                Seen(write.map(|()| 0))
            ),
        );
    }

    /// Reads and writes a page every `step` bytes of `range` (and its
    /// last page): all must abort.
    fn range_refused(&mut self, what: &str, range: PhysRange, step: u64) {
        let first = range.start & !(PAGE - 1);
        let last = (range.end() - 1) & !(PAGE - 1);
        let mut tried = 0;
        let mut bad = None;
        let mut addr = first;
        loop {
            let read = probe::read(addr);
            let write = probe::write(addr + 8, 0xa5a5_a5a5_a5a5_a5a5);
            tried += 1;
            if bad.is_none()
                && !(Self::aborted(read, addr, false)
                    && Self::aborted(write.map(|()| 0), addr + 8, true))
            {
                bad = Some((addr, read));
            }
            if addr == last {
                break;
            }
            addr = (addr + step).min(last);
        }
        let serves = self.hyp_serves();
        self.report.check(
            what,
            bad.is_none() && serves,
            format_args!(
                "{range}: {tried} pages read and written, {}; hyp serves: {serves}",
                match bad {
                    None => "every access aborted".into(),
                    Some((a, r)) => Text::from(format_args!("{a:#x} read {}", Seen(r))),
                }
            ),
        );
    }
}

/// A short owned text (no allocator in the test kernel).
struct Text(heapless::String<96>);

impl From<core::fmt::Arguments<'_>> for Text {
    fn from(a: core::fmt::Arguments<'_>) -> Self {
        let mut s = heapless::String::new();
        let _ = core::fmt::write(&mut s, a);
        Text(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::from(format_args!("{s}"))
    }
}

impl core::fmt::Display for Text {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a probe saw, for a check's detail.
pub struct Seen(pub Result<u64, Fault>);

impl core::fmt::Display for Seen {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "succeeded ({v:#x})"),
            Err(e) => write!(f, "{} (FAR {:#x})", e.esr, e.far),
        }
    }
}

/// The one piece of the GIC a device may be given: the ITS doorbell,
/// write-only. A device write reaches it through the SMMU (that is how an
/// MSI is raised), a device read is refused by the SMMU.
fn msi_doorbell(platform: &Platform<'_>, report: &mut Report) {
    const DOORBELL_IOVA: u64 = 0x60_0000;
    /// `GITS_TRANSLATER` in its page.
    const TRANSLATER: u64 = 0x40;
    const F_PERMISSION: u8 = 0x13;
    let Some(doorbell) = crate::msi_frames::its_doorbell(platform) else {
        report.check(
            "the ITS doorbell is known",
            false,
            format_args!("no ITS node"),
        );
        return;
    };
    let Some(mut f) = Fixture::new(platform, report) else {
        return;
    };
    let m = iommu::map(
        f.dom,
        DOORBELL_IOVA,
        doorbell.start,
        PAGE,
        1,
        prot::WRITE | prot::MMIO,
    );
    report.check(
        "HYP_MAP of the ITS doorbell, write-only device memory, is allowed",
        m == Ok(PAGE),
        format_args!("{doorbell} -> {}", iommu::code_name(&m)),
    );
    let _ = iommu::drain_faults(f.dev.smmu);
    // A read first: QEMU records a permission fault only on a fresh walk
    // (docs/qemu.md).
    let read = f.dev.read_from(DOORBELL_IOVA + TRANSLATER, 4);
    let fault = iommu::fault_pop(f.dev.smmu);
    report.check(
        "a device read of the doorbell is refused by the SMMU",
        read.is_ok()
            && matches!(fault, Ok(r) if r.kind == F_PERMISSION
                && r.input_addr == Some(DOORBELL_IOVA + TRANSLATER)),
        format_args!("{fault:x?}"),
    );
    let _ = iommu::drain_faults(f.dev.smmu);
    let write = f.dev.write_to(DOORBELL_IOVA + TRANSLATER, 4);
    let faults = iommu::drain_faults(f.dev.smmu);
    report.check(
        "a device write to the doorbell (an MSI write) goes through the SMMU without a fault",
        write.is_ok() && faults == 0,
        format_args!("{faults} fault(s)"),
    );
    let u = iommu::unmap(f.dom, DOORBELL_IOVA, PAGE, 1, 0);
    let dma = f.dma_works();
    report.check(
        "unmapped again, and the domain's other DMA still works",
        u.is_ok() && dma,
        format_args!("{}", iommu::code_name(&u)),
    );
    f.teardown(report);
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    // First: the hyp logs only its first refused accesses, and these are
    // the ones `tests/qemu.rs` looks for.
    super::gic_attack::run(platform, report);
    let mut a = Attacker { report };

    // Controls: EL1's own RAM and the UART are reachable.
    let own = &a as *const _ as u64;
    a.report.check(
        "EL1's own memory is readable",
        probe::read(own & !7).is_ok(),
        format_args!("{own:#x}"),
    );

    let r = probe::hvc1();
    a.report.check(
        "hvc #1 is answered NOT_SUPPORTED",
        r == Ok(abi::NOT_SUPPORTED as u64),
        format_args!("x0 = {}", Seen(r)),
    );
    let r = probe::brk();
    a.report.check(
        "brk is EL1's own exception",
        matches!(r, Err(f) if f.esr.class() == ec::BRK64 && f.esr.imm16() == 0x123),
        format_args!("{}", Seen(r)),
    );
    let r = probe::impdef_register();
    a.report.check(
        "an IMPLEMENTATION DEFINED register traps and EL1 gets an undefined instruction",
        matches!(r, Err(f) if f.esr.class() == ec::UNKNOWN),
        format_args!("{}", Seen(r)),
    );
    match el2_layout::derive(platform) {
        Some(el2) => {
            a.range_refused(
                "EL2's image (code, data, stacks) is out of reach",
                el2.image,
                PAGE,
            );
            a.range_refused(
                "EL2's page pool (tables, stream tables, queues, records) is out of reach",
                el2.pool,
                64 * PAGE,
            );
            // The pages just outside are EL1's.
            let below = el2.image.start - PAGE;
            a.report.check(
                "the page below the hyp image is EL1's",
                probe::read(below).is_ok(),
                format_args!("{below:#x}"),
            );
        }
        None => {
            a.report
                .check("EL2's ranges known", false, format_args!("no layout"));
        }
    }

    for smmu in platform.smmus.iter() {
        a.refused(
            "an SMMU's registers are out of reach (IDR0)",
            smmu.regs.start,
        );
        a.refused(
            "an SMMU's registers are out of reach (CR0)",
            smmu.regs.start + 0x20,
        );
        a.refused(
            "an SMMU's registers are out of reach (page 1)",
            smmu.regs.start + 0x1_00a8,
        );
    }
    match crate::msi_frames::first_reg(platform, "qemu,fw-cfg-mmio") {
        Some(r) => a.refused(
            "fw_cfg (a bus master outside the SMMU) is out of reach",
            r.start + 0x10,
        ),
        None => {
            a.report.check(
                "fw_cfg found",
                false,
                format_args!("no qemu,fw-cfg-mmio node"),
            );
        }
    }

    msi_doorbell(platform, a.report);
    let serves = a.hyp_serves();
    a.report.check(
        "the hyp serves hypercalls after every attack",
        serves,
        format_args!("HYP_ABI_VERSION answered: {serves}"),
    );
}

//! Suite `bench`: what hypercalls (and an emulated MMIO load) cost, in
//! guest instructions, measured from EL1 with the virtual counter. Under
//! QEMU's `-icount shift=N` (`icount=` in bootargs, default 10) one
//! instruction is 2^N ns of virtual time, so `instructions = ticks * 1e9
//! / CNTFRQ / 2^N` and the figures are deterministic. Without `-icount`
//! (`icount=none`) the counter follows the host's clock and the same
//! cases are reported in wall-clock nanoseconds: what a trap costs on
//! QEMU's TCG, which moves with the machine's load. Each case is averaged
//! over many calls and the same loop without the call is subtracted.
//!
//! The domain is attached to the `edu` device's StreamID, so unmaps do
//! their real work: TLB invalidation and CMD_SYNC on the SMMU.

use crate::arena;
use crate::dma_device;
use crate::hyp_client::hvc;
use crate::iommu::{self, RW};
use crate::println;
use crate::report::Report;
use crate::timer;
use core::hint::black_box;
use smmu_hyp::hypercall::abi;
use smmu_hyp::platform::Platform;

use smmu_hyp::mem::PAGE_SIZE as PAGE;
const SZ_2M: u64 = 0x20_0000;
const ECHO_CALLS: u64 = 2000;
const PAGE_ROUNDS: u64 = 200;
const BIG_ROUNDS: u64 = 20;
/// A page kept mapped next to the measured one, so its tables exist.
const PIN_IOVA: u64 = 0x100_0000;
const PAGE_IOVA: u64 = PIN_IOVA + PAGE;
const BIG_IOVA: u64 = 0x4000_0000;
/// Keeps the level-2 table of `BIG_IOVA`'s 1 GiB alive.
const BIG_PIN_IOVA: u64 = BIG_IOVA + 4 * SZ_2M;
/// Target: a null hypercall round trip.
const ECHO_TARGET: u64 = 150;
/// Target: per-page cost inside a 512-page map, in percent of a
/// single-page map call.
const PER_PAGE_TARGET_PERCENT: u64 = 10;

struct Clock {
    /// `-icount shift=`, or `None` without `-icount`.
    shift: Option<u32>,
}

impl Clock {
    /// Guest instructions in `ticks` counter ticks (under `-icount`), or
    /// wall-clock nanoseconds (without).
    fn measure(&self, ticks: u64) -> u64 {
        timer::nanos(ticks) >> self.shift.unwrap_or(0)
    }

    /// What [`Self::measure`] counts.
    fn unit(&self) -> &'static str {
        match self.shift {
            Some(_) => "instructions",
            None => "ns",
        }
    }
}

/// Counter ticks of `f`, run `n` times.
fn time(n: u64, mut f: impl FnMut(u64)) -> u64 {
    let t0 = timer::ticks();
    for i in 0..n {
        f(black_box(i));
    }
    timer::ticks() - t0
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    // The kernel cannot tell whether QEMU counts instructions: the
    // bootargs say so, and the Makefile passes `icount=` to match.
    let wall_clock = smmu_hyp::bootargs::value(platform.bootargs, "icount") == Some("none");
    let clock = Clock {
        shift: (!wall_clock)
            .then(|| crate::suites::number(platform, "icount").unwrap_or(10) as u32),
    };
    match clock.shift {
        Some(shift) => println!(
            "el1: bench: counter at {} Hz, -icount shift={shift}: instructions = ticks * 1e9 / {} / {}",
            timer::frequency(),
            timer::frequency(),
            1u64 << shift
        ),
        None => println!(
            "el1: bench: counter at {} Hz, no -icount: wall-clock ns = ticks * 1e9 / {}",
            timer::frequency(),
            timer::frequency()
        ),
    }
    let unit = clock.unit();

    // Null hypercall: HYP_ECHO, minus the same loop without the hvc.
    let echo = time(ECHO_CALLS, |i| {
        black_box(hvc([u64::from(abi::HYP_ECHO), i, 0, 0]));
    });
    let empty = time(ECHO_CALLS, |i| {
        black_box([u64::from(abi::HYP_ECHO), i, 0, 0]);
    });
    let null = clock.measure(echo.saturating_sub(empty)) / ECHO_CALLS;
    println!("bench: null-hypercall {null} {unit}");

    // A load EL2 emulates (GITS_TYPER through the MMIO bus), minus the
    // same loop reading EL1's own memory.
    if let Some(its) = crate::suites::gic_attack::its_frame(platform) {
        let typer = crate::suites::gic_attack::its_typer(its);
        let own = arena::pa(arena::page(0));
        let trapped = time(ECHO_CALLS, |_| {
            black_box(crate::probe::read(typer).ok());
        });
        let plain = time(ECHO_CALLS, |_| {
            black_box(crate::probe::read(own).ok());
        });
        let mmio = clock.measure(trapped.saturating_sub(plain)) / ECHO_CALLS;
        println!("bench: emulated-mmio-read {mmio} {unit}");
    }

    let dev = dma_device::find(platform);
    dma_device::check_found(report, &dev);
    let Some(dev) = dev else { return };
    let d = iommu::alloc(40, 0).map_or(0, |d| d.id);
    let setup = [
        iommu::attach(dev.smmu, dev.sid, d),
        iommu::map(d, PIN_IOVA, arena::pa(arena::page(0)), PAGE, 1, RW).map(|_| ()),
        iommu::map(d, BIG_PIN_IOVA, arena::pa(arena::page(0)), PAGE, 1, RW).map(|_| ()),
    ];
    report.check(
        "a domain attached to the device, pages pinned so the measured calls find their tables",
        d != 0 && setup.iter().all(Result::is_ok),
        format_args!("{setup:?}"),
    );
    let mut errors = 0u64;
    let mut check = |ok: bool| errors += u64::from(!ok);

    // One page, next to the pinned one (its tables exist).
    let page_pa = arena::pa(arena::page(1));
    let (mut map1, mut unmap1) = (0, 0);
    for _ in 0..PAGE_ROUNDS {
        map1 += time(1, |_| {
            check(iommu::map(d, PAGE_IOVA, page_pa, PAGE, 1, RW) == Ok(PAGE))
        });
        unmap1 += time(1, |_| {
            check(iommu::unmap(d, PAGE_IOVA, PAGE, 1, 0).is_ok_and(|u| u.bytes == PAGE))
        });
    }
    let map1 = clock.measure(map1) / PAGE_ROUNDS;
    let unmap1 = clock.measure(unmap1) / PAGE_ROUNDS;
    println!("bench: map-4k {map1} {unit}");
    println!("bench: unmap-4k {unmap1} {unit}");

    // One page in an empty 2 MiB region: the map allocates a level-3
    // table, the unmap frees it.
    let (mut map_t, mut unmap_t) = (0, 0);
    for _ in 0..PAGE_ROUNDS {
        map_t += time(1, |_| {
            check(iommu::map(d, BIG_IOVA, page_pa, PAGE, 1, RW) == Ok(PAGE))
        });
        unmap_t += time(1, |_| {
            check(iommu::unmap(d, BIG_IOVA, PAGE, 1, 0).is_ok_and(|u| u.bytes == PAGE))
        });
    }
    let map_t = clock.measure(map_t) / PAGE_ROUNDS;
    let unmap_t = clock.measure(unmap_t) / PAGE_ROUNDS;
    println!("bench: map-4k-new-table {map_t} {unit}");
    println!("bench: unmap-4k-free-table {unmap_t} {unit}");

    // 512 pages in one call: a 2 MiB-aligned iova but a pa that is not,
    // so they stay 512 page descriptors (one whole new level-3 table).
    let pages_pa = arena::pa(PAGE);
    let (mut map512, mut unmap512) = (0, 0);
    for _ in 0..BIG_ROUNDS {
        map512 += time(1, |_| {
            check(iommu::map(d, BIG_IOVA, pages_pa, PAGE, 512, RW) == Ok(SZ_2M))
        });
        check(iommu::iova_to_phys(d, BIG_IOVA).is_ok_and(|t| t.leaf_size == PAGE));
        unmap512 += time(1, |_| {
            check(iommu::unmap(d, BIG_IOVA, PAGE, 512, 0).is_ok_and(|u| u.bytes == SZ_2M))
        });
    }
    let map512 = clock.measure(map512) / BIG_ROUNDS;
    let unmap512 = clock.measure(unmap512) / BIG_ROUNDS;
    println!("bench: map-512x4k {map512} {unit}");
    println!("bench: map-512x4k-per-page {} {unit}", map512 / 512);
    println!("bench: unmap-512x4k {unmap512} {unit}");

    // A 2 MiB block (its level-2 table exists).
    let block_pa = arena::pa(arena::BLOCK);
    let (mut map2m, mut unmap2m) = (0, 0);
    for _ in 0..BIG_ROUNDS {
        map2m += time(1, |_| {
            check(iommu::map(d, BIG_IOVA, block_pa, SZ_2M, 1, RW) == Ok(SZ_2M))
        });
        check(iommu::iova_to_phys(d, BIG_IOVA).is_ok_and(|t| t.leaf_size == SZ_2M));
        unmap2m += time(1, |_| {
            check(iommu::unmap(d, BIG_IOVA, SZ_2M, 1, 0).is_ok_and(|u| u.bytes == SZ_2M))
        });
    }
    let map2m = clock.measure(map2m) / BIG_ROUNDS;
    let unmap2m = clock.measure(unmap2m) / BIG_ROUNDS;
    println!("bench: map-2m-block {map2m} {unit}");
    println!("bench: unmap-2m-block {unmap2m} {unit}");

    let r = [
        iommu::unmap(d, PIN_IOVA, PAGE, 1, 0).map(|_| ()),
        iommu::unmap(d, BIG_PIN_IOVA, PAGE, 1, 0).map(|_| ()),
        iommu::detach(dev.smmu, dev.sid),
        iommu::free(d),
    ];
    report.check(
        "every measured call succeeded and the domain is gone",
        errors == 0 && r.iter().all(Result::is_ok),
        format_args!("{errors} failed calls, teardown {r:?}"),
    );
    // The design targets, reported (not pass/fail: they are goals for
    // the hyp, and the figures move with every change to it), in
    // instructions only.
    if wall_clock {
        return;
    }
    println!(
        "bench: target null-hypercall <= {ECHO_TARGET} instructions: {} ({null})",
        verdict(null <= ECHO_TARGET)
    );
    let percent_x10 = map512 * 1000 / 512 / map1.max(1);
    println!(
        "bench: target map-512x4k per page <= {PER_PAGE_TARGET_PERCENT}% of map-4k: {} ({}.{}%)",
        verdict(percent_x10 <= PER_PAGE_TARGET_PERCENT * 10),
        percent_x10 / 10,
        percent_x10 % 10
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

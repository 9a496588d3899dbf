//! Suite `fuzz`: random hypercalls (`calls=`, default 100,000; `seed=`,
//! default fixed), biased towards valid ones (`crate::fuzz_gen`), each
//! result predicted by a model of the ABI (`crate::model`) and compared
//! register for register. The first mismatch stops the run (the model
//! cannot follow a hyp that went elsewhere) and is printed with its call.
//! Then everything is torn down through the same model and the hyp must
//! be empty again. No DMA: the fuzz is about the calls. `trace=<n>`
//! prints every call from the n-th on.

use crate::el2_layout;
use crate::fuzz_gen::{Gen, Places};
use crate::hyp_client::hvc8;
use crate::iommu;
use crate::model::{Env, Expect, MAX_DOMAINS, Model};
use crate::println;
use crate::report::Report;
use core::cell::UnsafeCell;
use smmu_hyp::hypercall::abi::{self, smmu_feat, stats};
use smmu_hyp::platform::{PciSpace, Platform};

const DEFAULT_SEED: u64 = 0x5eed_0000_c0de_0005;
const DEFAULT_CALLS: u64 = 100_000;
use smmu_hyp::mem::PAGE_SIZE as PAGE;

/// The model is large (every domain's leaves): a static, used only by the
/// boot CPU while this suite runs.
struct ModelCell(UnsafeCell<Model>);
// SAFETY: only the boot CPU touches it, from this suite alone.
unsafe impl Sync for ModelCell {}
static MODEL: ModelCell = ModelCell(UnsafeCell::new(Model::EMPTY));

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let seed = super::number(platform, "seed").unwrap_or(DEFAULT_SEED);
    let calls = super::number(platform, "calls").unwrap_or(DEFAULT_CALLS);
    // `trace=<n>` prints every call from the n-th on (to replay a seed).
    let trace_from = super::number(platform, "trace").unwrap_or(u64::MAX);
    // SAFETY: see `ModelCell`; this is the only reference made.
    let m = unsafe { &mut *MODEL.0.get() };
    let Some((env, places)) = discover(platform) else {
        report.check(
            "the fuzz learns the machine",
            false,
            format_args!("discovery failed"),
        );
        return;
    };
    let counters = iommu::stats(stats::CALLS, 0).unwrap_or([0; 3]);
    m.reset(env, counters, &[0; MAX_DOMAINS]);
    report.check(
        "the fuzz learns the machine",
        true,
        format_args!(
            "seed {seed:#x}, {calls} calls; {} SMMU(s), {} domain slots, OAS {} bits, EL1 RAM [{:#x}..{:#x})",
            env.smmus, env.max_domains, env.oas_bits, places.el1.0, places.el1.1
        ),
    );
    let mut generator = Gen::new(seed, places);
    let mut codes = [0u64; 13];
    let mut done = 0;
    let mut mismatch = None;
    while done < calls {
        let a = generator.call(m);
        let expect = m.call(&a);
        let got = hvc8(a);
        done += 1;
        if done >= trace_from {
            println!("el1: fuzz: call {done}: {a:x?} -> {got:x?}");
        }
        if !matches(m, expect, got) {
            mismatch = Some((a, expect, got));
            break;
        }
        let status = got[0] as i64;
        if (abi::TOO_MANY..=abi::SUCCESS).contains(&status) {
            codes[(-status) as usize] += 1;
        }
        if done % 25_000 == 0 {
            println!("el1: fuzz: {done} calls, model and hyp agree");
        }
    }
    if let Some((a, expect, got)) = mismatch {
        println!("el1: fuzz: MISMATCH at call {done}: x0..x7 = {a:#x?}");
        println!("el1: fuzz: predicted {expect:x?}, hyp returned {got:x?}");
    }
    report.check(
        "every result matches the model",
        mismatch.is_none(),
        format_args!(
            "{done} calls, {} mismatch(es)",
            u32::from(mismatch.is_some())
        ),
    );
    report.check(
        "at least 100,000 calls when asked for the default",
        calls < DEFAULT_CALLS || done >= DEFAULT_CALLS,
        format_args!("{done}"),
    );
    // Every status the model can predict was produced.
    let reached = [
        abi::SUCCESS,
        abi::NOT_SUPPORTED,
        abi::INVALID_PARAMETER,
        abi::DENIED,
        abi::BUSY,
        abi::EXISTS,
        abi::NOT_FOUND,
        abi::OUT_OF_RANGE,
        abi::UNALIGNED,
        abi::PARTIAL_BLOCK,
        abi::TOO_MANY,
    ];
    let missing = reached
        .iter()
        .filter(|&&c| codes[(-c) as usize] == 0)
        .count();
    report.check(
        "the calls reached every status but NO_MEMORY and SMMU_ERROR",
        done < 20_000 || missing == 0,
        format_args!(
            "ok {}, NOT_SUPPORTED {}, INVALID {}, DENIED {}, BUSY {}, EXISTS {}, NOT_FOUND {}, OUT_OF_RANGE {}, UNALIGNED {}, PARTIAL {}, TOO_MANY {}",
            codes[0], codes[1], codes[2], codes[3], codes[5], codes[6], codes[7], codes[8], codes[9], codes[10], codes[12]
        ),
    );
    if mismatch.is_none() {
        teardown(m, report);
    }
}

/// Whether `got` is what the model expected (and notes the SMMU counters).
fn matches(m: &mut Model, expect: Expect, got: [u64; 4]) -> bool {
    match expect {
        Expect::Exact(x) => x == got,
        Expect::Commands(i) => {
            let [tlbis, syncs] = m.commands[i];
            let ok = got[0] == 0 && got[1] >= tlbis && got[2] >= syncs && got[3] == 0;
            m.commands[i] = [got[1], got[2]];
            ok
        }
    }
}

/// Detaches every stream and frees every domain through the model, then
/// the hyp must hold nothing.
fn teardown(m: &mut Model, report: &mut Report) {
    let mut bad = 0;
    while m.nattached > 0 {
        let (smmu, sid, _) = m.attached[0];
        let a = [u64::from(abi::HYP_DETACH), smmu, sid, 0, 0, 0, 0, 0];
        let e = m.call(&a);
        bad += u32::from(!matches(m, e, hvc8(a)));
    }
    let mut ids = [0u64; MAX_DOMAINS];
    let mut n = 0;
    for id in m.live_ids() {
        ids[n] = id;
        n += 1;
    }
    for &id in &ids[..n] {
        let a = [u64::from(abi::HYP_DOMAIN_FREE), id, 0, 0, 0, 0, 0, 0];
        let e = m.call(&a);
        bad += u32::from(!matches(m, e, hvc8(a)));
    }
    let objects = iommu::stats(stats::OBJECTS, 0);
    let memory = iommu::stats(stats::MEMORY, 0);
    report.check(
        "teardown through the model: nothing left in the hyp",
        bad == 0 && objects == Ok([0, 0, 0]) && matches!(memory, Ok([0, 0, _])),
        format_args!("{n} domains freed, {bad} mismatches, OBJECTS {objects:?}, MEMORY {memory:?}"),
    );
}

/// What the model and the generator need to know, from the device tree,
/// the EL2 layout and the discovery calls.
fn discover(platform: &Platform<'_>) -> Option<(Env, Places)> {
    let mut env = Env::EMPTY;
    for r in platform.ram.iter().take(env.ram.len()) {
        let r = r.align_out(PAGE);
        env.ram[env.nram] = (r.start, r.end());
        env.nram += 1;
    }
    for r in platform.no_map.iter().take(env.no_map.len()) {
        let r = r.align_out(PAGE);
        env.no_map[env.nno_map] = (r.start, r.end());
        env.nno_map += 1;
    }
    let el2 = el2_layout::derive(platform)?;
    env.el2 = [
        (el2.image.start, el2.image.end()),
        (el2.pool.start, el2.pool.end()),
    ];
    let (msi, nmsi) = crate::msi_frames::find(platform);
    // The hyp's own MMIO (the GIC's MSI frames included) is forbidden by
    // the ABI and in the model; the ITS's doorbell page is the exception
    // (write-only), which the model checks first.
    let aimed = smmu_hyp::mem::forbidden_mmio(platform);
    let forbidden = aimed.clone().chain(msi[..nmsi].iter().copied());
    let mut places = Places {
        el1: (el2.pool.end(), env.ram[0].1),
        el2: env.el2,
        forbidden: [0; 8],
        nforbidden: 0,
        ram_start: env.ram[0].0,
    };
    for r in forbidden.take(env.forbidden.len()) {
        let r = r.align_out(PAGE);
        env.forbidden[env.nforbidden] = (r.start, r.end());
        env.nforbidden += 1;
    }
    for r in aimed.take(places.forbidden.len()) {
        places.forbidden[places.nforbidden] = r.start;
        places.nforbidden += 1;
    }
    if let Some(doorbell) = crate::msi_frames::its_doorbell(platform) {
        env.doorbells[0] = (doorbell.start, doorbell.end());
        env.ndoorbells = 1;
        if places.nforbidden < places.forbidden.len() {
            places.forbidden[places.nforbidden] = doorbell.start;
            places.nforbidden += 1;
        }
    }
    if let Some(host) = &platform.pcie {
        // Every requester is behind the SMMU on this board: its memory
        // windows are a device's to be given.
        for w in host.windows.iter().filter(|w| w.space != PciSpace::Io) {
            if env.nwindows < env.windows.len() {
                env.windows[env.nwindows] = (w.cpu_addr, w.cpu_addr + w.size);
                env.nwindows += 1;
            }
        }
        for e in host.iommu_map.iter().take(env.streams.len()) {
            let smmu = platform.smmu_by_phandle(e.iommu_phandle)? as u64;
            env.streams[env.nstreams] = (smmu, u64::from(e.sid_base), u64::from(e.length));
            env.nstreams += 1;
        }
    }
    let info = iommu::iommu_info().ok()?;
    env.iommu_info = [info.smmus, info.max_domains, info.max_attachments];
    env.smmus = info.smmus.min(4);
    env.max_domains = (info.max_domains as usize).min(MAX_DOMAINS);
    env.max_attach = info.max_attachments as usize;
    env.oas_bits = 48;
    env.granules = [true; 3];
    for i in 0..env.smmus as u32 {
        let r = iommu::call(smmu_hyp::hypercall::client::smmu_info(i));
        let s = iommu::smmu_info(i).ok()?;
        env.smmu_info[i as usize] = [r[1], r[2], r[3]];
        env.sid_limit[i as usize] = 1 << s.sid_bits;
        env.oas_bits = env.oas_bits.min(s.oas_bits);
        for (g, bit) in [smmu_feat::GRAN4K, smmu_feat::GRAN16K, smmu_feat::GRAN64K]
            .iter()
            .enumerate()
        {
            env.granules[g] &= s.features & bit != 0;
        }
        let _ = iommu::drain_faults(i);
        env.smmu_events[i as usize] = iommu::stats(stats::SMMU_EVENTS, i).ok()?;
    }
    env.max_ipa_bits = env.oas_bits.min(48);
    env.el2_pages = iommu::stats(stats::MEMORY, 0).ok()?[2];
    Some((env, places))
}

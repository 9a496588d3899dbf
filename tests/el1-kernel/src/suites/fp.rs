//! Suite `fp`: EL1's floating-point and SIMD state survives every trap to
//! EL2. V0-V31, FPCR and FPSR are filled with patterns, EL1 traps (every
//! hypercall, a trapped SMC, a refused access that EL2 turns into an
//! abort, an access to a register frame EL2 emulates), and the registers
//! are read back before any compiled code runs (`fp.S`). SMCCC requires a callee to preserve them; the hyp never
//! touches them at all. Also: SVE works at EL1 when the CPU has it.

use crate::report::Report;
use smmu_hyp::hypercall::abi::{self, prot};
use smmu_hyp::platform::Platform;
use smmu_hyp::smccc::psci;

#[repr(C)]
struct Dump {
    v: [[u8; 16]; 32],
    fpcr_before: u64,
    fpsr_before: u64,
    fpcr_after: u64,
    fpsr_after: u64,
}

unsafe extern "C" {
    fn fp_trap_preserves(mode: u64, regs: *mut [u64; 8], dump: *mut Dump);
    static fp_pattern: [u8; 512];
}

#[derive(Clone, Copy)]
enum Trap {
    Hvc = 0,
    Smc = 1,
    Load = 2,
}

/// Makes EL1 trap with `regs` in x0..x7 and returns x0..x3 and what
/// changed: the first V register that differs, and whether FPCR and FPSR
/// kept their values.
fn trap(how: Trap, regs: [u64; 8]) -> ([u64; 4], Option<usize>, bool) {
    let mut regs = regs;
    let mut dump = Dump {
        v: [[0; 16]; 32],
        fpcr_before: 0,
        fpsr_before: 0,
        fpcr_after: 0,
        fpsr_after: 0,
    };
    // SAFETY: fp.S saves and restores what AAPCS64 asks of a callee; the
    // pointers are to live locals of the right layout.
    unsafe { fp_trap_preserves(how as u64, &mut regs, &mut dump) };
    // SAFETY: a read-only table in the image.
    let pattern = unsafe { &fp_pattern };
    let differs = (0..32).find(|&i| dump.v[i][..] != pattern[i * 16..i * 16 + 16]);
    let control = dump.fpcr_after == dump.fpcr_before
        && dump.fpsr_after == dump.fpsr_before
        && dump.fpcr_before != 0
        && dump.fpsr_before != 0;
    ([regs[0], regs[1], regs[2], regs[3]], differs, control)
}

fn check(report: &mut Report, what: &str, how: Trap, regs: [u64; 8]) -> [u64; 4] {
    let (x, differs, control) = trap(how, regs);
    report.check(
        what,
        differs.is_none() && control,
        format_args!(
            "x0 = {:#x}; V0-V31 {}, FPCR/FPSR {}",
            x[0],
            match differs {
                None => "intact",
                Some(_) => "CHANGED",
            },
            if control { "intact" } else { "CHANGED" }
        ),
    );
    x
}

fn call(fid: u32, args: &[u64]) -> [u64; 8] {
    let mut r = [0u64; 8];
    r[0] = u64::from(fid);
    r[1..=args.len()].copy_from_slice(args);
    r
}

/// Every hypercall, with arguments that take its main path, and a trapped
/// SMC and a refused access.
fn traps(report: &mut Report) {
    check(
        report,
        "HYP_ABI_VERSION",
        Trap::Hvc,
        call(abi::HYP_ABI_VERSION, &[]),
    );
    check(
        report,
        "HYP_ECHO",
        Trap::Hvc,
        call(abi::HYP_ECHO, &[1, 2, 3]),
    );
    check(
        report,
        "HYP_FEATURES",
        Trap::Hvc,
        call(abi::HYP_FEATURES, &[abi::HYP_MAP.into()]),
    );
    check(
        report,
        "HYP_IOMMU_INFO",
        Trap::Hvc,
        call(abi::HYP_IOMMU_INFO, &[]),
    );
    check(
        report,
        "HYP_SMMU_INFO",
        Trap::Hvc,
        call(abi::HYP_SMMU_INFO, &[0]),
    );
    let x = check(
        report,
        "HYP_DOMAIN_ALLOC",
        Trap::Hvc,
        call(abi::HYP_DOMAIN_ALLOC, &[40, 0]),
    );
    let dom = x[1];
    // One page of this kernel's own memory, mapped and unmapped (the unmap
    // runs the TLB invalidation and CMD_SYNC path).
    let pa = crate::arena::pa(crate::arena::page(0));
    check(
        report,
        "HYP_MAP",
        Trap::Hvc,
        call(
            abi::HYP_MAP,
            &[dom, 0x10_0000, pa, 0x1000, 1, prot::READ | prot::WRITE],
        ),
    );
    check(
        report,
        "HYP_IOVA_TO_PHYS",
        Trap::Hvc,
        call(abi::HYP_IOVA_TO_PHYS, &[dom, 0x10_0000]),
    );
    check(
        report,
        "HYP_UNMAP",
        Trap::Hvc,
        call(abi::HYP_UNMAP, &[dom, 0x10_0000, 0x1000, 1, 0]),
    );
    check(
        report,
        "HYP_ATTACH (refused)",
        Trap::Hvc,
        call(abi::HYP_ATTACH, &[0, u64::MAX, dom]),
    );
    check(
        report,
        "HYP_DETACH (refused)",
        Trap::Hvc,
        call(abi::HYP_DETACH, &[0, u64::MAX]),
    );
    check(
        report,
        "HYP_FAULT_POP",
        Trap::Hvc,
        call(abi::HYP_FAULT_POP, &[0]),
    );
    check(
        report,
        "HYP_STATS",
        Trap::Hvc,
        call(abi::HYP_STATS, &[0, 0]),
    );
    check(
        report,
        "HYP_DOMAIN_FREE",
        Trap::Hvc,
        call(abi::HYP_DOMAIN_FREE, &[dom]),
    );
    check(
        report,
        "an unknown function ID",
        Trap::Hvc,
        call(0xc600_ff00, &[]),
    );
    check(
        report,
        "a trapped SMC (PSCI_VERSION)",
        Trap::Smc,
        call(psci::VERSION, &[]),
    );
}

/// SVE at EL1: enabled in CPACR_EL1, the vector length read with an SVE
/// instruction, ZCR_EL1 written and read back.
fn sve(report: &mut Report) {
    let pfr0: u64;
    // SAFETY: reading an ID register.
    unsafe { core::arch::asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
    if (pfr0 >> 32) & 0xf == 0 {
        report.check("SVE", true, format_args!("not implemented by this CPU"));
        return;
    }
    let (vl, zcr): (u64, u64);
    // SAFETY: enables SVE at EL1 (CPACR_EL1.ZEN) for this kernel, which
    // saves no SVE state anywhere; then reads the vector length.
    unsafe {
        core::arch::asm!(
            ".arch_extension sve",
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 16)",
            "msr cpacr_el1, {t}",
            "isb",
            "mov {t}, #0xf",
            "msr zcr_el1, {t}",
            "isb",
            "mrs {zcr}, zcr_el1",
            "rdvl {vl}, #1",
            t = out(reg) _,
            zcr = out(reg) zcr,
            vl = out(reg) vl,
            options(nomem, nostack),
        )
    };
    report.check(
        "SVE runs at EL1 (ZCR_EL1 written, RDVL executed)",
        zcr & 0xf == 0xf && vl >= 16 && vl % 16 == 0,
        format_args!("ZCR_EL1.LEN = {}, vector length {vl} bytes", zcr & 0xf),
    );
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    traps(report);
    // A load the host stage-2 refuses: a trap that EL2 answers with an
    // abort (the first page of the hyp image).
    let hyp = platform
        .ram
        .iter()
        .next()
        .map_or(0, |r| r.start + 0x20_0000);
    let (x, differs, control) = trap(Trap::Load, [hyp, 0, 0, 0, 0, 0, 0, 0]);
    report.check(
        "a refused load (stage-2 abort injected by EL2)",
        x[1] != 0 && differs.is_none() && control,
        format_args!(
            "ESR {:#x}; V0-V31 {}, FPCR/FPSR {}",
            x[1],
            if differs.is_none() {
                "intact"
            } else {
                "CHANGED"
            },
            if control { "intact" } else { "CHANGED" }
        ),
    );
    // A load EL2 emulates: GITS_TYPER, through the MMIO bus.
    match super::gic_attack::its_frame(platform) {
        Some(its) => {
            let addr = super::gic_attack::its_typer(its);
            let expected = crate::probe::read(addr);
            let (x, differs, control) = trap(Trap::Load, [addr, 0, 0, 0, 0, 0, 0, 0]);
            report.check(
                "a trapped MMIO load (GITS_TYPER, emulated by EL2)",
                x[1] == 0 && Ok(x[0]) == expected && differs.is_none() && control,
                format_args!(
                    "x0 = {:#x}; V0-V31 {}, FPCR/FPSR {}",
                    x[0],
                    if differs.is_none() {
                        "intact"
                    } else {
                        "CHANGED"
                    },
                    if control { "intact" } else { "CHANGED" }
                ),
            );
        }
        None => {
            report.check(
                "an ITS to trap on",
                false,
                format_args!("none in the device tree"),
            );
        }
    }
    sve(report);
}

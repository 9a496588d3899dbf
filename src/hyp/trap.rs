//! Traps from EL1: hypercalls (`hvc`), trapped `smc` calls, stage-2 aborts
//! and anything else EL1 makes trap. Nothing EL1 does ends the machine: a
//! refused access becomes an abort EL1 takes, an unexpected trap an
//! undefined instruction.

use crate::arch::aarch64::exception::TrapFrame;
use crate::arch::aarch64::inject::inject;
use crate::esr::Esr;
use crate::inject::Injected;
use crate::{hypercall, smccc};
use aarch64_cpu::registers::{FAR_EL2, HPFAR_EL2, Readable};
use core::sync::atomic::{AtomicU32, Ordering};

/// Refused EL1 accesses logged so far; the log stops at
/// [`MAX_LOGGED_FAULTS`] so a hostile EL1 cannot flood it.
static LOGGED_FAULTS: AtomicU32 = AtomicU32::new(0);
const MAX_LOGGED_FAULTS: u32 = 64;

fn log_refused(what: core::fmt::Arguments<'_>) {
    let n = LOGGED_FAULTS.fetch_add(1, Ordering::Relaxed);
    if n < MAX_LOGGED_FAULTS {
        log::warn!("el1: {what}");
    } else if n == MAX_LOGGED_FAULTS {
        log::warn!("el1: further refused accesses are not logged");
    }
}

/// The IPA of a stage-2 fault (`HPFAR_EL2.FIPA` and the page offset from
/// `FAR_EL2`).
fn fault_ipa() -> u64 {
    ((HPFAR_EL2.get() >> 4) << 12) | (FAR_EL2.get() & 0xfff)
}

/// A data access EL1 may not make (the host stage-2 has no mapping for
/// it): an external abort for EL1.
pub fn data_abort(frame: &mut TrapFrame, esr: Esr) {
    const WNR: u32 = 1 << 6;
    const FNV: u32 = 1 << 10;
    let write = esr.iss() & WNR != 0;
    let far = (esr.iss() & FNV == 0).then(|| FAR_EL2.get());
    log_refused(format_args!(
        "{} of {:#x} (IPA {:#x}) at {:#x} refused: external abort injected",
        if write { "write" } else { "read" },
        far.unwrap_or(0),
        fault_ipa(),
        frame.elr
    ));
    inject(frame, Injected::DataAbort { far, write });
}

/// An instruction fetch EL1 may not make: an external abort for EL1.
pub fn instruction_abort(frame: &mut TrapFrame, esr: Esr) {
    const FNV: u32 = 1 << 10;
    let far = (esr.iss() & FNV == 0).then(|| FAR_EL2.get());
    log_refused(format_args!(
        "instruction fetch from IPA {:#x} at {:#x} refused: external abort injected",
        fault_ipa(),
        frame.elr
    ));
    inject(frame, Injected::InstructionAbort { far });
}

/// A trap the hyp does not handle: an undefined instruction for EL1.
pub fn unexpected(frame: &mut TrapFrame, esr: Esr) {
    log_refused(format_args!(
        "unexpected trap at {:#x} ({esr}): undefined instruction injected",
        frame.elr
    ));
    inject(frame, Injected::Undefined);
}

/// An `hvc` from EL1: ELR already points past it. Only `hvc #0` is a
/// hypercall (SMCCC); any other immediate answers NOT_SUPPORTED.
pub fn hvc(frame: &mut TrapFrame, esr: Esr) {
    if esr.imm16() != 0 {
        frame.x[0] = smccc::NOT_SUPPORTED;
        return;
    }
    // Element by element: a slice copy becomes a memcpy call, a third of
    // a null hypercall's cost.
    let x = &frame.x;
    let args = [x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]];
    let iommu = super::iommu::service().map(|s| s as &dyn hypercall::IommuCalls);
    let result = hypercall::dispatch_with(&args, iommu);
    frame.x[..4].copy_from_slice(&result);
}

/// An `smc` from EL1, trapped by HCR_EL2.TSC: ELR points at the `smc`
/// itself, so step over it.
pub fn smc(frame: &mut TrapFrame) {
    frame.elr += 4;
    let mut args = [0u64; 4];
    args.copy_from_slice(&frame.x[..4]);
    let firmware = super::firmware();
    let result = super::cpus::handle_psci(args, firmware)
        .unwrap_or_else(|| smccc::handle_el1_smc(args, firmware));
    frame.x[..4].copy_from_slice(&result);
}

//! Exceptions taken to EL2, dispatched on their decoded exit.
//!
//! From EL1 (or EL0): hypercalls (`hvc #0`) and trapped `smc` calls are
//! served, loads and stores to emulated MMIO (`super::mmio`) are emulated,
//! and nothing else EL1 does ends the machine: `hvc` with another
//! immediate answers NOT_SUPPORTED, an access the host stage-2 refuses
//! becomes an external abort EL1 takes, any other trap an undefined
//! instruction. An exception of EL2's own ends the run with a crash report
//! (`crash.rs`), and so would an interrupt or SError from EL1, which
//! `HCR_EL2` never routes here (IMO, FMO and AMO are clear).

use super::crash;
use crate::arch::aarch64::exception::{self, Exit, TrapFrame};
use crate::arch::aarch64::inject::inject;
use crate::esr::{DataAbortIss, Esr};
use crate::inject::Injected;
use crate::vdev::bus::Unemulated;
use crate::{hypercall, smccc};
use core::sync::atomic::{AtomicU32, Ordering};

/// Called by `vectors.S` for every exception taken to EL2, with the entry
/// index of the vector table (`main.rs` passes this function's symbol).
pub extern "C" fn handle_exception(frame: &mut TrapFrame, vector: u64) {
    let trap = exception::decode(vector);
    if trap.vector.from_el2() {
        crash(frame, vector);
    }
    match trap.exit {
        Exit::Hvc { imm: 0 } => hvc(frame),
        Exit::Hvc { .. } => frame.x[0] = smccc::NOT_SUPPORTED,
        Exit::Smc { .. } => smc(frame),
        Exit::DataAbort { iss, far } => data_abort(frame, iss, far),
        Exit::InstructionAbort { far, .. } => instruction_abort(frame, far),
        Exit::Other(esr) => unexpected(frame, esr),
        Exit::Irq | Exit::Fiq | Exit::SError(_) => crash(frame, vector),
    }
}

/// Out of line and without the decoded trap (it decodes again, reading the
/// same registers): handing the trap over needs it in memory, which costs
/// the hypercall path above a stack frame (`make bench` measures it).
#[cold]
#[inline(never)]
fn crash(frame: &TrapFrame, vector: u64) -> ! {
    crash::unexpected_exception(frame, &exception::decode(vector))
}

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

/// A data access the host stage-2 has no mapping for: emulated if an
/// emulated device answers there (see [`super::mmio`]), else an external
/// abort for EL1.
#[inline(never)]
fn data_abort(frame: &mut TrapFrame, iss: DataAbortIss, far: Option<u64>) {
    let ipa = exception::fault_ipa();
    let unemulated = match super::mmio::bus().filter(|b| b.claims(ipa)) {
        Some(bus) => match super::mmio::emulate(bus, frame, iss, ipa) {
            Ok(()) => return,
            Err(why) => Some(why),
        },
        None => None,
    };
    refused(frame, iss, far, ipa, unemulated);
}

/// A data access EL1 may not make (no mapping, or an access to an
/// emulated device that cannot be emulated, e.g. a load pair): an
/// external abort for EL1.
#[cold]
#[inline(never)]
fn refused(
    frame: &mut TrapFrame,
    iss: DataAbortIss,
    far: Option<u64>,
    ipa: u64,
    unemulated: Option<Unemulated>,
) {
    let write = iss.write();
    let what = if write { "write" } else { "read" };
    let (va, elr) = (far.unwrap_or(0), frame.elr);
    match unemulated {
        Some(why) => log_refused(format_args!(
            "{what} of emulated MMIO {va:#x} (IPA {ipa:#x}) at {elr:#x} not emulated ({why}): external abort injected"
        )),
        None => log_refused(format_args!(
            "{what} of {va:#x} (IPA {ipa:#x}) at {elr:#x} refused: external abort injected"
        )),
    }
    inject(frame, Injected::DataAbort { far, write });
}

/// An instruction fetch EL1 may not make: an external abort for EL1.
#[cold]
#[inline(never)]
fn instruction_abort(frame: &mut TrapFrame, far: Option<u64>) {
    log_refused(format_args!(
        "instruction fetch from IPA {:#x} at {:#x} refused: external abort injected",
        exception::fault_ipa(),
        frame.elr
    ));
    inject(frame, Injected::InstructionAbort { far });
}

/// A trap the hyp does not handle: an undefined instruction for EL1.
#[cold]
#[inline(never)]
fn unexpected(frame: &mut TrapFrame, esr: Esr) {
    log_refused(format_args!(
        "unexpected trap at {:#x} ({esr}): undefined instruction injected",
        frame.elr
    ));
    inject(frame, Injected::Undefined);
}

/// An `hvc #0` from EL1, a hypercall (SMCCC): ELR already points past it.
#[inline(never)]
fn hvc(frame: &mut TrapFrame) {
    // Element by element: a slice copy becomes a memcpy call, a third of
    // a null hypercall's cost.
    let x = &frame.x;
    let args = [x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]];
    let iommu = super::iommu::service().map(|s| s as &dyn hypercall::IommuCalls);
    // EL1 runs only once the ownership record is sealed, as `OwnedRam`
    // needs. Built only for the calls that read EL1's memory: the others
    // (the null hypercall too) do not pay for it.
    let el1 = hypercall::reads_el1_memory(&args)
        .then(super::mem::el1_ram)
        .flatten();
    let result = match el1 {
        Some(el1) => hypercall::dispatch_el1(&args, iommu, &el1),
        None => hypercall::dispatch_with(&args, iommu),
    };
    frame.x[..4].copy_from_slice(&result);
}

/// An `smc` from EL1, trapped by HCR_EL2.TSC: ELR points at the `smc`
/// itself, so step over it.
#[inline(never)]
fn smc(frame: &mut TrapFrame) {
    frame.skip_instruction();
    let mut args = [0u64; 4];
    args.copy_from_slice(&frame.x[..4]);
    if matches!(
        args[0] as u32,
        smccc::psci::SYSTEM_OFF | smccc::psci::SYSTEM_RESET
    ) {
        super::viommu::log_stats();
        super::iommu::log_stats();
    }
    let firmware = super::firmware();
    let result = super::cpus::handle_psci(args, firmware)
        .unwrap_or_else(|| smccc::handle_el1_smc(args, firmware));
    frame.x[..4].copy_from_slice(&result);
}

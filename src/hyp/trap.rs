//! Exceptions taken to EL2, dispatched on their decoded exit: hypercalls
//! (`hvc`) and trapped `smc` calls from EL1 are served; anything else ends
//! the run with a crash report.

use super::crash;
use crate::arch::aarch64::exception::{self, Exit, Origin, TrapFrame};
use crate::{hypercall, smccc};

/// Called by `vectors.S` for every exception taken to EL2, with the entry
/// index of the vector table (`main.rs` passes this function's symbol).
pub extern "C" fn handle_exception(frame: &mut TrapFrame, vector: u64) {
    let trap = exception::decode(vector);
    match (trap.vector.origin, trap.exit) {
        (Origin::LowerAArch64, Exit::Hvc { .. }) => hvc(frame),
        (Origin::LowerAArch64, Exit::Smc { .. }) => smc(frame),
        _ => unexpected(frame, vector),
    }
}

/// Out of line and without the decoded trap (it decodes again, reading the
/// same registers): handing the trap over needs it in memory, which costs
/// the hypercall path above a stack frame (`make bench` measures it).
#[cold]
#[inline(never)]
fn unexpected(frame: &TrapFrame, vector: u64) -> ! {
    crash::unexpected_exception(frame, &exception::decode(vector))
}

/// An `hvc` from EL1: ELR already points past it.
#[inline(never)]
fn hvc(frame: &mut TrapFrame) {
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
#[inline(never)]
fn smc(frame: &mut TrapFrame) {
    frame.elr += 4;
    let mut args = [0u64; 4];
    args.copy_from_slice(&frame.x[..4]);
    let firmware = super::firmware();
    let result = super::cpus::handle_psci(args, firmware)
        .unwrap_or_else(|| smccc::handle_el1_smc(args, firmware));
    frame.x[..4].copy_from_slice(&result);
}

//! Traps from EL1: hypercalls (`hvc`) and trapped `smc` calls.

use crate::arch::aarch64::exception::TrapFrame;
use crate::{hypercall, smccc};

/// An `hvc` from EL1: ELR already points past it.
pub fn hvc(frame: &mut TrapFrame) {
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

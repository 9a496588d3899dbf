//! Delivering an exception to EL1 (the values come from [`crate::inject`]).

use super::exception::TrapFrame;
use crate::inject::{Delivery, EntryFeatures, Injected, Interrupted, deliver};
use aarch64_cpu::registers::{ID_AA64MMFR1_EL1, ID_AA64PFR1_EL1, Readable, SCTLR_EL1, VBAR_EL1};
use core::arch::asm;

/// EL1's state at the trap in `frame`.
fn interrupted(frame: &TrapFrame) -> Interrupted {
    Interrupted {
        pc: frame.elr,
        pstate: frame.spsr,
        vbar_el1: VBAR_EL1.get(),
        sctlr_el1: SCTLR_EL1.get(),
        features: EntryFeatures::from_id_registers(ID_AA64PFR1_EL1.get(), ID_AA64MMFR1_EL1.get()),
    }
}

/// Makes EL1 take `what` when EL2 returns to the context in `frame`.
pub fn inject(frame: &mut TrapFrame, what: Injected) {
    let d: Delivery = deliver(what, &interrupted(frame));
    // SAFETY: these EL1 registers are EL1's exception state; EL1 is
    // stopped on this CPU and reads them only in the handler EL2 returns
    // to.
    unsafe {
        asm!(
            "msr esr_el1, {esr}",
            "msr elr_el1, {elr}",
            "msr spsr_el1, {spsr}",
            esr = in(reg) d.esr_el1,
            elr = in(reg) d.elr_el1,
            spsr = in(reg) d.spsr_el1,
            options(nomem, nostack),
        );
        if let Some(far) = d.far_el1 {
            asm!("msr far_el1, {}", in(reg) far, options(nomem, nostack));
        }
    }
    frame.elr = d.elr_el2;
    frame.spsr = d.spsr_el2;
}

//! Crash reports: an exception the hyp does not handle ends the run, after
//! printing everything known about it.

use crate::arch::aarch64::exception::{self, Exit, Trap, TrapFrame};
use crate::arch::aarch64::image;
use crate::console::emergency_print;
use crate::exit;

/// Prints the decoded exception and the interrupted context, then ends the
/// run: [`exit::EL2_STACK_OVERFLOW`] for a stack overflow (an EL2 exception
/// with SP, or the faulting access, in its stack's guard page; `vectors.S`
/// has moved to an emergency stack), [`exit::EL2_EXCEPTION`] for any other
/// exception of EL2's own, [`exit::EL1_EXCEPTION`] for one taken from EL1.
pub fn unexpected_exception(frame: &TrapFrame, trap: &Trap) -> ! {
    let overflow = if trap.vector.from_el2() {
        let far = match trap.exit {
            Exit::DataAbort { iss, far } if iss.far_valid() => Some(far),
            _ => None,
        };
        image::stack_slots().overflow(frame.sp, far)
    } else {
        None
    };
    if let Some(cpu) = overflow {
        emergency_print(format_args!(
            "\n*** EL2 stack overflow: cpu{cpu}'s stack ran into its guard page {} ***",
            image::stack_slots().guard(cpu)
        ));
    }
    emergency_print(format_args!(
        "\n*** unexpected exception: {} ***\n{}\n",
        trap.vector, trap.esr
    ));
    emergency_print(format_args!(
        "FAR  {:#018x}  ELR  {:#018x}  SPSR {:#010x}\n",
        exception::far(),
        frame.elr,
        frame.spsr
    ));
    if trap.vector.from_el2() {
        emergency_print(format_args!("SP   {:#018x}\n", frame.sp));
    }
    emergency_print(format_args!("{frame}"));
    let status = match (overflow, trap.vector.from_el2()) {
        (Some(_), _) => exit::EL2_STACK_OVERFLOW,
        (None, true) => exit::EL2_EXCEPTION,
        (None, false) => exit::EL1_EXCEPTION,
    };
    super::end_run(status)
}

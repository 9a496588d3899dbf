//! Crash reports: an exception the hyp does not handle ends the run, after
//! printing everything known about it.

use crate::arch::aarch64::exception::{self, Trap, TrapFrame};
use crate::console::emergency_print;
use crate::exit;

/// Prints the decoded exception and the interrupted context, then ends the
/// run: [`exit::EL1_EXCEPTION`] for one taken from EL1,
/// [`exit::EL2_EXCEPTION`] for one of EL2's own.
pub fn unexpected_exception(frame: &TrapFrame, trap: &Trap) -> ! {
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
    emergency_print(format_args!("{frame}"));
    let status = if trap.vector.from_el2() {
        exit::EL2_EXCEPTION
    } else {
        exit::EL1_EXCEPTION
    };
    super::end_run(status)
}

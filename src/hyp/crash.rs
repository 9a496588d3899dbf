//! Crash reports: an exception the hyp does not handle ends the run, after
//! printing everything known about it.

use super::boot::LAYOUT;
use crate::arch::aarch64::exception::{self, Exit, Trap, TrapFrame};
use crate::arch::aarch64::image;
use crate::console::emergency_print;
use crate::exit;
use crate::memmap::PhysRange;
use core::fmt;

/// Prints the decoded exception and the interrupted context, then ends the
/// run: [`exit::EL2_STACK_OVERFLOW`] for a stack overflow (an EL2 exception
/// with SP, or the faulting access, in its stack's guard page; `vectors.S`
/// has moved to an emergency stack), [`exit::EL2_EXCEPTION`] for any other
/// exception of EL2's own, [`exit::EL1_EXCEPTION`] for one taken from EL1.
pub fn unexpected_exception(frame: &TrapFrame, trap: &Trap) -> ! {
    let overflow = if trap.vector.from_el2() {
        let far = match trap.exit {
            Exit::DataAbort { far, .. } => far,
            _ => None,
        };
        stack_overflow(frame.sp, far)
    } else {
        None
    };
    if let Some(overflow) = &overflow {
        emergency_print(format_args!("\n*** EL2 stack overflow: {overflow} ***"));
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
    let status = match (&overflow, trap.vector.from_el2()) {
        (Some(_), _) => exit::EL2_STACK_OVERFLOW,
        (None, true) => exit::EL2_EXCEPTION,
        (None, false) => exit::EL1_EXCEPTION,
    };
    super::end_run(status)
}

/// A stack that ran into its guard page.
enum Overflow {
    /// The boot CPU's stack while it boots (in the image).
    Boot { guard: PhysRange },
    /// CPU `cpu`'s stack in the pool.
    Cpu { cpu: usize, guard: PhysRange },
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boot { guard } => write!(f, "the boot stack ran into its guard page {guard}"),
            Self::Cpu { cpu, guard } => {
                write!(f, "cpu{cpu}'s stack ran into its guard page {guard}")
            }
        }
    }
}

/// Whether an exception from EL2 with stack pointer `sp` (and, for a data
/// abort, faulting address `far`) is a stack overflow, and of which stack:
/// the boot stack's slot, or one of the CPUs' slots in the pool.
fn stack_overflow(sp: u64, far: Option<u64>) -> Option<Overflow> {
    let boot = image::boot_stack_slot();
    if boot.overflow(sp, far).is_some() {
        return Some(Overflow::Boot {
            guard: boot.guard(0),
        });
    }
    let cpus = LAYOUT.get()?.stacks.slots();
    let cpu = cpus.overflow(sp, far)?;
    Some(Overflow::Cpu {
        cpu,
        guard: cpus.guard(cpu),
    })
}

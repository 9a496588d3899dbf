//! EL2 exception entry: the trap frame, routing, and crash reports.

use crate::console::emergency_print;
use crate::esr::{Esr, ec};
use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, Readable};

/// The interrupted context, as `vectors.S` saves it.
#[repr(C)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// Bytes `vectors.S` reserves for a [`TrapFrame`].
pub const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE == 272 && FRAME_SIZE.is_multiple_of(16));

/// Vector-table entry index of a synchronous exception from AArch64 EL1.
const LOWER_AARCH64_SYNC: u64 = 8;
/// Vector-table entry index of a synchronous exception from AArch32 EL0.
const LOWER_AARCH32_SYNC: u64 = 12;

const KIND_NAMES: [&str; 16] = [
    "synchronous, EL2 with SP_EL0",
    "IRQ, EL2 with SP_EL0",
    "FIQ, EL2 with SP_EL0",
    "SError, EL2 with SP_EL0",
    "synchronous, EL2",
    "IRQ, EL2",
    "FIQ, EL2",
    "SError, EL2",
    "synchronous, from EL1 (AArch64)",
    "IRQ, from EL1 (AArch64)",
    "FIQ, from EL1 (AArch64)",
    "SError, from EL1 (AArch64)",
    "synchronous, from EL1 (AArch32)",
    "IRQ, from EL1 (AArch32)",
    "FIQ, from EL1 (AArch32)",
    "SError, from EL1 (AArch32)",
];

/// Called by `vectors.S` for every exception taken to EL2.
pub extern "C" fn handle_exception(frame: &mut TrapFrame, kind: u64) {
    let esr = Esr(ESR_EL2.get());
    if kind == LOWER_AARCH64_SYNC || kind == LOWER_AARCH32_SYNC {
        return match esr.class() {
            ec::HVC64 => crate::hyp::trap::hvc(frame, esr),
            ec::SMC64 => crate::hyp::trap::smc(frame),
            ec::DABT_LOWER => crate::hyp::trap::data_abort(frame, esr),
            ec::IABT_LOWER => crate::hyp::trap::instruction_abort(frame, esr),
            _ => crate::hyp::trap::unexpected(frame, esr),
        };
    }
    report(frame, kind, esr);
    let status = if kind >= LOWER_AARCH64_SYNC {
        crate::exit::EL1_EXCEPTION
    } else {
        crate::exit::EL2_EXCEPTION
    };
    crate::hyp::end_run(status)
}

/// Prints everything known about an unexpected exception.
fn report(frame: &TrapFrame, kind: u64, esr: Esr) {
    let name = KIND_NAMES
        .get(kind as usize)
        .copied()
        .unwrap_or("unknown vector");
    emergency_print(format_args!(
        "\n*** unexpected exception: {name} ***\n{esr}\n"
    ));
    emergency_print(format_args!(
        "FAR  {:#018x}  ELR  {:#018x}  SPSR {:#010x}\n",
        FAR_EL2.get(),
        frame.elr,
        frame.spsr
    ));
    for (i, pair) in frame.x.chunks(4).enumerate() {
        for (j, value) in pair.iter().enumerate() {
            emergency_print(format_args!("x{:<2} {value:#018x}  ", i * 4 + j));
        }
        emergency_print(format_args!("\n"));
    }
}

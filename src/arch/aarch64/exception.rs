//! EL2 exception entry: the trap frame `vectors.S` saves, and the decoding
//! of an exception into a [`Trap`]: where it came from and what it is (an
//! [`Exit`]). What an exit means for the run is the caller's business: the
//! handler `vectors.S` calls is supplied by the image (`main.rs`), which
//! dispatches on the decoded exit.

use crate::esr::{DataAbortIss, Esr, FaultStatus, ec};
use crate::pstate;
use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, HPFAR_EL2, Readable};
use core::fmt;

/// The interrupted context, as `vectors.S` saves it.
#[repr(C)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    /// The stack pointer at the exception. Only for an exception taken
    /// from EL2 itself ([`Vector::from_el2`]): the entry from a lower EL
    /// does not write it.
    pub sp: u64,
}

impl TrapFrame {
    /// Steps the interrupted code past the 32-bit A64 instruction that
    /// trapped (ELR points at it: a trapped `smc`, an emulated load or
    /// store), with the PSTATE completing it leaves ([`pstate::skipped`]).
    #[inline(always)]
    pub fn skip_instruction(&mut self) {
        self.elr = self.elr.wrapping_add(4);
        self.spsr = pstate::skipped(self.spsr);
    }
}

/// Bytes `vectors.S` reserves for a [`TrapFrame`].
pub const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE == 272 && FRAME_SIZE.is_multiple_of(16));

/// Where an exception came from: the quarter of the vector table it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// EL2 itself, running on SP_EL0 (the hyp never does).
    CurrentElSp0,
    /// EL2 itself.
    CurrentEl,
    /// EL1 or EL0 in AArch64.
    LowerAArch64,
    /// EL1 or EL0 in AArch32.
    LowerAArch32,
}

/// Which of the four exception types of a vector-table quarter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

/// A vector-table entry: its index (0..16) is what `vectors.S` passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    pub origin: Origin,
    pub kind: Kind,
}

impl Vector {
    /// The entry at `index` (Arm ARM D1.3.1: four quarters of four).
    pub const fn from_index(index: u64) -> Self {
        let origin = match (index >> 2) & 3 {
            0 => Origin::CurrentElSp0,
            1 => Origin::CurrentEl,
            2 => Origin::LowerAArch64,
            _ => Origin::LowerAArch32,
        };
        let kind = match index & 3 {
            0 => Kind::Synchronous,
            1 => Kind::Irq,
            2 => Kind::Fiq,
            _ => Kind::SError,
        };
        Self { origin, kind }
    }

    /// Whether the exception came from EL2 itself.
    pub const fn from_el2(self) -> bool {
        matches!(self.origin, Origin::CurrentElSp0 | Origin::CurrentEl)
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Synchronous => "synchronous",
            Kind::Irq => "IRQ",
            Kind::Fiq => "FIQ",
            Kind::SError => "SError",
        };
        let origin = match self.origin {
            Origin::CurrentElSp0 => "EL2 with SP_EL0",
            Origin::CurrentEl => "EL2",
            Origin::LowerAArch64 => "from EL1 (AArch64)",
            Origin::LowerAArch32 => "from EL1 (AArch32)",
        };
        write!(f, "{kind}, {origin}")
    }
}

/// What an exception is, decoded from its vector and syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `hvc #imm` (ELR already points past it).
    Hvc {
        imm: u16,
    },
    /// A trapped `smc #imm` (ELR points at it).
    Smc {
        imm: u16,
    },
    /// A data abort at `far` (`None` when the syndrome says FAR is not
    /// valid: ISS.FnV).
    DataAbort {
        iss: DataAbortIss,
        far: Option<u64>,
    },
    /// An instruction abort at `far` (`None` when FAR is not valid).
    InstructionAbort {
        status: FaultStatus,
        far: Option<u64>,
    },
    Irq,
    Fiq,
    /// An SError interrupt, with its syndrome.
    SError(Esr),
    /// Any other synchronous exception.
    Other(Esr),
}

/// A decoded exception: where it came from, its raw syndrome, what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    pub vector: Vector,
    /// ESR_EL2 as read at entry (stale for IRQ and FIQ, which set none).
    pub esr: Esr,
    pub exit: Exit,
}

/// Decodes the exception `vectors.S` is handling, taken through vector
/// table entry `index`. Reads ESR_EL2, and FAR_EL2 for aborts.
#[inline(always)]
pub fn decode(index: u64) -> Trap {
    let vector = Vector::from_index(index);
    let esr = Esr(ESR_EL2.get());
    // A hypercall is tested first: the hypercall round trip is the hot path
    // (`make bench` measures it).
    let exit = if vector.kind == Kind::Synchronous && esr.class() == ec::HVC64 {
        Exit::Hvc { imm: esr.imm16() }
    } else {
        core::hint::cold_path();
        match vector.kind {
            Kind::Irq => Exit::Irq,
            Kind::Fiq => Exit::Fiq,
            Kind::SError => Exit::SError(esr),
            Kind::Synchronous => match esr.class() {
                ec::SMC64 => Exit::Smc { imm: esr.imm16() },
                ec::DABT_LOWER | ec::DABT_CURRENT => {
                    let iss = DataAbortIss::new(esr.iss());
                    Exit::DataAbort {
                        iss,
                        far: iss.far_valid().then(far),
                    }
                }
                ec::IABT_LOWER | ec::IABT_CURRENT => Exit::InstructionAbort {
                    status: FaultStatus::decode((esr.iss() & 0x3f) as u8),
                    far: esr.abort_far_valid().then(far),
                },
                _ => Exit::Other(esr),
            },
        }
    };
    Trap { vector, esr, exit }
}

/// FAR_EL2: the faulting address of the last abort taken to EL2 (UNKNOWN
/// after other exceptions).
pub fn far() -> u64 {
    FAR_EL2.get()
}

/// The IPA of a stage-2 abort on a lower EL's access: `HPFAR_EL2.FIPA`
/// with the page offset from `FAR_EL2` (UNKNOWN after other exceptions).
pub fn fault_ipa() -> u64 {
    ((HPFAR_EL2.get() >> 4) << 12) | (FAR_EL2.get() & 0xfff)
}

impl fmt::Display for TrapFrame {
    /// The general-purpose registers, four to a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.x.chunks(4).enumerate() {
            for (j, value) in line.iter().enumerate() {
                write!(f, "x{:<2} {value:#018x}  ", i * 4 + j)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

//! The MMIO bus on this machine: the emulated devices registered at boot,
//! and the emulation of a trapped EL1 load or store (see
//! [`crate::vdev`]).

use crate::arch::aarch64::exception::TrapFrame;
use crate::esr::{DataAbortIss, FaultStatus};
use crate::pstate;
use crate::vdev::bus::{MmioBus, Unemulated};
use aarch64_cpu::registers::{Readable, SCTLR_EL1};

/// Most windows the hyp emulates.
pub const MAX_WINDOWS: usize = 16;

pub type Bus = MmioBus<MAX_WINDOWS>;

static BUS: spin::Once<Bus> = spin::Once::new();

/// Makes `bus` the machine's bus, once, before any CPU enters EL1.
pub fn publish(bus: Bus) {
    BUS.call_once(|| bus);
}

/// The bus, once published.
pub fn bus() -> Option<&'static Bus> {
    BUS.get()
}

/// Emulates the load or store that faulted at `ipa` (which `bus` claims),
/// in the byte order of the trapped code's data accesses (`SCTLR_EL1.EE`
/// or `E0E`), and steps EL1 past it. A cache maintenance instruction on a
/// register frame does nothing and is stepped over too (KVM's
/// `kvm_handle_guest_abort` does the same for MMIO).
pub fn emulate(
    bus: &Bus,
    frame: &mut TrapFrame,
    iss: DataAbortIss,
    ipa: u64,
) -> Result<(), Unemulated> {
    if !matches!(iss.status(), FaultStatus::Translation { .. })
        || !iss.far_valid()
        || iss.s1ptw()
        || pstate::aarch32(frame.spsr)
    {
        return Err(Unemulated::NotALoadOrStore);
    }
    if !iss.cache_maintenance() {
        let access = iss.access().ok_or(Unemulated::NoSyndrome)?;
        let big_endian = pstate::data_big_endian(frame.spsr, SCTLR_EL1.get());
        bus.emulate(ipa, iss.write(), access, big_endian, &mut frame.x)?;
    }
    // A 32-bit A64 instruction (ESR.IL is 1 for every data abort from
    // AArch64).
    frame.skip_instruction();
    Ok(())
}

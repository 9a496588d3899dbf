//! Accesses that may fault on purpose, and what EL1 saw when they did.
//!
//! The probe instructions live in `entry.S`; when one takes a synchronous
//! exception at EL1, the vector resumes after it and reports the syndrome.

use smmu_hyp::esr::Esr;

/// An exception EL1 took during a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub esr: Esr,
    pub far: u64,
}

unsafe extern "C" {
    fn probe_read64(addr: u64) -> Pair;
    fn probe_read32(addr: u64) -> Pair;
    fn probe_read32_signed(addr: u64) -> Pair;
    fn probe_read8(addr: u64) -> Pair;
    fn probe_read_pair(addr: u64) -> Pair;
    fn probe_write64(addr: u64, value: u64) -> Pair;
    fn probe_write32(addr: u64, value: u64) -> Pair;
    fn probe_write8(addr: u64, value: u64) -> Pair;
    fn probe_undefined_impdef() -> Pair;
    fn probe_hvc1() -> Pair;
    fn probe_brk() -> Pair;
}

/// x0 and x1 as the probes return them (an AArch64 PCS aggregate of two
/// words comes back in x0, x1).
#[repr(C)]
struct Pair {
    x0: u64,
    x1: u64,
}

fn result(p: Pair) -> Result<u64, Fault> {
    if p.x1 == 0 {
        Ok(p.x0)
    } else {
        Err(Fault {
            esr: Esr(p.x1),
            far: p.x0,
        })
    }
}

/// Loads 64 bits from `addr` (a physical address: the MMU is off).
pub fn read(addr: u64) -> Result<u64, Fault> {
    // SAFETY: a load that may fault; the vector resumes after it.
    result(unsafe { probe_read64(addr) })
}

/// Loads 32 bits into a W register (`ldr w`: bits [63:32] of the X
/// register end up zero).
pub fn read32(addr: u64) -> Result<u64, Fault> {
    // SAFETY: a load that may fault; the vector resumes after it.
    result(unsafe { probe_read32(addr) })
}

/// Loads 32 bits sign-extended to 64 (`ldrsw`).
pub fn read32_signed(addr: u64) -> Result<u64, Fault> {
    // SAFETY: as for `read32`.
    result(unsafe { probe_read32_signed(addr) })
}

/// Loads one byte (`ldrb`).
pub fn read8(addr: u64) -> Result<u64, Fault> {
    // SAFETY: as for `read32`.
    result(unsafe { probe_read8(addr) })
}

/// Loads two 64-bit words with one `ldp`; returns the first.
pub fn read_pair(addr: u64) -> Result<u64, Fault> {
    // SAFETY: as for `read32`.
    result(unsafe { probe_read_pair(addr) })
}

/// Stores `value` at `addr`.
pub fn write(addr: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: a store the caller means to make (and that may fault).
    result(unsafe { probe_write64(addr, value) }).map(|_| ())
}

/// Stores the low 32 bits of `value` at `addr`.
pub fn write32(addr: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: as for `write`.
    result(unsafe { probe_write32(addr, value) }).map(|_| ())
}

/// Stores the low byte of `value` at `addr`.
pub fn write8(addr: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: as for `write`.
    result(unsafe { probe_write8(addr, value) }).map(|_| ())
}

/// Reads an IMPLEMENTATION DEFINED system register (`S3_0_C15_C0_0`).
pub fn impdef_register() -> Result<u64, Fault> {
    // SAFETY: a system-register read that may be undefined.
    result(unsafe { probe_undefined_impdef() })
}

/// `hvc #1`: returns x0.
pub fn hvc1() -> Result<u64, Fault> {
    // SAFETY: a hypervisor call with an immediate the hyp does not serve.
    result(unsafe { probe_hvc1() })
}

/// `brk #0x123`.
pub fn brk() -> Result<u64, Fault> {
    // SAFETY: a breakpoint instruction, taken at EL1.
    result(unsafe { probe_brk() })
}

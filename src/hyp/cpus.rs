//! The EL1 kernel's CPUs: PSCI CPU_ON / CPU_OFF / CPU_SUSPEND intercepted
//! by EL2, and the secondary CPUs' path from firmware to EL1.

use super::boot::{ID_MAP_ROOT, LAYOUT};
use crate::arch::aarch64::{self, el1, image, mmu};
use crate::smccc::{Firmware, psci};
use crate::smp::{CpuTable, El1Start};
use core::sync::atomic::Ordering;

pub static CPUS: spin::Once<CpuTable> = spin::Once::new();

unsafe extern "C" {
    /// Where firmware starts a secondary CPU (`boot.S`).
    fn secondary_entry();
}

fn this_cpu(cpus: &CpuTable) -> Option<usize> {
    cpus.index_of(aarch64::mpidr())
}

/// Handles the PSCI calls that EL2 must not forward as they are; `None`
/// for every other call.
pub fn handle_psci(args: [u64; 4], firmware: Option<&dyn Firmware>) -> Option<[u64; 4]> {
    let fid = args[0] as u32 & !(1 << 30);
    let result = if fid == psci::CPU_ON & !(1 << 30) {
        cpu_on(args, firmware?)
    } else if fid == psci::CPU_OFF {
        cpu_off(firmware?)
    } else if fid == psci::CPU_SUSPEND & !(1 << 30) {
        cpu_suspend(args, firmware?)
    } else {
        return None;
    };
    Some([result, 0, 0, 0])
}

fn cpu_on(args: [u64; 4], firmware: &dyn Firmware) -> u64 {
    let (Some(cpus), Some(layout)) = (CPUS.get(), LAYOUT.get()) else {
        return psci::DENIED;
    };
    let start = El1Start {
        entry: args[2],
        context: args[3],
    };
    let index = match cpus.begin_cpu_on(args[1], start, &layout.el2_owned()) {
        Ok(index) => index,
        Err(code) => return code,
    };
    let entry = secondary_entry as *const () as u64;
    let result = firmware.call([u64::from(psci::CPU_ON), args[1], entry, index as u64])[0];
    if result != 0 {
        cpus.abort_cpu_on(index);
    }
    log::debug!(
        "CPU_ON {:#x} -> cpu{index} at {:#x}: {}",
        args[1],
        args[2],
        result as i64
    );
    result
}

fn cpu_off(firmware: &dyn Firmware) -> u64 {
    let Some(cpus) = CPUS.get() else {
        return psci::DENIED;
    };
    let Some(index) = this_cpu(cpus) else {
        return psci::DENIED;
    };
    cpus.cpu_off(index);
    // Returns only if firmware refused.
    let result = firmware.call([u64::from(psci::CPU_OFF), 0, 0, 0])[0];
    cpus.cpu_off_failed(index);
    result
}

/// Standby states return in place and are forwarded; power-down states
/// would resume at an EL1 address at EL2, so they are refused.
fn cpu_suspend(args: [u64; 4], firmware: &dyn Firmware) -> u64 {
    const STATE_TYPE_POWER_DOWN: u64 = 1 << 16;
    if args[1] & STATE_TYPE_POWER_DOWN != 0 {
        return psci::DENIED;
    }
    firmware.call([u64::from(psci::CPU_SUSPEND), args[1], 0, 0])[0]
}

/// A secondary CPU's first Rust code: EL2 set-up, then EL1 where CPU_ON
/// asked.
pub fn secondary_start(index: usize) -> ! {
    // SAFETY: the boot CPU built the identity map before starting any CPU.
    unsafe { mmu::enable_secondary(ID_MAP_ROOT.load(Ordering::Acquire)) };
    let Some(start) = CPUS.get().and_then(|c| c.arrive(index)) else {
        log::error!("cpu{index}: started without a CPU_ON; parking");
        loop {
            aarch64_cpu::asm::wfe();
        }
    };
    log::debug!("cpu{index}: entering EL1 at {:#x}", start.entry);
    // SAFETY: the entry point is EL1's (not EL2 memory, checked by
    // begin_cpu_on); this CPU's stack has nothing live on it.
    let stage2 = super::host_s2::install_on_this_cpu();
    // SAFETY: as above; the host stage-2 (if any) is installed.
    unsafe { el1::enter(start.entry, start.context, image::stack_top(index), stage2) }
}

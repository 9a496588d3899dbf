//! The EL1 kernel's CPUs: PSCI CPU_ON / CPU_OFF / CPU_SUSPEND intercepted
//! by EL2, and the path from firmware to EL1 of a CPU started or woken
//! from a power-down state.

use super::boot::LAYOUT;
use super::mem::PAGE_POOL;
use crate::arch::aarch64::{self, cache, el1};
use crate::layout::CpuStacks;
use crate::mem::PAGE_SIZE;
use crate::smccc::{Firmware, psci};
use crate::smp::boot_data::{self, BootDataCell, MmuRegisters, SecondaryBootData};
use crate::smp::{CpuSlot, CpuTable, El1Start};

pub static CPUS: spin::Once<CpuTable<'static>> = spin::Once::new();

/// What `secondary_entry` (`boot.S`) reads with the MMU off, and the EL2
/// vectors (`vectors.S`) read to find the stack slots. Written once by the
/// boot CPU, before EL1 runs (so before any CPU_ON), through
/// [`publish_boot_data`].
pub static mut SECONDARY_BOOT_DATA: SecondaryBootData = SecondaryBootData {
    mmu: MmuRegisters {
        mair: 0,
        tcr: 0,
        ttbr0: 0,
        sctlr: 0,
    },
    stacks: 0,
    cpus: 0,
    stacks_end: 0,
};

struct BootDataStatic;

impl BootDataCell for BootDataStatic {
    fn store(&mut self, data: SecondaryBootData) {
        // SAFETY: only the boot CPU writes it, before any other CPU runs
        // hyp code; secondaries only read it.
        unsafe { (&raw mut SECONDARY_BOOT_DATA).write_volatile(data) }
    }

    fn clean_to_poc(&mut self) {
        let at = &raw const SECONDARY_BOOT_DATA as u64;
        cache::clean_to_poc(at, core::mem::size_of::<SecondaryBootData>() as u64);
    }
}

/// Publishes what secondary CPUs need before their MMU is on.
pub fn publish_boot_data(mmu: MmuRegisters, stacks: &CpuStacks) {
    let data = SecondaryBootData {
        mmu,
        stacks: stacks.region.start,
        cpus: stacks.count as u64,
        stacks_end: stacks.region.end(),
    };
    boot_data::publish(&mut BootDataStatic, data);
}

/// Builds the CPU table over pool memory, one slot per CPU of the device
/// tree; returns the boot CPU's index.
pub fn init(mpidrs: &[u64], boot_mpidr: u64) -> Result<usize, &'static str> {
    let bytes = mpidrs.len() * core::mem::size_of::<CpuSlot>();
    let region = PAGE_POOL
        .lock()
        .alloc(bytes as u64, PAGE_SIZE)
        .map_err(|_| "no pool memory for the CPU table")?;
    let slots = region.start as *mut CpuSlot;
    for i in 0..mpidrs.len() {
        // SAFETY: the pool handed out `region`, identity mapped read-write,
        // page aligned (so aligned for CpuSlot), large enough for
        // `mpidrs.len()` slots, and never freed.
        unsafe { slots.add(i).write(CpuSlot::new()) };
    }
    // SAFETY: every slot was just initialised; the memory lives forever.
    let slots: &'static [CpuSlot] = unsafe { core::slice::from_raw_parts(slots, mpidrs.len()) };
    let cpus = CPUS.call_once(|| CpuTable::new(mpidrs, boot_mpidr, slots));
    cpus.index_of(boot_mpidr)
        .ok_or("the boot CPU's MPIDR is not among the device tree's CPUs")
}

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
    // An SMC32 call's arguments are W registers, whose upper halves the
    // callee ignores (SMCCC, register use of 32-bit calls from AArch64);
    // the calls are forwarded in their SMC64 form.
    let args = if args[0] as u32 & (1 << 30) == 0 {
        args.map(|a| a & u64::from(u32::MAX))
    } else {
        args
    };
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

/// CPU_SUSPEND with the hyp's own entry for firmware, whatever the power
/// state (`CpuTable::cpu_suspend`); returns here unless the CPU powered
/// down, which restarts it in [`secondary_start`].
fn cpu_suspend(args: [u64; 4], firmware: &dyn Firmware) -> u64 {
    let (Some(cpus), Some(layout)) = (CPUS.get(), LAYOUT.get()) else {
        return psci::DENIED;
    };
    let Some(index) = this_cpu(cpus) else {
        return psci::DENIED;
    };
    let resume = El1Start {
        entry: args[2],
        context: args[3],
    };
    let entry = secondary_entry as *const () as u64;
    match cpus.cpu_suspend(index, args[1], resume, &layout.el2_owned(), entry, firmware) {
        Ok(result) => {
            log::debug!(
                "cpu{index}: CPU_SUSPEND {:#x} -> firmware with the hyp's entry {entry:#x}, context {index} (EL1 resumes at {:#x}): {}",
                args[1],
                args[2],
                result as i64
            );
            result
        }
        Err(code) => {
            log::debug!(
                "cpu{index}: CPU_SUSPEND {:#x} resuming EL1 at {:#x} refused: {}",
                args[1],
                args[2],
                code as i64
            );
            code
        }
    }
}

/// A secondary CPU's first Rust code, with its MMU on and its own stack
/// (`boot.S`): EL1 where CPU_ON asked, or where CPU_SUSPEND said to
/// resume after a power-down (any CPU, the boot CPU included).
pub fn secondary_start(index: usize) -> ! {
    let Some(start) = CPUS.get().and_then(|c| c.arrive(index)) else {
        log::error!("cpu{index}: started without a CPU_ON or CPU_SUSPEND; parking");
        loop {
            aarch64_cpu::asm::wfe();
        }
    };
    log::debug!("cpu{index}: entering EL1 at {:#x}", start.entry);
    // Cannot fail: `boot.S` parks a CPU whose index has no stack.
    let Some(stack) = LAYOUT.get().and_then(|l| l.stacks.top(index)) else {
        loop {
            aarch64_cpu::asm::wfe();
        }
    };
    let Some(config) = super::CONFIG.get() else {
        loop {
            aarch64_cpu::asm::wfe();
        }
    };
    // SAFETY: the entry point is EL1's (not EL2 memory, checked by
    // begin_cpu_on and cpu_suspend); this CPU's stack has nothing live on
    // it (a CPU woken from a power-down left its frames behind).
    let stage2 = super::host_s2::install_on_this_cpu();
    // SAFETY: as above; the host stage-2 (if any) is installed.
    unsafe { el1::enter(start.entry, start.context, stack, stage2, config.gic) }
}

//! PSCI through the hyp: safe calls reach firmware, CPU_ON and CPU_SUSPEND
//! are validated by EL2 (the `smp` suite starts CPUs).
//!
//! CPU_SUSPEND: the hyp gives firmware its own entry point whatever the
//! power state (`tests/qemu.rs` reads what it forwarded from its log).
//! QEMU's PSCI refuses a power_state with bits above 16 set and treats
//! every other state as a standby: a WFI that returns. EL1 arms its
//! physical timer first (IRQs stay masked at EL1: the pending interrupt
//! only wakes the WFI), so the call comes back.

use crate::hyp_client::smc;
use crate::probe;
use crate::report::Report;
use smmu_hyp::platform::{GicVersion, Platform};
use smmu_hyp::smccc::{self, psci};
use smmu_hyp::smp::INVALID_ADDRESS;

/// The EL1 physical timer's interrupt (PPI 14).
const TIMER_INTID: u32 = 30;
// Redistributor registers (IHI 0069) in SGI_base, 64 KiB after RD_base.
const GICR_SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = GICR_SGI_BASE + 0x80;
const GICR_ISENABLER0: u64 = GICR_SGI_BASE + 0x100;
const GICR_ICENABLER0: u64 = GICR_SGI_BASE + 0x180;

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let v = smc([u64::from(psci::VERSION), 0, 0, 0])[0];
    report.check(
        "PSCI_VERSION forwarded to firmware",
        (0x1_0000..0x10_0000).contains(&v),
        format_args!("{v:#x}"),
    );
    // An affinity no CPU of the tree has (QEMU numbers CPUs from 0).
    let absent = (0..)
        .find(|m| !platform.cpus.contains(m))
        .unwrap_or(u64::MAX);
    let on = smc([u64::from(psci::CPU_ON), absent, 0x4000_0000, 0])[0];
    report.check(
        "CPU_ON of a CPU the device tree lacks is INVALID_PARAMETERS",
        on == psci::INVALID_PARAMETERS,
        format_args!("MPIDR {absent:#x}: {}", on as i64),
    );
    let unknown = smc([0xc200_0001, 0, 0, 0])[0];
    report.check(
        "unknown SMC returns NOT_SUPPORTED",
        unknown == smccc::NOT_SUPPORTED,
        format_args!("{}", unknown as i64),
    );
    cpu_suspend(platform, report);
}

fn cpu_suspend(platform: &Platform<'_>, report: &mut Report) {
    let Some(wake) = WakeTimer::new(platform) else {
        report.check(
            "a GICv3 for the wake-up timer",
            false,
            format_args!("not in the device tree"),
        );
        return;
    };
    let resume = super::smp::entry_point();
    let f = smc([
        u64::from(psci::FEATURES),
        u64::from(psci::CPU_SUSPEND),
        0,
        0,
    ])[0];
    report.check(
        "PSCI_FEATURES(CPU_SUSPEND) is firmware's answer: supported, original power_state format",
        f == 0,
        format_args!("{}", f as i64),
    );
    // Extended StateID format, StateType (bit 30) power-down.
    let r = wake.suspend(0x4000_0003, resume, 0x5ee);
    report.check(
        "CPU_SUSPEND of an extended-format power-down state returns firmware's answer in place",
        r as u64 == psci::INVALID_PARAMETERS,
        format_args!("{r}"),
    );
    // Original format, StateType (bit 16) power-down.
    let r = wake.suspend(0x0001_0000, resume, 0x5ee);
    report.check(
        "CPU_SUSPEND of an original-format power-down state is forwarded and returns after the wake-up",
        r == 0,
        format_args!("{r}"),
    );
    let r = wake.suspend(0, 0x4020_0000, 0);
    report.check(
        "CPU_SUSPEND resuming in EL2 memory is INVALID_ADDRESS",
        r as u64 == INVALID_ADDRESS,
        format_args!("{r}"),
    );
}

/// The EL1 physical timer, wired through the GICv3 to this CPU's
/// interface so that its interrupt ends a WFI.
struct WakeTimer {
    distributor: u64,
    redistributor: u64,
}

impl WakeTimer {
    /// The boot CPU's redistributor is the first of the first region
    /// (QEMU `virt`).
    fn new(platform: &Platform<'_>) -> Option<Self> {
        let gic = &platform.gic;
        (gic.version == GicVersion::V3).then_some(())?;
        Some(Self {
            distributor: gic.distributor.start,
            redistributor: gic.redistributors.first()?.start,
        })
    }

    /// CPU_SUSPEND(`power_state`, `entry`, `context`) with the timer
    /// about to fire; its result.
    fn suspend(&self, power_state: u64, entry: u64, context: u64) -> i64 {
        self.arm();
        let r = smc([u64::from(psci::CPU_SUSPEND), power_state, entry, context])[0];
        self.disarm();
        r as i64
    }

    /// The timer's PPI in group 1 and enabled, the CPU interface on, the
    /// timer firing in 1 ms.
    fn arm(&self) {
        let bit = 1 << TIMER_INTID;
        let group = self.redistributor + GICR_IGROUPR0;
        let _ = probe::write32(group, probe::read32(group).unwrap_or(0) | bit);
        let _ = probe::write32(self.redistributor + GICR_ISENABLER0, bit);
        crate::gic_cpu::interface_on(self.distributor, self.redistributor);
        let ticks = (crate::timer::frequency() / 1000).max(1);
        // SAFETY: EL1's physical timer (CNTHCTL_EL2 gives it to EL1);
        // PSTATE.I stays set, so its interrupt is never taken.
        unsafe {
            core::arch::asm!(
                "msr cntp_tval_el0, {ticks}",
                "mov {t}, #1",
                "msr cntp_ctl_el0, {t}", // ENABLE, IMASK clear
                "isb",
                t = out(reg) _,
                ticks = in(reg) ticks,
                options(nostack),
            )
        };
    }

    /// Timer off (its level-triggered interrupt is no longer pending),
    /// the CPU interface off, the PPI disabled.
    fn disarm(&self) {
        // SAFETY: as in `arm`.
        unsafe { core::arch::asm!("msr cntp_ctl_el0, xzr", "isb", options(nostack)) };
        crate::gic_cpu::interface_off();
        let _ = probe::write32(self.redistributor + GICR_ICENABLER0, 1 << TIMER_INTID);
    }
}

//! The EL1 kernel's CPUs through PSCI: CPU_ON, CPU_OFF, CPU_SUSPEND.
//!
//! Firmware starts (or wakes from a power-down state) a CPU at EL2, at
//! the entry point it is given. If the hyp passed EL1's entry point on,
//! EL1 code would run at EL2. So the hyp intercepts CPU_ON and
//! CPU_SUSPEND: it records EL1's entry point and context, asks firmware to
//! start the CPU at the hyp's own secondary entry, sets that CPU up at EL2
//! (vectors, MMU, its own stack) and only then enters EL1 where the kernel
//! asked. This module is the bookkeeping, host-tested over firmware fakes;
//! the entry code lives in the hyp. The table's slots are memory the hyp
//! allocates for the CPUs the device tree lists.
//!
//! A slot's states: OFF; CLAIMED (a CPU_ON is recording EL1's entry
//! point); ON_PENDING (firmware was asked to start it); ON; SUSPENDED (in
//! firmware's CPU_SUSPEND, or powered down by it). Only a CPU_ON moves a
//! slot out of OFF, only the CPU itself out of ON (CPU_OFF, CPU_SUSPEND)
//! and out of ON_PENDING or SUSPENDED (arriving at the hyp's entry).

pub mod boot_data;

use crate::memmap::PhysRange;
use crate::smccc::{Firmware, psci};
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// PSCI error codes beyond those in [`psci`].
pub const ALREADY_ON: u64 = -4i64 as u64;
pub const ON_PENDING: u64 = -5i64 as u64;
pub const INVALID_ADDRESS: u64 = -9i64 as u64;

/// The affinity fields of an MPIDR (Aff3, Aff2, Aff1, Aff0).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

const OFF: u8 = 0;
const CLAIMED: u8 = 1;
const ON_PENDING_STATE: u8 = 2;
const ON: u8 = 3;
const SUSPENDED: u8 = 4;

/// One CPU's power state and, while it starts or is suspended, where EL1
/// wants it.
pub struct CpuSlot {
    mpidr: AtomicU64,
    state: AtomicU8,
    entry: AtomicU64,
    context: AtomicU64,
}

impl CpuSlot {
    pub const fn new() -> Self {
        Self {
            mpidr: AtomicU64::new(u64::MAX),
            state: AtomicU8::new(OFF),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
        }
    }
}

impl Default for CpuSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// The CPUs of the machine, in device-tree order.
pub struct CpuTable<'s> {
    slots: &'s [CpuSlot],
}

/// Where an EL1 CPU starts: its entry point and x0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct El1Start {
    pub entry: u64,
    pub context: u64,
}

impl El1Start {
    /// Whether EL1 may start here: a word-aligned address outside EL2's
    /// memory (`el2_owned`).
    fn is_valid(&self, el2_owned: &[PhysRange]) -> bool {
        self.entry.is_multiple_of(4) && !el2_owned.iter().any(|r| r.contains(self.entry))
    }
}

impl<'s> CpuTable<'s> {
    /// The table for CPUs with these MPIDRs, one slot each (extra slots
    /// are not used); `boot_mpidr` is running.
    pub fn new(mpidrs: &[u64], boot_mpidr: u64, slots: &'s [CpuSlot]) -> Self {
        let slots = &slots[..mpidrs.len().min(slots.len())];
        for (slot, mpidr) in slots.iter().zip(mpidrs) {
            slot.mpidr
                .store(mpidr & MPIDR_AFFINITY_MASK, Ordering::Relaxed);
            slot.state.store(OFF, Ordering::Relaxed);
        }
        let table = Self { slots };
        if let Some(i) = table.index_of(boot_mpidr) {
            table.slots[i].state.store(ON, Ordering::Relaxed);
        }
        table
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The index of the CPU with this MPIDR affinity.
    pub fn index_of(&self, mpidr: u64) -> Option<usize> {
        let affinity = mpidr & MPIDR_AFFINITY_MASK;
        self.slots
            .iter()
            .position(|s| s.mpidr.load(Ordering::Relaxed) == affinity)
    }

    /// Validates a CPU_ON and claims the target: returns its index, to be
    /// passed to firmware as the context of the hyp's secondary entry.
    /// `el2_owned` is memory the entry point must not be in.
    pub fn begin_cpu_on(
        &self,
        target: u64,
        start: El1Start,
        el2_owned: &[PhysRange],
    ) -> Result<usize, u64> {
        if target & !MPIDR_AFFINITY_MASK != 0 {
            return Err(psci::INVALID_PARAMETERS);
        }
        let index = self.index_of(target).ok_or(psci::INVALID_PARAMETERS)?;
        if !start.is_valid(el2_owned) {
            return Err(INVALID_ADDRESS);
        }
        let slot = &self.slots[index];
        match slot
            .state
            .compare_exchange(OFF, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {}
            Err(ON | SUSPENDED) => return Err(ALREADY_ON),
            Err(_) => return Err(ON_PENDING),
        }
        slot.entry.store(start.entry, Ordering::Relaxed);
        slot.context.store(start.context, Ordering::Relaxed);
        // Publishes the entry point to the CPU that arrives (`arrive`
        // acquires this state).
        slot.state.store(ON_PENDING_STATE, Ordering::Release);
        Ok(index)
    }

    /// Firmware refused to start CPU `index`: it stays off.
    pub fn abort_cpu_on(&self, index: usize) {
        self.slots[index].state.store(OFF, Ordering::Release);
    }

    /// CPU_SUSPEND on CPU `index` (the caller), as pKVM's
    /// `psci_cpu_suspend` does it: EL1's resume point is recorded and
    /// firmware gets the hyp's own `hyp_entry` with context `index`,
    /// whatever `power_state` asks. The hyp cannot tell a power-down state
    /// from a standby one: the format of `power_state` (original or
    /// extended StateID, PSCI 1.0 section 5.4.2) is firmware's. A standby
    /// state, or a power-down state firmware abandons, returns here and
    /// EL1 goes on after its call; a power-down state restarts the CPU at
    /// `hyp_entry`, where [`arrive`](Self::arrive) hands back EL1's resume
    /// point (and context as x0), as after a CPU_ON.
    ///
    /// `Err` is the hyp's own refusal, with nothing forwarded:
    /// INVALID_ADDRESS for a resume point EL1 may not start at, DENIED for
    /// a CPU that is not on. `Ok` is firmware's answer.
    pub fn cpu_suspend(
        &self,
        index: usize,
        power_state: u64,
        resume: El1Start,
        el2_owned: &[PhysRange],
        hyp_entry: u64,
        firmware: &dyn Firmware,
    ) -> Result<u64, u64> {
        if !resume.is_valid(el2_owned) {
            return Err(INVALID_ADDRESS);
        }
        let slot = self.slots.get(index).ok_or(psci::DENIED)?;
        slot.state
            .compare_exchange(ON, SUSPENDED, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| psci::DENIED)?;
        slot.entry.store(resume.entry, Ordering::Relaxed);
        slot.context.store(resume.context, Ordering::Relaxed);
        let args = [
            u64::from(psci::CPU_SUSPEND),
            power_state,
            hyp_entry,
            index as u64,
        ];
        let result = firmware.call(args)[0];
        // Back in place: it never powered down.
        slot.state.store(ON, Ordering::Release);
        Ok(result)
    }

    /// Called on CPU `index` once it runs at EL2 (started by a CPU_ON, or
    /// woken from a power-down CPU_SUSPEND): where to enter EL1.
    pub fn arrive(&self, index: usize) -> Option<El1Start> {
        let slot = self.slots.get(index)?;
        [ON_PENDING_STATE, SUSPENDED].into_iter().find(|&from| {
            slot.state
                .compare_exchange(from, ON, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        Some(El1Start {
            entry: slot.entry.load(Ordering::Relaxed),
            context: slot.context.load(Ordering::Relaxed),
        })
    }

    /// CPU `index` is about to power down (CPU_OFF).
    pub fn cpu_off(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            slot.state.store(OFF, Ordering::Release);
        }
    }

    /// CPU_OFF returned (firmware refused it): the CPU is still on.
    pub fn cpu_off_failed(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            slot.state.store(ON, Ordering::Release);
        }
    }

    pub fn is_on(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .is_some_and(|s| s.state.load(Ordering::Acquire) == ON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    const EL2: [PhysRange; 1] = [PhysRange::new(0x4020_0000, 0x220_0000)];

    fn table<'s>(mpidrs: &[u64], slots: &'s [CpuSlot]) -> CpuTable<'s> {
        CpuTable::new(mpidrs, 0x0, slots)
    }

    fn start(entry: u64) -> El1Start {
        El1Start {
            entry,
            context: 0xc0de,
        }
    }

    #[test]
    fn cpu_on_claims_an_off_cpu_once() {
        let slots: [CpuSlot; 3] = Default::default();
        let cpus = table(&[0x0, 0x1, 0x100], &slots);
        assert_eq!(cpus.len(), 3);
        assert_eq!(cpus.begin_cpu_on(0x1, start(0x4000_1000), &EL2), Ok(1));
        assert_eq!(
            cpus.begin_cpu_on(0x1, start(0x4000_1000), &EL2),
            Err(ON_PENDING)
        );
        assert_eq!(cpus.arrive(1), Some(start(0x4000_1000)));
        assert!(cpus.is_on(1));
        assert_eq!(cpus.arrive(1), None, "a second arrival is not a start");
        assert_eq!(
            cpus.begin_cpu_on(0x1, start(0x4000_1000), &EL2),
            Err(ALREADY_ON)
        );
        assert_eq!(
            cpus.begin_cpu_on(0x0, start(0x4000_1000), &EL2),
            Err(ALREADY_ON),
            "the boot CPU is on"
        );
        assert_eq!(cpus.begin_cpu_on(0x100, start(0x4000_1000), &EL2), Ok(2));
    }

    #[test]
    fn cpu_on_rejects_bad_targets_and_entry_points() {
        let slots: [CpuSlot; 2] = Default::default();
        let cpus = table(&[0x0, 0x1], &slots);
        assert_eq!(
            cpus.begin_cpu_on(0x7, start(0x4000_0000), &EL2),
            Err(psci::INVALID_PARAMETERS)
        );
        assert_eq!(
            cpus.begin_cpu_on(1 << 60 | 1, start(0x4000_0000), &EL2),
            Err(psci::INVALID_PARAMETERS)
        );
        assert_eq!(
            cpus.begin_cpu_on(0x1, start(0x4030_0000), &EL2),
            Err(INVALID_ADDRESS),
            "EL2 memory"
        );
        assert_eq!(
            cpus.begin_cpu_on(0x1, start(0x4000_0002), &EL2),
            Err(INVALID_ADDRESS),
            "misaligned"
        );
        assert!(!cpus.is_on(1), "refusals change nothing");
        assert_eq!(cpus.begin_cpu_on(0x1, start(0x4000_0000), &EL2), Ok(1));
    }

    #[test]
    fn firmware_refusal_and_cpu_off_return_the_cpu_to_off() {
        let slots: [CpuSlot; 2] = Default::default();
        let cpus = table(&[0x0, 0x1], &slots);
        let i = cpus.begin_cpu_on(0x1, start(0x4000_0000), &EL2).unwrap();
        cpus.abort_cpu_on(i);
        assert_eq!(cpus.arrive(i), None);
        let i = cpus.begin_cpu_on(0x1, start(0x4000_0000), &EL2).unwrap();
        assert!(cpus.arrive(i).is_some());
        cpus.cpu_off(i);
        assert!(!cpus.is_on(i));
        assert_eq!(cpus.begin_cpu_on(0x1, start(0x4000_0000), &EL2), Ok(1));
    }

    /// Where the hyp asks firmware to restart a CPU.
    const HYP_ENTRY: u64 = 0x4020_0100;

    /// What a power-down CPU_SUSPEND does instead of returning: the CPU
    /// restarts at `entry` with x0 = `context`.
    #[derive(Debug, PartialEq)]
    struct PoweredDown {
        entry: u64,
        context: u64,
    }

    /// PSCI firmware's CPU_SUSPEND, reading power_state in the original
    /// format (StateType at bit 16) or the extended StateID one (bit 30,
    /// PSCI 1.0 section 5.4.2): a standby state returns 0 in place, a
    /// power-down state never returns (an unwind carrying
    /// [`PoweredDown`], without the panic hook's noise).
    struct SuspendFirmware {
        extended: bool,
        calls: RefCell<std::vec::Vec<[u64; 4]>>,
    }

    impl SuspendFirmware {
        fn new(extended: bool) -> Self {
            Self {
                extended,
                calls: RefCell::new(std::vec::Vec::new()),
            }
        }
    }

    impl Firmware for SuspendFirmware {
        fn call(&self, args: [u64; 4]) -> [u64; 4] {
            self.calls.borrow_mut().push(args);
            let state_type = if self.extended { 1 << 30 } else { 1 << 16 };
            if args[1] & state_type == 0 {
                return [0; 4];
            }
            std::panic::resume_unwind(std::boxed::Box::new(PoweredDown {
                entry: args[2],
                context: args[3],
            }))
        }
    }

    /// CPUs 0 (booted) and 1 (started with CPU_ON): the table.
    fn two_running<'s>(slots: &'s [CpuSlot]) -> CpuTable<'s> {
        let cpus = table(&[0x0, 0x1], slots);
        cpus.begin_cpu_on(0x1, start(0x4000_1000), &EL2).unwrap();
        cpus.arrive(1).unwrap();
        cpus
    }

    #[test]
    fn a_power_down_suspend_in_either_format_restarts_at_the_hyps_entry_and_resumes_el1_where_it_asked()
     {
        for (extended, power_state) in [(false, 0x0001_0000), (true, 0x4000_0003)] {
            let slots: [CpuSlot; 2] = Default::default();
            let cpus = two_running(&slots);
            let fw = SuspendFirmware::new(extended);
            let resume = El1Start {
                entry: 0x4008_0000,
                context: 0xfeed,
            };
            let call = std::panic::AssertUnwindSafe(|| {
                cpus.cpu_suspend(1, power_state, resume, &EL2, HYP_ENTRY, &fw)
            });
            let woke = std::panic::catch_unwind(call).expect_err("a power-down never returns");
            assert_eq!(
                woke.downcast_ref::<PoweredDown>(),
                Some(&PoweredDown {
                    entry: HYP_ENTRY,
                    context: 1
                }),
                "{power_state:#x}: firmware restarts the CPU at the hyp's entry, never at EL1's"
            );
            assert_eq!(
                fw.calls.borrow().as_slice(),
                [[u64::from(psci::CPU_SUSPEND), power_state, HYP_ENTRY, 1]]
            );
            assert!(!cpus.is_on(1), "suspended");
            assert_eq!(
                cpus.begin_cpu_on(0x1, start(0x4000_1000), &EL2),
                Err(ALREADY_ON),
                "a suspended CPU is on to PSCI"
            );
            assert_eq!(cpus.arrive(1), Some(resume), "EL1 resumes with its context");
            assert!(cpus.is_on(1));
            assert_eq!(cpus.arrive(1), None, "once");
        }
    }

    #[test]
    fn a_standby_suspend_returns_in_place_with_firmwares_answer_and_nothing_to_arrive() {
        // 0x0001_0000 is a power-down state in the original format and a
        // standby one (StateID 0x10000) in the extended format.
        for (extended, power_state) in [(false, 0x0), (true, 0x0001_0000), (true, 0x3)] {
            let slots: [CpuSlot; 2] = Default::default();
            let cpus = two_running(&slots);
            let fw = SuspendFirmware::new(extended);
            // Linux passes entry 0 for a state it knows is a standby one.
            let resume = El1Start {
                entry: 0,
                context: 0,
            };
            assert_eq!(
                cpus.cpu_suspend(1, power_state, resume, &EL2, HYP_ENTRY, &fw),
                Ok(0)
            );
            assert_eq!(
                fw.calls.borrow().as_slice(),
                [[u64::from(psci::CPU_SUSPEND), power_state, HYP_ENTRY, 1]],
                "the hyp's entry even for a standby state"
            );
            assert!(cpus.is_on(1));
            assert_eq!(cpus.arrive(1), None);
        }
    }

    #[test]
    fn a_suspend_resuming_in_el2_memory_or_of_a_cpu_not_on_is_refused_and_nothing_is_forwarded() {
        let slots: [CpuSlot; 2] = Default::default();
        let cpus = table(&[0x0, 0x1], &slots);
        let fw = SuspendFirmware::new(false);
        for entry in [0x4030_0000, 0x4008_0002] {
            assert_eq!(
                cpus.cpu_suspend(0, 0x0001_0000, start(entry), &EL2, HYP_ENTRY, &fw),
                Err(INVALID_ADDRESS),
                "{entry:#x}"
            );
        }
        assert_eq!(
            cpus.cpu_suspend(1, 0, start(0x4008_0000), &EL2, HYP_ENTRY, &fw),
            Err(psci::DENIED),
            "cpu1 is off"
        );
        assert_eq!(
            cpus.cpu_suspend(7, 0, start(0x4008_0000), &EL2, HYP_ENTRY, &fw),
            Err(psci::DENIED),
            "no such CPU"
        );
        assert!(fw.calls.borrow().is_empty());
        assert!(cpus.is_on(0), "refusals change nothing");
        assert_eq!(cpus.arrive(0), None);
    }

    #[test]
    fn the_table_is_as_large_as_the_device_tree_says_with_hundreds_of_cpus() {
        // 256 CPUs over four Aff2 clusters, as a server lists them.
        let mpidrs: std::vec::Vec<u64> = (0..256u64).map(|i| (i / 64) << 16 | (i % 64)).collect();
        let slots: std::vec::Vec<CpuSlot> = (0..256).map(|_| CpuSlot::new()).collect();
        let cpus = CpuTable::new(&mpidrs, 0x3_0005, &slots);
        assert_eq!(cpus.len(), 256);
        assert_eq!(cpus.index_of(0x3_0005), Some(197));
        assert!(cpus.is_on(197), "the boot CPU");
        assert_eq!(
            cpus.begin_cpu_on(0x3_003f, start(0x4000_0000), &EL2),
            Ok(255)
        );
        assert_eq!(
            cpus.begin_cpu_on(0x4_0000, start(0x4000_0000), &EL2),
            Err(psci::INVALID_PARAMETERS)
        );
        assert_eq!(
            core::mem::size_of::<CpuSlot>(),
            32,
            "per-CPU state costs 32 bytes of pool memory"
        );
    }
}

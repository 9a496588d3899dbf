//! Bringing up secondary CPUs for the EL1 kernel (PSCI CPU_ON/CPU_OFF).
//!
//! Firmware starts a CPU at EL2, at the entry point it is given. If the
//! hyp passed EL1's entry point on, EL1 code would run at EL2. So the hyp
//! intercepts CPU_ON: it records EL1's entry point and context, asks
//! firmware to start the CPU at the hyp's own secondary entry, sets that CPU
//! up at EL2 (vectors, MMU, its own stack) and only then enters EL1 where
//! the kernel asked. This module is the bookkeeping, host-tested; the
//! firmware call and the entry code live in the hyp. The table's slots are
//! memory the hyp allocates for the CPUs the device tree lists.

pub mod boot_data;

use crate::memmap::PhysRange;
use crate::smccc::psci;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// PSCI error codes beyond those in [`psci`].
pub const ALREADY_ON: u64 = -4i64 as u64;
pub const ON_PENDING: u64 = -5i64 as u64;
pub const INVALID_ADDRESS: u64 = -9i64 as u64;

/// The affinity fields of an MPIDR (Aff3, Aff2, Aff1, Aff0).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

const OFF: u8 = 0;
const ON_PENDING_STATE: u8 = 1;
const ON: u8 = 2;

/// One CPU's power state and, while it starts, where EL1 wants it.
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
        if !start.entry.is_multiple_of(4) || el2_owned.iter().any(|r| r.contains(start.entry)) {
            return Err(INVALID_ADDRESS);
        }
        let slot = &self.slots[index];
        match slot.state.compare_exchange(
            OFF,
            ON_PENDING_STATE,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => {}
            Err(ON) => return Err(ALREADY_ON),
            Err(_) => return Err(ON_PENDING),
        }
        slot.entry.store(start.entry, Ordering::Relaxed);
        slot.context.store(start.context, Ordering::Relaxed);
        Ok(index)
    }

    /// Firmware refused to start CPU `index`: it stays off.
    pub fn abort_cpu_on(&self, index: usize) {
        self.slots[index].state.store(OFF, Ordering::Release);
    }

    /// Called on CPU `index` once it runs at EL2: where to enter EL1.
    pub fn arrive(&self, index: usize) -> Option<El1Start> {
        let slot = self.slots.get(index)?;
        slot.state
            .compare_exchange(ON_PENDING_STATE, ON, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
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

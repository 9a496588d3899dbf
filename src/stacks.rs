//! EL2's stacks as slots: each an unmapped guard page below a stack. Two
//! runs of slots exist: the boot stack in the image (`linker/hyp.ld`, one
//! slot) and one slot per CPU at the end of the page pool
//! (`layout::CpuStacks`). Which slot, and which part of it, an address falls
//! in tells a stack overflow from any other fault (the EL2 crash report;
//! `vectors.S` makes the same check in registers).

use crate::memmap::PhysRange;

/// Where the stack slots are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSlots {
    /// The first slot's first byte (its guard page).
    pub start: u64,
    /// Bytes per slot: guard page and stack.
    pub slot_size: u64,
    /// Bytes of guard page at the bottom of each slot.
    pub guard_size: u64,
    /// Slots (one per CPU in the pool).
    pub count: usize,
}

impl StackSlots {
    /// The slot holding `addr`.
    pub fn slot_of(&self, addr: u64) -> Option<usize> {
        let offset = addr.checked_sub(self.start)?;
        let slot = usize::try_from(offset / self.slot_size).ok()?;
        (slot < self.count).then_some(slot)
    }

    /// The guard page of slot `cpu`.
    pub fn guard(&self, cpu: usize) -> PhysRange {
        PhysRange::new(self.start + cpu as u64 * self.slot_size, self.guard_size)
    }

    /// Whether an exception taken from EL2 with stack pointer `sp`, and
    /// (for a data abort) the faulting address `far`, is a stack overflow,
    /// and on which CPU's stack: the byte below SP (where a push writes
    /// first) is in a guard page, or `far` is in the guard page of the slot
    /// SP is in (a push that faulted leaves SP above the guard).
    pub fn overflow(&self, sp: u64, far: Option<u64>) -> Option<usize> {
        let below = sp.wrapping_sub(1);
        let cpu = self.slot_of(below)?;
        let guard = self.guard(cpu);
        (guard.contains(below) || far.is_some_and(|a| guard.contains(a))).then_some(cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOTS: StackSlots = StackSlots {
        start: 0x4030_0000,
        slot_size: 0x11000,
        guard_size: 0x1000,
        count: 8,
    };

    fn top(cpu: u64) -> u64 {
        SLOTS.start + (cpu + 1) * SLOTS.slot_size
    }

    #[test]
    fn an_sp_inside_or_at_the_top_of_a_guard_page_is_an_overflow_of_that_cpu() {
        let guard1 = SLOTS.guard(1);
        assert_eq!(SLOTS.overflow(guard1.start + 0x800, None), Some(1));
        // The stack is full: the next push writes the guard page.
        assert_eq!(SLOTS.overflow(guard1.end(), None), Some(1));
        // Its lowest byte still below SP.
        assert_eq!(SLOTS.overflow(guard1.start + 1, None), Some(1));
    }

    #[test]
    fn a_push_that_faulted_in_the_guard_page_is_an_overflow_though_sp_is_above() {
        let guard3 = SLOTS.guard(3);
        let sp = guard3.end() + 8;
        assert_eq!(SLOTS.overflow(sp, Some(guard3.end() - 8)), Some(3));
        assert_eq!(SLOTS.overflow(sp, None), None);
    }

    #[test]
    fn ordinary_faults_and_empty_stacks_are_not_overflows() {
        // An empty stack: SP at the top of its slot, which is where the next
        // slot's guard page begins.
        for cpu in 0..8 {
            assert_eq!(SLOTS.overflow(top(cpu), None), None, "cpu{cpu}");
        }
        let sp = top(2) - 0x100;
        assert_eq!(SLOTS.overflow(sp, Some(0x10)), None, "a null pointer");
        // A wild access to another CPU's guard page is not this stack's.
        assert_eq!(SLOTS.overflow(sp, Some(SLOTS.guard(5).start)), None);
        // SP outside every slot.
        assert_eq!(SLOTS.overflow(SLOTS.start, None), None);
        assert_eq!(SLOTS.overflow(top(7) + 0x10, None), None);
        assert_eq!(SLOTS.overflow(0, None), None);
    }
}

//! Where the linker put the hyp image (see `linker/hyp.ld`).

use super::{MAX_CPUS, STACK_GUARD_SIZE, STACK_SLOT_SIZE};
use crate::memmap::PhysRange;
use crate::stacks::StackSlots;

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __stacks_start: u8;
    static __stacks_end: u8;
}

fn addr(symbol: *const u8) -> u64 {
    symbol as u64
}

/// The linker-defined section boundaries.
pub struct ImageLayout {
    /// The whole image: text to the end of the stacks.
    pub whole: PhysRange,
    pub text: PhysRange,
    pub rodata: PhysRange,
    /// Data and BSS (read-write).
    pub data: PhysRange,
    /// Each CPU's stack, without its guard page.
    pub stacks: [PhysRange; MAX_CPUS],
}

pub fn layout() -> ImageLayout {
    let start = addr(&raw const __image_start);
    let text_end = addr(&raw const __text_end);
    let rodata_end = addr(&raw const __rodata_end);
    let stacks_start = addr(&raw const __stacks_start);
    let stacks_end = addr(&raw const __stacks_end);
    let end = addr(&raw const __image_end);
    assert_eq!(
        stacks_end - stacks_start,
        (MAX_CPUS * STACK_SLOT_SIZE) as u64,
        "linker/hyp.ld stack section disagrees with arch constants"
    );
    let slot = |cpu: usize| {
        let base = stacks_start + (cpu * STACK_SLOT_SIZE + STACK_GUARD_SIZE) as u64;
        PhysRange::new(base, (STACK_SLOT_SIZE - STACK_GUARD_SIZE) as u64)
    };
    ImageLayout {
        whole: PhysRange::new(start, end - start),
        text: PhysRange::new(start, text_end - start),
        rodata: PhysRange::new(text_end, rodata_end - text_end),
        data: PhysRange::new(rodata_end, stacks_start - rodata_end),
        stacks: core::array::from_fn(slot),
    }
}

/// The top of `cpu`'s stack.
pub fn stack_top(cpu: usize) -> u64 {
    addr(&raw const __stacks_start) + ((cpu + 1) * STACK_SLOT_SIZE) as u64
}

/// The CPUs' stack slots.
pub fn stack_slots() -> StackSlots {
    StackSlots {
        start: addr(&raw const __stacks_start),
        slot_size: STACK_SLOT_SIZE as u64,
        guard_size: STACK_GUARD_SIZE as u64,
        count: MAX_CPUS,
    }
}

//! Where the linker put the hyp image (see `linker/hyp.ld`).

use crate::layout::{BOOT_STACK_SIZE, STACK_GUARD_SIZE};
use crate::memmap::PhysRange;
use crate::stacks::StackSlots;

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __boot_stack_start: u8;
    static __boot_stack_end: u8;
}

fn addr(symbol: *const u8) -> u64 {
    symbol as u64
}

/// The linker-defined section boundaries.
pub struct ImageLayout {
    /// The whole image: text to the end of the boot stack.
    pub whole: PhysRange,
    pub text: PhysRange,
    pub rodata: PhysRange,
    /// Data and BSS (read-write).
    pub data: PhysRange,
    /// The boot CPU's stack during boot, without its guard page.
    pub boot_stack: PhysRange,
}

pub fn layout() -> ImageLayout {
    let start = addr(&raw const __image_start);
    let text_end = addr(&raw const __text_end);
    let rodata_end = addr(&raw const __rodata_end);
    let stack_start = addr(&raw const __boot_stack_start);
    let stack_end = addr(&raw const __boot_stack_end);
    let end = addr(&raw const __image_end);
    assert_eq!(
        stack_end - stack_start,
        STACK_GUARD_SIZE + BOOT_STACK_SIZE,
        "linker/hyp.ld boot stack disagrees with layout::BOOT_STACK_SIZE"
    );
    ImageLayout {
        whole: PhysRange::new(start, end - start),
        text: PhysRange::new(start, text_end - start),
        rodata: PhysRange::new(text_end, rodata_end - text_end),
        data: PhysRange::new(rodata_end, stack_start - rodata_end),
        boot_stack: PhysRange::new(stack_start + STACK_GUARD_SIZE, BOOT_STACK_SIZE),
    }
}

/// The boot stack's slot: its guard page, then the stack (one slot).
pub fn boot_stack_slot() -> StackSlots {
    StackSlots {
        start: addr(&raw const __boot_stack_start),
        slot_size: STACK_GUARD_SIZE + BOOT_STACK_SIZE,
        guard_size: STACK_GUARD_SIZE,
        count: 1,
    }
}

//! EL1-owned RAM for DMA: one 4 MiB, 2 MiB-aligned static in the test
//! kernel's BSS. The hyp loads the kernel at a 2 MiB-aligned base, so the
//! arena's physical address keeps that alignment and its first 2 MiB can
//! be mapped as one block.
//!
//! EL1 runs with its MMU off: every access here is to Device memory, so
//! only aligned, volatile accesses (devices write this memory behind the
//! compiler's back).

use core::cell::UnsafeCell;

/// Bytes in the arena.
pub const SIZE: u64 = 4 << 20;
/// The 2 MiB-aligned half used for block mappings.
pub const BLOCK: u64 = 0;
/// The other half: 512 pages, `page(i)` for `i < 512`.
pub const PAGES_OFFSET: u64 = 2 << 20;
pub use smmu_hyp::mem::PAGE_SIZE as PAGE;

#[repr(C, align(0x20_0000))]
struct Arena(UnsafeCell<[u8; SIZE as usize]>);

// SAFETY: the arena is plain memory shared with devices; every access goes
// through the volatile helpers below, and CPUs only ever touch the parts
// their suite gives them.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; SIZE as usize]));

/// Physical address of the arena byte at `offset` (EL1 runs with its MMU
/// off, so addresses are physical).
pub fn pa(offset: u64) -> u64 {
    ARENA.0.get() as u64 + offset
}

/// Offset of page `i` of the page half.
pub const fn page(i: u64) -> u64 {
    PAGES_OFFSET + i * PAGE
}

fn ptr(offset: u64) -> *mut u8 {
    assert!(offset < SIZE, "arena offset {offset:#x}");
    pa(offset) as *mut u8
}

pub fn read(offset: u64) -> u8 {
    // SAFETY: inside the arena (checked), a byte access is always aligned.
    unsafe { core::ptr::read_volatile(ptr(offset)) }
}

pub fn write(offset: u64, value: u8) {
    // SAFETY: as for `read`.
    unsafe { core::ptr::write_volatile(ptr(offset), value) }
}

/// Reads the 64-bit word at `offset` (8-byte aligned).
pub fn read_u64(offset: u64) -> u64 {
    assert!(
        offset.is_multiple_of(8) && offset + 8 <= SIZE,
        "arena word {offset:#x}"
    );
    // SAFETY: inside the arena and aligned (checked).
    unsafe { core::ptr::read_volatile(pa(offset) as *const u64) }
}

/// Writes the 64-bit word at `offset` (8-byte aligned).
pub fn write_u64(offset: u64, value: u64) {
    assert!(
        offset.is_multiple_of(8) && offset + 8 <= SIZE,
        "arena word {offset:#x}"
    );
    // SAFETY: as for `read_u64`.
    unsafe { core::ptr::write_volatile(pa(offset) as *mut u64, value) }
}

/// Sets `len` bytes from `offset` to `value`.
pub fn fill(offset: u64, len: u64, value: u8) {
    assert!(offset + len <= SIZE);
    for i in 0..len {
        write(offset + i, value);
    }
}

/// Writes `bytes` at `offset`.
pub fn put(offset: u64, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        write(offset + i as u64, *b);
    }
}

/// Cleans and invalidates the lines holding `len` bytes at `offset` to
/// the point of coherency. Needed before EL2 reads what EL1 wrote here:
/// EL1's writes (MMU off) go to memory, EL2 reads through a cacheable
/// mapping, which could hold a stale line.
pub fn clean_to_poc(offset: u64, len: u64) {
    assert!(offset + len <= SIZE);
    let ctr: u64;
    // SAFETY: reads CTR_EL0, no side effect.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut at = pa(offset) & !(line - 1);
    while at < pa(offset + len) {
        // SAFETY: a cache maintenance by address inside the arena (EL1's
        // own memory): it changes no memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) at, options(nostack)) };
        at += line;
    }
    // SAFETY: a barrier, no memory effect of its own.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Whether the `len` bytes at `offset` all hold `value`.
pub fn all_are(offset: u64, len: u64, value: u8) -> bool {
    (0..len).all(|i| read(offset + i) == value)
}

/// Whether the bytes at `offset` are `bytes`.
pub fn holds(offset: u64, bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| read(offset + i as u64) == *b)
}

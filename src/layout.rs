//! Where things go in RAM at boot: the hyp image, the hyp's page pool, the
//! CPUs' EL2 stacks, and the EL1 kernel and its device tree.
//!
//! EL2 owns its image and a pool carved out of RAM right after it: one EL2
//! stack per CPU the device tree lists at the pool's end (each above an
//! unmapped guard page), and pages for everything else (page tables,
//! stream tables, queues, per-CPU state). The boot CPU boots on a stack in
//! the image. Everything else in RAM belongs to the EL1 kernel. The payload is placed
//! the way a boot loader places an arm64 Image: at `text_offset` above the
//! lowest 2 MiB-aligned base where it fits without touching the hyp, the
//! device tree, the boot modules (the kernel it is copied from, the ramdisk,
//! which stays where the loader put it) or reserved memory.

use crate::image::ImageHeader;
use crate::mem::PAGE_SIZE;
use crate::memmap::{PhysRange, RangeSet, TooManyRanges};
use crate::platform::Platform;
use crate::stacks::StackSlots;
use core::fmt;

pub const SZ_2M: u64 = 2 << 20;
/// One CPU's EL2 stack.
pub const STACK_SIZE: u64 = 0x1_0000;
/// The unmapped page below each stack: an overflow faults instead of
/// corrupting what lies below.
pub const STACK_GUARD_SIZE: u64 = PAGE_SIZE;
/// A stack with its guard page; CPU `i`'s slot starts at `i` slots above
/// the first.
pub const STACK_SLOT_SIZE: u64 = STACK_GUARD_SIZE + STACK_SIZE;
/// The boot CPU's stack while it boots, in the image (`linker/hyp.ld`):
/// larger than a trap's, because probing moves the SMMU driver and the
/// parsed device tree (several KiB each) through several frames by value
/// (64 KiB overflowed with 512 CPUs of capacity).
pub const BOOT_STACK_SIZE: u64 = 0x2_0000;
/// Capacity of the free-range set: RAM regions split by the holes punched
/// into them.
const MAX_FREE: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LayoutError {
    /// The image is not inside RAM.
    ImageOutsideRam,
    /// No free, 2 MiB-aligned range of the requested pool size.
    NoRoomForPool,
    /// The memory map has more holes than the fixed capacity.
    TooFragmented,
    /// The pool cannot hold a stack for every CPU and still have pages.
    NoRoomForStacks { cpus: usize, pool: u64 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImageOutsideRam => write!(f, "the hyp image is not in RAM"),
            Self::NoRoomForPool => write!(f, "no free RAM for the hyp page pool"),
            Self::TooFragmented => write!(f, "memory map too fragmented"),
            Self::NoRoomForStacks { cpus, pool } => write!(
                f,
                "the hyp's {} MiB pool cannot hold EL2 stacks for {cpus} CPUs \
                 ({} KiB each) and pages: raise hyp_mem=<MiB>",
                pool >> 20,
                STACK_SLOT_SIZE >> 10
            ),
        }
    }
}

/// The CPUs' EL2 stacks: one slot per CPU, `[guard][stack]`, contiguous.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuStacks {
    /// All the slots, guards included.
    pub region: PhysRange,
    pub count: usize,
}

impl CpuStacks {
    /// CPU `cpu`'s stack, without its guard page.
    pub fn stack(&self, cpu: usize) -> Option<PhysRange> {
        (cpu < self.count).then(|| {
            let slot = self.region.start + cpu as u64 * STACK_SLOT_SIZE;
            PhysRange::new(slot + STACK_GUARD_SIZE, STACK_SIZE)
        })
    }

    /// Every CPU's stack, without the guard pages.
    pub fn stacks(&self) -> impl Iterator<Item = PhysRange> + '_ {
        (0..self.count).filter_map(|cpu| self.stack(cpu))
    }

    /// The initial stack pointer of CPU `cpu` (stacks grow down).
    pub fn top(&self, cpu: usize) -> Option<u64> {
        self.stack(cpu).map(|s| s.end())
    }

    /// The slots, for telling a stack overflow (slot `i` is CPU `i`'s).
    pub fn slots(&self) -> StackSlots {
        StackSlots {
            start: self.region.start,
            slot_size: STACK_SLOT_SIZE,
            guard_size: STACK_GUARD_SIZE,
            count: self.count,
        }
    }
}

/// The RAM the EL2 identity map maps as normal memory: all of it but the
/// device tree's `no-map` reserved memory ([`Platform::no_map`], grown to
/// whole pages) and `holes`. Firmware may firewall `no-map` memory (a
/// TEE's): a cacheable mapping alone lets the CPU speculate into it and
/// an error response could end the machine, which is why Linux keeps it
/// out of its linear map too. The ownership record never counts it as
/// EL1's RAM either, so the hyp never needs to reach it.
pub fn el2_ram<const N: usize>(
    platform: &Platform<'_>,
    holes: &[PhysRange],
) -> Result<RangeSet<N>, TooManyRanges> {
    let mut ram = RangeSet::new();
    for r in platform.ram.iter() {
        ram.add(*r)?;
    }
    let no_map = platform.no_map.iter().map(|r| r.align_out(PAGE_SIZE));
    for hole in no_map.chain(holes.iter().copied()) {
        ram.remove(hole)?;
    }
    Ok(ram)
}

/// The boot memory layout.
#[derive(Clone, Debug)]
pub struct BootLayout {
    /// The hyp image, its boot stack included.
    pub image: PhysRange,
    /// EL2's pool: the CPUs' stacks at its end, pages before them.
    pub pool: PhysRange,
    /// One EL2 stack per CPU of the device tree, at the end of the pool.
    pub stacks: CpuStacks,
    /// RAM that is neither EL2's nor holds the DTB, a boot module or
    /// reserved memory: where the EL1 kernel and its tree may be placed.
    pub el1_free: RangeSet<MAX_FREE>,
}

impl BootLayout {
    /// `modules`: the memory of the boot modules (`crate::multiboot`).
    pub fn new(
        platform: &Platform<'_>,
        image: PhysRange,
        pool_size: u64,
        modules: impl Iterator<Item = PhysRange>,
    ) -> Result<Self, LayoutError> {
        if !platform.ram.contains_range(&image) {
            return Err(LayoutError::ImageOutsideRam);
        }
        let mut free: RangeSet<MAX_FREE> = RangeSet::new();
        for r in platform.ram.iter() {
            free.add(*r).map_err(|_| LayoutError::TooFragmented)?;
        }
        let holes = platform
            .reserved
            .iter()
            .copied()
            .chain([platform.dtb, image])
            .chain(modules);
        for hole in holes {
            free.remove(hole.align_out(PAGE_SIZE))
                .map_err(|_| LayoutError::TooFragmented)?;
        }
        let pool = free
            .find_free(pool_size, SZ_2M, image.end())
            .or_else(|| free.find_free(pool_size, SZ_2M, 0))
            .ok_or(LayoutError::NoRoomForPool)?;
        free.remove(pool).map_err(|_| LayoutError::TooFragmented)?;
        let cpus = platform.cpus.len();
        let no_room = LayoutError::NoRoomForStacks {
            cpus,
            pool: pool.size,
        };
        let stacks_size = (cpus as u64)
            .checked_mul(STACK_SLOT_SIZE)
            .filter(|&s| s < pool.size)
            .ok_or(no_room)?;
        let stacks = CpuStacks {
            region: PhysRange::new(pool.end() - stacks_size, stacks_size),
            count: cpus,
        };
        Ok(Self {
            image,
            pool,
            stacks,
            el1_free: free,
        })
    }

    /// The pool's pages for the page allocator: the pool without the stacks.
    pub fn pages(&self) -> PhysRange {
        PhysRange::new(self.pool.start, self.pool.size - self.stacks.region.size)
    }

    /// The memory EL2 keeps for itself; never handed to EL1 or to a device.
    pub fn el2_owned(&self) -> [PhysRange; 2] {
        [self.image, self.pool]
    }

    /// Where an EL1 Image with this header goes: the range it occupies once
    /// running (`image_size` bytes from `base + text_offset`).
    pub fn place_payload(&self, header: &ImageHeader) -> Option<PhysRange> {
        let text_offset = header.text_offset % SZ_2M;
        self.el1_free.iter().find_map(|r| {
            let mut base = crate::memmap::align_up(r.start, SZ_2M)?;
            // The lowest base whose image start is inside this range.
            if base.checked_sub(SZ_2M)?.checked_add(text_offset)? >= r.start {
                base -= SZ_2M;
            }
            let dest = PhysRange::new(base.checked_add(text_offset)?, header.image_size);
            r.contains_range(&dest).then_some(dest)
        })
    }

    /// Where the EL1 kernel's device tree of `size` bytes goes, with the
    /// kernel at `kernel`: Documentation/arch/arm64/booting.rst wants it
    /// 8-byte aligned, at most 2 MiB, and in no 2 MiB region the kernel
    /// image touches. It gets a free 2 MiB-aligned region of its own.
    pub fn place_el1_tree(&self, size: u64, kernel: PhysRange) -> Option<PhysRange> {
        if size == 0 || size > SZ_2M {
            return None;
        }
        let mut free = self.el1_free.clone();
        free.remove(kernel.align_out(SZ_2M)).ok()?;
        let region = free.find_free(SZ_2M, SZ_2M, 0)?;
        Some(PhysRange::new(region.start, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRT_1G: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-1g.dtb");

    fn layout(modules: Option<PhysRange>) -> BootLayout {
        let p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        BootLayout::new(
            &p,
            PhysRange::new(0x4020_0000, 0x13_4000),
            32 << 20,
            modules.into_iter(),
        )
        .unwrap()
    }

    #[test]
    fn pool_follows_the_image_on_a_2m_boundary() {
        let l = layout(None);
        assert_eq!(l.pool, PhysRange::new(0x4040_0000, 32 << 20));
        for owned in l.el2_owned() {
            assert!(!l.el1_free.overlaps(&owned));
        }
        assert!(
            !l.el1_free.overlaps(&PhysRange::new(0x4800_0000, 1)),
            "DTB excluded"
        );
    }

    #[test]
    fn payload_goes_to_the_lowest_free_2m_base_plus_text_offset() {
        let l = layout(Some(PhysRange::new(0x4a00_0000, 0x10_0000)));
        let header = ImageHeader {
            text_offset: 0,
            image_size: 0x20_0000,
            flags: 2,
        };
        // The 2 MiB below the hyp (QEMU's boot stub, dead once we run) fit it.
        assert_eq!(
            l.place_payload(&header),
            Some(PhysRange::new(0x4000_0000, 0x20_0000))
        );
        let bigger = ImageHeader {
            text_offset: 0,
            image_size: 0x20_1000,
            flags: 2,
        };
        assert_eq!(
            l.place_payload(&bigger),
            Some(PhysRange::new(0x4240_0000, 0x20_1000))
        );
        let linux = ImageHeader {
            text_offset: 0x8_0000,
            image_size: 0x100_0000,
            flags: 0xa,
        };
        assert_eq!(
            l.place_payload(&linux),
            Some(PhysRange::new(0x4248_0000, 0x100_0000))
        );
        let huge = ImageHeader {
            text_offset: 0,
            image_size: 2 << 30,
            flags: 0,
        };
        assert_eq!(l.place_payload(&huge), None);
    }

    #[test]
    fn each_cpu_gets_a_stack_above_a_guard_page_at_the_end_of_the_pool() {
        let mut p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        p.cpus = heapless::Vec::from_slice(&[0, 1, 2]).unwrap();
        let l = BootLayout::new(
            &p,
            PhysRange::new(0x4020_0000, 0x13_4000),
            32 << 20,
            core::iter::empty(),
        )
        .unwrap();
        let end = l.pool.end();
        assert_eq!(l.stacks.count, 3);
        assert_eq!(
            l.stacks.region,
            PhysRange::new(end - 3 * 0x11000, 3 * 0x11000)
        );
        assert_eq!(l.stacks.top(2), Some(end));
        assert_eq!(
            l.stacks.stack(0),
            Some(PhysRange::new(end - 3 * 0x11000 + 0x1000, 0x1_0000))
        );
        assert_eq!(l.stacks.stack(3), None);
        // The slots the crash report and `vectors.S` use are these stacks.
        let slots = l.stacks.slots();
        for cpu in 0..3 {
            let stack = l.stacks.stack(cpu).unwrap();
            assert_eq!(slots.guard(cpu).end(), stack.start, "cpu{cpu}");
            assert_eq!(slots.overflow(stack.start, None), Some(cpu));
            assert_eq!(slots.overflow(stack.end(), None), None);
        }
        let stacks: std::vec::Vec<_> = l.stacks.stacks().collect();
        for pair in stacks.windows(2) {
            assert_eq!(
                pair[1].start - pair[0].end(),
                STACK_GUARD_SIZE,
                "a guard between"
            );
        }
        assert_eq!(
            l.pages(),
            PhysRange::new(l.pool.start, (32 << 20) - 3 * 0x11000)
        );
        assert!(
            l.el2_owned()
                .iter()
                .any(|r| r.contains_range(&l.stacks.region))
        );
    }

    #[test]
    fn a_pool_too_small_for_every_cpus_stack_is_a_named_failure() {
        let mut p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        p.cpus = (0..512).collect();
        let e = BootLayout::new(
            &p,
            PhysRange::new(0x4020_0000, 0x13_4000),
            32 << 20,
            core::iter::empty(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            LayoutError::NoRoomForStacks {
                cpus: 512,
                pool: 32 << 20
            }
        );
        assert_eq!(
            e.to_string(),
            "the hyp's 32 MiB pool cannot hold EL2 stacks for 512 CPUs (68 KiB each) and pages: raise hyp_mem=<MiB>"
        );
        assert!(
            BootLayout::new(
                &p,
                PhysRange::new(0x4020_0000, 0x13_4000),
                64 << 20,
                core::iter::empty()
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_an_image_outside_ram_and_an_impossible_pool() {
        let p = Platform::parse(VIRT_1G, 0x4800_0000).unwrap();
        let outside = BootLayout::new(
            &p,
            PhysRange::new(0x1000, 0x1000),
            1 << 20,
            None.into_iter(),
        );
        assert_eq!(outside.unwrap_err(), LayoutError::ImageOutsideRam);
        let too_big = BootLayout::new(
            &p,
            PhysRange::new(0x4020_0000, 0x1000),
            2 << 30,
            None.into_iter(),
        );
        assert_eq!(too_big.unwrap_err(), LayoutError::NoRoomForPool);
    }

    #[test]
    fn the_el1_tree_gets_a_2m_region_the_kernel_does_not_touch() {
        let l = layout(Some(PhysRange::new(0x4a00_0000, 0x10_0000)));
        // A test kernel in the 2 MiB below the hyp: the tree goes above the
        // pool, in the first free 2 MiB region.
        let small = PhysRange::new(0x4000_0000, 0x1_0000);
        assert_eq!(
            l.place_el1_tree(0x2000, small),
            Some(PhysRange::new(0x4240_0000, 0x2000))
        );
        // Linux (43 MiB from 0x42400000): the region below the hyp is free.
        let linux = PhysRange::new(0x4240_0000, 0x2b2_0000);
        let tree = l.place_el1_tree(0x2000, linux).unwrap();
        assert_eq!(tree, PhysRange::new(0x4000_0000, 0x2000));
        assert!(!tree.align_out(SZ_2M).overlaps(&linux.align_out(SZ_2M)));
        assert_eq!(l.place_el1_tree(SZ_2M + 8, small), None, "at most 2 MiB");
    }
}

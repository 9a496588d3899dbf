//! What a secondary CPU reads before its MMU is on.
//!
//! Firmware starts a secondary CPU at EL2 with its MMU and data cache off.
//! Its data accesses are then Device-nGnRnE, i.e. non-cacheable (Arm ARM,
//! DDI 0487, "The effects of disabling a stage of address translation"):
//! it reads main memory (the point of coherency) and never
//! sees a line that the boot CPU, running with caches on, still holds
//! dirty. So the boot CPU writes this record and cleans it to the point of
//! coherency before it can start a secondary (as Linux's `secondary_data`
//! and `update_cpu_boot_status` do), and the secondary's entry code
//! (`boot.S`) loads from it only the values it needs to turn its MMU on,
//! then sets its stack pointer. It touches no stack before the MMU is on:
//! a stack written non-cacheably and later read cacheably could return
//! stale lines.
//!
//! The EL2 vectors (`vectors.S`) read the stack slots' bounds from the same
//! record, on every CPU and whether its MMU is on or not, to tell a stack
//! overflow before they touch the stack.

/// The EL2 translation regime's registers, the same on every CPU.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MmuRegisters {
    pub mair: u64,
    pub tcr: u64,
    pub ttbr0: u64,
    pub sctlr: u64,
}

/// The record a secondary CPU's entry code reads; the offsets below are
/// what `boot.S` uses.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SecondaryBootData {
    pub mmu: MmuRegisters,
    /// The first CPU stack slot (`layout::CpuStacks::region.start`); CPU
    /// `i`'s stack pointer starts at `stacks + (i + 1) * STACK_SLOT_SIZE`.
    pub stacks: u64,
    /// CPUs with a stack slot: a CPU started with a larger index parks.
    pub cpus: u64,
    /// The end of the last slot (`layout::CpuStacks::region.end()`).
    pub stacks_end: u64,
}

pub const OFFSET_MAIR: usize = core::mem::offset_of!(SecondaryBootData, mmu.mair);
pub const OFFSET_TCR: usize = core::mem::offset_of!(SecondaryBootData, mmu.tcr);
pub const OFFSET_TTBR0: usize = core::mem::offset_of!(SecondaryBootData, mmu.ttbr0);
pub const OFFSET_SCTLR: usize = core::mem::offset_of!(SecondaryBootData, mmu.sctlr);
pub const OFFSET_STACKS: usize = core::mem::offset_of!(SecondaryBootData, stacks);
pub const OFFSET_CPUS: usize = core::mem::offset_of!(SecondaryBootData, cpus);
pub const OFFSET_STACKS_END: usize = core::mem::offset_of!(SecondaryBootData, stacks_end);

/// Where the record lives, seen from the boot CPU (caches on).
pub trait BootDataCell {
    /// Stores the record (into the cache, with caches on).
    fn store(&mut self, data: SecondaryBootData);
    /// Writes the record's lines back to the point of coherency and waits
    /// for that to complete (`DC CVAC` over it, then `DSB`).
    fn clean_to_poc(&mut self);
}

/// Publishes `data` for CPUs that read it with their MMU off.
pub fn publish(cell: &mut impl BootDataCell, data: SecondaryBootData) {
    cell.store(data);
    cell.clean_to_poc();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write-back cache in front of RAM: stores stay in the cache until a
    /// clean; a CPU with its MMU off reads RAM.
    #[derive(Default)]
    struct WriteBack {
        dirty: Option<SecondaryBootData>,
        ram: SecondaryBootData,
    }

    impl BootDataCell for WriteBack {
        fn store(&mut self, data: SecondaryBootData) {
            self.dirty = Some(data);
        }
        fn clean_to_poc(&mut self) {
            if let Some(data) = self.dirty.take() {
                self.ram = data;
            }
        }
    }

    fn record(root: u64) -> SecondaryBootData {
        SecondaryBootData {
            mmu: MmuRegisters {
                mair: 0x44_ff04,
                tcr: 0x8081_3510,
                ttbr0: root,
                sctlr: 0x30c5_183d,
            },
            stacks: 0x4230_0000,
            cpus: 16,
            stacks_end: 0x4241_0000,
        }
    }

    #[test]
    fn a_cpu_with_its_mmu_off_reads_what_the_boot_cpu_published() {
        let mut cell = WriteBack::default();
        cell.store(record(0x4030_0000));
        assert_eq!(
            cell.ram,
            SecondaryBootData::default(),
            "a plain store is not seen by a non-cacheable reader"
        );
        publish(&mut cell, record(0x4030_0000));
        assert_eq!(cell.ram, record(0x4030_0000));
        publish(&mut cell, record(0x4031_0000));
        assert_eq!(cell.ram.mmu.ttbr0, 0x4031_0000, "a later publish lands too");
    }

    #[test]
    fn the_offsets_boot_s_uses_match_the_layout() {
        assert_eq!(
            [
                OFFSET_MAIR,
                OFFSET_TCR,
                OFFSET_TTBR0,
                OFFSET_SCTLR,
                OFFSET_STACKS,
                OFFSET_CPUS,
                OFFSET_STACKS_END
            ],
            [0, 8, 16, 24, 32, 40, 48]
        );
        assert_eq!(core::mem::size_of::<SecondaryBootData>(), 56);
    }
}

//! The hardware context one driver operation runs in: register access,
//! DMA memory, the clock and the wait budget, plus the register handshakes
//! (CR0/CR0ACK, IRQ_CTRL/IRQ_CTRLACK, GBPA.UPDATE) shared by probe and
//! recovery.

use tock_registers::LocalRegisterCopy;

use super::dma::{DmaMemory, DmaRegion};
use super::error::{SmmuError, WaitFor};
use super::poll::{Clock, PollBudget, poll_until};
use super::regs::{GBPA, SmmuRegs, offset};

/// CR0 bits that CR0ACK mirrors (SMMUEN, PRIQEN, EVENTQEN, CMDQEN, ATSCHK,
/// VMW).
const CR0_ACK_MASK: u32 = 0x1df;
/// IRQ_CTRL bits that IRQ_CTRLACK mirrors.
const IRQ_CTRL_ACK_MASK: u32 = 0x7;

pub(crate) struct Hw<'a, R, M, C> {
    pub regs: &'a R,
    pub mem: &'a M,
    pub clock: &'a C,
    pub poll: PollBudget,
    /// SMMU_IDR0.COHACC: when false every CPU write the SMMU reads must be
    /// cleaned to PoC, and every SMMU write the CPU reads invalidated.
    pub coherent: bool,
}

/// What a [`Hw`] borrows, owned: the driver keeps one and builds the context
/// of each operation from it with [`HwParts::hw`], which borrows only this
/// field and leaves the rest of the driver free to be borrowed mutably.
pub(crate) struct HwParts<R, M, C> {
    pub regs: R,
    pub mem: M,
    pub clock: C,
    pub poll: PollBudget,
    /// See [`Hw::coherent`].
    pub coherent: bool,
}

impl<R, M, C> HwParts<R, M, C> {
    pub fn hw(&self) -> Hw<'_, R, M, C> {
        Hw {
            regs: &self.regs,
            mem: &self.mem,
            clock: &self.clock,
            poll: self.poll,
            coherent: self.coherent,
        }
    }
}

impl<R: SmmuRegs, M: DmaMemory, C: Clock> Hw<'_, R, M, C> {
    /// Bounded wait; an expired budget becomes `Timeout(what)`.
    pub fn wait<T>(&self, what: WaitFor, poll: impl FnMut() -> Option<T>) -> Result<T, SmmuError> {
        poll_until(self.clock, self.poll, poll).map_err(|_| SmmuError::Timeout(what))
    }

    pub fn clean(&self, region: &DmaRegion, offset: usize, len: usize) {
        if !self.coherent {
            self.mem.clean_for_device(region, offset, len);
        }
    }

    pub fn invalidate(&self, region: &DmaRegion, offset: usize, len: usize) {
        if !self.coherent {
            self.mem.invalidate_for_cpu(region, offset, len);
        }
    }

    /// For a freshly allocated region the SMMU will write (the event
    /// queue), before its base is programmed: the allocator zeroed it with
    /// cacheable stores, and on a non-coherent SMMU a dirty line written
    /// back later (evicted, or by the clean+invalidate before a record is
    /// read) would land over what the SMMU wrote. Cleans it to the point of
    /// coherency and drops the lines (Linux allocates such queues with
    /// `dmam_alloc_coherent`, non-cacheable, for the same reason).
    pub fn hand_to_device_for_writing(&self, region: &DmaRegion) {
        self.clean(region, 0, region.size());
        self.invalidate(region, 0, region.size());
    }

    /// Allocates zeroed DMA memory and checks what can be checked of the
    /// allocator's promises: a misaligned table or queue base is silently
    /// truncated by real SMMUs (QEMU does not care), so refuse it here.
    pub fn alloc(&self, size: usize, align: usize) -> Result<DmaRegion, SmmuError> {
        debug_assert!(align.is_power_of_two());
        let region = self
            .mem
            .alloc_zeroed(size, align)
            .map_err(|_| SmmuError::OutOfMemory { size, align })?;
        let pa = region.pa();
        let va = region.va().as_ptr() as usize;
        if !pa.is_multiple_of(align as u64) || !va.is_multiple_of(8) || region.size() < size {
            // SAFETY: the region was just allocated and never used or shown
            // to the SMMU.
            unsafe { self.mem.free(region) };
            return Err(SmmuError::BadAllocation { pa, size, align });
        }
        Ok(region)
    }

    /// Writes CR0 and waits for CR0ACK to match.
    pub fn write_cr0(&self, value: u32) -> Result<(), SmmuError> {
        self.regs.write32(offset::CR0, value);
        self.wait(WaitFor::Cr0Ack, || {
            ((self.regs.read32(offset::CR0ACK) ^ value) & CR0_ACK_MASK == 0).then_some(())
        })
    }

    /// Writes IRQ_CTRL and waits for IRQ_CTRLACK to match.
    pub fn write_irq_ctrl(&self, value: u32) -> Result<(), SmmuError> {
        self.regs.write32(offset::IRQ_CTRL, value);
        self.wait(WaitFor::IrqCtrlAck, || {
            ((self.regs.read32(offset::IRQ_CTRLACK) ^ value) & IRQ_CTRL_ACK_MASK == 0).then_some(())
        })
    }

    /// Sets GBPA.ABORT with the UPDATE handshake: while SMMUEN == 0 incoming
    /// traffic is then aborted instead of bypassing to physical memory
    /// (QEMU and many parts reset to bypass).
    pub fn set_gbpa_abort(&self) -> Result<(), SmmuError> {
        let update_clear = || {
            let v = LocalRegisterCopy::<u32, GBPA::Register>::new(self.regs.read32(offset::GBPA));
            (!v.is_set(GBPA::UPDATE)).then_some(v)
        };
        // A previous owner may have left an update in flight.
        let mut gbpa = self.wait(WaitFor::GbpaUpdate, update_clear)?;
        if gbpa.is_set(GBPA::ABORT) {
            return Ok(());
        }
        gbpa.modify(GBPA::ABORT::SET + GBPA::UPDATE::SET);
        self.regs.write32(offset::GBPA, gbpa.get());
        self.wait(WaitFor::GbpaUpdate, update_clear).map(|_| ())
    }
}

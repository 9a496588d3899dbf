//! Circular-queue pointer arithmetic shared by the command and event queues.
//!
//! A queue of 2^n entries is indexed by n+1-bit pointers: n index bits plus
//! a wrap bit that flips on every lap. Equal pointers mean empty; equal
//! index with different wrap bits means full. Comparing only index bits
//! makes a full queue look empty (a bug seen in the wild), so every
//! computation here uses the index *and* the wrap bit.
//!
//! [`QueueRing`] holds what the two queues share beyond the arithmetic: the
//! ring's DMA memory, its allocation and its Q_BASE value.

use super::dma::{DmaMemory, DmaRegion};
use super::error::SmmuError;
use super::hw::Hw;
use super::poll::Clock;
use super::regs::{Q_BASE, SmmuRegs};

/// Geometry of one queue. `log2` is the LOG2SIZE programmed into Q_BASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueGeometry {
    log2: u8,
}

impl QueueGeometry {
    /// Architectural maximum of CMDQS/EVENTQS.
    pub const MAX_LOG2: u8 = 19;

    pub const fn new(log2: u8) -> Option<Self> {
        if log2 <= Self::MAX_LOG2 {
            Some(Self { log2 })
        } else {
            None
        }
    }

    /// `log2` limited to the architectural maximum.
    pub const fn clamped(log2: u8) -> Self {
        Self {
            log2: if log2 > Self::MAX_LOG2 {
                Self::MAX_LOG2
            } else {
                log2
            },
        }
    }

    pub const fn log2(self) -> u8 {
        self.log2
    }

    pub const fn entries(self) -> u32 {
        1 << self.log2
    }

    /// Mask of the pointer bits (index and wrap) in a PROD/CONS register.
    pub const fn ptr_mask(self) -> u32 {
        (2 << self.log2) - 1
    }

    /// Slot number of a pointer.
    pub const fn index(self, ptr: u32) -> u32 {
        ptr & (self.entries() - 1)
    }

    pub const fn wrap(self, ptr: u32) -> bool {
        ptr & self.entries() != 0
    }

    /// `ptr` advanced by `n` entries (wrapping the wrap bit too).
    pub const fn advance(self, ptr: u32, n: u32) -> u32 {
        ptr.wrapping_add(n) & self.ptr_mask()
    }

    /// Entries between `cons` and `prod`: 0 = empty, `entries()` = full.
    /// Only meaningful for a consistent pair (result <= entries()).
    pub const fn used(self, prod: u32, cons: u32) -> u32 {
        prod.wrapping_sub(cons) & self.ptr_mask()
    }

    pub const fn free(self, prod: u32, cons: u32) -> u32 {
        self.entries().saturating_sub(self.used(prod, cons))
    }

    pub const fn is_empty(self, prod: u32, cons: u32) -> bool {
        self.used(prod, cons) == 0
    }

    pub const fn is_full(self, prod: u32, cons: u32) -> bool {
        self.used(prod, cons) == self.entries()
    }

    /// A pointer value read from hardware is consistent with our `prod` if
    /// it is at most one queue behind it.
    pub const fn consistent(self, prod: u32, cons: u32) -> bool {
        self.used(prod, cons) <= self.entries()
    }
}

/// A queue's ring of 2^log2 entries in DMA memory.
pub(crate) struct QueueRing {
    pub region: DmaRegion,
    pub geo: QueueGeometry,
}

impl QueueRing {
    /// Allocates a zeroed ring of 2^log2 entries of `entry_bytes` each
    /// (`log2` clamped to the architectural maximum), aligned to its size as
    /// the SMMU requires (minimum 32 bytes: Q_BASE.ADDR starts at bit 5).
    pub fn new<R, M, C>(
        hw: &Hw<'_, R, M, C>,
        log2: u8,
        entry_bytes: usize,
    ) -> Result<Self, SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let geo = QueueGeometry::clamped(log2);
        let bytes = (entry_bytes << geo.log2()).max(32);
        let region = hw.alloc(bytes, bytes)?;
        Ok(Self { region, geo })
    }

    /// SMMU_CMDQ_BASE/SMMU_EVENTQ_BASE value: address, LOG2SIZE and the
    /// allocate hint (read-allocate for the command queue, write-allocate
    /// for the event queue: the same bit).
    pub fn q_base(&self) -> u64 {
        (Q_BASE::RWA::SET
            + Q_BASE::ADDR.val(self.region.pa() >> 5)
            + Q_BASE::LOG2SIZE.val(self.geo.log2().into()))
        .value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_is_not_empty() {
        let g = QueueGeometry::new(3).unwrap();
        assert_eq!(g.entries(), 8);
        assert_eq!(g.ptr_mask(), 0xf);
        // Same index, different wrap: full.
        assert!(g.is_full(0x8 | 5, 5));
        assert!(!g.is_empty(0x8 | 5, 5));
        assert_eq!(g.free(0x8 | 5, 5), 0);
        // Same index, same wrap: empty.
        assert!(g.is_empty(5, 5) && !g.is_full(5, 5));
        assert_eq!(g.free(5, 5), 8);
    }

    #[test]
    fn wrap_arithmetic() {
        let g = QueueGeometry::new(2).unwrap();
        let mut p = 0;
        for i in 0..20u32 {
            assert_eq!(g.index(p), i % 4);
            assert_eq!(g.wrap(p), (i / 4) % 2 == 1);
            p = g.advance(p, 1);
        }
        assert_eq!(g.advance(0b111, 1), 0);
        assert_eq!(g.used(1, 0b110), 3);
        assert_eq!(g.free(1, 0b110), 1);
        assert!(g.consistent(1, 0b110));
        assert!(!g.consistent(1, 0b010)); // 7 ahead: impossible
    }

    #[test]
    fn single_entry_queue() {
        let g = QueueGeometry::new(0).unwrap();
        assert_eq!(g.entries(), 1);
        assert!(g.is_empty(0, 0));
        assert!(g.is_full(1, 0));
        assert_eq!(g.advance(1, 1), 0);
        assert!(QueueGeometry::new(20).is_none());
    }
}

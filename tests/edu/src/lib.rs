//! QEMU's `edu` PCI device, used as a DMA engine by the on-target tests
//! (the EL2 self-tests of `smmu-hyp-selftest.bin` and the EL1 test kernel).
//! A crate of its own so that the production EL2 image never links it.
//!
//! Registers (BAR0, 64-bit accesses): 0x80 DMA source, 0x88 destination,
//! 0x90 count, 0x98 command (bit 0 start/busy, bit 1 direction: 1 = device
//! to RAM). The device's own buffer is 4 KiB at 0x40000 in its address
//! space, reachable only by DMA. Every wait is bounded.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

pub const VENDOR: u16 = 0x1234;
pub const DEVICE: u16 = 0x11e8;
/// The device-internal buffer's address as DMA source/destination.
pub const BUFFER: u64 = 0x4_0000;
pub const BUFFER_SIZE: u64 = 0x1000;

const DMA_SRC: u64 = 0x80;
const DMA_DST: u64 = 0x88;
const DMA_COUNT: u64 = 0x90;
const DMA_CMD: u64 = 0x98;
const CMD_START: u64 = 1 << 0;
const CMD_TO_RAM: u64 = 1 << 1;

/// The transfer did not complete within the poll budget.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timeout;

impl core::fmt::Display for Timeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("edu DMA timed out")
    }
}

pub struct Edu {
    bar0: u64,
}

/// Polls of the command register before a transfer is declared stuck. A
/// transfer takes 100 ms of virtual time; under `-icount shift=10` that is
/// about 100,000 instructions, a few thousand polls.
const POLLS: u32 = 10_000_000;

impl Edu {
    /// # Safety
    /// `bar0` must be the device's BAR0, mapped as device memory, with
    /// memory decoding enabled.
    pub const unsafe fn new(bar0: u64) -> Self {
        Self { bar0 }
    }

    fn write(&self, reg: u64, value: u64) {
        // SAFETY: a register of the mapped BAR (`new`'s contract).
        unsafe { core::ptr::write_volatile((self.bar0 + reg) as *mut u64, value) }
    }

    fn read(&self, reg: u64) -> u64 {
        // SAFETY: as for `write`.
        unsafe { core::ptr::read_volatile((self.bar0 + reg) as *const u64) }
    }

    fn transfer(&self, src: u64, dst: u64, len: u64, to_ram: bool) -> Result<(), Timeout> {
        self.write(DMA_SRC, src);
        self.write(DMA_DST, dst);
        self.write(DMA_COUNT, len);
        self.write(DMA_CMD, CMD_START | if to_ram { CMD_TO_RAM } else { 0 });
        for _ in 0..POLLS {
            if self.read(DMA_CMD) & CMD_START == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(Timeout)
    }

    /// DMA `len` bytes from the device buffer (at `offset`) to bus address
    /// `iova`: a device write to memory.
    pub fn write_to(&self, iova: u64, offset: u64, len: u64) -> Result<(), Timeout> {
        self.transfer(BUFFER + offset, iova, len, true)
    }

    /// DMA `len` bytes from bus address `iova` into the device buffer (at
    /// `offset`): a device read of memory.
    pub fn read_from(&self, iova: u64, offset: u64, len: u64) -> Result<(), Timeout> {
        self.transfer(iova, BUFFER + offset, len, false)
    }
}

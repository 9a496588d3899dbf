//! Arm PL011 UART, transmit only (the hyp's console).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ]
];

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => @END),
    }
}

/// A PL011 at a fixed MMIO address.
pub struct Pl011 {
    regs: *const Registers,
}

// SAFETY: the UART is a device register block; the console serialises access
// with a lock, and the emergency path only ever writes whole bytes.
unsafe impl Send for Pl011 {}

/// Bound on polls of a full transmit FIFO before a byte is dropped: a broken
/// UART must not hang the hyp.
const TX_POLLS: u32 = 1_000_000;

impl Pl011 {
    /// # Safety
    /// `base` must be the address of a PL011, mapped as device memory.
    pub const unsafe fn new(base: u64) -> Self {
        Self {
            regs: base as *const Registers,
        }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract: `regs` points at a mapped PL011.
        unsafe { &*self.regs }
    }

    pub fn write_byte(&self, byte: u8) {
        let regs = self.regs();
        for _ in 0..TX_POLLS {
            if !regs.fr.is_set(FR::TXFF) {
                regs.dr.set(u32::from(byte));
                return;
            }
            core::hint::spin_loop();
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}

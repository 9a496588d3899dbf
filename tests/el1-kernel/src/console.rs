//! The test kernel's console: the PL011, written without locks (one CPU;
//! EL1 runs with its MMU off, where exclusives are not guaranteed to work).

use core::sync::atomic::{AtomicU64, Ordering};
use smmu_hyp::drivers::pl011::Pl011;

static UART: AtomicU64 = AtomicU64::new(0);

pub fn init(base: u64) {
    UART.store(base, Ordering::Relaxed);
}

pub fn print(args: core::fmt::Arguments<'_>) {
    let base = UART.load(Ordering::Relaxed);
    if base != 0 {
        // SAFETY: `base` is the device tree's PL011; with the MMU off every
        // physical address is reachable.
        let _ = core::fmt::Write::write_fmt(&mut unsafe { Pl011::new(base) }, args);
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

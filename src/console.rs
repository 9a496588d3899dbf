//! The hyp console: a PL011 behind a lock, the `log` backend, and an
//! emergency path for crash reports that never waits for the lock.

use crate::drivers::pl011::Pl011;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);
/// The console's base address, for the emergency path.
static CONSOLE_BASE: AtomicU64 = AtomicU64::new(0);

/// Starts the console on the PL011 at `base`.
///
/// # Safety
/// `base` must be a PL011 mapped as device memory for the hyp's lifetime.
pub unsafe fn init(base: u64) {
    // SAFETY: the caller's contract.
    *CONSOLE.lock() = Some(unsafe { Pl011::new(base) });
    CONSOLE_BASE.store(base, Ordering::Release);
}

/// Sends crash reports to the PL011 at `base` until [`init`] names the
/// console: for failures before the MMU is on (a plain store, valid with
/// the MMU off).
///
/// # Safety
/// `base` must be a PL011 reachable at this address until [`init`].
pub unsafe fn set_early(base: u64) {
    CONSOLE_BASE.store(base, Ordering::Relaxed);
}

/// Prints to the console, if there is one.
pub fn print(args: fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// Prints without taking the console lock: for crash reports, which may
/// come from code that holds it. Output may interleave with another CPU's.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let base = CONSOLE_BASE.load(Ordering::Acquire);
    if base != 0 {
        // SAFETY: `base` was registered by `init`, whose contract says it is
        // a mapped PL011.
        let _ = unsafe { Pl011::new(base) }.write_fmt(args);
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            print(format_args!("[{:<5}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Routes `log` to the console at `level`.
pub fn init_logger(level: log::LevelFilter) {
    // A second call keeps the first logger; only the level changes.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

//! PCI-to-PCI bridges (type 1 headers: PCIe root ports and switch ports):
//! their bus-number register and their forwarding windows, encoded and
//! decoded as the PCI-to-PCI Bridge Architecture 1.2 (3.2.5) lays them out.

use super::window::Span;
use super::{Bdf, ConfigSpace, header};

/// The buses a bridge forwards configuration requests to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BusRange {
    /// The bus directly behind the bridge.
    pub secondary: u8,
    /// The highest bus number below it.
    pub subordinate: u8,
}

/// Primary, secondary and subordinate bus numbers as programmed.
pub fn bus_numbers(cfg: &dyn ConfigSpace, bdf: Bdf) -> (u8, BusRange) {
    let v = cfg.read32(bdf, header::BUS_NUMBERS);
    (
        v as u8,
        BusRange {
            secondary: (v >> 8) as u8,
            subordinate: (v >> 16) as u8,
        },
    )
}

/// Programs the bus numbers, keeping the secondary latency timer (byte 3).
pub fn set_bus_numbers(cfg: &dyn ConfigSpace, bdf: Bdf, primary: u8, buses: BusRange) {
    let latency = cfg.read32(bdf, header::BUS_NUMBERS) & 0xff00_0000;
    cfg.write32(
        bdf,
        header::BUS_NUMBERS,
        latency
            | u32::from(buses.subordinate) << 16
            | u32::from(buses.secondary) << 8
            | u32::from(primary),
    );
}

/// Base and limit halves of a disabled window: base above limit.
const DISABLED: u32 = 0x0000_fff0;

/// The low dword of a memory or prefetchable window register for `span`
/// (bits 31:20 of its base and of its limit), or a disabled window.
fn window_low(span: Option<Span>) -> u32 {
    match span {
        Some(s) => ((s.first >> 16) as u32 & 0xfff0) | (s.last as u32 & 0xfff0_0000),
        None => DISABLED,
    }
}

/// The span a window register pair decodes to, `None` if disabled.
fn decode(low: u32, base_upper: u32, limit_upper: u32) -> Option<Span> {
    let first = u64::from(base_upper) << 32 | u64::from(low & 0xfff0) << 16;
    let last = u64::from(limit_upper) << 32 | u64::from(low & 0xfff0_0000) | 0xf_ffff;
    (first <= last).then_some(Span { first, last })
}

/// The memory (non-prefetchable) window as programmed.
pub fn memory_window(cfg: &dyn ConfigSpace, bdf: Bdf) -> Option<Span> {
    decode(cfg.read32(bdf, header::MEMORY_BASE_LIMIT), 0, 0)
}

/// Programs the memory window (32-bit only: `span` must lie below 4 GiB).
pub fn set_memory_window(cfg: &dyn ConfigSpace, bdf: Bdf, span: Option<Span>) {
    cfg.write32(bdf, header::MEMORY_BASE_LIMIT, window_low(span));
}

/// Whether the prefetchable window decodes 64-bit addresses.
pub fn prefetchable_is_64bit(cfg: &dyn ConfigSpace, bdf: Bdf) -> bool {
    cfg.read32(bdf, header::PREF_BASE_LIMIT) & 0xf == header::PREF_64BIT
}

/// The prefetchable window as programmed.
pub fn prefetchable_window(cfg: &dyn ConfigSpace, bdf: Bdf) -> Option<Span> {
    let low = cfg.read32(bdf, header::PREF_BASE_LIMIT);
    if low & 0xf == header::PREF_64BIT {
        decode(
            low,
            cfg.read32(bdf, header::PREF_BASE_UPPER),
            cfg.read32(bdf, header::PREF_LIMIT_UPPER),
        )
    } else {
        decode(low, 0, 0)
    }
}

/// Programs the prefetchable window. Returns `false` (and disables it) when
/// `span` lies above 4 GiB and the window is 32-bit only.
pub fn set_prefetchable_window(cfg: &dyn ConfigSpace, bdf: Bdf, span: Option<Span>) -> bool {
    let is_64bit = prefetchable_is_64bit(cfg, bdf);
    let fits = span.is_none_or(|s| is_64bit || s.last >> 32 == 0);
    let span = span.filter(|_| fits);
    cfg.write32(bdf, header::PREF_BASE_LIMIT, window_low(span));
    if is_64bit {
        let (base, limit) = span.map_or((0, 0), |s| (s.first >> 32, s.last >> 32));
        cfg.write32(bdf, header::PREF_BASE_UPPER, base as u32);
        cfg.write32(bdf, header::PREF_LIMIT_UPPER, limit as u32);
    }
    fits
}

/// Disables the I/O window (no I/O BARs are assigned), leaving the
/// write-1-to-clear secondary status alone.
pub fn disable_io_window(cfg: &dyn ConfigSpace, bdf: Bdf) {
    cfg.write32(bdf, header::IO_BASE_LIMIT, 0x00f0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_registers_hold_megabyte_bounds_and_disabled_is_base_above_limit() {
        let s = Span {
            first: 0x1010_0000,
            last: 0x102f_ffff,
        };
        assert_eq!(window_low(Some(s)), 0x1020_1010);
        assert_eq!(decode(0x1020_1010, 0, 0), Some(s));
        assert_eq!(decode(window_low(None), 0, 0), None);
        // Reset value: base 0, limit 0 decodes to the first megabyte.
        assert_eq!(
            decode(0, 0, 0),
            Some(Span {
                first: 0,
                last: 0xf_ffff
            })
        );
        let high = Span {
            first: 0x80_0000_0000,
            last: 0x80_001f_ffff,
        };
        assert_eq!(decode(window_low(Some(high)), 0x80, 0x80), Some(high));
    }
}

//! The MMIO bus: which device answers which trapped window, and how a
//! decoded load or store reaches it.
//!
//! The hyp builds one bus at boot, publishes it, and never changes it
//! again, so the trap path reads it without a lock. Emulating an access is
//! pure: [`MmioBus::emulate`] takes the faulting address, the access the
//! syndrome describes, the byte order of the trapped code's data accesses
//! and EL1's general-purpose registers, and either completes the access (a
//! load's value lands in its register, with the extension the instruction
//! asks for) or says why it cannot.
//!
//! Devices see little-endian register values (the GIC's and virtio's
//! registers are little-endian). A big-endian kernel's load or store puts
//! the bytes in the other order: its data is byte-reversed on the way
//! through, as KVM's `vcpu_data_guest_to_host` and
//! `vcpu_data_host_to_guest` do. A load's sign extension applies to the
//! value the instruction loads, so after the reversal.

use super::{AccessSize, MmioDevice};
use crate::esr::Access;
use crate::memmap::PhysRange;
use core::fmt;

/// One registered window.
#[derive(Clone, Copy)]
struct Window {
    range: PhysRange,
    device: &'static dyn MmioDevice,
}

/// Why a window could not be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The window is empty or wraps around the address space.
    BadWindow,
    /// The window overlaps one already registered.
    Overlap,
    /// The bus holds its maximum number of windows.
    Full,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadWindow => "empty or wrapping MMIO window",
            Self::Overlap => "MMIO window overlaps another",
            Self::Full => "too many MMIO windows",
        })
    }
}

/// Why a trapped access was not emulated; the hyp makes EL1 take an
/// external abort instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unemulated {
    /// The syndrome does not describe the access (ISS.ISV = 0: a pair,
    /// a SIMD register, a writeback form).
    NoSyndrome,
    /// Not a load or store the bus emulates: a stage-1 table walk, an
    /// access whose address EL2 is not told (FnV), one from AArch32, or a
    /// fault other than a missing translation.
    NotALoadOrStore,
    /// No window holds the address.
    NoDevice,
    /// The address is not a multiple of the access size (a Device-memory
    /// access EL1 could not make either).
    Misaligned,
    /// The access starts in a window and runs past its end.
    CrossesWindowEnd,
}

impl fmt::Display for Unemulated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSyndrome => "instruction not described by the syndrome (e.g. a pair)",
            Self::NotALoadOrStore => "not a plain load or store",
            Self::NoDevice => "no emulated device there",
            Self::Misaligned => "misaligned access",
            Self::CrossesWindowEnd => "access runs past the device's window",
        })
    }
}

/// Up to `N` windows, each answered by one device.
pub struct MmioBus<const N: usize> {
    windows: heapless::Vec<Window, N>,
}

impl<const N: usize> Default for MmioBus<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MmioBus<N> {
    pub const fn new() -> Self {
        Self {
            windows: heapless::Vec::new(),
        }
    }

    /// Makes `device` answer accesses to `range`.
    pub fn register(
        &mut self,
        range: PhysRange,
        device: &'static dyn MmioDevice,
    ) -> Result<(), BusError> {
        if range.is_empty() || range.start.checked_add(range.size).is_none() {
            return Err(BusError::BadWindow);
        }
        if self.windows.iter().any(|w| w.range.overlaps(&range)) {
            return Err(BusError::Overlap);
        }
        self.windows
            .push(Window { range, device })
            .map_err(|_| BusError::Full)
    }

    /// Every registered window: what the host stage-2 must leave unmapped.
    pub fn windows(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.windows.iter().map(|w| w.range)
    }

    /// Whether an emulated device answers at `addr`.
    pub fn claims(&self, addr: u64) -> bool {
        self.window_at(addr).is_some()
    }

    fn window_at(&self, addr: u64) -> Option<&Window> {
        self.windows.iter().find(|w| w.range.contains(addr))
    }

    /// Performs `access` (a store if `write`) at `addr` on the device
    /// there, reading the stored value from or completing the load into
    /// `regs` (x0..x30), for code whose data accesses are `big_endian` or
    /// not. Nothing is called or changed when it returns an error.
    pub fn emulate(
        &self,
        addr: u64,
        write: bool,
        access: Access,
        big_endian: bool,
        regs: &mut [u64; 31],
    ) -> Result<(), Unemulated> {
        let window = self.window_at(addr).ok_or(Unemulated::NoDevice)?;
        let bytes = u64::from(access.size.bytes());
        if !addr.is_multiple_of(bytes) {
            return Err(Unemulated::Misaligned);
        }
        let offset = addr - window.range.start;
        if offset + bytes > window.range.size {
            return Err(Unemulated::CrossesWindowEnd);
        }
        if write {
            let value = store_value(&access, regs, big_endian);
            window.device.write(offset, access.size, value);
        } else {
            let raw = window.device.read(offset, access.size);
            complete_load(&access, regs, raw, big_endian);
        }
        Ok(())
    }
}

/// The low `size` bytes of `value` in the other byte order.
pub fn byte_reversed(value: u64, size: AccessSize) -> u64 {
    value.swap_bytes() >> (64 - 8 * u32::from(size.bytes()))
}

/// The value a store writes, as the device sees it: the low `size` bytes
/// of its register (XZR for register 31), byte-reversed if `big_endian`.
pub fn store_value(access: &Access, regs: &[u64; 31], big_endian: bool) -> u64 {
    let reg = regs.get(usize::from(access.register)).copied().unwrap_or(0);
    let value = reg & access.size.mask();
    if big_endian {
        byte_reversed(value, access.size)
    } else {
        value
    }
}

/// Writes what a load of the device's `raw` value leaves in its register,
/// as the instruction would: the low `size` bytes (byte-reversed if
/// `big_endian`), sign- or zero-extended to the register's width (Xt with
/// ISS.SF, else Wt, whose write clears bits [63:32]). A load to register
/// 31 (XZR) discards the value.
pub fn complete_load(access: &Access, regs: &mut [u64; 31], raw: u64, big_endian: bool) {
    let bits = 8 * u32::from(access.size.bytes());
    let mut value = raw & access.size.mask();
    if big_endian {
        value = byte_reversed(value, access.size);
    }
    if access.sign_extend && bits < 64 {
        let shift = 64 - bits;
        value = (((value << shift) as i64) >> shift) as u64;
    }
    if !access.sixty_four {
        value &= u64::from(u32::MAX);
    }
    if let Some(reg) = regs.get_mut(usize::from(access.register)) {
        *reg = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vdev::AccessSize;
    use std::sync::Mutex;
    use std::vec::Vec;

    /// A device that records every call and reads back a fixed pattern.
    struct Recorder {
        calls: Mutex<Vec<(bool, u64, AccessSize, u64)>>,
        reads: u64,
    }

    impl MmioDevice for Recorder {
        fn read(&self, offset: u64, size: AccessSize) -> u64 {
            self.calls.lock().unwrap().push((false, offset, size, 0));
            self.reads
        }
        fn write(&self, offset: u64, size: AccessSize, value: u64) {
            self.calls.lock().unwrap().push((true, offset, size, value));
        }
    }

    fn recorder(reads: u64) -> &'static Recorder {
        Box::leak(Box::new(Recorder {
            calls: Mutex::new(Vec::new()),
            reads,
        }))
    }

    fn load(size: AccessSize, register: u8, sign_extend: bool, sixty_four: bool) -> Access {
        Access {
            size,
            sign_extend,
            register,
            sixty_four,
            acquire_release: false,
        }
    }

    fn store(size: AccessSize, register: u8) -> Access {
        load(size, register, false, true)
    }

    const WINDOW: PhysRange = PhysRange::new(0x0808_0000, 0x1_0000);

    #[test]
    fn a_load_reaches_the_device_with_its_window_offset_and_lands_in_its_register() {
        let dev = recorder(0x1122_3344_5566_7788);
        let mut bus: MmioBus<4> = MmioBus::new();
        bus.register(WINDOW, dev).unwrap();
        let mut regs = [0xdead; 31];
        bus.emulate(
            0x0808_0008,
            false,
            load(AccessSize::Doubleword, 3, false, true),
            false,
            &mut regs,
        )
        .unwrap();
        assert_eq!(regs[3], 0x1122_3344_5566_7788);
        assert_eq!(regs[2], 0xdead, "other registers untouched");
        assert_eq!(
            *dev.calls.lock().unwrap(),
            [(false, 8, AccessSize::Doubleword, 0)]
        );
    }

    #[test]
    fn a_store_passes_the_low_bytes_of_its_register_and_xzr_stores_zero() {
        let dev = recorder(0);
        let mut bus: MmioBus<4> = MmioBus::new();
        bus.register(WINDOW, dev).unwrap();
        let mut regs = [0; 31];
        regs[7] = 0xffff_ffff_8765_4321;
        bus.emulate(
            0x0808_0100,
            true,
            store(AccessSize::Word, 7),
            false,
            &mut regs,
        )
        .unwrap();
        bus.emulate(
            0x0808_0100,
            true,
            store(AccessSize::Doubleword, 31),
            false,
            &mut regs,
        )
        .unwrap();
        bus.emulate(
            0x0808_0101,
            true,
            store(AccessSize::Byte, 7),
            false,
            &mut regs,
        )
        .unwrap();
        assert_eq!(
            *dev.calls.lock().unwrap(),
            [
                (true, 0x100, AccessSize::Word, 0x8765_4321),
                (true, 0x100, AccessSize::Doubleword, 0),
                (true, 0x101, AccessSize::Byte, 0x21),
            ]
        );
        assert_eq!(
            regs[7], 0xffff_ffff_8765_4321,
            "a store changes no register"
        );
    }

    #[test]
    fn loads_zero_or_sign_extend_and_a_w_register_load_clears_the_top_half() {
        let cases = [
            // (size, sse, sf, device value, register after)
            (AccessSize::Byte, false, false, 0xfff0, 0xf0),
            (AccessSize::Byte, true, false, 0x80, 0xffff_ff80),
            (AccessSize::Byte, true, true, 0x80, 0xffff_ffff_ffff_ff80),
            (AccessSize::Halfword, true, true, 0x7fff, 0x7fff),
            (AccessSize::Halfword, true, false, 0x8001, 0xffff_8001),
            (
                AccessSize::Word,
                false,
                false,
                0xffff_ffff_8000_0000,
                0x8000_0000,
            ),
            (
                AccessSize::Word,
                true,
                true,
                0x8000_0000,
                0xffff_ffff_8000_0000,
            ),
            (AccessSize::Word, true, false, 0x8000_0000, 0x8000_0000),
            (AccessSize::Doubleword, false, true, u64::MAX, u64::MAX),
        ];
        for (size, sse, sf, raw, want) in cases {
            let mut regs = [0xaaaa_aaaa_aaaa_aaaa; 31];
            complete_load(&load(size, 0, sse, sf), &mut regs, raw, false);
            assert_eq!(regs[0], want, "{size:?} sse {sse} sf {sf} raw {raw:#x}");
        }
    }

    #[test]
    fn a_load_to_xzr_reads_the_device_and_changes_no_register() {
        let dev = recorder(0x55);
        let mut bus: MmioBus<4> = MmioBus::new();
        bus.register(WINDOW, dev).unwrap();
        let mut regs = [7; 31];
        bus.emulate(
            WINDOW.start,
            false,
            load(AccessSize::Word, 31, false, false),
            false,
            &mut regs,
        )
        .unwrap();
        assert_eq!(regs, [7; 31]);
        assert_eq!(
            dev.calls.lock().unwrap().len(),
            1,
            "read side effects happen"
        );
    }

    #[test]
    fn misaligned_outside_and_straddling_accesses_are_not_emulated_and_touch_nothing() {
        let dev = recorder(1);
        let mut bus: MmioBus<4> = MmioBus::new();
        bus.register(WINDOW, dev).unwrap();
        let mut regs = [9; 31];
        let a = load(AccessSize::Doubleword, 0, false, true);
        assert_eq!(
            bus.emulate(WINDOW.start + 4, false, a, false, &mut regs),
            Err(Unemulated::Misaligned)
        );
        assert_eq!(
            bus.emulate(WINDOW.end(), false, a, false, &mut regs),
            Err(Unemulated::NoDevice)
        );
        let small: MmioBus<4> = {
            let mut b = MmioBus::new();
            b.register(PhysRange::new(0x1000, 0x4), dev).unwrap();
            b
        };
        assert_eq!(
            small.emulate(0x1000, false, a, false, &mut regs),
            Err(Unemulated::CrossesWindowEnd)
        );
        assert_eq!(regs, [9; 31]);
        assert!(dev.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn windows_may_not_overlap_be_empty_or_exceed_the_capacity() {
        let dev = recorder(0);
        let mut bus: MmioBus<2> = MmioBus::new();
        bus.register(WINDOW, dev).unwrap();
        assert_eq!(
            bus.register(PhysRange::new(WINDOW.end() - 8, 16), dev),
            Err(BusError::Overlap)
        );
        assert_eq!(
            bus.register(PhysRange::new(0, 0), dev),
            Err(BusError::BadWindow)
        );
        assert_eq!(
            bus.register(PhysRange::new(u64::MAX - 8, 16), dev),
            Err(BusError::BadWindow)
        );
        bus.register(PhysRange::new(0x1000, 0x1000), dev).unwrap();
        assert_eq!(
            bus.register(PhysRange::new(0x4000, 0x1000), dev),
            Err(BusError::Full)
        );
        assert!(bus.claims(0x1fff) && !bus.claims(0x2000));
        assert_eq!(bus.windows().count(), 2);
    }

    #[test]
    fn a_big_endian_kernels_data_is_byte_reversed_both_ways() {
        let dev = recorder(0x1122_3344_5566_7788);
        let mut bus: MmioBus<4> = MmioBus::new();
        bus.register(WINDOW, dev).unwrap();
        let mut regs = [0; 31];
        regs[1] = 0xaaaa_aaaa_0102_0304;
        bus.emulate(
            WINDOW.start,
            true,
            store(AccessSize::Word, 1),
            true,
            &mut regs,
        )
        .unwrap();
        bus.emulate(
            WINDOW.start + 8,
            false,
            load(AccessSize::Doubleword, 2, false, true),
            true,
            &mut regs,
        )
        .unwrap();
        assert_eq!(
            dev.calls.lock().unwrap()[0],
            (true, 0, AccessSize::Word, 0x0403_0201)
        );
        assert_eq!(regs[2], 0x8877_6655_4433_2211);
        // A byte is a byte in either order.
        assert_eq!(byte_reversed(0x1234, AccessSize::Byte), 0x34);
        assert_eq!(byte_reversed(0x1234, AccessSize::Halfword), 0x3412);
    }

    #[test]
    fn a_big_endian_sign_extending_load_extends_the_value_it_loads() {
        // The device's halfword 0x0080 is the bytes 80 00: a big-endian
        // ldrsh loads 0x8000 and extends it.
        let mut regs = [0; 31];
        complete_load(
            &load(AccessSize::Halfword, 0, true, true),
            &mut regs,
            0x0080,
            true,
        );
        assert_eq!(regs[0], 0xffff_ffff_ffff_8000);
        complete_load(
            &load(AccessSize::Word, 0, true, false),
            &mut regs,
            0x80,
            true,
        );
        assert_eq!(regs[0], 0x8000_0000, "Wt: the top half cleared");
        complete_load(
            &load(AccessSize::Halfword, 0, true, true),
            &mut regs,
            0x8000,
            true,
        );
        assert_eq!(regs[0], 0x80, "bytes 00 80: positive");
    }
}

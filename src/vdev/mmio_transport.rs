//! The virtio-mmio register file, version 2 (virtio 1.2, "Virtio Over
//! MMIO"), device side, with the device status state machine (virtio 1.2,
//! "Device Status Field", "Feature Bits", "Device Initialization").
//!
//! [`MmioTransport`] is pure state: a register write returns an [`Effect`]
//! for the device to carry out (serve a queue, reset itself), and the
//! device asks for its queues only while they may be used. Rules it
//! enforces, each a refused write that changes nothing unless said:
//!
//! * control registers are 32-bit: other widths read 0, writes are
//!   ignored; read-only registers ignore writes, write-only ones read 0;
//! * the driver cannot clear status bits except by writing 0 (a reset),
//!   nor set `DEVICE_NEEDS_RESET`;
//! * `FEATURES_OK` is only set if the driver accepted a subset of the
//!   offered features that includes `VIRTIO_F_VERSION_1` (no legacy
//!   interface); the driver reads it back to learn the outcome;
//! * feature writes are ignored once `FEATURES_OK` is set, and no feature
//!   is in effect before it ([`negotiated`](MmioTransport::negotiated)
//!   is 0);
//! * `DRIVER_OK` needs `FEATURES_OK`;
//! * a queue is configured only between `FEATURES_OK` and `DRIVER_OK`
//!   while it is not ready; enabling a queue whose registers do not
//!   describe a usable queue sets `DEVICE_NEEDS_RESET`;
//! * queues are served only while `DRIVER_OK` is set and neither
//!   `DEVICE_NEEDS_RESET` nor `FAILED` is (virtio 1.2: no buffer is
//!   consumed before `DRIVER_OK`);
//! * the configuration space is read-only and never changes, so
//!   `ConfigGeneration` is constant.

use super::AccessSize;
use super::virtqueue::{LayoutError, QueueLayout, SplitQueue};

/// Register offsets.
pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const QUEUE_RESET: u64 = 0x0c0;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// `MagicValue`: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The only version this transport implements (no legacy interface).
pub const VERSION: u32 = 2;
/// `VendorID`: "SMHY" in little-endian.
pub const VENDOR_ID: u32 = 0x5948_4d53;
/// The size of a device window: the registers and up to 256 bytes of
/// configuration space.
pub const WINDOW_SIZE: u64 = 0x200;
/// The most configuration bytes a device may have.
pub const CONFIG_MAX: usize = (WINDOW_SIZE - reg::CONFIG) as usize;

/// Device status bits.
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// `InterruptStatus` bits.
pub mod interrupt {
    pub const USED_BUFFER: u32 = 1;
    pub const CONFIG_CHANGE: u32 = 2;
}

/// `VIRTIO_F_VERSION_1`: the device complies with virtio 1.x.
pub const F_VERSION_1: u64 = 1 << 32;

/// What a device is, as the transport presents it.
#[derive(Clone, Copy, Debug)]
pub struct DeviceIdentity<const QUEUES: usize> {
    pub device_id: u32,
    /// Every feature offered, including [`F_VERSION_1`].
    pub features: u64,
    /// `QueueNumMax` of each queue.
    pub queue_max: [u16; QUEUES],
}

/// What the device must do after a register write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The driver wrote 0 to `Status`: the transport is reset, the device
    /// must reset its own state.
    Reset,
    /// The driver notified queue `n` (an index below `QUEUES`; whether the
    /// queue may be served is for [`MmioTransport::live_queue`] to say).
    Notify(u16),
}

/// One queue's registers.
#[derive(Clone, Copy, Debug, Default)]
struct QueueRegs {
    num: u32,
    desc: u64,
    driver: u64,
    device: u64,
    /// Set while the queue is ready.
    queue: Option<SplitQueue>,
}

/// The register file of one virtio-mmio device with `QUEUES` queues.
#[derive(Clone, Debug)]
pub struct MmioTransport<const QUEUES: usize> {
    identity: DeviceIdentity<QUEUES>,
    config: [u8; CONFIG_MAX],
    config_len: usize,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// The driver accepted a feature beyond bit 63 (none is offered).
    driver_features_beyond: bool,
    queue_sel: u32,
    queues: [QueueRegs; QUEUES],
    interrupt_status: u32,
    /// An interrupt was requested and not yet taken by the device.
    raise: bool,
    /// Why the transport set `DEVICE_NEEDS_RESET`, when it did.
    layout_error: Option<LayoutError>,
}

/// Replaces bits `shift..shift + 32` of `v` with `half`.
fn set_half(v: u64, shift: u32, half: u64) -> u64 {
    v & !(0xffff_ffff << shift) | (half & 0xffff_ffff) << shift
}

impl<const QUEUES: usize> MmioTransport<QUEUES> {
    /// A device after reset, presenting `identity` and the configuration
    /// space `config` (at most [`CONFIG_MAX`] bytes; more are cut).
    pub fn new(identity: DeviceIdentity<QUEUES>, config: &[u8]) -> Self {
        let mut bytes = [0; CONFIG_MAX];
        let config_len = config.len().min(CONFIG_MAX);
        bytes[..config_len].copy_from_slice(&config[..config_len]);
        Self {
            identity,
            config: bytes,
            config_len,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            driver_features_beyond: false,
            queue_sel: 0,
            queues: [QueueRegs::default(); QUEUES],
            interrupt_status: 0,
            raise: false,
            layout_error: None,
        }
    }

    /// Back to the state after [`new`](Self::new).
    fn reset(&mut self) {
        *self = Self::new(self.identity, &self.config[..self.config_len]);
    }

    /// The device status byte.
    pub const fn status(&self) -> u32 {
        self.status
    }

    /// The features in effect: those the driver accepted, once
    /// `FEATURES_OK` is set; none before.
    pub const fn negotiated(&self) -> u64 {
        if self.status & status::FEATURES_OK != 0 {
            self.driver_features
        } else {
            0
        }
    }

    /// Why the transport itself set `DEVICE_NEEDS_RESET`, if it did.
    pub const fn layout_error(&self) -> Option<LayoutError> {
        self.layout_error
    }

    /// Queue `n`, if the device may use it now.
    pub fn live_queue(&mut self, n: u16) -> Option<&mut SplitQueue> {
        let serving = status::DRIVER_OK;
        let stopped = status::DEVICE_NEEDS_RESET | status::FAILED;
        if self.status & (serving | stopped) != serving {
            return None;
        }
        self.queues.get_mut(usize::from(n))?.queue.as_mut()
    }

    /// The device used buffers and the driver wants to hear of it.
    pub fn signal_used(&mut self) {
        self.interrupt_status |= interrupt::USED_BUFFER;
        self.raise = true;
    }

    /// The device hit an error it cannot recover from: it sets
    /// `DEVICE_NEEDS_RESET` and stops serving queues. A driver that set
    /// `DRIVER_OK` is told by a configuration-change interrupt (virtio 1.2
    /// "Device Status Field").
    pub fn fail(&mut self) {
        if self.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        self.status |= status::DEVICE_NEEDS_RESET;
        if self.status & status::DRIVER_OK != 0 {
            self.interrupt_status |= interrupt::CONFIG_CHANGE;
            self.raise = true;
        }
    }

    /// Whether an interrupt was requested since the last call (cleared by
    /// the call).
    pub fn take_raise(&mut self) -> bool {
        core::mem::take(&mut self.raise)
    }

    /// A register read.
    pub fn read(&self, offset: u64, size: AccessSize) -> u64 {
        if offset >= reg::CONFIG {
            return self.read_config(offset - reg::CONFIG, size);
        }
        if size != AccessSize::Word || !offset.is_multiple_of(4) {
            return 0;
        }
        let q = self.selected();
        let value = match offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.identity.device_id,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.identity.features as u32,
                1 => (self.identity.features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => q.map_or(0, |(i, _)| u32::from(self.identity.queue_max[i])),
            reg::QUEUE_READY => q.map_or(0, |(_, r)| u32::from(r.queue.is_some())),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            // No shared memory regions: a length and base of all ones.
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => {
                u32::MAX
            }
            _ => 0,
        };
        u64::from(value)
    }

    fn read_config(&self, offset: u64, size: AccessSize) -> u64 {
        let end = offset.saturating_add(u64::from(size.bytes()));
        if end > self.config_len as u64 {
            return 0;
        }
        let bytes = &self.config[offset as usize..end as usize];
        bytes
            .iter()
            .rev()
            .fold(0, |acc, b| acc << 8 | u64::from(*b))
    }

    /// The selected queue, if it exists.
    fn selected(&self) -> Option<(usize, &QueueRegs)> {
        let i = usize::try_from(self.queue_sel).ok()?;
        self.queues.get(i).map(|r| (i, r))
    }

    /// The selected queue's index, if its configuration may be written
    /// now.
    fn configurable(&self) -> Option<usize> {
        if self.status & (status::FEATURES_OK | status::DRIVER_OK | status::DEVICE_NEEDS_RESET)
            != status::FEATURES_OK
        {
            return None;
        }
        let (i, r) = self.selected()?;
        r.queue.is_none().then_some(i)
    }

    /// A register write.
    pub fn write(&mut self, offset: u64, size: AccessSize, value: u64) -> Effect {
        // The configuration space is read-only.
        if offset >= reg::CONFIG || size != AccessSize::Word || !offset.is_multiple_of(4) {
            return Effect::None;
        }
        let v = value & 0xffff_ffff;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v as u32,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v as u32,
            reg::DRIVER_FEATURES if self.status & status::FEATURES_OK == 0 => {
                match self.driver_features_sel {
                    0 => self.driver_features = set_half(self.driver_features, 0, v),
                    1 => self.driver_features = set_half(self.driver_features, 32, v),
                    _ => self.driver_features_beyond |= v != 0,
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v as u32,
            reg::QUEUE_NUM => {
                if let Some(i) = self.configurable() {
                    self.queues[i].num = v as u32;
                }
            }
            reg::QUEUE_DESC_LOW | reg::QUEUE_DESC_HIGH => {
                self.set_address(offset, v, |r| &mut r.desc)
            }
            reg::QUEUE_DRIVER_LOW | reg::QUEUE_DRIVER_HIGH => {
                self.set_address(offset, v, |r| &mut r.driver)
            }
            reg::QUEUE_DEVICE_LOW | reg::QUEUE_DEVICE_HIGH => {
                self.set_address(offset, v, |r| &mut r.device)
            }
            reg::QUEUE_READY => self.set_ready(v != 0),
            reg::QUEUE_NOTIFY => {
                let n = (v & 0xffff) as u16;
                if usize::from(n) < QUEUES {
                    return Effect::Notify(n);
                }
            }
            reg::INTERRUPT_ACK => self.interrupt_status &= !(v as u32),
            reg::STATUS => return self.set_status(v as u32),
            _ => {}
        }
        Effect::None
    }

    /// One half of a queue address register pair (low at a multiple of 8).
    fn set_address(&mut self, offset: u64, v: u64, field: fn(&mut QueueRegs) -> &mut u64) {
        if let Some(i) = self.configurable() {
            let f = field(&mut self.queues[i]);
            *f = set_half(*f, if offset.is_multiple_of(8) { 0 } else { 32 }, v);
        }
    }

    fn set_ready(&mut self, ready: bool) {
        if !ready {
            // Stopping a queue is always allowed and only stops it.
            if let Some(r) = usize::try_from(self.queue_sel)
                .ok()
                .and_then(|i| self.queues.get_mut(i))
            {
                r.queue = None;
            }
            return;
        }
        let Some(i) = self.configurable() else {
            return;
        };
        let r = &self.queues[i];
        match QueueLayout::new(
            r.num,
            self.identity.queue_max[i],
            r.desc,
            r.driver,
            r.device,
        ) {
            Ok(layout) => self.queues[i].queue = Some(SplitQueue::new(layout)),
            Err(e) => {
                self.layout_error = Some(e);
                self.fail();
            }
        }
    }

    fn set_status(&mut self, v: u32) -> Effect {
        if v == 0 {
            self.reset();
            return Effect::Reset;
        }
        let mut add = v & !self.status & !status::DEVICE_NEEDS_RESET & 0xff;
        if add & status::FEATURES_OK != 0 && !self.features_acceptable() {
            add &= !status::FEATURES_OK;
        }
        if add & status::DRIVER_OK != 0 && (self.status | add) & status::FEATURES_OK == 0 {
            add &= !status::DRIVER_OK;
        }
        self.status |= add;
        Effect::None
    }

    /// Whether the driver's features can be accepted: a subset of those
    /// offered, with `VIRTIO_F_VERSION_1`.
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.identity.features == 0
            && self.driver_features & F_VERSION_1 != 0
            && !self.driver_features_beyond
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEATURES: u64 = F_VERSION_1 | 0b101;
    const W: AccessSize = AccessSize::Word;

    fn transport() -> MmioTransport<2> {
        MmioTransport::new(
            DeviceIdentity {
                device_id: 23,
                features: FEATURES,
                queue_max: [64, 8],
            },
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99],
        )
    }

    fn set_status(t: &mut MmioTransport<2>, bits: u32) -> u32 {
        t.write(reg::STATUS, W, u64::from(t.status() | bits));
        t.read(reg::STATUS, W) as u32
    }

    fn accept(t: &mut MmioTransport<2>, features: u64) {
        t.write(reg::DRIVER_FEATURES_SEL, W, 0);
        t.write(reg::DRIVER_FEATURES, W, features & 0xffff_ffff);
        t.write(reg::DRIVER_FEATURES_SEL, W, 1);
        t.write(reg::DRIVER_FEATURES, W, features >> 32);
    }

    /// Up to FEATURES_OK with every offered feature accepted.
    fn negotiated() -> MmioTransport<2> {
        let mut t = transport();
        set_status(&mut t, status::ACKNOWLEDGE | status::DRIVER);
        accept(&mut t, FEATURES);
        assert_ne!(
            set_status(&mut t, status::FEATURES_OK) & status::FEATURES_OK,
            0
        );
        t
    }

    fn setup_queue(t: &mut MmioTransport<2>, q: u32, num: u32, base: u64) {
        t.write(reg::QUEUE_SEL, W, u64::from(q));
        t.write(reg::QUEUE_NUM, W, u64::from(num));
        for (low, addr) in [
            (reg::QUEUE_DESC_LOW, base),
            (reg::QUEUE_DRIVER_LOW, base.wrapping_add(0x1000)),
            (reg::QUEUE_DEVICE_LOW, base.wrapping_add(0x2000)),
        ] {
            t.write(low, W, addr & 0xffff_ffff);
            t.write(low + 4, W, addr >> 32);
        }
        t.write(reg::QUEUE_READY, W, 1);
    }

    #[test]
    fn identity_registers_read_as_a_version_2_device() {
        let t = transport();
        assert_eq!(t.read(reg::MAGIC_VALUE, W), 0x7472_6976);
        assert_eq!(t.read(reg::VERSION, W), 2);
        assert_eq!(t.read(reg::DEVICE_ID, W), 23);
        assert_eq!(t.read(reg::VENDOR_ID, W), u64::from(VENDOR_ID));
        assert_eq!(t.read(reg::CONFIG_GENERATION, W), 0);
        assert_eq!(t.read(reg::SHM_LEN_LOW, W), 0xffff_ffff);
        assert_eq!(t.read(reg::SHM_BASE_HIGH, W), 0xffff_ffff);
    }

    #[test]
    fn device_features_are_read_32_bits_at_a_time_by_selector() {
        let mut t = transport();
        assert_eq!(t.read(reg::DEVICE_FEATURES, W), 0b101);
        t.write(reg::DEVICE_FEATURES_SEL, W, 1);
        assert_eq!(t.read(reg::DEVICE_FEATURES, W), 1);
        t.write(reg::DEVICE_FEATURES_SEL, W, 2);
        assert_eq!(t.read(reg::DEVICE_FEATURES, W), 0);
    }

    #[test]
    fn control_registers_ignore_accesses_that_are_not_32_bit_aligned_words() {
        let mut t = transport();
        assert_eq!(t.read(reg::MAGIC_VALUE, AccessSize::Byte), 0);
        assert_eq!(t.read(reg::MAGIC_VALUE, AccessSize::Doubleword), 0);
        assert_eq!(t.read(reg::MAGIC_VALUE + 1, W), 0);
        t.write(reg::STATUS, AccessSize::Byte, 1);
        t.write(reg::STATUS + 2, W, 1);
        assert_eq!(t.status(), 0);
        // Write-only registers read 0; read-only ones ignore writes.
        assert_eq!(t.read(reg::QUEUE_NOTIFY, W), 0);
        assert_eq!(t.read(reg::DRIVER_FEATURES, W), 0);
        t.write(reg::MAGIC_VALUE, W, 0);
        assert_eq!(t.read(reg::MAGIC_VALUE, W), u64::from(MAGIC));
    }

    #[test]
    fn config_space_reads_little_endian_at_any_width_and_zero_beyond_its_end() {
        let mut t = transport();
        assert_eq!(t.read(reg::CONFIG, AccessSize::Byte), 0x11);
        assert_eq!(t.read(reg::CONFIG + 2, AccessSize::Halfword), 0x4433);
        assert_eq!(t.read(reg::CONFIG, W), 0x4433_2211);
        assert_eq!(
            t.read(reg::CONFIG + 1, AccessSize::Doubleword),
            0x9988_7766_5544_3322
        );
        assert_eq!(t.read(reg::CONFIG + 8, AccessSize::Halfword), 0);
        assert_eq!(t.read(reg::CONFIG + 0x1000, W), 0);
        assert_eq!(t.read(u64::MAX, AccessSize::Doubleword), 0);
        // Writes never change it.
        t.write(reg::CONFIG, AccessSize::Byte, 0xff);
        t.write(reg::CONFIG, W, 0xffff_ffff);
        assert_eq!(t.read(reg::CONFIG, AccessSize::Byte), 0x11);
    }

    #[test]
    fn features_are_not_in_effect_before_features_ok() {
        let mut t = transport();
        set_status(&mut t, status::ACKNOWLEDGE | status::DRIVER);
        accept(&mut t, FEATURES);
        assert_eq!(t.negotiated(), 0);
        set_status(&mut t, status::FEATURES_OK);
        assert_eq!(t.negotiated(), FEATURES);
    }

    #[test]
    fn features_ok_is_refused_for_features_not_offered_or_without_version_1() {
        for bad in [FEATURES | 1 << 1, 0b101, 0] {
            let mut t = transport();
            accept(&mut t, bad);
            assert_eq!(
                set_status(&mut t, status::FEATURES_OK) & status::FEATURES_OK,
                0,
                "{bad:#x}"
            );
            assert_eq!(t.negotiated(), 0);
        }
        let mut t = transport();
        accept(&mut t, FEATURES);
        t.write(reg::DRIVER_FEATURES_SEL, W, 2);
        t.write(reg::DRIVER_FEATURES, W, 1);
        assert_eq!(
            set_status(&mut t, status::FEATURES_OK) & status::FEATURES_OK,
            0
        );
        // A subset with VERSION_1 is fine.
        let mut t = transport();
        accept(&mut t, F_VERSION_1);
        assert_ne!(
            set_status(&mut t, status::FEATURES_OK) & status::FEATURES_OK,
            0
        );
    }

    #[test]
    fn feature_writes_after_features_ok_are_ignored() {
        let mut t = negotiated();
        t.write(reg::DRIVER_FEATURES_SEL, W, 0);
        t.write(reg::DRIVER_FEATURES, W, 0);
        assert_eq!(t.negotiated(), FEATURES);
    }

    #[test]
    fn driver_ok_needs_features_ok() {
        let mut t = transport();
        assert_eq!(set_status(&mut t, status::DRIVER_OK) & status::DRIVER_OK, 0);
        let mut t = negotiated();
        assert_ne!(set_status(&mut t, status::DRIVER_OK) & status::DRIVER_OK, 0);
    }

    #[test]
    fn the_driver_can_neither_clear_status_bits_nor_set_needs_reset() {
        let mut t = negotiated();
        let before = t.status();
        t.write(reg::STATUS, W, u64::from(status::ACKNOWLEDGE));
        assert_eq!(t.status(), before);
        t.write(
            reg::STATUS,
            W,
            u64::from(before | status::DEVICE_NEEDS_RESET),
        );
        assert_eq!(t.status(), before);
    }

    #[test]
    fn queues_are_configured_only_between_features_ok_and_driver_ok() {
        let mut t = transport();
        setup_queue(&mut t, 0, 64, 0x4000_0000);
        assert_eq!(t.read(reg::QUEUE_READY, W), 0, "before FEATURES_OK");
        let mut t = negotiated();
        setup_queue(&mut t, 0, 64, 0x4000_0000);
        assert_eq!(t.read(reg::QUEUE_READY, W), 1);
        set_status(&mut t, status::DRIVER_OK);
        assert!(t.live_queue(0).is_some());
        setup_queue(&mut t, 1, 8, 0x4001_0000);
        t.write(reg::QUEUE_SEL, W, 1);
        assert_eq!(t.read(reg::QUEUE_READY, W), 0, "after DRIVER_OK");
        assert!(t.live_queue(1).is_none());
        assert_eq!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn a_ready_queue_keeps_its_configuration_until_stopped() {
        let mut t = negotiated();
        setup_queue(&mut t, 0, 64, 0x4000_0000);
        let layout = *t.queues[0].queue.unwrap().layout();
        t.write(reg::QUEUE_NUM, W, 8);
        t.write(reg::QUEUE_DESC_LOW, W, 0x1230);
        assert_eq!(*t.queues[0].queue.unwrap().layout(), layout);
        assert_eq!(t.queues[0].num, 64);
        t.write(reg::QUEUE_READY, W, 0);
        assert_eq!(t.read(reg::QUEUE_READY, W), 0);
        t.write(reg::QUEUE_NUM, W, 8);
        assert_eq!(t.queues[0].num, 8);
    }

    #[test]
    fn enabling_an_unusable_queue_sets_needs_reset() {
        for (num, base) in [
            (0, 0x4000_0000),
            (48, 0x4000_0000),
            (128, 0x4000_0000),
            (64, 0x4000_0008),
        ] {
            let mut t = negotiated();
            setup_queue(&mut t, 0, num, base);
            assert_eq!(t.read(reg::QUEUE_READY, W), 0, "{num} {base:#x}");
            assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
            assert!(t.layout_error().is_some());
            // Not yet DRIVER_OK: no interrupt.
            assert!(!t.take_raise());
        }
        let mut t = negotiated();
        setup_queue(&mut t, 1, 8, u64::MAX - 0x3f);
        assert!(matches!(t.layout_error(), Some(LayoutError::Wraps { .. })));
    }

    #[test]
    fn queue_registers_of_a_queue_that_does_not_exist_read_zero() {
        let mut t = negotiated();
        t.write(reg::QUEUE_SEL, W, 2);
        assert_eq!(t.read(reg::QUEUE_NUM_MAX, W), 0);
        t.write(reg::QUEUE_READY, W, 1);
        assert_eq!(t.read(reg::QUEUE_READY, W), 0);
        assert_eq!(t.status() & status::DEVICE_NEEDS_RESET, 0);
        t.write(reg::QUEUE_SEL, W, 1);
        assert_eq!(t.read(reg::QUEUE_NUM_MAX, W), 8);
    }

    #[test]
    fn notify_names_the_queue_and_ignores_queues_that_do_not_exist() {
        let mut t = negotiated();
        assert_eq!(t.write(reg::QUEUE_NOTIFY, W, 1), Effect::Notify(1));
        assert_eq!(t.write(reg::QUEUE_NOTIFY, W, 2), Effect::None);
        assert_eq!(t.write(reg::QUEUE_NOTIFY, W, 0x1_0000), Effect::Notify(0));
    }

    #[test]
    fn queues_are_not_live_before_driver_ok_nor_after_needs_reset_or_failed() {
        let mut t = negotiated();
        setup_queue(&mut t, 0, 64, 0x4000_0000);
        assert!(t.live_queue(0).is_none());
        set_status(&mut t, status::DRIVER_OK);
        assert!(t.live_queue(0).is_some());
        set_status(&mut t, status::FAILED);
        assert!(t.live_queue(0).is_none());

        let mut t = negotiated();
        setup_queue(&mut t, 0, 64, 0x4000_0000);
        set_status(&mut t, status::DRIVER_OK);
        t.fail();
        assert!(t.live_queue(0).is_none());
        assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
        // After DRIVER_OK the driver is told by a config-change interrupt.
        assert_eq!(
            t.read(reg::INTERRUPT_STATUS, W),
            u64::from(interrupt::CONFIG_CHANGE)
        );
        assert!(t.take_raise());
        assert!(!t.take_raise());
    }

    #[test]
    fn reset_clears_status_features_queues_and_interrupts() {
        let mut t = negotiated();
        setup_queue(&mut t, 0, 64, 0x4000_0000);
        set_status(&mut t, status::DRIVER_OK);
        t.signal_used();
        t.fail();
        assert_eq!(t.write(reg::STATUS, W, 0), Effect::Reset);
        assert_eq!(t.status(), 0);
        assert_eq!(t.read(reg::INTERRUPT_STATUS, W), 0);
        assert_eq!(t.negotiated(), 0);
        assert!(t.layout_error().is_none());
        t.write(reg::QUEUE_SEL, W, 0);
        assert_eq!(t.read(reg::QUEUE_READY, W), 0);
        assert_eq!(t.queues[0].num, 0);
        assert_eq!(t.read(reg::CONFIG, AccessSize::Byte), 0x11);
        // The driver can start again.
        let mut t2 = t.clone();
        set_status(&mut t2, status::ACKNOWLEDGE);
        assert_eq!(t2.status(), status::ACKNOWLEDGE);
    }

    #[test]
    fn interrupt_ack_clears_only_the_acknowledged_bits() {
        let mut t = negotiated();
        set_status(&mut t, status::DRIVER_OK);
        t.signal_used();
        t.fail();
        assert_eq!(t.read(reg::INTERRUPT_STATUS, W), 3);
        t.write(reg::INTERRUPT_ACK, W, 1);
        assert_eq!(t.read(reg::INTERRUPT_STATUS, W), 2);
        t.write(reg::INTERRUPT_ACK, W, 2);
        assert_eq!(t.read(reg::INTERRUPT_STATUS, W), 0);
    }
}

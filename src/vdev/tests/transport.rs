//! The transport as a driver meets it through the device: negotiation,
//! queue set-up, reset, DEVICE_NEEDS_RESET, configuration space,
//! interrupts.

use super::backend::{DMA_RAM, DOORBELL, FakeBackend, HOLE, INPUT_END, PAGE_SIZE_MASK};
use super::driver::{self, Driver, Rig};
use crate::vdev::iommu_backend::{ReservedKind, ReservedRegion};
use crate::vdev::iommu_device::{ResetReason, VirtioIommu};
use crate::vdev::iommu_wire::{Request, Status, feature};
use crate::vdev::mmio_transport::{F_VERSION_1, interrupt, reg, status};
use crate::vdev::virtio_iommu::{OFFERED_FEATURES, PROBE_SIZE, SetupError};
use crate::vdev::virtqueue::QueueError;
use crate::vdev::{AccessSize, MmioDevice};

const EP: u32 = 0x8;
const ATTACH: Request = Request::Attach {
    domain: 1,
    endpoint: EP,
    flags: 0,
    reserved_set: false,
};

/// Publishes `req` and kicks; returns the used entries that came back.
fn kick_request(d: &mut Driver<'_>, req: Request) -> Vec<(u32, u32)> {
    let bytes = req.encode();
    let (head, _) = d.request_chain(&bytes, driver::reply_len(&bytes));
    d.publish(0, head);
    d.kick(0);
    d.take_used(0)
}

#[test]
fn the_device_offers_exactly_the_documented_features() {
    let rig = Rig::new();
    let dev = rig.device();
    let d = Driver::new(&dev, &rig.mem);
    let f = d.device_features();
    assert_eq!(f, OFFERED_FEATURES);
    assert_eq!(
        f,
        F_VERSION_1
            | feature::INPUT_RANGE
            | feature::DOMAIN_RANGE
            | feature::MAP_UNMAP
            | feature::PROBE
            | feature::MMIO
            | feature::BYPASS_CONFIG
    );
    // Not BYPASS, INDIRECT_DESC, EVENT_IDX, ACCESS_PLATFORM, RING_PACKED.
    for bit in [3, 28, 29, 33, 34] {
        assert_eq!(f & 1 << bit, 0, "bit {bit}");
    }
}

#[test]
fn config_space_reads_as_linux_reads_it() {
    let rig = Rig::new();
    let dev = rig.device();
    let cfg = |off: u64, size| dev.read(reg::CONFIG + off, size);
    let w = AccessSize::Word;
    // Linux reads 64-bit fields as two 32-bit halves.
    assert_eq!(cfg(0, w) | cfg(4, w) << 32, PAGE_SIZE_MASK);
    assert_eq!(cfg(8, w) | cfg(12, w) << 32, 0);
    assert_eq!(cfg(16, w) | cfg(20, w) << 32, INPUT_END);
    assert_eq!(
        (cfg(24, w), cfg(28, w)),
        (0, 15),
        "the backend's 16 domains"
    );
    assert_eq!(cfg(32, w), PROBE_SIZE as u64);
    assert_eq!(cfg(36, AccessSize::Byte), 0, "bypass");
    assert_eq!(dev.read(reg::CONFIG_GENERATION, w), 0);
}

#[test]
fn a_backend_the_device_cannot_describe_is_refused_at_setup() {
    let rig = Rig::new();
    let make = |f: &dyn Fn(&mut FakeBackend)| {
        let mut b = FakeBackend::new(rig.journal.clone());
        f(&mut b);
        VirtioIommu::new(b, &rig.mem, &rig.irq).err()
    };
    assert_eq!(
        make(&|b| b.page_size_mask = 0),
        Some(SetupError::NoPageSize)
    );
    assert_eq!(
        make(&|b| b.input_end = u64::MAX),
        Some(SetupError::BadInputRange)
    );
    assert_eq!(make(&|b| b.max_domains = 0), Some(SetupError::NoDomains));
    let bad = SetupError::BadReservedRegions;
    assert_eq!(
        make(&|b| b.reserved = vec![HOLE, DOORBELL]),
        Some(bad),
        "unsorted"
    );
    assert_eq!(
        make(&|b| b.reserved = vec![DOORBELL, DOORBELL]),
        Some(bad),
        "overlapping"
    );
    assert_eq!(
        make(&|b| b.reserved = vec![DOORBELL; 5]),
        Some(bad),
        "too many"
    );
    let unaligned = ReservedRegion {
        start: 0x1000,
        end: 0x1ffe,
        kind: ReservedKind::Reserved,
    };
    assert_eq!(make(&|b| b.reserved = vec![unaligned]), Some(bad));
    assert_eq!(make(&|b| b.reserved.clear()), None);
}

#[test]
fn features_written_without_features_ok_never_take_effect() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::new(&dev, &rig.mem);
    d.set_status(status::ACKNOWLEDGE | status::DRIVER);
    d.accept_features(OFFERED_FEATURES);
    // DRIVER_OK without FEATURES_OK is refused, and so are queues.
    d.set_status(status::DRIVER_OK);
    assert_eq!(d.status() & status::DRIVER_OK, 0);
    let rq = d.rq;
    d.write(reg::QUEUE_SEL, 0);
    d.write(reg::QUEUE_NUM, 64);
    d.write(reg::QUEUE_READY, 1);
    assert_eq!(d.read(reg::QUEUE_READY), 0);
    let _ = rq;
    assert!(kick_request(&mut d, ATTACH).is_empty());
    assert_eq!(dev.counts(), (0, 0));
    assert!(
        rig.journal
            .take()
            .iter()
            .all(|e| !matches!(e, super::memory::Event::Backend(_)))
    );
}

#[test]
fn no_buffer_is_consumed_before_driver_ok() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::new(&dev, &rig.mem);
    d.set_status(status::ACKNOWLEDGE | status::DRIVER);
    d.accept_features(OFFERED_FEATURES);
    d.set_status(status::FEATURES_OK);
    let rq = d.rq;
    d.setup_queue(&rq);
    assert!(kick_request(&mut d, ATTACH).is_empty());
    assert_eq!(dev.counts(), (0, 0));
    d.set_status(status::DRIVER_OK);
    d.kick(0);
    assert_eq!(d.take_used(0).len(), 1, "served at the next kick");
    assert_eq!(dev.counts(), (1, 1));
}

#[test]
fn queue_setup_after_driver_ok_is_ignored() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    d.write(reg::QUEUE_SEL, 0);
    d.write(reg::QUEUE_READY, 1);
    d.write(reg::QUEUE_NUM, 8);
    d.write(reg::QUEUE_DESC_LOW, 0x1230);
    d.write(reg::QUEUE_DEVICE_LOW, 0);
    assert_eq!(d.status() & status::DEVICE_NEEDS_RESET, 0);
    // Still served from where it was set up, with its size.
    assert_eq!(d.attach(1, EP), Status::Ok);
    for i in 0..20 {
        assert_eq!(d.detach(1, EP), Status::Ok, "{i}");
        assert_eq!(d.attach(1, EP), Status::Ok, "{i}");
    }
}

#[test]
fn reset_detaches_every_endpoint_and_frees_every_domain() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    assert_eq!(d.attach(1, EP), Status::Ok);
    assert_eq!(d.attach(2, EP + 1), Status::Ok);
    assert_eq!(d.map(1, 0x10_0000, 0x10_ffff, DMA_RAM.start, 3), Status::Ok);
    d.write(reg::STATUS, 0);
    assert_eq!(d.status(), 0);
    assert_eq!(dev.counts(), (0, 0));
    dev.with_backend(|b| {
        assert!(b.attached.is_empty());
        assert!(b.domains.is_empty());
        assert_eq!(b.total_refs(), 0);
    });
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 0);
    // The driver can bring it up again and reuse its domain ids.
    d.init(OFFERED_FEATURES);
    assert_eq!(d.attach(1, EP), Status::Ok);
    assert_eq!(dev.with_backend(|b| b.translate(EP, 0x10_0000)), None);
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
}

#[test]
fn needs_reset_stops_all_service_until_a_reset() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    let irqs = rig.irq.count();
    // A head beyond the queue.
    d.publish(0, 64);
    d.kick(0);
    assert!(d.needs_reset());
    assert_eq!(
        dev.reset_reason(),
        Some(ResetReason::Queue(QueueError::HeadOutOfRange { head: 64 }))
    );
    assert_eq!(d.take_used(0), []);
    // The driver hears of it through a configuration-change interrupt.
    assert_eq!(rig.irq.count(), irqs + 1);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), interrupt::CONFIG_CHANGE);
    // Nothing is served any more, on either queue.
    assert!(kick_request(&mut d, ATTACH).is_empty());
    dev.with_backend(|b| b.faults.push_back(super::faults::fault(EP)));
    assert_eq!(dev.deliver_faults(), 0);
    assert_eq!(dev.counts(), (0, 0));
    // A reset clears it.
    d.write(reg::STATUS, 0);
    assert!(!d.needs_reset());
    assert_eq!(dev.reset_reason(), None);
    d.init(OFFERED_FEATURES);
    assert_eq!(d.attach(1, EP), Status::Ok);
}

#[test]
fn a_used_buffer_interrupts_only_a_driver_that_wants_it() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    // Linux's request queue asks for no interrupt.
    let before = rig.irq.count();
    assert_eq!(d.attach(1, EP), Status::Ok);
    assert_eq!(rig.irq.count(), before);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 0);
    // Another driver may want one.
    rig.mem.poke(d.rq.avail, &0u16.to_le_bytes());
    assert_eq!(d.detach(1, EP), Status::Ok);
    assert_eq!(rig.irq.count(), before + 1);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), interrupt::USED_BUFFER);
    d.write(reg::INTERRUPT_ACK, interrupt::USED_BUFFER);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 0);
}

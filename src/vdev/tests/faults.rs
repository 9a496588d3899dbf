//! Fault reporting on the event queue (virtio 1.2 "Fault reporting").

use super::driver::{DESC_F_NEXT, DESC_F_WRITE, Driver, RawDesc, Rig};
use super::memory::EL2_BASE;
use crate::vdev::AccessSize;
use crate::vdev::iommu_backend::{Fault, FaultReason};
use crate::vdev::iommu_device::ResetReason;
use crate::vdev::iommu_wire::{FAULT_RECORD_LEN, fault_record};
use crate::vdev::mmio_transport::{interrupt, reg};
use crate::vdev::virtqueue::QueueError;

/// A write fault of `endpoint` at an unmapped address.
pub fn fault(endpoint: u32) -> Fault {
    Fault {
        endpoint,
        reason: FaultReason::Mapping,
        read: false,
        write: true,
        address: Some(0x20_0000 + u64::from(endpoint)),
    }
}

const RECORD: u32 = FAULT_RECORD_LEN as u32;

#[test]
fn a_fault_is_written_to_an_event_buffer_and_interrupts_the_driver() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    d.post_event_buffers(4, RECORD);
    let before = rig.irq.count();
    let domain_fault = Fault {
        endpoint: 9,
        reason: FaultReason::Domain,
        read: true,
        write: false,
        address: None,
    };
    dev.with_backend(|b| b.faults.extend([fault(8), domain_fault]));
    assert_eq!(dev.deliver_faults(), 2);
    let events = d.take_events();
    assert_eq!(
        events,
        [
            fault_record(&fault(8)).to_vec(),
            fault_record(&domain_fault).to_vec()
        ]
    );
    assert_eq!(rig.irq.count(), before + 1);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), interrupt::USED_BUFFER);
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
}

#[test]
fn reading_interrupt_status_delivers_waiting_faults_and_reports_them_in_the_same_read() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    d.post_event_buffers(4, RECORD);
    let before = rig.irq.count();
    // What the SMMU logged since; its own interrupt line told the driver.
    dev.with_backend(|b| b.faults.extend([fault(8), fault(9)]));
    assert_eq!(d.read(reg::INTERRUPT_STATUS), interrupt::USED_BUFFER);
    assert_eq!(rig.irq.count(), before, "no second interrupt for them");
    assert_eq!(
        d.take_events(),
        [
            fault_record(&fault(8)).to_vec(),
            fault_record(&fault(9)).to_vec()
        ]
    );
    d.write(reg::INTERRUPT_ACK, interrupt::USED_BUFFER);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 0, "nothing new");
}

#[test]
fn faults_wait_in_the_backend_until_the_driver_posts_buffers() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    dev.with_backend(|b| b.faults.extend([fault(8), fault(9), fault(10)]));
    assert_eq!(dev.deliver_faults(), 0);
    // Posting buffers (a kick of the event queue) delivers what waits.
    d.post_event_buffers(2, RECORD);
    assert_eq!(d.take_events().len(), 2);
    assert_eq!(dev.with_backend(|b| b.faults.len()), 1);
    d.post_event_buffers(1, RECORD);
    let events = d.take_events();
    assert_eq!(events, [fault_record(&fault(10)).to_vec()]);
    assert!(!d.needs_reset());
}

#[test]
fn faults_are_not_delivered_before_driver_ok() {
    let rig = Rig::new();
    let dev = rig.device();
    dev.with_backend(|b| b.faults.push_back(fault(8)));
    assert_eq!(dev.deliver_faults(), 0);
    assert_eq!(dev.with_backend(|b| b.faults.len()), 1, "still pending");
}

#[test]
fn an_event_buffer_too_short_or_device_readable_sets_needs_reset() {
    let short = [RawDesc {
        addr: 0,
        len: RECORD - 1,
        flags: DESC_F_WRITE,
        next: 0,
    }];
    let readable = [
        RawDesc {
            addr: 0,
            len: 8,
            flags: DESC_F_NEXT,
            next: u16::MAX,
        },
        RawDesc {
            addr: 0,
            len: RECORD,
            flags: DESC_F_WRITE,
            next: 0,
        },
    ];
    for chain in [&short[..], &readable[..]] {
        let rig = Rig::new();
        let dev = rig.device();
        let mut d = Driver::up(&dev, &rig.mem);
        let mut chain = chain.to_vec();
        for desc in &mut chain {
            desc.addr = d.buffer(&[], u64::from(desc.len));
        }
        let head = d.place(1, &chain);
        d.publish(1, head);
        dev.with_backend(|b| b.faults.push_back(fault(8)));
        d.kick(1);
        assert!(d.needs_reset());
        assert_eq!(
            dev.reset_reason(),
            Some(ResetReason::Queue(QueueError::BadEventBuffer { head }))
        );
        assert_eq!(rig.mem.violations(), Vec::<String>::new());
    }
}

#[test]
fn an_event_buffer_in_el2_memory_is_returned_unwritten() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    let head = d.place(
        1,
        &[RawDesc {
            addr: EL2_BASE,
            len: RECORD,
            flags: DESC_F_WRITE,
            next: 0,
        }],
    );
    d.publish(1, head);
    dev.with_backend(|b| b.faults.push_back(fault(8)));
    d.kick(1);
    assert_eq!(d.take_used(1), [(u32::from(head), 0)]);
    assert!(!d.needs_reset());
    assert_eq!(
        rig.mem.peek(EL2_BASE, FAULT_RECORD_LEN),
        [0; FAULT_RECORD_LEN]
    );
}

#[test]
fn a_malformed_event_buffer_does_not_consume_a_fault() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    d.post_event_buffers(1, 8);
    dev.with_backend(|b| b.faults.push_back(fault(8)));
    assert_eq!(dev.deliver_faults(), 0);
    assert!(d.needs_reset());
    assert_eq!(
        dev.with_backend(|b| b.faults.len()),
        1,
        "the fault waits in the backend for a reset driver's buffers"
    );
}

#[test]
fn an_interrupt_status_read_narrower_than_32_bits_delivers_no_fault() {
    for size in [
        AccessSize::Byte,
        AccessSize::Halfword,
        AccessSize::Doubleword,
    ] {
        let rig = Rig::new();
        let dev = rig.device();
        let mut d = Driver::up(&dev, &rig.mem);
        d.post_event_buffers(2, RECORD);
        let before = rig.irq.count();
        dev.with_backend(|b| b.faults.push_back(fault(8)));
        assert_eq!(
            dev.read_register(reg::INTERRUPT_STATUS, size),
            0,
            "{size:?}"
        );
        assert!(d.take_events().is_empty(), "{size:?}: nothing delivered");
        assert_eq!(rig.irq.count(), before);
        assert_eq!(dev.with_backend(|b| b.faults.len()), 1, "{size:?}");
        // The 32-bit read delivers it and reports it.
        let seen = dev.read_register(reg::INTERRUPT_STATUS, AccessSize::Word);
        assert_eq!(
            seen & u64::from(interrupt::USED_BUFFER),
            u64::from(interrupt::USED_BUFFER)
        );
        assert_eq!(d.take_events().len(), 1);
    }
}

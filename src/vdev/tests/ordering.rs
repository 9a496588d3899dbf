//! Ordering: what the device reads before what, and that a reply (and
//! its used-ring entry) exists only after the backend call returned, as
//! virtio 1.2 ("Supplying Buffers to The Device", "The Virtqueue Used
//! Ring") and the IOMMU's contract (tables, TLBI and CMD_SYNC complete
//! when the backend returns) require.

use super::backend::DMA_RAM;
use super::driver::{self, Driver, Rig};
use super::memory::Event;
use crate::vdev::iommu_wire::{Request, Status};

const EP: u32 = 0x8;

fn position(events: &[Event], what: impl Fn(&Event) -> bool) -> usize {
    events
        .iter()
        .position(what)
        .unwrap_or_else(|| panic!("missing event in {events:#?}"))
}

fn write_at(pa: u64) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Write { pa: p, ok: true, .. } if *p == pa)
}

fn read_at(pa: u64) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Read { pa: p, ok: true, .. } if *p == pa)
}

#[test]
fn every_reply_and_used_entry_is_written_after_the_backend_returned() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    let requests = [
        (
            Request::Attach {
                domain: 1,
                endpoint: EP,
                flags: 0,
                reserved_set: false,
            },
            "attach",
        ),
        (
            Request::Map {
                domain: 1,
                virt_start: 0x10_0000,
                virt_end: 0x10_0fff,
                phys_start: DMA_RAM.start,
                flags: 3,
            },
            "map",
        ),
        (
            Request::Unmap {
                domain: 1,
                virt_start: 0x10_0000,
                virt_end: 0x10_0fff,
                reserved_set: false,
            },
            "unmap",
        ),
        (
            Request::Detach {
                domain: 1,
                endpoint: EP,
            },
            "domain_free",
        ),
    ];
    for (req, last_call) in requests {
        let bytes = req.encode();
        let (head, back) = d.request_chain(&bytes, 4);
        let slot = u64::from(d.rq.avail_idx % d.rq.size);
        let used_elem = d.rq.used + 4 + 8 * u64::from(d.rq.last_used % d.rq.size);
        d.publish(0, head);
        rig.journal.take();
        d.kick(0);
        let ev = rig.journal.take();
        assert_eq!(d.collect(head, back, 4).status(), Some(Status::Ok));

        // Available index, then a read barrier, then the ring entry and
        // the descriptors it names.
        let avail_idx = position(&ev, read_at(d.rq.avail + 2));
        let barrier = position(&ev, |e| *e == Event::ReadBarrier);
        let ring = position(&ev, read_at(d.rq.avail + 4 + 2 * slot));
        let desc = position(&ev, read_at(d.rq.desc + 16 * u64::from(head)));
        assert!(
            avail_idx < barrier && barrier < ring && ring < desc,
            "{last_call}"
        );

        // The backend returned, then the reply, the used element, a
        // write barrier, the used index, a full barrier, the flags.
        let call = ev
            .iter()
            .rposition(|e| *e == Event::Backend(last_call))
            .expect("backend called");
        let reply = position(&ev, write_at(back));
        let elem = position(&ev, write_at(used_elem));
        let wbar = position(&ev, |e| *e == Event::WriteBarrier);
        let idx = position(&ev, write_at(d.rq.used + 2));
        let fbar = position(&ev, |e| *e == Event::FullBarrier);
        let flags = ev.iter().rposition(read_at(d.rq.avail)).unwrap();
        assert!(
            call < reply && reply < elem && elem < wbar && wbar < idx && idx < fbar && fbar < flags,
            "{last_call}: {ev:#?}"
        );
    }
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
}

/// Makes `n` MAPs of consecutive pages of domain 1 available, without a
/// kick; returns their heads.
fn publish_maps(d: &mut Driver<'_>, n: u64) -> Vec<u32> {
    (0..n)
        .map(|i| {
            let bytes = Request::Map {
                domain: 1,
                virt_start: 0x10_0000 + i * 0x1000,
                virt_end: 0x10_0fff + i * 0x1000,
                phys_start: DMA_RAM.start,
                flags: 3,
            }
            .encode();
            let (head, _) = d.request_chain(&bytes, 4);
            d.publish(0, head);
            u32::from(head)
        })
        .collect()
}

#[test]
fn one_kick_serves_every_request_made_available_before_it_in_ring_order() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    assert_eq!(d.attach(1, EP), Status::Ok);
    // Linux queues MAPs and kicks once (iotlb_sync_map).
    let heads = publish_maps(&mut d, 3);
    d.kick(0);
    let used: Vec<u32> = d.take_used(0).iter().map(|u| u.0).collect();
    assert_eq!(used, heads);
    assert_eq!(dev.with_backend(|b| b.mappings_of(EP).len()), 3);
    // Made available after the kick: served at the next one.
    let bytes = Request::Probe { endpoint: EP }.encode();
    let (head, _) = d.request_chain(&bytes, driver::reply_len(&bytes));
    d.publish(0, head);
    assert!(d.take_used(0).is_empty());
    d.kick(0);
    assert_eq!(d.take_used(0).len(), 1);
}

#[test]
fn a_batch_publishes_the_used_index_once_after_every_element_of_it() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    assert_eq!(d.attach(1, EP), Status::Ok);
    let first = d.rq.last_used;
    publish_maps(&mut d, 3);
    rig.journal.take();
    d.kick(0);
    let ev = rig.journal.take();
    let idx_writes: Vec<usize> = ev
        .iter()
        .enumerate()
        .filter(|(_, e)| write_at(d.rq.used + 2)(e))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(idx_writes.len(), 1, "one index update: {ev:#?}");
    let last_elem = (0..3u16)
        .map(|k| {
            let slot = u64::from(first.wrapping_add(k) % d.rq.size);
            position(&ev, write_at(d.rq.used + 4 + 8 * slot))
        })
        .max()
        .unwrap();
    let wbar = ev.iter().rposition(|e| *e == Event::WriteBarrier).unwrap();
    assert!(last_elem < wbar && wbar < idx_writes[0]);
    assert_eq!(d.take_used(0).len(), 3);
}

#[test]
fn requests_served_before_a_malformed_chain_are_still_returned() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    let bytes = Request::Probe { endpoint: EP }.encode();
    let (head, _) = d.request_chain(&bytes, driver::reply_len(&bytes));
    d.publish(0, head);
    // A head beyond the queue.
    d.publish(0, d.rq.size + 3);
    d.kick(0);
    assert_eq!(d.take_used(0).len(), 1, "the PROBE came back");
    assert!(d.needs_reset());
}

#[test]
fn ring_indices_wrap_past_2_to_the_16() {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    for i in 0..=u32::from(u16::MAX) + 10 {
        if i % 4096 == 0 {
            rig.journal.take();
        }
        assert_eq!(
            d.send(Request::Probe { endpoint: EP }).status(),
            Some(Status::Ok)
        );
    }
    assert_eq!(d.rq.avail_idx, 10);
    assert!(!d.needs_reset());
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
}

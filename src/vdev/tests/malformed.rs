//! Malformed queues and buffers: bad descriptor addresses (EL2's memory,
//! wrapping), lengths too small, chain loops, indices out of range,
//! indirect descriptors, a reply in a read-only descriptor. Each either
//! answers the request (`S_DEVERR`, `S_INVAL`), returns it unwritten, or
//! sets DEVICE_NEEDS_RESET; none panics, none reaches memory EL1 does not
//! own, none writes where virtio does not let the device write.

use super::driver::{
    self, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, Driver, RawDesc, Reply, Rig,
};
use super::memory::{EL2_BASE, Event, Journal};
use crate::vdev::iommu_device::ResetReason;
use crate::vdev::iommu_wire::{Request, Status};
use crate::vdev::mmio_transport::{reg, status};
use crate::vdev::virtio_iommu::{OFFERED_FEATURES, PROBE_SIZE};
use crate::vdev::virtqueue::{Area, LayoutError, MAX_CHAIN, QueueError};

const EP: u32 = 0x8;
const LINK: u16 = u16::MAX;

fn attach_bytes() -> Vec<u8> {
    Request::Attach {
        domain: 1,
        endpoint: EP,
        flags: 0,
        reserved_set: false,
    }
    .encode()
}

/// Backend calls and refused accesses in the journal since the last call.
fn drain(journal: &Journal) -> (usize, usize) {
    let events = journal.take();
    let calls = events
        .iter()
        .filter(|e| matches!(e, Event::Backend(_)))
        .count();
    let refused = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Read { ok: false, .. } | Event::Write { ok: false, .. }
            )
        })
        .count();
    (calls, refused)
}

/// Places `chain`, publishes and kicks it, and returns the used entries.
fn send_chain(d: &mut Driver<'_>, chain: &[RawDesc]) -> (u16, Vec<(u32, u32)>) {
    let head = d.place(0, chain);
    d.publish(0, head);
    d.kick(0);
    (head, d.take_used(0))
}

/// A descriptor linked to the one after it in the chain.
fn desc(addr: u64, len: u32, flags: u16) -> RawDesc {
    desc_to(addr, len, flags, LINK)
}

/// A descriptor whose `next` is `next`.
fn desc_to(addr: u64, len: u32, flags: u16, next: u16) -> RawDesc {
    RawDesc {
        addr,
        len,
        flags,
        next,
    }
}

/// A fresh device with a driver up, and the journal emptied.
fn with_up(f: impl FnOnce(&mut Driver<'_>, &Journal)) {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    rig.journal.take();
    f(&mut d, &rig.journal);
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
}

#[test]
fn a_request_split_over_several_descriptors_is_served() {
    with_up(|d, _| {
        let bytes = attach_bytes();
        let a = d.buffer(&bytes[..3], 3);
        let b = d.buffer(&bytes[3..11], 8);
        let c = d.buffer(&bytes[11..], 9);
        let r1 = d.buffer(&[], 1);
        let r2 = d.buffer(&[], 3);
        let (head, used) = send_chain(
            d,
            &[
                desc(a, 3, DESC_F_NEXT),
                desc(b, 8, DESC_F_NEXT),
                desc(c, 9, DESC_F_NEXT),
                desc(r1, 1, DESC_F_WRITE | DESC_F_NEXT),
                desc(r2, 3, DESC_F_WRITE),
            ],
        );
        assert_eq!(used, [(u32::from(head), 4)]);
        assert_eq!(d.mem.peek(r1, 1), [Status::Ok as u8]);
        assert_eq!(d.mem.peek(r2, 3), [0, 0, 0]);
        assert_eq!(d.dev.counts(), (1, 1));
    });
}

#[test]
fn a_request_body_el1_does_not_own_answers_deverr_and_is_not_executed() {
    // In EL2's memory, and wrapping around the top of the address space.
    for addr in [EL2_BASE, u64::MAX - 7] {
        with_up(|d, journal| {
            let bytes = attach_bytes();
            let head_buf = d.buffer(&bytes[..4], 4);
            let reply = d.buffer(&[], 4);
            let (_, used) = send_chain(
                d,
                &[
                    desc(head_buf, 4, DESC_F_NEXT),
                    desc(addr, 16, DESC_F_NEXT),
                    desc(reply, 4, DESC_F_WRITE),
                ],
            );
            assert_eq!(used[0].1, 4, "{addr:#x}");
            assert_eq!(d.mem.peek(reply, 1), [Status::DevErr as u8]);
            assert_eq!(drain(journal), (0, 1));
            assert!(!d.needs_reset());
        });
    }
}

#[test]
fn a_request_whose_head_cannot_be_read_is_returned_unwritten() {
    for addr in [EL2_BASE, u64::MAX - 3, 0] {
        with_up(|d, journal| {
            let reply = d.buffer(&[0x55; 4], 4);
            let (_, used) = send_chain(
                d,
                &[desc(addr, 20, DESC_F_NEXT), desc(reply, 4, DESC_F_WRITE)],
            );
            assert_eq!(used[0].1, 0, "{addr:#x}");
            assert_eq!(d.mem.peek(reply, 4), [0x55; 4]);
            assert_eq!(drain(journal), (0, 1));
        });
    }
}

#[test]
fn a_reply_buffer_in_el2_memory_leaves_the_request_unexecuted() {
    with_up(|d, journal| {
        let bytes = attach_bytes();
        let out = d.buffer(&bytes, bytes.len() as u64);
        let (_, used) = send_chain(
            d,
            &[
                desc(out, bytes.len() as u32, DESC_F_NEXT),
                desc(EL2_BASE, 4, DESC_F_WRITE),
            ],
        );
        assert_eq!(used[0].1, 0);
        let (calls, _) = drain(journal);
        assert_eq!(calls, 0);
        assert_eq!(d.dev.counts(), (0, 0));
        assert_eq!(d.mem.peek(EL2_BASE, 4), [0; 4]);
    });
}

#[test]
fn a_reply_buffer_too_short_leaves_the_request_unexecuted() {
    let probe = Request::Probe { endpoint: EP }.encode();
    for (bytes, reply_len) in [(attach_bytes(), 3), (attach_bytes(), 0), (probe, 3)] {
        with_up(|d, journal| {
            let out = d.buffer(&bytes, bytes.len() as u64);
            let back = d.buffer(&[0x55; 4], 4 + u64::from(reply_len));
            let (_, used) = send_chain(
                d,
                &[
                    desc(out, bytes.len() as u32, DESC_F_NEXT),
                    desc(back, reply_len, DESC_F_WRITE),
                ],
            );
            assert_eq!(used[0].1, 0, "{reply_len}");
            assert_eq!(drain(journal).0, 0);
            assert_eq!(d.mem.peek(back, 4), [0x55; 4]);
        });
    }
}

#[test]
fn a_probe_with_room_for_the_tail_but_not_the_properties_is_inval_at_the_end_of_its_buffer() {
    let probe = Request::Probe { endpoint: EP }.encode();
    for reply_len in [4u32, 5, PROBE_SIZE as u32 + 3] {
        with_up(|d, journal| {
            let out = d.buffer(&probe, probe.len() as u64);
            let back = d.buffer(&[0x55; PROBE_SIZE + 4], u64::from(reply_len));
            let (_, used) = send_chain(
                d,
                &[
                    desc(out, probe.len() as u32, DESC_F_NEXT),
                    desc(back, reply_len, DESC_F_WRITE),
                ],
            );
            assert_eq!(used[0].1, reply_len, "the whole buffer is used");
            assert_eq!(drain(journal).0, 0, "not executed");
            let tail = back + u64::from(reply_len) - 4;
            assert_eq!(d.mem.peek(tail, 4), [Status::Inval as u8, 0, 0, 0]);
            assert!(
                d.mem
                    .peek(back, reply_len as usize - 4)
                    .iter()
                    .all(|&b| b == 0x55),
                "no property written"
            );
        });
    }
}

#[test]
fn a_request_with_no_writable_part_is_never_written() {
    with_up(|d, journal| {
        // The tail sits in a device-readable descriptor.
        let mut bytes = attach_bytes();
        bytes.extend_from_slice(&[0x55; 4]);
        let out = d.buffer(&bytes, bytes.len() as u64);
        let (_, used) = send_chain(d, &[desc(out, bytes.len() as u32, 0)]);
        assert_eq!(used[0].1, 0);
        assert_eq!(drain(journal).0, 0);
        assert_eq!(d.mem.peek(out + 20, 4), [0x55; 4]);
    });
}

/// Sends a malformed chain and checks the device gave up on the queue
/// for `expect`, executing nothing and touching no refused memory more
/// than once.
fn assert_breaks_queue(
    chain: impl FnOnce(&mut Driver<'_>) -> Vec<RawDesc>,
    expect: impl FnOnce(u16) -> QueueError,
) {
    with_up(|d, journal| {
        let chain = chain(d);
        let (head, used) = send_chain(d, &chain);
        assert!(used.is_empty());
        assert!(d.needs_reset());
        assert_eq!(d.dev.reset_reason(), Some(ResetReason::Queue(expect(head))));
        let (calls, refused) = drain(journal);
        assert_eq!(calls, 0);
        assert!(refused <= 1);
    });
}

#[test]
fn a_chain_that_loops_sets_needs_reset() {
    // Two descriptors naming each other.
    assert_breaks_queue(
        |d| {
            let b = d.buffer(&attach_bytes(), 20);
            let head = d.rq.next_desc;
            vec![desc(b, 20, DESC_F_NEXT), desc_to(b, 4, DESC_F_NEXT, head)]
        },
        |head| QueueError::ChainTooLong { head },
    );
    // One descriptor naming itself.
    assert_breaks_queue(
        |d| {
            let b = d.buffer(&attach_bytes(), 20);
            vec![desc_to(b, 20, DESC_F_NEXT, d.rq.next_desc)]
        },
        |head| QueueError::ChainTooLong { head },
    );
}

#[test]
fn a_chain_longer_than_the_limit_sets_needs_reset() {
    assert_breaks_queue(
        |d| {
            let b = d.buffer(&attach_bytes(), 20);
            let mut chain = vec![desc(b, 1, DESC_F_NEXT); MAX_CHAIN];
            chain.push(desc(b, 4, DESC_F_WRITE));
            chain
        },
        |head| QueueError::ChainTooLong { head },
    );
}

#[test]
fn a_next_index_beyond_the_table_sets_needs_reset() {
    assert_breaks_queue(
        |d| {
            let b = d.buffer(&attach_bytes(), 20);
            vec![desc_to(b, 20, DESC_F_NEXT, d.rq.size)]
        },
        |_| QueueError::NextOutOfRange { next: 64 },
    );
}

#[test]
fn an_indirect_descriptor_sets_needs_reset() {
    assert_breaks_queue(
        |d| {
            let table = d.buffer(&[0; 32], 32);
            vec![desc_to(table, 32, DESC_F_INDIRECT, 0)]
        },
        |head| QueueError::Indirect { head },
    );
}

#[test]
fn a_readable_descriptor_after_a_writable_one_sets_needs_reset() {
    assert_breaks_queue(
        |d| {
            let b = d.buffer(&attach_bytes(), 20);
            let r = d.buffer(&[], 4);
            vec![desc(r, 4, DESC_F_WRITE | DESC_F_NEXT), desc_to(b, 20, 0, 0)]
        },
        |head| QueueError::ReadableAfterWritable { head },
    );
}

#[test]
fn a_head_index_beyond_the_table_sets_needs_reset() {
    with_up(|d, journal| {
        d.publish(0, 0xffff);
        d.kick(0);
        assert!(d.needs_reset());
        assert_eq!(
            d.dev.reset_reason(),
            Some(ResetReason::Queue(QueueError::HeadOutOfRange {
                head: 0xffff
            }))
        );
        assert_eq!(drain(journal), (0, 0));
    });
}

#[test]
fn an_available_index_too_far_ahead_sets_needs_reset() {
    with_up(|d, journal| {
        let idx = d.rq.size + 1;
        d.mem.poke(d.rq.avail + 2, &idx.to_le_bytes());
        d.kick(0);
        assert!(d.needs_reset());
        assert_eq!(
            d.dev.reset_reason(),
            Some(ResetReason::Queue(QueueError::AvailIndexJump {
                avail: idx,
                seen: 0
            }))
        );
        assert_eq!(drain(journal), (0, 0));
    });
}

#[test]
fn a_queue_area_in_el2_memory_sets_needs_reset_at_the_first_request_without_executing_it() {
    for area in [Area::Descriptors, Area::Available, Area::Used] {
        let rig = Rig::new();
        let dev = rig.device();
        let mut d = Driver::new(&dev, &rig.mem);
        let mut rq = driver::linux_request_queue();
        match area {
            Area::Descriptors => rq.desc = EL2_BASE,
            Area::Available => rq.avail = EL2_BASE + 0x1000,
            Area::Used => rq.used = EL2_BASE + 0x2000,
        }
        d.init_with(OFFERED_FEATURES, rq);
        rig.journal.take();
        let (head, _) = d.request_chain(&attach_bytes(), 4);
        d.publish(0, head);
        d.kick(0);
        assert!(d.needs_reset(), "{area}");
        assert!(matches!(
            dev.reset_reason(),
            Some(ResetReason::Queue(QueueError::Memory(_)))
        ));
        let (calls, refused) = drain(&rig.journal);
        // A used ring the device could not write is found before the
        // request runs, by a check that makes no access.
        assert_eq!(calls, 0, "{area}");
        assert_eq!(refused, usize::from(area != Area::Used), "{area}");
        assert_eq!(rig.mem.violations(), Vec::<String>::new());
    }
}

#[test]
fn enabling_a_misaligned_or_oversized_queue_sets_needs_reset() {
    let misaligned = LayoutError::Misaligned {
        area: Area::Descriptors,
        pa: super::driver::REQ_QUEUE_BASE + 8,
    };
    for (num, desc_offset, expect) in [
        (64u32, 8u64, misaligned),
        (48, 0, LayoutError::BadSize { size: 48 }),
        (128, 0, LayoutError::BadSize { size: 128 }),
    ] {
        let rig = Rig::new();
        let dev = rig.device();
        let d = Driver::new(&dev, &rig.mem);
        d.set_status(status::ACKNOWLEDGE | status::DRIVER);
        d.accept_features(OFFERED_FEATURES);
        d.set_status(status::FEATURES_OK);
        d.write(reg::QUEUE_SEL, 0);
        d.write(reg::QUEUE_NUM, num);
        d.write(reg::QUEUE_DESC_LOW, (d.rq.desc + desc_offset) as u32);
        d.write(reg::QUEUE_READY, 1);
        assert!(d.needs_reset());
        assert_eq!(dev.reset_reason(), Some(ResetReason::Layout(expect)));
    }
}

#[test]
fn a_malformed_request_does_not_disturb_the_next_one() {
    with_up(|d, _| {
        let reply = d.buffer(&[], 4);
        let (_, used) = send_chain(
            d,
            &[
                desc(EL2_BASE, 20, DESC_F_NEXT),
                desc(reply, 4, DESC_F_WRITE),
            ],
        );
        assert_eq!(used[0].1, 0);
        assert_eq!(
            d.send(Request::Probe { endpoint: EP }).status(),
            Some(Status::Ok)
        );
        assert!(matches!(
            d.send_bytes(&attach_bytes()),
            Reply::Answered { .. }
        ));
    });
}

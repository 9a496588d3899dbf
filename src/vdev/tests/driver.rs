//! A virtio-iommu driver for host tests, written from the virtio spec the
//! way Linux's `virtio_mmio` and `virtio-iommu` drivers use the device:
//! it initializes the transport, lays out split queues in the test
//! memory, builds descriptor chains (well-formed or not), kicks through
//! `QueueNotify` and reads the used ring back.

use std::sync::atomic::{AtomicU32, Ordering};
use std::vec::Vec;

use super::backend::FakeBackend;
use super::memory::{Journal, RAM_BASE, TestMemory};
use crate::vdev::iommu_backend::IommuBackend;
use crate::vdev::iommu_device::VirtioIommu;
use crate::vdev::iommu_wire::{Request, Status, TAIL_LEN, req_type};
use crate::vdev::mmio_transport::{reg, status};
use crate::vdev::virtio_iommu::{OFFERED_FEATURES, PROBE_SIZE};
use crate::vdev::{AccessSize, InterruptLine};

/// Counts raised interrupts.
#[derive(Default)]
pub struct CountingIrq(pub AtomicU32);

impl CountingIrq {
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

impl InterruptLine for CountingIrq {
    fn raise(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub type Device<'m, B = FakeBackend> = VirtioIommu<B, &'m TestMemory, &'m CountingIrq>;

/// Where each queue lives, and where buffers are carved from.
pub const REQ_QUEUE_BASE: u64 = RAM_BASE;
pub const EVT_QUEUE_BASE: u64 = RAM_BASE + 0x4000;
pub const BUFFERS: u64 = RAM_BASE + 0x10000;
pub const BUFFERS_END: u64 = RAM_BASE + 0x100000;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;

/// The driver's side of one split queue.
#[derive(Clone, Copy, Debug)]
pub struct DriverQueue {
    pub index: u16,
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub avail_idx: u16,
    pub last_used: u16,
    /// Next descriptor to hand out (descriptors are reused round-robin).
    pub next_desc: u16,
}

impl DriverQueue {
    /// Queue `index` of `size` entries with its areas from `base`.
    pub fn at(index: u16, size: u16, base: u64) -> Self {
        Self {
            index,
            size,
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
            avail_idx: 0,
            last_used: 0,
            next_desc: 0,
        }
    }
}

/// One descriptor as the driver writes it.
#[derive(Clone, Copy, Debug)]
pub struct RawDesc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

/// What came back for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Used length 0: the device did not answer.
    Unanswered,
    Answered {
        status: u8,
        properties: Vec<u8>,
    },
}

impl Reply {
    pub fn status(&self) -> Option<Status> {
        let Self::Answered { status, .. } = self else {
            return None;
        };
        [
            Status::Ok,
            Status::IoErr,
            Status::Unsupp,
            Status::DevErr,
            Status::Inval,
            Status::Range,
            Status::NoEnt,
            Status::Fault,
            Status::NoMem,
        ]
        .into_iter()
        .find(|s| *s as u8 == *status)
    }
}

/// The request queue Linux would set up.
pub fn linux_request_queue() -> DriverQueue {
    DriverQueue::at(0, 64, REQ_QUEUE_BASE)
}

/// The reply length a request of this type has.
pub fn reply_len(bytes: &[u8]) -> u64 {
    (TAIL_LEN
        + if bytes.first() == Some(&req_type::PROBE) {
            PROBE_SIZE
        } else {
            0
        }) as u64
}

pub struct Driver<'m, B: IommuBackend = FakeBackend> {
    pub dev: &'m Device<'m, B>,
    pub mem: &'m TestMemory,
    pub rq: DriverQueue,
    pub eq: DriverQueue,
    next_buffer: u64,
    /// Event buffers posted, by head.
    event_buffers: Vec<(u16, u64)>,
}

/// A device over a fresh fake backend and test memory.
pub struct Rig {
    pub journal: Journal,
    pub mem: TestMemory,
    pub irq: CountingIrq,
}

impl Rig {
    pub fn new() -> Self {
        let journal = Journal::default();
        Self {
            mem: TestMemory::new(journal.clone()),
            journal,
            irq: CountingIrq::default(),
        }
    }

    pub fn device(&self) -> Device<'_> {
        self.device_with(|_| {})
    }

    pub fn device_with(&self, f: impl FnOnce(&mut FakeBackend)) -> Device<'_> {
        let mut b = FakeBackend::new(self.journal.clone());
        f(&mut b);
        VirtioIommu::new(b, &self.mem, &self.irq).unwrap()
    }
}

impl<'m, B: IommuBackend> Driver<'m, B> {
    pub fn new(dev: &'m Device<'m, B>, mem: &'m TestMemory) -> Self {
        Self {
            dev,
            mem,
            rq: linux_request_queue(),
            eq: DriverQueue::at(1, 16, EVT_QUEUE_BASE),
            next_buffer: BUFFERS,
            event_buffers: Vec::new(),
        }
    }

    /// A driver that brought the device up as Linux does, accepting every
    /// feature offered.
    pub fn up(dev: &'m Device<'m, B>, mem: &'m TestMemory) -> Self {
        let mut d = Self::new(dev, mem);
        d.init(OFFERED_FEATURES);
        d
    }

    pub fn read(&self, offset: u64) -> u32 {
        self.dev.read_register(offset, AccessSize::Word) as u32
    }

    pub fn write(&self, offset: u64, value: u32) {
        self.dev
            .write_register(offset, AccessSize::Word, u64::from(value));
    }

    pub fn status(&self) -> u32 {
        self.read(reg::STATUS)
    }

    pub fn needs_reset(&self) -> bool {
        self.status() & status::DEVICE_NEEDS_RESET != 0
    }

    pub fn device_features(&self) -> u64 {
        self.write(reg::DEVICE_FEATURES_SEL, 1);
        let high = self.read(reg::DEVICE_FEATURES);
        self.write(reg::DEVICE_FEATURES_SEL, 0);
        u64::from(high) << 32 | u64::from(self.read(reg::DEVICE_FEATURES))
    }

    pub fn set_status(&self, bits: u32) {
        self.write(reg::STATUS, self.status() | bits);
    }

    pub fn accept_features(&self, features: u64) {
        self.write(reg::DRIVER_FEATURES_SEL, 0);
        self.write(reg::DRIVER_FEATURES, features as u32);
        self.write(reg::DRIVER_FEATURES_SEL, 1);
        self.write(reg::DRIVER_FEATURES, (features >> 32) as u32);
    }

    /// Zeroes a queue's memory and programs its registers.
    pub fn setup_queue(&self, q: &DriverQueue) {
        let n = u64::from(q.size);
        for (pa, len) in [(q.desc, 16 * n), (q.avail, 6 + 2 * n), (q.used, 6 + 8 * n)] {
            self.mem.poke(pa, &vec![0; len as usize]);
        }
        self.write(reg::QUEUE_SEL, u32::from(q.index));
        assert_eq!(self.read(reg::QUEUE_READY), 0);
        assert!(self.read(reg::QUEUE_NUM_MAX) >= u32::from(q.size));
        self.write(reg::QUEUE_NUM, u32::from(q.size));
        for (low, pa) in [
            (reg::QUEUE_DESC_LOW, q.desc),
            (reg::QUEUE_DRIVER_LOW, q.avail),
            (reg::QUEUE_DEVICE_LOW, q.used),
        ] {
            self.write(low, pa as u32);
            self.write(low + 4, (pa >> 32) as u32);
        }
        self.write(reg::QUEUE_READY, 1);
        let used_len = 6 + 8 * u64::from(q.size);
        self.mem.set_device_writable(q.used, used_len, true);
    }

    /// Linux's sequence: reset, ACKNOWLEDGE, DRIVER, features,
    /// FEATURES_OK, queues, DRIVER_OK.
    pub fn init(&mut self, features: u64) {
        self.init_with(features, linux_request_queue());
    }

    /// [`init`](Self::init) with the request queue at `rq`.
    pub fn init_with(&mut self, features: u64, rq: DriverQueue) {
        self.write(reg::STATUS, 0);
        assert_eq!(self.status(), 0);
        assert_eq!(self.read(reg::MAGIC_VALUE), 0x7472_6976);
        assert_eq!(self.read(reg::VERSION), 2);
        assert_eq!(self.read(reg::DEVICE_ID), 23);
        self.set_status(status::ACKNOWLEDGE | status::DRIVER);
        assert_eq!(self.device_features(), OFFERED_FEATURES);
        self.accept_features(features);
        self.set_status(status::FEATURES_OK);
        assert_ne!(self.status() & status::FEATURES_OK, 0, "features refused");
        self.rq = rq;
        self.eq = DriverQueue::at(1, 16, EVT_QUEUE_BASE);
        let (rq, eq) = (self.rq, self.eq);
        self.setup_queue(&rq);
        self.setup_queue(&eq);
        // Linux's request queue has no callback: no interrupts for it.
        self.mem.poke(self.rq.avail, &1u16.to_le_bytes());
        self.set_status(status::DRIVER_OK);
        assert_eq!(self.status() & status::DRIVER_OK, status::DRIVER_OK);
        assert!(!self.needs_reset(), "queue memory is checked at use");
        self.event_buffers.clear();
    }

    /// A buffer of `len` bytes holding `data` (zero-filled past it).
    pub fn buffer(&mut self, data: &[u8], len: u64) -> u64 {
        let pa = self.next_buffer;
        let end = (pa + len.max(1)).next_multiple_of(16);
        assert!(end <= BUFFERS_END, "test buffers exhausted");
        self.next_buffer = if end + 0x1000 > BUFFERS_END {
            BUFFERS
        } else {
            end
        };
        let mut bytes = data.to_vec();
        bytes.resize(len as usize, 0);
        self.mem.poke(pa, &bytes);
        pa
    }

    fn queue(&mut self, index: u16) -> &mut DriverQueue {
        if index == 0 {
            &mut self.rq
        } else {
            &mut self.eq
        }
    }

    /// Writes `chain` into descriptors taken round-robin, linking them
    /// unless a descriptor already says otherwise (`next` of `u16::MAX`
    /// means "link to the following one"), and returns the head. The
    /// writable buffers become device-writable in the audit.
    pub fn place(&mut self, index: u16, chain: &[RawDesc]) -> u16 {
        let mem = self.mem;
        let q = self.queue(index);
        let ids: Vec<u16> = (0..chain.len() as u16)
            .map(|i| (q.next_desc + i) % q.size)
            .collect();
        q.next_desc = (q.next_desc + chain.len() as u16) % q.size;
        for (i, d) in chain.iter().enumerate() {
            let next = if d.next == u16::MAX {
                ids.get(i + 1).copied().unwrap_or(0)
            } else {
                d.next
            };
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&d.addr.to_le_bytes());
            raw[8..12].copy_from_slice(&d.len.to_le_bytes());
            raw[12..14].copy_from_slice(&d.flags.to_le_bytes());
            raw[14..].copy_from_slice(&next.to_le_bytes());
            mem.poke(q.desc + 16 * u64::from(ids[i]), &raw);
            if d.flags & DESC_F_WRITE != 0 {
                mem.set_device_writable(d.addr, u64::from(d.len), true);
            }
        }
        ids[0]
    }

    /// Publishes `head` in the available ring (without kicking).
    pub fn publish(&mut self, index: u16, head: u16) {
        let mem = self.mem;
        let q = self.queue(index);
        let slot = u64::from(q.avail_idx % q.size);
        mem.poke(q.avail + 4 + 2 * slot, &head.to_le_bytes());
        q.avail_idx = q.avail_idx.wrapping_add(1);
        mem.poke(q.avail + 2, &q.avail_idx.to_le_bytes());
    }

    pub fn kick(&self, index: u16) {
        self.write(reg::QUEUE_NOTIFY, u32::from(index));
    }

    /// Used entries returned since the last call: (id, len).
    pub fn take_used(&mut self, index: u16) -> Vec<(u32, u32)> {
        let mem = self.mem;
        let q = self.queue(index);
        let idx = mem.peek16(q.used + 2);
        let mut out = Vec::new();
        while q.last_used != idx {
            let slot = u64::from(q.last_used % q.size);
            let e = q.used + 4 + 8 * slot;
            out.push((mem.peek32(e), mem.peek32(e + 4)));
            q.last_used = q.last_used.wrapping_add(1);
        }
        out
    }

    /// A well-formed chain for `bytes`: one readable descriptor, one
    /// writable of `reply_len`. Returns the head and the reply's address.
    pub fn request_chain(&mut self, bytes: &[u8], reply_len: u64) -> (u16, u64) {
        let out = self.buffer(bytes, bytes.len() as u64);
        let back = self.buffer(&[0xaa; 4], reply_len);
        let head = self.place(
            0,
            &[
                RawDesc {
                    addr: out,
                    len: bytes.len() as u32,
                    flags: DESC_F_NEXT,
                    next: u16::MAX,
                },
                RawDesc {
                    addr: back,
                    len: reply_len as u32,
                    flags: DESC_F_WRITE,
                    next: 0,
                },
            ],
        );
        (head, back)
    }

    /// Sends raw request bytes and waits (synchronously) for the reply.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Reply {
        let reply_len = reply_len(bytes);
        let (head, back) = self.request_chain(bytes, reply_len);
        self.publish(0, head);
        self.kick(0);
        self.collect(head, back, reply_len)
    }

    /// Reads the reply of chain `head` from the used ring.
    pub fn collect(&mut self, head: u16, back: u64, reply_len: u64) -> Reply {
        let used = self.take_used(0);
        assert_eq!(used.len(), 1, "one request, one used entry: {used:?}");
        assert_eq!(used[0].0, u32::from(head));
        self.mem.set_device_writable(back, reply_len, false);
        match used[0].1 {
            0 => Reply::Unanswered,
            len => {
                assert_eq!(u64::from(len), reply_len);
                let bytes = self.mem.peek(back, reply_len as usize);
                let (props, tail) = bytes.split_at(reply_len as usize - TAIL_LEN);
                assert_eq!(&tail[1..], &[0, 0, 0], "tail reserved bytes");
                Reply::Answered {
                    status: tail[0],
                    properties: props.to_vec(),
                }
            }
        }
    }

    pub fn send(&mut self, req: Request) -> Reply {
        self.send_bytes(&req.encode())
    }

    /// Sends `req` and returns its status (panics if unanswered).
    pub fn status_of(&mut self, req: Request) -> Status {
        self.send(req).status().expect("request unanswered")
    }

    pub fn attach(&mut self, domain: u32, endpoint: u32) -> Status {
        self.status_of(Request::Attach {
            domain,
            endpoint,
            flags: 0,
            reserved_set: false,
        })
    }

    pub fn detach(&mut self, domain: u32, endpoint: u32) -> Status {
        self.status_of(Request::Detach { domain, endpoint })
    }

    pub fn map(
        &mut self,
        domain: u32,
        virt_start: u64,
        virt_end: u64,
        phys_start: u64,
        flags: u32,
    ) -> Status {
        self.status_of(Request::Map {
            domain,
            virt_start,
            virt_end,
            phys_start,
            flags,
        })
    }

    pub fn unmap(&mut self, domain: u32, virt_start: u64, virt_end: u64) -> Status {
        self.status_of(Request::Unmap {
            domain,
            virt_start,
            virt_end,
            reserved_set: false,
        })
    }

    /// Posts `n` event buffers of `len` bytes and kicks the event queue.
    pub fn post_event_buffers(&mut self, n: usize, len: u32) {
        for _ in 0..n {
            let pa = self.buffer(&[], u64::from(len));
            let head = self.place(
                1,
                &[RawDesc {
                    addr: pa,
                    len,
                    flags: DESC_F_WRITE,
                    next: 0,
                }],
            );
            self.event_buffers.push((head, pa));
            self.publish(1, head);
        }
        self.kick(1);
    }

    /// Fault records returned since the last call.
    pub fn take_events(&mut self) -> Vec<Vec<u8>> {
        let used = self.take_used(1);
        used.into_iter()
            .map(|(id, len)| {
                let pa = self
                    .event_buffers
                    .iter()
                    .rev()
                    .find(|(h, _)| u32::from(*h) == id)
                    .expect("unknown event head")
                    .1;
                self.mem.peek(pa, len as usize)
            })
            .collect()
    }
}

//! The virtio-iommu device on its virtio-mmio window: the transport, the
//! two queues and the request semantics behind one lock.
//!
//! Requests are served synchronously inside the `QueueNotify` write that
//! announces them (Linux's driver polls the request queue with interrupts
//! off): when the write returns, every request made available before it
//! has been executed, and its reply and used-ring entry written. Faults
//! are written to the event queue ([`VirtioIommu::deliver_faults`]) when
//! the driver reads `InterruptStatus` (its interrupt handler does, first
//! thing), when it posts event buffers, and whenever the glue calls.
//!
//! Per request, in order: its head is copied (4 bytes) and its type
//! decides how many bytes it has and how long its reply is; the writable
//! part is checked to hold the reply; the rest of the request is copied;
//! the backend executes it; the reply (properties, then the status in the
//! tail) is written at the start of the writable part; then the used
//! ring. A request the device cannot answer (unknown type, head or reply
//! buffer unusable) is returned unwritten, with used length 0 (virtio
//! 1.2: the driver treats it as failed). A queue the device cannot trust
//! sets `DEVICE_NEEDS_RESET` and nothing more is served until a reset.
//!
//! Lock order: the device lock, then whatever the backend takes (the
//! IOMMU service's locks). The interrupt is raised after the lock is
//! dropped.

use core::fmt;

use super::guest_memory::GuestMemory;
use super::iommu_backend::IommuBackend;
use super::iommu_wire::{
    DEVICE_ID, EVENT_QUEUE, FAULT_RECORD_LEN, MAX_REQUEST_LEN, REQUEST_QUEUE, Request, Status,
    TAIL_LEN, fault_record, req_type, request_len,
};
use super::mmio_transport::{DeviceIdentity, Effect, MmioTransport, reg};
use super::virtio_iommu::{IommuState, OFFERED_FEATURES, PROBE_SIZE, SetupError};
use super::virtqueue::{Aligned, Chain, LayoutError, QueueError};
use super::{AccessSize, InterruptLine, MmioDevice};

/// `QueueNumMax` of the request queue. Linux batches MAP and UNMAP
/// requests up to the queue size before it kicks.
pub const REQUEST_QUEUE_SIZE: u16 = 64;
/// `QueueNumMax` of the event queue.
pub const EVENT_QUEUE_SIZE: u16 = 64;

/// Why the device set `DEVICE_NEEDS_RESET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The driver enabled a queue its registers cannot describe.
    Layout(LayoutError),
    /// A queue's rings or descriptors were malformed.
    Queue(QueueError),
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layout(e) => write!(f, "bad queue layout: {e}"),
            Self::Queue(e) => write!(f, "malformed queue: {e}"),
        }
    }
}

struct Inner<B: IommuBackend, M> {
    transport: MmioTransport<2>,
    iommu: IommuState<B>,
    mem: M,
    queue_error: Option<QueueError>,
    stats: RequestStats,
    clock: fn() -> u64,
}

/// Index of requests the device could not classify in
/// [`RequestStats::count`].
pub const OTHER_REQUESTS: usize = 5;

/// What the device served, by request type, and the time it took by the
/// clock it was given ([`VirtioIommu::with_clock`]; all 0 without one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// `QueueNotify` writes for the request queue.
    pub kicks: u64,
    /// Requests served, indexed by type - 1 (ATTACH, DETACH, MAP, UNMAP,
    /// PROBE); [`OTHER_REQUESTS`] counts those of another type or with an
    /// unreadable head.
    pub count: [u64; 6],
    /// Clock ticks each kind took, from taking its descriptor chain to
    /// returning it in the used ring.
    pub ticks: [u64; 6],
    /// Fault records written to the event queue.
    pub faults: u64,
}

impl RequestStats {
    /// The index of request type `ty` in `count` and `ticks`.
    pub const fn index(ty: Option<u8>) -> usize {
        match ty {
            Some(t @ 1..=5) => t as usize - 1,
            _ => OTHER_REQUESTS,
        }
    }
}

/// A clock that does not run.
fn no_clock() -> u64 {
    0
}

/// The virtio-iommu device. See the module docs.
pub struct VirtioIommu<B: IommuBackend, M, I> {
    inner: spin::Mutex<Inner<B, M>>,
    irq: I,
}

impl<B: IommuBackend, M: GuestMemory, I: InterruptLine> VirtioIommu<B, M, I> {
    /// A device over `backend`, reaching EL1 memory through `mem` and
    /// interrupting through `irq`, in its reset state.
    pub fn new(backend: B, mem: M, irq: I) -> Result<Self, SetupError> {
        let iommu = IommuState::new(backend)?;
        let transport = MmioTransport::new(
            DeviceIdentity {
                device_id: DEVICE_ID,
                features: OFFERED_FEATURES,
                queue_max: [REQUEST_QUEUE_SIZE, EVENT_QUEUE_SIZE],
            },
            &iommu.config().encode(),
        );
        Ok(Self {
            inner: spin::Mutex::new(Inner {
                transport,
                iommu,
                mem,
                queue_error: None,
                stats: RequestStats::default(),
                clock: no_clock,
            }),
            irq,
        })
    }

    /// Times every request with `clock` (a free-running counter), for
    /// [`stats`](Self::stats).
    pub fn with_clock(self, clock: fn() -> u64) -> Self {
        self.inner.lock().clock = clock;
        self
    }

    /// What the device served so far.
    pub fn stats(&self) -> RequestStats {
        self.inner.lock().stats
    }

    /// Runs `f` on the backend, with the device locked.
    pub fn with_backend<R>(&self, f: impl FnOnce(&mut B) -> R) -> R {
        f(self.inner.lock().iommu.backend_mut())
    }

    /// Why `DEVICE_NEEDS_RESET` is set, if it is (cleared by a reset).
    pub fn reset_reason(&self) -> Option<ResetReason> {
        let inner = self.inner.lock();
        inner
            .transport
            .layout_error()
            .map(ResetReason::Layout)
            .or(inner.queue_error.map(ResetReason::Queue))
    }

    /// Endpoints attached and domains alive now.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.iommu.attached(), inner.iommu.live_domains())
    }

    /// Moves the backend's pending faults into the event queue's buffers,
    /// as many as there are buffers (the rest wait in the backend), and
    /// interrupts the driver if it wants to hear of them. Returns how many
    /// records were written.
    pub fn deliver_faults(&self) -> u32 {
        let (n, raise) = {
            let mut inner = self.inner.lock();
            let n = inner.deliver_faults();
            (n, inner.transport.take_raise())
        };
        if raise {
            self.irq.raise();
        }
        n
    }

    /// A register read (what [`MmioDevice::read`] does).
    pub fn read_register(&self, offset: u64, size: AccessSize) -> u64 {
        let mut inner = self.inner.lock();
        if offset == reg::INTERRUPT_STATUS && size == AccessSize::Word {
            // The driver's interrupt handler reads this register first
            // (Linux's `vm_interrupt`), and the line it took may be the
            // SMMU's own event interrupt: the hyp takes no interrupts, so
            // this read is where SMMU events become fault records
            // (`docs/virtio-iommu.md`, "Faults"). The driver learns of them
            // from this very read, so no second interrupt is raised. Only
            // a 32-bit read returns the register (virtio 1.2 "MMIO Device
            // Register Layout"); any other width reads 0, so it delivers
            // nothing either.
            inner.deliver_faults();
            inner.transport.take_raise();
        }
        inner.transport.read(offset, size)
    }

    /// A register write (what [`MmioDevice::write`] does).
    pub fn write_register(&self, offset: u64, size: AccessSize, value: u64) {
        let raise = {
            let mut inner = self.inner.lock();
            match inner.transport.write(offset, size, value) {
                Effect::None => {}
                Effect::Reset => {
                    inner.iommu.reset();
                    inner.queue_error = None;
                }
                Effect::Notify(REQUEST_QUEUE) => inner.serve_requests(),
                Effect::Notify(_) => {
                    inner.deliver_faults();
                }
            }
            inner.transport.take_raise()
        };
        if raise {
            self.irq.raise();
        }
    }
}

impl<B, M, I> MmioDevice for VirtioIommu<B, M, I>
where
    B: IommuBackend + Send,
    B::Domain: Send,
    M: GuestMemory + Send,
    I: InterruptLine + Sync,
{
    fn read(&self, offset: u64, size: AccessSize) -> u64 {
        self.read_register(offset, size)
    }

    fn write(&self, offset: u64, size: AccessSize, value: u64) {
        self.write_register(offset, size, value);
    }
}

/// The used length of a request the device could not answer.
const UNANSWERED: u32 = 0;

impl<B: IommuBackend, M: GuestMemory> Inner<B, M> {
    /// Sets `DEVICE_NEEDS_RESET` for `e`.
    fn fail(&mut self, e: QueueError) {
        self.queue_error.get_or_insert(e);
        self.transport.fail();
    }

    /// Serves every request made available before the call.
    fn serve_requests(&mut self) {
        let negotiated = self.transport.negotiated();
        let Inner {
            transport,
            iommu,
            mem,
            stats,
            clock,
            ..
        } = self;
        let Some(q) = transport.live_queue(REQUEST_QUEUE) else {
            return;
        };
        stats.kicks += 1;
        let served = (|| -> Result<(), QueueError> {
            // Reused by every request (what a request copies is only read
            // after it was copied).
            let mut chain = Chain::new();
            let mut bytes = Aligned([0u8; MAX_REQUEST_LEN]);
            for _ in 0..q.available(mem)? {
                let start = clock();
                q.pop(mem, &mut chain)?;
                // A request whose completion could not be returned is
                // never executed.
                q.check_used_writable(mem)?;
                let (ty, used) = serve(iommu, mem, &chain, negotiated, &mut bytes.0);
                q.add_used(mem, chain.head(), used)?;
                let i = RequestStats::index(ty);
                stats.count[i] += 1;
                stats.ticks[i] += clock().wrapping_sub(start);
            }
            Ok(())
        })();
        // What was served before an error is returned too.
        let published = q.publish_used(mem);
        let notify = published.as_ref().is_ok_and(|n| *n);
        self.finish(notify, served.and(published.map(|_| ())));
    }

    fn finish(&mut self, notify: bool, result: Result<(), QueueError>) {
        if notify {
            self.transport.signal_used();
        }
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// Writes pending faults into available event buffers.
    fn deliver_faults(&mut self) -> u32 {
        let Inner {
            transport,
            iommu,
            mem,
            ..
        } = self;
        let Some(q) = transport.live_queue(EVENT_QUEUE) else {
            return 0;
        };
        let mut delivered = 0;
        let result = (|| -> Result<(), QueueError> {
            let mut chain = Chain::new();
            for _ in 0..EVENT_QUEUE_SIZE {
                if q.available(mem)? == 0 {
                    break;
                }
                // The buffer and its return are checked before a fault
                // leaves the backend: a broken queue loses no fault.
                q.peek(mem, &mut chain)?;
                check_event_buffer(&chain)?;
                q.check_used_writable(mem)?;
                let Some(fault) = iommu.backend_mut().pop_fault() else {
                    break;
                };
                q.skip();
                let used = write_event(&chain, mem, &fault_record(&fault));
                if used != UNANSWERED {
                    delivered += 1;
                }
                q.add_used(mem, chain.head(), used)?;
            }
            Ok(())
        })();
        let published = q.publish_used(mem);
        let notify = published.as_ref().is_ok_and(|n| *n);
        let result = result.and(published.map(|_| ()));
        self.stats.faults += u64::from(delivered);
        self.finish(notify, result);
        delivered
    }
}

/// An event buffer that is not one device-writable record's worth
/// breaks the queue.
const fn check_event_buffer(chain: &Chain) -> Result<(), QueueError> {
    if chain.readable_len() != 0 || chain.writable_len() < FAULT_RECORD_LEN as u64 {
        return Err(QueueError::BadEventBuffer { head: chain.head() });
    }
    Ok(())
}

/// Writes `record` into an event buffer [`check_event_buffer`] accepted;
/// returns the used length. A buffer in memory EL1 does not own is
/// returned unwritten (the record is lost).
fn write_event(chain: &Chain, mem: &impl GuestMemory, record: &[u8; FAULT_RECORD_LEN]) -> u32 {
    match chain.write(mem, record) {
        Ok(()) => FAULT_RECORD_LEN as u32,
        Err(_) => UNANSWERED,
    }
}

/// Serves one request, copying it into `bytes`; returns its type (if its
/// head could be read) and the used length.
fn serve<B: IommuBackend>(
    iommu: &mut IommuState<B>,
    mem: &impl GuestMemory,
    chain: &Chain,
    negotiated: u64,
    bytes: &mut [u8; MAX_REQUEST_LEN],
) -> (Option<u8>, u32) {
    if chain.read(mem, 0, &mut bytes[..4]).is_err() {
        return (None, UNANSWERED);
    }
    let ty = bytes[0];
    let Some(len) = request_len(ty) else {
        // virtio 1.2: an unknown type is returned unwritten.
        return (Some(ty), UNANSWERED);
    };
    let request = Incoming {
        chain,
        negotiated,
        len,
    };
    // The reply buffer is as long as the reply: a PROBE's properties and
    // tail, or the tail alone.
    let used = if ty == req_type::PROBE {
        request.execute::<_, { PROBE_SIZE + TAIL_LEN }>(iommu, mem, bytes)
    } else {
        request.execute::<_, TAIL_LEN>(iommu, mem, bytes)
    };
    (Some(ty), used)
}

/// A request whose type is known: its chain, the features in effect and
/// its length.
struct Incoming<'c> {
    chain: &'c Chain,
    negotiated: u64,
    len: usize,
}

impl Incoming<'_> {
    /// Checks that the reply (`N` bytes) can be written, copies the rest
    /// of the request, executes it and writes the reply; returns the used
    /// length.
    fn execute<B: IommuBackend, const N: usize>(
        &self,
        iommu: &mut IommuState<B>,
        mem: &impl GuestMemory,
        bytes: &mut [u8; MAX_REQUEST_LEN],
    ) -> u32 {
        let (chain, len) = (self.chain, self.len);
        if chain.writable_len() < N as u64 {
            return Self::answer_short_reply_buffer(chain, mem, N);
        }
        if chain.check_writable(mem, N).is_err() {
            return UNANSWERED;
        }
        let mut reply = Aligned([0u8; N]);
        let (properties, tail) = reply.0.split_at_mut(N - TAIL_LEN);
        let status = if chain.readable_len() < len as u64 {
            Status::Inval
        } else if chain.read(mem, 4, &mut bytes[4..len]).is_err() {
            Status::DevErr
        } else {
            match Request::decode(&bytes[..len]) {
                Some(req) => iommu.handle(&req, self.negotiated, properties),
                None => Status::Inval,
            }
        };
        if status != Status::Ok {
            properties.fill(0);
        }
        tail[0] = status as u8;
        match chain.write(mem, &reply.0) {
            Ok(()) => N as u32,
            Err(_) => UNANSWERED,
        }
    }

    /// Answers a request whose writable part is shorter than its reply
    /// (`n` bytes); returns the used length. A PROBE with room for the
    /// tail but not for `probe_size` bytes of properties gets `S_INVAL`
    /// in the tail at the end of its writable part, where Linux reads it
    /// (`viommu_get_req_errno`), and no property (virtio 1.2 "PROBE
    /// request", "If the properties list is smaller than probe_size, the device
    /// SHOULD NOT write any property. It SHOULD reject the request and set
    /// status to VIRTIO_IOMMU_S_INVAL"). Any other is returned unwritten
    /// and not executed: there is no room for its status.
    fn answer_short_reply_buffer(chain: &Chain, mem: &impl GuestMemory, n: usize) -> u32 {
        let writable = chain.writable_len();
        // `writable < n`, so the casts below are lossless.
        if n == TAIL_LEN || writable < TAIL_LEN as u64 {
            return UNANSWERED;
        }
        let mut tail = [0u8; TAIL_LEN];
        tail[0] = Status::Inval as u8;
        let written = chain.check_writable(mem, writable as usize).is_ok()
            && chain
                .write_at(mem, writable - TAIL_LEN as u64, &tail)
                .is_ok();
        if written { writable as u32 } else { UNANSWERED }
    }
}

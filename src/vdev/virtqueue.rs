//! The device side of a split virtqueue (virtio 1.2, "Split Virtqueues").
//!
//! The three areas live in EL1 memory and EL1 may change them at any time,
//! from any CPU. So:
//!
//! * every access goes through [`GuestMemory`] (refused accesses are
//!   errors, never panics);
//! * each descriptor is read once, as one 16-byte copy, and only the copy
//!   is validated and used: a descriptor changed after it was read cannot
//!   change what the device does;
//! * indices are checked against the queue size before use, and a chain
//!   is bounded by [`MAX_CHAIN`] descriptors, which also catches loops;
//! * indirect descriptors are refused (the devices here never offer
//!   `VIRTIO_F_INDIRECT_DESC`), and so is a device-readable descriptor
//!   after a device-writable one.
//!
//! Ordering (virtio 1.2 "Supplying Buffers to The Device" and "The
//! Virtqueue Used Ring"): the available index is read before the ring
//! entries and descriptors it publishes (read barrier); the used element
//! and the buffer contents are written before the used index (write
//! barrier); the available ring's flags are read after the used index is
//! written (full barrier), to decide whether the driver wants an
//! interrupt.
//!
//! A [`QueueError`] means the queue itself cannot be trusted any more (the
//! device then sets `DEVICE_NEEDS_RESET`); a [`BufferError`] concerns only
//! one request's buffers.

use core::fmt;

use super::guest_memory::{GuestMemError, GuestMemory, read_le16, write_le16};

/// The longest descriptor chain the device accepts. virtio 1.2 "Message
/// Framing" lets a device limit chains; the requests served here use two
/// descriptors. A chain that reaches the limit (or the queue size) is
/// refused, which also catches a `next` loop.
pub const MAX_CHAIN: usize = 16;

/// The largest queue size the split format allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Bytes of one descriptor in the table.
const DESC_SIZE: u64 = 16;

/// Bytes on an 8-byte boundary: a copy into them can be made of 8-byte
/// stores (the EL2 target is built with strict alignment).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub struct Aligned<const N: usize>(pub [u8; N]);

mod desc_flags {
    pub const NEXT: u16 = 1;
    pub const WRITE: u16 = 2;
    pub const INDIRECT: u16 = 4;
}

/// `avail.flags`: the driver does not want used-buffer interrupts.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a queue's registers cannot describe a usable queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Size 0, not a power of two, or above the device's maximum.
    BadSize { size: u32 },
    /// An area not aligned as the split format requires (descriptor table
    /// 16, available ring 2, used ring 4).
    Misaligned { area: Area, pa: u64 },
    /// An area that wraps around the top of the address space.
    Wraps { area: Area, pa: u64 },
}

/// The three parts of a split virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Descriptors,
    Available,
    Used,
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Descriptors => "descriptor table",
            Self::Available => "available ring",
            Self::Used => "used ring",
        })
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSize { size } => write!(f, "queue size {size} is not usable"),
            Self::Misaligned { area, pa } => write!(f, "{area} at {pa:#x} is misaligned"),
            Self::Wraps { area, pa } => write!(f, "{area} at {pa:#x} wraps around"),
        }
    }
}

/// Why a queue can no longer be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The available index ran more than a queue size ahead of the device.
    AvailIndexJump { avail: u16, seen: u16 },
    /// An available-ring entry names a descriptor beyond the table.
    HeadOutOfRange { head: u16 },
    /// A descriptor's `next` names a descriptor beyond the table.
    NextOutOfRange { next: u16 },
    /// A chain of [`MAX_CHAIN`] descriptors (or the queue size) that goes
    /// on: too long, or a loop.
    ChainTooLong { head: u16 },
    /// An indirect descriptor, which the device never offered.
    Indirect { head: u16 },
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable { head: u16 },
    /// An event buffer that is not one device-writable record's worth.
    BadEventBuffer { head: u16 },
    /// A ring or the descriptor table is not EL1 memory.
    Memory(GuestMemError),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AvailIndexJump { avail, seen } => {
                write!(f, "available index {avail} is too far ahead of {seen}")
            }
            Self::HeadOutOfRange { head } => write!(f, "chain head {head} is out of range"),
            Self::NextOutOfRange { next } => write!(f, "next descriptor {next} is out of range"),
            Self::ChainTooLong { head } => write!(f, "chain at {head} is too long or loops"),
            Self::Indirect { head } => write!(f, "chain at {head} uses an indirect descriptor"),
            Self::ReadableAfterWritable { head } => {
                write!(
                    f,
                    "chain at {head} has a readable buffer after a writable one"
                )
            }
            Self::BadEventBuffer { head } => write!(f, "event buffer at {head} is malformed"),
            Self::Memory(e) => write!(f, "queue memory: {e}"),
        }
    }
}

impl From<GuestMemError> for QueueError {
    fn from(e: GuestMemError) -> Self {
        Self::Memory(e)
    }
}

/// Why one request's buffers could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferError {
    /// The access goes past the end of the readable or writable part.
    TooShort,
    /// A buffer is not EL1 memory.
    Memory(GuestMemError),
}

impl From<GuestMemError> for BufferError {
    fn from(e: GuestMemError) -> Self {
        Self::Memory(e)
    }
}

/// Where a validated queue lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
}

impl QueueLayout {
    /// Checks a queue's registers: `size` a power of two up to `max`, each
    /// area aligned and not wrapping.
    pub fn new(size: u32, max: u16, desc: u64, avail: u64, used: u64) -> Result<Self, LayoutError> {
        let size16 = u16::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two() && *s <= max && *s <= MAX_QUEUE_SIZE)
            .ok_or(LayoutError::BadSize { size })?;
        let n = u64::from(size16);
        for (area, pa, align, bytes) in [
            (Area::Descriptors, desc, 16, DESC_SIZE * n),
            (Area::Available, avail, 2, 6 + 2 * n),
            (Area::Used, used, 4, 6 + 8 * n),
        ] {
            if !pa.is_multiple_of(align) {
                return Err(LayoutError::Misaligned { area, pa });
            }
            if pa.checked_add(bytes).is_none() {
                return Err(LayoutError::Wraps { area, pa });
            }
        }
        Ok(Self {
            size: size16,
            desc,
            avail,
            used,
        })
    }

    pub const fn size(&self) -> u16 {
        self.size
    }
}

/// One descriptor, as copied from the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    /// Device-writable (otherwise device-readable).
    pub writable: bool,
}

/// A validated descriptor chain taken from the available ring: its
/// device-readable descriptors, then its device-writable ones (the
/// split format allows no other order).
#[derive(Clone, Debug)]
pub struct Chain {
    head: u16,
    descs: heapless::Vec<Desc, MAX_CHAIN>,
    /// How many of `descs` are readable (they come first).
    readable: usize,
    readable_len: u64,
    writable_len: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// An empty chain, for [`SplitQueue::pop`] to fill.
    pub const fn new() -> Self {
        Self {
            head: 0,
            descs: heapless::Vec::new(),
            readable: 0,
            readable_len: 0,
            writable_len: 0,
        }
    }

    /// The index the used ring must return.
    pub const fn head(&self) -> u16 {
        self.head
    }

    /// Total bytes of the device-readable descriptors.
    pub const fn readable_len(&self) -> u64 {
        self.readable_len
    }

    /// Total bytes of the device-writable descriptors.
    pub const fn writable_len(&self) -> u64 {
        self.writable_len
    }

    fn part(&self, writable: bool) -> &[Desc] {
        let (readable, writable_part) = self.descs.split_at(self.readable.min(self.descs.len()));
        if writable { writable_part } else { readable }
    }

    /// Calls `f(pa, range in the caller's buffer)` for each piece of
    /// `[offset, offset + len)` of one part, in order.
    fn pieces(
        &self,
        writable: bool,
        offset: u64,
        len: usize,
        mut f: impl FnMut(u64, core::ops::Range<usize>) -> Result<(), GuestMemError>,
    ) -> Result<(), BufferError> {
        let end = offset
            .checked_add(len as u64)
            .ok_or(BufferError::TooShort)?;
        let total = if writable {
            self.writable_len
        } else {
            self.readable_len
        };
        if end > total {
            return Err(BufferError::TooShort);
        }
        // Usually one descriptor holds it all (Linux gives each request one
        // readable and one writable buffer).
        if let Some(d) = self.part(writable).first()
            && end <= u64::from(d.len)
        {
            let pa = d
                .addr
                .checked_add(offset)
                .ok_or(GuestMemError::Wraps { pa: d.addr })?;
            return Ok(f(pa, 0..len)?);
        }
        let mut base = 0u64;
        for d in self.part(writable) {
            let d_end = base + u64::from(d.len);
            let from = offset.max(base);
            let to = end.min(d_end);
            if from < to {
                let pa = d
                    .addr
                    .checked_add(from - base)
                    .ok_or(GuestMemError::Wraps { pa: d.addr })?;
                f(pa, (from - offset) as usize..(to - offset) as usize)?;
            }
            if d_end >= end {
                break;
            }
            base = d_end;
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes of the readable part, from `offset`.
    pub fn read(
        &self,
        mem: &impl GuestMemory,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), BufferError> {
        let len = buf.len();
        self.pieces(false, offset, len, |pa, r| mem.read(pa, &mut buf[r]))
    }

    /// Writes `data` into the writable part, from its start.
    pub fn write(&self, mem: &impl GuestMemory, data: &[u8]) -> Result<(), BufferError> {
        self.write_at(mem, 0, data)
    }

    /// Writes `data` into the writable part, from `offset`.
    pub fn write_at(
        &self,
        mem: &impl GuestMemory,
        offset: u64,
        data: &[u8],
    ) -> Result<(), BufferError> {
        self.pieces(true, offset, data.len(), |pa, r| mem.write(pa, &data[r]))
    }

    /// Whether the first `len` bytes of the writable part can be written.
    pub fn check_writable(&self, mem: &impl GuestMemory, len: usize) -> Result<(), BufferError> {
        self.pieces(true, 0, len, |pa, r| mem.check_writable(pa, r.len() as u64))
    }
}

/// The device's side of one split virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitQueue {
    layout: QueueLayout,
    /// The next available-ring slot the device will take.
    next_avail: u16,
    /// The used index the driver sees.
    next_used: u16,
    /// Used elements written after it, not yet published.
    unpublished: u16,
}

impl SplitQueue {
    /// A freshly enabled queue (the driver zeroed its rings).
    pub const fn new(layout: QueueLayout) -> Self {
        Self {
            layout,
            next_avail: 0,
            next_used: 0,
            unpublished: 0,
        }
    }

    pub const fn layout(&self) -> &QueueLayout {
        &self.layout
    }

    /// How many chains the driver has made available and the device has
    /// not taken yet. Reads the available index, then orders every later
    /// read of the ring and descriptors after it.
    pub fn available(&self, mem: &impl GuestMemory) -> Result<u16, QueueError> {
        let avail = read_le16(mem, self.layout.avail + 2)?;
        mem.read_barrier();
        let pending = avail.wrapping_sub(self.next_avail);
        if pending > self.layout.size {
            return Err(QueueError::AvailIndexJump {
                avail,
                seen: self.next_avail,
            });
        }
        Ok(pending)
    }

    /// Takes the next available chain into `chain` (see
    /// [`peek`](Self::peek)).
    pub fn pop(&mut self, mem: &impl GuestMemory, chain: &mut Chain) -> Result<(), QueueError> {
        self.peek(mem, chain)?;
        self.skip();
        Ok(())
    }

    /// Takes the chain [`peek`](Self::peek) copied: the next one is the
    /// one after it.
    pub const fn skip(&mut self) {
        self.next_avail = self.next_avail.wrapping_add(1);
    }

    /// Copies the next available chain into `chain` (whatever it held is
    /// replaced; reusing one saves copying its descriptor array for every
    /// request) and leaves it available: [`skip`](Self::skip) takes it.
    /// Only call it after [`available`](Self::available) returned more
    /// than the chains taken since. On an error `chain` is left partly
    /// filled and must not be used.
    pub fn peek(&self, mem: &impl GuestMemory, chain: &mut Chain) -> Result<(), QueueError> {
        let size = self.layout.size;
        let slot = u64::from(self.next_avail % size);
        let head = read_le16(mem, self.layout.avail + 4 + 2 * slot)?;
        if head >= size {
            return Err(QueueError::HeadOutOfRange { head });
        }
        let limit = MAX_CHAIN.min(usize::from(size));
        chain.head = head;
        chain.descs.clear();
        chain.readable = 0;
        chain.readable_len = 0;
        chain.writable_len = 0;
        let mut index = head;
        loop {
            if chain.descs.len() == limit {
                return Err(QueueError::ChainTooLong { head });
            }
            let mut raw = Aligned([0u8; DESC_SIZE as usize]);
            mem.read(self.layout.desc + DESC_SIZE * u64::from(index), &mut raw.0)?;
            let [
                a0,
                a1,
                a2,
                a3,
                a4,
                a5,
                a6,
                a7,
                l0,
                l1,
                l2,
                l3,
                f0,
                f1,
                n0,
                n1,
            ] = raw.0;
            let flags = u16::from_le_bytes([f0, f1]);
            let desc = Desc {
                addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
                len: u32::from_le_bytes([l0, l1, l2, l3]),
                writable: flags & desc_flags::WRITE != 0,
            };
            if flags & desc_flags::INDIRECT != 0 {
                return Err(QueueError::Indirect { head });
            }
            if !desc.writable && chain.descs.last().is_some_and(|d: &Desc| d.writable) {
                return Err(QueueError::ReadableAfterWritable { head });
            }
            if desc.writable {
                chain.writable_len += u64::from(desc.len);
            } else {
                chain.readable += 1;
                chain.readable_len += u64::from(desc.len);
            }
            // Cannot fail: the length was checked against the capacity.
            let _ = chain.descs.push(desc);
            if flags & desc_flags::NEXT == 0 {
                break;
            }
            index = u16::from_le_bytes([n0, n1]);
            if index >= size {
                return Err(QueueError::NextOutOfRange { next: index });
            }
        }
        Ok(())
    }

    /// The used-ring element [`add_used`](Self::add_used) writes next.
    fn next_used_elem(&self) -> u64 {
        let slot = u64::from(self.next_used.wrapping_add(self.unpublished) % self.layout.size);
        self.layout.used + 4 + 8 * slot
    }

    /// Whether the next used element and the used index can be written,
    /// without writing them: lets the device refuse to act on a chain it
    /// could not return.
    pub fn check_used_writable(&self, mem: &impl GuestMemory) -> Result<(), QueueError> {
        mem.check_writable(self.next_used_elem(), 8)?;
        mem.check_writable(self.layout.used + 2, 2)?;
        Ok(())
    }

    /// Writes the used element returning chain `head` with `len` bytes
    /// written into it. The driver sees it only at the next
    /// [`publish_used`](Self::publish_used), so a batch of requests costs
    /// one index update and one set of barriers.
    pub fn add_used(
        &mut self,
        mem: &impl GuestMemory,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(self.next_used_elem(), &elem)?;
        self.unpublished += 1;
        Ok(())
    }

    /// Hands every element added since the last call to the driver:
    /// whatever the device wrote into the buffers and the elements is
    /// ordered before the used index. Returns whether the driver wants an
    /// interrupt for them (`avail.flags`, virtio 1.2 "Used Buffer
    /// Notification Suppression"); false if there were none.
    pub fn publish_used(&mut self, mem: &impl GuestMemory) -> Result<bool, QueueError> {
        if self.unpublished == 0 {
            return Ok(false);
        }
        mem.write_barrier();
        let next = self.next_used.wrapping_add(self.unpublished);
        write_le16(mem, self.layout.used + 2, next)?;
        self.next_used = next;
        self.unpublished = 0;
        mem.full_barrier();
        let flags = read_le16(mem, self.layout.avail)?;
        Ok(flags & AVAIL_F_NO_INTERRUPT == 0)
    }
}

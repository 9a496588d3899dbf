//! EL1 memory for host tests: a byte array with forbidden ranges (EL2's
//! memory inside it) that records every device access in a journal and
//! audits where the device writes.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use crate::vdev::guest_memory::{GuestMemError, GuestMemory};

/// Something the device did, in order: memory accesses and barriers
/// (through [`TestMemory`]) and backend calls (through the fake backend,
/// when they return).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Read { pa: u64, len: u64, ok: bool },
    Write { pa: u64, len: u64, ok: bool },
    ReadBarrier,
    WriteBarrier,
    FullBarrier,
    Backend(&'static str),
}

/// The journal shared by the memory and the backend.
#[derive(Clone, Debug, Default)]
pub struct Journal(Arc<Mutex<Vec<Event>>>);

impl Journal {
    pub fn push(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Base of the test's EL1 RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Its size.
pub const RAM_SIZE: u64 = 0x20_0000;
/// EL2's memory inside it: the device must never touch it.
pub const EL2_BASE: u64 = RAM_BASE + 0x18_0000;
pub const EL2_SIZE: u64 = 0x1_0000;

struct State {
    bytes: Vec<u8>,
    /// Where the device may write (used rings, device-writable buffers).
    device_writable: Vec<Range<u64>>,
    /// Device writes that were allowed by ownership but not by virtio.
    violations: Vec<String>,
}

pub struct TestMemory {
    state: Mutex<State>,
    journal: Journal,
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl TestMemory {
    pub fn new(journal: Journal) -> Self {
        Self {
            state: Mutex::new(State {
                bytes: vec![0; RAM_SIZE as usize],
                device_writable: Vec::new(),
                violations: Vec::new(),
            }),
            journal,
        }
    }

    /// Whether the device may touch `len` bytes at `pa`: EL1's RAM, not
    /// EL2's.
    fn check(pa: u64, len: u64) -> Result<Range<u64>, GuestMemError> {
        let end = pa.checked_add(len).ok_or(GuestMemError::Wraps { pa })?;
        let r = pa..end;
        let inside = pa >= RAM_BASE && end <= RAM_BASE + RAM_SIZE;
        if !inside || overlaps(&r, &(EL2_BASE..EL2_BASE + EL2_SIZE)) {
            return Err(GuestMemError::NotEl1Memory { pa });
        }
        Ok(r)
    }

    fn offset(pa: u64) -> usize {
        (pa - RAM_BASE) as usize
    }

    /// Driver-side write (not journaled, not checked but for bounds).
    pub fn poke(&self, pa: u64, data: &[u8]) {
        let o = Self::offset(pa);
        self.state.lock().unwrap().bytes[o..o + data.len()].copy_from_slice(data);
    }

    /// Driver-side read.
    pub fn peek(&self, pa: u64, len: usize) -> Vec<u8> {
        let o = Self::offset(pa);
        self.state.lock().unwrap().bytes[o..o + len].to_vec()
    }

    pub fn peek16(&self, pa: u64) -> u16 {
        u16::from_le_bytes(self.peek(pa, 2).try_into().unwrap())
    }

    pub fn peek32(&self, pa: u64) -> u32 {
        u32::from_le_bytes(self.peek(pa, 4).try_into().unwrap())
    }

    /// Declares `len` bytes at `pa` device-writable (or takes it back).
    pub fn set_device_writable(&self, pa: u64, len: u64, writable: bool) {
        let mut s = self.state.lock().unwrap();
        let r = pa..pa + len;
        s.device_writable.retain(|w| *w != r);
        if writable {
            s.device_writable.push(r);
        }
    }

    /// Device writes outside every device-writable area.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }
}

impl GuestMemory for TestMemory {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let r = Self::check(pa, buf.len() as u64);
        self.journal.push(Event::Read {
            pa,
            len: buf.len() as u64,
            ok: r.is_ok(),
        });
        r?;
        let o = Self::offset(pa);
        buf.copy_from_slice(&self.state.lock().unwrap().bytes[o..o + buf.len()]);
        Ok(())
    }

    fn write(&self, pa: u64, data: &[u8]) -> Result<(), GuestMemError> {
        let r = Self::check(pa, data.len() as u64);
        self.journal.push(Event::Write {
            pa,
            len: data.len() as u64,
            ok: r.is_ok(),
        });
        let r = r?;
        let mut s = self.state.lock().unwrap();
        if !s
            .device_writable
            .iter()
            .any(|w| w.start <= r.start && r.end <= w.end)
        {
            s.violations
                .push(format!("device wrote {} bytes at {pa:#x}", data.len()));
        }
        let o = Self::offset(pa);
        s.bytes[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn check_writable(&self, pa: u64, len: u64) -> Result<(), GuestMemError> {
        Self::check(pa, len).map(|_| ())
    }

    fn read_barrier(&self) {
        self.journal.push(Event::ReadBarrier);
    }

    fn write_barrier(&self) {
        self.journal.push(Event::WriteBarrier);
    }

    fn full_barrier(&self) {
        self.journal.push(Event::FullBarrier);
    }
}

//! Bus-address bookkeeping for BAR assignment: the allocator that hands out
//! addresses from one host-bridge window, and the span of addresses a
//! bridge must forward.

use crate::platform::PciWindow;

/// Bridge memory windows have a 1 MiB granularity (PCI-to-PCI Bridge 1.2,
/// 3.2.5.8): the BARs behind one bridge get whole megabytes of their own.
pub const BRIDGE_WINDOW_ALIGN: u64 = 1 << 20;

/// An inclusive range of PCI bus addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Span {
    pub first: u64,
    pub last: u64,
}

impl Span {
    /// `size` bytes from `start` (`size` > 0).
    pub const fn sized(start: u64, size: u64) -> Self {
        Self {
            first: start,
            last: start + (size - 1),
        }
    }

    /// The smallest span covering both, either absent.
    pub fn union(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Self {
                first: a.first.min(b.first),
                last: a.last.max(b.last),
            }),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// Widened to whole bridge-window granules.
    pub const fn bridge_aligned(self) -> Self {
        Self {
            first: self.first & !(BRIDGE_WINDOW_ALIGN - 1),
            last: self.last | (BRIDGE_WINDOW_ALIGN - 1),
        }
    }
}

/// Hands out BAR addresses from a window, bottom up.
pub struct WindowAllocator {
    window: PciWindow,
    next: u64,
}

impl WindowAllocator {
    pub fn new(window: PciWindow) -> Self {
        Self {
            window,
            next: window.pci_addr,
        }
    }

    pub fn window(&self) -> &PciWindow {
        &self.window
    }

    /// A PCI bus address for `size` bytes, aligned to `size`, and the CPU
    /// address it appears at.
    pub fn alloc(&mut self, size: u64) -> Option<(u64, u64)> {
        let start = self.next.checked_next_multiple_of(size)?;
        let end = start.checked_add(size)?;
        if end > self.window.pci_addr + self.window.size {
            return None;
        }
        self.next = end;
        Some((start, self.window.cpu_addr + (start - self.window.pci_addr)))
    }

    /// Moves to the next bridge-window granule, so that the BARs allocated
    /// before and after never share one: a bridge's window then covers its
    /// own devices only.
    pub fn start_granule(&mut self) {
        self.next = self
            .next
            .checked_next_multiple_of(BRIDGE_WINDOW_ALIGN)
            .unwrap_or(u64::MAX);
    }

    /// Whether a bus address lies in this window.
    pub fn contains(&self, bus_addr: u64) -> bool {
        (self.window.pci_addr..self.window.pci_addr + self.window.size).contains(&bus_addr)
    }
}

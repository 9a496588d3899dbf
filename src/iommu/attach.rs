//! Which StreamIDs EL1 may attach, and which are attached to which domain.
//!
//! The allow-list comes from the device tree (`iommu-map` of each PCIe host
//! bridge, `iommus` of platform devices): a StreamID outside it is not a
//! device EL1 owns behind that SMMU. The attachment table is a fixed array
//! searched linearly: attach and detach are rare next to map and unmap,
//! which never look at it.

use crate::platform::MAX_SMMUS;

/// Most allow-list entries.
pub const MAX_STREAM_RANGES: usize = 16;
/// Most streams attached at once, over all SMMUs.
pub const MAX_ATTACHMENTS: usize = 256;

/// StreamIDs `first..first + count` behind SMMU `smmu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRange {
    /// Index of the SMMU (as passed to the service).
    pub smmu: usize,
    pub first: u32,
    pub count: u32,
}

impl StreamRange {
    /// Whether it holds `sid` behind `smmu`.
    pub fn contains(&self, smmu: usize, sid: u32) -> bool {
        self.smmu == smmu
            && sid >= self.first
            && u64::from(sid) < u64::from(self.first) + u64::from(self.count)
    }
}

/// One attached stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub smmu: u8,
    pub sid: u32,
    /// The domain's slot.
    pub slot: u16,
}

/// The attached streams.
#[derive(Debug, Default)]
pub struct Attachments {
    list: heapless::Vec<Attachment, MAX_ATTACHMENTS>,
}

impl Attachments {
    pub const fn new() -> Self {
        Self {
            list: heapless::Vec::new(),
        }
    }

    /// The domain slot `sid` behind `smmu` is attached to.
    pub fn find(&self, smmu: usize, sid: u32) -> Option<u16> {
        self.list
            .iter()
            .find(|a| usize::from(a.smmu) == smmu && a.sid == sid)
            .map(|a| a.slot)
    }

    pub fn is_full(&self) -> bool {
        self.list.is_full()
    }

    /// Records an attachment (the caller checked it is new and not full).
    pub fn insert(&mut self, smmu: usize, sid: u32, slot: u16) -> bool {
        debug_assert!(smmu < MAX_SMMUS);
        self.list
            .push(Attachment {
                smmu: smmu as u8,
                sid,
                slot,
            })
            .is_ok()
    }

    /// Forgets an attachment.
    pub fn remove(&mut self, smmu: usize, sid: u32) {
        if let Some(i) = self
            .list
            .iter()
            .position(|a| usize::from(a.smmu) == smmu && a.sid == sid)
        {
            self.list.swap_remove(i);
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Attachment> {
        self.list.iter()
    }
}

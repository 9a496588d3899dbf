//! Errors returned by the page-table engine.
//!
//! Every failing operation leaves the tables exactly as they were (see the
//! individual operations for the precise guarantee), so an error never needs
//! a clean-up call. The hypercall layer maps these to SMCCC return codes.

use core::fmt;

/// Why a configuration or an operation was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// An address or size is not a multiple of the translation granule.
    Unaligned,
    /// The size is zero.
    ZeroSize,
    /// `address + size` overflows 64 bits.
    Wraps,
    /// The IOVA range does not fit in the configured IPA size.
    OutOfRange,
    /// The physical range does not fit in the configured output size.
    OutputOutOfRange,
    /// `map`: part of the range is already mapped.
    Overlap,
    /// `unmap`: nothing at all is mapped in the range.
    NotMapped,
    /// `unmap` without [`UnmapFlags::WHOLE_LEAVES`](super::UnmapFlags): the
    /// range covers only part of a block or page mapping.
    PartialBlock,
    /// The table allocator could not provide a table page.
    NoMemory,
    /// The granule / IPA size / output size / start level combination is not
    /// one the architecture (or this engine) supports.
    BadConfig,
    /// `map` would write where an unmap's invalidation has not completed yet:
    /// call [`PageTable::flush`](super::PageTable::flush) first. Writing
    /// there now would break break-before-make.
    SyncPending,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::Unaligned => "address or size not aligned to the granule",
            Error::ZeroSize => "zero size",
            Error::Wraps => "range wraps around the 64-bit address space",
            Error::OutOfRange => "IOVA range beyond the IPA size",
            Error::OutputOutOfRange => "physical range beyond the output address size",
            Error::Overlap => "range overlaps an existing mapping",
            Error::NotMapped => "nothing mapped in range",
            Error::PartialBlock => "range covers part of a block mapping",
            Error::NoMemory => "out of table memory",
            Error::BadConfig => "unsupported page-table configuration",
            Error::SyncPending => "invalidation of an earlier unmap not completed",
        };
        f.write_str(s)
    }
}

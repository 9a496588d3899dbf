//! Why the IOMMU service refused a call, and how the errors of its parts
//! (page tables, SMMU driver, ownership records) become its errors. Each
//! front end maps these to its own codes (the hypercalls:
//! `crate::hypercall::status`, in exactly one place).

use crate::mem::OwnershipError;
use crate::pgtable;
use crate::smmu::SmmuError;
use core::fmt;

/// Why an IOMMU call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuError {
    /// A malformed argument: a page size or granule the domain does not
    /// support, a zero or overflowing size, a wrapping range, no access.
    InvalidParameter,
    /// Memory or a stream the caller may not use.
    Denied,
    /// No memory for tables, or a page's reference count is saturated.
    NoMemory,
    /// The domain still has attached streams.
    Busy,
    /// The range is mapped already, or the stream attached.
    Exists,
    /// No such domain, SMMU, attachment, mapping or fault record.
    NotFound,
    /// An index or address beyond a limit.
    OutOfRange,
    /// An address not aligned to the page size.
    Unaligned,
    /// An exact unmap would cut a page or block mapping.
    PartialBlock,
    /// A fixed table is full.
    TooMany,
    /// The SMMU failed, with the driver's reason.
    Smmu(SmmuError),
}

impl fmt::Display for IommuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidParameter => f.write_str("invalid parameter"),
            Self::Denied => f.write_str("denied"),
            Self::NoMemory => f.write_str("no memory"),
            Self::Busy => f.write_str("busy"),
            Self::Exists => f.write_str("already exists"),
            Self::NotFound => f.write_str("not found"),
            Self::OutOfRange => f.write_str("out of range"),
            Self::Unaligned => f.write_str("unaligned"),
            Self::PartialBlock => f.write_str("would cut a block"),
            Self::TooMany => f.write_str("too many"),
            Self::Smmu(e) => write!(f, "SMMU error: {e}"),
        }
    }
}

impl From<pgtable::Error> for IommuError {
    fn from(e: pgtable::Error) -> Self {
        use pgtable::Error as E;
        match e {
            E::Unaligned => Self::Unaligned,
            E::ZeroSize | E::Wraps | E::BadConfig => Self::InvalidParameter,
            E::OutOfRange | E::OutputOutOfRange => Self::OutOfRange,
            E::Overlap => Self::Exists,
            E::NotMapped => Self::NotFound,
            E::PartialBlock => Self::PartialBlock,
            E::NoMemory => Self::NoMemory,
            // The service flushes before mapping, so this means an earlier
            // flush failed and still cannot complete.
            E::SyncPending => Self::Busy,
        }
    }
}

impl From<SmmuError> for IommuError {
    fn from(e: SmmuError) -> Self {
        match e {
            SmmuError::SidOutOfRange { .. } => Self::OutOfRange,
            SmmuError::InvalidS2Config(_) => Self::InvalidParameter,
            SmmuError::OutOfMemory { .. } => Self::NoMemory,
            // The stream table's fixed set of level-2 tables is full.
            SmmuError::TooManyL2Tables => Self::TooMany,
            other => Self::Smmu(other),
        }
    }
}

impl From<OwnershipError> for IommuError {
    fn from(e: OwnershipError) -> Self {
        match e {
            OwnershipError::Saturated | OwnershipError::Storage => Self::NoMemory,
            OwnershipError::NotRam
            | OwnershipError::El2Owned
            | OwnershipError::NoMap
            | OwnershipError::WrongOwner
            | OwnershipError::Mapped
            | OwnershipError::Sealed => Self::Denied,
        }
    }
}

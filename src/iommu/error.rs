//! The service's error type, and the one place where page-table, SMMU and
//! ownership errors become ABI status codes.

use crate::hypercall::abi;
use crate::mem::OwnershipError;
use crate::pgtable;
use crate::smmu::SmmuError;

/// Why an IOMMU call was refused. Each maps to one ABI status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuError {
    /// [`abi::INVALID_PARAMETER`].
    InvalidParameter,
    /// [`abi::DENIED`].
    Denied,
    /// [`abi::NO_MEMORY`].
    NoMemory,
    /// [`abi::BUSY`].
    Busy,
    /// [`abi::EXISTS`].
    Exists,
    /// [`abi::NOT_FOUND`].
    NotFound,
    /// [`abi::OUT_OF_RANGE`].
    OutOfRange,
    /// [`abi::UNALIGNED`].
    Unaligned,
    /// [`abi::PARTIAL_BLOCK`].
    PartialBlock,
    /// [`abi::TOO_MANY`].
    TooMany,
    /// [`abi::SMMU_ERROR`], with the driver's reason for the log.
    Smmu(SmmuError),
}

impl IommuError {
    /// The ABI status code.
    pub const fn code(self) -> i64 {
        match self {
            Self::InvalidParameter => abi::INVALID_PARAMETER,
            Self::Denied => abi::DENIED,
            Self::NoMemory => abi::NO_MEMORY,
            Self::Busy => abi::BUSY,
            Self::Exists => abi::EXISTS,
            Self::NotFound => abi::NOT_FOUND,
            Self::OutOfRange => abi::OUT_OF_RANGE,
            Self::Unaligned => abi::UNALIGNED,
            Self::PartialBlock => abi::PARTIAL_BLOCK,
            Self::TooMany => abi::TOO_MANY,
            Self::Smmu(_) => abi::SMMU_ERROR,
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
            | OwnershipError::WrongOwner
            | OwnershipError::Mapped => Self::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_distinct_documented_code() {
        let all = [
            IommuError::InvalidParameter,
            IommuError::Denied,
            IommuError::NoMemory,
            IommuError::Busy,
            IommuError::Exists,
            IommuError::NotFound,
            IommuError::OutOfRange,
            IommuError::Unaligned,
            IommuError::PartialBlock,
            IommuError::TooMany,
            IommuError::Smmu(SmmuError::ServiceFailureMode),
        ];
        let codes: std::vec::Vec<i64> = all.iter().map(|e| e.code()).collect();
        for (i, c) in codes.iter().enumerate() {
            assert!(abi::ALL_ERRORS.contains(c), "{c}");
            assert!(!codes[..i].contains(c), "duplicate {c}");
            assert_ne!(abi::error_name(*c), "UNKNOWN");
        }
        assert_eq!(
            IommuError::from(pgtable::Error::PartialBlock).code(),
            abi::PARTIAL_BLOCK
        );
        assert_eq!(
            IommuError::from(OwnershipError::El2Owned).code(),
            abi::DENIED
        );
    }
}

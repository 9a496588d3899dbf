//! The one place where the IOMMU service's errors become ABI status codes.

use super::abi;
use crate::iommu::IommuError;

/// The ABI status code of `e`.
pub const fn code(e: IommuError) -> i64 {
    match e {
        IommuError::InvalidParameter => abi::INVALID_PARAMETER,
        IommuError::Denied => abi::DENIED,
        IommuError::NoMemory => abi::NO_MEMORY,
        IommuError::Busy => abi::BUSY,
        IommuError::Exists => abi::EXISTS,
        IommuError::NotFound => abi::NOT_FOUND,
        IommuError::OutOfRange => abi::OUT_OF_RANGE,
        IommuError::Unaligned => abi::UNALIGNED,
        IommuError::PartialBlock => abi::PARTIAL_BLOCK,
        IommuError::TooMany => abi::TOO_MANY,
        IommuError::Smmu(_) => abi::SMMU_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::OwnershipError;
    use crate::pgtable;
    use crate::smmu::SmmuError;

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
        let codes: std::vec::Vec<i64> = all.iter().map(|e| code(*e)).collect();
        for (i, c) in codes.iter().enumerate() {
            assert!(abi::ALL_ERRORS.contains(c), "{c}");
            assert!(!codes[..i].contains(c), "duplicate {c}");
            assert_ne!(abi::error_name(*c), "UNKNOWN");
        }
        assert_eq!(
            code(IommuError::from(pgtable::Error::PartialBlock)),
            abi::PARTIAL_BLOCK
        );
        for refused in [OwnershipError::El2Owned, OwnershipError::NoMap] {
            assert_eq!(code(IommuError::from(refused)), abi::DENIED);
        }
    }
}

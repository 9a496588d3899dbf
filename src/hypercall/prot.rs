//! ABI protection bits (`abi::prot`) to and from the engine's [`Prot`].

use super::abi::prot;
use crate::iommu::IommuError;
use crate::pgtable::{MemType, Prot};

/// Decodes `HYP_MAP`'s prot argument. Refused: unknown bits, MMIO together
/// with NONCACHEABLE (one mapping has one memory type). A prot with
/// neither READ nor WRITE decodes; the service refuses it.
pub fn decode(bits: u64) -> Result<Prot, IommuError> {
    let mmio = bits & prot::MMIO != 0;
    let nc = bits & prot::NONCACHEABLE != 0;
    if bits & !prot::ALL != 0 || (mmio && nc) {
        return Err(IommuError::InvalidParameter);
    }
    Ok(Prot {
        read: bits & prot::READ != 0,
        write: bits & prot::WRITE != 0,
        no_exec: bits & prot::NOEXEC != 0,
        mem: if mmio {
            MemType::Device
        } else if nc {
            MemType::NonCacheable
        } else {
            MemType::Normal
        },
    })
}

/// Encodes a leaf's protection for `HYP_IOVA_TO_PHYS`.
pub fn encode(p: Prot) -> u64 {
    let mut bits = 0;
    if p.read {
        bits |= prot::READ;
    }
    if p.write {
        bits |= prot::WRITE;
    }
    if p.no_exec {
        bits |= prot::NOEXEC;
    }
    bits | match p.mem {
        MemType::Normal => 0,
        MemType::NonCacheable => prot::NONCACHEABLE,
        MemType::Device => prot::MMIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_valid_combination_and_refuses_the_rest() {
        for bits in 0..64u64 {
            match decode(bits) {
                Ok(p) => assert_eq!(encode(p), bits, "{bits:#x}"),
                Err(e) => {
                    assert_eq!(e, IommuError::InvalidParameter);
                    assert!(
                        bits & !prot::ALL != 0
                            || bits & (prot::MMIO | prot::NONCACHEABLE)
                                == prot::MMIO | prot::NONCACHEABLE,
                        "{bits:#x}"
                    );
                }
            }
        }
        assert!(decode(1 << 63 | prot::READ).is_err());
    }
}

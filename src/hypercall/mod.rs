//! The hypercall front end: dispatch of `hvc` calls from EL1, and every
//! decoding of registers and encoding of results.
//!
//! * [`abi`]: function IDs, status codes, argument and result encodings.
//! * [`client`]: the pure encoding side for EL1 clients (argument arrays
//!   in, decoded results out); the `hvc` itself stays with the client.
//! * [`iommu`]: the IOMMU calls as a trait on raw registers
//!   ([`IommuCalls`]); [`calls`] implements it for the IOMMU core
//!   ([`crate::iommu::IommuService`]), decoding registers into the core's
//!   types ([`prot`] for protection bits) and encoding its results;
//!   [`status`] maps the core's errors to status codes.

pub mod abi;
pub mod calls;
pub mod client;
pub mod iommu;
pub mod prot;
pub mod status;

#[cfg(test)]
mod header;

pub use iommu::{CallResult, IommuCalls};

use crate::smccc;
use crate::vdev::guest_memory::{GuestMemError, GuestMemory};

/// EL1 memory that refuses every access.
struct NoEl1Memory;

impl GuestMemory for NoEl1Memory {
    fn read(&self, pa: u64, _: &mut [u8]) -> Result<(), GuestMemError> {
        Err(GuestMemError::NotEl1Memory { pa })
    }

    fn write(&self, pa: u64, _: &[u8]) -> Result<(), GuestMemError> {
        Err(GuestMemError::NotEl1Memory { pa })
    }

    fn check_writable(&self, pa: u64, _: u64) -> Result<(), GuestMemError> {
        Err(GuestMemError::NotEl1Memory { pa })
    }
}

/// Handles one hypercall without an IOMMU service: the IOMMU calls return
/// NOT_SUPPORTED. Same as `dispatch_with(args, None)`.
pub fn dispatch(args: &[u64; 8]) -> [u64; 4] {
    dispatch_with(args, None)
}

/// Whether the call in `args` takes arguments from EL1's memory (see
/// [`dispatch_el1`]).
pub fn reads_el1_memory(args: &[u64; 8]) -> bool {
    smccc::function_id(args[0]).0 == abi::HYP_MAP_LIST
}

/// [`dispatch_el1`] with no access to EL1's memory: calls that take
/// arguments from there (`HYP_MAP_LIST`) are refused with DENIED.
pub fn dispatch_with(args: &[u64; 8], iommu: Option<&dyn IommuCalls>) -> [u64; 4] {
    dispatch_el1(args, iommu, &NoEl1Memory)
}

/// Handles one hypercall: `args` are x0..x7 at the `hvc`, the result is
/// x0..x3 to return. IOMMU calls go to `iommu` (NOT_SUPPORTED without
/// one); `el1` is EL1's memory as the calls that read it reach it. Never
/// panics, whatever the arguments.
pub fn dispatch_el1(
    args: &[u64; 8],
    iommu: Option<&dyn IommuCalls>,
    el1: &dyn GuestMemory,
) -> [u64; 4] {
    let fid = smccc::function_id(args[0]).0;
    if let Some(result) = smccc::handle_arch_call(fid, args[1]) {
        return [result, 0, 0, 0];
    }
    match fid {
        smccc::VENDOR_HYP_CALL_UID => smccc::uid_registers(abi::UID),
        abi::HYP_ABI_VERSION => [abi::ABI_VERSION, 0, 0, 0],
        abi::HYP_ECHO => [0, args[1], args[2], args[3]],
        abi::HYP_FEATURES => {
            let queried = smccc::function_id(args[1]).0;
            let known = matches!(
                queried,
                abi::HYP_ABI_VERSION | abi::HYP_ECHO | abi::HYP_FEATURES
            ) || (iommu.is_some() && abi::IOMMU_CALLS.contains(&queried));
            let status = if known {
                abi::SUCCESS
            } else {
                abi::NOT_SUPPORTED
            };
            [status as u64, 0, 0, 0]
        }
        _ => match iommu.and_then(|svc| iommu::call(svc, fid, args, el1)) {
            Some(r) => iommu::encode(r),
            None => [abi::NOT_SUPPORTED as u64, 0, 0, 0],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(fid: u32, a: u64) -> [u64; 4] {
        dispatch(&[u64::from(fid), a, a + 1, a + 2, 0, 0, 0, 0])
    }

    #[test]
    fn known_calls() {
        assert_eq!(call(abi::HYP_ABI_VERSION, 0)[0], abi::ABI_VERSION);
        assert_eq!(call(abi::HYP_ECHO, 7), [0, 7, 8, 9]);
        assert_eq!(call(smccc::SMCCC_VERSION, 0)[0], smccc::VERSION_1_1);
    }

    #[test]
    fn the_vendor_hyp_call_uid_is_this_hyps_uid_as_the_header_gives_it() {
        assert_eq!(
            call(smccc::VENDOR_HYP_CALL_UID, 0),
            [0x78f2_9975, 0x3246_fcdb, 0x6edb_7c81, 0x2bec_c635]
        );
    }

    #[test]
    fn unknown_ids_return_not_supported() {
        for fid in [0xc600_ffffu32, 0x8600_0000, 0, 0xffff_ffff, 0xc400_0003] {
            assert_eq!(call(fid, 0)[0], u64::MAX, "{fid:#x}");
        }
    }

    #[test]
    fn without_a_service_iommu_calls_are_not_supported_and_not_advertised() {
        for fid in abi::IOMMU_CALLS {
            assert_eq!(call(fid, 0)[0] as i64, abi::NOT_SUPPORTED, "{fid:#x}");
            assert_eq!(
                call(abi::HYP_FEATURES, u64::from(fid))[0] as i64,
                abi::NOT_SUPPORTED
            );
        }
        for fid in [abi::HYP_ABI_VERSION, abi::HYP_ECHO, abi::HYP_FEATURES] {
            assert_eq!(
                call(abi::HYP_FEATURES, u64::from(fid))[0] as i64,
                abi::SUCCESS
            );
        }
        assert_eq!(
            call(abi::HYP_FEATURES, 0xc600_0fff)[0] as i64,
            abi::NOT_SUPPORTED
        );
    }

    #[test]
    fn function_ids_are_fast_smc64_vendor_hyp_and_distinct() {
        for (i, fid) in abi::ALL_CALLS.iter().enumerate() {
            let f = smccc::FunctionId(*fid);
            assert!(f.is_fast() && f.is_smc64(), "{fid:#x}");
            assert_eq!(f.owner(), smccc::OWNER_VENDOR_HYP);
            assert!(!abi::ALL_CALLS[..i].contains(fid));
        }
        for fid in abi::IOMMU_CALLS {
            assert!(abi::ALL_CALLS.contains(&fid));
        }
    }
}

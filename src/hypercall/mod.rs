//! Dispatch of `hvc` calls from EL1.

pub mod abi;

use crate::smccc;

/// Handles one hypercall: `args` are x0..x7 at the `hvc`, the result is
/// x0..x3 to return. Never panics, whatever the arguments.
pub fn dispatch(args: &[u64; 8]) -> [u64; 4] {
    let fid = smccc::function_id(args[0]).0;
    if let Some(result) = smccc::handle_arch_call(fid, args[1]) {
        return [result, 0, 0, 0];
    }
    match fid {
        abi::HYP_ABI_VERSION => [abi::ABI_VERSION, 0, 0, 0],
        abi::HYP_ECHO => [0, args[1], args[2], args[3]],
        _ => [abi::NOT_SUPPORTED as u64, 0, 0, 0],
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
    fn unknown_ids_return_not_supported() {
        for fid in [0xc600_ffffu32, 0x8600_0000, 0, 0xffff_ffff, 0xc400_0003] {
            assert_eq!(call(fid, 0)[0], u64::MAX, "{fid:#x}");
        }
    }
}

//! The hypercall ABI, shared by the hyp and its EL1 clients.
//!
//! SMCCC 1.1 fast calls over `hvc #0`, SMC64 convention, in the
//! vendor-specific hypervisor service range (owning entity 6). The full
//! description lives in `docs/hypercall-abi.md`; the C header is
//! `include/smmu_hyp.h`.

/// ABI version: major in bits 31:16, minor in bits 15:0.
pub const ABI_VERSION: u64 = 0x0000_0001;

/// Returns [`ABI_VERSION`] in x0.
pub const HYP_ABI_VERSION: u32 = 0xc600_0000;
/// Diagnostic: returns 0 in x0 and x1..x3 unchanged in x1..x3 (the null
/// hypercall, used to measure the round-trip cost).
pub const HYP_ECHO: u32 = 0xc600_0001;

/// Returned in x0 for an unknown function ID (SMCCC).
pub const NOT_SUPPORTED: i64 = -1;

//! Random map/unmap/translate sequences against the reference model, under
//! the break-before-make auditor. Byte 0 picks the table configuration,
//! byte 1 range invalidation on/off, the rest drives the operations (see
//! `smmu_hyp::pgtable::harness::fuzz_one`). Any mismatch, auditor
//! violation, extra sync or leaked table page panics.
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smmu_hyp::pgtable::harness::fuzz_one(data);
});

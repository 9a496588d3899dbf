//! CPU-specific code: only built for the bare-metal AArch64 target.
pub mod aarch64;

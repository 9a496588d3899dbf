//! Links the EL1 test kernel as a static position-independent executable at
//! address 0: the hyp places it like a boot loader places a Linux Image (at
//! a 2 MiB-aligned base of its choosing), and the entry code applies the
//! relocations for wherever that is.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=linker.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-znotext");
}

//! Links the EL2 image with the board's memory layout.
//!
//! `linker/hyp.ld` holds the section layout shared by every board; it
//! `INCLUDE`s `board.ld` from `board/<BOARD>/`, which gives the load address.
use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=BOARD");
    println!("cargo:rerun-if-changed=linker/hyp.ld");
    // Only the bare-metal image is linked with our script; host builds (unit
    // tests, clippy) link normally.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let root = env::var("CARGO_MANIFEST_DIR").unwrap();
    let board = env::var("BOARD").unwrap_or_else(|_| "qemu-virt".into());
    let board_dir = format!("{root}/board/{board}");
    assert!(
        std::path::Path::new(&format!("{board_dir}/board.ld")).exists(),
        "unknown board {board}: no {board_dir}/board.ld"
    );
    println!("cargo:rerun-if-changed={board_dir}/board.ld");
    println!("cargo:rerun-if-changed={board_dir}/board.rs");
    println!("cargo:rustc-env=BOARD_DIR={board_dir}");
    println!("cargo:rustc-env=BOARD_NAME={board}");
    println!("cargo:rustc-link-arg-bins=-L{board_dir}");
    println!("cargo:rustc-link-arg-bins=-T{root}/linker/hyp.ld");
}

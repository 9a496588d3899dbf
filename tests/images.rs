//! The production EL2 image holds no test-only code: nothing of the EL2
//! self-tests (`hyp::selftest`), of the domain type they drive, which can
//! unmap without invalidating (`hyp::domain`), or of the edu driver
//! (`qemu_edu`). The self-test image holds all three, which shows the check
//! can see them. Run through `make test`, which builds both images and keeps
//! their ELFs next to them.

use std::path::PathBuf;
use std::process::Command;

/// Code that only the self-test image may hold, as demangled symbol
/// prefixes.
const TEST_ONLY: [&str; 3] = [
    "smmu_hyp::hyp::selftest::",
    "smmu_hyp::hyp::domain::",
    "qemu_edu::",
];

fn image_dir() -> PathBuf {
    let board = std::env::var("BOARD").unwrap_or_else(|_| "qemu-virt".into());
    std::env::var_os("HYP_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/images")
                .join(board)
        })
}

/// rustup's `llvm-nm` (component `llvm-tools`, which `make` installs).
fn llvm_nm() -> PathBuf {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let query = |args: &[&str]| {
        let out = Command::new(&rustc).args(args).output().expect("rustc");
        String::from_utf8(out.stdout).expect("rustc output")
    };
    let sysroot = query(&["--print", "sysroot"]);
    let info = query(&["-vV"]);
    let host = info
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let nm = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-nm");
    assert!(
        nm.exists(),
        "{} is missing: rustup component add llvm-tools",
        nm.display()
    );
    nm
}

/// The demangled symbols of `elf` (in the image directory).
fn symbols(elf: &str) -> Vec<String> {
    let path = image_dir().join(elf);
    assert!(
        path.exists(),
        "{} is missing: run the image tests with `make test`",
        path.display()
    );
    let out = Command::new(llvm_nm())
        .arg("--demangle")
        .arg(&path)
        .output()
        .expect("llvm-nm");
    assert!(out.status.success(), "llvm-nm {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

fn holding(symbols: &[String], prefix: &str) -> Vec<String> {
    symbols
        .iter()
        .filter(|s| s.starts_with(prefix))
        .cloned()
        .collect()
}

#[test]
fn the_production_image_has_no_test_only_code() {
    let symbols = symbols("smmu-hyp.elf");
    assert!(
        symbols
            .iter()
            .any(|s| s.starts_with("smmu_hyp::hyp::trap::")),
        "no symbols read"
    );
    for prefix in TEST_ONLY {
        let found = holding(&symbols, prefix);
        assert!(found.is_empty(), "production image holds {found:#?}");
    }
}

#[test]
fn the_self_test_image_has_every_test_only_part() {
    let symbols = symbols("smmu-hyp-selftest.elf");
    for prefix in TEST_ONLY {
        assert!(
            !holding(&symbols, prefix).is_empty(),
            "self-test image lacks {prefix}"
        );
    }
}

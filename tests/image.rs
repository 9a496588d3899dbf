//! Checks of the EL2 image itself (the ELF `make` links), run by `make
//! test` with `HYP_ELF` pointing at it.
//!
//! EL2 never touches a floating-point, SIMD, SVE or SME register: it saves
//! only x0..x30 on a trap, so EL1's vector and predicate registers, FPCR and
//! FPSR must survive every hypercall untouched (SMCCC requires it of the
//! callee). The image is built for `aarch64-unknown-none-softfloat`; this
//! test disassembles it and fails on any instruction that names such a
//! register.

use std::path::PathBuf;
use std::process::Command;

fn hyp_elf() -> PathBuf {
    std::env::var_os("HYP_ELF")
        .map(PathBuf::from)
        .expect("HYP_ELF (run through `make test`)")
}

/// rustup's `llvm-objdump` (component llvm-tools, installed by `make`).
fn objdump() -> PathBuf {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc");
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    let tools = PathBuf::from(sysroot.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin");
    tools.join("llvm-objdump")
}

/// Whether an operand list names an FP/SIMD/SVE/SME register or the FP
/// control registers.
fn names_fp_register(operands: &str) -> bool {
    operands
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| {
            let mut chars = word.chars();
            let first = chars.next();
            let rest = chars.as_str();
            let numbered = !rest.is_empty()
                && rest.chars().all(|c| c.is_ascii_digit())
                && rest.parse::<u32>().is_ok_and(|n| n < 32);
            matches!(first, Some('b' | 'h' | 's' | 'd' | 'q' | 'v' | 'z' | 'p')) && numbered
                || matches!(
                    word,
                    "fpcr" | "fpsr" | "zcr_el1" | "zcr_el2" | "svcr" | "za"
                )
        })
}

/// The instructions of `disassembly` (llvm-objdump output), as
/// "address: text"; data words of literal pools are left out.
fn instructions(disassembly: &str) -> Vec<String> {
    disassembly
        .lines()
        .filter_map(|line| {
            // "40200000:      \tmov\tx19, x0"
            let (addr, insn) = line.split_once(':')?;
            let addr = addr.trim();
            if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let insn = insn.trim();
            if insn.is_empty() || insn.starts_with('.') || insn.starts_with("<unknown>") {
                return None;
            }
            Some(format!("{addr}: {insn}"))
        })
        .collect()
}

/// The instructions that name an FP/SIMD register.
fn fp_instructions(disassembly: &str) -> Vec<String> {
    instructions(disassembly)
        .into_iter()
        .filter(|line| {
            let insn = line.split_once(": ").map_or("", |(_, i)| i);
            let (mnemonic, operands) = insn.split_once(char::is_whitespace).unwrap_or((insn, ""));
            names_fp_register(operands) || mnemonic.starts_with("fmov")
        })
        .collect()
}

#[test]
fn the_detector_sees_fp_simd_sve_and_fp_control_registers_and_nothing_else() {
    let sample = "\
    40200000:      \tmov\tx19, x0
    40200004:      \tldr\tq0, [x1]
    40200008:      \tstp\td8, d9, [sp, #-16]!
    4020000c:      \tmov\tv0.16b, v1.16b
    40200010:      \tmrs\tx0, fpcr
    40200014:      \tld1d\t{ z0.d }, p0/z, [x0]
    40200018:      \tmsr\ts3_0_c15_c0_0, x1
    4020001c:      \tsub\tsp, sp, #0x110
    40200020:      \t.word\t0x3d800000
    40200024:      \tldr\tw8, [x9, #0x10]
    40200028:      \tb\t0x40200000 <_start>";
    let found = fp_instructions(sample);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(found[0].contains("q0"));
    assert!(found[4].contains("z0.d"));
}

#[test]
fn the_el2_image_contains_no_fp_simd_sve_or_sme_instruction() {
    let elf = hyp_elf();
    let out = Command::new(objdump())
        .args(["-d", "--no-show-raw-insn"])
        .arg(&elf)
        .output()
        .expect("llvm-objdump (make installs llvm-tools)");
    assert!(
        out.status.success(),
        "llvm-objdump failed on {}",
        elf.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let count = instructions(&text).len();
    assert!(
        count > 1000,
        "disassembly looks empty: {count} instructions"
    );
    let found = fp_instructions(&text);
    assert!(
        found.is_empty(),
        "{} FP/SIMD instruction(s) in the EL2 image, e.g.:\n{}",
        found.len(),
        found
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

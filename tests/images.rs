//! Checks of the EL2 images themselves (the ELFs `make` links and keeps
//! next to the raw images), run by `make test` with `HYP_IMAGE_DIR`
//! pointing at them:
//!
//! - The production image holds no test-only code: nothing of the EL2
//!   self-tests (`hyp::selftest`), of the domain type they drive, which can
//!   unmap without invalidating (`hyp::domain`), or of the edu driver
//!   (`qemu_edu`). The self-test image holds all three, which shows the
//!   check can see them.
//! - EL2 never touches a floating-point, SIMD, SVE or SME register: it
//!   saves only x0..x30 on a trap, so EL1's vector and predicate registers,
//!   FPCR and FPSR must survive every hypercall untouched (SMCCC requires it
//!   of the callee). Both images are built for
//!   `aarch64-unknown-none-softfloat`; the check disassembles them and fails
//!   on any instruction that names such a register.
//! - The entry code's order, which QEMU cannot show (it models no cache and
//!   resets EL2's registers): every CPU sets HCR_EL2 and SCTLR_EL2 before
//!   its first data access, and the boot CPU cleans and invalidates BSS and
//!   its stack before its first store to them (`boot.S`).

use std::path::PathBuf;
use std::process::Command;

/// The production image's ELF and the self-test image's.
const PRODUCTION: &str = "smmu-hyp.elf";
const SELFTEST: &str = "smmu-hyp-selftest.elf";

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

/// Runs rustup's LLVM tool `tool` (component `llvm-tools`, which `make`
/// installs) with `args` on the ELF `elf` of the image directory and
/// returns what it prints.
fn llvm_tool(tool: &str, args: &[&str], elf: &str) -> String {
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
    let program = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin")
        .join(tool);
    assert!(
        program.exists(),
        "{} is missing: rustup component add llvm-tools",
        program.display()
    );
    let path = image_dir().join(elf);
    assert!(
        path.exists(),
        "{} is missing: run the image tests with `make test`",
        path.display()
    );
    let out = Command::new(&program)
        .args(args)
        .arg(&path)
        .output()
        .expect(tool);
    assert!(out.status.success(), "{tool} failed on {}", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The demangled symbols of `elf`.
fn symbols(elf: &str) -> Vec<String> {
    llvm_tool("llvm-nm", &["--demangle"], elf)
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
    let symbols = symbols(PRODUCTION);
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
    let symbols = symbols(SELFTEST);
    for prefix in TEST_ONLY {
        assert!(
            !holding(&symbols, prefix).is_empty(),
            "self-test image lacks {prefix}"
        );
    }
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

/// `text` without the bytes llvm-objdump prints before a data word even
/// with `--no-show-raw-insn` ("00 b0 0b 00 \t.word\t0x000bb000"): read as
/// an instruction, "b0" would pass for an FP register.
fn without_data_bytes(text: &str) -> &str {
    match text.split_once('\t') {
        Some((bytes, rest))
            if bytes.split_whitespace().count() >= 2
                && bytes
                    .split_whitespace()
                    .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit())) =>
        {
            rest.trim()
        }
        _ => text,
    }
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
            let insn = without_data_bytes(insn.trim());
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
    40200028:      \tb\t0x40200000 <_start>
    4020002c: 00 b0 0b 00  \t.word\t0x000bb000
    40200030:      \tdc\tcvac, x0";
    let found = fp_instructions(sample);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(found[0].contains("q0"));
    assert!(found[4].contains("z0.d"));
}

#[test]
fn neither_el2_image_contains_an_fp_simd_sve_or_sme_instruction() {
    for elf in [PRODUCTION, SELFTEST] {
        let text = llvm_tool("llvm-objdump", &["-d", "--no-show-raw-insn"], elf);
        let count = instructions(&text).len();
        assert!(
            count > 1000,
            "{elf}: disassembly looks empty: {count} instructions"
        );
        let found = fp_instructions(&text);
        assert!(
            found.is_empty(),
            "{} FP/SIMD instruction(s) in {elf}, e.g.:\n{}",
            found.len(),
            found
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The instructions of `symbol` in `elf`, without their addresses.
fn instructions_of(elf: &str, symbol: &str) -> Vec<String> {
    let text = llvm_tool(
        "llvm-objdump",
        &[
            "-d",
            "--no-show-raw-insn",
            &format!("--disassemble-symbols={symbol}"),
        ],
        elf,
    );
    let found: Vec<String> = instructions(&text)
        .into_iter()
        .map(|l| {
            l.split_once(": ")
                .map_or(l.clone(), |(_, i)| i.replace('\t', " "))
        })
        .collect();
    assert!(!found.is_empty(), "{elf}: no symbol {symbol}");
    found
}

fn position(insns: &[String], what: impl Fn(&str) -> bool) -> Option<usize> {
    insns.iter().position(|i| what(i))
}

fn is_memory_access(insn: &str) -> bool {
    ["ldr", "str", "ldp", "stp"]
        .iter()
        .any(|m| insn.starts_with(&format!("{m} ")))
}

#[test]
fn every_cpu_sets_hcr_el2_and_sctlr_el2_before_its_first_data_access() {
    for elf in [PRODUCTION, SELFTEST] {
        let init = instructions_of(elf, "el2_init_controls");
        let hcr = position(&init, |i| i.starts_with("msr HCR_EL2,"));
        let sctlr = position(&init, |i| i.starts_with("msr SCTLR_EL2,"));
        let first_access = position(&init, is_memory_access);
        assert!(
            hcr.is_some() && sctlr.is_some() && first_access.is_none(),
            "{elf}: el2_init_controls must write both with immediates only: {init:#?}"
        );
        for entry in ["primary_entry", "secondary_entry"] {
            let insns = instructions_of(elf, entry);
            let init = position(&insns, |i| i.contains("<el2_init_controls>"));
            let access = position(&insns, is_memory_access);
            let cptr = position(&insns, |i| i.starts_with("msr CPTR_EL2,"));
            assert!(
                init.is_some() && init < access && init < cptr,
                "{elf}: {entry} calls el2_init_controls before any load, store or \
                 E2H = 0 layout: {insns:#?}"
            );
        }
    }
}

#[test]
fn the_boot_cpu_cleans_and_invalidates_bss_and_its_stack_before_writing_them() {
    for elf in [PRODUCTION, SELFTEST] {
        let insns = instructions_of(elf, "primary_entry");
        let clean = position(&insns, |i| i.starts_with("dc civac,"));
        let zeroing = position(&insns, |i| i.starts_with("stp xzr, xzr,"));
        let stack = position(&insns, |i| i.starts_with("mov sp,"));
        assert!(
            clean.is_some() && clean < zeroing && clean < stack,
            "{elf}: DC CIVAC over BSS and the boot stack first: {insns:#?}"
        );
        let bounds = insns[..clean.unwrap()].join("\n");
        assert!(
            bounds.contains("<__bss_start>") && bounds.contains("<__image_end>"),
            "{elf}: the range is [__bss_start, __image_end): BSS and the boot stack"
        );
    }
}

//! Every device tree Debian's arm64 kernel package ships, through the
//! hyp's parser: each parses or is refused with a named reason, none
//! panics, and the counts per reason are printed. A tree that parses may
//! still be one the hyp refuses to boot on (CPUs EL1 could start without
//! PSCI, `Platform::check_cpus_start_through_psci`): counted apart.
//!
//! Reads the DTBs from the unpacked kernel package: `$LINUX_DTB_DIR` if
//! set, else `target/linux/pkg/usr/lib/linux-image-*/` (where the repo's
//! set-up unpacks it).

use smmu_hyp::platform::{CpuStartError, Platform, PlatformError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dtb_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LINUX_DTB_DIR") {
        return PathBuf::from(dir);
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/linux/pkg/usr/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries.flatten().map(|e| e.path()).find(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "no DTBs: {}/linux-image-*/ is missing. Unpack Debian's arm64 kernel package \
             (linux-image-<version>-arm64) into target/linux/pkg/ with `dpkg-deb -x`, \
             or point LINUX_DTB_DIR at a directory of .dtb files",
            lib.display()
        )
    })
}

fn dtbs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            dtbs(&path, out);
        } else if path.extension().is_some_and(|e| e == "dtb") {
            out.push(path);
        }
    }
}

/// The reason without the node's name, so that refusals group.
fn reason(e: &PlatformError<'_>) -> String {
    match e {
        PlatformError::BadDeviceTree => "not a flattened device tree".into(),
        PlatformError::NoMemory => "no memory (boot loader fills /memory)".into(),
        PlatformError::NoGic => "no GICv2 or GICv3".into(),
        PlatformError::TooMany { what, limit, .. } => format!("more than {limit} {what}"),
        PlatformError::Malformed { property, .. } => format!("malformed {property}"),
        PlatformError::NotMemoryMapped { .. } => "reg not memory mapped".into(),
    }
}

/// Why the hyp's boot refuses a tree that parses, without the node.
fn boot_refusal(e: &CpuStartError<'_>) -> String {
    match e {
        CpuStartError::NotPsci(cpu) => format!("a CPU with enable-method {}", cpu.method),
        CpuStartError::NoSmcPsci { .. } => "several CPUs, no PSCI 0.2+ through SMC".into(),
    }
}

#[test]
fn every_dtb_in_debians_kernel_package_parses_or_is_refused_with_a_named_reason() {
    let dir = dtb_dir();
    let mut paths = Vec::new();
    dtbs(&dir, &mut paths);
    assert!(!paths.is_empty(), "no .dtb files under {}", dir.display());

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut panicked = Vec::new();
    let mut outcome: BTreeMap<String, String> = BTreeMap::new();
    for path in &paths {
        let dtb = std::fs::read(path).unwrap();
        let result = std::panic::catch_unwind(|| match Platform::parse(&dtb, 0x4800_0000) {
            Ok(p) => match p.check_cpus_start_through_psci() {
                Ok(()) => "parses".to_string(),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    format!("parses, the hyp refuses to boot: {}", boot_refusal(&e))
                }
            },
            Err(e) => {
                // Display must name something a user can act on.
                assert!(!e.to_string().is_empty());
                format!("refused: {}", reason(&e))
            }
        });
        let key = result.unwrap_or_else(|_| {
            panicked.push(path.clone());
            "PANIC".into()
        });
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        if std::env::var_os("SWEEP_VERBOSE").is_some() {
            println!("{name}: {key}");
        }
        outcome.insert(name, key.clone());
        *counts.entry(key).or_default() += 1;
    }

    println!("{} DTBs under {}", paths.len(), dir.display());
    for (key, n) in &counts {
        println!("{n:6}  {key}");
    }
    assert!(panicked.is_empty(), "the parser panicked on {panicked:?}");
    // The boards with an SMMUv3 that matter most parse (their facts are
    // checked in detail against fixtures by the unit tests).
    for board in [
        "arm/fvp-base-revc.dtb",
        "ti/k3-j721e-evm.dtb",
        "ti/k3-j721e-sk.dtb",
        "hisilicon/hip06-d03.dtb",
        "hisilicon/hip07-d05.dtb",
        "freescale/imx95-19x19-evk.dtb",
    ] {
        if let Some(result) = outcome.get(board) {
            assert_eq!(result, "parses", "{board}");
        }
    }
}

//! Boots the real images on QEMU and captures what they print.
//!
//! Each run gets the board's QEMU command line (`board/<board>/qemu-args`),
//! the hyp as `-kernel` (`smmu-hyp-selftest.bin` for a `test=` scenario,
//! else the production `smmu-hyp.bin`), the EL1 test kernel as `-initrd`,
//! the scenario's bootargs, and a wall-clock timeout. A failed expectation
//! prints the tail of the serial log.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run printed and how it ended.
pub struct Run {
    pub status: Option<i32>,
    pub log: String,
    pub timed_out: bool,
}

/// One QEMU boot.
pub struct Boot {
    bootargs: String,
    extra: Vec<String>,
    added: Vec<String>,
    payload: bool,
    timeout: Duration,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn board() -> String {
    std::env::var("BOARD").unwrap_or_else(|_| "qemu-virt".into())
}

fn image_dir() -> PathBuf {
    std::env::var_os("HYP_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/images").join(board()))
}

/// The board's QEMU arguments, with `-m`/`-smp` replaced by `overrides`.
fn qemu_args(overrides: &[String]) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("board").join(board()).join("qemu-args"))
        .expect("board qemu-args");
    let mut args: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    for flag in overrides.iter().filter(|a| a.starts_with('-')) {
        if let Some(i) = args.iter().position(|a| a == flag) {
            args.drain(i..i + 2);
        }
    }
    args.extend(overrides.iter().cloned());
    args
}

impl Boot {
    /// A boot with `bootargs` (the board's `semihosting` is added).
    pub fn new(bootargs: &str) -> Self {
        Self {
            bootargs: format!("semihosting {bootargs}"),
            extra: Vec::new(),
            added: Vec::new(),
            payload: true,
            timeout: Duration::from_secs(60),
        }
    }

    /// Replaces (or adds) a QEMU option, e.g. `.qemu("-m", "2G")`.
    pub fn qemu(mut self, flag: &str, value: &str) -> Self {
        self.extra.push(flag.into());
        self.extra.push(value.into());
        self
    }

    /// Adds a QEMU option without replacing any, e.g. a second device.
    pub fn add(mut self, flag: &str, value: &str) -> Self {
        self.added.push(flag.into());
        self.added.push(value.into());
        self
    }

    /// Boots the hyp alone, without the EL1 payload.
    pub fn without_payload(mut self) -> Self {
        self.payload = false;
        self
    }

    /// Writes the device tree QEMU would generate for this boot to `path`
    /// (`-M <machine>,dumpdtb=<path>`), e.g. to boot a patched copy with
    /// `.qemu("-dtb", path)`.
    pub fn dump_dtb(&self, path: &std::path::Path) {
        let mut args = qemu_args(&self.extra);
        let m = args
            .iter()
            .position(|a| a == "-M")
            .expect("-M in qemu-args");
        args[m + 1] = format!("{},dumpdtb={}", args[m + 1], path.display());
        let status = Command::new("qemu-system-aarch64")
            .args(args)
            .args(&self.added)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("qemu-system-aarch64");
        assert!(status.success() && path.exists(), "dumpdtb failed");
    }

    /// The EL2 image: the self-test image for a `test=` scenario (the
    /// production image has no EL2 self-tests), else the production one.
    fn hyp_image(&self) -> &'static str {
        if self
            .bootargs
            .split_whitespace()
            .any(|a| a.starts_with("test="))
        {
            "smmu-hyp-selftest.bin"
        } else {
            "smmu-hyp.bin"
        }
    }

    pub fn run(self) -> Run {
        let images = image_dir();
        let hyp = images.join(self.hyp_image());
        assert!(
            hyp.exists(),
            "{} is missing: run the QEMU tests with `make test`",
            hyp.display()
        );
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(qemu_args(&self.extra))
            .args(&self.added)
            .arg("-kernel")
            .arg(&hyp)
            .arg("-append")
            .arg(&self.bootargs);
        if self.payload {
            cmd.arg("-initrd").arg(images.join("el1-test-kernel.bin"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-aarch64 (make test installs it)");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + self.timeout;
        let (status, timed_out) = loop {
            if let Some(s) = child.try_wait().expect("wait for qemu") {
                break (s.code(), false);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let mut log = String::from_utf8_lossy(&reader.join().unwrap()).replace('\r', "");
        if !err.is_empty() {
            log.push_str("\n[qemu stderr]\n");
            log.push_str(&err);
        }
        Run {
            status,
            log,
            timed_out,
        }
    }
}

impl Run {
    fn tail(&self) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last {} lines of the log ---\n{}",
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// Asserts the exit status.
    pub fn expect_status(&self, status: i32) -> &Self {
        assert!(!self.timed_out, "QEMU timed out\n{}", self.tail());
        assert_eq!(
            self.status,
            Some(status),
            "unexpected exit status\n{}",
            self.tail()
        );
        self
    }

    /// Asserts that the log contains `text`.
    pub fn expect(&self, text: &str) -> &Self {
        assert!(
            self.log.contains(text),
            "log lacks {text:?}\n{}",
            self.tail()
        );
        self
    }

    /// Asserts that the log does not contain `text`.
    pub fn expect_absent(&self, text: &str) -> &Self {
        assert!(
            !self.log.contains(text),
            "log contains {text:?}\n{}",
            self.tail()
        );
        self
    }

    /// Asserts the EL1 test kernel's summary: `passed` checks, none failed.
    pub fn expect_passed(&self, passed: u32) -> &Self {
        self.expect(&format!("el1: {passed} passed, 0 failed"))
    }

    /// Asserts the summary of an EL2 self-test run.
    pub fn expect_passed_el2(&self, passed: u32) -> &Self {
        self.expect(&format!("el2: {passed} passed, 0 failed"))
    }
}

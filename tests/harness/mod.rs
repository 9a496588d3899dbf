//! Boots the real images on QEMU and captures what they print.
//!
//! Each run gets the board's QEMU command line (`board/<board>/qemu-args`),
//! the hyp as `-kernel` (`smmu-hyp-selftest.bin` for a `test=` scenario,
//! else the production `smmu-hyp.bin`) with the scenario's bootargs
//! (`-append`), the EL1 kernel and its ramdisk as multiboot modules (QEMU's
//! `-device guest-loader`, see `src/multiboot.rs`), and a wall-clock
//! timeout. A failed expectation prints the tail of the serial log.
//!
//! Shared by the `qemu` and `linux` test binaries; each uses part of it.
#![allow(dead_code)]

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
    kernel: Option<PathBuf>,
    kernel_args: String,
    ramdisk: Option<PathBuf>,
    /// Pass the board's device tree as the ramdisk (the EL1 test kernel
    /// checks the hyp against it: the tree EL1 gets hides the SMMUs).
    board_tree_ramdisk: bool,
    extra: Vec<String>,
    added: Vec<String>,
    removed: Vec<String>,
    timeout: Duration,
}

/// Where QEMU's guest loader puts the EL1 kernel and its ramdisk: RAM base +
/// 256 MiB and + 384 MiB, clear of the DTB QEMU puts at RAM base + 128 MiB
/// and of the hyp (the Makefile uses the same addresses).
const KERNEL_ADDR: u64 = 0x5000_0000;
const RAMDISK_ADDR: u64 = 0x5800_0000;

/// A `-device guest-loader` option; QEMU doubles commas inside a value.
fn guest_loader(addr: u64, what: &str, path: &std::path::Path, bootargs: Option<&str>) -> String {
    let escape = |s: &str| s.replace(',', ",,");
    let mut device = format!(
        "guest-loader,addr={addr:#x},{what}={}",
        escape(&path.display().to_string())
    );
    if let Some(args) = bootargs {
        device.push_str(&format!(",bootargs={}", escape(args)));
    }
    device
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

/// The board's QEMU arguments, with `-m`/`-smp` replaced by `overrides`
/// and the options in `removed` dropped with their values.
fn qemu_args(overrides: &[String], removed: &[String]) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("board").join(board()).join("qemu-args"))
        .expect("board qemu-args");
    let mut args: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    for flag in overrides
        .iter()
        .filter(|a| a.starts_with('-'))
        .chain(removed)
    {
        if let Some(i) = args.iter().position(|a| a == flag) {
            args.drain(i..i + 2);
        }
    }
    args.extend(overrides.iter().cloned());
    args
}

impl Boot {
    /// A boot of the EL1 test kernel with `bootargs`, which the hyp (with
    /// the board's `semihosting` added) and the test kernel both get: each
    /// reads its own keys (`log=`, `test=`, `hyp_mem=`; `suite=`, ...).
    pub fn new(bootargs: &str) -> Self {
        Self {
            bootargs: format!("semihosting {bootargs}"),
            kernel: Some(image_dir().join("el1-test-kernel.bin")),
            kernel_args: bootargs.into(),
            ramdisk: None,
            board_tree_ramdisk: true,
            extra: Vec::new(),
            added: Vec::new(),
            removed: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// A boot of `kernel` with its command line `kernel_args` and
    /// `ramdisk`; the hyp gets the board's bootargs only.
    pub fn kernel(kernel: PathBuf, kernel_args: &str, ramdisk: PathBuf) -> Self {
        Self {
            kernel: Some(kernel),
            kernel_args: kernel_args.into(),
            ramdisk: Some(ramdisk),
            board_tree_ramdisk: false,
            ..Self::new("")
        }
    }

    /// Adds `args` to the hyp's own bootargs, e.g. `iommu=pv`.
    pub fn hyp_args(mut self, args: &str) -> Self {
        self.bootargs.push(' ');
        self.bootargs.push_str(args);
        self
    }

    /// Ends the run after `timeout` of wall time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
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

    /// Adds a QEMU option that takes no value, e.g. `-no-reboot`.
    pub fn add_flag(mut self, flag: &str) -> Self {
        self.added.push(flag.into());
        self
    }

    /// Drops a board QEMU option and its value, e.g. `-icount`.
    pub fn without_qemu(mut self, flag: &str) -> Self {
        self.removed.push(flag.into());
        self
    }

    /// Boots the hyp alone, without an EL1 kernel.
    pub fn without_payload(mut self) -> Self {
        self.kernel = None;
        self
    }

    /// Writes the device tree QEMU would generate for this boot to `path`
    /// (`-machine dumpdtb=<path>`), the boot modules' nodes included, e.g.
    /// to boot a patched copy with `.qemu("-dtb", path)` (QEMU adds no
    /// module nodes to a `-dtb` tree, but still loads the modules).
    pub fn dump_dtb(&self, path: &std::path::Path) {
        let status = Command::new("qemu-system-aarch64")
            .args(qemu_args(&self.extra, &self.removed))
            .args(&self.added)
            .args(self.module_devices())
            .arg("-machine")
            .arg(format!("dumpdtb={}", path.display()))
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

    /// The `-device guest-loader` options for the kernel and the ramdisk.
    fn module_devices(&self) -> Vec<String> {
        let kernel = (
            KERNEL_ADDR,
            "kernel",
            &self.kernel,
            Some(&*self.kernel_args),
        );
        let ramdisk = (RAMDISK_ADDR, "initrd", &self.ramdisk, None);
        [kernel, ramdisk]
            .into_iter()
            .filter_map(|(addr, what, path, bootargs)| {
                let path = path.as_ref()?;
                assert!(
                    path.exists(),
                    "{} is missing: run `make test`",
                    path.display()
                );
                Some(["-device".into(), guest_loader(addr, what, path, bootargs)])
            })
            .flatten()
            .collect()
    }

    /// Passes `ramdisk` as the ramdisk module.
    pub fn ramdisk(mut self, ramdisk: PathBuf) -> Self {
        self.ramdisk = Some(ramdisk);
        self
    }

    /// The board's own device tree for this boot: the `-dtb` given, or the
    /// one QEMU generates (written to a temporary file, removed after the
    /// run).
    fn board_tree(&self) -> (PathBuf, bool) {
        if let Some(i) = self.extra.iter().position(|a| a == "-dtb") {
            return (PathBuf::from(&self.extra[i + 1]), false);
        }
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("smmu-hyp-board-{}-{n}.dtb", std::process::id()));
        self.dump_dtb(&path);
        (path, true)
    }

    pub fn run(mut self) -> Run {
        let mut temporary = None;
        if self.board_tree_ramdisk && self.kernel.is_some() && self.ramdisk.is_none() {
            let (path, dumped) = self.board_tree();
            if dumped {
                temporary = Some(path.clone());
            }
            self.ramdisk = Some(path);
        }
        let run = self.boot();
        if let Some(path) = temporary {
            let _ = std::fs::remove_file(path);
        }
        run
    }

    fn boot(self) -> Run {
        let images = image_dir();
        let hyp = images.join(self.hyp_image());
        assert!(
            hyp.exists(),
            "{} is missing: run the QEMU tests with `make test`",
            hyp.display()
        );
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(qemu_args(&self.extra, &self.removed))
            .args(&self.added)
            .arg("-kernel")
            .arg(&hyp)
            .arg("-append")
            .arg(&self.bootargs);
        cmd.args(self.module_devices());
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
    pub fn tail(&self) -> String {
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

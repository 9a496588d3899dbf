//! Counting pass/fail checks in on-target test runs (EL2 self-tests and the
//! EL1 test kernel), with one line per check and a closing summary.

use core::fmt;

pub struct Checks {
    prefix: &'static str,
    print: fn(fmt::Arguments<'_>),
    passed: u32,
    failed: u32,
}

impl Checks {
    /// `prefix` starts every line (`el1`, `el2`); `print` writes a line.
    pub const fn new(prefix: &'static str, print: fn(fmt::Arguments<'_>)) -> Self {
        Self {
            prefix,
            print,
            passed: 0,
            failed: 0,
        }
    }

    /// Records one check, `ok` or not, with what was seen.
    pub fn check(&mut self, name: &str, ok: bool, seen: fmt::Arguments<'_>) -> bool {
        let verdict = if ok { "ok  " } else { "FAIL" };
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        (self.print)(format_args!("{}: {verdict} {name}: {seen}\n", self.prefix));
        ok
    }

    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// Prints the totals and returns the run's exit status: success only
    /// if something was checked and nothing failed.
    pub fn finish(&self) -> u32 {
        (self.print)(format_args!(
            "{}: {} passed, {} failed\n",
            self.prefix, self.passed, self.failed
        ));
        if self.failed == 0 && self.passed > 0 {
            crate::exit::SUCCESS
        } else {
            crate::exit::TEST_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static OUT: Mutex<std::string::String> = Mutex::new(std::string::String::new());

    fn capture(args: fmt::Arguments<'_>) {
        OUT.lock().unwrap().push_str(&std::format!("{args}"));
    }

    #[test]
    fn counts_prints_and_decides_the_status() {
        let mut c = Checks::new("el2", capture);
        assert!(c.check("a", true, format_args!("1")));
        assert_eq!(c.finish(), crate::exit::SUCCESS);
        assert!(!c.check("b", false, format_args!("2")));
        assert_eq!(c.finish(), crate::exit::TEST_FAILURE);
        assert_eq!(
            Checks::new("x", capture).finish(),
            crate::exit::TEST_FAILURE,
            "nothing checked"
        );
        let out = OUT.lock().unwrap();
        assert!(out.contains("el2: ok   a: 1\n") && out.contains("el2: FAIL b: 2\n"));
        assert!(out.contains("el2: 1 passed, 1 failed\n"));
    }
}

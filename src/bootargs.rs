//! `/chosen/bootargs`: space-separated `key=value` words and flags.
//!
//! The hyp reads `log=<level>`, `test=<scenario>` and `semihosting`; the EL1
//! test kernel reads the same string for its own keys. Unknown words are
//! ignored (they belong to the EL1 kernel).

/// The value of `key=` in `bootargs`, if present (the last one wins).
pub fn value<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next_back()
}

/// Whether the bare word `flag` is present.
pub fn flag(bootargs: &str, flag: &str) -> bool {
    bootargs.split_ascii_whitespace().any(|w| w == flag)
}

/// The log level named by `log=` (`error`, `warn`, `info`, `debug`,
/// `trace`); `info` when absent or unknown.
pub fn log_level(bootargs: &str) -> log::LevelFilter {
    match value(bootargs, "log") {
        Some("off") => log::LevelFilter::Off,
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_flags_and_levels() {
        let args = "console=ttyAMA0 log=debug test=el2-fault semihosting log=trace";
        assert_eq!(value(args, "test"), Some("el2-fault"));
        assert_eq!(value(args, "log"), Some("trace"));
        assert_eq!(value(args, "missing"), None);
        assert!(flag(args, "semihosting"));
        assert!(!flag(args, "semi"));
        assert_eq!(log_level(args), log::LevelFilter::Trace);
        assert_eq!(log_level(""), log::LevelFilter::Info);
        assert_eq!(log_level("log=loud"), log::LevelFilter::Info);
        assert_eq!(log_level("log=warn"), log::LevelFilter::Warn);
    }
}

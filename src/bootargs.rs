//! `/chosen/bootargs`: space-separated `key=value` words and flags.
//!
//! The hyp reads `log=<level>`, `test=<scenario>`, `hyp_mem=<MiB>`,
//! `iommu=<front door>` and `semihosting`; the EL1 test kernel reads the
//! same string for its own keys. Unknown words are ignored (they belong to
//! the EL1 kernel).

use core::fmt;

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

/// How EL1's kernel reaches the IOMMU the hyp owns, chosen per boot by
/// `iommu=`: what its device tree describes in the SMMUs' place
/// (`crate::dt::el1_tree`). Every front door drives the same IOMMU core,
/// and the hypercall ABI answers in every mode (the EL1 test kernel calls
/// it directly).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IommuFrontDoor {
    /// `iommu=virtio` (the default): a virtio-iommu device the hyp
    /// emulates, which an unmodified kernel with a virtio-iommu driver
    /// (Debian's Linux) uses as its IOMMU (`docs/virtio-iommu.md`).
    Virtio,
    /// `iommu=pv`: a node per SMMU for a paravirtual driver that makes the
    /// hypercalls of `docs/hypercall-abi.md` itself (`docs/pv-iommu.md`).
    Pv,
    /// `iommu=none`: no IOMMU in EL1's tree; its devices behind the SMMUs
    /// cannot DMA.
    None,
}

impl fmt::Display for IommuFrontDoor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Virtio => "virtio",
            Self::Pv => "pv",
            Self::None => "none",
        })
    }
}

/// The front door `iommu=` names ([`IommuFrontDoor::Virtio`] without
/// one), or the value that is none of `virtio`, `pv` and `none`.
pub fn iommu_front_door(bootargs: &str) -> Result<IommuFrontDoor, &str> {
    match value(bootargs, "iommu") {
        None | Some("virtio") => Ok(IommuFrontDoor::Virtio),
        Some("pv") => Ok(IommuFrontDoor::Pv),
        Some("none") => Ok(IommuFrontDoor::None),
        Some(other) => Err(other),
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

    #[test]
    fn iommu_names_the_front_door_defaults_to_virtio_and_returns_unknown_values() {
        use IommuFrontDoor as Door;
        assert_eq!(iommu_front_door("semihosting"), Ok(Door::Virtio));
        assert_eq!(iommu_front_door("iommu=virtio"), Ok(Door::Virtio));
        assert_eq!(iommu_front_door("log=debug iommu=pv"), Ok(Door::Pv));
        assert_eq!(iommu_front_door("iommu=pv iommu=none"), Ok(Door::None));
        assert_eq!(iommu_front_door("iommu=smmuv3"), Err("smmuv3"));
        assert_eq!(iommu_front_door("iommu="), Err(""));
        for door in [Door::Virtio, Door::Pv, Door::None] {
            let arg = std::format!("iommu={door}");
            assert_eq!(iommu_front_door(&arg), Ok(door), "Display round-trips");
        }
    }
}

//! `/chosen/bootargs`: space-separated `key=value` words and flags.
//!
//! The hyp reads `log=<level>`, `test=<scenario>`, `hyp_mem=<MiB>`,
//! `iommu=<front door>` and `semihosting`; the EL1 test kernel reads the
//! same string for its own keys. Unknown words are ignored (they belong to
//! the EL1 kernel).

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

/// How EL1 reaches the IOMMU, chosen per boot by `iommu=`. Every front
/// door drives the same IOMMU core; the choice decides what EL1's device
/// tree describes in the SMMUs' place (`crate::dt::el1_tree`). The
/// hypercall ABI answers in every mode (the EL1 test kernel and
/// paravirtual drivers call it directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuFrontDoor {
    /// `iommu=virtio` (the default): a virtio-iommu device the hyp
    /// emulates, which an unmodified kernel with a virtio-iommu driver
    /// (Debian's Linux) uses as its IOMMU (`docs/virtio-iommu.md`).
    Virtio,
    /// `iommu=pv`: a node for a paravirtual driver over the hypercalls.
    Pv,
    /// `iommu=none`: no IOMMU in EL1's tree; devices behind the SMMUs
    /// cannot DMA.
    None,
}

impl core::fmt::Display for IommuFrontDoor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Virtio => "virtio",
            Self::Pv => "pv",
            Self::None => "none",
        })
    }
}

/// The front door `iommu=` names ([`IommuFrontDoor::Virtio`] without
/// one), or the value it does not know.
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
    fn the_iommu_front_door_defaults_to_virtio_and_unknown_values_are_returned() {
        assert_eq!(iommu_front_door(""), Ok(IommuFrontDoor::Virtio));
        assert_eq!(iommu_front_door("iommu=virtio"), Ok(IommuFrontDoor::Virtio));
        assert_eq!(
            iommu_front_door("iommu=pv log=info"),
            Ok(IommuFrontDoor::Pv)
        );
        assert_eq!(
            iommu_front_door("iommu=pv iommu=none"),
            Ok(IommuFrontDoor::None)
        );
        assert_eq!(iommu_front_door("iommu=smmu"), Err("smmu"));
        assert_eq!(IommuFrontDoor::None.to_string(), "none");
    }
}

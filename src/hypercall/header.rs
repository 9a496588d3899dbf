//! Checks that `include/smmu_hyp.h` and `docs/hypercall-abi.md` say what
//! [`super::abi`] says: every value the C header defines, and every call
//! and error the document describes.

use super::abi::{self, fault, map_list, prot, smmu_feat, stats, unmap};
use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

const HEADER: &str = include_str!("../../include/smmu_hyp.h");
const DOC: &str = include_str!("../../docs/hypercall-abi.md");

/// Evaluates the object-like `#define`s of the header (literals, `(-n)`,
/// `(1ULL << n)`).
fn defines() -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    for line in HEADER.lines() {
        let Some(rest) = line.strip_prefix("#define ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(name) = parts.next() else { continue };
        if name.contains('(') {
            continue; // function-like macro
        }
        let Some(value) = parts.next() else { continue };
        let v = value
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim_end_matches("ULL")
            .trim_end_matches('U');
        let parsed = if let Some(hex) = v.strip_prefix("0x") {
            i128::from_str_radix(hex, 16).ok()
        } else if v == "1" && parts.next() == Some("<<") {
            let shift: String = parts
                .next()
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            shift.parse::<u32>().ok().map(|s| 1i128 << s)
        } else {
            v.parse::<i128>().ok()
        };
        out.insert(
            name.to_string(),
            parsed.unwrap_or_else(|| panic!("cannot read {line}")),
        );
    }
    out
}

fn expected() -> Vec<(&'static str, i128)> {
    let uid = crate::smccc::uid_registers(abi::UID);
    let mut e: Vec<(&'static str, i128)> = std::vec![
        ("SMMU_HYP_ABI_VERSION", abi::ABI_VERSION.into()),
        ("SMMU_HYP_UID_FN", crate::smccc::VENDOR_HYP_CALL_UID.into()),
        ("SMMU_HYP_UID_0", uid[0].into()),
        ("SMMU_HYP_UID_1", uid[1].into()),
        ("SMMU_HYP_UID_2", uid[2].into()),
        ("SMMU_HYP_UID_3", uid[3].into()),
        ("SMMU_HYP_ABI_VERSION_FN", abi::HYP_ABI_VERSION.into()),
        ("SMMU_HYP_ECHO", abi::HYP_ECHO.into()),
        ("SMMU_HYP_FEATURES", abi::HYP_FEATURES.into()),
        ("SMMU_HYP_IOMMU_INFO", abi::HYP_IOMMU_INFO.into()),
        ("SMMU_HYP_SMMU_INFO", abi::HYP_SMMU_INFO.into()),
        ("SMMU_HYP_DOMAIN_ALLOC", abi::HYP_DOMAIN_ALLOC.into()),
        ("SMMU_HYP_DOMAIN_FREE", abi::HYP_DOMAIN_FREE.into()),
        ("SMMU_HYP_ATTACH", abi::HYP_ATTACH.into()),
        ("SMMU_HYP_DETACH", abi::HYP_DETACH.into()),
        ("SMMU_HYP_MAP", abi::HYP_MAP.into()),
        ("SMMU_HYP_UNMAP", abi::HYP_UNMAP.into()),
        ("SMMU_HYP_MAP_LIST", abi::HYP_MAP_LIST.into()),
        ("SMMU_HYP_MAP_LIST_MAX", map_list::MAX_ENTRIES.into()),
        ("SMMU_HYP_IOVA_TO_PHYS", abi::HYP_IOVA_TO_PHYS.into()),
        ("SMMU_HYP_FAULT_POP", abi::HYP_FAULT_POP.into()),
        ("SMMU_HYP_STATS", abi::HYP_STATS.into()),
        ("SMMU_HYP_SUCCESS", abi::SUCCESS.into()),
        ("SMMU_HYP_PROT_READ", prot::READ.into()),
        ("SMMU_HYP_PROT_WRITE", prot::WRITE.into()),
        ("SMMU_HYP_PROT_NOEXEC", prot::NOEXEC.into()),
        ("SMMU_HYP_PROT_MMIO", prot::MMIO.into()),
        ("SMMU_HYP_PROT_NONCACHEABLE", prot::NONCACHEABLE.into()),
        ("SMMU_HYP_UNMAP_WHOLE_LEAF", unmap::WHOLE_LEAF.into()),
        ("SMMU_HYP_FEAT_RIL", smmu_feat::RIL.into()),
        ("SMMU_HYP_FEAT_COHERENT", smmu_feat::COHERENT.into()),
        ("SMMU_HYP_FEAT_VMID16", smmu_feat::VMID16.into()),
        ("SMMU_HYP_FEAT_STAGE1", smmu_feat::STAGE1.into()),
        ("SMMU_HYP_FEAT_STAGE2", smmu_feat::STAGE2.into()),
        ("SMMU_HYP_FEAT_HYP", smmu_feat::HYP.into()),
        (
            "SMMU_HYP_FEAT_TWO_LEVEL_STRTAB",
            smmu_feat::TWO_LEVEL_STRTAB.into()
        ),
        ("SMMU_HYP_FEAT_BTM", smmu_feat::BTM.into()),
        ("SMMU_HYP_FEAT_ATS", smmu_feat::ATS.into()),
        ("SMMU_HYP_FEAT_PRI", smmu_feat::PRI.into()),
        ("SMMU_HYP_FEAT_MSI", smmu_feat::MSI.into()),
        ("SMMU_HYP_FEAT_GRAN4K", smmu_feat::GRAN4K.into()),
        ("SMMU_HYP_FEAT_GRAN16K", smmu_feat::GRAN16K.into()),
        ("SMMU_HYP_FEAT_GRAN64K", smmu_feat::GRAN64K.into()),
        ("SMMU_HYP_FAULT_RNW", fault::RNW.into()),
        ("SMMU_HYP_FAULT_IND", fault::IND.into()),
        ("SMMU_HYP_FAULT_PNU", fault::PNU.into()),
        ("SMMU_HYP_FAULT_S2", fault::S2.into()),
        ("SMMU_HYP_FAULT_INPUT_VALID", fault::INPUT_VALID.into()),
        ("SMMU_HYP_FAULT_ADDR2_VALID", fault::ADDR2_VALID.into()),
        ("SMMU_HYP_FAULT_MORE", fault::MORE.into()),
        ("SMMU_HYP_FAULT_CLASS_SHIFT", fault::CLASS_SHIFT.into()),
        ("SMMU_HYP_STATS_CALLS", stats::CALLS.into()),
        ("SMMU_HYP_STATS_OBJECTS", stats::OBJECTS.into()),
        ("SMMU_HYP_STATS_MEMORY", stats::MEMORY.into()),
        ("SMMU_HYP_STATS_SMMU_COMMANDS", stats::SMMU_COMMANDS.into()),
        ("SMMU_HYP_STATS_SMMU_EVENTS", stats::SMMU_EVENTS.into()),
    ];
    for code in abi::ALL_ERRORS {
        let name: &'static str = std::boxed::Box::leak(
            std::format!("SMMU_HYP_E{}", abi::error_name(code)).into_boxed_str(),
        );
        e.push((name, code.into()));
    }
    e
}

#[test]
fn c_header_matches_the_rust_abi() {
    let defs = defines();
    let want = expected();
    for (name, value) in &want {
        assert_eq!(defs.get(*name), Some(value), "{name}");
    }
    for name in defs.keys() {
        assert!(
            name == "SMMU_HYP_H" || want.iter().any(|(n, _)| n == name),
            "{name} is not checked against the Rust ABI"
        );
    }
}

#[test]
fn the_document_covers_every_call_and_error() {
    for code in abi::ALL_ERRORS {
        let name = abi::error_name(code);
        assert!(DOC.contains(name), "docs/hypercall-abi.md lacks {name}");
        assert!(
            DOC.contains(&std::format!("| {code} ")),
            "docs/hypercall-abi.md lacks code {code}"
        );
    }
    for name in [
        "CALLS",
        "OBJECTS",
        "MEMORY",
        "SMMU_COMMANDS",
        "SMMU_EVENTS",
        "WHOLE_LEAF",
    ] {
        assert!(DOC.contains(name), "docs/hypercall-abi.md lacks {name}");
    }
    for fid in abi::ALL_CALLS {
        let hex = std::format!("0xC600_{:04X}", fid & 0xffff);
        assert!(DOC.contains(&hex), "docs/hypercall-abi.md lacks {hex}");
    }
}

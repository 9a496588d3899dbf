//! Module boundaries the design depends on, checked on the source text:
//! `arch` is a leaf (it decodes and returns; the hyp dispatches), and the
//! IOMMU core knows nothing of the hypercall ABI (a second front end, such
//! as virtio-iommu, reuses it as it is).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Lines of the `.rs` files under `src/<dir>` (outside `tests` modules)
/// that mention `needle`.
fn mentions(dir: &str, needle: &str, skip: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut hits = Vec::new();
    for file in rust_files(&root) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if skip.iter().any(|s| rel.starts_with(s)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            if line.contains(needle) && !line.trim_start().starts_with("//") {
                hits.push(format!("src/{dir}/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn arch_never_reaches_into_the_hyp() {
    let hits = mentions("arch", "crate::hyp", &[]);
    assert!(hits.is_empty(), "{hits:#?}");
}

#[test]
fn the_iommu_core_knows_nothing_of_the_hypercall_abi() {
    // Its host tests drive it through the hypercall front end on purpose.
    let hits = mentions("iommu", "hypercall::", &["tests"]);
    assert!(hits.is_empty(), "{hits:#?}");
}

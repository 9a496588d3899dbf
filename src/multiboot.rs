//! The EL1 kernel and its ramdisk, as boot modules in `/chosen`.
//!
//! The hyp is loaded the way Xen is, following Xen's multiboot device-tree
//! binding (`docs/misc/arm/device-tree/booting.txt` in Xen), which QEMU's
//! `-device guest-loader` and U-Boot's `fdt` commands produce:
//!
//! ```text
//! chosen {
//!     module@50000000 {
//!         compatible = "multiboot,kernel", "multiboot,module";
//!         reg = <0x0 0x50000000 0x0 0x2a1c8c0>;
//!         bootargs = "console=ttyAMA0";
//!     };
//!     module@58000000 {
//!         compatible = "multiboot,ramdisk", "multiboot,module";
//!         reg = <0x0 0x58000000 0x0 0x400000>;
//!     };
//! };
//! ```
//!
//! The compatible strings may come in either order (QEMU writes
//! `"multiboot,module"` first). `reg` uses `/chosen`'s `#address-cells` and
//! `#size-cells`, or the root's when `/chosen` has none (QEMU writes the
//! root's). The kernel's `bootargs` are its command line; `/chosen/bootargs`
//! stays the hyp's own.

use crate::dt::reader::{DtError, Fdt, Token, cells_at, strings};
use crate::memmap::PhysRange;
use core::fmt;

/// One boot module: where the loader put it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Kernel<'a> {
    pub image: PhysRange,
    /// The kernel's command line (`bootargs` of its module node).
    pub bootargs: Option<&'a str>,
}

/// The boot modules found in `/chosen`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BootModules<'a> {
    pub kernel: Option<Kernel<'a>>,
    pub ramdisk: Option<PhysRange>,
}

impl BootModules<'_> {
    /// The memory the modules occupy, which nothing may be placed over
    /// before they are used.
    pub fn ranges(&self) -> impl Iterator<Item = PhysRange> {
        self.kernel.map(|k| k.image).into_iter().chain(self.ramdisk)
    }
}

/// Why the boot modules cannot be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MultibootError {
    Tree(DtError),
    /// Two modules of the same kind.
    Duplicate(&'static str),
    /// A module whose `reg` does not match the cell sizes, or is empty.
    BadReg,
    /// A `bootargs` that is not a NUL-terminated UTF-8 string.
    BadBootargs,
}

impl fmt::Display for MultibootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tree(e) => write!(f, "{e}"),
            Self::Duplicate(kind) => write!(f, "more than one multiboot {kind} module in /chosen"),
            Self::BadReg => write!(f, "a multiboot module has a malformed reg"),
            Self::BadBootargs => write!(f, "a multiboot kernel module has malformed bootargs"),
        }
    }
}

impl From<DtError> for MultibootError {
    fn from(e: DtError) -> Self {
        Self::Tree(e)
    }
}

/// Whether a `compatible` value names a multiboot module.
pub fn is_module(compatible: &[u8]) -> bool {
    strings(compatible).any(|s| s == b"multiboot,module")
}

/// The properties of one `/chosen` child seen so far.
#[derive(Default)]
struct Child<'a> {
    compatible: &'a [u8],
    reg: &'a [u8],
    bootargs: Option<&'a [u8]>,
}

/// Cell sizes of the root (`#address-cells`, `#size-cells`); the
/// Devicetree Specification's defaults are 2 and 1.
#[derive(Clone, Copy)]
struct Cells(usize, usize);

fn cell_prop(value: &[u8]) -> Option<usize> {
    cells_at(value, 0, 1).map(|v| v as usize)
}

/// Reads the boot modules of the tree `dtb`.
pub fn parse(dtb: &[u8]) -> Result<BootModules<'_>, MultibootError> {
    let fdt = Fdt::new(dtb)?;
    let mut tokens = fdt.tokens();
    let mut root = Cells(2, 1);
    let mut chosen: Option<(Option<usize>, Option<usize>)> = None;
    let mut child: Option<Child<'_>> = None;
    let mut found = BootModules::default();
    while let Some(token) = tokens.next() {
        let depth = tokens.depth();
        match token? {
            Token::Prop { name, value } if depth == 1 => match name {
                "#address-cells" => root.0 = cell_prop(value).unwrap_or(root.0),
                "#size-cells" => root.1 = cell_prop(value).unwrap_or(root.1),
                _ => {}
            },
            Token::Begin("chosen") if depth == 2 => chosen = Some((None, None)),
            Token::Prop { name, value } if depth == 2 && chosen.is_some() => {
                if let Some(cells) = chosen.as_mut() {
                    match name {
                        "#address-cells" => cells.0 = cell_prop(value),
                        "#size-cells" => cells.1 = cell_prop(value),
                        _ => {}
                    }
                }
            }
            Token::Begin(_) if depth == 3 && chosen.is_some() => child = Some(Child::default()),
            Token::Prop { name, value } if depth == 3 => {
                if let Some(c) = child.as_mut() {
                    match name {
                        "compatible" => c.compatible = value,
                        "reg" => c.reg = value,
                        "bootargs" => c.bootargs = Some(value),
                        _ => {}
                    }
                }
            }
            Token::End if depth == 2 => {
                if let (Some(c), Some((acells, scells))) = (child.take(), chosen) {
                    let cells = Cells(acells.unwrap_or(root.0), scells.unwrap_or(root.1));
                    add_module(&mut found, &c, cells)?;
                }
            }
            Token::End if depth == 1 => chosen = None,
            _ => {}
        }
    }
    Ok(found)
}

fn add_module<'a>(
    found: &mut BootModules<'a>,
    node: &Child<'a>,
    cells: Cells,
) -> Result<(), MultibootError> {
    if !is_module(node.compatible) {
        return Ok(());
    }
    let is = |kind: &[u8]| strings(node.compatible).any(|s| s == kind);
    let Cells(acells, scells) = cells;
    if node.reg.len() != (acells + scells) * 4 {
        return Err(MultibootError::BadReg);
    }
    let start = cells_at(node.reg, 0, acells).ok_or(MultibootError::BadReg)?;
    let size = cells_at(node.reg, acells, scells).ok_or(MultibootError::BadReg)?;
    if size == 0 || start.checked_add(size).is_none() {
        return Err(MultibootError::BadReg);
    }
    let range = PhysRange::new(start, size);
    if is(b"multiboot,kernel") {
        if found.kernel.is_some() {
            return Err(MultibootError::Duplicate("kernel"));
        }
        let bootargs = match node.bootargs {
            None => None,
            Some(v) => Some(
                v.strip_suffix(&[0])
                    .and_then(|s| core::str::from_utf8(s).ok())
                    .ok_or(MultibootError::BadBootargs)?,
            ),
        };
        found.kernel = Some(Kernel {
            image: range,
            bootargs,
        });
    } else if is(b"multiboot,ramdisk") && found.ramdisk.replace(range).is_some() {
        return Err(MultibootError::Duplicate("ramdisk"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// QEMU 10.0.2 with `-device guest-loader,addr=0x50000000,kernel=K,
    /// bootargs="console=ttyAMA0 earlycon"` and `-device
    /// guest-loader,addr=0x58000000,initrd=R` (see tests/fixtures/README.md).
    const GUEST_LOADER: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-guest-loader.dtb");
    const VIRT_1G: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-1g.dtb");

    /// A tree with `modules` in `/chosen`: (compatible, reg, bootargs), and
    /// `/chosen` cell sizes if given.
    fn tree(
        chosen_cells: Option<(u32, u32)>,
        modules: &[(&[&str], &[u32], Option<&str>)],
    ) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "hyp args").unwrap();
        if let Some((a, s)) = chosen_cells {
            w.property_u32("#address-cells", a).unwrap();
            w.property_u32("#size-cells", s).unwrap();
        }
        for (i, (compatible, reg, bootargs)) in modules.iter().enumerate() {
            let m = w.begin_node(&format!("module@{i}")).unwrap();
            let list: Vec<String> = compatible.iter().map(|s| s.to_string()).collect();
            w.property_string_list("compatible", list).unwrap();
            w.property_array_u32("reg", reg).unwrap();
            if let Some(b) = bootargs {
                w.property_string("bootargs", b).unwrap();
            }
            w.end_node(m).unwrap();
        }
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn qemu_guest_loader_modules_are_the_kernel_with_its_bootargs_and_the_ramdisk() {
        let m = parse(GUEST_LOADER).unwrap();
        assert_eq!(
            m.kernel,
            Some(Kernel {
                image: PhysRange::new(0x5000_0000, 100_000),
                bootargs: Some("console=ttyAMA0 earlycon"),
            })
        );
        assert_eq!(m.ramdisk, Some(PhysRange::new(0x5800_0000, 5000)));
        assert_eq!(m.ranges().count(), 2);
    }

    #[test]
    fn a_tree_without_modules_has_none() {
        assert_eq!(parse(VIRT_1G).unwrap(), BootModules::default());
    }

    #[test]
    fn xen_order_compatibles_and_chosen_cell_sizes_are_honoured() {
        let dtb = tree(
            Some((1, 1)),
            &[
                (
                    &["multiboot,kernel", "multiboot,module"],
                    &[0x4100_0000, 0x1000],
                    Some("k"),
                ),
                (
                    &["multiboot,ramdisk", "multiboot,module"],
                    &[0x4200_0000, 0x2000],
                    None,
                ),
            ],
        );
        let m = parse(&dtb).unwrap();
        assert_eq!(m.kernel.unwrap().image, PhysRange::new(0x4100_0000, 0x1000));
        assert_eq!(m.kernel.unwrap().bootargs, Some("k"));
        assert_eq!(m.ramdisk, Some(PhysRange::new(0x4200_0000, 0x2000)));
    }

    #[test]
    fn duplicates_malformed_reg_and_unknown_modules() {
        let kernel: &[&str] = &["multiboot,module", "multiboot,kernel"];
        let two = tree(
            None,
            &[
                (kernel, &[0, 0x1000, 0, 1], None),
                (kernel, &[0, 0x2000, 0, 1], None),
            ],
        );
        assert_eq!(parse(&two), Err(MultibootError::Duplicate("kernel")));
        let short = tree(None, &[(kernel, &[0, 0x1000, 1], None)]);
        assert_eq!(parse(&short), Err(MultibootError::BadReg));
        let empty = tree(None, &[(kernel, &[0, 0x1000, 0, 0], None)]);
        assert_eq!(parse(&empty), Err(MultibootError::BadReg));
        let other = tree(
            None,
            &[(
                &["multiboot,module", "xen,xsm-policy"],
                &[0, 0x1000, 0, 1],
                None,
            )],
        );
        assert_eq!(
            parse(&other),
            Ok(BootModules::default()),
            "other module kinds are not ours"
        );
        let not_module = tree(None, &[(&["vendor,thing"], &[0, 0x1000, 0, 1], None)]);
        assert_eq!(parse(&not_module), Ok(BootModules::default()));
    }
}

//! The device tree the hyp hands its EL1 kernel: a copy of the tree the
//! boot loader gave the hyp, minus what EL1 must not drive, plus what it
//! must know.
//!
//! The policy, applied by [`write`]:
//! - EL2's memory (every range the hyp owns) becomes a `/reserved-memory`
//!   child with `no-map`, so a cooperative kernel never allocates it; the
//!   `/memreserve/` block and every other reserved range are kept.
//! - Every `arm,smmu-v3` node is removed (the hyp owns the SMMUs), every
//!   SMMU PMCG ([`SMMU_PMCGS`]: a bus master the SMMU does not translate),
//!   and every node whose `compatible` is on the board's list of bus
//!   masters that no SMMU sits in front of
//!   ([`El1Tree::hidden_compatibles`]).
//! - The IOMMU front door ([`El1Iommu`], the hyp's `iommu=`) decides what
//!   stands in the SMMUs' place: with `virtio`, a `virtio,mmio` node for the
//!   hyp's virtio-iommu device, which the PCIe `iommu-map` names instead of
//!   the SMMU; with `pv`, each SMMU the hyp drives becomes a [`PV_IOMMU`]
//!   node with the same phandle (`docs/bindings/smmu-hyp,pv-iommu.yaml`), so
//!   the `iommu-map` and `iommus` naming it stay, StreamIDs as they were;
//!   with `none`, nothing.
//! - Properties that refer to a removed node are removed: PCIe `iommu-map`
//!   and `iommu-map-mask`, `iommus`, and the `/aliases` and `/__symbols__`
//!   entries naming it. (A map pointing at a driverless node oopses Linux 6.1
//!   when a device is removed.)
//! - `/chosen`: the multiboot module nodes are removed; `bootargs` becomes
//!   the kernel's own (the hyp's stay with the hyp); `linux,initrd-start`
//!   and `linux,initrd-end` describe the ramdisk.
//!
//! Everything else, the header's `boot_cpuid_phys` included, is copied as
//! it is. The output is written with rust-vmm's `vm-fdt`; the input is read
//! with [`super::reader`], so a malformed input is an error, never a panic.

use super::reader::{DtError, Fdt, Token, cells_at, strings};
use crate::memmap::PhysRange;
use crate::multiboot;
use crate::platform::{SMMU_PMCGS, SMMU_V3};
use alloc::borrow::Cow;
use alloc::format;
use alloc::vec::Vec;
use core::fmt;

/// What the EL1 tree must say beyond the input.
#[derive(Clone, Copy, Debug)]
pub struct El1Tree<'a> {
    /// Board bus masters outside every SMMU, by `compatible` (the
    /// SMMU PMCG nodes are always removed, and so are the `arm,smmu-v3`
    /// nodes the front door does not replace).
    pub hidden_compatibles: &'a [&'a str],
    /// Memory EL2 keeps for itself.
    pub el2_owned: &'a [PhysRange],
    /// The kernel's command line.
    pub bootargs: Option<&'a str>,
    pub initrd: Option<PhysRange>,
    /// How EL1 reaches the IOMMU (the hyp's `iommu=` bootarg).
    pub iommu: El1Iommu<'a>,
}

/// What EL1's tree says about the IOMMU in front of its devices. One
/// function of the writer per front door ([`add_virtio_iommu`],
/// [`replace_with_pv_nodes`]); a new front door is one more variant and
/// one more function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El1Iommu<'a> {
    /// No IOMMU: every `iommu-map` and `iommus` naming a hyp-owned SMMU
    /// is removed, so the devices behind it abort all DMA.
    None,
    /// The hyp's virtio-iommu device (`docs/virtio-iommu.md`) on a
    /// virtio-mmio window: a `virtio,mmio` node at `window` takes the place
    /// of the SMMU whose phandle is `smmu` in every `iommu-map` (the
    /// endpoint id stays the StreamID), with that SMMU's event-queue
    /// interrupt as its own.
    Virtio { window: PhysRange, smmu: u32 },
    /// The paravirtual front door (`docs/pv-iommu.md`): each of these SMMUs
    /// becomes a [`PV_IOMMU`] node for a driver that makes the hypercalls
    /// itself.
    Pv(&'a [PvIommu]),
}

/// An SMMU the hyp drives, described to EL1 as a paravirtual IOMMU node
/// (`iommu=pv`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PvIommu {
    /// The `arm,smmu-v3` node's phandle, which `iommu-map` and `iommus`
    /// refer to; the node written in its place keeps it.
    pub phandle: u32,
    /// The SMMU's index in the hypercall ABI (`docs/hypercall-abi.md`).
    pub smmu: u32,
}

/// The compatible of a paravirtual IOMMU node
/// (`docs/bindings/smmu-hyp,pv-iommu.yaml`).
pub const PV_IOMMU: &str = "smmu-hyp,pv-iommu";
/// Its property holding the SMMU index of the hypercall ABI, one cell.
pub const PV_IOMMU_SMMU: &str = "smmu-hyp,smmu";

/// Name prefix of the `/reserved-memory` children that hold EL2's memory.
pub const EL2_RESERVED_NAME: &str = "smmu-hyp";
/// Name of the virtio-iommu node (the Devicetree Specification's generic
/// name for an IOMMU), with its unit address after an `@`.
pub const VIRTIO_IOMMU_NAME: &str = "iommu";

/// Why the EL1 tree cannot be written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum El1TreeError {
    Input(DtError),
    /// The writer refused something of the input (a name it finds invalid,
    /// overlapping `/memreserve/` entries).
    Writer(&'static str),
    /// An EL2 range does not fit the cell sizes of `/reserved-memory`.
    CellsTooSmall,
    /// The virtio-iommu node cannot stand for the SMMU, and why.
    VirtioIommu(&'static str),
}

impl fmt::Display for El1TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(e) => write!(f, "{e}"),
            Self::Writer(what) => write!(f, "cannot write the EL1 device tree: {what}"),
            Self::CellsTooSmall => write!(
                f,
                "EL2's memory does not fit the #address-cells/#size-cells of /reserved-memory"
            ),
            Self::VirtioIommu(why) => write!(f, "no virtio-iommu node: {why}"),
        }
    }
}

impl From<DtError> for El1TreeError {
    fn from(e: DtError) -> Self {
        Self::Input(e)
    }
}

impl From<vm_fdt::Error> for El1TreeError {
    fn from(e: vm_fdt::Error) -> Self {
        Self::Writer(match e {
            vm_fdt::Error::InvalidNodeName => "invalid node name",
            vm_fdt::Error::InvalidPropertyName => "invalid property name",
            vm_fdt::Error::InvalidMemoryReservation => "invalid /memreserve/ entry",
            vm_fdt::Error::OverlappingMemoryReservations => "overlapping /memreserve/ entries",
            vm_fdt::Error::DuplicatePhandle => "duplicate phandle",
            _ => "tree too large or malformed",
        })
    }
}

/// One node of the input, borrowing its names and values.
#[derive(Debug)]
struct Node<'a> {
    name: Cow<'a, str>,
    /// Values are the input's, or the writer's own (a rewritten
    /// `iommu-map`, an added node's).
    props: Vec<(&'a str, Cow<'a, [u8]>)>,
    children: Vec<Node<'a>>,
}

impl<'a> Node<'a> {
    fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }
    fn u32_prop(&self, name: &str) -> Option<u32> {
        self.prop(name)
            .and_then(|v| cells_at(v, 0, 1))
            .map(|v| v as u32)
    }
    fn is_compatible(&self, with: &str) -> bool {
        self.prop("compatible")
            .is_some_and(|c| strings(c).any(|s| s == with.as_bytes()))
    }
    fn child_mut(&mut self, name: &str) -> Option<&mut Node<'a>> {
        self.children.iter_mut().find(|c| c.name == name)
    }
    fn set_prop(&mut self, name: &'a str, value: impl Into<Cow<'a, [u8]>>) {
        self.props.retain(|(n, _)| *n != name);
        self.props.push((name, value.into()));
    }
}

/// Reads the whole structure block into a tree.
fn read_tree<'a>(fdt: &Fdt<'a>) -> Result<Node<'a>, DtError> {
    let mut open: Vec<Node<'a>> = Vec::new();
    for token in fdt.tokens() {
        match token? {
            Token::Begin(name) => open.push(Node {
                name: Cow::Borrowed(name),
                props: Vec::new(),
                children: Vec::new(),
            }),
            Token::Prop { name, value } => {
                let node = open.last_mut().ok_or(DtError::BadNesting)?;
                node.props.push((name, Cow::Borrowed(value)));
            }
            Token::End => {
                let done = open.pop().ok_or(DtError::BadNesting)?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
        }
    }
    Err(DtError::BadNesting)
}

/// What the removal of hidden nodes left behind.
#[derive(Default)]
struct Removed {
    phandles: Vec<u32>,
    paths: Vec<alloc::string::String>,
}

/// Removes, below `node` (at `path`), every node that must be hidden.
fn remove_hidden(node: &mut Node<'_>, path: &str, hidden: &[&str], removed: &mut Removed) {
    node.children.retain(|child| {
        let hide = [SMMU_V3]
            .iter()
            .chain(&SMMU_PMCGS)
            .chain(hidden)
            .any(|c| child.is_compatible(c));
        if hide {
            collect_phandles(child, &mut removed.phandles);
            removed.paths.push(format!("{path}/{}", child.name));
        }
        !hide
    });
    for child in &mut node.children {
        let child_path = format!("{path}/{}", child.name);
        remove_hidden(child, &child_path, hidden, removed);
    }
}

/// Rewrites, below `node` (at `path`), every `arm,smmu-v3` node named in
/// `pv` into its paravirtual IOMMU node: the same place and phandle, the
/// properties of the binding and nothing else (no registers, interrupts or
/// children). An SMMU whose `#iommu-cells` is not 1 (the SMMUv3 binding's
/// value) is left for removal: its references could not be read as
/// StreamIDs. The old paths go to `renamed` (their aliases must go).
fn replace_with_pv_nodes(
    node: &mut Node<'_>,
    path: &str,
    pv: &[PvIommu],
    renamed: &mut Vec<alloc::string::String>,
) {
    for child in &mut node.children {
        let child_path = format!("{path}/{}", child.name);
        let found = child
            .is_compatible(SMMU_V3)
            .then(|| child.u32_prop("phandle"))
            .flatten()
            .filter(|_| child.u32_prop("#iommu-cells") == Some(1))
            .and_then(|phandle| pv.iter().find(|p| p.phandle == phandle));
        match found {
            Some(p) => {
                child.name = Cow::Owned(format!("pv-iommu-{}", p.smmu));
                child.props = alloc::vec![
                    (
                        "compatible",
                        Cow::Owned([PV_IOMMU.as_bytes(), &[0]].concat())
                    ),
                    ("phandle", cell(p.phandle)),
                    // The one cell is the StreamID.
                    ("#iommu-cells", cell(1)),
                    (PV_IOMMU_SMMU, cell(p.smmu)),
                ];
                child.children.clear();
                renamed.push(child_path);
            }
            None => replace_with_pv_nodes(child, &child_path, pv, renamed),
        }
    }
}

/// A one-cell property value.
fn cell(value: u32) -> Cow<'static, [u8]> {
    Cow::Owned(value.to_be_bytes().to_vec())
}

fn collect_phandles(node: &Node<'_>, out: &mut Vec<u32>) {
    out.extend(node.u32_prop("phandle"));
    for child in &node.children {
        collect_phandles(child, out);
    }
}

/// `#iommu-cells` of every node with a phandle.
fn iommu_cells(node: &Node<'_>, out: &mut Vec<(u32, usize)>) {
    if let (Some(phandle), Some(cells)) = (node.u32_prop("phandle"), node.u32_prop("#iommu-cells"))
    {
        out.push((phandle, cells as usize));
    }
    for child in &node.children {
        iommu_cells(child, out);
    }
}

/// The phandles an `iommus` (`iommu-map` when `map`) value refers to, or
/// `None` if it cannot be parsed against the IOMMUs' `#iommu-cells`.
/// `iommus` is a list of `<phandle specifier...>`; `iommu-map` entries are
/// `<rid-base phandle specifier... length>`.
fn referenced_iommus(value: &[u8], cells: &[(u32, usize)], map: bool) -> Option<Vec<u32>> {
    let words = value.len() / 4;
    if !value.len().is_multiple_of(4) {
        return None;
    }
    let mut at = 0;
    let mut out = Vec::new();
    while at < words {
        let phandle_at = at + usize::from(map);
        let phandle = cells_at(value, phandle_at, 1)? as u32;
        let specifier = cells.iter().find(|(p, _)| *p == phandle)?.1;
        at = phandle_at + 1 + specifier + usize::from(map);
        if at > words {
            return None;
        }
        out.push(phandle);
    }
    Some(out)
}

/// Removes, in `node` and below, IOMMU references to removed nodes, and
/// references that cannot be parsed (the safe side: no IOMMU).
fn remove_dangling_iommu_refs(node: &mut Node<'_>, cells: &[(u32, usize)], removed: &[u32]) {
    let dangling = |value: &[u8], map: bool| {
        referenced_iommus(value, cells, map).is_none_or(|p| p.iter().any(|p| removed.contains(p)))
    };
    if node.prop("iommu-map").is_some_and(|v| dangling(v, true)) {
        node.props
            .retain(|(n, _)| *n != "iommu-map" && *n != "iommu-map-mask");
    }
    if node.prop("iommus").is_some_and(|v| dangling(v, false)) {
        node.props.retain(|(n, _)| *n != "iommus");
    }
    for child in &mut node.children {
        remove_dangling_iommu_refs(child, cells, removed);
    }
}

/// Removes the `/aliases` and `/__symbols__` entries that name a removed
/// node (their values are paths).
fn remove_dangling_paths(root: &mut Node<'_>, removed: &[alloc::string::String]) {
    for table in ["aliases", "__symbols__"] {
        let Some(node) = root.child_mut(table) else {
            continue;
        };
        node.props.retain(|(_, value)| {
            let path = value.strip_suffix(&[0]).unwrap_or(value);
            !removed.iter().any(|r| {
                path.strip_prefix(r.as_bytes())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
            })
        });
    }
}

/// Every phandle in the tree (`phandle` and the older `linux,phandle`).
fn phandles(node: &Node<'_>, out: &mut Vec<u32>) {
    out.extend(node.u32_prop("phandle"));
    out.extend(node.u32_prop("linux,phandle"));
    for child in &node.children {
        phandles(child, out);
    }
}

/// The node with `phandle` below `node`, with the `interrupt-parent` it
/// has or inherits (`inherited` is `node`'s parent's).
fn find_phandle<'n, 'a>(
    node: &'n Node<'a>,
    phandle: u32,
    inherited: Option<u32>,
) -> Option<(&'n Node<'a>, Option<u32>)> {
    let parent = node.u32_prop("interrupt-parent").or(inherited);
    if node.u32_prop("phandle") == Some(phandle) {
        return Some((node, parent));
    }
    node.children
        .iter()
        .find_map(|c| find_phandle(c, phandle, parent))
}

/// The specifier of the interrupt `name` of `node` (per
/// `interrupt-names`), whose interrupt parent has `#interrupt-cells` =
/// `cells`.
fn named_interrupt<'n>(node: &'n Node<'_>, name: &str, cells: usize) -> Option<&'n [u8]> {
    let index = strings(node.prop("interrupt-names")?).position(|n| n == name.as_bytes())?;
    let len = 4 * cells;
    node.prop("interrupts")?.get(index * len..(index + 1) * len)
}

/// `value` (an `iommu-map`) with every entry naming `from` naming `to`
/// instead; `None` if it names `from` nowhere or cannot be parsed against
/// the IOMMUs' `#iommu-cells`.
fn redirect_iommu_map(value: &[u8], cells: &[(u32, usize)], from: u32, to: u32) -> Option<Vec<u8>> {
    let words = value.len() / 4;
    let mut out = value.to_vec();
    let mut changed = false;
    let mut at = 0;
    while at < words {
        let phandle_at = at + 1;
        let phandle = cells_at(value, phandle_at, 1)? as u32;
        let specifier = cells.iter().find(|(p, _)| *p == phandle)?.1;
        if phandle == from {
            out[4 * phandle_at..4 * phandle_at + 4].copy_from_slice(&to.to_be_bytes());
            changed = true;
        }
        at = phandle_at + specifier + 2;
    }
    (changed && at == words && value.len().is_multiple_of(4)).then_some(out)
}

/// Rewrites, in `node` and below, every `iommu-map` naming `from` to name
/// `to`.
fn redirect_iommu_maps(node: &mut Node<'_>, cells: &[(u32, usize)], from: u32, to: u32) {
    let rewritten = node
        .prop("iommu-map")
        .and_then(|v| redirect_iommu_map(v, cells, from, to));
    if let Some(value) = rewritten {
        node.set_prop("iommu-map", value);
    }
    for child in &mut node.children {
        redirect_iommu_maps(child, cells, from, to);
    }
}

/// The virtio-iommu front door: returns the `virtio,mmio` node for the
/// device at `window` (bindings: Linux's `virtio/mmio.yaml` and
/// `iommu/iommu.txt`) and points every `iommu-map` naming the SMMU
/// `smmu` at it, with the same one-cell endpoint ids (the StreamIDs).
/// Its interrupt is the SMMU's event-queue interrupt: the SMMU raises it
/// when it logs an event, and the device turns events into fault records
/// when the driver's handler reads `InterruptStatus`. `dma-coherent`: the
/// device reads the queues through the hyp's cacheable mapping of RAM.
fn add_virtio_iommu<'a>(
    root: &mut Node<'a>,
    window: PhysRange,
    smmu: u32,
    cells: &mut Vec<(u32, usize)>,
) -> Result<Node<'a>, El1TreeError> {
    let fail = El1TreeError::VirtioIommu;
    let (node, irq_parent) =
        find_phandle(root, smmu, None).ok_or(fail("no SMMU with that phandle"))?;
    if node.u32_prop("#iommu-cells") != Some(1) {
        return Err(fail("the SMMU's #iommu-cells is not 1"));
    }
    let irq_parent = irq_parent.ok_or(fail("the SMMU has no interrupt parent"))?;
    let irq_cells = find_phandle(root, irq_parent, None)
        .and_then(|(gic, _)| gic.u32_prop("#interrupt-cells"))
        .ok_or(fail("the SMMU's interrupt parent has no #interrupt-cells"))?;
    let interrupt = named_interrupt(node, "eventq", irq_cells as usize)
        .ok_or(fail("the SMMU has no eventq interrupt"))?
        .to_vec();
    let mut all = Vec::new();
    phandles(root, &mut all);
    let phandle = all
        .iter()
        .max()
        .map_or(Some(1), |m| m.checked_add(1))
        .ok_or(fail("no phandle left"))?;
    redirect_iommu_maps(root, cells, smmu, phandle);
    cells.push((phandle, 1));
    let mut reg = Vec::new();
    encode_cells(
        &mut reg,
        window.start,
        root.u32_prop("#address-cells").unwrap_or(2) as usize,
    )?;
    encode_cells(
        &mut reg,
        window.size,
        root.u32_prop("#size-cells").unwrap_or(1) as usize,
    )?;
    Ok(Node {
        name: Cow::Owned(format!("{VIRTIO_IOMMU_NAME}@{:x}", window.start)),
        props: alloc::vec![
            ("compatible", Cow::Borrowed(&b"virtio,mmio\0"[..])),
            ("reg", Cow::Owned(reg)),
            ("interrupt-parent", cell(irq_parent)),
            ("interrupts", Cow::Owned(interrupt)),
            ("dma-coherent", Cow::Borrowed(&[][..])),
            ("#iommu-cells", cell(1)),
            ("phandle", cell(phandle)),
        ],
        children: Vec::new(),
    })
}

/// Big-endian cells of `value` in `cells` 32-bit words, if it fits.
fn encode_cells(out: &mut Vec<u8>, value: u64, cells: usize) -> Result<(), El1TreeError> {
    match cells {
        1 if value <= u64::from(u32::MAX) => out.extend_from_slice(&(value as u32).to_be_bytes()),
        2 => out.extend_from_slice(&value.to_be_bytes()),
        _ => return Err(El1TreeError::CellsTooSmall),
    }
    Ok(())
}

/// Values the writer emits that the input does not hold.
struct Added {
    bootargs: Vec<u8>,
    initrd_start: [u8; 8],
    initrd_end: [u8; 8],
    /// `(node name, reg)` of each EL2 range.
    reserved: Vec<(alloc::string::String, Vec<u8>)>,
}

/// Writes the EL1 tree for the input tree `dtb`.
pub fn write(dtb: &[u8], spec: &El1Tree<'_>) -> Result<Vec<u8>, El1TreeError> {
    let fdt = Fdt::new(dtb)?;
    let mut root = read_tree(&fdt)?;

    let mut cells = Vec::new();
    iommu_cells(&root, &mut cells);
    // The front door's node is prepared while the SMMU it stands for is
    // still in the tree, and added after the board's hidden nodes (which
    // may include every `virtio,mmio` node) are removed.
    let mut removed = Removed::default();
    let front_door = match spec.iommu {
        El1Iommu::None => None,
        El1Iommu::Virtio { window, smmu } => {
            Some(add_virtio_iommu(&mut root, window, smmu, &mut cells)?)
        }
        El1Iommu::Pv(smmus) => {
            replace_with_pv_nodes(&mut root, "", smmus, &mut removed.paths);
            None
        }
    };
    remove_hidden(&mut root, "", spec.hidden_compatibles, &mut removed);
    remove_dangling_iommu_refs(&mut root, &cells, &removed.phandles);
    remove_dangling_paths(&mut root, &removed.paths);
    root.children.extend(front_door);

    // Cell sizes for the new `/reserved-memory` children: its own, or the
    // root's when it is created (Devicetree Specification defaults: 2, 1).
    let root_cells = (
        root.u32_prop("#address-cells").unwrap_or(2) as usize,
        root.u32_prop("#size-cells").unwrap_or(1) as usize,
    );
    let reserved_cells = root.child_mut("reserved-memory").map(|rm| {
        (
            rm.u32_prop("#address-cells").unwrap_or(root_cells.0 as u32) as usize,
            rm.u32_prop("#size-cells").unwrap_or(root_cells.1 as u32) as usize,
        )
    });
    let (acells, scells) = reserved_cells.unwrap_or(root_cells);
    let mut added = Added {
        bootargs: Vec::new(),
        initrd_start: [0; 8],
        initrd_end: [0; 8],
        reserved: Vec::new(),
    };
    for range in spec.el2_owned.iter().filter(|r| r.size != 0) {
        let mut reg = Vec::new();
        encode_cells(&mut reg, range.start, acells)?;
        encode_cells(&mut reg, range.size, scells)?;
        added
            .reserved
            .push((format!("{EL2_RESERVED_NAME}@{:x}", range.start), reg));
    }
    if let Some(args) = spec.bootargs {
        added.bootargs.extend_from_slice(args.as_bytes());
        added.bootargs.push(0);
    }
    if let Some(initrd) = spec.initrd {
        added.initrd_start = initrd.start.to_be_bytes();
        added.initrd_end = initrd.end().to_be_bytes();
    }

    if root.child_mut("chosen").is_none() {
        root.children.push(Node {
            name: Cow::Borrowed("chosen"),
            props: Vec::new(),
            children: Vec::new(),
        });
    }
    if let Some(chosen) = root.child_mut("chosen") {
        chosen
            .children
            .retain(|c| !c.prop("compatible").is_some_and(multiboot::is_module));
        chosen
            .props
            .retain(|(n, _)| !matches!(*n, "bootargs" | "linux,initrd-start" | "linux,initrd-end"));
        if spec.bootargs.is_some() {
            chosen.set_prop("bootargs", &added.bootargs);
        }
        if spec.initrd.is_some() {
            chosen.set_prop("linux,initrd-start", &added.initrd_start);
            chosen.set_prop("linux,initrd-end", &added.initrd_end);
        }
    }
    if !added.reserved.is_empty() && root.child_mut("reserved-memory").is_none() {
        root.children.push(Node {
            name: Cow::Borrowed("reserved-memory"),
            props: Vec::new(),
            children: Vec::new(),
        });
    }
    let cell_values = [(acells as u32).to_be_bytes(), (scells as u32).to_be_bytes()];
    if let Some(rm) = root.child_mut("reserved-memory") {
        if rm.props.is_empty() {
            rm.set_prop("#address-cells", &cell_values[0]);
            rm.set_prop("#size-cells", &cell_values[1]);
            rm.set_prop("ranges", &[]);
        }
        for (name, reg) in &added.reserved {
            rm.children.push(Node {
                name: Cow::Borrowed(name.as_str()),
                props: alloc::vec![
                    ("reg", Cow::Borrowed(reg.as_slice())),
                    ("no-map", Cow::Borrowed(&[][..]))
                ],
                children: Vec::new(),
            });
        }
    }

    let reservations: Result<Vec<_>, _> = fdt
        .memory_reservations()
        .map(|(address, size)| vm_fdt::FdtReserveEntry::new(address, size))
        .collect();
    let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&reservations?)?;
    w.set_boot_cpuid_phys(fdt.boot_cpuid);
    emit(&mut w, &root)?;
    Ok(w.finish()?)
}

fn emit(w: &mut vm_fdt::FdtWriter, node: &Node<'_>) -> Result<(), vm_fdt::Error> {
    let handle = w.begin_node(&node.name)?;
    for (name, value) in &node.props {
        w.property(name, value)?;
    }
    for child in &node.children {
        emit(w, child)?;
    }
    w.end_node(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    const GUEST_LOADER: &[u8] = include_bytes!("../../tests/fixtures/qemu-virt-guest-loader.dtb");
    const QEMU_HIDDEN: &[&str] = &["qemu,fw-cfg-mmio", "virtio,mmio"];
    const EL2: [PhysRange; 2] = [
        PhysRange::new(0x4020_0000, 0x11_0000),
        PhysRange::new(0x4040_0000, 0x200_0000),
    ];

    fn spec() -> El1Tree<'static> {
        El1Tree {
            hidden_compatibles: QEMU_HIDDEN,
            el2_owned: &EL2,
            bootargs: Some("console=ttyAMA0 earlycon"),
            initrd: Some(PhysRange::new(0x5800_0000, 5000)),
            iommu: El1Iommu::None,
        }
    }

    /// A spec for a hand-written tree: nothing hidden, no bootargs or
    /// initrd, `el2_owned` reserved and `iommu` in the SMMUs' place.
    fn bare_spec<'a>(el2_owned: &'a [PhysRange], iommu: El1Iommu<'a>) -> El1Tree<'a> {
        El1Tree {
            hidden_compatibles: &[],
            el2_owned,
            bootargs: None,
            initrd: None,
            iommu,
        }
    }

    /// The value of property `name` of the node at `path`, which must exist.
    fn prop<'a>(fdt: &fdt::Fdt<'a>, path: &str, name: &str) -> Option<&'a [u8]> {
        let node = fdt.find_node(path).unwrap_or_else(|| panic!("no {path}"));
        node.property(name).map(|p| p.value)
    }

    fn nodes(dtb: &[u8]) -> std::vec::Vec<std::string::String> {
        let fdt = fdt::Fdt::new(dtb).unwrap();
        fdt.all_nodes().map(|n| n.name.to_string()).collect()
    }

    #[test]
    fn el2_memory_is_reserved_no_map_and_reads_back_as_reserved() {
        let out = write(GUEST_LOADER, &spec()).unwrap();
        let p = Platform::parse(&out, 0).unwrap();
        for r in EL2 {
            assert!(p.reserved.contains_range(&r), "{r} reserved");
        }
        let fdt = fdt::Fdt::new(&out).unwrap();
        let rm = fdt.find_node("/reserved-memory").unwrap();
        let names: std::vec::Vec<_> = rm.children().map(|c| c.name).collect();
        assert_eq!(names, ["smmu-hyp@40200000", "smmu-hyp@40400000"]);
        for child in rm.children() {
            assert!(child.property("no-map").is_some());
        }
        assert_eq!(rm.property("#address-cells").unwrap().as_usize(), Some(2));
        assert!(rm.property("ranges").is_some());
    }

    #[test]
    fn smmus_and_board_bus_masters_are_removed_with_every_reference_to_them() {
        let input = nodes(GUEST_LOADER);
        assert!(input.iter().any(|n| n.starts_with("smmuv3@")));
        assert!(input.iter().any(|n| n.starts_with("fw-cfg@")));
        assert_eq!(
            input
                .iter()
                .filter(|n| n.starts_with("virtio_mmio@"))
                .count(),
            32
        );
        let out = write(GUEST_LOADER, &spec()).unwrap();
        let left = nodes(&out);
        assert!(!left.iter().any(|n| n.starts_with("smmuv3@")
            || n.starts_with("fw-cfg@")
            || n.starts_with("virtio_mmio@")));
        let p = Platform::parse(&out, 0).unwrap();
        assert!(p.smmus.is_empty());
        let pcie = p.pcie.unwrap();
        assert!(pcie.iommu_map.is_empty(), "iommu-map pointed at the SMMU");
        let fdt = fdt::Fdt::new(&out).unwrap();
        let pcie_node = fdt
            .all_nodes()
            .find(|n| n.name.starts_with("pcie@"))
            .unwrap();
        assert!(pcie_node.property("iommu-map-mask").is_none());
        assert!(pcie_node.property("msi-map").is_some(), "the ITS stays");
        // Removed: the SMMU, fw-cfg, 32 virtio-mmio transports and the two
        // modules; added: /reserved-memory and its two children.
        assert_eq!(input.len() - left.len(), 36 - 3);
    }

    #[test]
    fn chosen_carries_the_kernels_bootargs_and_initrd_and_no_modules() {
        let out = write(GUEST_LOADER, &spec()).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(
            chosen.property("bootargs").unwrap().as_str(),
            Some("console=ttyAMA0 earlycon")
        );
        assert_eq!(chosen.children().count(), 0, "module nodes removed");
        let start = chosen.property("linux,initrd-start").unwrap().as_usize();
        let end = chosen.property("linux,initrd-end").unwrap().as_usize();
        assert_eq!((start, end), (Some(0x5800_0000), Some(0x5800_0000 + 5000)));
        assert!(
            chosen.property("stdout-path").is_some(),
            "the rest is copied"
        );
        assert_eq!(
            multiboot::parse(&out).unwrap(),
            multiboot::BootModules::default()
        );
        let hyp_args = fdt::Fdt::new(GUEST_LOADER).unwrap();
        assert_eq!(
            hyp_args
                .find_node("/chosen")
                .unwrap()
                .property("bootargs")
                .unwrap()
                .as_str(),
            Some("semihosting log=info"),
            "the hyp's own bootargs were in the input"
        );
        assert!(!out.windows(11).any(|w| w == b"semihosting"));
    }

    #[test]
    fn everything_else_is_copied_unchanged() {
        let out = write(GUEST_LOADER, &spec()).unwrap();
        let a = Platform::parse(GUEST_LOADER, 0).unwrap();
        let b = Platform::parse(&out, 0).unwrap();
        assert_eq!(a.ram.total_size(), b.ram.total_size());
        assert_eq!(
            (a.uart, a.gic.regions().count(), a.psci, a.cpus.len()),
            (b.uart, b.gic.regions().count(), b.psci, b.cpus.len())
        );
        assert_eq!(a.model, b.model);
        let fdt_in = fdt::Fdt::new(GUEST_LOADER).unwrap();
        let fdt_out = fdt::Fdt::new(&out).unwrap();
        for node in fdt_in
            .all_nodes()
            .filter(|n| n.name.starts_with("cpu") || n.name.starts_with("intc"))
        {
            let copy = fdt_out.all_nodes().find(|m| m.name == node.name).unwrap();
            let props_in: std::vec::Vec<_> = node.properties().map(|p| (p.name, p.value)).collect();
            let props_out: std::vec::Vec<_> =
                copy.properties().map(|p| (p.name, p.value)).collect();
            assert_eq!(props_in, props_out, "{}", node.name);
        }
    }

    /// The guest-loader tree's SMMU, as `iommu=pv` with that SMMU driven
    /// describes it.
    fn pv_spec(pv: &[PvIommu]) -> El1Tree<'_> {
        El1Tree {
            iommu: El1Iommu::Pv(pv),
            ..spec()
        }
    }

    fn smmu_phandle(dtb: &[u8]) -> u32 {
        Platform::parse(dtb, 0).unwrap().smmus[0].phandle.unwrap()
    }

    #[test]
    fn with_pv_the_smmu_becomes_a_pv_iommu_node_that_pcie_iommu_map_still_names() {
        let phandle = smmu_phandle(GUEST_LOADER);
        let pv = [PvIommu { phandle, smmu: 0 }];
        let out = write(GUEST_LOADER, &pv_spec(&pv)).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt
            .find_node("/pv-iommu-0")
            .expect("the pv node in the SMMU's place");
        let props: std::vec::Vec<_> = node.properties().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            props,
            [
                ("compatible", &b"smmu-hyp,pv-iommu\0"[..]),
                ("phandle", &phandle.to_be_bytes()[..]),
                ("#iommu-cells", &[0, 0, 0, 1][..]),
                ("smmu-hyp,smmu", &[0, 0, 0, 0][..]),
            ],
            "no registers, interrupts or anything else of the SMMU's"
        );
        assert!(!nodes(&out).iter().any(|n| n.starts_with("smmuv3@")));
        // The PCIe map is the board's, so StreamIDs are what the hyp checks.
        let before = Platform::parse(GUEST_LOADER, 0).unwrap().pcie.unwrap();
        let after = Platform::parse(&out, 0).unwrap();
        assert!(after.smmus.is_empty(), "Linux sees no SMMU");
        let pcie = after.pcie.unwrap();
        assert_eq!(pcie.iommu_map, before.iommu_map);
        assert_eq!(pcie.iommu_map[0].iommu_phandle, phandle);
        assert_eq!(pcie.stream_id(0x8), Some((phandle, 0x8)));
        // The other hidden bus masters go as without it.
        assert!(!nodes(&out).iter().any(|n| n.starts_with("fw-cfg@")));
    }

    #[test]
    fn without_pv_or_for_an_smmu_the_hyp_does_not_drive_no_pv_node_is_written() {
        let phandle = smmu_phandle(GUEST_LOADER);
        for pv in [
            &[][..],
            &[PvIommu {
                phandle: phandle + 1000,
                smmu: 0,
            }][..],
        ] {
            let out = write(GUEST_LOADER, &pv_spec(pv)).unwrap();
            assert!(
                !out.windows(PV_IOMMU.len())
                    .any(|w| w == PV_IOMMU.as_bytes())
            );
            let pcie = Platform::parse(&out, 0).unwrap().pcie.unwrap();
            assert!(pcie.iommu_map.is_empty(), "iommu-map pointed at the SMMU");
        }
    }

    #[test]
    fn pv_nodes_replace_each_driven_smmu_and_aliases_to_the_old_node_go() {
        // custom(): the SMMU (phandle 5, one cell) and another IOMMU.
        let el2 = [PhysRange::new(0x8020_0000, 0x20_0000)];
        let pv = [PvIommu {
            phandle: 5,
            smmu: 3,
        }];
        let spec = bare_spec(&el2, El1Iommu::Pv(&pv));
        let out = write(&custom(), &spec).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt.find_node("/soc/pv-iommu-3").unwrap();
        assert_eq!(node.property("smmu-hyp,smmu").unwrap().as_usize(), Some(3));
        assert_eq!(node.property("phandle").unwrap().as_usize(), Some(5));
        assert_eq!(
            prop(&fdt, "/soc/dma@1000", "iommus"),
            Some(&[0, 0, 0, 5, 0, 0, 0, 0x10][..]),
            "a platform device's StreamID stays"
        );
        assert!(prop(&fdt, "/soc/gpu@2000", "iommus").is_some());
        assert!(
            prop(&fdt, "/aliases", "smmu0").is_none(),
            "its path is gone"
        );
        assert!(prop(&fdt, "/aliases", "serial0").is_some());
    }

    #[test]
    fn an_smmu_whose_iommu_cells_is_not_one_is_removed_not_replaced() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let smmu = w.begin_node("iommu@1000").unwrap();
        w.property_string("compatible", "arm,smmu-v3").unwrap();
        w.property_u32("phandle", 5).unwrap();
        w.property_u32("#iommu-cells", 2).unwrap();
        w.end_node(smmu).unwrap();
        let dma = w.begin_node("dma@2000").unwrap();
        w.property_array_u32("iommus", &[5, 1, 2]).unwrap();
        w.end_node(dma).unwrap();
        w.end_node(root).unwrap();
        let dtb = w.finish().unwrap();
        let pv = [PvIommu {
            phandle: 5,
            smmu: 0,
        }];
        let spec = bare_spec(&[], El1Iommu::Pv(&pv));
        let out = write(&dtb, &spec).unwrap();
        assert_eq!(nodes(&out), ["/", "dma@2000", "chosen"]);
        let fdt = fdt::Fdt::new(&out).unwrap();
        assert!(prop(&fdt, "/dma@2000", "iommus").is_none());
    }

    /// A hand-made tree: an SMMU, a platform device behind it (`iommus`),
    /// one behind another IOMMU, a `/memreserve/` entry, an alias, an
    /// existing `/reserved-memory` with one-cell sizes.
    fn custom() -> std::vec::Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&[vm_fdt::FdtReserveEntry::new(
            0x8000_0000,
            0x1000,
        )
        .unwrap()])
        .unwrap();
        w.set_boot_cpuid_phys(3);
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let aliases = w.begin_node("aliases").unwrap();
        w.property_string("smmu0", "/soc/iommu@2b400000").unwrap();
        w.property_string("serial0", "/soc/uart@1c090000").unwrap();
        w.end_node(aliases).unwrap();
        let rm = w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_null("ranges").unwrap();
        let fw = w.begin_node("firmware@88000000").unwrap();
        w.property_array_u32("reg", &[0x8800_0000, 0x10_0000])
            .unwrap();
        w.property_null("no-map").unwrap();
        w.end_node(fw).unwrap();
        w.end_node(rm).unwrap();
        let soc = w.begin_node("soc").unwrap();
        let smmu = w.begin_node("iommu@2b400000").unwrap();
        w.property_string("compatible", "arm,smmu-v3").unwrap();
        w.property_u32("phandle", 5).unwrap();
        w.property_u32("#iommu-cells", 1).unwrap();
        w.end_node(smmu).unwrap();
        let other = w.begin_node("iommu@3000000").unwrap();
        w.property_string("compatible", "vendor,other-iommu")
            .unwrap();
        w.property_u32("phandle", 6).unwrap();
        w.property_u32("#iommu-cells", 2).unwrap();
        w.end_node(other).unwrap();
        let dma = w.begin_node("dma@1000").unwrap();
        w.property_array_u32("iommus", &[5, 0x10]).unwrap();
        w.end_node(dma).unwrap();
        let gpu = w.begin_node("gpu@2000").unwrap();
        w.property_array_u32("iommus", &[6, 1, 2]).unwrap();
        w.end_node(gpu).unwrap();
        let uart = w.begin_node("uart@1c090000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.end_node(uart).unwrap();
        w.end_node(soc).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn existing_reserved_memory_memreserve_and_other_iommus_are_kept() {
        let el2 = [PhysRange::new(0x8020_0000, 0x20_0000)];
        let spec = bare_spec(&el2, El1Iommu::None);
        let out = write(&custom(), &spec).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let reservations: std::vec::Vec<_> = fdt
            .memory_reservations()
            .map(|r| (r.address() as u64, r.size()))
            .collect();
        assert_eq!(reservations, [(0x8000_0000, 0x1000)]);
        assert_eq!(
            u32::from_be_bytes(out[28..32].try_into().unwrap()),
            3,
            "boot_cpuid_phys"
        );
        let rm = fdt.find_node("/reserved-memory").unwrap();
        let kids: std::vec::Vec<_> = rm
            .children()
            .map(|c| (c.name, c.property("reg").unwrap().value))
            .collect();
        assert_eq!(
            kids,
            [
                ("firmware@88000000", &[0x88, 0, 0, 0, 0, 0x10, 0, 0][..]),
                ("smmu-hyp@80200000", &[0x80, 0x20, 0, 0, 0, 0x20, 0, 0][..]),
            ],
            "one-cell reg for the hyp's range too"
        );
        assert!(fdt.find_node("/soc/iommu@2b400000").is_none());
        assert!(prop(&fdt, "/soc/dma@1000", "iommus").is_none());
        assert!(prop(&fdt, "/soc/gpu@2000", "iommus").is_some());
        assert!(prop(&fdt, "/aliases", "smmu0").is_none());
        assert!(prop(&fdt, "/aliases", "serial0").is_some());
        let chosen = fdt.find_node("/chosen").unwrap();
        assert!(
            chosen.property("bootargs").is_none()
                && chosen.property("linux,initrd-start").is_none()
        );
    }

    #[test]
    fn ranges_that_do_not_fit_the_cells_and_malformed_input_are_errors() {
        let el2 = [PhysRange::new(0x1_0000_0000, 0x1000)];
        let spec = bare_spec(&el2, El1Iommu::None);
        assert_eq!(write(&custom(), &spec), Err(El1TreeError::CellsTooSmall));
        assert_eq!(
            write(&[0; 64], &spec),
            Err(El1TreeError::Input(DtError::BadHeader))
        );
    }

    /// Where the tests put the virtio-iommu: a hole in QEMU virt's map.
    const WINDOW: PhysRange = PhysRange::new(0x0b00_0000, 0x200);

    /// The phandle of `compatible`'s first node in `dtb`.
    fn phandle_of(dtb: &[u8], compatible: &str) -> u32 {
        let fdt = fdt::Fdt::new(dtb).unwrap();
        let node = fdt.find_compatible(&[compatible]).unwrap();
        node.property("phandle").unwrap().as_usize().unwrap() as u32
    }

    fn be_cells(value: &[u8]) -> std::vec::Vec<u32> {
        value
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn virtio_spec(smmu: u32) -> El1Tree<'static> {
        El1Tree {
            iommu: El1Iommu::Virtio {
                window: WINDOW,
                smmu,
            },
            ..spec()
        }
    }

    #[test]
    fn the_virtio_iommu_node_takes_the_smmus_place_in_the_pcie_iommu_map() {
        let smmu = phandle_of(GUEST_LOADER, SMMU_V3);
        let gic = phandle_of(GUEST_LOADER, "arm,gic-v3");
        let out = write(GUEST_LOADER, &virtio_spec(smmu)).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt
            .find_node("/iommu@b000000")
            .expect("the virtio-iommu node");
        let prop = |name: &str| node.property(name).map(|p| p.value.to_vec());
        assert_eq!(prop("compatible").unwrap(), b"virtio,mmio\0");
        assert_eq!(be_cells(&prop("reg").unwrap()), [0, 0x0b00_0000, 0, 0x200]);
        assert_eq!(
            be_cells(&prop("interrupts").unwrap()),
            [0, 74, 1],
            "the SMMU's eventq SPI, edge-triggered as QEMU wires it"
        );
        assert_eq!(be_cells(&prop("interrupt-parent").unwrap()), [gic]);
        assert_eq!(prop("dma-coherent").unwrap(), b"");
        assert_eq!(be_cells(&prop("#iommu-cells").unwrap()), [1]);
        let phandle = be_cells(&prop("phandle").unwrap())[0];
        let mut all = std::vec::Vec::new();
        for n in fdt.all_nodes() {
            all.extend(n.property("phandle").and_then(|p| p.as_usize()));
        }
        assert_eq!(
            all.iter().filter(|&&p| p == phandle as usize).count(),
            1,
            "a phandle of its own"
        );
        // The map keeps its RIDs and endpoint ids (= StreamIDs).
        let pcie = fdt
            .all_nodes()
            .find(|n| n.name.starts_with("pcie@"))
            .unwrap();
        let map = be_cells(pcie.property("iommu-map").unwrap().value);
        assert_eq!(map, [0, phandle, 0, 0x10000]);
        let p = Platform::parse(&out, 0).unwrap();
        assert!(p.smmus.is_empty(), "the SMMU itself is still removed");
        assert_eq!(p.pcie.unwrap().iommu_map[0].iommu_phandle, phandle);
        // The board's own virtio-mmio transports are still hidden.
        let virtio = fdt
            .all_nodes()
            .filter(|n| {
                n.compatible()
                    .is_some_and(|c| c.all().any(|s| s == "virtio,mmio"))
            })
            .count();
        assert_eq!(virtio, 1);
    }

    #[test]
    fn without_a_front_door_no_iommu_node_is_added() {
        let out = write(GUEST_LOADER, &spec()).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        assert!(fdt.all_nodes().all(|n| !n.name.starts_with("iommu@")));
    }

    /// [`custom`] with a PCIe host whose `iommu-map` names the SMMU (5)
    /// and the other IOMMU (6, two cells), and an interrupt controller.
    fn custom_with_pcie(smmu_irqs: bool) -> std::vec::Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", 1).unwrap();
        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_u32("phandle", 1).unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.end_node(gic).unwrap();
        let smmu = w.begin_node("iommu@2b400000").unwrap();
        w.property_string("compatible", "arm,smmu-v3").unwrap();
        w.property_u32("phandle", 5).unwrap();
        w.property_u32("#iommu-cells", 1).unwrap();
        if smmu_irqs {
            w.property_array_u32("interrupts", &[0, 74, 4, 0, 79, 4])
                .unwrap();
            w.property_string_list("interrupt-names", vec!["gerror".into(), "eventq".into()])
                .unwrap();
        }
        w.end_node(smmu).unwrap();
        let other = w.begin_node("iommu@3000000").unwrap();
        w.property_u32("phandle", 6).unwrap();
        w.property_u32("#iommu-cells", 2).unwrap();
        w.end_node(other).unwrap();
        let pcie = w.begin_node("pcie@40000000").unwrap();
        w.property_array_u32(
            "iommu-map",
            &[0, 5, 0, 0x100, 0x100, 6, 7, 8, 0x100, 0x200, 5, 0x200, 0x10],
        )
        .unwrap();
        w.end_node(pcie).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn only_the_entries_naming_the_smmu_are_redirected_and_the_interrupt_is_the_named_eventq() {
        let out = write(&custom_with_pcie(true), &virtio_spec(5)).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt.find_node("/iommu@b000000").unwrap();
        assert_eq!(be_cells(node.property("phandle").unwrap().value), [7]);
        assert_eq!(
            be_cells(node.property("interrupts").unwrap().value),
            [0, 79, 4]
        );
        assert_eq!(
            be_cells(node.property("interrupt-parent").unwrap().value),
            [1]
        );
        let map = fdt.find_node("/pcie@40000000").unwrap();
        assert_eq!(
            be_cells(map.property("iommu-map").unwrap().value),
            [0, 7, 0, 0x100, 0x100, 6, 7, 8, 0x100, 0x200, 7, 0x200, 0x10]
        );
    }

    #[test]
    fn an_smmu_without_an_eventq_interrupt_or_with_two_cell_ids_gets_no_virtio_iommu() {
        assert_eq!(
            write(&custom_with_pcie(false), &virtio_spec(5)),
            Err(El1TreeError::VirtioIommu(
                "the SMMU has no eventq interrupt"
            ))
        );
        assert_eq!(
            write(&custom_with_pcie(true), &virtio_spec(6)),
            Err(El1TreeError::VirtioIommu(
                "the SMMU's #iommu-cells is not 1"
            ))
        );
        assert_eq!(
            write(&custom_with_pcie(true), &virtio_spec(9)),
            Err(El1TreeError::VirtioIommu("no SMMU with that phandle"))
        );
    }
}

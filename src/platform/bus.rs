//! Device-tree addresses: cells, `ranges`, and translation to CPU physical
//! addresses.
//!
//! A node's `reg` is in its parent's address space (the parent's
//! `#address-cells` and `#size-cells`); each ancestor's `ranges` maps its
//! children's addresses into its own parent's space, up to the root, whose
//! children's addresses are CPU physical addresses (Devicetree
//! Specification v0.4, 2.3.5 to 2.3.8). An ancestor without `ranges` puts
//! its children outside the CPU's address space; an empty `ranges` is the
//! identity.

use fdt::node::FdtNode;

/// Deepest node nesting the parser follows (real trees use under 8).
pub const MAX_DEPTH: usize = 16;

/// How one node's children address their registers.
#[derive(Clone, Copy, Debug)]
pub struct Bus<'a> {
    pub address_cells: usize,
    pub size_cells: usize,
    /// This node's `ranges`: `None` when absent (children not memory
    /// mapped), empty for the identity.
    pub ranges: Option<&'a [u8]>,
}

impl<'a> Bus<'a> {
    /// What `node` declares for its children. Absent cell counts take the
    /// specification's defaults (2 address cells, 1 size cell).
    pub fn of(node: &FdtNode<'_, 'a>) -> Self {
        let cells = |name: &str, default: usize| {
            node.property(name)
                .and_then(|p| read_cells(p.value, 1))
                .map_or(default, |v| v as usize)
        };
        Self {
            address_cells: cells("#address-cells", 2),
            size_cells: cells("#size-cells", 1),
            ranges: node.property("ranges").map(|p| p.value),
        }
    }

    /// Maps `addr`, an address of this node's children, into the address
    /// space of this node's parent (`parent_cells` address cells).
    fn map_up(&self, addr: u64, parent_cells: usize) -> Option<u64> {
        let ranges = self.ranges?;
        if ranges.is_empty() {
            return Some(addr);
        }
        let entry = (self.address_cells + parent_cells + self.size_cells) * 4;
        if self.address_cells > 2 || entry == 0 || !ranges.len().is_multiple_of(entry) {
            return None;
        }
        ranges.chunks_exact(entry).find_map(|e| {
            let (child, rest) = e.split_at(self.address_cells * 4);
            let (parent, size) = rest.split_at(parent_cells * 4);
            let child = read_cells(child, self.address_cells)?;
            let size = read_cells(size, self.size_cells)?;
            let offset = addr.checked_sub(child)?;
            (offset < size).then(|| read_cells(parent, parent_cells)?.checked_add(offset))?
        })
    }
}

/// Translates `addr`, in the address space of the children of the last
/// bus of `chain` (the root first), to a CPU physical address.
pub fn translate(chain: &[Bus<'_>], mut addr: u64) -> Option<u64> {
    for k in (1..chain.len()).rev() {
        addr = chain[k].map_up(addr, chain[k - 1].address_cells)?;
    }
    Some(addr)
}

/// Reads `cells` big-endian 32-bit cells (at most 2) as one number.
pub fn read_cells(bytes: &[u8], cells: usize) -> Option<u64> {
    if cells == 0 || cells > 2 || bytes.len() < cells * 4 {
        return None;
    }
    Some(bytes[..cells * 4].chunks_exact(4).fold(0u64, |acc, c| {
        (acc << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }))
}

/// The `(address, size)` pairs of a `reg` value in the space of `bus`'s
/// children; `None` if the length does not match the cells.
pub fn reg_entries<'v>(
    value: &'v [u8],
    bus: &Bus<'_>,
) -> Option<impl Iterator<Item = (u64, u64)> + 'v> {
    let (ac, sc) = (bus.address_cells, bus.size_cells);
    let entry = (ac + sc) * 4;
    if ac == 0 || ac > 2 || sc > 2 || !value.len().is_multiple_of(entry) {
        return None;
    }
    Some(value.chunks_exact(entry).map(move |e| {
        let (a, s) = e.split_at(ac * 4);
        let size = if sc == 0 {
            0
        } else {
            read_cells(s, sc).unwrap_or(0)
        };
        (read_cells(a, ac).unwrap_or(0), size)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(words: &[u32]) -> std::vec::Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn nested_ranges_translate_to_cpu_addresses() {
        // The FVP's motherboard: root (2 cells) -> bus@8000000 with
        // (2 address, 1 size) children -> iofpga (1, 1), like UART0.
        let root = Bus {
            address_cells: 2,
            size_cells: 2,
            ranges: None,
        };
        let bus_ranges = cells(&[0, 0x0800_0000, 0, 0x0800_0000, 0x1800_0000]);
        let bus = Bus {
            address_cells: 2,
            size_cells: 1,
            ranges: Some(&bus_ranges),
        };
        let mb_ranges = cells(&[3, 0, 0, 0x1c00_0000, 0x400_0000]);
        let mb = Bus {
            address_cells: 2,
            size_cells: 1,
            ranges: Some(&mb_ranges),
        };
        let iofpga_ranges = cells(&[0, 3, 0, 0x21_0000]);
        let iofpga = Bus {
            address_cells: 1,
            size_cells: 1,
            ranges: Some(&iofpga_ranges),
        };
        let chain = [root, bus, mb, iofpga];
        assert_eq!(translate(&chain, 0x9_0000), Some(0x1c09_0000));
        assert_eq!(translate(&chain, 0x21_0000), None, "outside every range");
        assert_eq!(translate(&chain[..1], 0x1234), Some(0x1234), "root");
    }

    #[test]
    fn a_parent_without_ranges_is_not_memory_mapped_and_empty_ranges_is_identity() {
        let root = Bus {
            address_cells: 2,
            size_cells: 2,
            ranges: None,
        };
        let opaque = Bus {
            address_cells: 1,
            size_cells: 0,
            ranges: None,
        };
        assert_eq!(translate(&[root, opaque], 0x10), None);
        let identity = Bus {
            ranges: Some(&[]),
            ..opaque
        };
        assert_eq!(translate(&[root, identity], 0x10), Some(0x10));
    }

    #[test]
    fn reg_entries_follow_the_parents_cells() {
        let value = cells(&[0, 0x2f00_0000, 0, 0x1_0000, 0x4, 0, 0, 0x2000]);
        let bus = Bus {
            address_cells: 2,
            size_cells: 2,
            ranges: None,
        };
        let got: std::vec::Vec<_> = reg_entries(&value, &bus).unwrap().collect();
        assert_eq!(got, [(0x2f00_0000, 0x1_0000), (0x4_0000_0000, 0x2000)]);
        assert!(reg_entries(&value[..12], &bus).is_none(), "length");
    }
}

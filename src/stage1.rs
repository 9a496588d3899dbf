//! The EL2 stage-1 identity map (4 KiB granule, 48-bit VA, levels 0 to 3).
//!
//! Built once at boot, before the MMU is on, from the memory map: RAM is
//! normal write-back inner-shareable, the image is split by permission
//! (text read-only executable, rodata read-only, data/BSS/stacks read-write
//! never-executable) and MMIO is Device-nGnRE, never executable. The builder
//! works on a caller-provided pool of tables and refuses to map a page twice,
//! so every address has exactly one meaning.

use crate::mem::PAGE_SIZE;
use crate::memmap::PhysRange;
use core::fmt;

const ENTRIES: usize = 512;
const VA_BITS: u32 = 48;

/// MAIR_EL2 attribute indices, matching [`MAIR_EL2_VALUE`].
const ATTR_DEVICE_NGNRE: u64 = 0;
const ATTR_NORMAL_WB: u64 = 1;
/// MAIR_EL2: index 0 Device-nGnRE, index 1 Normal inner/outer write-back
/// read/write-allocate, index 2 Normal non-cacheable.
pub const MAIR_EL2_VALUE: u64 = 0x04 | (0xff << 8) | (0x44 << 16);

const DESC_VALID: u64 = 1 << 0;
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u64 = 2;
/// AP[1] is RES1 in the EL2 translation regime.
const AP_RES1: u64 = 1 << 6;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// What a mapped range is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Executable code: read-only, executable.
    Text,
    /// Read-only data.
    ReadOnly,
    /// Read-write data, never executable.
    ReadWrite,
    /// Memory-mapped I/O: Device-nGnRE, never executable.
    Device,
}

impl Kind {
    fn attributes(self) -> u64 {
        let normal = (ATTR_NORMAL_WB << ATTR_INDEX_SHIFT) | SH_INNER;
        AF | AP_RES1
            | match self {
                Kind::Text => normal | AP_READ_ONLY,
                Kind::ReadOnly => normal | AP_READ_ONLY | XN,
                Kind::ReadWrite => normal | XN,
                Kind::Device => (ATTR_DEVICE_NGNRE << ATTR_INDEX_SHIFT) | XN,
            }
    }
}

/// Why a range could not be mapped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// The table pool is exhausted.
    NoTables,
    /// Part of the range is mapped already.
    AlreadyMapped(u64),
    /// Not page aligned, or beyond the 48-bit VA space.
    BadRange,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTables => f.write_str("out of translation tables"),
            Self::AlreadyMapped(va) => write!(f, "{va:#x} is mapped already"),
            Self::BadRange => f.write_str("range not page aligned or beyond 48 bits"),
        }
    }
}

/// One 4 KiB translation table.
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);
// The 4 KiB granule is the hyp's page.
const _: () = assert!(core::mem::size_of::<Table>() as u64 == PAGE_SIZE);

impl Table {
    pub const EMPTY: Table = Table([0; ENTRIES]);
}

/// An identity map under construction over a pool of tables; `pool[0]` is
/// the root (level 0).
pub struct IdMap<'p> {
    pool: &'p mut [Table],
    used: usize,
}

fn level_shift(level: usize) -> u32 {
    12 + 9 * (3 - level as u32)
}

impl<'p> IdMap<'p> {
    /// Starts an empty map; the tables in `pool` are cleared.
    pub fn new(pool: &'p mut [Table]) -> Result<Self, MapError> {
        if pool.is_empty() {
            return Err(MapError::NoTables);
        }
        pool[0] = Table::EMPTY;
        Ok(Self { pool, used: 1 })
    }

    /// Physical (= virtual) address of the root table, for TTBR0_EL2.
    pub fn root_pa(&self) -> u64 {
        self.pool.as_ptr() as u64
    }

    /// Tables used so far, the root included.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    fn table_index(&self, desc: u64) -> usize {
        ((desc & ADDR_MASK) - self.root_pa()) as usize / PAGE_SIZE as usize
    }

    /// Maps `range` (page aligned) with the attributes of `kind`, using 1 GiB
    /// and 2 MiB blocks where alignment allows.
    pub fn map(&mut self, range: PhysRange, kind: Kind) -> Result<(), MapError> {
        let aligned = range.start.is_multiple_of(PAGE_SIZE) && range.size.is_multiple_of(PAGE_SIZE);
        if !aligned || range.end() > 1 << VA_BITS || range.end() < range.start {
            return Err(MapError::BadRange);
        }
        let mut addr = range.start;
        while addr < range.end() {
            addr += self.map_one(addr, range.end(), kind.attributes())?;
        }
        Ok(())
    }

    /// Maps the largest block or page at `addr` that fits below `end`;
    /// returns its size.
    fn map_one(&mut self, addr: u64, end: u64, attributes: u64) -> Result<u64, MapError> {
        let mut table = 0;
        for level in 0..=3 {
            let shift = level_shift(level);
            let size = 1u64 << shift;
            let index = ((addr >> shift) & 511) as usize;
            let desc = self.pool[table].0[index];
            // Blocks are allowed at levels 1 and 2, pages at level 3.
            let leaf_ok = level >= 1 && addr.is_multiple_of(size) && end - addr >= size;
            if leaf_ok && desc & DESC_VALID == 0 {
                let type_bits = if level == 3 {
                    DESC_VALID | DESC_TABLE_OR_PAGE
                } else {
                    DESC_VALID
                };
                self.pool[table].0[index] = addr | attributes | type_bits;
                return Ok(size);
            }
            if desc & DESC_VALID != 0 {
                if level == 3 || desc & DESC_TABLE_OR_PAGE == 0 {
                    return Err(MapError::AlreadyMapped(addr));
                }
                table = self.table_index(desc);
                continue;
            }
            // Descend through a new table.
            if self.used == self.pool.len() {
                return Err(MapError::NoTables);
            }
            let next = self.used;
            self.used += 1;
            self.pool[next] = Table::EMPTY;
            let next_pa = self.root_pa() + next as u64 * PAGE_SIZE;
            self.pool[table].0[index] = next_pa | DESC_VALID | DESC_TABLE_OR_PAGE;
            table = next;
        }
        unreachable!("level 3 always maps or reports AlreadyMapped")
    }

    /// The attributes a lookup of `addr` finds: `(leaf descriptor, size)`.
    pub fn lookup(&self, addr: u64) -> Option<(u64, u64)> {
        let mut table = 0;
        for level in 0..=3 {
            let shift = level_shift(level);
            let desc = self.pool[table].0[((addr >> shift) & 511) as usize];
            if desc & DESC_VALID == 0 {
                return None;
            }
            if level == 3 || desc & DESC_TABLE_OR_PAGE == 0 {
                return Some((desc, 1 << shift));
            }
            table = self.table_index(desc);
        }
        None
    }
}

/// TCR_EL2 for this map: 48-bit VA, 4 KiB granule, inner-shareable
/// write-back walks, output size from ID_AA64MMFR0_EL1.PARange (capped at
/// 48 bits, the largest a 4 KiB granule can address without LPA2).
pub fn tcr_el2(pa_range: u64) -> u64 {
    const RES1: u64 = (1 << 31) | (1 << 23);
    let ps = pa_range.min(5);
    RES1 | (ps << 16) | (3 << 12) | (1 << 10) | (1 << 8) | (64 - u64::from(VA_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    fn pool(n: usize) -> Box<[Table]> {
        (0..n)
            .map(|_| Table::EMPTY)
            .collect::<Vec<_>>()
            .into_boxed_slice()
    }

    #[test]
    fn uses_blocks_where_aligned_and_pages_elsewhere() {
        let mut tables = pool(16);
        let mut map = IdMap::new(&mut tables).unwrap();
        map.map(PhysRange::new(0x4000_0000, 0x4000_0000), Kind::ReadWrite)
            .unwrap();
        assert_eq!(map.lookup(0x4000_0000).unwrap().1, 1 << 30);
        assert_eq!(map.tables_used(), 2, "root + one level-1 table");
        map.map(PhysRange::new(0x0900_0000, 0x1000), Kind::Device)
            .unwrap();
        let (desc, size) = map.lookup(0x0900_0000).unwrap();
        assert_eq!(size, 0x1000);
        assert_eq!(desc & ADDR_MASK, 0x0900_0000);
        assert_eq!((desc >> 2) & 7, ATTR_DEVICE_NGNRE);
        assert!(desc & XN != 0);
        assert_eq!(map.lookup(0x0900_1000), None);
        map.map(PhysRange::new(0x8020_0000, 0x40_0000), Kind::Text)
            .unwrap();
        assert_eq!(map.lookup(0x8040_0000).unwrap().1, 0x20_0000);
    }

    #[test]
    fn permissions_per_kind() {
        let mut tables = pool(8);
        let mut map = IdMap::new(&mut tables).unwrap();
        map.map(PhysRange::new(0x1000, 0x1000), Kind::Text).unwrap();
        map.map(PhysRange::new(0x2000, 0x1000), Kind::ReadOnly)
            .unwrap();
        map.map(PhysRange::new(0x3000, 0x1000), Kind::ReadWrite)
            .unwrap();
        let text = map.lookup(0x1000).unwrap().0;
        assert!(text & AP_READ_ONLY != 0 && text & XN == 0);
        let ro = map.lookup(0x2000).unwrap().0;
        assert!(ro & AP_READ_ONLY != 0 && ro & XN != 0);
        let rw = map.lookup(0x3000).unwrap().0;
        assert!(rw & AP_READ_ONLY == 0 && rw & XN != 0);
        for d in [text, ro, rw] {
            assert_eq!((d >> 2) & 7, ATTR_NORMAL_WB);
            assert_eq!(d & SH_INNER, SH_INNER);
            assert!(d & AF != 0 && d & AP_RES1 != 0);
        }
    }

    #[test]
    fn refuses_double_maps_bad_ranges_and_pool_exhaustion() {
        let mut tables = pool(4);
        let mut map = IdMap::new(&mut tables).unwrap();
        map.map(PhysRange::new(0x20_0000, 0x20_0000), Kind::ReadWrite)
            .unwrap();
        assert_eq!(
            map.map(PhysRange::new(0x20_1000, 0x1000), Kind::ReadWrite),
            Err(MapError::AlreadyMapped(0x20_1000))
        );
        assert_eq!(
            map.map(PhysRange::new(0x123, 0x1000), Kind::ReadWrite),
            Err(MapError::BadRange)
        );
        assert_eq!(
            map.map(PhysRange::new(1 << 48, 0x1000), Kind::ReadWrite),
            Err(MapError::BadRange)
        );
        // Three tables are used (L0, L1, L2); a page far away needs three more.
        assert_eq!(
            map.map(PhysRange::new(0x80_0000_0000, 0x1000), Kind::Device),
            Err(MapError::NoTables)
        );
    }

    #[test]
    fn tcr_encodes_48_bit_va_and_caps_output_size() {
        let tcr = tcr_el2(6);
        assert_eq!(tcr & 0x3f, 16);
        assert_eq!((tcr >> 16) & 7, 5);
        assert_eq!((tcr >> 14) & 3, 0, "4 KiB granule");
        assert_eq!(tcr_el2(2) >> 16 & 7, 2);
    }
}

//! VMSAv8-64 stage-2 descriptors (64-bit, no LPA/LPA2) and the `Prot` type.
//!
//! ```text
//!  63   59 58   55 54 53 52  51 50  48 47            g  g-1 12 11 10 9  8 7    6 5       2 1 0
//! | RES0  | SW   |XN|  |Ct|DBM|RES0 | output / table address | RES0 |  |AF| SH | S2AP | MemAttr |T|V|
//! ```
//!
//! * `V` (bit 0): valid. `T` (bit 1): 1 = table (levels 0-2) or page
//!   (level 3); 0 = block (levels 1-2 only, see
//!   [`Granule::leaf_allowed`](super::Granule::leaf_allowed)).
//! * `S2AP` bit 6 grants read, bit 7 grants write.
//! * `MemAttr[3:0]` (with `HCR_EL2.FWB`/`STE.S2FWB` = 0): `0b1111` Normal
//!   inner+outer write-back, `0b0101` Normal non-cacheable, `0b0001`
//!   Device-nGnRE.
//! * `SH`: inner shareable for cacheable memory, outer shareable for the
//!   rest (ignored for Device; what Linux does too).
//! * `AF` is always set: the SMMU would otherwise take an access-flag fault
//!   (no HTTU is used).
//! * `XN` is bit 54 (`XN[1]`). With FEAT_XNX, `XN[1:0] = 0b10` forbids
//!   execution at every EL; without it bit 53 is RES0. Setting bit 53 too
//!   (as stage-1 code sometimes does) would mean "executable at EL1" under
//!   XNX, so it is never set.
//!
//! Occupancy counts: the engine keeps, in every table descriptor, the number
//! of valid descriptors in the table it points to. The count lives in bits
//! the architecture defines as IGNORED in stage-2 table descriptors (bits
//! 9:2 and 56:51; bit 10 is left alone because FEAT_HAFT would use it as a
//! table access flag). Changing ignored bits of a live table descriptor is
//! not a break-before-make case (Linux's io-pgtable-arm likewise sets the
//! ignored bit 55 of live table descriptors), and the walker never needs to
//! see the new count, so count updates are not published. The count makes
//! "is this table empty now" O(1) and lets `unmap` free a full subtree
//! without reading its leaves.
//!
//! Leaves use no software bits, the contiguous hint or DBM.

/// Valid bit.
pub const VALID: u64 = 1 << 0;
/// Table (levels 0-2) or page (level 3) when set, block when clear.
pub const TABLE_OR_PAGE: u64 = 1 << 1;
/// S2AP bit 0: read permission.
pub const S2AP_READ: u64 = 1 << 6;
/// S2AP bit 1: write permission.
pub const S2AP_WRITE: u64 = 1 << 7;
/// SH = outer shareable.
pub const SH_OUTER: u64 = 0b10 << 8;
/// SH = inner shareable.
pub const SH_INNER: u64 = 0b11 << 8;
/// Access flag.
pub const AF: u64 = 1 << 10;
/// XN bit 1 (descriptor bit 54): not executable at any exception level.
pub const XN: u64 = 1 << 54;
/// MemAttr field (bits 5:2).
pub const MEMATTR_MASK: u64 = 0b1111 << 2;
/// Normal memory, inner and outer write-back cacheable.
pub const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
/// Normal memory, inner and outer non-cacheable.
pub const MEMATTR_NORMAL_NC: u64 = 0b0101 << 2;
/// Device-nGnRE.
pub const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
/// Address bits of a descriptor (48-bit output addresses). Bits below the
/// granule are RES0 in table and page descriptors, and bits below the block
/// size are RES0 in block descriptors; the engine never sets them.
pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemType {
    /// Normal, write-back cacheable, inner shareable (`IOMMU_CACHE`).
    Normal,
    /// Normal, non-cacheable, outer shareable.
    NonCacheable,
    /// Device-nGnRE (`IOMMU_MMIO`), e.g. for MSI doorbells.
    Device,
}

/// Permissions and memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prot {
    /// Device may read.
    pub read: bool,
    /// Device may write.
    pub write: bool,
    /// Instruction fetches are forbidden.
    pub no_exec: bool,
    /// Memory type.
    pub mem: MemType,
}

impl Prot {
    /// Read-write, non-executable, normal cacheable: the common DMA buffer.
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        no_exec: true,
        mem: MemType::Normal,
    };
    /// Read-only, non-executable, normal cacheable.
    pub const RO: Prot = Prot {
        read: true,
        write: false,
        no_exec: true,
        mem: MemType::Normal,
    };

    /// Attribute bits of a leaf descriptor with this protection (no address,
    /// no valid / type bits).
    pub const fn leaf_attrs(self) -> u64 {
        let mut d = AF;
        if self.read {
            d |= S2AP_READ;
        }
        if self.write {
            d |= S2AP_WRITE;
        }
        if self.no_exec {
            d |= XN;
        }
        d |= match self.mem {
            MemType::Normal => MEMATTR_NORMAL_WB | SH_INNER,
            MemType::NonCacheable => MEMATTR_NORMAL_NC | SH_OUTER,
            MemType::Device => MEMATTR_DEVICE_NGNRE | SH_OUTER,
        };
        d
    }

    /// Decodes the protection of a leaf descriptor written by this engine.
    /// Memory types it never writes decode as `Device` (the conservative
    /// reading).
    pub const fn from_leaf(desc: u64) -> Prot {
        Prot {
            read: desc & S2AP_READ != 0,
            write: desc & S2AP_WRITE != 0,
            no_exec: desc & XN != 0,
            mem: match desc & MEMATTR_MASK {
                MEMATTR_NORMAL_WB => MemType::Normal,
                MEMATTR_NORMAL_NC => MemType::NonCacheable,
                _ => MemType::Device,
            },
        }
    }
}

/// The ignored bits of a table descriptor holding the occupancy count.
pub const OCCUPANCY_MASK: u64 = (0xff << 2) | (0x3f << 51);

/// Occupancy count stored in a table descriptor.
#[inline(always)]
pub const fn occupancy(desc: u64) -> usize {
    (((desc >> 2) & 0xff) | (((desc >> 51) & 0x3f) << 8)) as usize
}

/// `desc` (a table descriptor) with occupancy count `n` (at most 16383;
/// tables have at most 8192 entries).
#[inline(always)]
pub const fn with_occupancy(desc: u64, n: usize) -> u64 {
    let n = n as u64;
    (desc & !OCCUPANCY_MASK) | ((n & 0xff) << 2) | ((n >> 8) << 51)
}

/// Whether `desc` is valid.
#[inline(always)]
pub const fn is_valid(desc: u64) -> bool {
    desc & VALID != 0
}

/// Whether `desc`, found in a table at `level`, points to a next-level table.
#[inline(always)]
pub const fn is_table(desc: u64, level: u32) -> bool {
    level < 3 && desc & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE
}

/// Table descriptor pointing at the table at `pa`.
#[inline(always)]
pub const fn table(pa: u64) -> u64 {
    pa | VALID | TABLE_OR_PAGE
}

/// Leaf descriptor at `level` mapping `oa` with attribute bits `attrs`
/// (from [`Prot::leaf_attrs`]).
#[inline(always)]
pub const fn leaf(oa: u64, level: u32, attrs: u64) -> u64 {
    oa | attrs | VALID | if level == 3 { TABLE_OR_PAGE } else { 0 }
}

/// Output or next-table address of a valid descriptor.
#[inline(always)]
pub const fn address(desc: u64) -> u64 {
    desc & ADDR_MASK
}

//! The hypercall ABI, shared by the hyp and its EL1 clients.
//!
//! SMCCC 1.1 fast calls over `hvc #0`, SMC64 convention, in the
//! vendor-specific hypervisor service range (owning entity 6): function IDs
//! `0xC600_xxxx`. Arguments in x1..x6, results in x0..x3; x0 is a status
//! (0 or one of the negative error codes below). Registers a call does not
//! use are ignored and should be zero. The full description, per call, is
//! `docs/hypercall-abi.md`; the C header is `include/smmu_hyp.h`; the pure
//! Rust encoding side is [`super::client`].
//!
//! Every value here is part of the ABI: never renumber, only add.

/// ABI version: major in bits 31:16, minor in bits 15:0. A client must
/// check the major number; minor versions only add calls and bits.
pub const ABI_VERSION: u64 = 0x0000_0001;

/// This hyp's UID, 7599f278-dbfc-4632-817c-db6e35c6ec2b, answered to
/// SMCCC's [`crate::smccc::VENDOR_HYP_CALL_UID`] (x0..x3 in
/// [`crate::smccc::uid_registers`] form). A client checks it before any
/// `0xC600_xxxx` call: those IDs are also KVM's nVHE host calls.
pub const UID: [u8; 16] = [
    0x75, 0x99, 0xf2, 0x78, 0xdb, 0xfc, 0x46, 0x32, 0x81, 0x7c, 0xdb, 0x6e, 0x35, 0xc6, 0xec, 0x2b,
];

// ------------------------------------------------------------------------
// Function IDs.

/// Returns [`ABI_VERSION`] in x0.
pub const HYP_ABI_VERSION: u32 = 0xc600_0000;
/// Diagnostic: returns 0 in x0 and x1..x3 unchanged in x1..x3 (the null
/// hypercall, used to measure the round-trip cost).
pub const HYP_ECHO: u32 = 0xc600_0001;
/// Feature discovery: x1 = a function ID; x0 = [`SUCCESS`] if this hyp
/// implements it now, [`NOT_SUPPORTED`] otherwise.
pub const HYP_FEATURES: u32 = 0xc600_0002;

/// IOMMU service limits: x1 = number of SMMU indices, x2 = most domains,
/// x3 = most attached streams.
pub const HYP_IOMMU_INFO: u32 = 0xc600_0010;
/// One SMMU: x1 = smmu index. Returns x1 = [`smmu_feat`] bits, x2 = the
/// page sizes a domain can use on it (bit n set: 2^n bytes), x3 =
/// [`smmu_info`] packing (OAS, largest IPA, StreamID bits).
pub const HYP_SMMU_INFO: u32 = 0xc600_0011;
/// x1 = IPA bits, x2 = granule in bytes (0 = 4 KiB). Returns x1 = domain
/// id, x2 = the domain's page-size bitmap, x3 = its IPA bits.
pub const HYP_DOMAIN_ALLOC: u32 = 0xc600_0020;
/// x1 = domain id. Refused ([`BUSY`]) while any stream is attached.
pub const HYP_DOMAIN_FREE: u32 = 0xc600_0021;
/// x1 = smmu index, x2 = StreamID, x3 = domain id.
pub const HYP_ATTACH: u32 = 0xc600_0022;
/// x1 = smmu index, x2 = StreamID.
pub const HYP_DETACH: u32 = 0xc600_0023;
/// x1 = domain id, x2 = iova, x3 = pa, x4 = pgsize, x5 = pgcount,
/// x6 = [`prot`] bits. Returns x1 = bytes mapped.
pub const HYP_MAP: u32 = 0xc600_0024;
/// x1 = domain id, x2 = iova, x3 = pgsize, x4 = pgcount, x5 = [`unmap`]
/// flags. Returns x1 = bytes unmapped, x2/x3 = iova and size of the range
/// actually covered.
pub const HYP_UNMAP: u32 = 0xc600_0025;
/// x1 = domain id, x2 = physical address of a list of [`map_list`]
/// entries in EL1's RAM (8-byte aligned), x3 = number of entries (1 to
/// [`map_list::MAX_ENTRIES`]), x4 = [`prot`] bits for all of them. Maps
/// each entry as `HYP_MAP` would, all or nothing: on an error nothing stays
/// mapped. Returns x1 = bytes mapped.
pub const HYP_MAP_LIST: u32 = 0xc600_0027;
/// x1 = domain id, x2 = iova. Returns x1 = pa, x2 = the leaf's [`prot`]
/// bits, x3 = the leaf's size.
pub const HYP_IOVA_TO_PHYS: u32 = 0xc600_0026;
/// x1 = smmu index. Returns the oldest fault record in x1..x3 (see
/// [`fault`]), [`NOT_FOUND`] if there is none.
pub const HYP_FAULT_POP: u32 = 0xc600_0030;
/// x1 = [`stats`] selector, x2 = smmu index for per-SMMU selectors.
/// Returns three counters in x1..x3.
pub const HYP_STATS: u32 = 0xc600_0031;

/// Every function ID this ABI defines, for discovery and tests.
pub const ALL_CALLS: [u32; 15] = [
    HYP_ABI_VERSION,
    HYP_ECHO,
    HYP_FEATURES,
    HYP_IOMMU_INFO,
    HYP_SMMU_INFO,
    HYP_DOMAIN_ALLOC,
    HYP_DOMAIN_FREE,
    HYP_ATTACH,
    HYP_DETACH,
    HYP_MAP,
    HYP_UNMAP,
    HYP_MAP_LIST,
    HYP_IOVA_TO_PHYS,
    HYP_FAULT_POP,
    HYP_STATS,
];

/// The calls served by the IOMMU service (absent without one).
pub const IOMMU_CALLS: [u32; 12] = [
    HYP_IOMMU_INFO,
    HYP_SMMU_INFO,
    HYP_DOMAIN_ALLOC,
    HYP_DOMAIN_FREE,
    HYP_ATTACH,
    HYP_DETACH,
    HYP_MAP,
    HYP_UNMAP,
    HYP_MAP_LIST,
    HYP_IOVA_TO_PHYS,
    HYP_FAULT_POP,
    HYP_STATS,
];

// ------------------------------------------------------------------------
// Status codes (x0), SMCCC style: 0 or negative.

/// The call succeeded.
pub const SUCCESS: i64 = 0;
/// Unknown function ID (SMCCC), or a call this hyp does not serve.
pub const NOT_SUPPORTED: i64 = -1;
/// A malformed argument: unknown prot/flag bits, unsupported page size or
/// granule, zero or overflowing size, a range that wraps, bad IPA size.
pub const INVALID_PARAMETER: i64 = -2;
/// The caller may not do this: a physical address that is EL2 memory, the
/// SMMU's or the GIC's registers, straddles RAM and non-RAM; a StreamID
/// that is not behind that SMMU.
pub const DENIED: i64 = -3;
/// EL2 ran out of memory for page tables (or a page reference count
/// saturated). Nothing was changed.
pub const NO_MEMORY: i64 = -4;
/// The object is in use: freeing a domain with attached streams.
pub const BUSY: i64 = -5;
/// Already there: a mapping overlaps an existing one; the stream is
/// already attached.
pub const EXISTS: i64 = -6;
/// No such thing: unknown or freed domain id, SMMU index not driven,
/// stream not attached, nothing mapped (unmap, iova_to_phys), no fault.
pub const NOT_FOUND: i64 = -7;
/// An index or address beyond a limit: SMMU index, StreamID >= the SMMU's
/// limit, iova range beyond the domain's IPA size, pa beyond the output
/// size.
pub const OUT_OF_RANGE: i64 = -8;
/// iova or pa not aligned to pgsize.
pub const UNALIGNED: i64 = -9;
/// unmap would cut a block or page mapping and [`unmap::WHOLE_LEAF`] is
/// not set.
pub const PARTIAL_BLOCK: i64 = -10;
/// The SMMU failed a command or timed out. The only error that may leave
/// a change behind (see the docs per call).
pub const SMMU_ERROR: i64 = -11;
/// A fixed table is full: domains, VMIDs or attached streams.
pub const TOO_MANY: i64 = -12;

/// Every status code, for tests and documentation checks.
pub const ALL_ERRORS: [i64; 12] = [
    NOT_SUPPORTED,
    INVALID_PARAMETER,
    DENIED,
    NO_MEMORY,
    BUSY,
    EXISTS,
    NOT_FOUND,
    OUT_OF_RANGE,
    UNALIGNED,
    PARTIAL_BLOCK,
    SMMU_ERROR,
    TOO_MANY,
];

/// The name of a status code (as in the C header, without the prefix).
pub const fn error_name(code: i64) -> &'static str {
    match code {
        SUCCESS => "SUCCESS",
        NOT_SUPPORTED => "NOT_SUPPORTED",
        INVALID_PARAMETER => "INVALID_PARAMETER",
        DENIED => "DENIED",
        NO_MEMORY => "NO_MEMORY",
        BUSY => "BUSY",
        EXISTS => "EXISTS",
        NOT_FOUND => "NOT_FOUND",
        OUT_OF_RANGE => "OUT_OF_RANGE",
        UNALIGNED => "UNALIGNED",
        PARTIAL_BLOCK => "PARTIAL_BLOCK",
        SMMU_ERROR => "SMMU_ERROR",
        TOO_MANY => "TOO_MANY",
        _ => "UNKNOWN",
    }
}

// ------------------------------------------------------------------------
// Argument and result encodings.

/// `HYP_MAP` x6 and `HYP_IOVA_TO_PHYS` x2.
pub mod prot {
    /// The device may read.
    pub const READ: u64 = 1 << 0;
    /// The device may write.
    pub const WRITE: u64 = 1 << 1;
    /// Instruction fetches are forbidden.
    pub const NOEXEC: u64 = 1 << 2;
    /// Device-nGnRE memory. Required for, and only allowed on, physical
    /// addresses outside RAM.
    pub const MMIO: u64 = 1 << 3;
    /// Normal non-cacheable memory (RAM only; exclusive with [`MMIO`]).
    pub const NONCACHEABLE: u64 = 1 << 4;
    /// Every defined bit; any other bit is [`INVALID_PARAMETER`](super::INVALID_PARAMETER).
    pub const ALL: u64 = READ | WRITE | NOEXEC | MMIO | NONCACHEABLE;
}

/// `HYP_UNMAP` x5.
pub mod unmap {
    /// Unmap every leaf the range touches, even partly (never splitting a
    /// block); x2/x3 of the result give the range really removed. Without
    /// it, a range cutting a leaf is [`PARTIAL_BLOCK`](super::PARTIAL_BLOCK).
    pub const WHOLE_LEAF: u64 = 1 << 0;
    /// Every defined bit.
    pub const ALL: u64 = WHOLE_LEAF;
}

/// `HYP_MAP_LIST`'s list: entries of four little-endian u64, `HYP_MAP`'s
/// x2..x5: iova, pa, pgsize, pgcount.
pub mod map_list {
    /// Bytes per entry.
    pub const ENTRY_BYTES: u64 = 32;
    /// Most entries per call: a 4 KiB page of them.
    pub const MAX_ENTRIES: u64 = 128;
}

/// `HYP_SMMU_INFO` x1: SMMU feature bits.
pub mod smmu_feat {
    /// Range invalidation (IDR3.RIL).
    pub const RIL: u64 = 1 << 0;
    /// Coherent table walks and queues (IDR0.COHACC).
    pub const COHERENT: u64 = 1 << 1;
    /// 16-bit VMIDs.
    pub const VMID16: u64 = 1 << 2;
    /// Stage-1 translation exists (unused by this hyp).
    pub const STAGE1: u64 = 1 << 3;
    /// Stage-2 translation exists.
    pub const STAGE2: u64 = 1 << 4;
    /// EL2 StreamWorld (IDR0.HYP).
    pub const HYP: u64 = 1 << 5;
    /// Two-level stream table in use.
    pub const TWO_LEVEL_STRTAB: u64 = 1 << 6;
    /// Broadcast TLB maintenance.
    pub const BTM: u64 = 1 << 7;
    /// ATS.
    pub const ATS: u64 = 1 << 8;
    /// PRI.
    pub const PRI: u64 = 1 << 9;
    /// MSIs.
    pub const MSI: u64 = 1 << 10;
    /// 4 KiB granule.
    pub const GRAN4K: u64 = 1 << 16;
    /// 16 KiB granule.
    pub const GRAN16K: u64 = 1 << 17;
    /// 64 KiB granule.
    pub const GRAN64K: u64 = 1 << 18;
}

/// `HYP_SMMU_INFO` x3 packing.
pub mod smmu_info {
    /// Output address size in bits, bits 7:0.
    pub const fn oas_bits(x3: u64) -> u32 {
        (x3 & 0xff) as u32
    }
    /// Largest domain IPA size usable on this SMMU, bits 15:8.
    pub const fn max_ipa_bits(x3: u64) -> u32 {
        ((x3 >> 8) & 0xff) as u32
    }
    /// StreamIDs below `1 << sid_bits` exist, bits 23:16.
    pub const fn sid_bits(x3: u64) -> u32 {
        ((x3 >> 16) & 0xff) as u32
    }
    /// Packs the three fields.
    pub const fn pack(oas_bits: u32, max_ipa_bits: u32, sid_bits: u32) -> u64 {
        (oas_bits as u64 & 0xff)
            | ((max_ipa_bits as u64 & 0xff) << 8)
            | ((sid_bits as u64 & 0xff) << 16)
    }
}

/// `HYP_FAULT_POP` result: x1 = StreamID (bits 31:0) | event type (bits
/// 39:32, the SMMUv3 event ID) | flags (bits 63:40, below); x2 = input
/// address (valid if [`INPUT_VALID`](fault::INPUT_VALID)); x3 = IPA, or
/// the fetch address for fetch faults (valid if
/// [`ADDR2_VALID`](fault::ADDR2_VALID)).
pub mod fault {
    /// The access was a read.
    pub const RNW: u64 = 1 << 40;
    /// The access was an instruction fetch.
    pub const IND: u64 = 1 << 41;
    /// The access was privileged.
    pub const PNU: u64 = 1 << 42;
    /// The fault was raised by stage 2.
    pub const S2: u64 = 1 << 43;
    /// x2 holds the input address.
    pub const INPUT_VALID: u64 = 1 << 44;
    /// x3 holds the IPA (or fetch address).
    pub const ADDR2_VALID: u64 = 1 << 45;
    /// More records are waiting after this one.
    pub const MORE: u64 = 1 << 46;
    /// Class of the faulting access, bits 49:48: 0 = CD fetch, 1 =
    /// translation table walk, 2 = the input transaction, 3 = reserved.
    pub const CLASS_SHIFT: u32 = 48;

    /// StreamID of a record.
    pub const fn sid(x1: u64) -> u32 {
        x1 as u32
    }
    /// SMMUv3 event type of a record.
    pub const fn kind(x1: u64) -> u8 {
        (x1 >> 32) as u8
    }
    /// Class of a record.
    pub const fn class(x1: u64) -> u8 {
        ((x1 >> CLASS_SHIFT) & 3) as u8
    }
}

/// `HYP_STATS` selectors (x1). x2 is the SMMU index for per-SMMU ones.
pub mod stats {
    /// x1 = successful map calls, x2 = successful unmap calls, x3 = IOMMU
    /// calls refused with an error.
    pub const CALLS: u64 = 0;
    /// x1 = live domains, x2 = attached streams, x3 = bytes mapped now.
    pub const OBJECTS: u64 = 1;
    /// x1 = page-table bytes in use, x2 = DMA page references held, x3 =
    /// RAM pages owned by EL2.
    pub const MEMORY: u64 = 2;
    /// Per SMMU: x1 = TLB invalidation commands, x2 = CMD_SYNCs completed,
    /// x3 = errors of any kind.
    pub const SMMU_COMMANDS: u64 = 3;
    /// Per SMMU: x1 = fault records logged, x2 = records dropped by the
    /// log, x3 = event queue overflows.
    pub const SMMU_EVENTS: u64 = 4;
}

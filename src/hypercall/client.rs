//! The client side of the ABI, without the `hvc`: each function builds the
//! x0..x7 array for one call, and the `decode_*` functions turn x0..x3 back
//! into values or a status code. An EL1 kernel does
//! `decode_map(hvc(client::map(..)))` with its own `hvc` wrapper (the test
//! kernel's lives in `tests/el1-kernel/src/hyp_client.rs`).
//!
//! Pure and allocation-free, so it is host-tested and usable from any
//! `no_std` client.

use super::abi::{self, fault};

/// Registers x0..x7 for a call.
pub type Args = [u64; 8];
/// Registers x0..x3 after a call.
pub type Regs = [u64; 4];

const fn args(fid: u32, a: [u64; 6]) -> Args {
    [fid as u64, a[0], a[1], a[2], a[3], a[4], a[5], 0]
}

pub const fn abi_version() -> Args {
    args(abi::HYP_ABI_VERSION, [0; 6])
}

pub const fn echo(a: u64, b: u64, c: u64) -> Args {
    args(abi::HYP_ECHO, [a, b, c, 0, 0, 0])
}

pub const fn features(fid: u32) -> Args {
    args(abi::HYP_FEATURES, [fid as u64, 0, 0, 0, 0, 0])
}

pub const fn iommu_info() -> Args {
    args(abi::HYP_IOMMU_INFO, [0; 6])
}

pub const fn smmu_info(smmu: u32) -> Args {
    args(abi::HYP_SMMU_INFO, [smmu as u64, 0, 0, 0, 0, 0])
}

/// `granule` in bytes; 0 means 4 KiB.
pub const fn domain_alloc(ipa_bits: u32, granule: u64) -> Args {
    args(
        abi::HYP_DOMAIN_ALLOC,
        [ipa_bits as u64, granule, 0, 0, 0, 0],
    )
}

pub const fn domain_free(domain: u64) -> Args {
    args(abi::HYP_DOMAIN_FREE, [domain, 0, 0, 0, 0, 0])
}

pub const fn attach(smmu: u32, sid: u32, domain: u64) -> Args {
    args(abi::HYP_ATTACH, [smmu as u64, sid as u64, domain, 0, 0, 0])
}

pub const fn detach(smmu: u32, sid: u32) -> Args {
    args(abi::HYP_DETACH, [smmu as u64, sid as u64, 0, 0, 0, 0])
}

/// `prot` from [`abi::prot`].
pub const fn map(domain: u64, iova: u64, pa: u64, pgsize: u64, pgcount: u64, prot: u64) -> Args {
    args(abi::HYP_MAP, [domain, iova, pa, pgsize, pgcount, prot])
}

/// `count` entries of [`abi::map_list`] at `list` (see [`map_list_entry`]);
/// `prot` for all of them. The result decodes as [`decode_map`]'s.
pub const fn map_list(domain: u64, list: u64, count: u64, prot: u64) -> Args {
    args(abi::HYP_MAP_LIST, [domain, list, count, prot, 0, 0])
}

/// One `HYP_MAP_LIST` entry as it lies in memory.
pub fn map_list_entry(
    iova: u64,
    pa: u64,
    pgsize: u64,
    pgcount: u64,
) -> [u8; abi::map_list::ENTRY_BYTES as usize] {
    let mut e = [0u8; abi::map_list::ENTRY_BYTES as usize];
    for (i, w) in [iova, pa, pgsize, pgcount].into_iter().enumerate() {
        e[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    e
}

/// `flags` from [`abi::unmap`].
pub const fn unmap(domain: u64, iova: u64, pgsize: u64, pgcount: u64, flags: u64) -> Args {
    args(abi::HYP_UNMAP, [domain, iova, pgsize, pgcount, flags, 0])
}

pub const fn iova_to_phys(domain: u64, iova: u64) -> Args {
    args(abi::HYP_IOVA_TO_PHYS, [domain, iova, 0, 0, 0, 0])
}

pub const fn fault_pop(smmu: u32) -> Args {
    args(abi::HYP_FAULT_POP, [smmu as u64, 0, 0, 0, 0, 0])
}

/// `selector` from [`abi::stats`].
pub const fn stats(selector: u64, smmu: u32) -> Args {
    args(abi::HYP_STATS, [selector, smmu as u64, 0, 0, 0, 0])
}

/// x1..x3 if x0 is SUCCESS, else the status code.
pub const fn status(r: Regs) -> Result<[u64; 3], i64> {
    let code = r[0] as i64;
    if code == abi::SUCCESS {
        Ok([r[1], r[2], r[3]])
    } else {
        Err(code)
    }
}

/// `HYP_IOMMU_INFO` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IommuInfo {
    pub smmus: u64,
    pub max_domains: u64,
    pub max_attachments: u64,
}

pub const fn decode_iommu_info(r: Regs) -> Result<IommuInfo, i64> {
    match status(r) {
        Ok([smmus, max_domains, max_attachments]) => Ok(IommuInfo {
            smmus,
            max_domains,
            max_attachments,
        }),
        Err(e) => Err(e),
    }
}

/// `HYP_SMMU_INFO` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuInfo {
    /// [`abi::smmu_feat`] bits.
    pub features: u64,
    /// Bit n set: pages or blocks of 2^n bytes.
    pub pgsizes: u64,
    pub oas_bits: u32,
    pub max_ipa_bits: u32,
    pub sid_bits: u32,
}

pub const fn decode_smmu_info(r: Regs) -> Result<SmmuInfo, i64> {
    match status(r) {
        Ok([features, pgsizes, x3]) => Ok(SmmuInfo {
            features,
            pgsizes,
            oas_bits: abi::smmu_info::oas_bits(x3),
            max_ipa_bits: abi::smmu_info::max_ipa_bits(x3),
            sid_bits: abi::smmu_info::sid_bits(x3),
        }),
        Err(e) => Err(e),
    }
}

/// `HYP_DOMAIN_ALLOC` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: u64,
    /// Bit n set: the domain maps pages or blocks of 2^n bytes.
    pub pgsizes: u64,
    pub ipa_bits: u32,
}

pub const fn decode_domain_alloc(r: Regs) -> Result<Domain, i64> {
    match status(r) {
        Ok([id, pgsizes, ipa_bits]) => Ok(Domain {
            id,
            pgsizes,
            ipa_bits: ipa_bits as u32,
        }),
        Err(e) => Err(e),
    }
}

/// Result of calls that return nothing but a status.
pub const fn decode_unit(r: Regs) -> Result<(), i64> {
    match status(r) {
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `HYP_MAP` result: bytes mapped.
pub const fn decode_map(r: Regs) -> Result<u64, i64> {
    match status(r) {
        Ok([bytes, _, _]) => Ok(bytes),
        Err(e) => Err(e),
    }
}

/// `HYP_UNMAP` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// Bytes that were mapped and now are not.
    pub bytes: u64,
    /// The range covered (wider than asked only with `WHOLE_LEAF`).
    pub iova: u64,
    pub size: u64,
}

pub const fn decode_unmap(r: Regs) -> Result<Unmapped, i64> {
    match status(r) {
        Ok([bytes, iova, size]) => Ok(Unmapped { bytes, iova, size }),
        Err(e) => Err(e),
    }
}

/// `HYP_IOVA_TO_PHYS` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    /// [`abi::prot`] bits of the leaf.
    pub prot: u64,
    /// Size of the leaf (page or block) holding the address.
    pub leaf_size: u64,
}

pub const fn decode_iova_to_phys(r: Regs) -> Result<Translation, i64> {
    match status(r) {
        Ok([pa, prot, leaf_size]) => Ok(Translation {
            pa,
            prot,
            leaf_size,
        }),
        Err(e) => Err(e),
    }
}

/// A fault record (`HYP_FAULT_POP`), in the layout of [`abi::fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    pub sid: u32,
    /// SMMUv3 event type (0x10 = F_TRANSLATION, 0x13 = F_PERMISSION, ...).
    pub kind: u8,
    /// [`abi::fault`] flag bits (bits 63:40 of x1).
    pub flags: u64,
    pub input_addr: Option<u64>,
    /// The IPA, or the fetch address of a fetch fault.
    pub addr2: Option<u64>,
}

const FLAG_MASK: u64 = !((1 << 40) - 1);

impl FaultRecord {
    /// x1..x3.
    pub const fn pack(&self) -> [u64; 3] {
        let mut flags = self.flags & FLAG_MASK & !(fault::INPUT_VALID | fault::ADDR2_VALID);
        let input = match self.input_addr {
            Some(a) => {
                flags |= fault::INPUT_VALID;
                a
            }
            None => 0,
        };
        let addr2 = match self.addr2 {
            Some(a) => {
                flags |= fault::ADDR2_VALID;
                a
            }
            None => 0,
        };
        [
            self.sid as u64 | (self.kind as u64) << 32 | flags,
            input,
            addr2,
        ]
    }

    /// From x1..x3.
    pub const fn unpack(x: [u64; 3]) -> Self {
        Self {
            sid: fault::sid(x[0]),
            kind: fault::kind(x[0]),
            flags: x[0] & FLAG_MASK,
            input_addr: if x[0] & fault::INPUT_VALID != 0 {
                Some(x[1])
            } else {
                None
            },
            addr2: if x[0] & fault::ADDR2_VALID != 0 {
                Some(x[2])
            } else {
                None
            },
        }
    }

    /// More records are waiting.
    pub const fn more(&self) -> bool {
        self.flags & fault::MORE != 0
    }
}

pub const fn decode_fault_pop(r: Regs) -> Result<FaultRecord, i64> {
    match status(r) {
        Ok(x) => Ok(FaultRecord::unpack(x)),
        Err(e) => Err(e),
    }
}

/// `HYP_STATS` result: three counters.
pub const fn decode_stats(r: Regs) -> Result<[u64; 3], i64> {
    status(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_argument_arrays() {
        assert_eq!(
            map(0x1_0000, 0x1000, 0x4000_0000, 0x1000, 4, abi::prot::READ),
            [
                u64::from(abi::HYP_MAP),
                0x1_0000,
                0x1000,
                0x4000_0000,
                0x1000,
                4,
                1,
                0
            ]
        );
        assert_eq!(
            unmap(7, 0x2000, 0x1000, 1, abi::unmap::WHOLE_LEAF),
            [u64::from(abi::HYP_UNMAP), 7, 0x2000, 0x1000, 1, 1, 0, 0]
        );
        assert_eq!(
            attach(1, 0x10, 9)[..4],
            [u64::from(abi::HYP_ATTACH), 1, 0x10, 9]
        );
        assert_eq!(features(abi::HYP_MAP)[1], u64::from(abi::HYP_MAP));
        assert_eq!(stats(abi::stats::SMMU_EVENTS, 2)[1..3], [4, 2]);
    }

    #[test]
    fn decodes_status_and_values() {
        assert_eq!(decode_map([0, 0x3000, 0, 0]), Ok(0x3000));
        assert_eq!(decode_map([abi::DENIED as u64, 0, 0, 0]), Err(abi::DENIED));
        assert_eq!(
            decode_unmap([0, 0x1000, 0x20_0000, 0x20_0000]),
            Ok(Unmapped {
                bytes: 0x1000,
                iova: 0x20_0000,
                size: 0x20_0000
            })
        );
        let info = decode_smmu_info([0, 1, 0x4020_1000, abi::smmu_info::pack(44, 44, 16)]).unwrap();
        assert_eq!(
            (info.oas_bits, info.max_ipa_bits, info.sid_bits),
            (44, 44, 16)
        );
    }

    #[test]
    fn fault_records_round_trip() {
        let r = FaultRecord {
            sid: 0xdead_beef,
            kind: 0x10,
            flags: fault::RNW | fault::S2 | fault::MORE | (2 << fault::CLASS_SHIFT),
            input_addr: Some(0x1234_5000),
            addr2: None,
        };
        let x = r.pack();
        assert_eq!(x[0] & 0xffff_ffff, 0xdead_beef);
        assert_eq!(fault::kind(x[0]), 0x10);
        assert_eq!(fault::class(x[0]), 2);
        let back = FaultRecord::unpack(x);
        assert_eq!(back.input_addr, r.input_addr);
        assert_eq!(back.addr2, None);
        assert!(back.more());
        assert_eq!(back.flags & !(fault::INPUT_VALID), r.flags);
    }
}

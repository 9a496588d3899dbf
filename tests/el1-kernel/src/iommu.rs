//! The IOMMU hypercalls as plain functions: `smmu_hyp::hypercall::client`
//! builds the registers and decodes the results, `hvc8` makes the call.

use crate::arena;
use crate::hyp_client::hvc8;
use smmu_hyp::hypercall::abi;
use smmu_hyp::hypercall::client::{
    self, Args, Domain, FaultRecord, IommuInfo, Regs, SmmuInfo, Translation, Unmapped,
};

/// Read and write, the usual DMA protection.
pub const RW: u64 = abi::prot::READ | abi::prot::WRITE;

/// Makes one call: x0..x7 in, x0..x3 out.
pub fn call(args: Args) -> Regs {
    hvc8(args)
}

pub fn iommu_info() -> Result<IommuInfo, i64> {
    client::decode_iommu_info(call(client::iommu_info()))
}

pub fn smmu_info(smmu: u32) -> Result<SmmuInfo, i64> {
    client::decode_smmu_info(call(client::smmu_info(smmu)))
}

pub fn alloc(ipa_bits: u32, granule: u64) -> Result<Domain, i64> {
    client::decode_domain_alloc(call(client::domain_alloc(ipa_bits, granule)))
}

pub fn free(domain: u64) -> Result<(), i64> {
    client::decode_unit(call(client::domain_free(domain)))
}

pub fn attach(smmu: u32, sid: u32, domain: u64) -> Result<(), i64> {
    client::decode_unit(call(client::attach(smmu, sid, domain)))
}

pub fn detach(smmu: u32, sid: u32) -> Result<(), i64> {
    client::decode_unit(call(client::detach(smmu, sid)))
}

pub fn map(
    domain: u64,
    iova: u64,
    pa: u64,
    pgsize: u64,
    pgcount: u64,
    prot: u64,
) -> Result<u64, i64> {
    client::decode_map(call(client::map(domain, iova, pa, pgsize, pgcount, prot)))
}

/// Writes `entries` (iova, pa, pgsize, pgcount each) as a `HYP_MAP_LIST`
/// list at arena offset `at`, ready for EL2 to read.
pub fn write_list(at: u64, entries: &[[u64; 4]]) {
    let bytes = abi::map_list::ENTRY_BYTES;
    for (k, &[iova, pa, pgsize, pgcount]) in entries.iter().enumerate() {
        arena::put(
            at + k as u64 * bytes,
            &client::map_list_entry(iova, pa, pgsize, pgcount),
        );
    }
    arena::clean_to_poc(at, entries.len() as u64 * bytes);
}

/// `HYP_MAP_LIST` of `entries`, with the list written at arena offset `at`.
pub fn map_list(domain: u64, at: u64, entries: &[[u64; 4]], prot: u64) -> Result<u64, i64> {
    write_list(at, entries);
    let n = entries.len() as u64;
    client::decode_map(call(client::map_list(domain, arena::pa(at), n, prot)))
}

pub fn unmap(
    domain: u64,
    iova: u64,
    pgsize: u64,
    pgcount: u64,
    flags: u64,
) -> Result<Unmapped, i64> {
    client::decode_unmap(call(client::unmap(domain, iova, pgsize, pgcount, flags)))
}

pub fn iova_to_phys(domain: u64, iova: u64) -> Result<Translation, i64> {
    client::decode_iova_to_phys(call(client::iova_to_phys(domain, iova)))
}

pub fn fault_pop(smmu: u32) -> Result<FaultRecord, i64> {
    client::decode_fault_pop(call(client::fault_pop(smmu)))
}

pub fn stats(selector: u64, smmu: u32) -> Result<[u64; 3], i64> {
    client::decode_stats(call(client::stats(selector, smmu)))
}

/// Pops every logged fault of `smmu`; returns how many there were.
pub fn drain_faults(smmu: u32) -> u32 {
    let mut n = 0;
    while fault_pop(smmu).is_ok() && n < 10_000 {
        n += 1;
    }
    n
}

/// The name of a result's status, for check lines.
pub fn code_name<T>(r: &Result<T, i64>) -> &'static str {
    match r {
        Ok(_) => "SUCCESS",
        Err(e) => abi::error_name(*e),
    }
}

//! The IOMMU calls as a trait on raw registers, and the table of which
//! registers each call takes.
//!
//! [`IommuCalls`] is what `dispatch_with` needs: one method per call, raw
//! register values in, x1..x3 or a status code out. It is object safe, so
//! the dispatcher needs no type parameters; `super::calls` implements it
//! for the IOMMU core, decoding the registers into the core's types.

use super::abi;
use crate::vdev::guest_memory::GuestMemory;

/// x1..x3 of a successful call, or the (negative) status code for x0.
pub type CallResult = Result<[u64; 3], i64>;

/// The IOMMU hypercalls. Implementations must never panic, whatever the
/// arguments, and must be callable from several CPUs at once.
pub trait IommuCalls {
    fn iommu_info(&self) -> CallResult;
    fn smmu_info(&self, smmu: u64) -> CallResult;
    fn domain_alloc(&self, ipa_bits: u64, granule: u64) -> CallResult;
    fn domain_free(&self, domain: u64) -> CallResult;
    fn attach(&self, smmu: u64, sid: u64, domain: u64) -> CallResult;
    fn detach(&self, smmu: u64, sid: u64) -> CallResult;
    fn map(
        &self,
        domain: u64,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: u64,
    ) -> CallResult;
    fn unmap(&self, domain: u64, iova: u64, pgsize: u64, pgcount: u64, flags: u64) -> CallResult;
    /// `HYP_MAP_LIST`: the list is read from `el1`, which refuses what is
    /// not EL1's RAM.
    fn map_list(
        &self,
        domain: u64,
        list: u64,
        count: u64,
        prot: u64,
        el1: &dyn GuestMemory,
    ) -> CallResult;
    fn iova_to_phys(&self, domain: u64, iova: u64) -> CallResult;
    fn fault_pop(&self, smmu: u64) -> CallResult;
    fn stats(&self, selector: u64, index: u64) -> CallResult;
}

/// Calls the method for `fid` with x1..x6 of `a` (and EL1's memory, where
/// a call takes its arguments from there); `None` if `fid` is not an IOMMU
/// call.
pub fn call(
    svc: &dyn IommuCalls,
    fid: u32,
    a: &[u64; 8],
    el1: &dyn GuestMemory,
) -> Option<CallResult> {
    Some(match fid {
        abi::HYP_IOMMU_INFO => svc.iommu_info(),
        abi::HYP_SMMU_INFO => svc.smmu_info(a[1]),
        abi::HYP_DOMAIN_ALLOC => svc.domain_alloc(a[1], a[2]),
        abi::HYP_DOMAIN_FREE => svc.domain_free(a[1]),
        abi::HYP_ATTACH => svc.attach(a[1], a[2], a[3]),
        abi::HYP_DETACH => svc.detach(a[1], a[2]),
        abi::HYP_MAP => svc.map(a[1], a[2], a[3], a[4], a[5], a[6]),
        abi::HYP_UNMAP => svc.unmap(a[1], a[2], a[3], a[4], a[5]),
        abi::HYP_MAP_LIST => svc.map_list(a[1], a[2], a[3], a[4], el1),
        abi::HYP_IOVA_TO_PHYS => svc.iova_to_phys(a[1], a[2]),
        abi::HYP_FAULT_POP => svc.fault_pop(a[1]),
        abi::HYP_STATS => svc.stats(a[1], a[2]),
        _ => return None,
    })
}

/// x0..x3 for a result.
pub fn encode(r: CallResult) -> [u64; 4] {
    match r {
        Ok([a, b, c]) => [abi::SUCCESS as u64, a, b, c],
        Err(code) => [code as u64, 0, 0, 0],
    }
}

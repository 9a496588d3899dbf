//! The IOMMU service behind the hypercall dispatcher: the typed results of
//! [`IommuService`] as registers, refused calls counted.

use super::backend::{SmmuBackend, TableAllocator};
use super::error::IommuError;
use super::service::IommuService;
use crate::hypercall::{CallResult, IommuCalls};

impl<S: SmmuBackend, A: TableAllocator> IommuService<'_, S, A> {
    fn reply<T>(&self, r: Result<T, IommuError>, regs: impl FnOnce(T) -> [u64; 3]) -> CallResult {
        match r {
            Ok(v) => Ok(regs(v)),
            Err(e) => {
                if let IommuError::Smmu(cause) = e {
                    log::warn!("iommu: SMMU error: {cause}");
                }
                self.count_error();
                Err(e.code())
            }
        }
    }
}

impl<S: SmmuBackend, A: TableAllocator> IommuCalls for IommuService<'_, S, A> {
    fn iommu_info(&self) -> CallResult {
        let i = self.info();
        Ok([i.smmus, i.max_domains, i.max_attachments])
    }

    fn smmu_info(&self, smmu: u64) -> CallResult {
        self.reply(IommuService::smmu_info(self, smmu), |i| {
            [
                i.features,
                i.pgsizes,
                crate::hypercall::abi::smmu_info::pack(i.oas_bits, i.max_ipa_bits, i.sid_bits),
            ]
        })
    }

    fn domain_alloc(&self, ipa_bits: u64, granule: u64) -> CallResult {
        self.reply(IommuService::domain_alloc(self, ipa_bits, granule), |d| {
            [d.id, d.pgsizes, u64::from(d.ipa_bits)]
        })
    }

    fn domain_free(&self, domain: u64) -> CallResult {
        self.reply(IommuService::domain_free(self, domain), |()| [0; 3])
    }

    fn attach(&self, smmu: u64, sid: u64, domain: u64) -> CallResult {
        self.reply(IommuService::attach(self, smmu, sid, domain), |()| [0; 3])
    }

    fn detach(&self, smmu: u64, sid: u64) -> CallResult {
        self.reply(IommuService::detach(self, smmu, sid), |()| [0; 3])
    }

    fn map(
        &self,
        domain: u64,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: u64,
    ) -> CallResult {
        self.reply(
            IommuService::map(self, domain, iova, pa, pgsize, pgcount, prot),
            |bytes| [bytes, 0, 0],
        )
    }

    fn unmap(&self, domain: u64, iova: u64, pgsize: u64, pgcount: u64, flags: u64) -> CallResult {
        self.reply(
            IommuService::unmap(self, domain, iova, pgsize, pgcount, flags),
            |u| [u.bytes, u.iova, u.size],
        )
    }

    fn iova_to_phys(&self, domain: u64, iova: u64) -> CallResult {
        self.reply(IommuService::iova_to_phys(self, domain, iova), |t| {
            [t.pa, t.prot, t.leaf_size]
        })
    }

    fn fault_pop(&self, smmu: u64) -> CallResult {
        self.reply(IommuService::fault_pop(self, smmu), |r| r.pack())
    }

    fn stats(&self, selector: u64, index: u64) -> CallResult {
        self.reply(IommuService::stats(self, selector, index), |s| s)
    }
}

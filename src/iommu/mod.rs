//! IOMMU domains: the stage-2 page-table engine joined to the SMMU driver.
pub mod tlb;

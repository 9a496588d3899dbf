/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * smmu_hyp.h - the hypercall ABI of smmu-hyp, the EL2 component that owns
 * the Arm SMMUv3, for EL1 clients (e.g. a Linux IOMMU driver).
 *
 * SMCCC 1.1 fast calls over `hvc #0`, SMC64 convention, vendor-specific
 * hypervisor service range (owning entity 6): function IDs 0xC600_xxxx.
 * Arguments in x1..x6, results in x0..x3. x0 is SMMU_HYP_SUCCESS (0) or a
 * negative SMMU_HYP_E* code. Registers a call does not use are ignored
 * and should be zero.
 *
 * The full description of every call, argument and error is
 * docs/hypercall-abi.md. This header mirrors src/hypercall/abi.rs; a host
 * test checks that every value here matches it. Values never change, they
 * are only added.
 */
#ifndef SMMU_HYP_H
#define SMMU_HYP_H

#include <stdint.h>

/* ABI version: major in bits 31:16, minor in bits 15:0. */
#define SMMU_HYP_ABI_VERSION            0x00000001ULL
#define SMMU_HYP_ABI_MAJOR(v)           (((v) >> 16) & 0xffff)
#define SMMU_HYP_ABI_MINOR(v)           ((v) & 0xffff)

/*
 * SMCCC's Vendor Specific Hypervisor Service Call UID: x0..x3 = this hyp's
 * UID (7599f278-dbfc-4632-817c-db6e35c6ec2b, four bytes per register,
 * least significant first). Check it before any 0xC600xxxx call: KVM's
 * nVHE host calls use the same function IDs.
 */
#define SMMU_HYP_UID_FN                 0x8600ff01U
#define SMMU_HYP_UID_0                  0x78f29975U
#define SMMU_HYP_UID_1                  0x3246fcdbU
#define SMMU_HYP_UID_2                  0x6edb7c81U
#define SMMU_HYP_UID_3                  0x2becc635U

/* ---------------------------------------------------------------------
 * Function IDs (x0).
 */
/* -> x0 = ABI version */
#define SMMU_HYP_ABI_VERSION_FN         0xc6000000U
/* (a, b, c) -> x0 = 0, x1..x3 = a, b, c */
#define SMMU_HYP_ECHO                   0xc6000001U
/* (function ID) -> x0 = SUCCESS if implemented, else NOT_SUPPORTED */
#define SMMU_HYP_FEATURES               0xc6000002U
/* () -> x1 = SMMU indices, x2 = max domains, x3 = max attached streams */
#define SMMU_HYP_IOMMU_INFO             0xc6000010U
/* (smmu) -> x1 = SMMU_HYP_FEAT_*, x2 = page-size bitmap, x3 = packed info */
#define SMMU_HYP_SMMU_INFO              0xc6000011U
/* (ipa_bits, granule bytes or 0) -> x1 = domain id, x2 = page sizes, x3 = ipa_bits */
#define SMMU_HYP_DOMAIN_ALLOC           0xc6000020U
/* (domain) */
#define SMMU_HYP_DOMAIN_FREE            0xc6000021U
/* (smmu, sid, domain) */
#define SMMU_HYP_ATTACH                 0xc6000022U
/* (smmu, sid) */
#define SMMU_HYP_DETACH                 0xc6000023U
/* (domain, iova, pa, pgsize, pgcount, prot) -> x1 = bytes mapped */
#define SMMU_HYP_MAP                    0xc6000024U
/* (domain, iova, pgsize, pgcount, flags) -> x1 = bytes unmapped, x2 = iova, x3 = size covered */
#define SMMU_HYP_UNMAP                  0xc6000025U
/* (domain, list pa, entries, prot) -> x1 = bytes mapped; all or nothing */
#define SMMU_HYP_MAP_LIST               0xc6000027U
/* (domain, iova) -> x1 = pa, x2 = prot, x3 = leaf size */
#define SMMU_HYP_IOVA_TO_PHYS           0xc6000026U
/* (smmu) -> x1..x3 = fault record, or NOT_FOUND when there is none */
#define SMMU_HYP_FAULT_POP              0xc6000030U
/* (selector, smmu) -> x1..x3 = counters */
#define SMMU_HYP_STATS                  0xc6000031U

/* ---------------------------------------------------------------------
 * Status codes (x0).
 */
#define SMMU_HYP_SUCCESS                0
#define SMMU_HYP_ENOT_SUPPORTED         (-1)  /* unknown function ID */
#define SMMU_HYP_EINVALID_PARAMETER     (-2)  /* malformed argument */
#define SMMU_HYP_EDENIED                (-3)  /* not the caller's memory or stream */
#define SMMU_HYP_ENO_MEMORY             (-4)  /* EL2 out of table memory */
#define SMMU_HYP_EBUSY                  (-5)  /* domain has attached streams */
#define SMMU_HYP_EEXISTS                (-6)  /* overlapping mapping, attached stream */
#define SMMU_HYP_ENOT_FOUND             (-7)  /* no such domain/stream/mapping/fault */
#define SMMU_HYP_EOUT_OF_RANGE          (-8)  /* index or address beyond a limit */
#define SMMU_HYP_EUNALIGNED             (-9)  /* iova or pa not aligned to pgsize */
#define SMMU_HYP_EPARTIAL_BLOCK         (-10) /* unmap cuts a leaf, no WHOLE_LEAF */
#define SMMU_HYP_ESMMU_ERROR            (-11) /* the SMMU failed or timed out */
#define SMMU_HYP_ETOO_MANY              (-12) /* domain, VMID or stream table full */

/* ---------------------------------------------------------------------
 * SMMU_HYP_MAP prot (x6) and SMMU_HYP_IOVA_TO_PHYS x2.
 */
#define SMMU_HYP_PROT_READ              (1ULL << 0)
#define SMMU_HYP_PROT_WRITE             (1ULL << 1)
#define SMMU_HYP_PROT_NOEXEC            (1ULL << 2)
/* Device-nGnRE: required for, and only allowed on, addresses outside RAM. */
#define SMMU_HYP_PROT_MMIO              (1ULL << 3)
/* Normal non-cacheable (RAM only, not with MMIO). */
#define SMMU_HYP_PROT_NONCACHEABLE      (1ULL << 4)

/* SMMU_HYP_UNMAP flags (x5). */
#define SMMU_HYP_UNMAP_WHOLE_LEAF       (1ULL << 0)

/* ---------------------------------------------------------------------
 * SMMU_HYP_MAP_LIST: x2 = physical address of `entries` of these in the
 * caller's RAM (8-byte aligned, little-endian), HYP_MAP's arguments each.
 */
#define SMMU_HYP_MAP_LIST_MAX           128
struct smmu_hyp_map_entry {
	uint64_t iova;
	uint64_t pa;
	uint64_t pgsize;
	uint64_t pgcount;
};

/* ---------------------------------------------------------------------
 * SMMU_HYP_SMMU_INFO results.
 */
#define SMMU_HYP_FEAT_RIL               (1ULL << 0)
#define SMMU_HYP_FEAT_COHERENT          (1ULL << 1)
#define SMMU_HYP_FEAT_VMID16            (1ULL << 2)
#define SMMU_HYP_FEAT_STAGE1            (1ULL << 3)
#define SMMU_HYP_FEAT_STAGE2            (1ULL << 4)
#define SMMU_HYP_FEAT_HYP               (1ULL << 5)
#define SMMU_HYP_FEAT_TWO_LEVEL_STRTAB  (1ULL << 6)
#define SMMU_HYP_FEAT_BTM               (1ULL << 7)
#define SMMU_HYP_FEAT_ATS               (1ULL << 8)
#define SMMU_HYP_FEAT_PRI               (1ULL << 9)
#define SMMU_HYP_FEAT_MSI               (1ULL << 10)
#define SMMU_HYP_FEAT_GRAN4K            (1ULL << 16)
#define SMMU_HYP_FEAT_GRAN16K           (1ULL << 17)
#define SMMU_HYP_FEAT_GRAN64K           (1ULL << 18)

/* x3: OAS bits 7:0, largest domain IPA bits 15:8, StreamID bits 23:16. */
static inline unsigned int smmu_hyp_info_oas_bits(uint64_t x3) { return x3 & 0xff; }
static inline unsigned int smmu_hyp_info_max_ipa_bits(uint64_t x3) { return (x3 >> 8) & 0xff; }
static inline unsigned int smmu_hyp_info_sid_bits(uint64_t x3) { return (x3 >> 16) & 0xff; }

/* ---------------------------------------------------------------------
 * SMMU_HYP_FAULT_POP record.
 *   x1: StreamID (31:0) | SMMUv3 event type (39:32) | flags (63:40)
 *   x2: input address  (if SMMU_HYP_FAULT_INPUT_VALID)
 *   x3: IPA, or fetch address of a fetch fault (if SMMU_HYP_FAULT_ADDR2_VALID)
 */
#define SMMU_HYP_FAULT_RNW              (1ULL << 40)
#define SMMU_HYP_FAULT_IND              (1ULL << 41)
#define SMMU_HYP_FAULT_PNU              (1ULL << 42)
#define SMMU_HYP_FAULT_S2               (1ULL << 43)
#define SMMU_HYP_FAULT_INPUT_VALID      (1ULL << 44)
#define SMMU_HYP_FAULT_ADDR2_VALID      (1ULL << 45)
#define SMMU_HYP_FAULT_MORE             (1ULL << 46)
/* Class, bits 49:48: 0 CD fetch, 1 table walk, 2 input transaction. */
#define SMMU_HYP_FAULT_CLASS_SHIFT      48

static inline uint32_t smmu_hyp_fault_sid(uint64_t x1) { return (uint32_t)x1; }
static inline uint8_t smmu_hyp_fault_kind(uint64_t x1) { return (uint8_t)(x1 >> 32); }
static inline unsigned int smmu_hyp_fault_class(uint64_t x1)
{
	return (x1 >> SMMU_HYP_FAULT_CLASS_SHIFT) & 3;
}

/* ---------------------------------------------------------------------
 * SMMU_HYP_STATS selectors (x1); x2 = SMMU index for per-SMMU ones.
 */
#define SMMU_HYP_STATS_CALLS            0 /* maps ok, unmaps ok, refused calls */
#define SMMU_HYP_STATS_OBJECTS          1 /* domains, attached streams, bytes mapped */
#define SMMU_HYP_STATS_MEMORY           2 /* table bytes, DMA page refs, EL2 pages */
#define SMMU_HYP_STATS_SMMU_COMMANDS    3 /* TLBIs, CMD_SYNCs, errors */
#define SMMU_HYP_STATS_SMMU_EVENTS      4 /* faults logged, dropped, evtq overflows */

/* ---------------------------------------------------------------------
 * Helpers.
 */

/* Whether x0 of a call is an error. */
static inline int smmu_hyp_failed(uint64_t x0) { return (int64_t)x0 < 0; }

/* Linux-style errno for a status (for drivers that return int). */
static inline int smmu_hyp_to_errno(int64_t status)
{
	switch (status) {
	case SMMU_HYP_SUCCESS:            return 0;
	case SMMU_HYP_ENOT_SUPPORTED:     return -95;  /* EOPNOTSUPP */
	case SMMU_HYP_EINVALID_PARAMETER: return -22;  /* EINVAL */
	case SMMU_HYP_EDENIED:            return -1;   /* EPERM */
	case SMMU_HYP_ENO_MEMORY:         return -12;  /* ENOMEM */
	case SMMU_HYP_EBUSY:              return -16;  /* EBUSY */
	case SMMU_HYP_EEXISTS:            return -17;  /* EEXIST */
	case SMMU_HYP_ENOT_FOUND:         return -2;   /* ENOENT */
	case SMMU_HYP_EOUT_OF_RANGE:      return -34;  /* ERANGE */
	case SMMU_HYP_EUNALIGNED:         return -22;  /* EINVAL */
	case SMMU_HYP_EPARTIAL_BLOCK:     return -22;  /* EINVAL */
	case SMMU_HYP_ESMMU_ERROR:        return -5;   /* EIO */
	case SMMU_HYP_ETOO_MANY:          return -28;  /* ENOSPC */
	default:                          return -5;   /* EIO */
	}
}

#endif /* SMMU_HYP_H */

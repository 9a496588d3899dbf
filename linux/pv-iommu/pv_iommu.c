// SPDX-License-Identifier: GPL-2.0
/*
 * pv_iommu - a Linux IOMMU driver for the SMMUs smmu-hyp owns at EL2,
 * speaking its hypercall ABI (docs/hypercall-abi.md, include/smmu_hyp.h)
 * over `hvc`: the paravirtual front door (docs/pv-iommu.md).
 *
 * The hyp describes each SMMU it drives with a device-tree node of its own
 * (compatible "smmu-hyp,pv-iommu", `smmu-hyp,smmu` = the ABI's SMMU index,
 * `#iommu-cells = <1>`); PCIe `iommu-map` and `iommus` name it with
 * StreamIDs, so `of_xlate` takes the one cell as the StreamID.
 *
 * What maps to what:
 *   domain_alloc_paging  HYP_DOMAIN_ALLOC (4 KiB granule, the largest IPA
 *                        size it accepted at probe); the domain's page
 *                        sizes are the hyp's
 *   free                 HYP_DOMAIN_FREE
 *   attach_dev           HYP_DETACH from the old domain, HYP_ATTACH per
 *                        StreamID of the fwspec (the hyp refuses to move an
 *                        attached stream, so the device aborts in between)
 *   blocked_domain       HYP_DETACH per StreamID: the streams abort again
 *   release_device       nothing at EL2 (the core attached the blocked
 *                        domain first)
 *   map_pages            queues the map (pgsize and pgcount as given) for
 *                        iotlb_sync_map; a full queue first sends the maps
 *                        queued just below it as one HYP_MAP_LIST; HYP_MAP
 *                        at once if the queue stays full or the hyp has no
 *                        HYP_MAP_LIST
 *   iotlb_sync_map       the queued maps of its IOVA range as HYP_MAP_LISTs
 *                        (HYP_MAP for a single one): an iommu_map_sg of n
 *                        segments is one trap per 128, not n
 *   unmap_pages          HYP_UNMAP with pgsize and pgcount as given, without
 *                        WHOLE_LEAF: a range that would cut a block is
 *                        refused, never split (the IOMMU core only unmaps
 *                        what it mapped)
 *   iova_to_phys         HYP_IOVA_TO_PHYS
 *   iotlb_sync           nothing: every HYP_UNMAP returns after the SMMU's
 *                        TLB invalidation and CMD_SYNC completed
 *   flush_iotlb_all      nothing: as iotlb_sync
 *
 * There is no identity domain. The blocking domain (also the release
 * domain) detaches the device's streams, which then abort, the hyp's
 * default; it holds nothing at EL2 and cannot fail. A failed attach leaves
 * the device blocked.
 *
 * The MSI doorbell is a software-managed region (IOMMU_RESV_SW_MSI): Linux
 * maps the ITS's GITS_TRANSLATER page into each DMA domain itself, with
 * IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO, which becomes a write-only device
 * mapping the hyp's allow-list accepts.
 *
 * The hyp takes no interrupts from the SMMU: a delayed work drains its
 * fault log (HYP_FAULT_POP) while domains exist and logs each record.
 *
 * Nothing here is trusted by EL2: it checks every call. The driver cannot be
 * unloaded (an IOMMU driver under live DMA mappings has no safe exit).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/arm-smccc.h>
#include <linux/debugfs.h>
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/of.h>
#include <linux/pci.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/timex.h>
#include <linux/workqueue.h>
#include <asm/arch_timer.h>
#include <smmu_hyp.h>

/*
 * Exported by the IOMMU core (drivers/iommu/dma-iommu.c) but declared in a
 * header of its own directory: reserved regions the firmware describes
 * for a device.
 */
void iommu_dma_get_resv_regions(struct device *dev, struct list_head *list);

/* Where DMA domains reserve IOVA for the MSI doorbell (as arm-smmu-v3). */
#define PV_MSI_IOVA_BASE	0x8000000
#define PV_MSI_IOVA_LENGTH	0x100000

/*
 * How often the fault log is drained while domains exist, on the
 * power-efficient workqueue: default domains always exist, so the poll never
 * stops, and it must not keep an idle CPU awake.
 */
#define PV_FAULT_POLL		msecs_to_jiffies(100)
/* Most records drained at once (the hyp keeps 64 per SMMU). */
#define PV_FAULT_BATCH		64

/*
 * Maps queued per domain between map_pages and iotlb_sync_map: at most a
 * HYP_MAP_LIST's worth.
 */
#define PV_QUEUE_LEN		SMMU_HYP_MAP_LIST_MAX

/* The IOMMU calls this driver makes: each must be served. */
static const u32 pv_required_calls[] = {
	SMMU_HYP_SMMU_INFO, SMMU_HYP_DOMAIN_ALLOC, SMMU_HYP_DOMAIN_FREE,
	SMMU_HYP_ATTACH, SMMU_HYP_DETACH, SMMU_HYP_MAP, SMMU_HYP_UNMAP,
	SMMU_HYP_IOVA_TO_PHYS, SMMU_HYP_FAULT_POP,
};

/* Calls and the counter ticks spent in them (debugfs `stats`). */
struct pv_call_stats {
	atomic64_t calls;
	atomic64_t ticks;
	atomic64_t errors;
};

/* One SMMU of the hyp, as an IOMMU instance. */
struct pv_iommu {
	struct iommu_device iommu;
	struct device *dev;
	/* The SMMU's index in the ABI. */
	u32 smmu;
	u64 features;
	/* StreamIDs below this exist. */
	u64 sid_limit;
	/* IPA size of the domains made here. */
	unsigned int ipa_bits;
	/* Masters probed here (fault records name them by StreamID). */
	spinlock_t masters_lock;
	struct list_head masters;
	/* Domains alive: the fault work polls while there are any. */
	atomic_t domains;
	struct delayed_work fault_work;
	/* The hyp serves HYP_MAP_LIST: maps are queued for iotlb_sync_map. */
	bool map_list;
	struct pv_call_stats map, unmap, map_list_calls;
	atomic64_t map_list_entries;
	atomic64_t faults;
	struct dentry *debugfs;
};

/* A device behind a pv_iommu. */
struct pv_master {
	struct device *dev;
	struct pv_iommu *pv;
	/* Its domain, changed under the group's mutex. */
	struct pv_domain *domain;
	struct list_head node;
};

/* A struct smmu_hyp_map_entry as the hyp reads it: little-endian. */
struct pv_list_entry {
	__le64 iova;
	__le64 pa;
	__le64 pgsize;
	__le64 pgcount;
};
static_assert(sizeof(struct pv_list_entry) == sizeof(struct smmu_hyp_map_entry));

/* A map_pages waiting for iotlb_sync_map. */
struct pv_queued_map {
	struct pv_list_entry entry;
	unsigned long iova;
	size_t size;
	u64 prot;
};

struct pv_domain {
	struct iommu_domain domain;
	struct pv_iommu *pv;
	/* The hyp's domain id. */
	u64 id;
	/*
	 * Maps not yet sent (with HYP_MAP_LIST only). The IOMMU core maps an
	 * IOVA range from one caller at a time and ends with iotlb_sync_map of
	 * that range, so each sync sends exactly the queued maps inside its
	 * range, whatever other CPUs queue meanwhile. `list` is the page the
	 * hyp reads them from; both under `lock`, held across the hypercall
	 * (the hyp serialises calls on one domain anyway).
	 */
	spinlock_t lock;
	unsigned int queued;
	struct pv_queued_map queue[PV_QUEUE_LEN];
	struct pv_list_entry *list;
	/*
	 * The range a failed send emptied last (pv_unmap_range): the core's
	 * own rollback finds nothing there, which is not an error.
	 */
	unsigned long emptied_iova;
	size_t emptied_size;
};

static struct platform_driver pv_iommu_driver;
static const struct iommu_ops pv_iommu_ops;
static struct dentry *pv_debugfs_root;

static struct pv_domain *to_pv_domain(struct iommu_domain *domain)
{
	return container_of(domain, struct pv_domain, domain);
}

/*
 * The ABI's prot bits for an IOMMU_* prot at `paddr`. Memory that is not
 * the kernel's RAM (a PCI BAR that dma-iommu maps for P2PDMA through the
 * host bridge, without IOMMU_MMIO) is device memory: the hyp refuses any
 * other type there (docs/hypercall-abi.md). pfn_valid would not do: it is
 * true for the ZONE_DEVICE pages of a P2P BAR.
 */
static u64 pv_prot(int prot, phys_addr_t paddr)
{
	u64 hyp = 0;

	if (prot & IOMMU_READ)
		hyp |= SMMU_HYP_PROT_READ;
	if (prot & IOMMU_WRITE)
		hyp |= SMMU_HYP_PROT_WRITE;
	if (prot & IOMMU_NOEXEC)
		hyp |= SMMU_HYP_PROT_NOEXEC;
	/* As io-pgtable-arm: MMIO is device memory, else !CACHE non-cacheable. */
	if ((prot & IOMMU_MMIO) || !pfn_is_map_memory(PHYS_PFN(paddr)))
		hyp |= SMMU_HYP_PROT_MMIO;
	else if (!(prot & IOMMU_CACHE))
		hyp |= SMMU_HYP_PROT_NONCACHEABLE;
	/* IOMMU_PRIV has no meaning at stage 2. */
	return hyp;
}

static void pv_count(struct pv_call_stats *s, u64 ticks, unsigned long x0)
{
	atomic64_inc(&s->calls);
	atomic64_add(ticks, &s->ticks);
	if (smmu_hyp_failed(x0))
		atomic64_inc(&s->errors);
}

/* ---------------------------------------------------------------------
 * Fault records.
 */

static const char *pv_event_name(u8 kind)
{
	switch (kind) {
	case 0x01: return "F_UUT";
	case 0x02: return "C_BAD_STREAMID";
	case 0x03: return "F_STE_FETCH";
	case 0x04: return "C_BAD_STE";
	case 0x10: return "F_TRANSLATION";
	case 0x11: return "F_ADDR_SIZE";
	case 0x12: return "F_ACCESS";
	case 0x13: return "F_PERMISSION";
	default: return "event";
	}
}

/* The device whose StreamIDs include `sid`, with a reference, or NULL. */
static struct device *pv_master_of(struct pv_iommu *pv, u32 sid)
{
	struct device *found = NULL;
	struct pv_master *m;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&pv->masters_lock, flags);
	list_for_each_entry(m, &pv->masters, node) {
		struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(m->dev);

		for (i = 0; fwspec && i < fwspec->num_ids; i++) {
			if (fwspec->ids[i] == sid) {
				found = get_device(m->dev);
				goto out;
			}
		}
	}
out:
	spin_unlock_irqrestore(&pv->masters_lock, flags);
	return found;
}

static void pv_log_fault(struct pv_iommu *pv, const struct arm_smccc_res *res)
{
	u32 sid = smmu_hyp_fault_sid(res->a1);
	u8 kind = smmu_hyp_fault_kind(res->a1);
	struct device *master = pv_master_of(pv, sid);
	struct device *dev = master ? master : pv->dev;
	char iova[32] = "", ipa[32] = "";

	if (res->a1 & SMMU_HYP_FAULT_INPUT_VALID)
		snprintf(iova, sizeof(iova), " at IOVA %#lx", res->a2);
	if (res->a1 & SMMU_HYP_FAULT_ADDR2_VALID)
		snprintf(ipa, sizeof(ipa), " (IPA %#lx)", res->a3);
	dev_err_ratelimited(dev, "%s: %s (%#x) from StreamID %#x: %s%s%s%s\n",
			    dev_name(pv->dev), pv_event_name(kind), kind, sid,
			    res->a1 & SMMU_HYP_FAULT_IND ? "fetch" :
			    res->a1 & SMMU_HYP_FAULT_RNW ? "read" : "write",
			    iova, ipa,
			    res->a1 & SMMU_HYP_FAULT_S2 ? ", stage 2" : "");
	put_device(master);
}

/* Pops and logs the hyp's fault records for this SMMU, a batch at most. */
static void pv_drain_faults(struct pv_iommu *pv)
{
	struct arm_smccc_res res;
	int i;

	for (i = 0; i < PV_FAULT_BATCH; i++) {
		arm_smccc_1_1_hvc(SMMU_HYP_FAULT_POP, pv->smmu, &res);
		if (res.a0 == (unsigned long)SMMU_HYP_ENOT_FOUND)
			return;
		if (smmu_hyp_failed(res.a0)) {
			dev_err_ratelimited(pv->dev, "HYP_FAULT_POP: %ld\n", (long)res.a0);
			return;
		}
		atomic64_inc(&pv->faults);
		pv_log_fault(pv, &res);
	}
}

static void pv_fault_work(struct work_struct *work)
{
	struct pv_iommu *pv = container_of(to_delayed_work(work), struct pv_iommu,
					   fault_work);

	pv_drain_faults(pv);
	if (atomic_read(&pv->domains))
		queue_delayed_work(system_power_efficient_wq, &pv->fault_work,
				   PV_FAULT_POLL);
}

/* ---------------------------------------------------------------------
 * Domains.
 */

static struct iommu_domain *pv_domain_alloc_paging(struct device *dev)
{
	struct arm_smccc_res res;
	struct pv_domain *pd;
	struct pv_master *m;

	/* iommu_domain_alloc(bus) passes no device: which SMMU is unknown. */
	if (!dev)
		return ERR_PTR(-ENODEV);
	m = dev_iommu_priv_get(dev);
	if (!m)
		return ERR_PTR(-ENODEV);
	pd = kzalloc(sizeof(*pd), GFP_KERNEL);
	if (!pd)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&pd->lock);
	if (m->pv->map_list) {
		/* One page holds SMMU_HYP_MAP_LIST_MAX entries. */
		BUILD_BUG_ON(PV_QUEUE_LEN * sizeof(*pd->list) > PAGE_SIZE);
		pd->list = (struct pv_list_entry *)get_zeroed_page(GFP_KERNEL);
		if (!pd->list) {
			kfree(pd);
			return ERR_PTR(-ENOMEM);
		}
	}
	arm_smccc_1_1_hvc(SMMU_HYP_DOMAIN_ALLOC, m->pv->ipa_bits, SZ_4K, &res);
	if (smmu_hyp_failed(res.a0)) {
		dev_err(m->pv->dev, "HYP_DOMAIN_ALLOC(%u bits): %ld\n", m->pv->ipa_bits,
			(long)res.a0);
		free_page((unsigned long)pd->list);
		kfree(pd);
		return ERR_PTR(smmu_hyp_to_errno(res.a0));
	}
	pd->pv = m->pv;
	pd->id = res.a1;
	pd->domain.pgsize_bitmap = res.a2;
	pd->domain.geometry.aperture_start = 0;
	pd->domain.geometry.aperture_end = (dma_addr_t)((1ULL << res.a3) - 1);
	pd->domain.geometry.force_aperture = true;
	if (atomic_inc_return(&pd->pv->domains) == 1)
		queue_delayed_work(system_power_efficient_wq, &pd->pv->fault_work,
				   PV_FAULT_POLL);
	return &pd->domain;
}

/*
 * Whether the master's StreamID `i` repeats an earlier one: a PCI device
 * behind a PCIe-to-PCI bridge at devfn 0 has its own RID as its bridge
 * alias too, and iommu_fwspec_add_ids does not de-duplicate (as
 * arm-smmu-v3, each StreamID is attached and detached once).
 */
static bool pv_sid_repeats(const struct iommu_fwspec *fwspec, unsigned int i)
{
	unsigned int j;

	for (j = 0; j < i; j++)
		if (fwspec->ids[j] == fwspec->ids[i])
			return true;
	return false;
}

/* Detaches the first `n` StreamIDs of the master: they abort again. */
static void pv_detach_first(struct pv_master *m, unsigned int n)
{
	struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(m->dev);
	struct arm_smccc_res res;
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (pv_sid_repeats(fwspec, i))
			continue;
		arm_smccc_1_1_hvc(SMMU_HYP_DETACH, m->pv->smmu, fwspec->ids[i], &res);
		/* The hyp then keeps the stream and its domain (HYP_DOMAIN_FREE: BUSY). */
		if (smmu_hyp_failed(res.a0))
			dev_err(m->dev, "HYP_DETACH(StreamID %#x): %ld\n", fwspec->ids[i],
				(long)res.a0);
	}
}

/* Detaches the master from its domain, if any: it is blocked afterwards. */
static void pv_detach_master(struct pv_master *m)
{
	if (m->domain)
		pv_detach_first(m, dev_iommu_fwspec_get(m->dev)->num_ids);
	m->domain = NULL;
}

/* The attach_dev errno (struct iommu_domain_ops) for a HYP_ATTACH status. */
static int pv_attach_errno(unsigned long status)
{
	switch ((long)status) {
	case SMMU_HYP_EEXISTS:
		return -EBUSY;
	case SMMU_HYP_EDENIED:
	case SMMU_HYP_EOUT_OF_RANGE:
		return -ENODEV;
	default:
		return smmu_hyp_to_errno(status);
	}
}

/* Attaches every StreamID of the master to `pd`; all or none. */
static int pv_attach_streams(struct pv_master *m, struct pv_domain *pd)
{
	struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(m->dev);
	struct arm_smccc_res res;
	unsigned int i;

	for (i = 0; i < fwspec->num_ids; i++) {
		if (pv_sid_repeats(fwspec, i))
			continue;
		arm_smccc_1_1_hvc(SMMU_HYP_ATTACH, m->pv->smmu, fwspec->ids[i], pd->id, &res);
		if (smmu_hyp_failed(res.a0)) {
			dev_err(m->dev, "HYP_ATTACH(StreamID %#x, domain %#llx): %ld\n",
				fwspec->ids[i], pd->id, (long)res.a0);
			pv_detach_first(m, i);
			return pv_attach_errno(res.a0);
		}
	}
	return 0;
}

static void pv_domain_free(struct iommu_domain *domain)
{
	struct pv_domain *pd = to_pv_domain(domain);
	struct pv_iommu *pv = pd->pv;
	struct arm_smccc_res res;
	struct pv_master *m;
	unsigned long flags;

	/* The core frees only unused domains: a master still on it is a bug. */
	spin_lock_irqsave(&pv->masters_lock, flags);
	list_for_each_entry(m, &pv->masters, node) {
		if (m->domain == pd) {
			dev_WARN_ONCE(m->dev, true, "domain %#llx freed while attached\n",
				      pd->id);
			pv_detach_master(m);
		}
	}
	spin_unlock_irqrestore(&pv->masters_lock, flags);

	arm_smccc_1_1_hvc(SMMU_HYP_DOMAIN_FREE, pd->id, &res);
	if (res.a0 == (unsigned long)SMMU_HYP_EBUSY) {
		/*
		 * A stream the hyp would not detach is still in the domain, which
		 * still translates: its pv_domain is never freed nor reused.
		 */
		WARN_ONCE(1, "pv_iommu: HYP_DOMAIN_FREE(%#llx) busy: domain leaked\n",
			  pd->id);
		return;
	}
	if (smmu_hyp_failed(res.a0))
		dev_err(pv->dev, "HYP_DOMAIN_FREE(%#llx): %ld\n", pd->id, (long)res.a0);
	atomic_dec(&pv->domains);
	/* Anything still queued was never mapped at EL2. */
	free_page((unsigned long)pd->list);
	kfree(pd);
}

/*
 * On failure the device is left blocked, never back on its old domain: the
 * core re-attaches what it wants, and a caller that must succeed frees the
 * old domain next (__iommu_group_set_domain_internal).
 */
static int pv_attach_dev(struct iommu_domain *domain, struct device *dev)
{
	struct pv_master *m = dev_iommu_priv_get(dev);
	struct pv_domain *pd = to_pv_domain(domain);
	int err;

	if (m->domain == pd)
		return 0;
	if (pd->pv != m->pv)
		return -EINVAL;
	pv_detach_master(m);
	err = pv_attach_streams(m, pd);
	if (err)
		return err;
	m->domain = pd;
	return 0;
}

/*
 * The blocking domain: the master's streams detached, so they abort at the
 * hyp. It holds nothing at EL2, so attaching it cannot fail; it is also the
 * release domain, which the core attaches before release_device.
 */
static int pv_blocked_attach_dev(struct iommu_domain *domain, struct device *dev)
{
	pv_detach_master(dev_iommu_priv_get(dev));
	return 0;
}

static struct iommu_domain pv_blocked_domain = {
	.type = IOMMU_DOMAIN_BLOCKED,
	.ops = &(const struct iommu_domain_ops) {
		.attach_dev = pv_blocked_attach_dev,
	},
};

static int pv_map_now(struct pv_domain *pd, unsigned long iova, phys_addr_t paddr,
		      size_t pgsize, size_t pgcount, u64 prot)
{
	struct arm_smccc_res res;
	u64 start = get_cycles();

	arm_smccc_1_1_hvc(SMMU_HYP_MAP, pd->id, iova, paddr, pgsize, pgcount, prot, &res);
	pv_count(&pd->pv->map, get_cycles() - start, res.a0);
	if (smmu_hyp_failed(res.a0)) {
		dev_err_ratelimited(pd->pv->dev,
				    "HYP_MAP(%#lx -> %pa, %zu x %#zx, prot %#llx): %ld\n",
				    iova, &paddr, pgcount, pgsize, prot, (long)res.a0);
		return smmu_hyp_to_errno(res.a0);
	}
	return 0;
}

static void pv_send_below(struct pv_domain *pd, unsigned long iova);

static int pv_map_pages(struct iommu_domain *domain, unsigned long iova,
			phys_addr_t paddr, size_t pgsize, size_t pgcount, int prot,
			gfp_t gfp, size_t *mapped)
{
	struct pv_domain *pd = to_pv_domain(domain);
	u64 hprot = pv_prot(prot, paddr);
	unsigned long flags;
	int err;

	if (pd->list) {
		spin_lock_irqsave(&pd->lock, flags);
		if (pd->queued == PV_QUEUE_LEN)
			pv_send_below(pd, iova);
		if (pd->queued < PV_QUEUE_LEN) {
			pd->queue[pd->queued] = (struct pv_queued_map) {
				.entry = {
					.iova = cpu_to_le64(iova),
					.pa = cpu_to_le64(paddr),
					.pgsize = cpu_to_le64(pgsize),
					.pgcount = cpu_to_le64(pgcount),
				},
				.iova = iova,
				.size = pgsize * pgcount,
				.prot = hprot,
			};
			WRITE_ONCE(pd->queued, pd->queued + 1);
			spin_unlock_irqrestore(&pd->lock, flags);
			*mapped = pgsize * pgcount;
			return 0;
		}
		spin_unlock_irqrestore(&pd->lock, flags);
		/* Still full (other callers' maps): this one goes at once. */
	}
	err = pv_map_now(pd, iova, paddr, pgsize, pgcount, hprot);
	if (!err)
		*mapped = pgsize * pgcount;
	return err;
}

static bool pv_in_range(const struct pv_queued_map *q, unsigned long iova, size_t size)
{
	return q->iova >= iova && q->iova - iova < size;
}

/*
 * Moves the queued maps that start in [iova, iova + size) and have the
 * prot of the first of them into pd->list (HYP_MAP_LIST takes one prot);
 * returns how many, 0 if none. Under pd->lock.
 */
static unsigned int pv_take_queued(struct pv_domain *pd, unsigned long iova, size_t size,
				   u64 *prot)
{
	unsigned int i, kept = 0, n = 0;

	for (i = 0; i < pd->queued; i++) {
		struct pv_queued_map *q = &pd->queue[i];

		if (pv_in_range(q, iova, size) && (!n || q->prot == *prot)) {
			*prot = q->prot;
			pd->list[n++] = q->entry;
		} else {
			pd->queue[kept++] = *q;
		}
	}
	WRITE_ONCE(pd->queued, kept);
	return n;
}

/*
 * The start of the chain of queued maps that ends at iova (each ending where
 * the next starts). Under pd->lock.
 */
static unsigned long pv_chain_start(struct pv_domain *pd, unsigned long iova)
{
	unsigned int i = 0;

	/* Each step moves iova down: no cycle. */
	while (i < pd->queued) {
		if (pd->queue[i].iova + pd->queue[i].size == iova) {
			iova = pd->queue[i].iova;
			i = 0;
		} else {
			i++;
		}
	}
	return iova;
}

/* Drops the queued maps in the range; returns their bytes. Under pd->lock. */
static size_t pv_drop_queued(struct pv_domain *pd, unsigned long iova, size_t size)
{
	unsigned int i, kept = 0;
	size_t dropped = 0;

	for (i = 0; i < pd->queued; i++) {
		if (pv_in_range(&pd->queue[i], iova, size))
			dropped += pd->queue[i].size;
		else
			pd->queue[kept++] = pd->queue[i];
	}
	WRITE_ONCE(pd->queued, kept);
	return dropped;
}

/* Maps the n entries of pd->list with `prot`. Under pd->lock. */
static int pv_send_list(struct pv_domain *pd, unsigned int n, u64 prot)
{
	struct pv_list_entry *e = pd->list;
	struct arm_smccc_res res;
	u64 start;

	/* A single map is cheaper without a list to read. */
	if (n == 1)
		return pv_map_now(pd, le64_to_cpu(e->iova), le64_to_cpu(e->pa),
				  le64_to_cpu(e->pgsize), le64_to_cpu(e->pgcount), prot);
	start = get_cycles();
	arm_smccc_1_1_hvc(SMMU_HYP_MAP_LIST, pd->id, virt_to_phys(pd->list), n, prot, &res);
	pv_count(&pd->pv->map_list_calls, get_cycles() - start, res.a0);
	atomic64_add(n, &pd->pv->map_list_entries);
	if (smmu_hyp_failed(res.a0)) {
		/* All or nothing: none of the n is mapped. */
		dev_err_ratelimited(pd->pv->dev,
				    "HYP_MAP_LIST(%u maps from %#llx, prot %#llx): %ld\n",
				    n, le64_to_cpu(e->iova), prot, (long)res.a0);
		return smmu_hyp_to_errno(res.a0);
	}
	return 0;
}

/*
 * After a failed HYP_MAP_LIST, unmaps whatever else of [iova, iova + size)
 * reached the hyp (maps sent at once when the queue was full, a list of
 * another prot): the failed list left a hole there, and the core's own
 * unmap of the range stops at the first hole. Under pd->lock.
 */
static void pv_unmap_range(struct pv_domain *pd, unsigned long iova, size_t size)
{
	struct arm_smccc_res res;
	u64 start = get_cycles();

	arm_smccc_1_1_hvc(SMMU_HYP_UNMAP, pd->id, iova, SZ_4K, size / SZ_4K, 0, &res);
	pv_count(&pd->pv->unmap, get_cycles() - start, res.a0);
	pd->emptied_iova = iova;
	pd->emptied_size = size;
	/*
	 * PARTIAL_BLOCK only for a caller that mapped over part of a live block
	 * (the DMA API never does): then nothing here is unmapped.
	 */
	if (smmu_hyp_failed(res.a0) && res.a0 != (unsigned long)SMMU_HYP_ENOT_FOUND)
		dev_err_ratelimited(pd->pv->dev, "HYP_UNMAP(%#lx, %#zx) after a failed map: %ld\n",
				    iova, size, (long)res.a0);
}

/*
 * Sends the maps queued in [iova, iova + size), in one HYP_MAP_LIST per
 * prot. On failure the rest are dropped (never mapped) and what did reach
 * the hyp is unmapped, so the range holds nothing. Under pd->lock.
 */
static int pv_send_range(struct pv_domain *pd, unsigned long iova, size_t size)
{
	unsigned int n;
	u64 prot = 0;
	int err = 0;

	while (!err && (n = pv_take_queued(pd, iova, size, &prot)))
		err = pv_send_list(pd, n, prot);
	if (err) {
		pv_drop_queued(pd, iova, size);
		pv_unmap_range(pd, iova, size);
	}
	return err;
}

/*
 * The queue is full at map_pages(iova): sends the chain of maps queued just
 * below iova (the caller's own so far, as a caller maps its range upwards;
 * it may run on into the range of a caller below that has queued all of
 * it) as one HYP_MAP_LIST. If it fails they go back in the queue: each
 * owner's iotlb_sync_map sends them again and gets the error itself.
 * Under pd->lock.
 */
static void pv_send_below(struct pv_domain *pd, unsigned long iova)
{
	unsigned long start = pv_chain_start(pd, iova);
	struct pv_list_entry *e;
	unsigned int i, n;
	u64 prot = 0;

	if (start == iova)
		return;
	n = pv_take_queued(pd, start, iova - start, &prot);
	if (!n || !pv_send_list(pd, n, prot))
		return;
	for (i = 0; i < n; i++) {
		e = &pd->list[i];
		pd->queue[pd->queued + i] = (struct pv_queued_map) {
			.entry = *e,
			.iova = le64_to_cpu(e->iova),
			.size = le64_to_cpu(e->pgsize) * le64_to_cpu(e->pgcount),
			.prot = prot,
		};
	}
	WRITE_ONCE(pd->queued, pd->queued + n);
}

static int pv_iotlb_sync_map(struct iommu_domain *domain, unsigned long iova, size_t size)
{
	struct pv_domain *pd = to_pv_domain(domain);
	unsigned long flags;
	int err;

	if (!pd->list)
		return 0;
	spin_lock_irqsave(&pd->lock, flags);
	err = pv_send_range(pd, iova, size);
	spin_unlock_irqrestore(&pd->lock, flags);
	return err;
}

/* Whether [iova, iova + size) lies in the range a failed send emptied. */
static bool pv_emptied(struct pv_domain *pd, unsigned long iova, size_t size)
{
	unsigned long flags;
	bool inside;

	spin_lock_irqsave(&pd->lock, flags);
	inside = pd->emptied_size && iova >= pd->emptied_iova &&
		 iova - pd->emptied_iova + size <= pd->emptied_size;
	spin_unlock_irqrestore(&pd->lock, flags);
	return inside;
}

static size_t pv_unmap_pages(struct iommu_domain *domain, unsigned long iova,
			     size_t pgsize, size_t pgcount,
			     struct iommu_iotlb_gather *gather)
{
	struct pv_domain *pd = to_pv_domain(domain);
	struct arm_smccc_res res;
	unsigned long flags;
	size_t dropped = 0;
	u64 start;

	/*
	 * Maps still queued (the core undoing a map_pages that failed midway,
	 * before any iotlb_sync_map) never reached the hyp: they are dropped.
	 */
	/* Only this caller can have maps queued in its range: no lock to see none. */
	if (pd->list && READ_ONCE(pd->queued)) {
		spin_lock_irqsave(&pd->lock, flags);
		dropped = pv_drop_queued(pd, iova, pgsize * pgcount);
		spin_unlock_irqrestore(&pd->lock, flags);
	}
	start = get_cycles();
	/* No WHOLE_LEAF: cutting into a block is refused, never widened. */
	arm_smccc_1_1_hvc(SMMU_HYP_UNMAP, pd->id, iova, pgsize, pgcount, 0, &res);
	pv_count(&pd->pv->unmap, get_cycles() - start, res.a0);
	if (res.a0 == (unsigned long)SMMU_HYP_ENOT_FOUND &&
	    (dropped || pv_emptied(pd, iova, pgsize * pgcount)))
		return pgsize * pgcount;
	if (smmu_hyp_failed(res.a0)) {
		dev_err_ratelimited(pd->pv->dev, "HYP_UNMAP(%#lx, %zu x %#zx): %ld%s\n",
				    iova, pgcount, pgsize, (long)res.a0,
				    res.a0 == (unsigned long)SMMU_HYP_EPARTIAL_BLOCK ?
				    " (would split a block)" : "");
		return 0;
	}
	/*
	 * The whole range is unmapped now, holes included; x1 counts only the
	 * leaves removed, but __iommu_unmap advances by what is returned.
	 */
	return pgsize * pgcount;
}

/*
 * The hyp invalidated and synced before HYP_UNMAP returned. Queued maps are
 * not sent here: every 6.12 caller of map_pages (iommu_map, iommu_map_sg)
 * ends with iotlb_sync_map of its range, and sending another CPU's maps
 * here would take their errors away from it.
 */
static void pv_flush_iotlb_all(struct iommu_domain *domain)
{
}

static void pv_iotlb_sync(struct iommu_domain *domain,
			  struct iommu_iotlb_gather *gather)
{
}

static phys_addr_t pv_iova_to_phys(struct iommu_domain *domain, dma_addr_t iova)
{
	struct pv_domain *pd = to_pv_domain(domain);
	struct arm_smccc_res res;

	arm_smccc_1_1_hvc(SMMU_HYP_IOVA_TO_PHYS, pd->id, iova, &res);
	return smmu_hyp_failed(res.a0) ? 0 : res.a1;
}

/* ---------------------------------------------------------------------
 * Devices.
 */

static struct pv_iommu *pv_by_fwnode(struct fwnode_handle *fwnode)
{
	struct device *dev = driver_find_device_by_fwnode(&pv_iommu_driver.driver, fwnode);
	struct pv_iommu *pv;

	if (!dev)
		return NULL;
	pv = dev_get_drvdata(dev);
	put_device(dev);
	return pv;
}

/*
 * The device of a master already probed here that has one of `fwspec`'s
 * StreamIDs, or NULL; under masters_lock. A StreamID has one domain at the
 * hyp, so two masters cannot share one (arm-smmu-v3 refuses them too: the
 * second device behind a PCIe-to-PCI bridge, whose bridge alias the first
 * one has).
 */
static struct device *pv_master_sharing(struct pv_iommu *pv,
					const struct iommu_fwspec *fwspec)
{
	struct pv_master *m;
	unsigned int i, j;

	list_for_each_entry(m, &pv->masters, node) {
		struct iommu_fwspec *theirs = dev_iommu_fwspec_get(m->dev);

		for (i = 0; i < fwspec->num_ids; i++)
			for (j = 0; j < theirs->num_ids; j++)
				if (fwspec->ids[i] == theirs->ids[j])
					return m->dev;
	}
	return NULL;
}

static struct iommu_device *pv_probe_device(struct device *dev)
{
	struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(dev);
	struct device *other;
	struct pv_master *m;
	struct pv_iommu *pv;
	unsigned long flags;
	unsigned int i;

	if (!fwspec || !fwspec->num_ids)
		return ERR_PTR(-ENODEV);
	pv = pv_by_fwnode(fwspec->iommu_fwnode);
	if (!pv)
		return ERR_PTR(-ENODEV);
	/*
	 * Per-device problems are -ENODEV: the device goes without an IOMMU
	 * and its streams keep aborting. Any other errno would fail
	 * iommu_device_register for every device (probe_iommu_group).
	 */
	for (i = 0; i < fwspec->num_ids; i++) {
		if (fwspec->ids[i] >= pv->sid_limit) {
			dev_err(dev, "StreamID %#x is beyond %s's %#llx\n", fwspec->ids[i],
				dev_name(pv->dev), pv->sid_limit);
			return ERR_PTR(-ENODEV);
		}
	}
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return ERR_PTR(-ENODEV);
	m->dev = dev;
	m->pv = pv;
	spin_lock_irqsave(&pv->masters_lock, flags);
	other = pv_master_sharing(pv, fwspec);
	if (other) {
		/* Logged under the lock: `other` cannot be released meanwhile. */
		dev_err(dev, "shares a StreamID with %s (a PCI DMA alias): no IOMMU for it\n",
			dev_name(other));
		spin_unlock_irqrestore(&pv->masters_lock, flags);
		kfree(m);
		return ERR_PTR(-ENODEV);
	}
	list_add_tail(&m->node, &pv->masters);
	spin_unlock_irqrestore(&pv->masters_lock, flags);
	dev_iommu_priv_set(dev, m);
	return &pv->iommu;
}

static void pv_release_device(struct device *dev)
{
	struct pv_master *m = dev_iommu_priv_get(dev);
	unsigned long flags;

	/* The core attached the release domain first: this is a no-op then. */
	pv_detach_master(m);
	spin_lock_irqsave(&m->pv->masters_lock, flags);
	list_del(&m->node);
	spin_unlock_irqrestore(&m->pv->masters_lock, flags);
	dev_iommu_priv_set(dev, NULL);
	kfree(m);
}

static struct iommu_group *pv_device_group(struct device *dev)
{
	return dev_is_pci(dev) ? pci_device_group(dev) : generic_device_group(dev);
}

static int pv_of_xlate(struct device *dev, const struct of_phandle_args *args)
{
	/* The one cell is the StreamID (docs/pv-iommu.md). */
	if (args->args_count != 1)
		return -EINVAL;
	return iommu_fwspec_add_ids(dev, args->args, 1);
}

static void pv_get_resv_regions(struct device *dev, struct list_head *head)
{
	struct iommu_resv_region *msi;

	msi = iommu_alloc_resv_region(PV_MSI_IOVA_BASE, PV_MSI_IOVA_LENGTH,
				      IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO,
				      IOMMU_RESV_SW_MSI, GFP_KERNEL);
	if (msi)
		list_add_tail(&msi->list, head);
	iommu_dma_get_resv_regions(dev, head);
}

static bool pv_capable(struct device *dev, enum iommu_cap cap)
{
	struct pv_master *m = dev_iommu_priv_get(dev);

	switch (cap) {
	case IOMMU_CAP_CACHE_COHERENCY:
		return m && (m->pv->features & SMMU_HYP_FEAT_COHERENT);
	default:
		return false;
	}
}

static const struct iommu_ops pv_iommu_ops = {
	.capable = pv_capable,
	.domain_alloc_paging = pv_domain_alloc_paging,
	.probe_device = pv_probe_device,
	.release_device = pv_release_device,
	.device_group = pv_device_group,
	.get_resv_regions = pv_get_resv_regions,
	.of_xlate = pv_of_xlate,
	.owner = THIS_MODULE,
	.blocked_domain = &pv_blocked_domain,
	.release_domain = &pv_blocked_domain,
	.default_domain_ops = &(const struct iommu_domain_ops) {
		.attach_dev = pv_attach_dev,
		.map_pages = pv_map_pages,
		.unmap_pages = pv_unmap_pages,
		.iotlb_sync_map = pv_iotlb_sync_map,
		.flush_iotlb_all = pv_flush_iotlb_all,
		.iotlb_sync = pv_iotlb_sync,
		.iova_to_phys = pv_iova_to_phys,
		.free = pv_domain_free,
	},
};

/* ---------------------------------------------------------------------
 * debugfs: <debugfs>/pv_iommu/<device>/stats, counters of this driver.
 */

static int pv_stats_show(struct seq_file *s, void *unused)
{
	struct pv_iommu *pv = s->private;

	seq_printf(s, "maps %lld\nmap_ticks %lld\nmap_errors %lld\n",
		   atomic64_read(&pv->map.calls), atomic64_read(&pv->map.ticks),
		   atomic64_read(&pv->map.errors));
	seq_printf(s, "map_lists %lld\nmap_list_entries %lld\nmap_list_ticks %lld\nmap_list_errors %lld\n",
		   atomic64_read(&pv->map_list_calls.calls),
		   atomic64_read(&pv->map_list_entries),
		   atomic64_read(&pv->map_list_calls.ticks),
		   atomic64_read(&pv->map_list_calls.errors));
	seq_printf(s, "unmaps %lld\nunmap_ticks %lld\nunmap_errors %lld\n",
		   atomic64_read(&pv->unmap.calls), atomic64_read(&pv->unmap.ticks),
		   atomic64_read(&pv->unmap.errors));
	/* The frequency of the ticks (get_cycles: the generic timer's counter). */
	seq_printf(s, "counter_hz %u\n", arch_timer_get_cntfrq());
	seq_printf(s, "faults %lld\ndomains %d\n", atomic64_read(&pv->faults),
		   atomic_read(&pv->domains));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pv_stats);

/* ---------------------------------------------------------------------
 * The platform device: one per SMMU the hyp describes.
 */

/*
 * EL2 is smmu-hyp (its SMCCC vendor hypervisor UID: KVM's nVHE host calls
 * use the same 0xC600xxxx IDs), speaks our major version and serves every
 * call we make.
 */
static int pv_check_abi(struct device *dev)
{
	struct arm_smccc_res res;
	unsigned int i;

	arm_smccc_1_1_hvc(ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID, &res);
	if (res.a0 != SMMU_HYP_UID_0 || res.a1 != SMMU_HYP_UID_1 ||
	    res.a2 != SMMU_HYP_UID_2 || res.a3 != SMMU_HYP_UID_3) {
		dev_err(dev, "EL2 is not smmu-hyp (vendor hypervisor UID %08lx %08lx %08lx %08lx)\n",
			res.a0, res.a1, res.a2, res.a3);
		return -ENODEV;
	}
	arm_smccc_1_1_hvc(SMMU_HYP_ABI_VERSION_FN, &res);
	if (smmu_hyp_failed(res.a0) ||
	    SMMU_HYP_ABI_MAJOR(res.a0) != SMMU_HYP_ABI_MAJOR(SMMU_HYP_ABI_VERSION)) {
		dev_err(dev, "hyp ABI version %#lx, not major %llu\n", res.a0,
			SMMU_HYP_ABI_MAJOR(SMMU_HYP_ABI_VERSION));
		return -ENODEV;
	}
	for (i = 0; i < ARRAY_SIZE(pv_required_calls); i++) {
		arm_smccc_1_1_hvc(SMMU_HYP_FEATURES, pv_required_calls[i], &res);
		if (res.a0 != SMMU_HYP_SUCCESS) {
			dev_err(dev, "the hyp does not serve call %#x\n", pv_required_calls[i]);
			return -ENODEV;
		}
	}
	return 0;
}

/*
 * The largest domain IPA size HYP_DOMAIN_ALLOC accepts, from SMMU_INFO's
 * down to 32 bits. SMMU_INFO gives this SMMU's size, but DOMAIN_ALLOC also
 * wants one every SMMU of the hyp can translate, with a legal start level
 * (docs/hypercall-abi.md): on mixed SMMUs the first may be refused.
 */
static int pv_find_ipa_bits(struct pv_iommu *pv)
{
	struct arm_smccc_res res;
	unsigned int bits;

	for (bits = pv->ipa_bits; bits >= 32; bits--) {
		arm_smccc_1_1_hvc(SMMU_HYP_DOMAIN_ALLOC, bits, SZ_4K, &res);
		if (res.a0 == (unsigned long)SMMU_HYP_EINVALID_PARAMETER)
			continue;
		if (smmu_hyp_failed(res.a0))
			break;
		arm_smccc_1_1_hvc(SMMU_HYP_DOMAIN_FREE, res.a1, &res);
		pv->ipa_bits = bits;
		return 0;
	}
	dev_err(pv->dev, "HYP_DOMAIN_ALLOC(4 KiB granule, <= %u bits): %ld\n",
		pv->ipa_bits, (long)res.a0);
	return -ENODEV;
}

static int pv_iommu_probe(struct platform_device *pdev)
{
	struct device *dev = &pdev->dev;
	unsigned long page_sizes;
	struct arm_smccc_res res;
	struct pv_iommu *pv;
	int err;

	/*
	 * dma-iommu maps the MSI doorbell as one PAGE_SIZE granule, but the
	 * hyp allows exactly the doorbell's 4 KiB page (docs/pv-iommu.md).
	 */
	if (PAGE_SIZE != SZ_4K) {
		dev_err(dev, "needs 4 KiB pages, not %lu KiB: the MSI doorbell is one 4 KiB page\n",
			PAGE_SIZE >> 10);
		return -ENODEV;
	}
	pv = devm_kzalloc(dev, sizeof(*pv), GFP_KERNEL);
	if (!pv)
		return -ENOMEM;
	pv->dev = dev;
	if (of_property_read_u32(dev->of_node, "smmu-hyp,smmu", &pv->smmu)) {
		dev_err(dev, "no smmu-hyp,smmu property\n");
		return -EINVAL;
	}
	err = pv_check_abi(dev);
	if (err)
		return err;
	/* Optional: without it each map is a HYP_MAP of its own. */
	arm_smccc_1_1_hvc(SMMU_HYP_FEATURES, SMMU_HYP_MAP_LIST, &res);
	pv->map_list = res.a0 == SMMU_HYP_SUCCESS;
	arm_smccc_1_1_hvc(SMMU_HYP_SMMU_INFO, pv->smmu, &res);
	if (smmu_hyp_failed(res.a0)) {
		dev_err(dev, "HYP_SMMU_INFO(%u): %ld\n", pv->smmu, (long)res.a0);
		return smmu_hyp_to_errno(res.a0);
	}
	pv->features = res.a1;
	page_sizes = res.a2;
	pv->sid_limit = 1ULL << smmu_hyp_info_sid_bits(res.a3);
	pv->ipa_bits = smmu_hyp_info_max_ipa_bits(res.a3);
	if (!(pv->features & SMMU_HYP_FEAT_GRAN4K)) {
		dev_err(dev, "smmu%u has no 4 KiB granule\n", pv->smmu);
		return -ENODEV;
	}
	err = pv_find_ipa_bits(pv);
	if (err)
		return err;
	spin_lock_init(&pv->masters_lock);
	INIT_LIST_HEAD(&pv->masters);
	INIT_DELAYED_WORK(&pv->fault_work, pv_fault_work);
	platform_set_drvdata(pdev, pv);

	err = iommu_device_sysfs_add(&pv->iommu, dev, NULL, "%s", dev_name(dev));
	if (err)
		return err;
	err = iommu_device_register(&pv->iommu, &pv_iommu_ops, dev);
	if (err) {
		/* Default domains made meanwhile armed the fault work. */
		cancel_delayed_work_sync(&pv->fault_work);
		iommu_device_sysfs_remove(&pv->iommu);
		return err;
	}
	pv->debugfs = debugfs_create_dir(dev_name(dev), pv_debugfs_root);
	debugfs_create_file("stats", 0400, pv->debugfs, pv, &pv_stats_fops);
	dev_info(dev, "smmu%u through hypercalls: StreamIDs < %#llx, %u-bit IPA, page sizes %#lx, features %#llx%s\n",
		 pv->smmu, pv->sid_limit, pv->ipa_bits, page_sizes, pv->features,
		 pv->map_list ? ", maps batched" : "");
	return 0;
}

static const struct of_device_id pv_iommu_of_match[] = {
	{ .compatible = "smmu-hyp,pv-iommu" },
	{ }
};
MODULE_DEVICE_TABLE(of, pv_iommu_of_match);

static struct platform_driver pv_iommu_driver = {
	.driver = {
		.name = "pv-iommu",
		.of_match_table = pv_iommu_of_match,
		/* Unbinding an IOMMU under live mappings is not supported. */
		.suppress_bind_attrs = true,
	},
	.probe = pv_iommu_probe,
};

static int __init pv_iommu_init(void)
{
	int err;

	pv_debugfs_root = debugfs_create_dir("pv_iommu", NULL);
	err = platform_driver_register(&pv_iommu_driver);
	if (err)
		debugfs_remove(pv_debugfs_root);
	return err;
}
/* No module_exit: the module stays loaded (see the top of this file). */
module_init(pv_iommu_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("IOMMU driver for the SMMUs smmu-hyp owns, over its hypercalls");

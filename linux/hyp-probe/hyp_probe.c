// SPDX-License-Identifier: GPL-2.0
/*
 * hyp_probe - one access of a hostile kernel, for the Linux attack scenario
 * (tests/linux/scenarios/attack.sh): Linux at EL1 tries to reach what the
 * hyp keeps from it, the way a driver reaches memory Linux does not manage.
 *
 *   insmod hyp_probe_N.ko op=read  addr=PA   load 8 bytes at PA
 *   insmod hyp_probe_N.ko op=write addr=PA   store 8 bytes at PA
 *   insmod hyp_probe_N.ko op=hvc             ask the hyp its ABI version
 *   insmod hyp_probe_N.ko op=attach sid=SID  attach StreamID SID of SMMU 0
 *                                            to a new domain, detach it
 *   insmod hyp_probe_N.ko op=stats           log the hyp's IOMMU objects
 *                                            and DMA page references
 *
 * PA's page gets a new write-back kernel mapping with memremap() (EL2's RAM
 * is no-map, so it is in no mapping Linux already has). The access happens
 * in module init, in the insmod process. When the hyp refuses it, EL1 takes
 * a synchronous external abort: Linux oopses ("Internal error: synchronous
 * external abort") and kills that insmod only (panic_on_oops is 0). An
 * access that completes logs what it did and insmod succeeds. hvc and
 * attach are the hyp serving after the attacks: its hypercalls answer, its
 * SMMU takes commands.
 *
 * No instruction fetch: Linux maps nothing executable outside its own
 * image (ioremap and vmap add PXN), making such a mapping takes editing the
 * kernel's page tables by hand (init_mm is not exported), and Linux's oops
 * for an aborted fetch re-reads the instructions at the faulting PC inside
 * die(), which aborts again and deadlocks on die_lock.
 *
 * A module whose init died stays "coming" in Linux's module list and its
 * name never loads again: each access loads a copy of its own (Kbuild).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/arm-smccc.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/string.h>
#include <smmu_hyp.h>

static char *op = "";
module_param(op, charp, 0);
MODULE_PARM_DESC(op, "read or write (at addr), hvc, attach or stats");

static unsigned long long addr;
module_param(addr, ullong, 0);
MODULE_PARM_DESC(addr, "physical address of the access, 8-byte aligned");

static unsigned int sid;
module_param(sid, uint, 0);
MODULE_PARM_DESC(sid, "StreamID for op=attach");

/* What a write stores: recognisable in a dump of memory it reached. */
#define PROBE_PATTERN 0x6879705f70726f62ULL /* "hyp_prob" */

static int probe_read(phys_addr_t pa)
{
	void *page = memremap(pa & PAGE_MASK, PAGE_SIZE, MEMREMAP_WB);
	u64 value;

	if (!page)
		return -ENXIO;
	value = READ_ONCE(*(u64 *)(page + offset_in_page(pa)));
	memunmap(page);
	pr_info("read of %pa: %#llx\n", &pa, value);
	return 0;
}

static int probe_write(phys_addr_t pa)
{
	void *page = memremap(pa & PAGE_MASK, PAGE_SIZE, MEMREMAP_WB);

	if (!page)
		return -ENXIO;
	WRITE_ONCE(*(u64 *)(page + offset_in_page(pa)), PROBE_PATTERN);
	memunmap(page);
	pr_info("write of %#llx to %pa completed\n", PROBE_PATTERN, &pa);
	return 0;
}

/* The hyp answers hypercalls: its ABI has the major version we know. */
static int probe_hvc(void)
{
	struct arm_smccc_res res;

	arm_smccc_1_1_hvc(SMMU_HYP_ABI_VERSION_FN, &res);
	pr_info("hyp ABI version %lu.%lu\n", (unsigned long)SMMU_HYP_ABI_MAJOR(res.a0),
		(unsigned long)SMMU_HYP_ABI_MINOR(res.a0));
	if (SMMU_HYP_ABI_MAJOR(res.a0) != SMMU_HYP_ABI_MAJOR(SMMU_HYP_ABI_VERSION))
		return -EPROTO;
	return 0;
}

/* CMD_SYNCs the hyp's SMMU 0 has completed (HYP_STATS), or -1. */
static long cmd_syncs(void)
{
	struct arm_smccc_res res;

	arm_smccc_1_1_hvc(SMMU_HYP_STATS, SMMU_HYP_STATS_SMMU_COMMANDS, 0, &res);
	return smmu_hyp_failed(res.a0) ? -1 : (long)res.a2;
}

/*
 * The hyp's SMMU takes commands: attaching a stream and detaching it
 * again each need the SMMU to complete CMD_CFGI_STE and CMD_SYNC, which a
 * disabled command queue never does.
 */
static int probe_attach(void)
{
	struct arm_smccc_res res;
	long syncs = cmd_syncs();
	unsigned long domain;
	int err;

	arm_smccc_1_1_hvc(SMMU_HYP_SMMU_INFO, 0, &res);
	if (smmu_hyp_failed(res.a0)) {
		pr_err("SMMU_INFO: %ld\n", (long)res.a0);
		return smmu_hyp_to_errno(res.a0);
	}
	/* The largest domain SMMU 0 takes, with 4 KiB pages. */
	arm_smccc_1_1_hvc(SMMU_HYP_DOMAIN_ALLOC, smmu_hyp_info_max_ipa_bits(res.a3), 0, &res);
	if (smmu_hyp_failed(res.a0)) {
		pr_err("DOMAIN_ALLOC: %ld\n", (long)res.a0);
		return smmu_hyp_to_errno(res.a0);
	}
	domain = res.a1;
	arm_smccc_1_1_hvc(SMMU_HYP_ATTACH, 0, sid, domain, &res);
	err = smmu_hyp_to_errno(res.a0);
	if (err) {
		pr_err("ATTACH of StreamID %#x: %ld\n", sid, (long)res.a0);
	} else {
		arm_smccc_1_1_hvc(SMMU_HYP_DETACH, 0, sid, &res);
		err = smmu_hyp_to_errno(res.a0);
		if (err)
			pr_err("DETACH of StreamID %#x: %ld\n", sid, (long)res.a0);
	}
	arm_smccc_1_1_hvc(SMMU_HYP_DOMAIN_FREE, domain, &res);
	if (err)
		return err;
	if (smmu_hyp_failed(res.a0)) {
		pr_err("DOMAIN_FREE: %ld\n", (long)res.a0);
		return smmu_hyp_to_errno(res.a0);
	}
	pr_info("StreamID %#x attached to domain %#lx and detached: %ld CMD_SYNCs completed\n",
		sid, domain, cmd_syncs() - syncs);
	return 0;
}

/*
 * What the hyp's IOMMU holds now (HYP_STATS OBJECTS and MEMORY), for checks
 * that nothing stays mapped or referenced once Linux let go of its devices.
 */
static int probe_stats(void)
{
	struct arm_smccc_res objects, memory;

	arm_smccc_1_1_hvc(SMMU_HYP_STATS, SMMU_HYP_STATS_OBJECTS, 0, &objects);
	arm_smccc_1_1_hvc(SMMU_HYP_STATS, SMMU_HYP_STATS_MEMORY, 0, &memory);
	if (smmu_hyp_failed(objects.a0) || smmu_hyp_failed(memory.a0)) {
		pr_err("STATS: %ld, %ld\n", (long)objects.a0, (long)memory.a0);
		return -EIO;
	}
	pr_info("hyp stats: %lu domains, %lu streams, %lu bytes mapped, %lu page references\n",
		objects.a1, objects.a2, objects.a3, memory.a2);
	return 0;
}

static int __init hyp_probe_init(void)
{
	phys_addr_t pa = addr;

	if (!strcmp(op, "hvc"))
		return probe_hvc();
	if (!strcmp(op, "attach"))
		return probe_attach();
	if (!strcmp(op, "stats"))
		return probe_stats();
	if (!IS_ALIGNED(pa, sizeof(u64)))
		return -EINVAL;
	if (!strcmp(op, "read"))
		return probe_read(pa);
	if (!strcmp(op, "write"))
		return probe_write(pa);
	pr_err("op=%s: not read, write, hvc, attach or stats\n", op);
	return -EINVAL;
}
module_init(hyp_probe_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("One access to a physical address, as a hostile kernel makes it");

// SPDX-License-Identifier: GPL-2.0
/*
 * edu_dma - QEMU's `edu` PCI device as a DMA master behind whatever IOMMU
 * Linux drives (the hyp's virtio-iommu, its paravirtual IOMMU, ...), for
 * the Linux scenarios of the IOMMU front doors (tests/linux/scenarios/).
 *
 * The device is 1234:11e8 (QEMU's hw/misc/edu.c, docs/specs/edu.rst): a
 * 4 KiB buffer at 0x40000 in its own address space, DMA registers at 0x80
 * source, 0x88 destination, 0x90 count, 0x98 command (bit 0 start/busy,
 * bit 1 direction, 1 = from the device to memory); each transfer takes
 * 100 ms of its timer. Binding it puts the device in a DMA domain of its
 * IOMMU. The probe then, logging one line per step:
 *
 *  1. copies a message into the device and back into a DMA buffer through
 *     the buffer's own mapping: "a DMA through its mapping at IOVA ...
 *     landed: ...";
 *  2. attaches the device to a paging domain of its own (no DMA runs
 *     meanwhile; Linux 6.12's virtio-iommu driver cannot map into a domain
 *     no endpoint is attached to), maps a 2 MiB block and unmaps 4 KiB
 *     inside it, which must unmap nothing and leave the block translating
 *     (the IOMMU core's contract: a driver never splits a block for a
 *     partial unmap), then unmaps the whole block and puts the device back
 *     in its DMA domain: "a 4 KiB unmap inside a 2 MiB block unmapped 0
 *     bytes, the block still translates";
 *  3. in a paging domain of its own again, maps a scatter-gather list of
 *     200 pages that are not physically contiguous (every other page of a
 *     2 MiB allocation) with one iommu_map_sg, which must map every page
 *     where it belongs ("a scatter-gather map of 200 discontiguous pages
 *     translates each"); then maps a page in the middle of a second
 *     range and maps a 100-page list over that range: "a scatter-gather
 *     map over a live mapping returned R; P of its pages translate", which
 *     the scenario checks per IOMMU (the paravirtual one refuses the list
 *     and leaves nothing; Linux's virtio-iommu driver does not report
 *     failed MAP requests of a batch);
 *  4. points the device at the physical address of a page Linux never
 *     mapped for it (a page of its own, filled with 0x5a), as an IOVA: the
 *     write a device without an IOMMU would make into that page. The IOMMU
 *     must block it: the page keeps every byte, the DMA buffer keeps every
 *     byte outside what step 1 wrote ("a DMA to IOVA ..., never mapped,
 *     changed no byte"), and the IOMMU driver reports the fault in Linux's
 *     log, which is what the scenarios look for.
 *
 * The probe fails (and the device stays unbound) if a step does not hold.
 * Every wait is bounded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/string.h>

#define EDU_DMA_SRC		0x80
#define EDU_DMA_DST		0x88
#define EDU_DMA_COUNT		0x90
#define EDU_DMA_CMD		0x98
#define EDU_CMD_START		BIT(0)
#define EDU_CMD_TO_RAM		BIT(1)
/* The device's buffer, in its own address space. */
#define EDU_BUFFER		0x40000
/* A transfer takes 100 ms of the device's timer. */
#define EDU_TIMEOUT_MS		2000

#define VICTIM_BYTE 0x5a
static const char message[16] = "hello, confined";

/* Runs one transfer and waits (at most EDU_TIMEOUT_MS) for it to finish. */
static int edu_transfer(void __iomem *regs, u64 src, u64 dst, u64 count, bool to_ram)
{
	unsigned int waited;

	writeq(src, regs + EDU_DMA_SRC);
	writeq(dst, regs + EDU_DMA_DST);
	writeq(count, regs + EDU_DMA_COUNT);
	writeq(EDU_CMD_START | (to_ram ? EDU_CMD_TO_RAM : 0), regs + EDU_DMA_CMD);
	for (waited = 0; waited < EDU_TIMEOUT_MS; waited += 10) {
		if (!(readq(regs + EDU_DMA_CMD) & EDU_CMD_START))
			return 0;
		msleep(10);
	}
	return -ETIMEDOUT;
}

static bool all_bytes(const u8 *p, size_t len, u8 value)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != value)
			return false;
	return true;
}

/* A paging domain of the device's own, attached (no DMA runs meanwhile). */
static struct iommu_domain *edu_own_domain(struct device *dev)
{
	struct iommu_domain *domain = iommu_paging_domain_alloc(dev);
	int err;

	if (IS_ERR(domain))
		return domain;
	err = iommu_attach_device(domain, dev);
	if (err) {
		dev_err(dev, "cannot attach a domain of its own: %d\n", err);
		iommu_domain_free(domain);
		return ERR_PTR(err);
	}
	return domain;
}

/* Puts the device back in its DMA domain and frees its own. */
static void edu_drop_own_domain(struct device *dev, struct iommu_domain *domain)
{
	iommu_detach_device(domain, dev);
	iommu_domain_free(domain);
}

/* Step 2: a 4 KiB unmap inside a 2 MiB block neither splits nor unmaps it. */
static int edu_partial_unmap(struct device *dev, struct iommu_domain *dma_domain)
{
	const unsigned long iova = SZ_1G;
	struct iommu_domain *domain;
	struct page *block;
	phys_addr_t pa;
	size_t part, whole;
	int err = -EIO;

	if (!(dma_domain->pgsize_bitmap & SZ_2M)) {
		dev_err(dev, "the IOMMU has no 2 MiB blocks\n");
		return -EIO;
	}
	block = alloc_pages(GFP_KERNEL, get_order(SZ_2M));
	if (!block)
		return -ENOMEM;
	pa = page_to_phys(block);
	domain = edu_own_domain(dev);
	if (IS_ERR(domain)) {
		__free_pages(block, get_order(SZ_2M));
		return PTR_ERR(domain);
	}
	if (iommu_map(domain, iova, pa, SZ_2M, IOMMU_READ, GFP_KERNEL))
		goto out;
	part = iommu_unmap(domain, iova + SZ_4K, SZ_4K);
	if (iommu_iova_to_phys(domain, iova + SZ_4K) != pa + SZ_4K) {
		dev_err(dev, "a 4 KiB unmap inside a 2 MiB block removed it\n");
		goto out;
	}
	whole = iommu_unmap(domain, iova, SZ_2M);
	if (part || whole != SZ_2M) {
		dev_err(dev, "unmapped %zu bytes of a block, then %zu of it\n", part, whole);
		goto out;
	}
	dev_info(dev, "a 4 KiB unmap inside a 2 MiB block unmapped 0 bytes, the block still translates\n");
	err = 0;
out:
	edu_drop_own_domain(dev, domain);
	__free_pages(block, get_order(SZ_2M));
	return err;
}

#define SG_PAGES	200
#define SG_OVER_PAGES	100

/* Maps every other page of `pages`, `n` of them, with one iommu_map_sg. */
static ssize_t edu_map_sg(struct iommu_domain *domain, unsigned long iova,
			  struct page *pages, unsigned int n)
{
	struct scatterlist *sg;
	struct sg_table sgt;
	unsigned int i;
	ssize_t mapped;

	if (sg_alloc_table(&sgt, n, GFP_KERNEL))
		return -ENOMEM;
	for_each_sg(sgt.sgl, sg, n, i)
		sg_set_page(sg, pages + 2 * i, PAGE_SIZE, 0);
	mapped = iommu_map_sg(domain, iova, sgt.sgl, n, IOMMU_READ, GFP_KERNEL);
	sg_free_table(&sgt);
	return mapped;
}

/* Step 3: scatter-gather maps, one that must map each page, one refused. */
static int edu_sg_maps(struct device *dev)
{
	const unsigned long iova = SZ_1G, over = SZ_1G + SZ_16M;
	const unsigned int order = get_order(2 * SG_PAGES * PAGE_SIZE);
	struct iommu_domain *domain;
	unsigned int i, translating = 0;
	struct page *pages;
	ssize_t mapped;
	int err = -EIO;

	pages = alloc_pages(GFP_KERNEL, order);
	if (!pages)
		return -ENOMEM;
	domain = edu_own_domain(dev);
	if (IS_ERR(domain)) {
		__free_pages(pages, order);
		return PTR_ERR(domain);
	}
	mapped = edu_map_sg(domain, iova, pages, SG_PAGES);
	for (i = 0; i < SG_PAGES; i++)
		translating += iommu_iova_to_phys(domain, iova + i * PAGE_SIZE) ==
			       page_to_phys(pages + 2 * i);
	if (mapped != SG_PAGES * PAGE_SIZE || translating != SG_PAGES) {
		dev_err(dev, "a scatter-gather map of %u pages returned %zd, %u translate\n",
			SG_PAGES, mapped, translating);
		goto out;
	}
	if (iommu_unmap(domain, iova, SG_PAGES * PAGE_SIZE) != SG_PAGES * PAGE_SIZE)
		goto out;
	dev_info(dev, "a scatter-gather map of %u discontiguous pages translates each\n",
		 SG_PAGES);

	/* A live page in the middle of the range the list maps. */
	if (iommu_map(domain, over + SG_OVER_PAGES / 2 * PAGE_SIZE, page_to_phys(pages + 1),
		      PAGE_SIZE, IOMMU_READ, GFP_KERNEL))
		goto out;
	mapped = edu_map_sg(domain, over, pages, SG_OVER_PAGES);
	translating = 0;
	for (i = 0; i < SG_OVER_PAGES; i++)
		translating += !!iommu_iova_to_phys(domain, over + i * PAGE_SIZE);
	dev_info(dev, "a scatter-gather map over a live mapping returned %zd; %u of its %u pages translate\n",
		 mapped, translating, SG_OVER_PAGES);
	/* Whatever is left, as a caller would clean up. */
	iommu_unmap(domain, over, SG_OVER_PAGES * PAGE_SIZE);
	err = 0;
out:
	edu_drop_own_domain(dev, domain);
	__free_pages(pages, order);
	return err;
}

static int edu_dma_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct iommu_domain *domain;
	void __iomem *regs;
	dma_addr_t iova;
	u64 target;
	u8 *buf, *victim;
	int err;

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	pci_set_master(pdev);
	regs = pcim_iomap(pdev, 0, 0);
	if (!regs)
		return -ENOMEM;
	err = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (err)
		return err;
	domain = iommu_get_domain_for_dev(dev);
	if (!domain) {
		dev_err(dev, "no IOMMU domain\n");
		return -ENODEV;
	}
	buf = dma_alloc_coherent(dev, PAGE_SIZE, &iova, GFP_KERNEL);
	victim = (u8 *)__get_free_page(GFP_KERNEL);
	if (!buf || !victim) {
		err = -ENOMEM;
		goto out;
	}
	memset(buf, 0, PAGE_SIZE);
	memset(victim, VICTIM_BYTE, PAGE_SIZE);

	/* 1: a DMA through the mapping lands. */
	memcpy(buf, message, sizeof(message));
	err = edu_transfer(regs, iova, EDU_BUFFER, sizeof(message), false);
	if (!err)
		err = edu_transfer(regs, EDU_BUFFER, iova + 64, sizeof(message), true);
	if (err || memcmp(buf + 64, message, sizeof(message))) {
		dev_err(dev, "a DMA through its mapping at IOVA %pad did not land (%d)\n", &iova, err);
		err = err ?: -EIO;
		goto out;
	}
	dev_info(dev, "a DMA through its mapping at IOVA %pad landed: \"%s\"\n", &iova, buf + 64);

	/* 2: no block is split. */
	err = edu_partial_unmap(dev, domain);
	if (err)
		goto out;

	/* 3: scatter-gather maps. */
	err = edu_sg_maps(dev);
	if (err)
		goto out;

	/* 4: a DMA to an IOVA nobody mapped is blocked. */
	target = virt_to_phys(victim);
	if (iommu_iova_to_phys(domain, target)) {
		dev_err(dev, "IOVA %#llx is mapped: no confinement test\n", target);
		err = -EEXIST;
		goto out;
	}
	err = edu_transfer(regs, EDU_BUFFER, target, 8, true);
	if (err) {
		dev_err(dev, "the DMA to IOVA %#llx never finished\n", target);
		goto out;
	}
	if (!all_bytes(victim, PAGE_SIZE, VICTIM_BYTE) || !all_bytes(buf + 16, 48, 0) ||
	    !all_bytes(buf + 80, PAGE_SIZE - 80, 0)) {
		dev_err(dev, "a DMA to IOVA %#llx, never mapped, changed memory\n", target);
		err = -EIO;
		goto out;
	}
	dev_info(dev, "a DMA to IOVA %#llx, never mapped, changed no byte\n", target);
	err = 0;
out:
	if (victim)
		free_page((unsigned long)victim);
	if (buf)
		dma_free_coherent(dev, PAGE_SIZE, buf, iova);
	return err;
}

static const struct pci_device_id edu_dma_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ 0 },
};
MODULE_DEVICE_TABLE(pci, edu_dma_ids);

static struct pci_driver edu_dma_driver = {
	.name = "edu_dma",
	.id_table = edu_dma_ids,
	.probe = edu_dma_probe,
};
module_pci_driver(edu_dma_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("QEMU's edu device: one DMA through the IOMMU, one it must block, no block split");

// SPDX-License-Identifier: GPL-2.0
/*
 * edu_dma - QEMU's `edu` PCI device as a DMA master behind whatever IOMMU
 * Linux drives, for the Linux scenarios of the IOMMU front doors
 * (tests/linux/scenarios/): one DMA that must land, one that must fault.
 *
 * At probe (the device is 1234:11e8; registers as QEMU's docs/specs/edu.rst
 * gives them: 0x80 DMA source, 0x88 destination, 0x90 count, 0x98 command,
 * bit 0 start/busy, bit 1 direction 1 = device to RAM; a 4 KiB buffer at
 * 0x40000 of its own address space):
 *
 *  1. a page from dma_alloc_coherent (so mapped by the IOMMU driver) is
 *     copied by DMA into the device and back into its second half, and
 *     compared: "edu_dma: DMA through the IOMMU at IOVA ...: data intact";
 *  2. in a paging domain of its own (never attached: only the IOMMU API),
 *     a 2 MiB block is mapped and a 4 KiB unmap inside it must unmap
 *     nothing and leave the block translating (the IOMMU core's contract:
 *     drivers never split a block for a partial unmap); then the whole
 *     block unmaps: "edu_dma: a 4 KiB unmap inside a 2 MiB block unmapped
 *     0 bytes, the block still translates";
 *  3. the device reads from `fault_iova`, which no one mapped: the IOMMU
 *     must block it and report the fault ("edu_dma: DMA from unmapped IOVA
 *     ... started"; the IOMMU driver's own report is what a test looks for).
 *
 * Every wait is bounded. The module stays bound (its page mapped) until the
 * device is unbound.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/pci.h>

#define EDU_DMA_SRC		0x80
#define EDU_DMA_DST		0x88
#define EDU_DMA_COUNT		0x90
#define EDU_DMA_CMD		0x98
#define EDU_CMD_START		BIT(0)
#define EDU_CMD_TO_RAM		BIT(1)
#define EDU_BUFFER		0x40000
/* A transfer takes 100 ms of the device's timer. */
#define EDU_TIMEOUT_MS		2000

static unsigned long long fault_iova = 0xdead0000;
module_param(fault_iova, ullong, 0444);
MODULE_PARM_DESC(fault_iova, "an IOVA nothing maps, which the device is made to read");

struct edu {
	void __iomem *regs;
	void *page;
	dma_addr_t iova;
};

static int edu_transfer(struct pci_dev *pdev, struct edu *edu, u64 src, u64 dst,
			u64 len, bool to_ram)
{
	unsigned int waited;

	writeq(src, edu->regs + EDU_DMA_SRC);
	writeq(dst, edu->regs + EDU_DMA_DST);
	writeq(len, edu->regs + EDU_DMA_COUNT);
	writeq(EDU_CMD_START | (to_ram ? EDU_CMD_TO_RAM : 0), edu->regs + EDU_DMA_CMD);
	for (waited = 0; waited < EDU_TIMEOUT_MS; waited += 10) {
		if (!(readq(edu->regs + EDU_DMA_CMD) & EDU_CMD_START))
			return 0;
		msleep(10);
	}
	dev_err(&pdev->dev, "DMA %#llx -> %#llx did not complete in %u ms\n", src, dst,
		EDU_TIMEOUT_MS);
	return -ETIMEDOUT;
}

/* A 4 KiB unmap inside a 2 MiB block neither splits it nor unmaps it. */
static int edu_partial_unmap(struct pci_dev *pdev)
{
	const unsigned long iova = SZ_1G;
	struct iommu_domain *domain;
	struct page *block;
	phys_addr_t pa;
	size_t part, whole;
	int err = -EIO;

	if (!(iommu_get_domain_for_dev(&pdev->dev)->pgsize_bitmap & SZ_2M)) {
		dev_err(&pdev->dev, "the IOMMU has no 2 MiB blocks\n");
		return -EIO;
	}
	block = alloc_pages(GFP_KERNEL, get_order(SZ_2M));
	if (!block)
		return -ENOMEM;
	pa = page_to_phys(block);
	domain = iommu_paging_domain_alloc(&pdev->dev);
	if (IS_ERR(domain)) {
		__free_pages(block, get_order(SZ_2M));
		return PTR_ERR(domain);
	}
	if (iommu_map(domain, iova, pa, SZ_2M, IOMMU_READ, GFP_KERNEL))
		goto out;
	part = iommu_unmap(domain, iova + SZ_4K, SZ_4K);
	if (iommu_iova_to_phys(domain, iova + SZ_4K) != pa + SZ_4K) {
		dev_err(&pdev->dev, "a 4 KiB unmap inside a 2 MiB block removed it\n");
		goto out;
	}
	whole = iommu_unmap(domain, iova, SZ_2M);
	if (part || whole != SZ_2M) {
		dev_err(&pdev->dev, "unmapped %zu bytes of a block, then %zu of it\n", part, whole);
		goto out;
	}
	dev_info(&pdev->dev, "a 4 KiB unmap inside a 2 MiB block unmapped 0 bytes, the block still translates\n");
	err = 0;
out:
	iommu_domain_free(domain);
	__free_pages(block, get_order(SZ_2M));
	return err;
}

static int edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	size_t half = PAGE_SIZE / 2;
	struct edu *edu;
	int err;

	edu = devm_kzalloc(&pdev->dev, sizeof(*edu), GFP_KERNEL);
	if (!edu)
		return -ENOMEM;
	err = pcim_enable_device(pdev);
	if (err)
		return err;
	pci_set_master(pdev);
	err = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (err)
		return err;
	edu->regs = pcim_iomap(pdev, 0, 0);
	if (!edu->regs)
		return -ENOMEM;
	edu->page = dmam_alloc_coherent(&pdev->dev, PAGE_SIZE, &edu->iova, GFP_KERNEL);
	if (!edu->page)
		return -ENOMEM;
	pci_set_drvdata(pdev, edu);

	memset(edu->page, 0, PAGE_SIZE);
	memset(edu->page, 0xa5, half);
	err = edu_transfer(pdev, edu, edu->iova, EDU_BUFFER, half, false);
	if (!err)
		err = edu_transfer(pdev, edu, EDU_BUFFER, edu->iova + half, half, true);
	if (err)
		return err;
	if (memcmp(edu->page, edu->page + half, half)) {
		dev_err(&pdev->dev, "DMA through the IOMMU at IOVA %pad: data differs\n",
			&edu->iova);
		return -EIO;
	}
	dev_info(&pdev->dev, "DMA through the IOMMU at IOVA %pad: data intact\n", &edu->iova);

	err = edu_partial_unmap(pdev);
	if (err)
		return err;

	dev_info(&pdev->dev, "DMA from unmapped IOVA %#llx started\n", fault_iova);
	return edu_transfer(pdev, edu, fault_iova, EDU_BUFFER, 8, false);
}

static const struct pci_device_id edu_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ }
};
MODULE_DEVICE_TABLE(pci, edu_ids);

static struct pci_driver edu_driver = {
	.name = "edu_dma",
	.id_table = edu_ids,
	.probe = edu_probe,
};
module_pci_driver(edu_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("QEMU's edu device: one DMA through the IOMMU, one it must block");

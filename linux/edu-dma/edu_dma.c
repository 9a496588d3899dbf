// SPDX-License-Identifier: GPL-2.0
/*
 * edu_dma - confinement of a device's DMA under the hyp's virtio-iommu, for
 * the Linux scenario tests/linux/scenarios/confine.sh.
 *
 * A PCI driver for QEMU's `edu` device (hw/misc/edu.c: a 4 KiB buffer at
 * 0x40000 in its own space, DMA registers at 0x80 source, 0x88
 * destination, 0x90 count, 0x98 command: bit 0 start, bit 1 direction,
 * 1 = from the device to memory; each transfer takes 100 ms). Binding it
 * puts the device in a DMA domain of its IOMMU. The probe then:
 *
 *   1. copies a message into the device and back into a DMA buffer through
 *      the buffer's own mapping: DMA through the IOMMU lands;
 *   2. points the device at the physical address of a page Linux never
 *      mapped for it (a page of its own, filled with 0x5a), as an IOVA: the
 *      DMA a device without an IOMMU would make into that page. The IOMMU
 *      must block it: the page keeps every byte, the DMA buffer keeps every
 *      byte outside what step 1 wrote, and the IOMMU reports a fault (the
 *      scenario finds it in Linux's log, where the virtio-iommu driver
 *      writes the fault records it reads from its event queue).
 *
 * Each step logs one line; the probe fails (and the device stays unbound)
 * if one does not hold. Every wait is bounded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/iommu.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/string.h>

#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 0x1
#define EDU_CMD_TO_RAM 0x2
/* The device's buffer, in its own address space. */
#define EDU_BUFFER 0x40000

#define VICTIM_BYTE 0x5a
static const char message[16] = "hello, confined";

/* Runs one transfer and waits (at most 2 s) for the device to finish. */
static int edu_transfer(void __iomem *regs, u64 src, u64 dst, u64 count, u64 dir)
{
	int i;

	writeq(src, regs + EDU_DMA_SRC);
	writeq(dst, regs + EDU_DMA_DST);
	writeq(count, regs + EDU_DMA_COUNT);
	writeq(EDU_CMD_START | dir, regs + EDU_DMA_CMD);
	for (i = 0; i < 200; i++) {
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

	memcpy(buf, message, sizeof(message));
	err = edu_transfer(regs, iova, EDU_BUFFER, sizeof(message), 0);
	if (!err)
		err = edu_transfer(regs, EDU_BUFFER, iova + 64, sizeof(message), EDU_CMD_TO_RAM);
	if (err || memcmp(buf + 64, message, sizeof(message))) {
		dev_err(dev, "a DMA through its mapping at IOVA %pad did not land (%d)\n", &iova, err);
		err = err ?: -EIO;
		goto out;
	}
	dev_info(dev, "a DMA through its mapping at IOVA %pad landed: \"%s\"\n", &iova, buf + 64);

	target = virt_to_phys(victim);
	if (iommu_iova_to_phys(domain, target)) {
		dev_err(dev, "IOVA %#llx is mapped: no confinement test\n", target);
		err = -EEXIST;
		goto out;
	}
	err = edu_transfer(regs, EDU_BUFFER, target, 8, EDU_CMD_TO_RAM);
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
MODULE_DESCRIPTION("DMA through and around the IOMMU with QEMU's edu device");

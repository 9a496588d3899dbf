# smmu-hyp: build, run and test the EL2 component.
#
#   make run    boot the hyp + Debian's Linux on QEMU: its NVMe and
#               virtio-blk disks read and written through the hyp's IOMMU
#   make run-el1-demo  boot the hyp + the EL1 test kernel, run its demo
#   make run-linux  boot the hyp + Debian's Linux on QEMU, run its checks
#   make test   host unit tests + QEMU integration scenarios (Linux too)
#   make bench  benchmarks
#   make debug  QEMU halted with a gdb stub on :1234, then gdb-multiarch
#
# Both `run` and `test` install what a fresh Debian 12 machine lacks (the
# aarch64-unknown-none target, llvm-tools, QEMU >= 10) and are quiet when it
# is all there.

BOARD ?= qemu-virt
include board/$(BOARD)/board.mk

# The hyp is built soft-float: EL2 never touches FP/SIMD registers, so EL1's
# survive every trap without being saved (tests/images.rs checks both images).
# The EL1 test kernel is an ordinary hard-float kernel.
HYP_TARGET := aarch64-unknown-none-softfloat
EL1_TARGET := aarch64-unknown-none
CARGO ?= cargo
HYP_ELF := target/$(HYP_TARGET)/release/smmu-hyp
EL1_ELF := target/$(EL1_TARGET)/release/el1-test-kernel
IMAGE_DIR := target/images/$(BOARD)
HYP_BIN := $(IMAGE_DIR)/smmu-hyp.bin
SELFTEST_BIN := $(IMAGE_DIR)/smmu-hyp-selftest.bin
EL1_BIN := $(IMAGE_DIR)/el1-test-kernel.bin
SYSROOT = $(shell rustc --print sysroot)
OBJCOPY = $(SYSROOT)/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy
# Extra bootargs for the hyp in `make run` and `make run-linux` (in `make
# run-el1-demo` the test kernel gets them too), e.g. `make run
# ARGS="log=debug"`.
ARGS ?=
# The EL1 kernel as a multiboot module (QEMU's guest loader, see
# src/multiboot.rs), with its command line.
el1_module = -device "guest-loader,addr=$(EL1_KERNEL_ADDR),kernel=$(1),bootargs=$(2)"
el1_ramdisk = -device "guest-loader,addr=$(EL1_RAMDISK_ADDR),initrd=$(1)"
# The EL1 test kernel checks the hyp against the board's own device tree
# (the one EL1 gets hides the SMMUs): QEMU's, passed as its ramdisk.
BOARD_DTB := $(IMAGE_DIR)/board.dtb
test_kernel = $(QEMU) $(QEMU_ARGS) -machine dumpdtb=$(BOARD_DTB) >/dev/null && \
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) $(call el1_module,$(EL1_BIN),$(1)) $(call el1_ramdisk,$(BOARD_DTB))
# Debian's Linux (tests/linux/): the scenario `make run-linux` boots.
LINUX_SCENARIO ?= boot
LINUX_ARGS = console=ttyAMA0 earlycon panic=-1 scenario=$(LINUX_SCENARIO) expect_cpus=1 expect_mem_mib=1024

export BOARD

.PHONY: all setup images run run-el1-demo run-linux linux-kit test lint unit-test qemu-test linux-test bench bench-linux debug clippy fmt clean

all: images

setup:
	@for t in $(HYP_TARGET) $(EL1_TARGET); do \
		rustup target list --installed | grep -qx $$t || rustup target add $$t; \
	done
	@rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools
	@if [ -n "$(BOARD_SETUP)" ]; then bash $(BOARD_SETUP); fi

# Two EL2 images: smmu-hyp.bin (production: `make run` and every EL1 suite)
# and smmu-hyp-selftest.bin (with the EL2 self-tests, for the `test=`
# scenarios), both soft-float. Each in a cargo invocation of its own, the
# production one last: cargo unifies features across the packages of one
# build, and $(HYP_ELF) (used by `make debug`) is the last one built. The
# ELFs are kept next to the images for tests/images.rs.
images: setup
	@mkdir -p $(IMAGE_DIR)
	$(CARGO) build --release --target $(HYP_TARGET) -p smmu-hyp --features selftest
	cp $(HYP_ELF) $(IMAGE_DIR)/smmu-hyp-selftest.elf
	$(OBJCOPY) -O binary $(HYP_ELF) $(SELFTEST_BIN)
	$(CARGO) build --release --target $(HYP_TARGET) -p smmu-hyp
	cp $(HYP_ELF) $(IMAGE_DIR)/smmu-hyp.elf
	$(OBJCOPY) -O binary $(HYP_ELF) $(HYP_BIN)
	$(CARGO) build --release --target $(EL1_TARGET) -p el1-test-kernel
	$(OBJCOPY) -O binary $(EL1_ELF) $(EL1_BIN)

# The demo: Debian's Linux under the hyp DMAs to an NVMe and a virtio-blk
# disk (64 MiB images of known content, tests/linux/disk.sh) through the
# hyp's virtio-iommu (the `dma` scenario, one CPU), then removes them; the
# hyp prints its IOMMU counters when Linux powers off. Fails unless every
# check passed. `make run ARGS=iommu=pv` takes the paravirtual front door.
DEMO_DISKS = $(foreach d,nvme vblk,-drive file=target/linux/disks/$(d)-64.img,if=none,id=$(d),format=raw,snapshot=on)
DEMO_DOOR = $(or $(patsubst iommu=%,%,$(filter iommu=%,$(ARGS))),virtio)
run: images linux-kit
	@nvme=$$(bash tests/linux/disk.sh nvme 64) && vblk=$$(bash tests/linux/disk.sh vblk 64) && \
	$(QEMU) $(QEMU_LINUX_ARGS) -kernel $(HYP_BIN) -append "$(BOARD_BOOTARGS) $(ARGS)" \
		$(call el1_module,$$(ls target/linux/pkg/boot/vmlinuz-*),console=ttyAMA0 quiet panic=-1 scenario=dma door=$(DEMO_DOOR) nvme_md5s=$$nvme vblk_md5s=$$vblk) \
		$(call el1_ramdisk,target/linux/initramfs-dma.cpio.gz) \
		$(DEMO_DISKS) -device nvme,drive=nvme,serial=n0 \
		-device virtio-blk-pci,drive=vblk,iommu_platform=on,disable-legacy=on \
		| tee $(IMAGE_DIR)/run.log
	@grep -q '^linux: [0-9]* passed, 0 failed' $(IMAGE_DIR)/run.log

# The EL1 test kernel's demo: the hypercall round trip and one DMA story
# with QEMU's edu device.
run-el1-demo: images
	$(call test_kernel,suite=demo $(ARGS)) -append "$(BOARD_BOOTARGS) $(ARGS)"

# Debian's kernel and busybox, fetched once into target/linux/pkg, the
# kernel's build tree and cross compiler for the repo's modules (linux/),
# set up once into target/linux/kbuild, and the scenarios' initramfs images.
linux-kit: setup
	@bash tests/linux/fetch.sh
	@bash tests/linux/kbuild.sh >/dev/null
	@for s in tests/linux/scenarios/*.sh; do bash tests/linux/initramfs.sh $$(basename $$s .sh); done

run-linux: images linux-kit
	$(QEMU) $(QEMU_LINUX_ARGS) -kernel $(HYP_BIN) -append "$(BOARD_BOOTARGS) $(ARGS)" \
		$(call el1_module,$$(ls target/linux/pkg/boot/vmlinuz-*),$(LINUX_ARGS)) \
		$(call el1_ramdisk,target/linux/initramfs-$(LINUX_SCENARIO).cpio.gz)

unit-test: setup
	$(CARGO) test --lib --test layering

qemu-test: images
	HYP_IMAGE_DIR=$(CURDIR)/$(IMAGE_DIR) $(CARGO) test --test images --test qemu

linux-test: images linux-kit
	HYP_IMAGE_DIR=$(CURDIR)/$(IMAGE_DIR) $(CARGO) test --test linux
	$(CARGO) test --test dtb_sweep -- --nocapture

test: lint unit-test qemu-test linux-test

# Formatting and clippy, host and target, warnings denied.
lint: setup
	$(CARGO) fmt --all -- --check
	$(MAKE) --no-print-directory clippy

# Host benchmarks (page tables vs aarch64-paging), then what unmap costs in
# SMMU commands on QEMU, then what hypercalls cost in guest instructions,
# measured from the EL1 test kernel (deterministic under -icount), and the
# same calls in wall-clock ns without -icount (what a trap costs on TCG), then
# Debian's Linux reading an NVMe disk with O_DIRECT through (a) the hyp's
# virtio-iommu, (b) Linux's own SMMUv3 driver, (c) QEMU's virtio-iommu-pci,
# (d) no IOMMU and (e) the hyp's paravirtual front door (tests/linux/bench.sh:
# MB/s and IOPS as ratios to (b), the hyp's instructions per map and unmap;
# BENCH_REPS=, BENCH_SECONDS=, BENCH_CPU= (default max,pauth=off)).
bench: images linux-kit
	$(CARGO) bench --bench pgtable
	$(call qemu_lines,BENCH_SMMU,smmu-bench|el2:)
	@$(QEMU) $(QEMU_ARGS) -machine dumpdtb=$(BOARD_DTB) >/dev/null
	$(call qemu_lines,BENCH_EL1,^bench:|^el1: ([0-9]+ passed|FAIL))
	$(call qemu_lines,BENCH_EL1_WALL,^bench:|^el1: ([0-9]+ passed|FAIL))
	@$(LINUX_BENCH)

# Only the Linux part of `make bench`: `make bench-linux BENCH_CASES="a e"`.
bench-linux: images linux-kit
	@$(LINUX_BENCH) $(BENCH_CASES)

# tests/linux/bench.sh boots the hyp as this board does.
LINUX_BENCH = QEMU="$(QEMU)" QEMU_LINUX_ARGS="$(QEMU_LINUX_ARGS)" HYP_BIN=$(HYP_BIN) \
	BOARD_BOOTARGS="$(BOARD_BOOTARGS)" EL1_KERNEL_ADDR=$(EL1_KERNEL_ADDR) \
	EL1_RAMDISK_ADDR=$(EL1_RAMDISK_ADDR) bash tests/linux/bench.sh

BENCH_SMMU = $(QEMU) $(QEMU_ARGS) -kernel $(SELFTEST_BIN) -append "$(BOARD_BOOTARGS) test=smmu-bench"
BENCH_EL1 = $(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) $(call el1_module,$(EL1_BIN),suite=bench) \
	$(call el1_ramdisk,$(BOARD_DTB)) -append "$(BOARD_BOOTARGS)"
# The board's CPU (-cpu max): the test kernel uses no pointer authentication.
BENCH_EL1_WALL = $(QEMU) $(QEMU_LINUX_ARGS) -kernel $(HYP_BIN) \
	$(call el1_module,$(EL1_BIN),suite=bench icount=none) \
	$(call el1_ramdisk,$(BOARD_DTB)) -append "$(BOARD_BOOTARGS)"

# Runs the command in the variable named $(1) and prints only the output
# lines matching the extended regex $(2), failing (with the end of the
# output) when QEMU exits non-zero: a `| grep` would hide that status, and
# /bin/sh (dash) has no pipefail.
define qemu_lines
	@out=$$($($(1))); status=$$?; \
	printf '%s\n' "$$out" | grep -E '$(2)'; \
	if [ $$status -ne 0 ]; then \
		printf '%s\n' "$$out" | tail -n 20; \
		echo "QEMU exited with status $$status"; exit $$status; \
	fi
endef

debug: images
	@echo "QEMU waits for gdb on :1234. In another shell:"
	@echo "  gdb-multiarch $(HYP_ELF) -ex 'target remote :1234'"
	$(call test_kernel,suite=demo $(ARGS)) -append "$(BOARD_BOOTARGS) $(ARGS)" -s -S

clippy: setup
	$(CARGO) clippy --lib --tests --benches -- -D warnings
	$(CARGO) clippy --release --target $(HYP_TARGET) -p smmu-hyp -- -D warnings
	$(CARGO) clippy --release --target $(HYP_TARGET) -p smmu-hyp --features selftest -- -D warnings
	$(CARGO) clippy --release --target $(EL1_TARGET) -p el1-test-kernel -p qemu-edu -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

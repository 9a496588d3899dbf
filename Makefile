# smmu-hyp: build, run and test the EL2 component.
#
#   make run    boot the hyp + EL1 test kernel on QEMU and run the demo
#   make test   host unit tests + QEMU integration scenarios
#   make bench  benchmarks
#   make debug  QEMU halted with a gdb stub on :1234, then gdb-multiarch
#
# Both `run` and `test` install what a fresh Debian 12 machine lacks (the
# aarch64-unknown-none target, llvm-tools, QEMU >= 10) and are quiet when it
# is all there.

BOARD ?= qemu-virt
include board/$(BOARD)/board.mk

TARGET := aarch64-unknown-none
CARGO ?= cargo
ELF_DIR := target/$(TARGET)/release
IMAGE_DIR := target/images/$(BOARD)
HYP_BIN := $(IMAGE_DIR)/smmu-hyp.bin
SELFTEST_BIN := $(IMAGE_DIR)/smmu-hyp-selftest.bin
EL1_BIN := $(IMAGE_DIR)/el1-test-kernel.bin
SYSROOT = $(shell rustc --print sysroot)
OBJCOPY = $(SYSROOT)/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy
# Extra bootargs for `make run`, e.g. `make run ARGS="log=debug"`.
ARGS ?=

export BOARD

.PHONY: all setup images run test lint unit-test qemu-test bench debug clippy fmt clean

all: images

setup:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools
	@if [ -n "$(BOARD_SETUP)" ]; then bash $(BOARD_SETUP); fi

# Two EL2 images: smmu-hyp.bin (production: `make run` and every EL1 suite)
# and smmu-hyp-selftest.bin (with the EL2 self-tests, for the `test=`
# scenarios). Each in a cargo invocation of its own, the production one
# last: cargo unifies features across the packages of one build, and
# $(ELF_DIR)/smmu-hyp (used by `make debug`) is the last one built. The ELFs
# are kept next to the images for tests/images.rs.
images: setup
	@mkdir -p $(IMAGE_DIR)
	$(CARGO) build --release --target $(TARGET) -p smmu-hyp --features selftest
	cp $(ELF_DIR)/smmu-hyp $(IMAGE_DIR)/smmu-hyp-selftest.elf
	$(OBJCOPY) -O binary $(ELF_DIR)/smmu-hyp $(SELFTEST_BIN)
	$(CARGO) build --release --target $(TARGET) -p smmu-hyp -p el1-test-kernel
	cp $(ELF_DIR)/smmu-hyp $(IMAGE_DIR)/smmu-hyp.elf
	$(OBJCOPY) -O binary $(ELF_DIR)/smmu-hyp $(HYP_BIN)
	$(OBJCOPY) -O binary $(ELF_DIR)/el1-test-kernel $(EL1_BIN)

run: images
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -initrd $(EL1_BIN) -append "$(BOARD_BOOTARGS) suite=demo $(ARGS)"

unit-test: setup
	$(CARGO) test --lib --test layering

qemu-test: images
	HYP_IMAGE_DIR=$(CURDIR)/$(IMAGE_DIR) $(CARGO) test --test images --test qemu

test: lint unit-test qemu-test

# Formatting and clippy, host and target, warnings denied.
lint: setup
	$(CARGO) fmt --all -- --check
	$(MAKE) --no-print-directory clippy

# Host benchmarks (page tables vs aarch64-paging), then what unmap costs in
# SMMU commands on QEMU, then what hypercalls cost in guest instructions,
# measured from the EL1 test kernel (deterministic under -icount).
bench: images
	$(CARGO) bench --bench pgtable
	$(QEMU) $(QEMU_ARGS) -kernel $(SELFTEST_BIN) -append "$(BOARD_BOOTARGS) test=smmu-bench" | grep -E 'smmu-bench|el2:' 
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -initrd $(EL1_BIN) -append "$(BOARD_BOOTARGS) suite=bench" | grep -E '^bench:|^el1: ([0-9]+ passed|FAIL)'

debug: images
	@echo "QEMU waits for gdb on :1234. In another shell:"
	@echo "  gdb-multiarch $(ELF_DIR)/smmu-hyp -ex 'target remote :1234'"
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -initrd $(EL1_BIN) -append "$(BOARD_BOOTARGS) suite=demo $(ARGS)" -s -S

clippy: setup
	$(CARGO) clippy --lib --tests --benches -- -D warnings
	$(CARGO) clippy --release --target $(TARGET) -p smmu-hyp -p el1-test-kernel -p qemu-edu -- -D warnings
	$(CARGO) clippy --release --target $(TARGET) -p smmu-hyp --features selftest -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

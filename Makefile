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

# The hyp is built soft-float: EL2 never touches FP/SIMD registers, so EL1's
# survive every trap without being saved (tests/image.rs checks the image).
# The EL1 test kernel is an ordinary hard-float kernel.
HYP_TARGET := aarch64-unknown-none-softfloat
EL1_TARGET := aarch64-unknown-none
CARGO ?= cargo
HYP_ELF := target/$(HYP_TARGET)/release/smmu-hyp
EL1_ELF := target/$(EL1_TARGET)/release/el1-test-kernel
IMAGE_DIR := target/images/$(BOARD)
HYP_BIN := $(IMAGE_DIR)/smmu-hyp.bin
EL1_BIN := $(IMAGE_DIR)/el1-test-kernel.bin
SYSROOT = $(shell rustc --print sysroot)
OBJCOPY = $(SYSROOT)/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy
# Extra bootargs for `make run`, e.g. `make run ARGS="log=debug"`.
ARGS ?=

export BOARD

.PHONY: all setup images run test lint unit-test qemu-test bench debug clippy fmt clean

all: images

setup:
	@for t in $(HYP_TARGET) $(EL1_TARGET); do \
		rustup target list --installed | grep -qx $$t || rustup target add $$t; \
	done
	@rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools
	@if [ -n "$(BOARD_SETUP)" ]; then bash $(BOARD_SETUP); fi

images: setup
	$(CARGO) build --release --target $(HYP_TARGET) -p smmu-hyp
	$(CARGO) build --release --target $(EL1_TARGET) -p el1-test-kernel
	@mkdir -p $(IMAGE_DIR)
	$(OBJCOPY) -O binary $(HYP_ELF) $(HYP_BIN)
	$(OBJCOPY) -O binary $(EL1_ELF) $(EL1_BIN)

run: images
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -initrd $(EL1_BIN) -append "$(BOARD_BOOTARGS) suite=demo $(ARGS)"

unit-test: setup
	$(CARGO) test --lib

qemu-test: images
	HYP_IMAGE_DIR=$(CURDIR)/$(IMAGE_DIR) $(CARGO) test --test qemu
	HYP_ELF=$(CURDIR)/$(HYP_ELF) $(CARGO) test --test image

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
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -append "$(BOARD_BOOTARGS) test=smmu-bench" | grep -E 'smmu-bench|el2:' 
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -initrd $(EL1_BIN) -append "$(BOARD_BOOTARGS) suite=bench" | grep -E '^bench:|^el1: ([0-9]+ passed|FAIL)'

debug: images
	@echo "QEMU waits for gdb on :1234. In another shell:"
	@echo "  gdb-multiarch $(HYP_ELF) -ex 'target remote :1234'"
	$(QEMU) $(QEMU_ARGS) -kernel $(HYP_BIN) -initrd $(EL1_BIN) -append "$(BOARD_BOOTARGS) suite=demo $(ARGS)" -s -S

clippy: setup
	$(CARGO) clippy --lib --tests --benches -- -D warnings
	$(CARGO) clippy --release --target $(HYP_TARGET) -p smmu-hyp -- -D warnings
	$(CARGO) clippy --release --target $(EL1_TARGET) -p el1-test-kernel -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

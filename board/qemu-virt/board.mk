# QEMU virt: how the Makefile runs an image on this board.
QEMU := qemu-system-aarch64
# Installs QEMU >= 10 when missing (Debian bookworm-backports).
BOARD_SETUP := board/qemu-virt/setup.sh
QEMU_ARGS := $(shell grep -v '^\#' board/qemu-virt/qemu-args)
# Bootargs every run gets: end the run through semihosting.
BOARD_BOOTARGS := semihosting
# Linux runs: no -icount (shift=10 never reaches init: RCU stalls); a
# kernel panic ends the run instead of rebooting.
QEMU_LINUX_ARGS := $(shell grep -v '^\#' board/qemu-virt/qemu-args | sed '/^-icount$$/,+1d') -no-reboot
# Where QEMU's guest loader puts the EL1 kernel and its ramdisk (RAM base +
# 256 and + 384 MiB: clear of the hyp and of the DTB at RAM base + 128 MiB;
# tests/harness uses the same).
EL1_KERNEL_ADDR := 0x50000000
EL1_RAMDISK_ADDR := 0x58000000

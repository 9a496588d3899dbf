# QEMU virt: how the Makefile runs an image on this board.
QEMU := qemu-system-aarch64
# Installs QEMU >= 10 when missing (Debian bookworm-backports).
BOARD_SETUP := board/qemu-virt/setup.sh
QEMU_ARGS := $(shell grep -v '^\#' board/qemu-virt/qemu-args)
# Bootargs every run gets: end the run through semihosting.
BOARD_BOOTARGS := semihosting

# Arm FVP Base RevC (never booted; checked against its device tree, see
# README.md): the model is not installable here. With FVP
# installed, boot the hyp as BL33 (TF-A preloaded-BL33 flow) and pass the EL1
# payload as the initrd; see README.md, "Boards".
QEMU :=
BOARD_SETUP :=
QEMU_ARGS :=
BOARD_BOOTARGS := semihosting

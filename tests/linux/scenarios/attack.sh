# Linux attacks the hyp: userspace through /dev/mem and the kernel through
# a module try to reach what the hyp keeps from EL1 (its RAM, the SMMU,
# fw_cfg, the virtio-mmio transports). Each attempt must fail in Linux
# (SIGBUS for userspace, an oops that kills only the insmod for the
# kernel) and Linux must run on; at the end the hyp still answers
# hypercalls and its SMMU still takes commands. The harness checks the
# hyp's log for each refused access and passes what Linux's own device
# tree no longer has: smmu_base=, fw_cfg_base=, virtio_mmio_base=, and
# stream= (a StreamID behind the SMMU); plus iomem=relaxed.
# repo modules: hyp-probe

probes=0

hex() { printf '%#x' $(($1)); }

# One access by the kernel: insmod of the next copy of hyp_probe with
# op= and addr= (linux/hyp-probe), in a subshell so that the oops kills
# only the insmod. Prints the kernel messages it caused; its status is
# insmod's (128 + the signal that killed it).
probe() {
  probes=$((probes + 1))
  dmesg -c >/dev/null
  (insmod "/lib/modules/$(uname -r)/extra/hyp_probe_$probes.ko.xz" "$@")
  status=$?
  # An oops makes the console verbose again: keep it quiet for the checks.
  dmesg -n 1
  dmesg
  return $status
}

# The synchronous external abort Linux reported for the last probe (the
# one the hyp injects): "Internal error: synchronous external abort: ESR".
external_abort() {
  grep -m 1 'Internal error: synchronous external abort' /tmp/probe.out | sed 's/^\[[^]]*\] //'
}

# The kernel's load or store is refused: insmod dies (Linux kills a task
# whose kernel code oopses, with SIGSEGV) of the external abort.
probe_killed() {
  probe "$@" >/tmp/probe.out
  status=$?
  abort=$(external_abort)
  echo "insmod status $status: $abort"
  [ "$status" -eq 139 ] && [ -n "$abort" ]
}

# The kernel's access completes: insmod succeeds and the module says what
# it did.
probe_completed() {
  probe "$@" >/tmp/probe.out
  status=$?
  said=$(grep 'hyp_probe_' /tmp/probe.out | tail -n 1)
  echo "${said#*] }"
  [ "$status" -eq 0 ]
}

# Control: the module reaches memory Linux owns (the first word of its own
# code), so a refused access below is the hyp's doing.
kernel_code=0x$(sed -n 's/^ *\([0-9a-f]*\)-[0-9a-f]* : Kernel code$/\1/p' /proc/iomem)
check "the probe module reads Linux's own memory" probe_completed op=read addr="$(hex "$kernel_code")"

# Control: /dev/mem reaches a device the hyp leaves to Linux (the console
# UART's UARTPeriphID0: a PL011's reads 0x11), so a SIGBUS below is the
# hyp's doing.
uart=$(dt_reg "/proc/device-tree$(tr -d '\0' </proc/device-tree/chosen/stdout-path | cut -d : -f 1)")
check "devmem reads the UART Linux owns" devmem "$(hex "${uart% *} + 0xfe0")" 32

# EL2's memory, as the hyp publishes it in Linux's device tree.
el2_ranges=""
for node in /proc/device-tree/reserved-memory/smmu-hyp@*; do
  el2_ranges="$el2_ranges $(dt_reg "$node" | tr ' ' :)"
done

for range in $el2_ranges; do
  start=$(hex "${range%:*}")
  last=$(hex "${range%:*} + ${range#*:} - 8")
  check_sigbus "userspace cannot read EL2's RAM at $start" devmem "$start" 64
  check_sigbus "userspace cannot write EL2's RAM at $start" devmem "$start" 64 0
  check "the kernel cannot read EL2's RAM at $start" probe_killed op=read addr="$start"
  check "the kernel cannot write EL2's RAM at $start" probe_killed op=write addr="$start"
  check "the kernel cannot read EL2's RAM at $last" probe_killed op=read addr="$last"
done

smmu=$(arg smmu_base)
fw_cfg=$(arg fw_cfg_base)
virtio_mmio=$(arg virtio_mmio_base)
check_sigbus "userspace cannot read SMMU_IDR0" devmem "$(hex "$smmu + 0x0")" 32
check_sigbus "userspace cannot read SMMU_CR0" devmem "$(hex "$smmu + 0x20")" 32
check_sigbus "userspace cannot write SMMU_CR0 = 0" devmem "$(hex "$smmu + 0x20")" 32 0
check_sigbus "userspace cannot read the SMMU's page 1 (EVTQ_PROD)" devmem "$(hex "$smmu + 0x100a8")" 32
check_sigbus "userspace cannot read fw_cfg's data register" devmem "$(hex "$fw_cfg")" 8
check_sigbus "userspace cannot write fw_cfg's selector" devmem "$(hex "$fw_cfg + 0x8")" 16 0
check_sigbus "userspace cannot read a virtio-mmio transport's magic" devmem "$(hex "$virtio_mmio")" 32

check "the hyp still answers hypercalls" probe_completed op=hvc
check "the hyp's SMMU still takes commands" probe_completed op=attach sid="$(arg stream)"

# Linux boots to /init under the hyp: what it sees of the machine.
# The harness passes expect_cpus= and expect_mem_mib= on the command line.
# modules: nvme

el1_on_every_cpu() {
  dmesg | grep "CPU: All CPU(s) started at EL1"
}

cpus_online() {
  n=$(grep -c '^processor' /proc/cpuinfo)
  echo "$n online"
  [ "$n" -eq "$(arg expect_cpus)" ]
}

memory_size() {
  total=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
  expected=$(($(arg expect_mem_mib) * 1024))
  echo "MemTotal $((total / 1024)) MiB of $((expected / 1024)) MiB"
  [ "$total" -gt $((expected * 3 / 4)) ] && [ "$total" -lt "$expected" ]
}

# Every /reserved-memory/smmu-hyp@* node (the hyp's memory) is no-map and
# lies inside a "reserved" range of /proc/iomem.
el2_memory_reserved() {
  found=0
  ranges=""
  for node in /proc/device-tree/reserved-memory/smmu-hyp@*; do
    [ -e "$node/no-map" ] || { echo "$node is not no-map"; return 1; }
    reg=$(dt_reg "$node") || { echo "$reg"; return 1; }
    start=${reg% *}
    end=$((start + ${reg#* } - 1))
    inside=0
    while read -r line; do
      case "$line" in
      *" : reserved")
        first=$((0x${line%%-*}))
        rest=${line#*-}
        last=$((0x${rest%% *}))
        [ "$start" -ge "$first" ] && [ "$end" -le "$last" ] && inside=1
        ;;
      esac
    done </proc/iomem
    [ $inside -eq 1 ] || { echo "$(printf '%#x' $start) not reserved in /proc/iomem"; return 1; }
    ranges="$ranges $(printf '[%#x..%#x)' $start $((end + 1)))"
    found=$((found + 1))
  done
  echo "${ranges# }"
  [ $found -gt 0 ]
}

no_smmu_for_linux() {
  if compatibles | grep -qx 'arm,smmu-v3'; then
    echo "an arm,smmu-v3 node is in the device tree"
    return 1
  fi
  if [ -n "$(ls /sys/class/iommu)" ]; then
    echo "IOMMUs registered: $(ls /sys/class/iommu)"
    return 1
  fi
  ! dmesg | grep -q 'arm-smmu-v3'
}

# QEMU's fw-cfg and virtio-mmio transports are gone; with iommu=virtio,
# the hyp's default (the harness passes the hyp's choice as hyp_iommu=),
# the one virtio-mmio node left is the hyp's virtio-iommu, whose address
# the harness compares with the hyp's log.
no_bus_master_outside_the_smmu() {
  compatibles | grep -qx 'qemu,fw-cfg-mmio' && return 1
  case $(arg hyp_iommu) in
  "" | virtio) front_door virtio ;;
  *)
    echo "no virtio-mmio node"
    ! compatibles | grep -qx 'virtio,mmio'
    ;;
  esac
}

kernel_command_line_is_its_own() {
  cat /proc/cmdline
  grep -q 'scenario=boot' /proc/cmdline && ! grep -q 'semihosting' /proc/cmdline
}

initrd_from_the_device_tree() {
  [ -e /proc/device-tree/chosen/linux,initrd-start ] && [ -e /proc/device-tree/chosen/linux,initrd-end ]
}

smccc_1_1_and_psci() {
  dmesg | grep -q 'psci: PSCIv1' && dmesg | grep 'SMC Calling Convention v1.1'
}

sve_usable() {
  grep -m 1 '^Features' /proc/cpuinfo | grep -qw sve
}

nvme_and_its_dependencies_loaded() {
  grep -q '^nvme_core ' /proc/modules && grep -q '^nvme ' /proc/modules
}

# The ITS and the redistributors are the hyp's emulation (docs/gic.md):
# flat tables (two-level ones are refused), an LPI pending table on every
# CPU, and no ITS command left unanswered (Linux logs a timeout then).
its_and_lpis_through_the_hyp() {
  dmesg | grep -E 'ITS@0x[0-9a-f]+: allocated [0-9]+ Devices .*\(flat' || return 1
  n=$(dmesg | grep -c 'using allocated LPI pending table')
  echo "LPI pending tables on $n CPU(s)"
  [ "$n" -eq "$(arg expect_cpus)" ] && ! dmesg | grep -iE "ITS.*(timeout|failed|stick)"
}

check "Linux entered EL1 on every CPU" el1_on_every_cpu
check "every CPU of the device tree is online" cpus_online
check "Linux has the RAM the hyp left it" memory_size
check "EL2's memory is reserved no-map in the device tree and in /proc/iomem" el2_memory_reserved
check "no SMMU node, driver or IOMMU in Linux" no_smmu_for_linux
check "fw-cfg and virtio-mmio (bus masters outside the SMMU) are not in the device tree, only the hyp's virtio-iommu" no_bus_master_outside_the_smmu
check "the kernel's command line is its module's, not the hyp's" kernel_command_line_is_its_own
check "the initramfs came through linux,initrd-start/end" initrd_from_the_device_tree
check "PSCI and SMCCC 1.1 are discovered through the hyp" smccc_1_1_and_psci
check "SVE is usable at EL1" sve_usable
check "modules load with their dependencies in order" nvme_and_its_dependencies_loaded
check "the ITS and LPIs work through the hyp's emulation" its_and_lpis_through_the_hyp
check_sigbus "a bus error is reported as SIGBUS and Linux runs on" sh -c 'kill -BUS $$'

# The check framework for Linux scenarios, sourced by /init before the
# scenario. A scenario is a shell file of checks (tests/linux/scenarios/):
#
#   check "what must hold" command [args...]
#       passes when the command exits 0.
#   check_sigbus "what must be refused" command [args...]
#       passes when the command dies of SIGBUS (a bus error: the access was
#       aborted) and the kernel keeps running (the next check runs).
#   arg NAME
#       prints the value of NAME=... on the kernel command line.
#   dt_reg NODE
#       prints "START SIZE" (decimal) of device-tree node NODE (a
#       /proc/device-tree path) whose reg is one entry of 2 address and 2
#       size cells; fails otherwise.
#
# Each check prints one line, `linux: ok   ...` or `linux: FAIL ...`; /init
# ends with `linux: N passed, M failed`, which the test harness reads.

passed=0
failed=0

pass() {
  passed=$((passed + 1))
  echo "linux: ok   $*"
}

fail() {
  failed=$((failed + 1))
  echo "linux: FAIL $*"
}

check() {
  what=$1
  shift
  if "$@" >/tmp/check.out 2>&1; then
    pass "$what$(detail)"
  else
    fail "$what: $(tail -n 3 /tmp/check.out | tr '\n' ' ')"
  fi
}

check_sigbus() {
  what=$1
  shift
  # A subshell, so that the signal ends it and not the caller.
  ("$@") >/tmp/check.out 2>&1
  status=$?
  # The shell reports death by signal N as 128 + N; SIGBUS is 7.
  if [ "$status" -eq 135 ]; then
    pass "$what: SIGBUS"
  else
    fail "$what: exit status $status, not SIGBUS: $(tail -n 3 /tmp/check.out | tr '\n' ' ')"
  fi
}

# What a passing check printed on its last line, as ": <line>".
detail() {
  last=$(tail -n 1 /tmp/check.out)
  [ -n "$last" ] && echo ": $last"
}

arg() {
  tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1
}

dt_reg() {
  local node=$1
  # shellcheck disable=SC2046 # one byte per word
  set -- $(od -An -v -tx1 "$node/reg")
  [ $# -eq 16 ] || { echo "$node/reg: $# bytes, expected 2+2 cells"; return 1; }
  echo $((0x$1$2$3$4$5$6$7$8)) $((0x$9${10}${11}${12}${13}${14}${15}${16}))
}

summary() {
  echo "linux: $passed passed, $failed failed"
}

# ---------------------------------------------------------------------------
# DMA through an IOMMU front door, for the scenarios that run under any of
# them (dma, confine; the hyp's iommu=virtio or iommu=pv, passed to Linux as
# door=). A disk is /dev/<name> (nvme0n1, vda); MD5S are the md5s of the
# four quarters of its first MIB MiB, colon-separated (tests/linux/disk.sh).
#
#   compatibles                  every compatible string in the device tree
#   wait_for PATH SECONDS        PATH exists within SECONDS (polled)
#   repo_module NAME [ARGS]      insmod of the repo's module NAME (.ko.xz)
#   front_door DOOR              the device tree has DOOR's IOMMU node (virtio:
#                                the hyp's virtio,mmio node; pv: its
#                                smmu-hyp,pv-iommu node, whose driver is then
#                                loaded and must probe) and no SMMU
#   iommu_driver DOOR            the Linux driver of DOOR's IOMMU
#   pci_iommu_in_dma_group PCI DRIVER
#                                the function's IOMMU group has a DMA domain
#                                and its IOMMU is a device bound to DRIVER
#   disk_pci DISK                the disk's PCI function, e.g. 0000:00:02.0
#   disk_in_dma_group DISK DRIVER
#                                pci_iommu_in_dma_group of the disk's function
#   disk_reads_md5s DISK MIB MD5S
#                                O_DIRECT reads of each quarter match MD5S
#   disks_read_at_once MIB DISK MD5S [DISK MD5S]...
#                                every quarter of every disk read at once
#                                matches its MD5S
#   disks_rotate_write_read_back MIB DISK MD5S [DISK MD5S]...
#                                on every disk at once, quarters 1, 2, 3, 0
#                                written over 0, 1, 2, 3 with O_DIRECT (all
#                                MIB MiB) read back as its MD5S rotated
#   msix_count PCI               interrupts its MSI-X vectors took
#   disk_msix_rises DISK         an O_DIRECT read raises its MSI-X counts
#   pv_stat NAME                 counter NAME of pv_iommu's debugfs stats
#   hyp_stats                    "DOMAINS STREAMS BYTES_MAPPED PAGE_REFS" of
#                                the hyp's IOMMU (the hyp-probe module)
#   unbound_leave_only_doorbells PCI...
#                                unbound from their drivers, the functions
#                                leave no page referenced, only the MSI
#                                doorbell mapped in each default domain
#   removed_leave_nothing PCI... removed, no domain, stream or mapping is
#                                left in the hyp

compatibles() {
  # The trailing slash: /proc/device-tree is a symbolic link, which find
  # does not follow otherwise (it would list nothing).
  find /proc/device-tree/ -name compatible | while read -r f; do
    tr '\0' '\n' <"$f"
  done
}

wait_for() {
  local waited=0
  while [ ! -e "$1" ]; do
    [ $waited -ge $(($2 * 10)) ] && { echo "no $1 after $2 s"; return 1; }
    sleep 0.1
    waited=$((waited + 1))
  done
}

repo_module() {
  local name=$1
  shift
  insmod "/lib/modules/$(uname -r)/extra/$name.ko.xz" "$@"
}

front_door() {
  local nodes
  compatibles | grep -qx 'arm,smmu-v3' && { echo "an arm,smmu-v3 node is in the device tree"; return 1; }
  case $1 in
  virtio)
    # QEMU's own virtio-mmio transports are hidden: the one node left is
    # the hyp's device, an IOMMU.
    nodes=$(find /proc/device-tree/ -name compatible | while read -r f; do
      tr '\0' '\n' <"$f" | grep -qx 'virtio,mmio' && dirname "$f"
    done)
    [ "$(echo "$nodes" | wc -l)" -eq 1 ] && [ -e "$nodes/#iommu-cells" ] ||
      { echo "virtio-mmio nodes: $nodes"; return 1; }
    printf 'the virtio-iommu at %#x\n' "$(dt_reg "$nodes" | cut -d ' ' -f 1)"
    ;;
  pv)
    compatibles | grep -qx 'smmu-hyp,pv-iommu' || { echo "no smmu-hyp,pv-iommu node"; return 1; }
    # Its probe makes HYP_ABI_VERSION, HYP_FEATURES and HYP_SMMU_INFO and
    # registers an IOMMU.
    repo_module pv_iommu || return 1
    [ -e /sys/class/iommu/pv-iommu-0 ] || { echo "no IOMMU registered"; return 1; }
    dmesg | grep -o 'pv-iommu-0: smmu0 through hypercalls.*'
    ;;
  *)
    echo "no front door $1"
    return 1
    ;;
  esac
}

iommu_driver() {
  case $1 in
  virtio) echo virtio_iommu ;;
  pv) echo pv-iommu ;;
  esac
}

pci_iommu_in_dma_group() {
  local group type iommu driver
  group=$(readlink -f "/sys/bus/pci/devices/$1/iommu_group")
  type=$(cat "$group/type")
  iommu=$(readlink -f "/sys/bus/pci/devices/$1/iommu")
  driver=$(basename "$(readlink -f "$iommu/device/driver")")
  echo "$1: group $(basename "$group") type $type, IOMMU $(basename "$iommu") bound to $driver"
  [ "$type" = DMA ] && [ "$driver" = "$2" ]
}

disk_pci() {
  local path
  # /sys/devices/.../0000:00:03.0/virtio1/block/vda; an NVMe namespace with
  # multipath is under /sys/devices/virtual/nvme-subsystem/nvme-subsysN/,
  # whose controller nvmeM links to .../0000:00:02.0/nvme/nvmeM.
  for path in "/sys/block/$1" "/sys/block/$1"/device/nvme[0-9]*; do
    readlink -f "$path"
  done | tr / '\n' | grep -E '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$' | tail -n 1 | grep .
}

disk_in_dma_group() {
  local pci
  pci=$(disk_pci "$1") || return 1
  pci_iommu_in_dma_group "$pci" "$2"
}

# The md5 of quarter Q (0-3) of DISK's first MIB MiB, read with O_DIRECT.
quarter_md5() {
  local quarter=$(($2 / 4))
  dd if="/dev/$1" bs=1M skip=$(($3 * quarter)) count=$quarter iflag=direct 2>/dev/null |
    md5sum | cut -d ' ' -f 1
}

# Field Q + 1 of the colon-separated MD5S.
nth_md5() {
  echo "$1" | cut -d : -f $(($2 + 1))
}

disk_reads_md5s() {
  local q got bad=0
  for q in 0 1 2 3; do
    got=$(quarter_md5 "$1" "$2" $q)
    [ "$got" = "$(nth_md5 "$3" $q)" ] || { echo "quarter $q: md5 $got"; bad=1; }
  done
  echo "4 x $(($2 / 4)) MiB, md5s as the image's"
  [ $bad -eq 0 ]
}

disks_read_at_once() {
  local mib=$1 pairs q bad=0
  shift
  pairs="$*"
  # shellcheck disable=SC2086 # DISK MD5S pairs
  set -- $pairs
  while [ $# -ge 2 ]; do
    for q in 0 1 2 3; do
      quarter_md5 "$1" "$mib" $q >"/tmp/$1.$q.md5" &
    done
    shift 2
  done
  wait
  # shellcheck disable=SC2086
  set -- $pairs
  while [ $# -ge 2 ]; do
    for q in 0 1 2 3; do
      [ "$(cat "/tmp/$1.$q.md5")" = "$(nth_md5 "$2" $q)" ] ||
        { echo "$1 quarter $q differs when read concurrently"; bad=1; }
    done
    shift 2
  done
  echo "$(($(echo "$pairs" | wc -w) * 2)) readers at once on $(grep -c '^processor' /proc/cpuinfo) CPU(s)"
  [ $bad -eq 0 ]
}

# Writes quarters 1, 2, 3, 0 of DISK's first MIB MiB over 0, 1, 2, 3 with
# O_DIRECT: quarter 0 aside, then 1-3 over 0-2 in one pass (the reader
# stays a quarter ahead of the writer, so it never reads what was
# written), then 0 over 3.
rotate_quarters() {
  local disk=$1 mib=$2 quarter=$(($2 / 4))
  dd if="/dev/$disk" of="/tmp/$disk.quarter0" bs=1M count=$quarter iflag=direct 2>/dev/null &&
    dd if="/dev/$disk" bs=1M skip=$quarter count=$((mib - quarter)) iflag=direct 2>/dev/null |
    dd of="/dev/$disk" bs=1M iflag=fullblock oflag=direct 2>/dev/null &&
    dd if="/tmp/$disk.quarter0" of="/dev/$disk" bs=1M seek=$((mib - quarter)) oflag=direct 2>/dev/null
  local status=$?
  rm -f "/tmp/$disk.quarter0"
  return $status
}

disks_rotate_write_read_back() {
  local mib=$1 pairs q got bad=0
  shift
  pairs="$*"
  # shellcheck disable=SC2086 # DISK MD5S pairs
  set -- $pairs
  while [ $# -ge 2 ]; do
    { rotate_quarters "$1" "$mib" || echo "$1: write failed" >"/tmp/$1.failed"; } &
    shift 2
  done
  wait
  # shellcheck disable=SC2086
  set -- $pairs
  while [ $# -ge 2 ]; do
    [ -e "/tmp/$1.failed" ] && { cat "/tmp/$1.failed"; bad=1; }
    for q in 0 1 2 3; do
      got=$(quarter_md5 "$1" "$mib" $q)
      [ "$got" = "$(nth_md5 "$2" $(((q + 1) % 4)))" ] || { echo "$1 quarter $q: md5 $got"; bad=1; }
    done
    shift 2
  done
  echo "wrote $mib MiB on $(($(echo "$pairs" | wc -w) / 2)) disk(s) at once, read back quarters 1, 2, 3, 0 of the image"
  [ $bad -eq 0 ]
}

msix_count() {
  grep "ITS-PCI-MSIX-$1 " /proc/interrupts |
    awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }'
}

disk_msix_rises() {
  local pci before after
  pci=$(disk_pci "$1") || return 1
  before=$(msix_count "$pci")
  dd if="/dev/$1" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null
  after=$(msix_count "$pci")
  echo "$pci MSI-X interrupts $before -> $after"
  [ "$after" -gt "$before" ]
}

pv_stat() {
  local stats=/sys/kernel/debug/pv_iommu/pv-iommu-0/stats
  [ -e "$stats" ] || mount -t debugfs none /sys/kernel/debug
  awk -v name="$1" '$1 == name { print $2 }' "$stats"
}

hyp_stats() {
  local n=1 line
  # The first copy of hyp_probe not loaded (each stays loaded after it ran).
  while grep -q "^hyp_probe_$n " /proc/modules; do n=$((n + 1)); done
  repo_module "hyp_probe_$n" op=stats 2>/dev/null || return 1
  line=$(dmesg | grep "hyp_probe_$n: hyp stats:" | tail -n 1)
  echo "$line" | sed 's/.*hyp stats: \([0-9]*\) domains, \([0-9]*\) streams, \([0-9]*\) bytes mapped, \([0-9]*\) page references/\1 \2 \3 \4/'
}

stats_line() {
  echo "$1 domains, $2 streams, $3 bytes mapped, $4 DMA page references"
}

# Each default domain keeps the ITS doorbell page mapped for MSIs (one
# 4 KiB MMIO page: the hyp maps it for the virtio-iommu, Linux for pv).
unbound_leave_only_doorbells() {
  local pci
  for pci in "$@"; do
    echo "$pci" >"/sys/bus/pci/devices/$pci/driver/unbind" || return 1
  done
  # shellcheck disable=SC2046 # four numbers
  set -- $(hyp_stats) || return 1
  stats_line "$@"
  [ "$4" -eq 0 ] && [ "$3" -le $(($1 * 4096)) ] && [ "$1" -gt 0 ]
}

removed_leave_nothing() {
  local pci
  for pci in "$@"; do
    echo 1 >"/sys/bus/pci/devices/$pci/remove" || return 1
  done
  # shellcheck disable=SC2046 # four numbers
  set -- $(hyp_stats) || return 1
  stats_line "$@"
  [ "$*" = "0 0 0 0" ]
}

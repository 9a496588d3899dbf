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
# DMA through an IOMMU front door, shared by the scenarios of each
# (tests/linux/scenarios/pv-iommu.sh): a disk is /dev/<name> (nvme0n1, vda),
# MD5S are the md5s of the four quarters of its first MIB MiB, colon-separated.
#
#   wait_for PATH SECONDS        PATH exists within SECONDS (polled)
#   repo_module NAME [ARGS]      insmod of the repo's module NAME (.ko.xz)
#   disk_pci DISK                the disk's PCI function, e.g. 0000:00:02.0
#   disk_in_dma_group DISK DRIVER
#                                its IOMMU group has a DMA domain and its IOMMU
#                                is a device bound to DRIVER
#   disk_reads_md5s DISK MIB MD5S
#                                O_DIRECT reads of each quarter match MD5S
#   concurrent_quarter_reads MIB MD5S DISK...
#                                every quarter of every disk read at once
#                                matches MD5S
#   disk_rotate_write_read_back DISK MIB MD5S
#                                quarters 1, 2, 3, 0 written over 0, 1, 2, 3
#                                with O_DIRECT (all MIB MiB, every byte
#                                changed) read back as MD5S rotated
#   msix_count PCI               interrupts its MSI-X vectors took
#   disk_msix_rises DISK         an O_DIRECT read raises its MSI-X counts
#   hyp_stats                    "DOMAINS STREAMS BYTES_MAPPED PAGE_REFS" of
#                                the hyp's IOMMU (the hyp-probe module)

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

disk_pci() {
  local path
  # /sys/devices/.../0000:00:03.0/virtio0/block/vda; an NVMe namespace with
  # multipath is under /sys/devices/virtual/nvme-subsystem/nvme-subsysN/,
  # whose controller nvmeM links to .../0000:00:02.0/nvme/nvmeM.
  for path in "/sys/block/$1" "/sys/block/$1"/device/nvme[0-9]*; do
    readlink -f "$path"
  done | tr / '\n' | grep -E '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$' | tail -n 1 | grep .
}

disk_in_dma_group() {
  local pci group type iommu driver
  pci=$(disk_pci "$1") || return 1
  group=$(readlink -f "/sys/bus/pci/devices/$pci/iommu_group")
  type=$(cat "$group/type")
  iommu=$(readlink -f "/sys/bus/pci/devices/$pci/iommu")
  driver=$(basename "$(readlink -f "$iommu/device/driver")")
  echo "$pci: group $(basename "$group") type $type, IOMMU $(basename "$iommu") bound to $driver"
  [ "$type" = DMA ] && [ "$driver" = "$2" ]
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

concurrent_quarter_reads() {
  local mib=$1 md5s=$2 disk q bad=0
  shift 2
  for disk in "$@"; do
    for q in 0 1 2 3; do
      quarter_md5 "$disk" "$mib" $q >"/tmp/$disk.$q.md5" &
    done
  done
  wait
  for disk in "$@"; do
    for q in 0 1 2 3; do
      [ "$(cat "/tmp/$disk.$q.md5")" = "$(nth_md5 "$md5s" $q)" ] ||
        { echo "$disk quarter $q differs when read concurrently"; bad=1; }
    done
  done
  echo "$(($# * 4)) concurrent readers of $*"
  [ $bad -eq 0 ]
}

disk_rotate_write_read_back() {
  local disk=$1 mib=$2 md5s=$3 quarter=$(($2 / 4)) q bad=0 got
  # Quarter 0 aside; 1-3 over 0-2 in one pass (the reader stays a quarter
  # ahead of the writer, so it never reads what was written); 0 over 3.
  dd if="/dev/$disk" of=/tmp/quarter0.bin bs=1M count=$quarter iflag=direct 2>/dev/null &&
    dd if="/dev/$disk" bs=1M skip=$quarter count=$((mib - quarter)) iflag=direct 2>/dev/null |
    dd of="/dev/$disk" bs=1M iflag=fullblock oflag=direct 2>/dev/null &&
    dd if=/tmp/quarter0.bin of="/dev/$disk" bs=1M seek=$((mib - quarter)) oflag=direct 2>/dev/null ||
    { echo "write failed"; return 1; }
  rm -f /tmp/quarter0.bin
  for q in 0 1 2 3; do
    got=$(quarter_md5 "$disk" "$mib" $q)
    [ "$got" = "$(nth_md5 "$md5s" $(((q + 1) % 4)))" ] || { echo "quarter $q: md5 $got"; bad=1; }
  done
  echo "wrote $mib MiB, read back quarters 1, 2, 3, 0 of the image"
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

hyp_stats() {
  local n=1 line
  # The first copy of hyp_probe not loaded (each stays loaded after it ran).
  while grep -q "^hyp_probe_$n " /proc/modules; do n=$((n + 1)); done
  repo_module "hyp_probe_$n" op=stats 2>/dev/null || return 1
  line=$(dmesg | grep "hyp_probe_$n: hyp stats:" | tail -n 1)
  echo "$line" | sed 's/.*hyp stats: \([0-9]*\) domains, \([0-9]*\) streams, \([0-9]*\) bytes mapped, \([0-9]*\) page references/\1 \2 \3 \4/'
}

# Debian's Linux DMAs through the hyp's stage-2 tables: an NVMe disk and a
# virtio-blk disk (iommu_platform=on) behind the SMMU sit in DMA domains of
# the virtio-iommu device the hyp emulates (docs/virtio-iommu.md). On each,
# the first 64 MiB read with O_DIRECT must be the content the test wrote
# into its disk image (checksums nvme_md5=, vblk_md5= on the command line);
# then each disk gets the other's 64 MiB written with O_DIRECT, which must
# read back the same; MSI-X interrupts are counted. With concurrent=1 both
# disks do their I/O at once. At the end both devices are removed: Linux
# detaches their endpoints, and the hyp's counters at power-off (the
# harness reads them) must show nothing mapped and no page referenced.
# modules: virtio_mmio virtio_iommu nvme virtio_blk

MIB=64

# The sysfs directory of the PCI function with vendor $1, device $2.
pci_function() {
  for f in /sys/bus/pci/devices/*; do
    [ "$(cat "$f/vendor")" = "$1" ] && [ "$(cat "$f/device")" = "$2" ] && { echo "$f"; return 0; }
  done
  return 1
}
nvme=$(pci_function 0x1b36 0x0010)
vblk=$(pci_function 0x1af4 0x1042)

# Waits (at most 10 s) for the block devices: probing is asynchronous.
disks_appear() {
  i=0
  while [ ! -b /dev/nvme0n1 ] || [ ! -b /dev/vda ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { ls /sys/block; return 1; }
    sleep 0.1
  done
  echo "/dev/nvme0n1 ($(basename "$nvme")), /dev/vda ($(basename "$vblk"))"
}

# The platform device of the IOMMU in front of PCI function $1 (its
# "iommu" link leads to <platform device>/virtio<N>/iommu/<name>).
iommu_of() {
  link=$(readlink -f "$1/iommu") || return 1
  echo "${link%%/virtio[0-9]*}"
}

# Both functions: default domain of type DMA, and the IOMMU is the
# virtio-mmio node the hyp put in the device tree.
in_dma_domains_of_the_hyps_virtio_iommu() {
  for f in "$nvme" "$vblk"; do
    type=$(cat "$f/iommu_group/type")
    iommu=$(iommu_of "$f")
    compatible=$(tr -d '\0' <"$iommu/of_node/compatible")
    [ "$type" = DMA ] || { echo "$f: group type $type"; return 1; }
    [ "$compatible" = virtio,mmio ] || { echo "$f: IOMMU $iommu is $compatible"; return 1; }
    [ -e "$iommu/of_node/#iommu-cells" ] || { echo "$iommu has no #iommu-cells"; return 1; }
  done
  echo "groups $(basename "$(readlink "$nvme/iommu_group")") and $(basename "$(readlink "$vblk/iommu_group")") of type DMA, IOMMU ${iommu##*/}"
}

# Interrupts function $1's MSI-X vectors took so far (every CPU).
msix() {
  awk -v f="ITS-PCI-MSIX-$(basename "$1")" '
    { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n[$0] += $i }
    index($0, f) { total += n[$0] }
    END { print total + 0 }' /proc/interrupts
}

md5_of() {
  sum=$(md5sum "$@")
  echo "${sum%% *}"
}

# Reads 64 MiB of /dev/$1 with O_DIRECT into /tmp/$1.data and its
# checksum into /tmp/$1.read.
read_disk() {
  dd if="/dev/$1" of="/tmp/$1.data" bs=1M count=$MIB iflag=direct 2>/dev/null
  md5_of "/tmp/$1.data" >"/tmp/$1.read"
}

# Writes /tmp/$2.data (the other disk's content) to /dev/$1 with O_DIRECT
# and reads it back: the checksum of what came back in /tmp/$1.back.
write_disk() {
  dd if="/tmp/$2.data" of="/dev/$1" bs=1M oflag=direct conv=fsync 2>/dev/null
  dd if="/dev/$1" bs=1M count=$MIB iflag=direct 2>/dev/null | md5_of >"/tmp/$1.back"
}

# $1 (a file) holds $2.
holds() {
  echo "$(cat "$1")"
  [ "$(cat "$1")" = "$2" ]
}

rising() {
  echo "$1 -> $2"
  [ "$2" -gt "$1" ]
}

removed() {
  for f in "$nvme" "$vblk"; do
    echo 1 >"$f/remove"
  done
  [ ! -e "$nvme" ] && [ ! -e "$vblk" ] && [ ! -b /dev/nvme0n1 ] && [ ! -b /dev/vda ]
}

no_iommu_trouble() {
  ! dmesg | grep -iE 'fault from EP|virtio_iommu.*(error|fail|could not)|(nvme|blk).*(timeout|error)'
}

check "the NVMe and virtio-blk disks appear" disks_appear
check "both disks are in DMA domains of the hyp's virtio-iommu" in_dma_domains_of_the_hyps_virtio_iommu
nvme_irqs=$(msix "$nvme")
vblk_irqs=$(msix "$vblk")
start=$(cut -d ' ' -f 1 /proc/uptime)
if [ "$(arg concurrent)" = 1 ]; then
  read_disk nvme0n1 &
  read_disk vda &
  wait
  write_disk nvme0n1 vda &
  write_disk vda nvme0n1 &
  wait
else
  read_disk nvme0n1
  read_disk vda
  write_disk nvme0n1 vda
  write_disk vda nvme0n1
fi
rm /tmp/nvme0n1.data /tmp/vda.data
echo "linux: disk I/O from uptime $start s to $(cut -d ' ' -f 1 /proc/uptime) s"
check "NVMe: the first 64 MiB read with O_DIRECT is what the test wrote" holds /tmp/nvme0n1.read "$(arg nvme_md5)"
check "NVMe: the virtio-blk disk's 64 MiB written with O_DIRECT read back the same" holds /tmp/nvme0n1.back "$(arg vblk_md5)"
check "virtio-blk: the first 64 MiB read with O_DIRECT is what the test wrote" holds /tmp/vda.read "$(arg vblk_md5)"
check "virtio-blk: the NVMe disk's 64 MiB written with O_DIRECT read back the same" holds /tmp/vda.back "$(arg nvme_md5)"
check "NVMe's MSI-X interrupt counts rose" rising "$nvme_irqs" "$(msix "$nvme")"
check "virtio-blk's MSI-X interrupt counts rose" rising "$vblk_irqs" "$(msix "$vblk")"
check "no IOMMU fault, error or timeout in Linux's log" no_iommu_trouble
check "both devices are removed (Linux detaches their endpoints)" removed

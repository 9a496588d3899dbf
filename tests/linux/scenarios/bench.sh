# The IOMMU front doors compared (tests/linux/bench.sh, `make bench`):
# O_DIRECT reads of an NVMe disk, one request at a time, through whichever
# IOMMU this boot has (the hyp's paravirtual one, Linux's own arm-smmu-v3,
# a virtio-iommu, or none). The bench script passes seconds= (per
# measurement) and, when it runs QEMU with -icount shift=0 (one guest
# instruction per nanosecond of the 1 GHz counter), trace=1: then the
# IOMMU driver's map and unmap functions are timed with Linux's
# function_graph tracer instead, which under -icount counts instructions.
# A RAM disk (brd, 16 MiB) read the same way is the reference without DMA:
# what the rest of the machine (the hyp's traps and stage 2, QEMU) costs
# the same system calls. Lines the script reads start with "bench: ".
# modules: nvme virtio-iommu brd
# repo modules: pv-iommu
# repo programs: dio-bench

disk=nvme0n1
seconds=$(arg seconds)

if find /proc/device-tree/ -name compatible -exec cat {} + | tr '\0' '\n' | grep -qx 'smmu-hyp,pv-iommu'; then
  repo_module pv_iommu
fi
wait_for "/dev/$disk" 10 || echo "bench: FAIL no /dev/$disk"
mount -t debugfs none /sys/kernel/debug
mount -t tracefs none /sys/kernel/tracing
pci=$(disk_pci "$disk")
iommu=$(basename "$(readlink -f "/sys/bus/pci/devices/$pci/iommu/device/driver" 2>/dev/null)")
echo "bench: iommu ${iommu:-none}, group type $(cat "/sys/bus/pci/devices/$pci/iommu_group/type" 2>/dev/null || echo none)"

# The map and unmap functions of each IOMMU driver: a map is map_pages
# then iotlb_sync_map where the driver has one (virtio-iommu sends its
# requests there), an unmap is unmap_pages then iotlb_sync (Linux's DMA
# layer calls both).
case "$iommu" in
pv-iommu) prefix=pv ;;
arm-smmu-v3) prefix=arm_smmu ;;
virtio_iommu) prefix=viommu ;;
*) prefix= ;;
esac

# Average duration (ns) of each traced function, from function_graph's
# " 0)   1.620 us    |  pv_map_pages [pv_iommu]();" lines.
traced_averages() {
  awk '/ us +\| +[a-z_0-9]+.*\(\);$/ {
         for (i = 1; i <= NF; i++) if ($i == "us") d = $(i - 1);
         f = $0; sub(/.*\| +/, "", f); sub(/[ (].*/, "", f); n[f]++; t[f] += d * 1000 }
       END { for (f in n) printf "bench: traced %s %d calls, %d ns each\n", f, n[f], t[f] / n[f] }'
}

if [ "$(arg trace)" = 1 ] && [ -n "$prefix" ]; then
  t=/sys/kernel/tracing
  for f in map_pages iotlb_sync_map unmap_pages iotlb_sync; do
    echo "${prefix}_$f" >>$t/set_ftrace_filter 2>/dev/null || true
  done
  echo function_graph >$t/current_tracer
  echo 16384 >$t/buffer_size_kb
  dio-bench "/dev/$disk" rand4k "$seconds" 64 | sed 's/^/bench: /'
  echo 0 >$t/tracing_on
  traced_averages <$t/trace
  echo nop >$t/current_tracer
else
  dio-bench "/dev/$disk" rand4k "$seconds" 64 | sed 's/^/bench: /'
  dio-bench "/dev/$disk" seq1m "$seconds" 64 | sed 's/^/bench: /'
  dio-bench /dev/ram0 rand4k "$seconds" 16 | sed 's/^/bench: /'
fi
for stats in /sys/kernel/debug/pv_iommu/*/stats; do
  [ -e "$stats" ] && sed 's/^/bench: pv /' "$stats"
done

// SPDX-License-Identifier: GPL-2.0
/*
 * dio-bench - O_DIRECT read throughput of a block device, one request at a
 * time (each a DMA map and unmap through Linux's IOMMU driver).
 *
 *   dio-bench DEVICE rand4k|seq1m SECONDS SPAN_MIB
 *
 * rand4k: 4 KiB reads at pseudo-random 4 KiB-aligned offsets in the first
 * SPAN_MIB of DEVICE; seq1m: 1 MiB reads one after the other, wrapping at
 * SPAN_MIB. Runs for SECONDS of CLOCK_MONOTONIC and prints
 *   dio-bench: DEVICE MODE: N reads in T us: I IOPS, M MB/s
 * (MB = 10^6 bytes).
 */
#include "sys.h"

#define MAX_BLOCK (1 << 20)

static unsigned char buffer[MAX_BLOCK] __attribute__((aligned(4096)));

int main(int argc, char **argv)
{
	u64 seconds, span, block, start, elapsed, reads = 0, offset = 0, state = 1;
	char line[200], *p;
	int random;
	long fd;

	if (argc != 5) {
		put("usage: dio-bench DEVICE rand4k|seq1m SECONDS SPAN_MIB\n");
		return 2;
	}
	random = argv[2][0] == 'r';
	block = random ? 4096 : MAX_BLOCK;
	seconds = parse_u64(argv[3]);
	span = parse_u64(argv[4]) << 20;
	fd = syscall3(SYS_openat, AT_FDCWD, argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0 || span < block) {
		put("dio-bench: FAIL cannot open the device with O_DIRECT\n");
		return 1;
	}
	start = now_ns();
	do {
		if (random)
			offset = (next_random(&state) % (span / block)) * block;
		if (syscall6(SYS_pread64, fd, (long)buffer, (long)block, (long)offset, 0, 0) !=
		    (long)block) {
			put("dio-bench: FAIL a read came back short\n");
			return 1;
		}
		reads++;
		if (!random)
			offset = (offset + block) % span;
		elapsed = now_ns() - start;
	} while (elapsed < seconds * 1000000000ull);

	p = fmt_str(line, "dio-bench: ");
	p = fmt_str(p, argv[1]);
	p = fmt_str(p, " ");
	p = fmt_str(p, argv[2]);
	p = fmt_str(p, ": ");
	p = fmt_u64(p, reads, 0);
	p = fmt_str(p, " reads in ");
	p = fmt_u64(p, elapsed / 1000, 0);
	p = fmt_str(p, " us: ");
	p = fmt_u64(p, reads * 1000000000ull / elapsed, 0);
	p = fmt_str(p, " IOPS, ");
	p = fmt_u64(p, reads * block * 1000ull / elapsed, 0);
	fmt_str(p, " MB/s\n");
	put(line);
	return 0;
}

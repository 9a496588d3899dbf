// SPDX-License-Identifier: GPL-2.0
/*
 * simd-check - a user task whose FP/SIMD registers are live across I/O that
 * makes the kernel call the hyp (an IOMMU map and unmap per request), and
 * which checks that they come back intact.
 *
 *   simd-check DEVICE SECONDS SPAN_MIB
 *
 * Each round, in one asm block so that nothing else runs in between: V0-V31,
 * FPCR and FPSR are loaded with values that change every round, an O_DIRECT
 * pread64 of 4 KiB at a pseudo-random offset in the first SPAN_MIB of DEVICE
 * is made with `svc`, and the registers are stored again. The kernel must
 * hand them back as they were (the syscall ABI keeps V0-V31's low 128 bits,
 * FPCR and FPSR): a difference means something on the way (Linux, or the hyp
 * its IOMMU driver called) lost them. Rounds go on for SECONDS.
 *
 * Prints "simd-check: DEVICE: N rounds, V0-V31, FPCR and FPSR intact" and
 * exits 0, or names the first register that differed and exits 1.
 */
#include "sys.h"

#define BLOCK 4096

static unsigned char buffer[BLOCK] __attribute__((aligned(BLOCK)));
static u64 want[64], got[64];

/* FPCR: AHP, DN, FZ and round towards minus infinity; FPSR: QC and the
 * cumulative flags. Both ways from their reset values of zero. */
#define FPCR_SET ((1ull << 26) | (1ull << 25) | (1ull << 24) | (2ull << 22))
#define FPSR_SET ((1ull << 27) | 0x9full)

static void fail(const char *what, int index, u64 seen, u64 expected)
{
	char line[160], *p = line;

	p = fmt_str(p, "simd-check: FAIL ");
	p = fmt_str(p, what);
	if (index >= 0)
		p = fmt_u64(p, index, 0);
	p = fmt_str(p, ": ");
	p = fmt_u64(p, seen, 1);
	p = fmt_str(p, " instead of ");
	p = fmt_u64(p, expected, 1);
	fmt_str(p, "\n");
	put(line);
	sys_exit(1);
}

int main(int argc, char **argv)
{
	u64 seconds, span, deadline, rounds = 0, state;
	char line[160], *p;
	long fd;

	if (argc != 4) {
		put("usage: simd-check DEVICE SECONDS SPAN_MIB\n");
		return 2;
	}
	seconds = parse_u64(argv[2]);
	span = parse_u64(argv[3]) << 20;
	fd = syscall3(SYS_openat, AT_FDCWD, argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0 || span < BLOCK) {
		put("simd-check: FAIL cannot open the device with O_DIRECT\n");
		return 1;
	}
	state = now_ns() | 1;
	deadline = now_ns() + seconds * 1000000000ull;
	do {
		u64 offset = (next_random(&state) % (span / BLOCK)) * BLOCK;
		u64 fpcr_got, fpsr_got;
		int i;

		for (i = 0; i < 64; i++)
			want[i] = next_random(&state);
		{
			register long x8 __asm__("x8") = SYS_pread64;
			register long x0 __asm__("x0") = fd;
			register long x1 __asm__("x1") = (long)buffer;
			register long x2 __asm__("x2") = BLOCK;
			register long x3 __asm__("x3") = (long)offset;
			u64 *w = want, *g = got;

			__asm__ volatile(
				"ld1 {v0.2d-v3.2d}, [%[w]], #64\n"
				"ld1 {v4.2d-v7.2d}, [%[w]], #64\n"
				"ld1 {v8.2d-v11.2d}, [%[w]], #64\n"
				"ld1 {v12.2d-v15.2d}, [%[w]], #64\n"
				"ld1 {v16.2d-v19.2d}, [%[w]], #64\n"
				"ld1 {v20.2d-v23.2d}, [%[w]], #64\n"
				"ld1 {v24.2d-v27.2d}, [%[w]], #64\n"
				"ld1 {v28.2d-v31.2d}, [%[w]], #64\n"
				"msr fpcr, %[fpcr]\n"
				"msr fpsr, %[fpsr]\n"
				"svc #0\n"
				"mrs %[fpcr_got], fpcr\n"
				"mrs %[fpsr_got], fpsr\n"
				"st1 {v0.2d-v3.2d}, [%[g]], #64\n"
				"st1 {v4.2d-v7.2d}, [%[g]], #64\n"
				"st1 {v8.2d-v11.2d}, [%[g]], #64\n"
				"st1 {v12.2d-v15.2d}, [%[g]], #64\n"
				"st1 {v16.2d-v19.2d}, [%[g]], #64\n"
				"st1 {v20.2d-v23.2d}, [%[g]], #64\n"
				"st1 {v24.2d-v27.2d}, [%[g]], #64\n"
				"st1 {v28.2d-v31.2d}, [%[g]], #64\n"
				"msr fpcr, xzr\n"
				"msr fpsr, xzr\n"
				: "+r"(x0), [w] "+r"(w), [g] "+r"(g), [fpcr_got] "=&r"(fpcr_got),
				  [fpsr_got] "=&r"(fpsr_got)
				: "r"(x8), "r"(x1), "r"(x2), "r"(x3),
				  [fpcr] "r"(FPCR_SET), [fpsr] "r"(FPSR_SET)
				: "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8",
				  "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17",
				  "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26",
				  "v27", "v28", "v29", "v30", "v31");
			if (x0 != BLOCK)
				fail("pread64 returned ", -1, (u64)x0, BLOCK);
		}
		for (i = 0; i < 64; i++)
			if (got[i] != want[i])
				fail(i % 2 ? "high half of V" : "low half of V", i / 2, got[i],
				     want[i]);
		if (fpcr_got != FPCR_SET)
			fail("FPCR", -1, fpcr_got, FPCR_SET);
		if (fpsr_got != FPSR_SET)
			fail("FPSR", -1, fpsr_got, FPSR_SET);
		rounds++;
	} while (now_ns() < deadline);

	p = fmt_str(line, "simd-check: ");
	p = fmt_str(p, argv[1]);
	p = fmt_str(p, ": ");
	p = fmt_u64(p, rounds, 0);
	fmt_str(p, " rounds, V0-V31, FPCR and FPSR intact\n");
	put(line);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * iobench - O_DIRECT read throughput of a block device, for `make bench`
 * (tests/linux/iobench.sh). A static arm64 program without a C library
 * (Linux system calls made directly), so only the kit's cross compiler is
 * needed:
 *
 *   iobench seq  DEVICE MIB        reads the first MIB MiB in 1 MiB reads
 *   iobench rand DEVICE MIB COUNT  COUNT 4 KiB reads at pseudo-random
 *                                  4 KiB-aligned offsets in the first MIB MiB
 *   iobench sys  FILE COUNT        COUNT 4 KiB reads of FILE (/dev/zero:
 *                                  system calls only, no device, no DMA)
 *
 * and prints one line:
 *
 *   iobench: seq <bytes> bytes in <ns> ns: <MB/s> MB/s
 *   iobench: rand <count> reads in <ns> ns: <IOPS> IOPS
 *   iobench: sys <count> reads in <ns> ns: <calls/s> calls/s
 *
 * Time is CLOCK_MONOTONIC around the reads only. The offsets of `rand`
 * come from a fixed xorshift seed, so every run reads the same blocks.
 */

typedef unsigned long u64;
typedef long s64;

#define SYS_openat 56
#define SYS_close 57
#define SYS_write 64
#define SYS_pread64 67
#define SYS_exit 93
#define SYS_clock_gettime 113
#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_DIRECT 0200000 /* arm64 */
#define CLOCK_MONOTONIC 1

static s64 syscall4(s64 n, s64 a, s64 b, s64 c, s64 d)
{
	register s64 x8 __asm__("x8") = n;
	register s64 x0 __asm__("x0") = a;
	register s64 x1 __asm__("x1") = b;
	register s64 x2 __asm__("x2") = c;
	register s64 x3 __asm__("x3") = d;

	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
	return x0;
}

struct timespec {
	s64 sec;
	s64 nsec;
};

static u64 now_ns(void)
{
	struct timespec t;

	syscall4(SYS_clock_gettime, CLOCK_MONOTONIC, (s64)&t, 0, 0);
	return (u64)t.sec * 1000000000ul + (u64)t.nsec;
}

static u64 len(const char *s)
{
	u64 n = 0;

	while (s[n])
		n++;
	return n;
}

static void out(const char *s)
{
	syscall4(SYS_write, 1, (s64)s, (s64)len(s), 0);
}

static void out_u64(u64 v)
{
	char b[24];
	int i = 23;

	b[i] = 0;
	do {
		b[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	out(b + i);
}

static __attribute__((noreturn)) void quit(int status)
{
	syscall4(SYS_exit, status, 0, 0, 0);
	__builtin_unreachable();
}

static __attribute__((noreturn)) void fail(const char *what)
{
	out("iobench: ");
	out(what);
	out("\n");
	quit(1);
}

static u64 number(const char *s)
{
	u64 v = 0;

	if (!*s)
		fail("bad number");
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			fail("bad number");
		v = v * 10 + (u64)(*s - '0');
	}
	return v;
}

static int same(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

#define MIB (1ul << 20)
#define BLOCK 4096ul
/* The read buffer: O_DIRECT wants it aligned to the logical block. */
static unsigned char buffer[MIB] __attribute__((aligned(4096)));

static void read_at(s64 fd, u64 bytes, u64 offset)
{
	if (syscall4(SYS_pread64, fd, (s64)buffer, (s64)bytes, (s64)offset) != (s64)bytes)
		fail("short or failed read");
}

static void run(int argc, char **argv)
{
	u64 mib, start, ns, i;
	s64 fd;

	if (argc < 4)
		fail("usage: iobench seq DEVICE MIB | iobench rand DEVICE MIB COUNT | iobench sys FILE COUNT");
	mib = number(argv[3]);
	if (same(argv[1], "sys")) {
		fd = syscall4(SYS_openat, AT_FDCWD, (s64)argv[2], O_RDONLY, 0);
		if (fd < 0)
			fail("cannot open the file");
		start = now_ns();
		for (i = 0; i < mib; i++)
			read_at(fd, BLOCK, 0);
		ns = now_ns() - start;
		out("iobench: sys ");
		out_u64(mib);
		out(" reads in ");
		out_u64(ns);
		out(" ns: ");
		out_u64(mib * 1000000000ul / (ns ? ns : 1));
		out(" calls/s\n");
		syscall4(SYS_close, fd, 0, 0, 0);
		return;
	}
	fd = syscall4(SYS_openat, AT_FDCWD, (s64)argv[2], O_RDONLY | O_DIRECT, 0);
	if (fd < 0)
		fail("cannot open the device with O_DIRECT");
	if (same(argv[1], "seq")) {
		start = now_ns();
		for (i = 0; i < mib; i++)
			read_at(fd, MIB, i * MIB);
		ns = now_ns() - start;
		out("iobench: seq ");
		out_u64(mib * MIB);
		out(" bytes in ");
		out_u64(ns);
		out(" ns: ");
		out_u64(mib * MIB * 1000 / (ns ? ns : 1));
		out(" MB/s\n");
	} else if (same(argv[1], "rand") && argc == 5) {
		u64 count = number(argv[4]), blocks = mib * MIB / BLOCK, x = 0x9e3779b97f4a7c15ul;

		if (!blocks)
			fail("no blocks");
		start = now_ns();
		for (i = 0; i < count; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			read_at(fd, BLOCK, (x % blocks) * BLOCK);
		}
		ns = now_ns() - start;
		out("iobench: rand ");
		out_u64(count);
		out(" reads in ");
		out_u64(ns);
		out(" ns: ");
		out_u64(count * 1000000000ul / (ns ? ns : 1));
		out(" IOPS\n");
	} else {
		fail("usage: iobench seq DEVICE MIB | iobench rand DEVICE MIB COUNT | iobench sys FILE COUNT");
	}
	syscall4(SYS_close, fd, 0, 0, 0);
}

/* The entry point: the kernel leaves argc at [sp], then argv. */
__asm__(".global _start\n"
	"_start:\n"
	"	ldr x0, [sp]\n"
	"	add x1, sp, #8\n"
	"	bl main_from_start\n");

__attribute__((noreturn, used)) void main_from_start(int argc, char **argv)
{
	run(argc, argv);
	quit(0);
}

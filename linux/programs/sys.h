/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sys.h - what the repo's freestanding test programs for Linux need: raw
 * aarch64 Linux system calls and a few string helpers (sys.c has the entry
 * point and what the compiler may call).
 * No C library, so that the programs build with the cross compiler alone
 * (tests/linux/program.sh) and nothing but the program itself touches the
 * FP/SIMD registers.
 */
#ifndef SYS_H
#define SYS_H

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long long u64;
typedef unsigned int u32;

/* asm-generic/unistd.h numbers (arm64). */
#define SYS_openat 56
#define SYS_close 57
#define SYS_write 64
#define SYS_pread64 67
#define SYS_exit_group 94
#define SYS_clock_gettime 113
#define SYS_getpid 172

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_RDWR 2
#define O_DIRECT 0200000 /* arm64's value */
#define CLOCK_MONOTONIC 1

static inline long syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory", "cc");
	return x0;
}

#define syscall3(n, a, b, c) syscall6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static inline size_t str_len(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static inline void put(const char *s)
{
	syscall3(SYS_write, 1, s, str_len(s));
}

/* Appends the decimal (or 0x-hex) form of `v` to `out`; returns the end. */
static inline char *fmt_u64(char *out, u64 v, int hex)
{
	char digits[24];
	int n = 0;

	if (hex) {
		*out++ = '0';
		*out++ = 'x';
	}
	do {
		u64 d = hex ? v % 16 : v % 10;

		digits[n++] = d < 10 ? '0' + d : 'a' + d - 10;
		v = hex ? v / 16 : v / 10;
	} while (v);
	while (n)
		*out++ = digits[--n];
	*out = 0;
	return out;
}

static inline char *fmt_str(char *out, const char *s)
{
	while (*s)
		*out++ = *s++;
	*out = 0;
	return out;
}

/* Decimal or 0x-hex; 0 for anything else. */
static inline u64 parse_u64(const char *s)
{
	u64 v = 0;
	int hex = s[0] == '0' && s[1] == 'x';

	for (s += hex ? 2 : 0; *s; s++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' :
			hex && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;

		if (d < 0)
			return 0;
		v = v * (hex ? 16 : 10) + d;
	}
	return v;
}

static inline u64 now_ns(void)
{
	struct { long sec, nsec; } ts;

	syscall3(SYS_clock_gettime, CLOCK_MONOTONIC, &ts, 0);
	return (u64)ts.sec * 1000000000ull + (u64)ts.nsec;
}

/* xorshift64*: reproducible pseudo-random numbers. */
static inline u64 next_random(u64 *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

static inline __attribute__((noreturn)) void sys_exit(int status)
{
	syscall3(SYS_exit_group, status, 0, 0);
	__builtin_unreachable();
}

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int main(int argc, char **argv);

#endif

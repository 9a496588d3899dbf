// SPDX-License-Identifier: GPL-2.0
/*
 * sys.c - the entry point of the repo's freestanding test programs and the
 * two functions a compiler may call on its own (built with
 * -fno-tree-loop-distribute-patterns, so these loops stay loops).
 */
#include "sys.h"

/* Linux enters with sp -> argc, argv[], NULL, envp[]. */
__asm__(".text\n.global _start\n_start:\n"
	"  ldr x0, [sp]\n"
	"  add x1, sp, #8\n"
	"  bl main\n"
	"  mov x8, #94\n" /* exit_group(main's value) */
	"  svc #0\n");

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

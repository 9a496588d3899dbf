/*
 * EL1 entry: an arm64 Image header, self-relocation, BSS, stack, vectors.
 * The MMU is off: data accesses are Device, so only aligned accesses.
 */
.section .text.head, "ax"
.global _start
_start:
    b       entry
    .long   0
    .quad   0                   /* text_offset */
    .quad   __image_size
    .quad   0xa                 /* LE, 4 KiB pages, anywhere in RAM */
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0

.text
entry:
    mov     x19, x0                 /* DTB */

    /* FP/SIMD on: compiled Rust uses it. */
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb

    /* Apply R_AARCH64_RELATIVE relocations for the load address. */
    adr     x9, _start
    adrp    x10, __rela_start
    add     x10, x10, :lo12:__rela_start
    adrp    x11, __rela_end
    add     x11, x11, :lo12:__rela_end
1:  cmp     x10, x11
    b.hs    2f
    ldp     x12, x13, [x10]         /* r_offset, r_info */
    ldr     x14, [x10, #16]         /* r_addend */
    add     x10, x10, #24
    cmp     w13, #1027              /* R_AARCH64_RELATIVE */
    b.ne    halt
    add     x14, x14, x9
    str     x14, [x9, x12]
    b       1b
2:
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, el1_vectors
    add     x1, x1, :lo12:el1_vectors
    msr     vbar_el1, x1
    isb

    mov     x0, x19
    bl      {main}
halt:
    wfe
    b       halt

/* Secondary CPUs, started through PSCI CPU_ON with x0 = CPU index. */
.global el1_secondary_entry
el1_secondary_entry:
    mov     x19, x0
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    cmp     x19, #16                /* suites::smp::MAX_CPUS */
    b.hs    halt
    adrp    x1, __secondary_stacks
    add     x1, x1, :lo12:__secondary_stacks
    add     x2, x19, #1
    add     x1, x1, x2, lsl #14
    mov     sp, x1
    adrp    x1, el1_vectors
    add     x1, x1, :lo12:el1_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      {secondary}
    b       halt

/*
 * Probes: instructions in section .text.probes (between __probes_start and
 * __probes_end, see linker.ld) may fault on purpose (an access the hyp
 * refuses, an undefined instruction). The synchronous vector resumes after
 * such an instruction with x0 = FAR_EL1 and x1 = ESR_EL1 (never 0 for an
 * exception); the probes set x1 = 0 before they try. Only x0..x3 are used,
 * which every probe treats as scratch.
 */
.section .text.probes, "ax"
.global probe_read64, probe_write64, probe_undefined_impdef, probe_hvc1, probe_brk
.global probe_read32, probe_read32_signed, probe_read8, probe_write32, probe_write8
.global probe_read_pair
probe_read64:               /* x0 = address -> x0 = value or FAR, x1 = 0 or ESR */
    mov     x1, xzr
    mov     x2, x0
    ldr     x0, [x2]
    ret
probe_read32:               /* ldr w: the top half of x0 ends up zero */
    mov     x1, xzr
    mov     x2, x0
    mov     x0, #-1
    ldr     w0, [x2]
    ret
probe_read32_signed:        /* ldrsw: sign-extended to 64 bits */
    mov     x1, xzr
    mov     x2, x0
    ldrsw   x0, [x2]
    ret
probe_read8:
    mov     x1, xzr
    mov     x2, x0
    mov     x0, #-1
    ldrb    w0, [x2]
    ret
probe_read_pair:            /* ldp: no instruction syndrome for a stage-2 abort */
    mov     x1, xzr
    mov     x2, x0
    ldp     x0, x3, [x2]
    ret
probe_write64:              /* x0 = address, x1 = value -> x0 = FAR, x1 = 0 or ESR */
    mov     x2, x0
    mov     x3, x1
    mov     x1, xzr
    mov     x0, xzr
    str     x3, [x2]
    ret
probe_write32:
    mov     x2, x0
    mov     x3, x1
    mov     x1, xzr
    mov     x0, xzr
    str     w3, [x2]
    ret
probe_write8:
    mov     x2, x0
    mov     x3, x1
    mov     x1, xzr
    mov     x0, xzr
    strb    w3, [x2]
    ret
probe_undefined_impdef:     /* an IMPLEMENTATION DEFINED system register */
    mov     x1, xzr
    mrs     x0, s3_0_c15_c0_0
    ret
probe_hvc1:                 /* hvc with a non-zero immediate -> x0 */
    mov     x1, xzr
    hvc     #1
    ret
probe_brk:                  /* brk: EL1's own debug exception */
    mov     x1, xzr
    brk     #0x123
    ret

.text

/* Any other exception at EL1 is unexpected: report and end the run. */
.macro vector
    .balign 0x80
    mrs     x0, esr_el1
    mrs     x1, elr_el1
    mrs     x2, far_el1
    b       {exception}
.endm

.balign 0x800
el1_vectors:
    .rept 4
    vector
    .endr
    /* Current EL with SP_EL1, synchronous: a probe may resume. */
    .balign 0x80
    mrs     x2, elr_el1
    adrp    x3, __probes_start
    add     x3, x3, :lo12:__probes_start
    cmp     x2, x3
    b.lo    1f
    adrp    x3, __probes_end
    add     x3, x3, :lo12:__probes_end
    cmp     x2, x3
    b.hs    1f
    add     x2, x2, #4
    msr     elr_el1, x2
    mrs     x1, esr_el1
    mrs     x0, far_el1
    eret
1:  mrs     x0, esr_el1
    mrs     x1, elr_el1
    mrs     x2, far_el1
    b       {exception}
    .rept 11
    vector
    .endr

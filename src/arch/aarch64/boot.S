/*
 * EL2 entry: an arm64 Image header, then the primary CPU's first
 * instructions. Runs with the MMU and caches off.
 */

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry       /* code0 */
    .long   0                   /* code1 */
    .quad   0                   /* text_offset: loaders add 2 MiB (QEMU) */
    .quad   __image_size        /* image_size, BSS and stacks included */
    .quad   0x2                 /* flags: little-endian, 4 KiB pages, base near DRAM start */
    .quad   0, 0, 0             /* res2..res4 */
    .ascii  "ARM\x64"           /* magic */
    .long   0                   /* res5 */

.section .text.boot, "ax"
primary_entry:
    mov     x19, x0                     /* DTB physical address */

    /* This image is built for EL2 only. */
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    park

    /* The image is not relocatable: it must run where it was linked. */
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    park

    /* Vectors first, so even an early fault is reported. */
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1

    /* Do not trap FP/SIMD at EL2: compiled Rust may use it (TFP = 0). */
    ldr     x1, ={CPTR_EL2_VALUE}
    msr     cptr_el2, x1
    isb

    /*
     * Zero BSS. The MMU is off, so memory is Device: aligned stores only,
     * no DC ZVA.
     */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    /* CPU 0's stack: the top of the first slot above its guard page. */
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    ldr     x2, ={STACK_SLOT_SIZE}
    add     sp, x1, x2

    mov     x0, x19
    bl      {rust_main}
park:
    wfe
    b       park

/*
 * Secondary CPUs: firmware starts them here at EL2 (the hyp intercepts the
 * EL1 kernel's PSCI CPU_ON) with x0 = the CPU's index in the hyp's table.
 */
.global secondary_entry
secondary_entry:
    mov     x19, x0
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    park
    cmp     x19, #{MAX_CPUS}
    b.hs    park
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1
    ldr     x1, ={CPTR_EL2_VALUE}
    msr     cptr_el2, x1
    isb
    /* This CPU's stack: the top of slot x19. */
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    ldr     x2, ={STACK_SLOT_SIZE}
    madd    x1, x19, x2, x1
    add     sp, x1, x2
    mov     x0, x19
    bl      {secondary_main}
    b       park

/*
 * The EL2 vector table. Every entry saves the interrupted context into a
 * TrapFrame on the current stack and calls {handler} (whose symbol the image,
 * main.rs, supplies) with the frame and the entry's index in the table; the
 * handler may edit the frame (x0..x3 for hypercall results, ELR to skip an
 * instruction) before the context is restored.
 */

.macro vector kind
    .balign 0x80
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       exception_common
.endm

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
    vector 0    /* current EL, SP_EL0: synchronous */
    vector 1    /* current EL, SP_EL0: IRQ */
    vector 2    /* current EL, SP_EL0: FIQ */
    vector 3    /* current EL, SP_EL0: SError */
    vector 4    /* current EL, SP_ELx: synchronous */
    vector 5    /* current EL, SP_ELx: IRQ */
    vector 6    /* current EL, SP_ELx: FIQ */
    vector 7    /* current EL, SP_ELx: SError */
    vector 8    /* lower EL, AArch64: synchronous */
    vector 9    /* lower EL, AArch64: IRQ */
    vector 10   /* lower EL, AArch64: FIQ */
    vector 11   /* lower EL, AArch64: SError */
    vector 12   /* lower EL, AArch32: synchronous */
    vector 13   /* lower EL, AArch32: IRQ */
    vector 14   /* lower EL, AArch32: FIQ */
    vector 15   /* lower EL, AArch32: SError */

exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el2
    mrs     x2, spsr_el2
    stp     x30, x1, [sp, #240]
    str     x2, [sp, #256]

    mov     x1, x0
    mov     x0, sp
    bl      {handler}

    ldp     x30, x1, [sp, #240]
    ldr     x2, [sp, #256]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{FRAME_SIZE}
    eret

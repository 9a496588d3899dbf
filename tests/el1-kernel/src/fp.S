/*
 * fp_trap_preserves(mode, regs, dump): fills V0-V31 from fp_pattern and
 * FPCR/FPSR with patterns, traps to EL2 with x0..x7 = regs[0..8], and dumps
 * V0-V31, FPCR and FPSR right after the trap, with no compiled code in
 * between that could touch them. mode 0: hvc #0; 1: smc #0; 2: a load from
 * regs[0] (a stage-2 fault or an emulated MMIO register). regs[0..4] get
 * x0..x3 back. d8-d15 and FPCR are restored (AAPCS64).
 *
 * dump layout: v[32][16] bytes, then fpcr and fpsr as written (read back
 * before the trap), then fpcr and fpsr after the trap.
 *
 * In .text.probes: a load that faults resumes after itself (entry.S).
 */
.section .text.probes, "ax"
.global fp_trap_preserves
fp_trap_preserves:
    stp     x29, x30, [sp, #-112]!
    mov     x29, sp
    stp     x19, x20, [sp, #16]
    stp     d8, d9, [sp, #32]
    stp     d10, d11, [sp, #48]
    stp     d12, d13, [sp, #64]
    stp     d14, d15, [sp, #80]
    mrs     x10, fpcr
    mrs     x11, fpsr
    stp     x10, x11, [sp, #96]
    mov     x19, x1
    mov     x20, x2
    mov     x9, x0

    adrp    x11, fp_pattern
    add     x11, x11, :lo12:fp_pattern
    ld1     {v0.16b-v3.16b}, [x11], #64
    ld1     {v4.16b-v7.16b}, [x11], #64
    ld1     {v8.16b-v11.16b}, [x11], #64
    ld1     {v12.16b-v15.16b}, [x11], #64
    ld1     {v16.16b-v19.16b}, [x11], #64
    ld1     {v20.16b-v23.16b}, [x11], #64
    ld1     {v24.16b-v27.16b}, [x11], #64
    ld1     {v28.16b-v31.16b}, [x11], #64
    /* FPCR: round towards zero, flush-to-zero, default NaN, AHP. */
    mov     x12, #0x07c00000
    msr     fpcr, x12
    /* FPSR: every cumulative exception flag and QC. */
    mov     x12, #0x9f
    movk    x12, #0x0800, lsl #16
    msr     fpsr, x12
    mrs     x12, fpcr
    mrs     x13, fpsr
    add     x14, x20, #512
    stp     x12, x13, [x14]

    ldp     x0, x1, [x19]
    ldp     x2, x3, [x19, #16]
    ldp     x4, x5, [x19, #32]
    ldp     x6, x7, [x19, #48]
    cbz     x9, 1f
    cmp     x9, #1
    b.eq    2f
    mov     x1, xzr
    ldr     x0, [x0]
    b       3f
1:  hvc     #0
    b       3f
2:  smc     #0
3:  stp     x0, x1, [x19]
    stp     x2, x3, [x19, #16]
    mov     x14, x20
    st1     {v0.16b-v3.16b}, [x14], #64
    st1     {v4.16b-v7.16b}, [x14], #64
    st1     {v8.16b-v11.16b}, [x14], #64
    st1     {v12.16b-v15.16b}, [x14], #64
    st1     {v16.16b-v19.16b}, [x14], #64
    st1     {v20.16b-v23.16b}, [x14], #64
    st1     {v24.16b-v27.16b}, [x14], #64
    st1     {v28.16b-v31.16b}, [x14], #64
    mrs     x12, fpcr
    mrs     x13, fpsr
    stp     x12, x13, [x14, #16]

    ldp     x10, x11, [sp, #96]
    msr     fpcr, x10
    msr     fpsr, x11
    ldp     d14, d15, [sp, #80]
    ldp     d12, d13, [sp, #64]
    ldp     d10, d11, [sp, #48]
    ldp     d8, d9, [sp, #32]
    ldp     x19, x20, [sp, #16]
    ldp     x29, x30, [sp], #112
    ret

.section .rodata
.global fp_pattern
.balign 16
fp_pattern:
    .set i, 0
    .rept 512
    .byte (i * 37 + 11) & 0xff
    .set i, i + 1
    .endr

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

    /* HCR_EL2 and SCTLR_EL2 before anything relies on their layout. */
    bl      el2_init_controls
    mov     x20, x1                     /* 1: E2H stuck at 1, reported from Rust */

    /* The image is not relocatable: it must run where it was linked. */
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    park

    /* Vectors first, so even an early fault is reported. */
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1

    /*
     * Do not trap FP/SIMD at EL2: compiled Rust may use it (TFP = 0).
     * CPTR_EL2 has this layout only with E2H = 0.
     */
    cbnz    x20, 1f
    ldr     x1, ={CPTR_EL2_VALUE}
    msr     cptr_el2, x1
    isb
1:
    /*
     * BSS and the boot stack are NOLOAD: the loader cleaned the image
     * file to the point of coherency (booting.rst), not them. With the
     * MMU off the stores below are Non-cacheable and go to memory, but
     * the data caches may still hold lines for these addresses from
     * whoever used the memory before, dirty ones included: such a line is
     * neither looked up nor written back by a Non-cacheable access, and
     * may be evicted at any later time, overwriting what was stored (Arm
     * ARM DDI 0487, "The effects of disabling a stage of address
     * translation" and "Mismatched memory attributes"). So clean and
     * invalidate the range to the point of coherency before the first
     * store, as Linux's head.S does for init_pg_dir. Clean as well as
     * invalidate: the first line may hold the end of .data, and a stale
     * line written back now is overwritten below. mmu::enable invalidates
     * the image again before the MMU goes on, for lines allocated since.
     */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __image_end
    add     x2, x2, :lo12:__image_end
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             /* DminLine: log2(words) */
    mov     x4, #4
    lsl     x4, x4, x3                  /* the smallest data cache line */
    sub     x3, x4, #1
    bic     x3, x1, x3
2:  dc      civac, x3
    add     x3, x3, x4
    cmp     x3, x2
    b.lo    2b
    dsb     sy

    /*
     * Zero BSS. The MMU is off, so memory is Device: aligned stores only,
     * no DC ZVA.
     */
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    /* The boot stack, at the top of its slot above the guard page. */
    adrp    x1, __boot_stack_end
    add     sp, x1, :lo12:__boot_stack_end

    mov     x0, x19
    mov     x1, x20
    bl      {rust_main}
park:
    wfe
    b       park

/*
 * Sets HCR_EL2 and SCTLR_EL2, whatever firmware left there. HCR_EL2.E2H
 * may be set or, after a reset, UNKNOWN; it changes the layout of
 * CPTR_EL2, TCR_EL2 and the whole EL2 translation regime, which the hyp
 * uses with E2H = 0 only. SCTLR_EL2 may hold EE (big-endian data), A
 * (alignment faults) or WXN: the hyp's value has the MMU and data cache
 * off and the instruction cache on, which booting.rst allows at entry.
 * Returns x1 = 1 if E2H cannot be cleared: a CPU that implements EL2
 * only with E2H = 1 (ID_AA64MMFR4_EL1.E2H0 negative, or E2H reading as
 * one regardless, which Linux's init_el2_hcr detects the same way: with
 * E2H = 1, FAR_EL1 accessed at EL2 is FAR_EL2). Else x1 = 0. Clobbers x1.
 */
el2_init_controls:
    /* Immediates, not literal loads: a load before SCTLR_EL2 is written
     * could be big-endian. Both values fit in 32 bits. */
    movz    x1, #(({HCR_EL2_BOOT} >> 16) & 0xffff), lsl #16
    movk    x1, #({HCR_EL2_BOOT} & 0xffff)
    msr     hcr_el2, x1
    movz    x1, #(({SCTLR_EL2_BOOT} >> 16) & 0xffff), lsl #16
    movk    x1, #({SCTLR_EL2_BOOT} & 0xffff)
    msr     sctlr_el2, x1
    isb
    mrs     x1, S3_0_C0_C7_4            /* ID_AA64MMFR4_EL1 */
    sbfx    x1, x1, #24, #4             /* E2H0, signed */
    tbnz    x1, #63, 1f
    mov     x1, #1
    msr     far_el1, x1
    isb
    mov     x1, #2
    msr     far_el2, x1
    isb
    mrs     x1, far_el1
    cmp     x1, #2
    cset    x1, eq
    ret
1:  mov     x1, #1
    ret

/*
 * Secondary CPUs, and any CPU woken from a power-down CPU_SUSPEND: firmware
 * starts them here at EL2 (the hyp intercepts the EL1 kernel's PSCI CPU_ON
 * and CPU_SUSPEND) with x0 = the CPU's index in the hyp's table, MMU and
 * data cache off.
 *
 * With the MMU off every data access is Device-nGnRnE, non-cacheable (Arm
 * ARM, "The effects of disabling a stage of address translation"): a load
 * reads main memory, not a line the boot CPU holds dirty, and a store
 * bypasses the caches that later cacheable reads would hit. So this code
 * reads only the boot data the boot CPU cleaned to the point of coherency
 * (smp::boot_data), turns the MMU on with it, and only then touches a
 * stack, as Linux's secondary_startup does.
 */
.global secondary_entry
secondary_entry:
    mov     x19, x0
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    park
    /* Before the first load: SCTLR_EL2.EE may be set. The boot CPU
     * checked that E2H can be cleared on its CPU type. */
    bl      el2_init_controls
    cbnz    x1, park
    adrp    x20, {boot_data}
    add     x20, x20, :lo12:{boot_data}
    ldr     x1, [x20, #{BOOT_DATA_CPUS}]
    cmp     x19, x1
    b.hs    park
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1
    ldr     x1, ={CPTR_EL2_VALUE}
    msr     cptr_el2, x1

    /* The boot CPU's translation regime (mmu::registers). */
    ldr     x1, [x20, #{BOOT_DATA_MAIR}]
    msr     mair_el2, x1
    ldr     x1, [x20, #{BOOT_DATA_TCR}]
    msr     tcr_el2, x1
    ldr     x1, [x20, #{BOOT_DATA_TTBR0}]
    msr     ttbr0_el2, x1
    ldr     x21, [x20, #{BOOT_DATA_SCTLR}]
    ldr     x22, [x20, #{BOOT_DATA_STACKS}]
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x21
    isb
    /* Discard instructions fetched with the MMU off. */
    ic      iallu
    dsb     nsh
    isb

    /* This CPU's stack: the top of slot x19 of the pool's stacks. */
    ldr     x2, ={STACK_SLOT_SIZE}
    add     x1, x19, #1
    madd    x1, x1, x2, x22
    mov     sp, x1
    mov     x0, x19
    bl      {secondary_main}
    b       park

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
    /* The boot stack, at the top of its slot above the guard page. */
    adrp    x1, __boot_stack_end
    add     sp, x1, :lo12:__boot_stack_end

    mov     x0, x19
    bl      {rust_main}
park:
    wfe
    b       park

/*
 * Secondary CPUs: firmware starts them here at EL2 (the hyp intercepts the
 * EL1 kernel's PSCI CPU_ON) with x0 = the CPU's index in the hyp's table,
 * MMU and data cache off.
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

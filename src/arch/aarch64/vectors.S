/*
 * The EL2 vector table. Every entry saves the interrupted context into a
 * TrapFrame and calls {handler} (whose symbol the image, main.rs, supplies)
 * with the frame and the entry's index in the table; the handler may edit
 * the frame (x0..x3 for hypercall results, ELR to skip an instruction)
 * before the context is restored.
 *
 * An exception from a lower EL finds EL2's stack empty (every entry to EL1
 * restarts it), so its frame goes straight onto it: the hypercall path.
 *
 * An exception taken from EL2 itself may be a stack overflow: its SP may be
 * in (or next to) the unmapped guard page below a stack, where saving the
 * frame would fault again, forever. EL2's stacks are slots of a guard page
 * and a stack (src/stacks.rs): the boot stack in the image (linker/hyp.ld),
 * and one slot per CPU at the end of the page pool (layout::CpuStacks),
 * found through the boot data record (smp::boot_data) the boot CPU writes
 * before EL1 runs. So before it stores anything the entry checks, with
 * registers and loads of that record only, how much stack is left; with
 * less than {EXCEPTION_STACK_MIN} bytes of the slot below SP (the guard
 * page and room for the report), it moves to an emergency stack: the top
 * of the same slot, whose frames are not needed any more (every exception
 * from EL2 ends the run), or, for an SP outside every slot, a stack of its
 * own.
 * The frame records the SP at the exception, so the handler can tell a
 * stack overflow from any other fault.
 *
 * TPIDR_EL2 is the scratch register of that check: nothing else in the
 * hyp may use it.
 */

/* A lower EL: x0 = the entry's index, x0/x1 saved, then the common part. */
.macro vector_lower index
    .balign 0x80
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       save_frame
.endm

/* EL2 itself: out of line, the check does not fit in an entry. */
.macro vector_el2 index
    .balign 0x80
    b       el2_entry_\index
.endm

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
    vector_el2 0        /* current EL, SP_EL0: synchronous */
    vector_el2 1        /* current EL, SP_EL0: IRQ */
    vector_el2 2        /* current EL, SP_EL0: FIQ */
    vector_el2 3        /* current EL, SP_EL0: SError */
    vector_el2 4        /* current EL, SP_ELx: synchronous */
    vector_el2 5        /* current EL, SP_ELx: IRQ */
    vector_el2 6        /* current EL, SP_ELx: FIQ */
    vector_el2 7        /* current EL, SP_ELx: SError */
    vector_lower 8      /* lower EL, AArch64: synchronous */
    vector_lower 9      /* lower EL, AArch64: IRQ */
    vector_lower 10     /* lower EL, AArch64: FIQ */
    vector_lower 11     /* lower EL, AArch64: SError */
    vector_lower 12     /* lower EL, AArch32: synchronous */
    vector_lower 13     /* lower EL, AArch32: IRQ */
    vector_lower 14     /* lower EL, AArch32: FIQ */
    vector_lower 15     /* lower EL, AArch32: SError */

/* x0 = the first byte of the boot stack's slot (its guard page). */
.macro boot_slot_start
    adrp    x0, __boot_stack_start
    add     x0, x0, :lo12:__boot_stack_start
.endm

/* x0 = the end of the boot stack's slot: the boot stack's top. */
.macro boot_slot_end
    adrp    x0, __boot_stack_end
    add     x0, x0, :lo12:__boot_stack_end
.endm

/*
 * x0 = the first byte, or the end, of the CPUs' stack slots in the pool,
 * as the boot data record says (both 0 until the boot CPU writes it: no
 * slot).
 */
.macro cpu_slots field
    adrp    x0, {boot_data}
    add     x0, x0, :lo12:{boot_data}
    ldr     x0, [x0, #\field]
.endm

/*
 * An exception from EL2. x0 goes to TPIDR_EL2; x0 then holds the bounds of
 * a stack region and the SP's offset in it (SP itself is left alone until
 * it is known good). Two regions: the boot stack in the image (one slot),
 * and the CPUs' stacks in the pool (uniform slots of {STACK_SLOT_SIZE}
 * bytes).
 */
.macro el2_entry index
el2_entry_\index:
    msr     tpidr_el2, x0
    boot_slot_start
    cmp     sp, x0
    b.ls    1f                              /* not on the boot stack */
    boot_slot_end
    cmp     sp, x0
    b.hi    1f
    boot_slot_start
    sub     x0, sp, x0
    sub     x0, x0, #1                      /* the byte below SP, in the slot */
    cmp     x0, #{EXCEPTION_STACK_MIN}
    b.hs    6f
    boot_slot_end                           /* overflowing: the slot's top */
    b       7f
1:  cpu_slots {BOOT_DATA_STACKS}
    cmp     sp, x0
    b.ls    5f                              /* below every CPU's slot */
    cpu_slots {BOOT_DATA_STACKS_END}
    cmp     sp, x0
    b.hi    5f                              /* above every CPU's slot */
    cpu_slots {BOOT_DATA_STACKS}
    sub     x0, sp, x0
    sub     x0, x0, #1                      /* the byte below SP, from the first slot */
2:  cmp     x0, #{STACK_SLOT_SIZE}
    b.lo    3f
    sub     x0, x0, #{STACK_SLOT_SIZE}
    b       2b
3:  /* x0 = the offset of the byte below SP in its slot. */
    cmp     x0, #{EXCEPTION_STACK_MIN}
    b.hs    6f
    /* Overflowing: the top of this slot (slot base + slot size). */
    sub     x0, sp, x0
    add     x0, x0, #{STACK_SLOT_SIZE}
    sub     x0, x0, #1
    b       7f
5:  /* SP outside every stack: the stack of its own. */
    adrp    x0, {wild_sp_stack}
    add     x0, x0, :lo12:{wild_sp_stack}
    add     x0, x0, #{WILD_SP_STACK_SIZE}
    b       7f
6:  /* Enough stack: the frame goes below SP, as for a lower EL. */
    mrs     x0, tpidr_el2
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #0]
    add     x1, sp, #{FRAME_SIZE}
    str     x1, [sp, #{FRAME_SP}]           /* TrapFrame::sp */
    mov     x0, #\index
    b       save_frame
7:  /* x0 = the emergency stack's top. Swap x0 and SP without memory. */
    add     sp, sp, x0
    sub     x0, sp, x0                      /* x0 = the SP at the exception */
    sub     sp, sp, x0                      /* SP = the emergency stack */
    sub     sp, sp, #{FRAME_SIZE}
    str     x1, [sp, #8]
    str     x0, [sp, #{FRAME_SP}]           /* TrapFrame::sp */
    mrs     x0, tpidr_el2
    str     x0, [sp, #0]
    mov     x0, #\index
    b       save_frame
.endm

    el2_entry 0
    el2_entry 1
    el2_entry 2
    el2_entry 3
    el2_entry 4
    el2_entry 5
    el2_entry 6
    el2_entry 7

/* x0 = the entry's index; x0 and x1 of the interrupted context saved. */
save_frame:
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

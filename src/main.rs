//! The EL2 image. All logic lives in the `smmu_hyp` library; this file holds
//! the assembly entry points and the panic handler.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_os = "none")]
mod el2 {
    use core::arch::global_asm;
    use smmu_hyp::arch::aarch64::{self, exception};
    use smmu_hyp::hyp::trap;
    use smmu_hyp::smp::boot_data;

    global_asm!(
        include_str!("arch/aarch64/boot.S"),
        CPTR_EL2_VALUE = const aarch64::CPTR_EL2_VALUE,
        HCR_EL2_BOOT = const aarch64::HCR_EL2_BOOT,
        SCTLR_EL2_BOOT = const aarch64::SCTLR_EL2_BOOT,
        STACK_SLOT_SIZE = const smmu_hyp::layout::STACK_SLOT_SIZE,
        BOOT_DATA_MAIR = const boot_data::OFFSET_MAIR,
        BOOT_DATA_TCR = const boot_data::OFFSET_TCR,
        BOOT_DATA_TTBR0 = const boot_data::OFFSET_TTBR0,
        BOOT_DATA_SCTLR = const boot_data::OFFSET_SCTLR,
        BOOT_DATA_STACKS = const boot_data::OFFSET_STACKS,
        BOOT_DATA_CPUS = const boot_data::OFFSET_CPUS,
        boot_data = sym smmu_hyp::hyp::cpus::SECONDARY_BOOT_DATA,
        rust_main = sym rust_main,
        secondary_main = sym secondary_main,
    );
    global_asm!(
        include_str!("arch/aarch64/vectors.S"),
        FRAME_SIZE = const exception::FRAME_SIZE,
        FRAME_SP = const core::mem::offset_of!(exception::TrapFrame, sp),
        STACK_SLOT_SIZE = const smmu_hyp::layout::STACK_SLOT_SIZE,
        EXCEPTION_STACK_MIN = const aarch64::EXCEPTION_STACK_MIN,
        BOOT_DATA_STACKS = const boot_data::OFFSET_STACKS,
        BOOT_DATA_STACKS_END = const boot_data::OFFSET_STACKS_END,
        boot_data = sym smmu_hyp::hyp::cpus::SECONDARY_BOOT_DATA,
        wild_sp_stack = sym aarch64::WILD_SP_STACK,
        WILD_SP_STACK_SIZE = const aarch64::WILD_SP_STACK_SIZE,
        handler = sym trap::handle_exception,
    );

    /// `e2h_stuck` is 1 when `boot.S` found that HCR_EL2.E2H cannot be
    /// cleared on this CPU.
    extern "C" fn rust_main(dtb_pa: u64, e2h_stuck: u64) -> ! {
        smmu_hyp::hyp::boot::start(dtb_pa, e2h_stuck != 0)
    }

    extern "C" fn secondary_main(cpu: u64) -> ! {
        smmu_hyp::hyp::cpus::secondary_start(cpu as usize)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        smmu_hyp::console::emergency_print(format_args!("\n*** EL2 panic: {info}\n"));
        smmu_hyp::hyp::end_run(smmu_hyp::exit::EL2_PANIC)
    }
}

/// On the host this binary does nothing: the image only runs at EL2.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "smmu-hyp is an EL2 image: build it with `make` (target aarch64-unknown-none-softfloat)"
    );
    std::process::exit(2);
}

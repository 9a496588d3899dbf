//! QEMU integration scenarios: each boots the real EL2 image (and the EL1
//! test kernel) and checks what it prints and how the run ends.
//! Run through `make test`, which builds the images first.

mod harness;

use harness::Boot;
use smmu_hyp::exit;

const SUCCESS: i32 = exit::SUCCESS as i32;

#[test]
fn boot_banner_comes_from_the_device_tree_and_el1_round_trips() {
    Boot::new("suite=demo")
        .run()
        .expect_status(SUCCESS)
        .expect("at CurrentEL = 2")
        .expect("memory: [0x40000000..0x80000000) (1024 MiB)")
        .expect("smmu0: SMMUv3 at 0x9050000")
        .expect("pcie: ECAM at 0x4010000000")
        .expect("pci 00:01.0 [1234:11e8] -> smmu0 StreamID 0x8")
        .expect("el1: test kernel running at EL1")
        .expect("el1: ok   HYP_ABI_VERSION round trip")
        .expect_passed(2);
}

#[test]
fn el2_fault_prints_a_decoded_crash_report_and_fails_the_run() {
    Boot::new("test=el2-fault")
        .run()
        .expect_status(exit::EL2_EXCEPTION as i32)
        .expect("*** unexpected exception: synchronous, EL2 ***")
        .expect("EC 0x25 (Data abort from the same EL)")
        .expect("translation fault at level")
        .expect("on read")
        .expect("FAR  0x0000000000000010")
        .expect("ELR  0x00000000402")
        .expect("x30 0x")
        .expect_absent("instead of faulting")
        .expect_absent("el1:");
}

#[test]
fn el2_panic_prints_message_and_location_with_its_own_status() {
    Boot::new("test=el2-panic")
        .run()
        .expect_status(exit::EL2_PANIC as i32)
        .expect("*** EL2 panic: panicked at src/hyp/selftest/mod.rs")
        .expect("deliberate EL2 panic");
}

#[test]
fn unknown_function_ids_return_not_supported() {
    Boot::new("suite=smccc")
        .run()
        .expect_status(SUCCESS)
        .expect("el1: ok   SMCCC_VERSION is 1.1: 0x10001")
        .expect("unknown function ID returns NOT_SUPPORTED (-1): fid 0xc600ff00 -> -1")
        .expect_passed(8);
}

#[test]
fn psci_from_el1_is_trapped_and_filtered() {
    Boot::new("suite=psci")
        .run()
        .expect_status(SUCCESS)
        .expect("el1: ok   PSCI_VERSION forwarded to firmware: 0x10001")
        .expect("el1: ok   CPU_ON of a CPU the device tree lacks is INVALID_PARAMETERS: -2")
        .expect_passed(3);
}

#[test]
fn psci_system_off_from_el1_powers_off() {
    Boot::new("suite=system-off")
        .run()
        .expect_status(SUCCESS)
        .expect("el1: calling PSCI SYSTEM_OFF")
        .expect_absent("SYSTEM_OFF returned");
}

#[test]
fn two_gib_of_ram_is_read_from_the_device_tree() {
    Boot::new("suite=boot-info")
        .qemu("-m", "2G")
        .run()
        .expect_status(SUCCESS)
        .expect("memory: [0x40000000..0xc0000000) (2048 MiB)")
        .expect("el1: ok   device tree passed in x0: 2048 MiB of RAM, 1 CPU(s)")
        .expect_passed(1);
}

#[test]
fn two_cpus_are_read_from_the_device_tree() {
    Boot::new("suite=boot-info")
        .qemu("-smp", "2")
        .run()
        .expect_status(SUCCESS)
        .expect("linux,dummy-virt, 2 CPU(s)")
        .expect("el1: ok   device tree passed in x0: 1024 MiB of RAM, 2 CPU(s)")
        .expect_passed(1);
}

#[test]
fn missing_payload_is_a_boot_failure() {
    Boot::new("")
        .without_payload()
        .run()
        .expect_status(exit::BOOT_FAILURE as i32)
        .expect("boot failed: no EL1 payload");
}

#[test]
fn log_level_comes_from_bootargs() {
    Boot::new("suite=demo log=debug")
        .run()
        .expect_status(SUCCESS)
        .expect("[DEBUG]");
    Boot::new("suite=demo log=warn")
        .run()
        .expect_status(SUCCESS)
        .expect_absent("[INFO ]");
}

#[test]
fn psci_cpu_on_starts_secondaries_at_el1_through_el2() {
    Boot::new("suite=smp")
        .qemu("-smp", "4")
        .run()
        .expect_status(SUCCESS)
        .expect("el1: cpu1 up at EL1")
        .expect("el1: cpu3 up at EL1")
        .expect("el1: ok   CPU_ON into EL2 memory is INVALID_ADDRESS: -9")
        .expect_absent("CPU_OFF returned")
        .expect_passed(11);
}

/// A second `edu` at 00:02.0 (StreamID 0x10), for the isolation scenario.
const SECOND_EDU: &str = "edu,dma_mask=0xffffffffffffffff";

#[test]
fn smmu_scenarios_with_real_dma() {
    Boot::new("test=smmu")
        .add("-device", SECOND_EDU)
        .without_payload()
        .run()
        .expect_status(SUCCESS)
        .expect("el2: ok   DMA to a mapped 4 KiB IOVA lands in the mapped page")
        .expect("el2: ok   DMA into a 2 MiB block lands at the same offset")
        .expect("el2: ok   without TLBI the DMA still lands through the stale IOTLB entry")
        .expect("el2: ok   after unmap the DMA is blocked")
        .expect("el2: ok   an F_TRANSLATION event names the StreamID and the address")
        .expect("el2: ok   detach (STE to abort, CFGI_STE + sync) blocks the device")
        .expect("el2: ok   on a fresh walk the write records F_PERMISSION")
        .expect("el2: ok   100,000 commands through the command queue, every CMD_SYNC completes: 100000 issued, 1000 syncs")
        .expect("el2: ok   an overflowing event queue is recovered and counted")
        .expect("el2: ok   an illegal command is detected through GERROR.CMDQ_ERR / CERROR_ILL")
        .expect("el2: ok   a device cannot reach the other domain's memory")
        .expect_passed_el2(23);
}

#[test]
fn qemu_concatenated_root_defect_is_pinned() {
    Boot::new("test=smmu-concat")
        .without_payload()
        .run()
        .expect_status(SUCCESS)
        .expect("el2: ok   40-bit IPA starts at level 1 with two concatenated tables")
        .expect("el2: ok   the engine's own walk translates the high IPA per the architecture")
        .expect("el2: ok   QEMU defect 1 still present")
        .expect_passed_el2(3);
}

#[test]
fn unmap_issues_one_sync_and_few_tlbis() {
    Boot::new("test=smmu-bench")
        .without_payload()
        .run()
        .expect_status(SUCCESS)
        .expect("smmu-bench: unmap 4K x 262144: leaves=262144")
        .expect("el2: ok   1G block: 1 TLBI, 1 CMD_SYNC")
        .expect_passed_el2(8);
}

#[test]
fn iommu_hypercalls_from_el1() {
    Boot::new("suite=iommu")
        .run()
        .expect_status(SUCCESS)
        .expect("el1: ok   MAP: Ok(4096)")
        .expect("el1: ok   EL2 image DENIED: Err(-3)")
        .expect("el1: ok   SMMU regs DENIED: Err(-3)")
        .expect_passed(13);
}

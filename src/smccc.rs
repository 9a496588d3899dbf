//! SMCCC 1.1 call handling for calls from EL1: the hypervisor's own `hvc`
//! interface and the `smc` calls (PSCI) that EL2 traps.
//!
//! A call is a function ID in x0 and arguments in x1..x17; results go back in
//! x0..x3. Unknown function IDs return `NOT_SUPPORTED` (-1), as SMCCC
//! requires. This module is pure: firmware is reached through the
//! [`Firmware`] trait, so the policy is host-tested.

/// SMCCC return code for an unknown or refused function.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
/// SMCCC version 1.1.
pub const VERSION_1_1: u64 = 0x1_0001;

pub const SMCCC_VERSION: u32 = 0x8000_0000;
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;

/// Vendor Specific Hypervisor Service Call UID (SMCCC 1.1, "Call UID
/// Query" of the vendor hypervisor service range): x0..x3 = the service's
/// UID in [`uid_registers`] form. A client identifies the hypervisor by it
/// before making any other call in that range, whose function IDs each
/// vendor numbers its own way.
pub const VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;

/// A UID (the 16 bytes of a UUID, in its string order) as SMCCC returns
/// it: bytes 0..3 in w0 with byte 0 least significant, 4..7 in w1, and so
/// on. Linux reads KVM's UID this way (`ARM_SMCCC_VENDOR_HYP_UID_KVM_REG_*`).
pub const fn uid_registers(uid: [u8; 16]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut i = 0;
    while i < 4 {
        let b = [uid[4 * i], uid[4 * i + 1], uid[4 * i + 2], uid[4 * i + 3]];
        out[i] = u32::from_le_bytes(b) as u64;
        i += 1;
    }
    out
}

/// Owning-entity field (bits 29:24) values.
pub const OWNER_ARCH: u32 = 0;
pub const OWNER_STANDARD: u32 = 4;
pub const OWNER_VENDOR_HYP: u32 = 6;

/// Decoded fields of a function ID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FunctionId(pub u32);

impl FunctionId {
    pub fn is_fast(self) -> bool {
        self.0 & (1 << 31) != 0
    }
    pub fn is_smc64(self) -> bool {
        self.0 & (1 << 30) != 0
    }
    pub fn owner(self) -> u32 {
        (self.0 >> 24) & 0x3f
    }
    pub fn number(self) -> u16 {
        self.0 as u16
    }
}

/// PSCI function IDs (SMC64 forms where PSCI defines both).
pub mod psci {
    pub const VERSION: u32 = 0x8400_0000;
    pub const CPU_SUSPEND: u32 = 0xc400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON: u32 = 0xc400_0003;
    pub const AFFINITY_INFO: u32 = 0xc400_0004;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const FEATURES: u32 = 0x8400_000a;

    /// PSCI error codes.
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
    pub const DENIED: u64 = -3i64 as u64;
}

/// Firmware below EL2 (PSCI at EL3, or QEMU's emulation of it).
pub trait Firmware {
    /// Makes an SMCCC call with `args` (x0..x3) and returns x0..x3.
    fn call(&self, args: [u64; 4]) -> [u64; 4];
}

/// The 32-bit function ID in x0 (the upper half is ignored, per SMCCC).
pub fn function_id(x0: u64) -> FunctionId {
    FunctionId(x0 as u32)
}

/// How EL2 treats a PSCI function an EL1 kernel calls.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PsciPolicy {
    /// Harmless to EL2: passed to firmware unchanged.
    Forward,
    /// Would let EL1 code start or resume at EL2 (an entry point given to
    /// firmware starts at the firmware's return level, EL2), or changes
    /// which CPUs run: EL2 handles it itself (`hyp::cpus`), never forwards
    /// it unchanged.
    Intercept,
}

/// The policy for a PSCI function, `None` if it is not PSCI or unknown.
pub fn psci_policy(fid: u32) -> Option<PsciPolicy> {
    use psci::*;
    // Both calling conventions are trapped; compare the SMC32 form.
    match fid & !(1 << 30) {
        x if x == VERSION || x == MIGRATE_INFO_TYPE || x == SYSTEM_OFF || x == SYSTEM_RESET => {
            Some(PsciPolicy::Forward)
        }
        x if x == AFFINITY_INFO & !(1 << 30) || x == FEATURES => Some(PsciPolicy::Forward),
        x if x == CPU_ON & !(1 << 30) || x == CPU_SUSPEND & !(1 << 30) || x == CPU_OFF => {
            Some(PsciPolicy::Intercept)
        }
        _ => None,
    }
}

/// Handles an `smc` from EL1 that EL2 trapped: SMCCC architecture calls are
/// answered here and safe PSCI calls are forwarded. Intercepted PSCI calls
/// that reach this function (the hyp handles them first) and everything
/// else are refused with NOT_SUPPORTED.
pub fn handle_el1_smc(args: [u64; 4], firmware: Option<&dyn Firmware>) -> [u64; 4] {
    let fid = function_id(args[0]).0;
    if let Some(result) = handle_arch_call(fid, args[1]) {
        return [result, 0, 0, 0];
    }
    match (psci_policy(fid), firmware) {
        (Some(PsciPolicy::Forward), Some(fw)) => {
            if fid == psci::FEATURES
                && let Some(answer) = psci_features_here(args[1] as u32)
            {
                return [answer, 0, 0, 0];
            }
            fw.call(args)
        }
        _ => [NOT_SUPPORTED, 0, 0, 0],
    }
}

/// PSCI_FEATURES answers EL2 gives itself: for the calls it implements
/// (CPU_ON, CPU_OFF: `hyp::cpus`), for SMCCC_VERSION (answered by EL2, so
/// kernels go on to discover SMCCC 1.1; PSCI 1.1 section 5.1.14 says a
/// PSCI 1.0+ implementation must report it) and for every call it refuses.
/// `None`: firmware answers, for the calls forwarded as they are and for
/// CPU_SUSPEND, which EL2 implements in whichever power_state format
/// firmware uses (its answer says which, bit 1).
fn psci_features_here(queried: u32) -> Option<u64> {
    const SUCCESS: u64 = 0;
    if queried == SMCCC_VERSION {
        return Some(SUCCESS);
    }
    let is = |f: u32| queried & !(1 << 30) == f & !(1 << 30);
    match psci_policy(queried) {
        Some(PsciPolicy::Forward) => None,
        Some(PsciPolicy::Intercept) if is(psci::CPU_SUSPEND) => None,
        Some(PsciPolicy::Intercept) if is(psci::CPU_ON) || is(psci::CPU_OFF) => Some(SUCCESS),
        _ => Some(psci::NOT_SUPPORTED),
    }
}

/// SMCCC architecture calls (owner 0) answered by EL2 itself.
pub fn handle_arch_call(fid: u32, arg1: u64) -> Option<u64> {
    match fid {
        SMCCC_VERSION => Some(VERSION_1_1),
        SMCCC_ARCH_FEATURES => Some(match arg1 as u32 {
            SMCCC_VERSION | SMCCC_ARCH_FEATURES => 0,
            _ => NOT_SUPPORTED,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// Firmware that answers every call with its function ID and counts.
    struct Echo(Cell<u32>);
    impl Firmware for Echo {
        fn call(&self, args: [u64; 4]) -> [u64; 4] {
            self.0.set(self.0.get() + 1);
            [args[0], 1, 2, 3]
        }
    }

    #[test]
    fn a_uid_is_returned_four_bytes_per_register_least_significant_first() {
        // KVM's UID 28b46fb6-2ec5-11e9-a9ca-4b564d003a74, as Linux's
        // ARM_SMCCC_VENDOR_HYP_UID_KVM_REG_0..3 expect it.
        let kvm = [
            0x28, 0xb4, 0x6f, 0xb6, 0x2e, 0xc5, 0x11, 0xe9, 0xa9, 0xca, 0x4b, 0x56, 0x4d, 0x00,
            0x3a, 0x74,
        ];
        assert_eq!(
            uid_registers(kvm),
            [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d]
        );
        let f = FunctionId(VENDOR_HYP_CALL_UID);
        assert!(f.is_fast() && !f.is_smc64());
        assert_eq!((f.owner(), f.number()), (OWNER_VENDOR_HYP, 0xff01));
    }

    #[test]
    fn function_id_fields() {
        let f = FunctionId(0xc600_0003);
        assert!(f.is_fast() && f.is_smc64());
        assert_eq!((f.owner(), f.number()), (OWNER_VENDOR_HYP, 3));
        assert_eq!(
            function_id(0xffff_ffff_8400_0000),
            FunctionId(psci::VERSION)
        );
    }

    #[test]
    fn arch_calls_are_answered_locally() {
        let fw = Echo(Cell::new(0));
        assert_eq!(
            handle_el1_smc([u64::from(SMCCC_VERSION), 0, 0, 0], Some(&fw))[0],
            VERSION_1_1
        );
        let features = |fid: u32| {
            handle_el1_smc(
                [u64::from(SMCCC_ARCH_FEATURES), u64::from(fid), 0, 0],
                Some(&fw),
            )[0]
        };
        assert_eq!(features(SMCCC_VERSION), 0);
        assert_eq!(features(0x8000_7fff), NOT_SUPPORTED);
        assert_eq!(fw.0.get(), 0, "nothing reached firmware");
    }

    #[test]
    fn safe_psci_is_forwarded_and_cpu_power_calls_are_refused() {
        let fw = Echo(Cell::new(0));
        let call = |fid: u32, a1: u64| handle_el1_smc([u64::from(fid), a1, 0, 0], Some(&fw));
        assert_eq!(call(psci::VERSION, 0), [u64::from(psci::VERSION), 1, 2, 3]);
        assert_eq!(call(psci::SYSTEM_OFF, 0)[0], u64::from(psci::SYSTEM_OFF));
        assert_eq!(
            call(psci::AFFINITY_INFO, 0)[0],
            u64::from(psci::AFFINITY_INFO)
        );
        assert_eq!(
            call(psci::AFFINITY_INFO & !(1 << 30), 0)[0],
            u64::from(psci::AFFINITY_INFO & !(1 << 30))
        );
        assert_eq!(fw.0.get(), 4);
        for fid in [
            psci::CPU_ON,
            psci::CPU_ON & !(1 << 30),
            psci::CPU_SUSPEND,
            psci::CPU_OFF,
        ] {
            assert_eq!(call(fid, 0)[0], NOT_SUPPORTED, "{fid:#x}");
        }
        assert_eq!(
            call(0xc200_0000, 0)[0],
            NOT_SUPPORTED,
            "other secure services"
        );
        assert_eq!(fw.0.get(), 4, "refused calls never reach firmware");
        assert_eq!(
            handle_el1_smc([u64::from(psci::VERSION), 0, 0, 0], None)[0],
            NOT_SUPPORTED
        );
    }

    #[test]
    fn psci_features_reports_what_el2_implements_and_lets_firmware_answer_the_rest() {
        let fw = Echo(Cell::new(0));
        let features = |fid: u32| {
            handle_el1_smc([u64::from(psci::FEATURES), u64::from(fid), 0, 0], Some(&fw))[0]
        };
        assert_eq!(features(psci::CPU_ON), 0, "CPU_ON (SMC64) is implemented");
        assert_eq!(features(psci::CPU_ON & !(1 << 30)), 0, "and its SMC32 form");
        assert_eq!(features(psci::CPU_OFF), 0);
        assert_eq!(
            features(SMCCC_VERSION),
            0,
            "SMCCC_VERSION is there, so kernels ask it for 1.1"
        );
        assert_eq!(features(0xc200_0000), psci::NOT_SUPPORTED);
        assert_eq!(fw.0.get(), 0, "answered by EL2");
        assert_eq!(features(psci::SYSTEM_OFF), u64::from(psci::FEATURES));
        assert_eq!(
            fw.0.get(),
            1,
            "a forwarded call's features come from firmware"
        );
        assert_eq!(
            features(psci::CPU_SUSPEND),
            u64::from(psci::FEATURES),
            "CPU_SUSPEND: firmware says which power_state format it uses"
        );
        assert_eq!(fw.0.get(), 2);
    }
}

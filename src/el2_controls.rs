//! The EL2 trap and control registers an EL1 kernel boots with, computed
//! from the CPU's ID registers.
//!
//! `Documentation/arch/arm64/booting.rst` (Linux) states what a kernel
//! entered at EL1 needs from EL2: FP/SIMD, SVE and SME not trapped, the
//! full vector lengths (`ZCR_EL2.LEN`, `SMCR_EL2.LEN`), `HCRX_EL2` set up
//! when FEAT_HCX exists, debug and PMU usable, the fine-grained traps
//! (FEAT_FGT) cleared, the GIC's system registers as the device tree's GIC
//! is used, the activity monitors counting, and no register left UNKNOWN
//! ("all writable architected system registers at or below the exception
//! level where the kernel image will be entered must be initialised").
//! Linux's own `arch/arm64/include/asm/el2_setup.h` (`init_el2_state`,
//! `finalise_el2_state`) does the same when it boots at EL2; this follows
//! it. The trap bits whose name starts with `n` trap when they are **0**, so
//! each is set exactly when the feature behind it exists (otherwise the bit
//! is RES0), and every register that exists only with a feature is written
//! only when the feature is there (otherwise the access is UNDEFINED).
//!
//! Pure: the ID registers come in as [`IdRegs`], so the policy is
//! host-tested; `arch::aarch64::el1` reads them and writes the result.

use crate::platform::GicVersion;

/// The ID and feature registers the controls depend on (raw values).
#[derive(Clone, Copy, Default, Debug)]
pub struct IdRegs {
    pub pfr0: u64,
    pub pfr1: u64,
    pub pfr2: u64,
    pub dfr0: u64,
    pub isar1: u64,
    pub isar2: u64,
    pub mmfr0: u64,
    pub mmfr1: u64,
    pub mmfr3: u64,
    pub smfr0: u64,
    /// PMCR_EL0 (its N field), read only when a PMUv3 exists.
    pub pmcr: u64,
    /// PMBIDR_EL1.P: the profiling buffer is owned by a higher EL (EL3).
    pub spe_buffer_prohibited: bool,
    /// TRBIDR_EL1.P: the trace buffer is owned by a higher EL (EL3).
    pub trbe_prohibited: bool,
    /// SMIDR_EL1.SMPS: SME priority mapping is implemented.
    pub sme_priority_mapping: bool,
    /// MPAMIDR_EL1.HAS_HCR: MPAMHCR_EL2 exists (read only with FEAT_MPAM).
    pub mpam_has_hcr: bool,
    /// AMCGCR_EL0.CG1NC: auxiliary activity monitors (read only with
    /// FEAT_AMU).
    pub amu_aux_counters: u8,
}

/// Field `[lsb + 3 : lsb]` of an ID register.
const fn field(reg: u64, lsb: u32) -> u64 {
    (reg >> lsb) & 0xf
}

const fn bit(n: u32) -> u64 {
    1 << n
}

impl IdRegs {
    pub fn sve(&self) -> bool {
        field(self.pfr0, 32) != 0
    }
    pub fn sme(&self) -> bool {
        field(self.pfr1, 24) != 0
    }
    pub fn amu(&self) -> bool {
        field(self.pfr0, 44) != 0
    }
    /// FEAT_MPAM: ID_AA64PFR0_EL1.MPAM (major version) or, for MPAM v0.1,
    /// ID_AA64PFR1_EL1.MPAM_frac alone.
    pub fn mpam(&self) -> bool {
        field(self.pfr0, 40) != 0 || field(self.pfr1, 16) != 0
    }
    /// ID_AA64PFR0_EL1.GIC: the GICv3 system-register CPU interface.
    fn gic_sysregs(&self) -> bool {
        field(self.pfr0, 24) != 0
    }
    /// FEAT_MTE2: ID_AA64PFR1_EL1.MTE >= 2 (allocation tags in memory).
    fn mte2(&self) -> bool {
        field(self.pfr1, 8) >= 2
    }
    fn gcs(&self) -> bool {
        field(self.pfr1, 44) != 0
    }
    fn the(&self) -> bool {
        field(self.pfr1, 48) != 0
    }
    fn fpmr(&self) -> bool {
        field(self.pfr2, 32) != 0
    }
    fn mops(&self) -> bool {
        field(self.isar2, 16) != 0
    }
    /// ID_AA64ISAR1_EL1.LS64: 1 = FEAT_LS64, 2 = FEAT_LS64_V, 3 =
    /// FEAT_LS64_ACCDATA.
    fn ls64(&self) -> u64 {
        field(self.isar1, 60)
    }
    fn ls64_accdata(&self) -> bool {
        self.ls64() >= 3
    }
    /// ID_AA64MMFR0_EL1.FGT: 1 = FEAT_FGT, 2 = FEAT_FGT2.
    pub fn fgt(&self) -> u64 {
        field(self.mmfr0, 56)
    }
    pub fn hcx(&self) -> bool {
        field(self.mmfr1, 40) != 0
    }
    fn tcr2(&self) -> bool {
        field(self.mmfr3, 0) != 0
    }
    fn s1pie(&self) -> bool {
        field(self.mmfr3, 8) != 0
    }
    fn s1poe(&self) -> bool {
        field(self.mmfr3, 16) != 0
    }
    fn s2poe(&self) -> bool {
        field(self.mmfr3, 20) != 0
    }
    fn aie(&self) -> bool {
        field(self.mmfr3, 24) != 0
    }
    /// ID_AA64DFR0_EL1.PMUVer; 0 = none, 0xf = IMPLEMENTATION DEFINED.
    fn pmu_version(&self) -> u64 {
        field(self.dfr0, 8)
    }
    pub fn pmuv3(&self) -> bool {
        !matches!(self.pmu_version(), 0 | 0xf)
    }
    /// ID_AA64DFR0_EL1.PMSVer: 0 = no SPE, 3 = SPEv1p2.
    pub fn spe_version(&self) -> u64 {
        field(self.dfr0, 32)
    }
    pub fn trbe(&self) -> bool {
        field(self.dfr0, 44) != 0
    }
    fn brbe(&self) -> bool {
        field(self.dfr0, 52) != 0
    }
    /// FEAT_TRF: ID_AA64DFR0_EL1.TraceFilt.
    fn trf(&self) -> bool {
        field(self.dfr0, 40) != 0
    }
}

/// CPTR_EL2 (HCR_EL2.E2H = 0) RES1 bits: 13, 9 and 7:0.
pub const CPTR_EL2_RES1: u64 = bit(13) | bit(9) | 0xff;
/// CPTR_EL2.TZ: trap SVE.
const CPTR_EL2_TZ: u64 = bit(8);
/// CPTR_EL2.TSM: trap SME (RES1 without FEAT_SME).
const CPTR_EL2_TSM: u64 = bit(12);
/// CPTR_EL2 as the hyp boots with it (`boot.S`): FP/SIMD untrapped (TFP =
/// 0; EL2 itself never executes an FP/SIMD instruction, see
/// `tests/images.rs`), SVE and SME trapped until EL1 starts.
pub const CPTR_EL2_BOOT: u64 = CPTR_EL2_RES1 | CPTR_EL2_TZ | CPTR_EL2_TSM;

/// HCR_EL2.ATA: EL1 and EL0 access allocation tags without trapping.
pub const HCR_EL2_ATA: u64 = bit(56);

/// ZCR_ELx.LEN / SMCR_ELx.LEN all ones: the largest vector length the
/// CPU implements (the field is capped to it).
const VL_LEN_MAX: u64 = 0xf;
const SMCR_FA64: u64 = bit(31);
const SMCR_EZT0: u64 = bit(30);

const HCRX_ENALS: u64 = bit(1);
const HCRX_ENASR: u64 = bit(2);
const HCRX_MSCEN: u64 = bit(11);
const HCRX_TCR2EN: u64 = bit(14);
const HCRX_GCSEN: u64 = bit(22);
const HCRX_ENFPM: u64 = bit(41);

const MDCR_HPMN_SHIFT: u32 = 0;
const MDCR_E2PB_EL1_OWNED: u64 = 0b11 << 12;
const MDCR_HPMD: u64 = bit(17);
const MDCR_HCCD: u64 = bit(23);
const MDCR_E2TB_EL1_OWNED: u64 = 0b11 << 24;
/// PMSCR_EL2: PA and PCT, so EL1 may sample physical addresses and the
/// physical counter.
const PMSCR_EL2_PA_PCT: u64 = bit(4) | bit(6);

/// HSTR_EL2 = 0: no trap of EL1's (AArch32) coprocessor accesses; reset
/// UNKNOWN, written on every CPU (el2_setup.h `__init_el2_hstr`).
pub const HSTR_EL2_VALUE: u64 = 0;

/// ICC_SRE_EL2.SRE: the system-register GIC interface at EL2 (and so
/// possibly at EL1); Enable: EL1 may access ICC_SRE_EL1 without a trap.
const ICC_SRE_EL2_SRE: u64 = bit(0);
const ICC_SRE_EL2_ENABLE: u64 = bit(3);

/// MPAM2_EL2.EnMPAMSM (FEAT_SME): EL1's MPAMSM_EL1 accesses not trapped.
const MPAM2_EL2_ENMPAMSM: u64 = bit(50);

/// BRBCR_EL2.CC and MPRED: branch records may carry cycle counts and
/// mispredictions for EL1 (both EL2's and EL1's bit must be set).
/// E2BRE stays 0: EL2's own branches are never recorded.
const BRBCR_EL2_CC_MPRED: u64 = bit(3) | bit(4);

/// AMCNTENSET0_EL0: the four architected activity monitors count.
const AMCNTENSET0_ALL: u64 = 0b1111;

/// The fine-grained trap registers (FEAT_FGT), each with every trap off.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FineGrainedTraps {
    pub hfgrtr: u64,
    pub hfgwtr: u64,
    pub hfgitr: u64,
    pub hdfgrtr: u64,
    pub hdfgwtr: u64,
    /// HAFGRTR_EL2 exists only with FEAT_AMUv1.
    pub hafgrtr: Option<u64>,
    /// HDFGRTR2/HDFGWTR2_EL2 (FEAT_FGT2); HFGRTR2/HFGWTR2/HFGITR2_EL2 are 0.
    pub hdfgxtr2: Option<u64>,
}

/// Every EL2 control that shapes what EL1 may do, as booting.rst asks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct El2Controls {
    /// HCR_EL2 bits to set on top of the hyp's own ([`HCR_EL2_ATA`] with
    /// FEAT_MTE2, so the MTE EL1 sees advertised is MTE it may use).
    pub hcr: u64,
    pub cptr: u64,
    /// ZCR_EL2, with FEAT_SVE.
    pub zcr: Option<u64>,
    /// SMCR_EL2, with FEAT_SME.
    pub smcr: Option<u64>,
    /// SMPRIMAP_EL2 = 0 when SME priority mapping exists.
    pub smprimap: bool,
    /// HCRX_EL2, with FEAT_HCX. MCE2 stays 0: a MOPS exception of EL1 is
    /// taken by EL1 itself, as under pKVM (Linux's `HCRX_HOST_FLAGS`) and
    /// as Linux handles it (`el1_mops`). booting.rst asks a hypervisor for
    /// MCE2 = 1 because it may move a vCPU between CPUs with different
    /// MOPS implementations mid-instruction; EL1 here runs on the physical
    /// CPUs and is never moved.
    pub hcrx: Option<u64>,
    pub mdcr: u64,
    /// PMSCR_EL2, with SPE whose buffer EL2 may configure.
    pub pmscr: Option<u64>,
    pub fgt: Option<FineGrainedTraps>,
    /// ICC_SRE_EL2, with the GICv3 system-register interface: SRE and
    /// Enable when the device tree's GIC is a GICv3, SRE = 0 (Enable
    /// only) when it is a GICv2, so that EL1 uses the memory-mapped CPU
    /// interface the tree describes (booting.rst).
    pub icc_sre: Option<u64>,
    /// ICH_HCR_EL2 = 0 (the virtual CPU interface off, nothing trapped),
    /// to be written only once ICC_SRE_EL2.SRE reads back as 1: the ICH
    /// registers are accessible only then (el2_setup.h
    /// `__init_el2_gicv3`).
    pub ich_hcr: Option<u64>,
    /// MPAM2_EL2 and MPAMHCR_EL2, with FEAT_MPAM.
    pub mpam: Option<Mpam>,
    /// BRBCR_EL2, with FEAT_BRBE.
    pub brbcr: Option<u64>,
    /// AMCNTENSET0_EL0 and AMCNTENSET1_EL0, with FEAT_AMU.
    pub amu: Option<ActivityMonitors>,
    /// GCSCR_EL1, GCSCRE0_EL1 and GCSCR_EL2 = 0, with FEAT_GCS
    /// (booting.rst; el2_setup.h `finalise_el2_state`).
    pub gcs: bool,
    /// TRFCR_EL2, with FEAT_TRF: 0, so EL2 is never traced (E2TRE = 0,
    /// whoever owns the trace unit or buffer) and the timestamp is what
    /// EL1's TRFCR_EL1 asks (TS = 0).
    pub trfcr: Option<u64>,
}

/// The MPAM registers of EL2 (el2_setup.h `finalise_el2_state`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mpam {
    /// MPAM2_EL2: the default partition, no trap of EL1's MPAM registers
    /// (TRAPMPAM0EL1, TRAPMPAM1EL1, TIDR clear; EnMPAMSM with FEAT_SME).
    pub mpam2: u64,
    /// MPAMHCR_EL2 = 0 when MPAMIDR_EL1.HAS_HCR: no virtual partitions,
    /// TRAP_MPAMIDR_EL1 clear.
    pub mpamhcr: Option<u64>,
}

/// What the activity monitors count (booting.rst, AMUv1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ActivityMonitors {
    /// AMCNTENSET0_EL0: the architected counters.
    pub set0: u64,
    /// AMCNTENSET1_EL0: one bit per auxiliary counter present.
    pub set1: u64,
}

impl El2Controls {
    /// The controls for an EL1 kernel on a CPU with `id`, on a machine
    /// whose device tree describes a `gic`.
    pub fn for_el1(id: &IdRegs, gic: GicVersion) -> Self {
        let mut cptr = CPTR_EL2_BOOT;
        if id.sve() {
            cptr &= !CPTR_EL2_TZ;
        }
        if id.sme() {
            cptr &= !CPTR_EL2_TSM;
        }
        let smcr = id.sme().then(|| {
            let mut smcr = VL_LEN_MAX;
            // ID_AA64SMFR0_EL1.FA64 (bit 63) and SMEver (bits 59:56, >= 1
            // for SME2, which has ZT0).
            if id.smfr0 & bit(63) != 0 {
                smcr |= SMCR_FA64;
            }
            if field(id.smfr0, 56) != 0 {
                smcr |= SMCR_EZT0;
            }
            smcr
        });
        let icc_sre = id.gic_sysregs().then_some(match gic {
            GicVersion::V3 => ICC_SRE_EL2_SRE | ICC_SRE_EL2_ENABLE,
            GicVersion::V2 => ICC_SRE_EL2_ENABLE,
        });
        let hcrx = id.hcx().then(|| {
            [
                (id.mops(), HCRX_MSCEN),
                (id.tcr2(), HCRX_TCR2EN),
                (id.gcs(), HCRX_GCSEN),
                (id.fpmr(), HCRX_ENFPM),
                (id.ls64() >= 1, HCRX_ENALS),
                (id.ls64() >= 2, HCRX_ENASR),
            ]
            .iter()
            .filter(|(present, _)| *present)
            .fold(0, |acc, (_, b)| acc | b)
        });
        Self {
            hcr: if id.mte2() { HCR_EL2_ATA } else { 0 },
            cptr,
            zcr: id.sve().then_some(VL_LEN_MAX),
            smcr,
            smprimap: id.sme() && id.sme_priority_mapping,
            hcrx,
            mdcr: mdcr(id),
            pmscr: (id.spe_version() != 0 && !id.spe_buffer_prohibited).then_some(PMSCR_EL2_PA_PCT),
            fgt: (id.fgt() != 0).then(|| fine_grained_traps(id)),
            icc_sre,
            ich_hcr: icc_sre.filter(|sre| sre & ICC_SRE_EL2_SRE != 0).map(|_| 0),
            mpam: id.mpam().then(|| Mpam {
                mpam2: if id.sme() { MPAM2_EL2_ENMPAMSM } else { 0 },
                mpamhcr: id.mpam_has_hcr.then_some(0),
            }),
            brbcr: id.brbe().then_some(BRBCR_EL2_CC_MPRED),
            amu: id.amu().then(|| ActivityMonitors {
                set0: AMCNTENSET0_ALL,
                set1: (1u64 << id.amu_aux_counters.min(16)) - 1,
            }),
            gcs: id.gcs(),
            trfcr: id.trf().then_some(0),
        }
    }
}

/// MDCR_EL2: no debug or PMU trap; EL1 gets every counter (HPMN =
/// PMCR_EL0.N); EL2 is not counted (HPMD, and HCCD for the cycle counter
/// from PMUv3p5); the SPE and trace buffers belong to EL1 when they exist
/// and EL3 does not own them.
fn mdcr(id: &IdRegs) -> u64 {
    let mut mdcr = 0;
    if id.pmuv3() {
        mdcr |= ((id.pmcr >> 11) & 0x1f) << MDCR_HPMN_SHIFT;
        // PMUVer 4 = PMUv3p1 (HPMD), 6 = PMUv3p5 (HCCD).
        if id.pmu_version() >= 4 {
            mdcr |= MDCR_HPMD;
        }
        if id.pmu_version() >= 6 {
            mdcr |= MDCR_HCCD;
        }
    }
    if id.spe_version() != 0 {
        mdcr |= MDCR_E2PB_EL1_OWNED;
    }
    if id.trbe() && !id.trbe_prohibited {
        mdcr |= MDCR_E2TB_EL1_OWNED;
    }
    mdcr
}

/// The fine-grained traps with nothing trapped: only the `n` bits of
/// features the CPU has are set (they trap when 0).
fn fine_grained_traps(id: &IdRegs) -> FineGrainedTraps {
    let mut hfgxtr = 0;
    let set = |acc: &mut u64, present: bool, bits: &[u32]| {
        if present {
            *acc |= bits.iter().fold(0, |a, &b| a | bit(b));
        }
    };
    // HFGRTR_EL2 / HFGWTR_EL2 share a layout.
    set(&mut hfgxtr, id.aie(), &[63, 62]); // nAMAIR2_EL1, nMAIR2_EL1
    set(&mut hfgxtr, id.s2poe(), &[61]); // nS2POR_EL1
    set(&mut hfgxtr, id.s1poe(), &[60, 59]); // nPOR_EL1, nPOR_EL0
    set(&mut hfgxtr, id.s1pie(), &[58, 57]); // nPIR_EL1, nPIRE0_EL1
    set(&mut hfgxtr, id.the(), &[56]); // nRCWMASK_EL1
    set(&mut hfgxtr, id.sme(), &[55, 54]); // nTPIDR2_EL0, nSMPRI_EL1
    set(&mut hfgxtr, id.gcs(), &[53, 52]); // nGCS_EL1, nGCS_EL0
    set(&mut hfgxtr, id.ls64_accdata(), &[50]); // nACCDATA_EL1
    let mut hfgitr = 0;
    set(&mut hfgitr, id.gcs(), &[59, 58, 57]); // nGCSEPP, nGCSSTR_EL1, nGCSPUSHM_EL1
    set(&mut hfgitr, id.brbe(), &[56, 55]); // nBRBIALL, nBRBINJ
    let mut hdfgrtr = 0;
    let mut hdfgwtr = 0;
    set(&mut hdfgrtr, id.spe_version() >= 3, &[62]); // nPMSNEVFR_EL1 (SPEv1p2)
    set(&mut hdfgwtr, id.spe_version() >= 3, &[62]);
    set(&mut hdfgrtr, id.brbe(), &[61, 60, 59]); // nBRBDATA, nBRBCTL, nBRBIDR
    set(&mut hdfgwtr, id.brbe(), &[61, 60]); // nBRBDATA, nBRBCTL
    let mut hdfgxtr2 = 0;
    // PMUVer 9 = PMUv3p9: nPMICNTR_EL0, nPMICFILTR_EL0, nPMUACR_EL1.
    set(
        &mut hdfgxtr2,
        id.pmu_version() >= 9 && id.pmuv3(),
        &[2, 3, 4],
    );
    FineGrainedTraps {
        hfgrtr: hfgxtr,
        hfgwtr: hfgxtr,
        hfgitr,
        hdfgrtr,
        hdfgwtr,
        hafgrtr: id.amu().then_some(0),
        hdfgxtr2: (id.fgt() >= 2).then_some(hdfgxtr2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CPU with none of the optional features (ARMv8.0 without a PMU).
    const BARE: IdRegs = IdRegs {
        pfr0: 0,
        pfr1: 0,
        pfr2: 0,
        dfr0: 0,
        isar1: 0,
        isar2: 0,
        mmfr0: 0,
        mmfr1: 0,
        mmfr3: 0,
        smfr0: 0,
        pmcr: 0,
        spe_buffer_prohibited: false,
        trbe_prohibited: false,
        sme_priority_mapping: false,
        mpam_has_hcr: false,
        amu_aux_counters: 0,
    };
    const V3: GicVersion = GicVersion::V3;
    /// HCRX_EL2.MCE2: MOPS exceptions from EL1 go to EL2.
    const HCRX_MCE2: u64 = bit(10);

    /// SVE, SME2 with FA64, HCX, MOPS, TCR2, FGT, S1PIE, S1POE, PMUv3p5
    /// with 6 counters: what QEMU's `-cpu max` reports, give or take.
    fn max() -> IdRegs {
        IdRegs {
            pfr0: 1 << 32,
            pfr1: 1 << 24,
            smfr0: (1 << 63) | (1 << 56),
            mmfr0: 1 << 56,
            mmfr1: 1 << 40,
            mmfr3: 1 | (1 << 8) | (1 << 16),
            isar2: 1 << 16,
            dfr0: 6 << 8,
            pmcr: 6 << 11,
            ..BARE
        }
    }

    #[test]
    fn without_optional_features_only_fp_is_untrapped_and_nothing_else_is_written() {
        let c = El2Controls::for_el1(&BARE, V3);
        assert_eq!(c.cptr, CPTR_EL2_BOOT);
        assert_eq!(c.cptr & bit(10), 0, "TFP clear: FP/SIMD not trapped");
        assert_eq!(
            (c.zcr, c.smcr, c.hcrx, c.fgt, c.pmscr),
            (None, None, None, None, None)
        );
        assert!(!c.smprimap);
        assert_eq!(c.mdcr, 0, "no trap bit, no HPMN without a PMU");
        assert_eq!(
            (c.icc_sre, c.ich_hcr, c.mpam, c.brbcr, c.amu, c.trfcr),
            (None, None, None, None, None, None),
            "no register that exists only with a feature"
        );
        assert!(!c.gcs);
    }

    #[test]
    fn the_gic_interface_el1_gets_is_the_one_the_device_tree_describes() {
        let cpuif = IdRegs {
            pfr0: 1 << 24,
            ..BARE
        };
        let v3 = El2Controls::for_el1(&cpuif, GicVersion::V3);
        assert_eq!(v3.icc_sre, Some(ICC_SRE_EL2_SRE | ICC_SRE_EL2_ENABLE));
        assert_eq!(v3.ich_hcr, Some(0), "the virtual interface off");
        let v2 = El2Controls::for_el1(&cpuif, GicVersion::V2);
        assert_eq!(
            v2.icc_sre,
            Some(ICC_SRE_EL2_ENABLE),
            "a GICv2 tree: SRE = 0, EL1 uses the memory-mapped interface"
        );
        assert_eq!(
            v2.ich_hcr, None,
            "ICH registers are inaccessible with SRE = 0"
        );
        for gic in [GicVersion::V2, GicVersion::V3] {
            let c = El2Controls::for_el1(&BARE, gic);
            assert_eq!((c.icc_sre, c.ich_hcr), (None, None), "no system registers");
        }
    }

    #[test]
    fn mpam_is_untrapped_with_mpam_and_mpamhcr_is_written_only_where_it_exists() {
        let v1 = IdRegs {
            pfr0: 1 << 40,
            ..BARE
        };
        let c = El2Controls::for_el1(&v1, V3);
        assert_eq!(
            c.mpam,
            Some(Mpam {
                mpam2: 0,
                mpamhcr: None
            })
        );
        let with_hcr = IdRegs {
            mpam_has_hcr: true,
            ..v1
        };
        assert_eq!(
            El2Controls::for_el1(&with_hcr, V3).mpam.unwrap().mpamhcr,
            Some(0)
        );
        let v0p1 = IdRegs {
            pfr1: 1 << 16,
            ..BARE
        };
        assert!(
            El2Controls::for_el1(&v0p1, V3).mpam.is_some(),
            "MPAM v0.1 has only MPAM_frac"
        );
        let with_sme = IdRegs {
            pfr1: 1 << 24,
            ..v1
        };
        assert_eq!(
            El2Controls::for_el1(&with_sme, V3).mpam.unwrap().mpam2,
            MPAM2_EL2_ENMPAMSM
        );
    }

    #[test]
    fn branch_records_carry_cycles_and_mispredicts_and_el2_is_never_recorded_or_traced() {
        let brbe = IdRegs {
            dfr0: 1 << 52,
            ..BARE
        };
        let c = El2Controls::for_el1(&brbe, V3);
        assert_eq!(c.brbcr, Some(bit(3) | bit(4)));
        assert_eq!(c.brbcr.unwrap() & bit(1), 0, "E2BRE clear");
        let trf = IdRegs {
            dfr0: 1 << 40,
            ..BARE
        };
        let c = El2Controls::for_el1(&trf, V3);
        assert_eq!(c.trfcr, Some(0), "E2TRE clear: trace prohibited at EL2");
        assert_eq!(
            (c.brbcr, El2Controls::for_el1(&brbe, V3).trfcr),
            (None, None)
        );
    }

    #[test]
    fn activity_monitors_count_every_architected_and_auxiliary_counter() {
        for (aux, set1) in [(0, 0), (3, 0b111), (16, 0xffff), (200, 0xffff)] {
            let amu = IdRegs {
                pfr0: 1 << 44,
                amu_aux_counters: aux,
                ..BARE
            };
            assert_eq!(
                El2Controls::for_el1(&amu, V3).amu,
                Some(ActivityMonitors { set0: 0b1111, set1 }),
                "{aux} auxiliary counters"
            );
        }
    }

    #[test]
    fn gcs_controls_are_cleared_and_gcs_untrapped_only_with_gcs() {
        let gcs = IdRegs {
            pfr1: 1 << 44,
            mmfr1: 1 << 40,
            ..BARE
        };
        let c = El2Controls::for_el1(&gcs, V3);
        assert!(c.gcs);
        assert_eq!(c.hcrx, Some(HCRX_GCSEN));
        assert!(!El2Controls::for_el1(&max(), V3).gcs);
    }

    #[test]
    fn sve_and_sme_are_untrapped_with_the_largest_vector_lengths() {
        let c = El2Controls::for_el1(&max(), V3);
        assert_eq!(c.cptr, CPTR_EL2_RES1, "TZ, TSM and TFP all clear");
        assert_eq!(c.zcr, Some(0xf));
        assert_eq!(c.smcr, Some(0xf | SMCR_FA64 | SMCR_EZT0));
    }

    #[test]
    fn allocation_tags_are_untrapped_only_with_mte2() {
        assert_eq!(El2Controls::for_el1(&BARE, V3).hcr, 0);
        for (mte, ata) in [(1, 0), (2, HCR_EL2_ATA), (3, HCR_EL2_ATA)] {
            let id = IdRegs {
                pfr1: mte << 8,
                ..BARE
            };
            assert_eq!(El2Controls::for_el1(&id, V3).hcr, ata, "MTE field {mte}");
        }
    }

    #[test]
    fn hcrx_enables_mops_and_tcr2_only_when_present() {
        let c = El2Controls::for_el1(&max(), V3);
        assert_eq!(c.hcrx, Some(HCRX_MSCEN | HCRX_TCR2EN));
        let no_mops = IdRegs { isar2: 0, ..max() };
        assert_eq!(El2Controls::for_el1(&no_mops, V3).hcrx, Some(HCRX_TCR2EN));
        let no_hcx = IdRegs { mmfr1: 0, ..max() };
        assert_eq!(El2Controls::for_el1(&no_hcx, V3).hcrx, None);
    }

    #[test]
    fn hcrx_untraps_ls64_as_far_as_it_exists_and_never_takes_el1_mops_exceptions() {
        for (ls64, bits) in [
            (0, 0),
            (1, HCRX_ENALS),
            (2, HCRX_ENALS | HCRX_ENASR),
            (3, HCRX_ENALS | HCRX_ENASR),
        ] {
            let id = IdRegs {
                isar1: ls64 << 60,
                ..max()
            };
            let hcrx = El2Controls::for_el1(&id, V3).hcrx.unwrap();
            assert_eq!(hcrx & (HCRX_ENALS | HCRX_ENASR), bits, "LS64 field {ls64}");
            assert_eq!(hcrx & HCRX_MCE2, 0, "MOPS exceptions stay EL1's");
        }
    }

    #[test]
    fn mdcr_gives_el1_every_counter_and_does_not_count_el2() {
        let c = El2Controls::for_el1(&max(), V3);
        assert_eq!(c.mdcr, 6 | MDCR_HPMD | MDCR_HCCD);
        let v3p1 = IdRegs {
            dfr0: 4 << 8,
            ..max()
        };
        assert_eq!(El2Controls::for_el1(&v3p1, V3).mdcr, 6 | MDCR_HPMD);
        let imp_def = IdRegs {
            dfr0: 0xf << 8,
            ..max()
        };
        assert_eq!(El2Controls::for_el1(&imp_def, V3).mdcr, 0);
    }

    #[test]
    fn spe_and_trace_buffers_go_to_el1_only_when_they_exist_and_el3_lets_go() {
        let spe = IdRegs {
            dfr0: (3 << 32) | (1 << 44),
            ..BARE
        };
        let c = El2Controls::for_el1(&spe, V3);
        assert_eq!(c.mdcr, MDCR_E2PB_EL1_OWNED | MDCR_E2TB_EL1_OWNED);
        assert_eq!(c.pmscr, Some(PMSCR_EL2_PA_PCT));
        let owned_by_el3 = IdRegs {
            spe_buffer_prohibited: true,
            trbe_prohibited: true,
            ..spe
        };
        let c = El2Controls::for_el1(&owned_by_el3, V3);
        assert_eq!(c.mdcr, MDCR_E2PB_EL1_OWNED);
        assert_eq!(c.pmscr, None);
    }

    #[test]
    fn fine_grained_traps_set_exactly_the_negative_bits_of_present_features() {
        let fgt = El2Controls::for_el1(&max(), V3).fgt.unwrap();
        let expected = bit(60) | bit(59) | bit(58) | bit(57) | bit(55) | bit(54);
        assert_eq!(fgt.hfgrtr, expected);
        assert_eq!(fgt.hfgwtr, expected);
        assert_eq!((fgt.hfgitr, fgt.hdfgrtr, fgt.hdfgwtr), (0, 0, 0));
        assert_eq!((fgt.hafgrtr, fgt.hdfgxtr2), (None, None));

        let everything = IdRegs {
            pfr0: (1 << 32) | (1 << 44),
            pfr1: (1 << 24) | (1 << 44) | (1 << 48),
            isar1: 3 << 60,
            mmfr0: 2 << 56,
            mmfr3: (1 << 8) | (1 << 16) | (1 << 20) | (1 << 24),
            dfr0: (9 << 8) | (3 << 32) | (1 << 52),
            ..max()
        };
        let fgt = El2Controls::for_el1(&everything, V3).fgt.unwrap();
        assert_eq!(fgt.hfgrtr, 0xfff4 << 48, "bits 63..52 and 50");
        assert_eq!(fgt.hfgitr, 0x1f << 55);
        assert_eq!(fgt.hdfgrtr, 0xf << 59);
        assert_eq!(fgt.hdfgwtr, 0x7 << 60);
        assert_eq!(fgt.hafgrtr, Some(0));
        assert_eq!(fgt.hdfgxtr2, Some(0b11100));
    }
}

//! The EL2 trap and control registers an EL1 kernel boots with, computed
//! from the CPU's ID registers.
//!
//! `Documentation/arch/arm64/booting.rst` (Linux) states what a kernel
//! entered at EL1 needs from EL2: FP/SIMD, SVE and SME not trapped, the
//! full vector lengths (`ZCR_EL2.LEN`, `SMCR_EL2.LEN`), `HCRX_EL2` set up
//! when FEAT_HCX exists, debug and PMU usable, and the fine-grained traps
//! (FEAT_FGT) cleared. Linux's own `arch/arm64/include/asm/el2_setup.h`
//! does the same when it boots at EL2; this follows it. The trap bits whose
//! name starts with `n` trap when they are **0**, so each is set exactly when
//! the feature behind it exists (otherwise the bit is RES0).
//!
//! Pure: the ID registers come in as [`IdRegs`], so the policy is
//! host-tested; `arch::aarch64::el1` reads them and writes the result.

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
    fn amu(&self) -> bool {
        field(self.pfr0, 44) != 0
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
    /// FEAT_LS64_ACCDATA: ID_AA64ISAR1_EL1.LS64 >= 3.
    fn ls64_accdata(&self) -> bool {
        field(self.isar1, 60) >= 3
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
    /// HCRX_EL2, with FEAT_HCX.
    pub hcrx: Option<u64>,
    pub mdcr: u64,
    /// PMSCR_EL2, with SPE whose buffer EL2 may configure.
    pub pmscr: Option<u64>,
    pub fgt: Option<FineGrainedTraps>,
}

impl El2Controls {
    pub fn for_el1(id: &IdRegs) -> Self {
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
        let hcrx = id.hcx().then(|| {
            [
                (id.mops(), HCRX_MSCEN),
                (id.tcr2(), HCRX_TCR2EN),
                (id.gcs(), HCRX_GCSEN),
                (id.fpmr(), HCRX_ENFPM),
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
    };

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
        let c = El2Controls::for_el1(&BARE);
        assert_eq!(c.cptr, CPTR_EL2_BOOT);
        assert_eq!(c.cptr & bit(10), 0, "TFP clear: FP/SIMD not trapped");
        assert_eq!(
            (c.zcr, c.smcr, c.hcrx, c.fgt, c.pmscr),
            (None, None, None, None, None)
        );
        assert!(!c.smprimap);
        assert_eq!(c.mdcr, 0, "no trap bit, no HPMN without a PMU");
    }

    #[test]
    fn sve_and_sme_are_untrapped_with_the_largest_vector_lengths() {
        let c = El2Controls::for_el1(&max());
        assert_eq!(c.cptr, CPTR_EL2_RES1, "TZ, TSM and TFP all clear");
        assert_eq!(c.zcr, Some(0xf));
        assert_eq!(c.smcr, Some(0xf | SMCR_FA64 | SMCR_EZT0));
    }

    #[test]
    fn allocation_tags_are_untrapped_only_with_mte2() {
        assert_eq!(El2Controls::for_el1(&BARE).hcr, 0);
        for (mte, ata) in [(1, 0), (2, HCR_EL2_ATA), (3, HCR_EL2_ATA)] {
            let id = IdRegs {
                pfr1: mte << 8,
                ..BARE
            };
            assert_eq!(El2Controls::for_el1(&id).hcr, ata, "MTE field {mte}");
        }
    }

    #[test]
    fn hcrx_enables_mops_and_tcr2_only_when_present() {
        let c = El2Controls::for_el1(&max());
        assert_eq!(c.hcrx, Some(HCRX_MSCEN | HCRX_TCR2EN));
        let no_mops = IdRegs { isar2: 0, ..max() };
        assert_eq!(El2Controls::for_el1(&no_mops).hcrx, Some(HCRX_TCR2EN));
        let no_hcx = IdRegs { mmfr1: 0, ..max() };
        assert_eq!(El2Controls::for_el1(&no_hcx).hcrx, None);
    }

    #[test]
    fn mdcr_gives_el1_every_counter_and_does_not_count_el2() {
        let c = El2Controls::for_el1(&max());
        assert_eq!(c.mdcr, 6 | MDCR_HPMD | MDCR_HCCD);
        let v3p1 = IdRegs {
            dfr0: 4 << 8,
            ..max()
        };
        assert_eq!(El2Controls::for_el1(&v3p1).mdcr, 6 | MDCR_HPMD);
        let imp_def = IdRegs {
            dfr0: 0xf << 8,
            ..max()
        };
        assert_eq!(El2Controls::for_el1(&imp_def).mdcr, 0);
    }

    #[test]
    fn spe_and_trace_buffers_go_to_el1_only_when_they_exist_and_el3_lets_go() {
        let spe = IdRegs {
            dfr0: (3 << 32) | (1 << 44),
            ..BARE
        };
        let c = El2Controls::for_el1(&spe);
        assert_eq!(c.mdcr, MDCR_E2PB_EL1_OWNED | MDCR_E2TB_EL1_OWNED);
        assert_eq!(c.pmscr, Some(PMSCR_EL2_PA_PCT));
        let owned_by_el3 = IdRegs {
            spe_buffer_prohibited: true,
            trbe_prohibited: true,
            ..spe
        };
        let c = El2Controls::for_el1(&owned_by_el3);
        assert_eq!(c.mdcr, MDCR_E2PB_EL1_OWNED);
        assert_eq!(c.pmscr, None);
    }

    #[test]
    fn fine_grained_traps_set_exactly_the_negative_bits_of_present_features() {
        let fgt = El2Controls::for_el1(&max()).fgt.unwrap();
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
        let fgt = El2Controls::for_el1(&everything).fgt.unwrap();
        assert_eq!(fgt.hfgrtr, 0xfff4 << 48, "bits 63..52 and 50");
        assert_eq!(fgt.hfgitr, 0x1f << 55);
        assert_eq!(fgt.hdfgrtr, 0xf << 59);
        assert_eq!(fgt.hdfgwtr, 0x7 << 60);
        assert_eq!(fgt.hafgrtr, Some(0));
        assert_eq!(fgt.hdfgxtr2, Some(0b11100));
    }
}

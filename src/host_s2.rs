//! The host stage-2: what the EL1 kernel may reach with its own loads,
//! stores and instruction fetches.
//!
//! EL1 is untrusted. With `HCR_EL2.VM = 1` every EL1 access is translated a
//! second time through this identity map (IPA == PA), built at boot by the
//! one stage-2 engine in [`crate::pgtable`] (the CPU's stage-2 descriptors
//! are the SMMU's: VMSAv8-64 stage 2):
//!
//! * RAM is mapped read-write-executable, Normal write-back, except every
//!   range EL2 owns (image and stacks, page pool: page tables, stream tables,
//!   queues, ownership records). Those are exactly the pages the ownership
//!   record ([`crate::mem::ownership`]) marks EL2's: both are built from
//!   [`BootLayout::el2_owned`](crate::layout::BootLayout::el2_owned) and the
//!   hyp never moves a page between owners after boot, so the two agree.
//! * Everything else below `2^ipa_bits` is MMIO, mapped read-write and never
//!   executable, except the ranges the hyp *hides* (every SMMU's register
//!   frames, bus masters no SMMU the hyp owns sits in front of) and the
//!   ranges it *traps* (register frames it emulates, e.g. the GIC's
//!   table-base registers). An EL1 access to either takes a stage-2 fault
//!   to EL2: a trapped range is emulated, a hidden one becomes an external
//!   abort injected into EL1.
//! * MMIO is Normal at stage 2 so that EL1's stage-1 memory type decides
//!   (Arm ARM, "Combining the stage 1 and stage 2 attributes": the more
//!   restrictive type wins, so Device at stage 1 stays Device). pKVM maps
//!   host MMIO the same way. MMIO is never executable.
//!
//! Blocks (1 GiB, 2 MiB with the 4 KiB granule) are used wherever alignment
//! allows, so the whole map of a QEMU `virt` machine takes a handful of
//! tables. The table is never changed after boot, so it needs no TLB
//! maintenance beyond the invalidation before it is first enabled.

use crate::memmap::{PhysRange, RangeSet};
use crate::pgtable::{
    self, Config, Granule, MemType, PageTable, Prot, StartLevelPolicy, TableMemory,
};
use crate::platform::Platform;
use core::fmt;

/// Translation granule of the host stage-2.
pub const GRANULE: Granule = Granule::Size4K;

/// Most disjoint pieces the EL1-visible address space may be cut into.
const MAX_RUNS: usize = 64;

/// Protection of EL1's RAM: read, write, execute, Normal write-back.
pub const RAM_PROT: Prot = Prot {
    read: true,
    write: true,
    no_exec: false,
    mem: MemType::Normal,
};

/// Protection of MMIO EL1 may use: read, write, never executable, Normal so
/// that EL1's stage-1 type (Device) applies.
pub const MMIO_PROT: Prot = Prot {
    read: true,
    write: true,
    no_exec: true,
    mem: MemType::Normal,
};

/// What EL1 may reach, as ranges. Every range is grown to whole pages.
#[derive(Clone, Copy, Debug)]
pub struct HostView<'a> {
    /// RAM, from the device tree.
    pub ram: &'a [PhysRange],
    /// RAM the hyp owns.
    pub el2: &'a [PhysRange],
    /// MMIO EL1 must never reach (accesses are aborted).
    pub hidden: &'a [PhysRange],
    /// MMIO the hyp emulates (accesses trap to EL2).
    pub trapped: &'a [PhysRange],
    /// Size of the host's IPA space: nothing at or above `2^ipa_bits` is
    /// mapped.
    pub ipa_bits: u32,
}

/// What a mapped run of the host stage-2 is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Ram,
    Mmio,
}

impl RunKind {
    pub const fn prot(self) -> Prot {
        match self {
            RunKind::Ram => RAM_PROT,
            RunKind::Mmio => MMIO_PROT,
        }
    }
}

/// Why the host stage-2 could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostS2Error {
    /// More disjoint pieces than the planner can hold.
    TooFragmented,
    /// IPA or output size the engine does not support.
    BadSize,
    /// The engine refused a run (out of table memory, or a bug).
    Table(pgtable::Error),
}

impl fmt::Display for HostS2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFragmented => {
                write!(f, "host address space cut into more than {MAX_RUNS} pieces")
            }
            Self::BadSize => write!(f, "unsupported host IPA or physical address size"),
            Self::Table(e) => write!(f, "host stage-2 table: {e}"),
        }
    }
}

impl From<pgtable::Error> for HostS2Error {
    fn from(e: pgtable::Error) -> Self {
        Self::Table(e)
    }
}

/// The MMIO of `platform` EL1 must never reach: every SMMU's registers and
/// every SMMU PMCG's (bus masters the SMMU does not translate), the
/// board's bus masters outside any SMMU, and, unless `pcie_translated`
/// (every requester reaches an SMMU the hyp drives), the PCIe host
/// bridge's ECAM and windows.
pub fn hidden_mmio<'p>(
    platform: &'p Platform<'_>,
    pcie_translated: bool,
) -> impl Iterator<Item = PhysRange> + 'p {
    let untranslated = platform.pcie.as_ref().filter(|_| !pcie_translated);
    let bridge = untranslated.into_iter().flat_map(|host| {
        let windows = host
            .windows
            .iter()
            .map(|w| PhysRange::new(w.cpu_addr, w.size));
        core::iter::once(host.ecam).chain(windows)
    });
    platform
        .smmus
        .iter()
        .map(|s| s.regs)
        .chain(platform.smmu_pmcgs.iter().copied())
        .chain(platform.hidden.iter().copied())
        .chain(bridge)
}

/// The smallest IPA size (at least 32 bits, at most `pa_bits` and 48) that
/// covers every address below `limit`.
pub fn ipa_bits_for(limit: u64, pa_bits: u32) -> u32 {
    let needed = 64 - limit.saturating_sub(1).leading_zeros();
    needed.clamp(pgtable::MIN_IPA_BITS, pa_bits.min(pgtable::MAX_IPA_BITS))
}

/// Calls `f` with each run EL1 may reach, in address order, RAM and MMIO
/// runs never merged.
pub fn for_each_run<F: FnMut(PhysRange, RunKind)>(
    view: &HostView<'_>,
    mut f: F,
) -> Result<(), HostS2Error> {
    let page = GRANULE.size();
    let top = 1u64
        .checked_shl(view.ipa_bits)
        .filter(|_| view.ipa_bits < 64)
        .ok_or(HostS2Error::BadSize)?;
    let mut reachable: RangeSet<MAX_RUNS> = RangeSet::new();
    reachable
        .add(PhysRange::new(0, top))
        .map_err(|_| HostS2Error::TooFragmented)?;
    for hole in view.el2.iter().chain(view.hidden).chain(view.trapped) {
        reachable
            .remove(hole.align_out(page))
            .map_err(|_| HostS2Error::TooFragmented)?;
    }
    let mut ram: RangeSet<MAX_RUNS> = RangeSet::new();
    for r in view.ram {
        ram.add(r.align_out(page))
            .map_err(|_| HostS2Error::TooFragmented)?;
    }
    for run in reachable.iter() {
        // Split the run at RAM boundaries (both sets are sorted).
        let mut at = run.start;
        for r in ram.iter() {
            let start = r.start.clamp(at, run.end());
            let end = r.end().clamp(at, run.end());
            if start == end {
                continue;
            }
            if at < start {
                f(PhysRange::new(at, start - at), RunKind::Mmio);
            }
            f(PhysRange::new(start, end - start), RunKind::Ram);
            at = end;
        }
        if at < run.end() {
            f(PhysRange::new(at, run.end() - at), RunKind::Mmio);
        }
    }
    Ok(())
}

/// Builds the host stage-2 for `view` in `mem`, with output addresses of
/// `pa_bits` (the CPU's `ID_AA64MMFR0_EL1.PARange`, capped at 48).
pub fn build<M: TableMemory>(
    view: &HostView<'_>,
    pa_bits: u32,
    mem: M,
) -> Result<PageTable<M>, HostS2Error> {
    let oas = output_bits(pa_bits).ok_or(HostS2Error::BadSize)?;
    let cfg = Config::new(GRANULE, view.ipa_bits, oas, StartLevelPolicy::FewestLevels)
        .map_err(|_| HostS2Error::BadSize)?;
    let mut pt = PageTable::new(cfg, mem)?;
    let mut result = Ok(());
    for_each_run(view, |run, kind| {
        if result.is_ok() {
            result = pt.map(run.start, run.start, run.size, kind.prot());
        }
    })?;
    result?;
    Ok(pt)
}

/// The supported output size at or below `pa_bits` (the encodings of
/// `VTCR_EL2.PS`).
fn output_bits(pa_bits: u32) -> Option<u32> {
    [48, 44, 42, 40, 36, 32].into_iter().find(|&b| b <= pa_bits)
}

/// `ID_AA64MMFR0_EL1.PARange` as a number of bits.
pub fn pa_range_bits(pa_range: u64) -> u32 {
    match pa_range {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

/// `VTCR_EL2` for a host stage-2 of `cfg` (VMID 0, 8-bit VMIDs): table
/// walks Normal write-back inner-shareable, no hardware access/dirty flags.
pub const fn vtcr(cfg: &Config) -> u64 {
    const RES1: u64 = 1 << 31;
    const IRGN0_WB: u64 = 0b01 << 8;
    const ORGN0_WB: u64 = 0b01 << 10;
    const SH0_INNER: u64 = 0b11 << 12;
    RES1 | IRGN0_WB
        | ORGN0_WB
        | SH0_INNER
        | (cfg.s2t0sz() as u64)
        | ((cfg.s2sl0() as u64) << 6)
        | ((cfg.s2tg() as u64) << 14)
        | ((cfg.s2ps() as u64) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgtable::audit::AuditedMemory;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// A QEMU-virt-like machine: 1 GiB of RAM at 1 GiB, the hyp in its
    /// first 34 MiB, an SMMU, fw_cfg, an ITS control frame and a
    /// redistributor region.
    struct Machine {
        ram: [PhysRange; 1],
        el2: [PhysRange; 2],
        hidden: [PhysRange; 2],
        trapped: [PhysRange; 2],
    }

    fn machine() -> Machine {
        Machine {
            ram: [PhysRange::new(GIB, GIB)],
            el2: [
                PhysRange::new(0x4020_0000, 0x11_0000),
                PhysRange::new(0x4040_0000, 32 * MIB),
            ],
            hidden: [
                PhysRange::new(0x0905_0000, 0x2_0000),
                PhysRange::new(0x0902_0000, 0x18),
            ],
            trapped: [
                PhysRange::new(0x0808_0000, 0x1_0000),
                PhysRange::new(0x080a_0000, 0xf6_0000),
            ],
        }
    }

    fn view(m: &Machine) -> HostView<'_> {
        HostView {
            ram: &m.ram,
            el2: &m.el2,
            hidden: &m.hidden,
            trapped: &m.trapped,
            ipa_bits: 40,
        }
    }

    fn built(m: &Machine) -> PageTable<AuditedMemory> {
        let cfg = Config::new(GRANULE, 40, 48, StartLevelPolicy::FewestLevels).unwrap();
        let (mem, _tlb) = AuditedMemory::new(&cfg, false);
        build(&view(m), 48, mem).unwrap()
    }

    #[test]
    fn every_el2_page_is_unreachable_and_the_rest_of_ram_is_identity_mapped_executable() {
        let m = machine();
        let pt = built(&m);
        for pa in (GIB..2 * GIB).step_by(0x1000) {
            let el2 = m.el2.iter().any(|r| r.align_out(0x1000).contains(pa));
            match pt.leaf_at(pa) {
                None => assert!(el2, "EL1 RAM page {pa:#x} unmapped"),
                Some(leaf) => {
                    assert!(!el2, "EL2 page {pa:#x} reachable from EL1");
                    assert_eq!(pt.iova_to_phys(pa), Some(pa));
                    assert_eq!(leaf.prot, RAM_PROT);
                }
            }
        }
    }

    #[test]
    fn hidden_and_trapped_mmio_fault_and_other_mmio_is_mapped_never_executable() {
        let m = machine();
        let pt = built(&m);
        for r in m.hidden.iter().chain(&m.trapped) {
            let r = r.align_out(0x1000);
            for pa in (r.start..r.end()).step_by(0x1000) {
                assert_eq!(pt.leaf_at(pa), None, "{pa:#x} reachable");
            }
            // The neighbouring pages stay usable.
            assert_eq!(pt.leaf_at(r.start - 0x1000).unwrap().prot, MMIO_PROT);
            assert_eq!(pt.leaf_at(r.end()).unwrap().prot, MMIO_PROT);
        }
        for pa in [
            0,
            0x0900_0000,
            0x10_0000_0000,
            0x80_0000_0000,
            (1 << 40) - 0x1000,
        ] {
            let leaf = pt.leaf_at(pa).unwrap();
            assert_eq!(leaf.prot, MMIO_PROT, "{pa:#x}");
            assert_eq!(pt.iova_to_phys(pa), Some(pa));
        }
    }

    #[test]
    fn the_whole_map_uses_blocks_and_takes_a_handful_of_tables() {
        let m = machine();
        let pt = built(&m);
        let mut one_gib_blocks = 0;
        pt.walk(0, 1 << 40, &mut |leaf| {
            if leaf.size == GIB {
                one_gib_blocks += 1;
            }
        });
        // 1 TiB of address space: all but the two GiB holding MMIO holes
        // and the hyp are single 1 GiB blocks.
        assert_eq!(one_gib_blocks, 1024 - 2);
        assert!(pt.table_count() <= 12, "{} tables", pt.table_count());
    }

    #[test]
    fn runs_split_at_ram_boundaries_and_cover_everything_reachable() {
        let m = machine();
        let mut runs = Vec::new();
        for_each_run(&view(&m), |r, k| runs.push((r, k))).unwrap();
        let mut at = 0;
        let mut total = 0;
        for (r, k) in &runs {
            assert!(r.start >= at, "runs out of order");
            let in_ram = m.ram[0].contains_range(r);
            assert_eq!(in_ram, *k == RunKind::Ram, "{r} is {k:?}");
            at = r.end();
            total += r.size;
        }
        let holes: u64 = m
            .el2
            .iter()
            .chain(&m.hidden)
            .chain(&m.trapped)
            .map(|r| r.align_out(0x1000).size)
            .sum();
        assert_eq!(total, (1 << 40) - holes);
    }

    #[test]
    fn too_many_holes_are_refused_rather_than_dropped() {
        let holes: Vec<PhysRange> = (0..MAX_RUNS as u64 + 1)
            .map(|i| PhysRange::new(i * 0x10_0000, 0x1000))
            .collect();
        let v = HostView {
            ram: &[],
            el2: &[],
            hidden: &holes,
            trapped: &[],
            ipa_bits: 32,
        };
        assert_eq!(for_each_run(&v, |_, _| {}), Err(HostS2Error::TooFragmented));
    }

    #[test]
    fn ipa_size_covers_the_highest_address_within_the_cpu_limits() {
        assert_eq!(ipa_bits_for(0x4000_0000, 48), 32);
        assert_eq!(ipa_bits_for(1 << 32, 48), 32);
        assert_eq!(ipa_bits_for((1 << 32) + 1, 48), 33);
        assert_eq!(ipa_bits_for(0x100_0000_0000, 48), 40);
        assert_eq!(ipa_bits_for(0x100_0000_0001, 40), 40);
        assert_eq!(ipa_bits_for(u64::MAX, 52), 48);
    }

    #[test]
    fn vtcr_encodes_the_walk_the_engine_builds() {
        let cfg = Config::new(GRANULE, 40, 48, StartLevelPolicy::FewestLevels).unwrap();
        let v = vtcr(&cfg);
        assert_eq!(v & 0x3f, 24, "T0SZ");
        assert_eq!((v >> 6) & 3, u64::from(cfg.s2sl0()), "SL0");
        assert_eq!((v >> 8) & 0x3f, 0b11_01_01, "IRGN0, ORGN0, SH0");
        assert_eq!((v >> 14) & 3, 0, "TG0 = 4K");
        assert_eq!((v >> 16) & 7, 0b101, "PS = 48 bits");
        assert_ne!(v & (1 << 31), 0, "RES1");
    }
}

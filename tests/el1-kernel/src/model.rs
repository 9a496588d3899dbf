//! A model of the hyp's hypercall ABI, written from `docs/hypercall-abi.md`:
//! for any x0..x7 it predicts x0..x3 and applies the call's effect to its
//! own state (domains with their leaves, attachments, counters). The fuzz
//! suite compares every real result with the prediction.
//!
//! What the model knows of the machine ([`Env`]) comes from the device
//! tree, the EL2 layout EL1 can derive, and the discovery calls (SMMU and
//! service limits, fixed counters), read once before fuzzing.
//!
//! Not modelled, so the fuzz stays away from them: running out of EL2
//! memory, SMMU failures, DMA (no faults are ever logged), the counts of
//! TLB invalidations and syncs (only checked to never go backwards).

use smmu_hyp::hypercall::abi::{self, prot, stats};
use smmu_hyp::smccc;

/// Domain slots the model can track (the hyp has fewer).
pub const MAX_DOMAINS: usize = 64;
/// Leaves per domain the model can track; the generator keeps below.
pub const MAX_LEAVES: usize = 512;
/// Attachments the model can track.
pub const MAX_ATTACH: usize = 256;
/// Leaves one map may create in the model; the generator keeps below.
pub const MAX_NEW: usize = 64;
use smmu_hyp::mem::PAGE_SIZE as PAGE;

/// One page or block mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leaf {
    pub iova: u64,
    pub pa: u64,
    pub size: u64,
    pub prot: u64,
}

impl Leaf {
    pub const fn end(&self) -> u64 {
        self.iova + self.size
    }
}

#[derive(Clone, Copy)]
pub struct Domain {
    pub live: bool,
    /// Of the slot's current or last domain (0: never used).
    pub generation: u32,
    pub ipa_bits: u32,
    /// log2 of the granule.
    pub gshift: u32,
    pub start_level: u32,
    pub pgsizes: u64,
    pub attached: u32,
    /// Sorted by iova, non-overlapping.
    pub leaves: [Leaf; MAX_LEAVES],
    pub n: usize,
    /// Tables below the root, cached; `None` after a change.
    tables: Option<u64>,
}

impl Domain {
    const EMPTY: Domain = Domain {
        live: false,
        generation: 0,
        ipa_bits: 0,
        gshift: 0,
        start_level: 0,
        pgsizes: 0,
        attached: 0,
        leaves: [Leaf {
            iova: 0,
            pa: 0,
            size: 0,
            prot: 0,
        }; MAX_LEAVES],
        n: 0,
        tables: None,
    };

    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves[..self.n]
    }

    /// Index of the first leaf ending after `addr`.
    fn first_after(&self, addr: u64) -> usize {
        self.leaves().partition_point(|l| l.end() <= addr)
    }

    /// The leaf holding `addr`.
    pub fn leaf_at(&self, addr: u64) -> Option<Leaf> {
        let i = self.first_after(addr);
        self.leaves().get(i).copied().filter(|l| l.iova <= addr)
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        let i = self.first_after(start);
        self.leaves().get(i).is_some_and(|l| l.iova < end)
    }

    /// Lowest IPA bit a table entry at `level` resolves.
    fn level_shift(&self, level: u32) -> u32 {
        self.gshift + (3 - level) * (self.gshift - 3)
    }

    fn level_of(&self, size: u64) -> u32 {
        (1..=3)
            .find(|&l| 1u64 << self.level_shift(l) == size)
            .unwrap_or(3)
    }

    /// Tables below the root: one per entry, at each level above a leaf's,
    /// that has something mapped below it (empty tables are freed).
    fn tables_below_root(&mut self) -> u64 {
        if let Some(t) = self.tables {
            return t;
        }
        let mut tables = 0;
        for level in self.start_level + 1..=3 {
            let shift = self.level_shift(level - 1);
            let mut last = None;
            for i in 0..self.n {
                let l = self.leaves[i];
                if self.level_of(l.size) >= level {
                    let key = l.iova >> shift;
                    if last != Some(key) {
                        tables += 1;
                        last = Some(key);
                    }
                }
            }
        }
        self.tables = Some(tables);
        tables
    }

    fn bytes(&self) -> u64 {
        self.leaves().iter().map(|l| l.size).sum()
    }
}

/// The machine as the model sees it.
#[derive(Clone, Copy)]
pub struct Env {
    /// RAM regions (grown to whole pages), as `(start, end)`.
    pub ram: [(u64, u64); 8],
    pub nram: usize,
    /// EL2's RAM: the hyp image and its page pool.
    pub el2: [(u64, u64); 2],
    /// `no-map` reserved memory (grown to whole pages): RAM no device may
    /// be given.
    pub no_map: [(u64, u64); 8],
    pub nno_map: usize,
    /// The hyp's own MMIO (grown to whole pages): never given to a device.
    pub forbidden: [(u64, u64); 16],
    pub nforbidden: usize,
    /// MMIO windows a device may be given (translated PCIe windows).
    pub windows: [(u64, u64); 4],
    pub nwindows: usize,
    /// MSI doorbell pages: write-only.
    pub doorbells: [(u64, u64); 4],
    pub ndoorbells: usize,
    /// StreamIDs EL1 may attach: `(smmu, first, count)`.
    pub streams: [(u64, u64, u64); 8],
    pub nstreams: usize,
    /// SMMU indices.
    pub smmus: u64,
    /// StreamIDs below this exist, per SMMU index.
    pub sid_limit: [u64; 4],
    pub oas_bits: u32,
    pub max_ipa_bits: u32,
    /// 4K, 16K, 64K supported by every SMMU.
    pub granules: [bool; 3],
    pub max_domains: usize,
    pub max_attach: usize,
    /// Fixed results, read before fuzzing.
    pub iommu_info: [u64; 3],
    pub smmu_info: [[u64; 3]; 4],
    pub smmu_events: [[u64; 3]; 4],
    pub el2_pages: u64,
}

impl Env {
    pub const EMPTY: Env = Env {
        ram: [(0, 0); 8],
        nram: 0,
        el2: [(0, 0); 2],
        no_map: [(0, 0); 8],
        nno_map: 0,
        forbidden: [(0, 0); 16],
        nforbidden: 0,
        windows: [(0, 0); 4],
        nwindows: 0,
        doorbells: [(0, 0); 4],
        ndoorbells: 0,
        streams: [(0, 0, 0); 8],
        nstreams: 0,
        smmus: 0,
        sid_limit: [0; 4],
        oas_bits: 0,
        max_ipa_bits: 0,
        granules: [false; 3],
        max_domains: 0,
        max_attach: 0,
        iommu_info: [0; 3],
        smmu_info: [[0; 3]; 4],
        smmu_events: [[0; 3]; 4],
        el2_pages: 0,
    };

    fn is_ram(&self, start: u64, end: u64) -> bool {
        self.ram[..self.nram]
            .iter()
            .any(|&(s, e)| start >= s && end <= e)
    }

    fn touches_ram(&self, start: u64, end: u64) -> bool {
        self.ram[..self.nram]
            .iter()
            .any(|&(s, e)| start < e && end > s)
    }

    fn forbidden(&self, start: u64, end: u64) -> bool {
        self.forbidden[..self.nforbidden]
            .iter()
            .any(|&(s, e)| start < e && end > s)
    }

    fn within(list: &[(u64, u64)], start: u64, end: u64) -> bool {
        list.iter().any(|&(s, e)| start >= s && end <= e)
    }

    fn doorbell(&self, start: u64, end: u64) -> bool {
        Self::within(&self.doorbells[..self.ndoorbells], start, end)
    }

    fn in_window(&self, start: u64, end: u64) -> bool {
        Self::within(&self.windows[..self.nwindows], start, end)
    }

    fn el2_owned(&self, start: u64, end: u64) -> bool {
        self.el2.iter().any(|&(s, e)| start < e && end > s)
    }

    fn touches_no_map(&self, start: u64, end: u64) -> bool {
        self.no_map[..self.nno_map]
            .iter()
            .any(|&(s, e)| start < e && end > s)
    }

    fn stream_allowed(&self, smmu: u64, sid: u64) -> bool {
        self.streams[..self.nstreams]
            .iter()
            .any(|&(i, first, count)| i == smmu && sid >= first && sid < first + count)
    }
}

/// What a call must return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly these x0..x3.
    Exact([u64; 4]),
    /// `HYP_STATS(SMMU_COMMANDS)` of this SMMU: success, counters that
    /// never go backwards, no SMMU error.
    Commands(usize),
}

pub struct Model {
    pub env: Env,
    pub domains: [Domain; MAX_DOMAINS],
    /// `(smmu, sid, slot)`.
    pub attached: [(u64, u64, usize); MAX_ATTACH],
    pub nattached: usize,
    pub maps: u64,
    pub unmaps: u64,
    pub errors: u64,
    pub mapped: u64,
    pub refs: u64,
    /// Last TLBI and sync counts seen, per SMMU.
    pub commands: [[u64; 2]; 4],
}

const fn err(code: i64) -> Expect {
    Expect::Exact([code as u64, 0, 0, 0])
}

const fn ok(x: [u64; 3]) -> Expect {
    Expect::Exact([0, x[0], x[1], x[2]])
}

/// `Ok(())` or the status a check fails with.
type Check = Result<(), i64>;

fn check(cond: bool, code: i64) -> Check {
    if cond { Ok(()) } else { Err(code) }
}

impl Model {
    pub const EMPTY: Model = Model {
        env: Env::EMPTY,
        domains: [Domain::EMPTY; MAX_DOMAINS],
        attached: [(0, 0, 0); MAX_ATTACH],
        nattached: 0,
        maps: 0,
        unmaps: 0,
        errors: 0,
        mapped: 0,
        refs: 0,
        commands: [[0; 2]; 4],
    };

    /// Starts over with `env` and no domains (the hyp's state must be
    /// the same: nothing allocated, attached or mapped; `calls` are its
    /// CALLS counters now).
    pub fn reset(&mut self, env: Env, calls: [u64; 3], generations: &[u32]) {
        self.env = env;
        for (d, g) in self.domains.iter_mut().zip(generations) {
            *d = Domain::EMPTY;
            d.generation = *g;
        }
        self.nattached = 0;
        [self.maps, self.unmaps, self.errors] = calls;
        self.mapped = 0;
        self.refs = 0;
        self.commands = [[0; 2]; 4];
    }

    pub fn live_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.domains[..self.env.max_domains]
            .iter()
            .enumerate()
            .filter(|(_, d)| d.live)
            .map(|(i, d)| id_of(i, d.generation))
    }

    pub fn live_count(&self) -> usize {
        self.live_ids().count()
    }

    /// The live domain of `id`, by slot.
    pub fn lookup(&self, id: u64) -> Option<usize> {
        let generation = id >> 16;
        if generation == 0 || generation > u64::from(u32::MAX) {
            return None;
        }
        let slot = (id & 0xffff) as usize;
        let d = self.domains[..self.env.max_domains].get(slot)?;
        (d.live && u64::from(d.generation) == generation).then_some(slot)
    }

    /// Predicts the result of `a` (x0..x7) and applies its effect.
    pub fn call(&mut self, a: &[u64; 8]) -> Expect {
        let fid = a[0] as u32;
        match fid {
            smccc::SMCCC_VERSION => return Expect::Exact([smccc::VERSION_1_1, 0, 0, 0]),
            smccc::SMCCC_ARCH_FEATURES => {
                let known = matches!(
                    a[1] as u32,
                    smccc::SMCCC_VERSION | smccc::SMCCC_ARCH_FEATURES
                );
                return Expect::Exact([if known { 0 } else { smccc::NOT_SUPPORTED }, 0, 0, 0]);
            }
            abi::HYP_ABI_VERSION => return Expect::Exact([abi::ABI_VERSION, 0, 0, 0]),
            abi::HYP_ECHO => return Expect::Exact([0, a[1], a[2], a[3]]),
            abi::HYP_FEATURES => {
                let known = abi::ALL_CALLS.contains(&(a[1] as u32));
                return err(if known {
                    abi::SUCCESS
                } else {
                    abi::NOT_SUPPORTED
                });
            }
            _ => {}
        }
        let r = match fid {
            abi::HYP_IOMMU_INFO => ok(self.env.iommu_info),
            abi::HYP_SMMU_INFO => self
                .smmu(a[1])
                .map_or_else(err, |i| ok(self.env.smmu_info[i])),
            abi::HYP_DOMAIN_ALLOC => self.alloc(a[1], a[2]),
            abi::HYP_DOMAIN_FREE => self.free(a[1]),
            abi::HYP_ATTACH => self.attach(a[1], a[2], a[3]),
            abi::HYP_DETACH => self.detach(a[1], a[2]),
            abi::HYP_MAP => self.map(a[1], a[2], a[3], a[4], a[5], a[6]),
            abi::HYP_UNMAP => self.unmap(a[1], a[2], a[3], a[4], a[5]),
            abi::HYP_IOVA_TO_PHYS => self.iova_to_phys(a[1], a[2]),
            abi::HYP_FAULT_POP => match self.smmu(a[1]) {
                Err(e) => err(e),
                Ok(_) => err(abi::NOT_FOUND),
            },
            abi::HYP_STATS => self.stats(a[1], a[2]),
            _ => return err(abi::NOT_SUPPORTED),
        };
        if let Expect::Exact(x) = r
            && (x[0] as i64) < 0
        {
            self.errors += 1;
        }
        r
    }

    fn smmu(&self, index: u64) -> Result<usize, i64> {
        if index >= self.env.smmus {
            return Err(abi::OUT_OF_RANGE);
        }
        Ok(index as usize)
    }

    fn stream(&self, smmu: u64, sid: u64) -> Result<usize, i64> {
        let i = self.smmu(smmu)?;
        check(sid < self.env.sid_limit[i], abi::OUT_OF_RANGE)?;
        check(self.env.stream_allowed(smmu, sid), abi::DENIED)?;
        Ok(i)
    }

    fn alloc(&mut self, ipa_bits: u64, granule: u64) -> Expect {
        let g = match granule {
            0 | 0x1000 => 0,
            0x4000 => 1,
            0x1_0000 => 2,
            _ => return err(abi::INVALID_PARAMETER),
        };
        if !self.env.granules[g] {
            return err(abi::INVALID_PARAMETER);
        }
        if !(32..=u64::from(self.env.max_ipa_bits)).contains(&ipa_bits) {
            return err(abi::INVALID_PARAMETER);
        }
        let gshift = [12, 14, 16][g];
        let Some((start_level, pgsizes)) =
            stage2_config(gshift, ipa_bits as u32, self.env.oas_bits)
        else {
            return err(abi::INVALID_PARAMETER);
        };
        let max = self.env.max_domains.min(255);
        let Some(slot) = self.domains[..max].iter().position(|d| !d.live) else {
            return err(abi::TOO_MANY);
        };
        let d = &mut self.domains[slot];
        let generation = match d.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        *d = Domain::EMPTY;
        d.live = true;
        d.generation = generation;
        d.ipa_bits = ipa_bits as u32;
        d.gshift = gshift;
        d.start_level = start_level;
        d.pgsizes = pgsizes;
        ok([id_of(slot, generation), pgsizes, ipa_bits])
    }

    fn free(&mut self, id: u64) -> Expect {
        let Some(slot) = self.lookup(id) else {
            return err(abi::NOT_FOUND);
        };
        let d = &mut self.domains[slot];
        if d.attached > 0 {
            return err(abi::BUSY);
        }
        let bytes = d.bytes();
        let refs = ram_pages(&self.env, d.leaves());
        d.live = false;
        d.n = 0;
        d.tables = None;
        self.mapped -= bytes;
        self.refs -= refs;
        ok([0; 3])
    }

    fn attach(&mut self, smmu: u64, sid: u64, id: u64) -> Expect {
        if let Err(e) = self.stream(smmu, sid) {
            return err(e);
        }
        let Some(slot) = self.lookup(id) else {
            return err(abi::NOT_FOUND);
        };
        let att = &self.attached[..self.nattached];
        if att.iter().any(|&(s, i, _)| s == smmu && i == sid) {
            return err(abi::EXISTS);
        }
        if self.nattached >= self.env.max_attach.min(MAX_ATTACH) {
            return err(abi::TOO_MANY);
        }
        self.attached[self.nattached] = (smmu, sid, slot);
        self.nattached += 1;
        self.domains[slot].attached += 1;
        ok([0; 3])
    }

    fn detach(&mut self, smmu: u64, sid: u64) -> Expect {
        if let Err(e) = self.stream(smmu, sid) {
            return err(e);
        }
        let att = &self.attached[..self.nattached];
        let Some(i) = att.iter().position(|&(s, x, _)| s == smmu && x == sid) else {
            return err(abi::NOT_FOUND);
        };
        let slot = att[i].2;
        self.attached.copy_within(i + 1..self.nattached, i);
        self.nattached -= 1;
        self.domains[slot].attached -= 1;
        ok([0; 3])
    }

    /// The byte size of `pgcount` pages of `pgsize` in `d`.
    fn size_of(d: &Domain, pgsize: u64, pgcount: u64) -> Result<u64, i64> {
        check(
            pgsize.is_power_of_two() && d.pgsizes & pgsize != 0 && pgcount != 0,
            abi::INVALID_PARAMETER,
        )?;
        pgsize.checked_mul(pgcount).ok_or(abi::INVALID_PARAMETER)
    }

    fn map(
        &mut self,
        id: u64,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot_bits: u64,
    ) -> Expect {
        match self.try_map(id, iova, pa, pgsize, pgcount, prot_bits) {
            Ok(size) => ok([size, 0, 0]),
            Err(e) => err(e),
        }
    }

    fn try_map(
        &mut self,
        id: u64,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        bits: u64,
    ) -> Result<u64, i64> {
        let slot = self.lookup(id).ok_or(abi::NOT_FOUND)?;
        let mmio = bits & prot::MMIO != 0;
        check(
            bits & !prot::ALL == 0
                && bits & (prot::READ | prot::WRITE) != 0
                && !(mmio && bits & prot::NONCACHEABLE != 0),
            abi::INVALID_PARAMETER,
        )?;
        let d = &self.domains[slot];
        let size = Self::size_of(d, pgsize, pgcount)?;
        check((iova | pa) & (pgsize - 1) == 0, abi::UNALIGNED)?;
        let end = iova.checked_add(size).ok_or(abi::INVALID_PARAMETER)?;
        check(end <= 1u64 << d.ipa_bits, abi::OUT_OF_RANGE)?;
        let pa_end = pa.checked_add(size).ok_or(abi::INVALID_PARAMETER)?;
        check(pa_end <= 1u64 << self.env.oas_bits, abi::OUT_OF_RANGE)?;
        let env = &self.env;
        let ram = env.is_ram(pa, pa_end);
        // The hyp's order: RAM, a doorbell, the hyp's own MMIO, a window.
        let doorbell = !ram && !env.touches_ram(pa, pa_end) && env.doorbell(pa, pa_end);
        check(
            ram || doorbell
                || (!env.touches_ram(pa, pa_end)
                    && !env.forbidden(pa, pa_end)
                    && env.in_window(pa, pa_end)),
            abi::DENIED,
        )?;
        check(ram != mmio, abi::INVALID_PARAMETER)?;
        check(!(doorbell && bits & prot::READ != 0), abi::DENIED)?;
        check(!(ram && env.el2_owned(pa, pa_end)), abi::DENIED)?;
        check(!(ram && env.touches_no_map(pa, pa_end)), abi::DENIED)?;
        check(!d.overlaps(iova, end), abi::EXISTS)?;

        // Largest leaf the alignment of iova, pa and the rest allows.
        let mut new = [Leaf::default(); MAX_NEW];
        let mut n = 0;
        let (mut at, mut out) = (iova, pa);
        while at < end {
            let s = (0..64)
                .rev()
                .map(|b| 1u64 << b)
                .find(|&s| d.pgsizes & s != 0 && at % s == 0 && out % s == 0 && end - at >= s)
                .unwrap_or(pgsize);
            if n == new.len() || d.n + n == MAX_LEAVES {
                // The generator keeps below this; the model cannot follow.
                return Err(i64::MIN);
            }
            new[n] = Leaf {
                iova: at,
                pa: out,
                size: s,
                prot: bits,
            };
            n += 1;
            at += s;
            out += s;
        }
        let d = &mut self.domains[slot];
        let i = d.first_after(iova);
        d.leaves.copy_within(i..d.n, i + n);
        d.leaves[i..i + n].copy_from_slice(&new[..n]);
        d.n += n;
        d.tables = None;
        self.maps += 1;
        self.mapped += size;
        if ram {
            self.refs += size / PAGE;
        }
        Ok(size)
    }

    fn unmap(&mut self, id: u64, iova: u64, pgsize: u64, pgcount: u64, flags: u64) -> Expect {
        match self.try_unmap(id, iova, pgsize, pgcount, flags) {
            Ok(x) => ok(x),
            Err(e) => err(e),
        }
    }

    fn try_unmap(
        &mut self,
        id: u64,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        flags: u64,
    ) -> Result<[u64; 3], i64> {
        let slot = self.lookup(id).ok_or(abi::NOT_FOUND)?;
        check(flags & !abi::unmap::ALL == 0, abi::INVALID_PARAMETER)?;
        let d = &self.domains[slot];
        let size = Self::size_of(d, pgsize, pgcount)?;
        check(iova & (pgsize - 1) == 0, abi::UNALIGNED)?;
        let end = iova.checked_add(size).ok_or(abi::INVALID_PARAMETER)?;
        check(end <= 1u64 << d.ipa_bits, abi::OUT_OF_RANGE)?;
        let whole = flags & abi::unmap::WHOLE_LEAF != 0;
        let (mut start, mut stop) = (iova, end);
        if let Some(l) = d.leaf_at(iova)
            && l.iova < iova
        {
            check(whole, abi::PARTIAL_BLOCK)?;
            start = l.iova;
        }
        if let Some(l) = d.leaf_at(end - 1)
            && l.end() > end
        {
            check(whole, abi::PARTIAL_BLOCK)?;
            stop = l.end();
        }
        let first = d.first_after(start);
        let last = d.leaves().partition_point(|l| l.iova < stop);
        check(last > first, abi::NOT_FOUND)?;
        let gone = &d.leaves[first..last];
        let bytes: u64 = gone.iter().map(|l| l.size).sum();
        let refs = ram_pages(&self.env, gone);
        let d = &mut self.domains[slot];
        d.leaves.copy_within(last..d.n, first);
        d.n -= last - first;
        d.tables = None;
        self.unmaps += 1;
        self.mapped -= bytes;
        self.refs -= refs;
        Ok([bytes, start, stop - start])
    }

    fn iova_to_phys(&self, id: u64, iova: u64) -> Expect {
        let Some(slot) = self.lookup(id) else {
            return err(abi::NOT_FOUND);
        };
        let d = &self.domains[slot];
        if iova >= 1u64 << d.ipa_bits {
            return err(abi::OUT_OF_RANGE);
        }
        match d.leaf_at(iova) {
            Some(l) => ok([l.pa + (iova - l.iova), l.prot, l.size]),
            None => err(abi::NOT_FOUND),
        }
    }

    fn stats(&mut self, selector: u64, index: u64) -> Expect {
        match selector {
            stats::CALLS => ok([self.maps, self.unmaps, self.errors]),
            stats::OBJECTS => ok([self.live_count() as u64, self.nattached as u64, self.mapped]),
            stats::MEMORY => ok([self.table_bytes(), self.refs, self.env.el2_pages]),
            stats::SMMU_COMMANDS | stats::SMMU_EVENTS => match self.smmu(index) {
                Err(e) => err(e),
                Ok(i) if selector == stats::SMMU_COMMANDS => Expect::Commands(i),
                Ok(i) => ok(self.env.smmu_events[i]),
            },
            _ => err(abi::INVALID_PARAMETER),
        }
    }

    /// Page-table bytes of every live domain: the root and every table
    /// below it, each one granule.
    pub fn table_bytes(&mut self) -> u64 {
        let max = self.env.max_domains;
        self.domains[..max]
            .iter_mut()
            .filter(|d| d.live)
            .map(|d| (1 + d.tables_below_root()) << d.gshift)
            .sum()
    }
}

/// DMA page references the RAM leaves of `leaves` hold.
fn ram_pages(env: &Env, leaves: &[Leaf]) -> u64 {
    leaves
        .iter()
        .filter(|l| env.is_ram(l.pa, l.pa + l.size))
        .map(|l| l.size / PAGE)
        .sum()
}

pub const fn id_of(slot: usize, generation: u32) -> u64 {
    (generation as u64) << 16 | slot as u64
}

/// Start level and page sizes of a stage-2 domain without concatenated
/// root tables (the QEMU board's policy), per the Arm ARM rules
/// `docs/pgtable.md` lists; `None` if there is none.
pub fn stage2_config(gshift: u32, ipa_bits: u32, oas_bits: u32) -> Option<(u32, u64)> {
    let stride = gshift - 3;
    let shift = |l: u32| gshift + (3 - l) * stride;
    let (min, max) = if gshift == 12 { (0, 2) } else { (1, 3) };
    let legal = |l: u32| {
        let pamax = match (gshift, l) {
            (12, 0) | (16, 1) => oas_bits >= 44,
            (14, 1) => oas_bits >= 42,
            _ => true,
        };
        pamax && ipa_bits > shift(l) && ipa_bits - shift(l) <= stride + 4
    };
    let level = (min..=max)
        .rev()
        .find(|&l| legal(l) && ipa_bits - shift(l) <= stride)?;
    let mut sizes = 0;
    for l in level..=3 {
        let leaf = l == 3 || (gshift == 12 && l >= 1) || l == 2;
        if leaf {
            sizes |= 1u64 << shift(l);
        }
    }
    Some((level, sizes))
}

//! Model-based fuzz: random calls (function IDs and arguments biased to
//! valid ones) go through the dispatcher to the service on the real
//! driver and the auditing fake SMMUs, and a deliberately simple model
//! (maps and sets, written from `docs/hypercall-abi.md`) predicts every
//! result. Any difference fails at once with the call that caused it.
//! Reference counts, mapped leaves and counters are compared with the
//! model as it goes. `HYP_MAP_LIST` gets lists of 1-4 generated maps,
//! read from EL1's RAM ([`ListRam`]), which the model runs as `HYP_MAP`s,
//! all or nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::vec::Vec;

use super::*;
use crate::hypercall::abi::{self, prot, stats};
use crate::pgtable::{Config, Granule, MIN_IPA_BITS, StartLevelPolicy};

const CALLS: usize = 100_000;
const SLOTS: usize = 6;
const OAS: u32 = 44;
const PAGE: u64 = 0x1000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

#[derive(Clone)]
struct MDomain {
    /// Leaf sizes, largest first.
    sizes: Vec<u64>,
    bitmap: u64,
    ipa_bits: u32,
    /// iova -> (size, pa, prot bits).
    leaves: BTreeMap<u64, (u64, u64, u64)>,
    attached: u32,
}

impl MDomain {
    fn containing(&self, addr: u64) -> Option<(u64, u64, u64, u64)> {
        let (&base, &(size, pa, prot)) = self.leaves.range(..=addr).next_back()?;
        (addr < base + size).then_some((base, size, pa, prot))
    }
    fn any_in(&self, start: u64, end: u64) -> bool {
        self.containing(start).is_some() || self.leaves.range(start..end).next().is_some()
    }
}

#[derive(Default)]
struct Model {
    /// Per slot: generation, live domain id.
    slots: Vec<(u32, Option<u64>)>,
    domains: HashMap<u64, MDomain>,
    dead: Vec<u64>,
    attached: HashMap<(u64, u64), u64>,
    refs: HashMap<u64, u32>,
    faults: [VecDeque<(u32, u64)>; 2],
    injected: [u64; 2],
    /// Records drained into the fault log (all injected ones at each pop).
    logged: [u64; 2],
    maps: u64,
    unmaps: u64,
    errors: u64,
    mapped: u64,
}

type Res = Result<[u64; 3], i64>;

fn stream_allowed(smmu: u64, sid: u64) -> bool {
    STREAMS.iter().any(|r| {
        r.smmu as u64 == smmu
            && sid >= u64::from(r.first)
            && sid < u64::from(r.first) + u64::from(r.count)
    })
}

fn forbidden() -> Vec<PhysRange> {
    [GIC, smmu_regs(0), smmu_regs(1), smmu_regs(2)]
        .iter()
        .map(|r| r.align_out(PAGE))
        .collect()
}

enum Class {
    Ram,
    Mmio,
    Doorbell,
    Forbidden,
}

fn classify(pa: u64, size: u64) -> Class {
    let end = pa + size;
    let within = |r: &PhysRange| pa >= r.start && end <= r.end();
    if within(&RAM) {
        return Class::Ram;
    }
    if pa < RAM.end() && end > RAM.start {
        return Class::Forbidden;
    }
    if within(&DOORBELL) {
        return Class::Doorbell;
    }
    if forbidden().iter().any(|f| pa < f.end() && end > f.start) {
        return Class::Forbidden;
    }
    if MMIO_WINDOWS.iter().any(within) {
        return Class::Mmio;
    }
    Class::Forbidden
}

fn prot_ok(bits: u64) -> bool {
    bits & !prot::ALL == 0
        && bits & (prot::READ | prot::WRITE) != 0
        && bits & (prot::MMIO | prot::NONCACHEABLE) != prot::MMIO | prot::NONCACHEABLE
}

impl Model {
    fn size_of(d: &MDomain, pgsize: u64, pgcount: u64) -> Result<u64, i64> {
        if !pgsize.is_power_of_two() || d.bitmap & pgsize == 0 || pgcount == 0 {
            return Err(abi::INVALID_PARAMETER);
        }
        pgsize.checked_mul(pgcount).ok_or(abi::INVALID_PARAMETER)
    }

    fn pages(pa: u64, size: u64) -> impl Iterator<Item = u64> {
        (0..size / PAGE).map(move |i| pa + i * PAGE)
    }

    fn release(&mut self, pa: u64, size: u64) {
        if matches!(classify(pa, size), Class::Ram) {
            for p in Self::pages(pa, size) {
                let r = self.refs.entry(p).or_default();
                assert!(*r > 0, "model underflow at {p:#x}");
                *r -= 1;
            }
        }
    }

    fn domain_alloc(&mut self, ipa: u64, granule: u64) -> Res {
        let g = match granule {
            0 | 0x1000 => Granule::Size4K,
            0x4000 => Granule::Size16K,
            0x1_0000 => Granule::Size64K,
            _ => return Err(abi::INVALID_PARAMETER),
        };
        if !(u64::from(MIN_IPA_BITS)..=u64::from(OAS)).contains(&ipa) {
            return Err(abi::INVALID_PARAMETER);
        }
        let Ok(cfg) = Config::new(g, ipa as u32, OAS, StartLevelPolicy::NoConcatenation) else {
            return Err(abi::INVALID_PARAMETER);
        };
        let Some(slot) = self.slots.iter().position(|s| s.1.is_none()) else {
            return Err(abi::TOO_MANY);
        };
        let generation = match self.slots[slot].0.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        let id = u64::from(generation) << 16 | slot as u64;
        self.slots[slot] = (generation, Some(id));
        let bitmap = cfg.leaf_sizes();
        let sizes = (0..64)
            .rev()
            .filter(|b| bitmap & (1 << b) != 0)
            .map(|b| 1u64 << b)
            .collect();
        self.domains.insert(
            id,
            MDomain {
                sizes,
                bitmap,
                ipa_bits: ipa as u32,
                leaves: BTreeMap::new(),
                attached: 0,
            },
        );
        Ok([id, bitmap, ipa])
    }

    fn domain_free(&mut self, id: u64) -> Res {
        let d = self.domains.get(&id).ok_or(abi::NOT_FOUND)?;
        if d.attached > 0 {
            return Err(abi::BUSY);
        }
        let d = self.domains.remove(&id).ok_or(abi::NOT_FOUND)?;
        for (_, &(size, pa, _)) in d.leaves.iter() {
            self.release(pa, size);
            self.mapped -= size;
        }
        let slot = (id & 0xffff) as usize;
        self.slots[slot].1 = None;
        self.dead.push(id);
        Ok([0; 3])
    }

    fn smmu(&self, smmu: u64) -> Result<(), i64> {
        match smmu {
            0 | 1 => Ok(()),
            2 => Err(abi::NOT_FOUND),
            _ => Err(abi::OUT_OF_RANGE),
        }
    }

    fn stream(&self, smmu: u64, sid: u64) -> Result<(), i64> {
        self.smmu(smmu)?;
        if sid >= 1 << 16 {
            return Err(abi::OUT_OF_RANGE);
        }
        if !stream_allowed(smmu, sid) {
            return Err(abi::DENIED);
        }
        Ok(())
    }

    fn attach(&mut self, smmu: u64, sid: u64, id: u64) -> Res {
        self.stream(smmu, sid)?;
        if !self.domains.contains_key(&id) {
            return Err(abi::NOT_FOUND);
        }
        if self.attached.contains_key(&(smmu, sid)) {
            return Err(abi::EXISTS);
        }
        if self.attached.len() >= super::super::attach::MAX_ATTACHMENTS {
            return Err(abi::TOO_MANY);
        }
        self.attached.insert((smmu, sid), id);
        if let Some(d) = self.domains.get_mut(&id) {
            d.attached += 1;
        }
        Ok([0; 3])
    }

    fn detach(&mut self, smmu: u64, sid: u64) -> Res {
        self.stream(smmu, sid)?;
        let id = self.attached.remove(&(smmu, sid)).ok_or(abi::NOT_FOUND)?;
        if let Some(d) = self.domains.get_mut(&id) {
            d.attached -= 1;
        }
        Ok([0; 3])
    }

    /// `HYP_MAP_LIST` where no list can be read (the fuzz dispatches
    /// without EL1 memory; `map_list.rs` tests readable lists).
    fn map_list_unreadable(&mut self, id: u64, list: u64, count: u64, bits: u64) -> Res {
        self.domains.get(&id).ok_or(abi::NOT_FOUND)?;
        if !prot_ok(bits)
            || count == 0
            || count > abi::map_list::MAX_ENTRIES
            || !list.is_multiple_of(8)
        {
            return Err(abi::INVALID_PARAMETER);
        }
        Err(abi::DENIED)
    }

    /// `HYP_MAP_LIST` of `entries` (iova, pa, pgsize, pgcount): each as a
    /// `HYP_MAP`, all or nothing.
    fn map_list(&mut self, id: u64, entries: &[[u64; 4]], bits: u64) -> Res {
        self.domains.get(&id).ok_or(abi::NOT_FOUND)?;
        let max = abi::map_list::MAX_ENTRIES as usize;
        if !prot_ok(bits) || entries.is_empty() || entries.len() > max {
            return Err(abi::INVALID_PARAMETER);
        }
        let saved = (
            self.domains.get(&id).cloned(),
            self.refs.clone(),
            self.mapped,
            self.maps,
        );
        let mut total = 0;
        for &[iova, pa, pgsize, pgcount] in entries {
            match self.map(id, iova, pa, pgsize, pgcount, bits) {
                Ok([size, _, _]) => total += size,
                Err(e) => {
                    let (domain, refs, mapped, maps) = saved;
                    if let Some(d) = domain {
                        self.domains.insert(id, d);
                    }
                    (self.refs, self.mapped, self.maps) = (refs, mapped, maps);
                    return Err(e);
                }
            }
        }
        Ok([total, 0, 0])
    }

    fn map(&mut self, id: u64, iova: u64, pa: u64, pgsize: u64, pgcount: u64, bits: u64) -> Res {
        let d = self.domains.get(&id).ok_or(abi::NOT_FOUND)?;
        if !prot_ok(bits) {
            return Err(abi::INVALID_PARAMETER);
        }
        let size = Self::size_of(d, pgsize, pgcount)?;
        if !(iova | pa).is_multiple_of(pgsize) {
            return Err(abi::UNALIGNED);
        }
        let end = iova.checked_add(size).ok_or(abi::INVALID_PARAMETER)?;
        if end > 1 << d.ipa_bits {
            return Err(abi::OUT_OF_RANGE);
        }
        let pa_end = pa.checked_add(size).ok_or(abi::INVALID_PARAMETER)?;
        if pa_end > 1 << OAS {
            return Err(abi::OUT_OF_RANGE);
        }
        let mmio = bits & prot::MMIO != 0;
        let ram = match classify(pa, size) {
            Class::Forbidden => return Err(abi::DENIED),
            Class::Ram if mmio => return Err(abi::INVALID_PARAMETER),
            Class::Mmio | Class::Doorbell if !mmio => return Err(abi::INVALID_PARAMETER),
            Class::Doorbell if bits & prot::READ != 0 => return Err(abi::DENIED),
            Class::Ram => true,
            Class::Mmio | Class::Doorbell => false,
        };
        if ram && (pa < EL2_MEM.end() || (pa < NO_MAP.end() && pa_end > NO_MAP.start)) {
            return Err(abi::DENIED);
        }
        if d.any_in(iova, end) {
            return Err(abi::EXISTS);
        }
        let sizes = d.sizes.clone();
        let d = self.domains.get_mut(&id).ok_or(abi::NOT_FOUND)?;
        let (mut a, mut out) = (iova, pa);
        while a < end {
            let s = sizes
                .iter()
                .copied()
                .find(|&s| a % s == 0 && out % s == 0 && end - a >= s)
                .unwrap_or(PAGE);
            d.leaves.insert(a, (s, out, bits));
            a += s;
            out += s;
        }
        if ram {
            for p in Self::pages(pa, size) {
                *self.refs.entry(p).or_default() += 1;
            }
        }
        self.mapped += size;
        self.maps += 1;
        Ok([size, 0, 0])
    }

    fn unmap(&mut self, id: u64, iova: u64, pgsize: u64, pgcount: u64, flags: u64) -> Res {
        let d = self.domains.get(&id).ok_or(abi::NOT_FOUND)?;
        if flags & !abi::unmap::ALL != 0 {
            return Err(abi::INVALID_PARAMETER);
        }
        let size = Self::size_of(d, pgsize, pgcount)?;
        if !iova.is_multiple_of(pgsize) {
            return Err(abi::UNALIGNED);
        }
        let end = iova.checked_add(size).ok_or(abi::INVALID_PARAMETER)?;
        if end > 1 << d.ipa_bits {
            return Err(abi::OUT_OF_RANGE);
        }
        let whole = flags & abi::unmap::WHOLE_LEAF != 0;
        let (mut start, mut stop) = (iova, end);
        if let Some((base, _, _, _)) = d.containing(iova)
            && base < iova
        {
            if !whole {
                return Err(abi::PARTIAL_BLOCK);
            }
            start = base;
        }
        if let Some((base, len, _, _)) = d.containing(end - 1)
            && base + len > end
        {
            if !whole {
                return Err(abi::PARTIAL_BLOCK);
            }
            stop = base + len;
        }
        let gone: Vec<u64> = d.leaves.range(start..stop).map(|(&k, _)| k).collect();
        if gone.is_empty() {
            return Err(abi::NOT_FOUND);
        }
        let mut bytes = 0;
        for k in gone {
            let Some((s, pa, _)) = self.domains.get_mut(&id).and_then(|d| d.leaves.remove(&k))
            else {
                continue;
            };
            self.release(pa, s);
            bytes += s;
        }
        self.mapped -= bytes;
        self.unmaps += 1;
        Ok([bytes, start, stop - start])
    }

    fn iova_to_phys(&self, id: u64, iova: u64) -> Res {
        let d = self.domains.get(&id).ok_or(abi::NOT_FOUND)?;
        if iova >= 1 << d.ipa_bits {
            return Err(abi::OUT_OF_RANGE);
        }
        let (base, size, pa, bits) = d.containing(iova).ok_or(abi::NOT_FOUND)?;
        Ok([pa + (iova - base), bits, size])
    }

    fn fault_pop(&mut self, smmu: u64) -> Res {
        self.smmu(smmu)?;
        self.logged[smmu as usize] = self.injected[smmu as usize];
        let q = &mut self.faults[smmu as usize];
        let (sid, addr) = q.pop_front().ok_or(abi::NOT_FOUND)?;
        let more = if q.is_empty() { 0 } else { abi::fault::MORE };
        let flags = abi::fault::RNW
            | abi::fault::S2
            | abi::fault::INPUT_VALID
            | abi::fault::ADDR2_VALID
            | more
            | 2 << abi::fault::CLASS_SHIFT;
        Ok([u64::from(sid) | 0x10 << 32 | flags, addr, addr & !0xfff])
    }

    /// The prediction for `stats`, and which results are predicted
    /// (table bytes and SMMU command counts are not).
    fn stats(&self, selector: u64, index: u64) -> (Res, [bool; 3]) {
        let all = [true; 3];
        match selector {
            stats::CALLS => (Ok([self.maps, self.unmaps, self.errors]), all),
            stats::OBJECTS => (
                Ok([
                    self.domains.len() as u64,
                    self.attached.len() as u64,
                    self.mapped,
                ]),
                all,
            ),
            stats::MEMORY => (
                Ok([
                    0,
                    self.refs.values().map(|&r| u64::from(r)).sum(),
                    EL2_MEM.size / PAGE,
                ]),
                [false, true, true],
            ),
            stats::SMMU_COMMANDS | stats::SMMU_EVENTS => match self.smmu(index) {
                Err(e) => (Err(e), all),
                Ok(()) if selector == stats::SMMU_COMMANDS => (Ok([0; 3]), [false; 3]),
                Ok(()) => (Ok([self.logged[index as usize], 0, 0]), all),
            },
            _ => (Err(abi::INVALID_PARAMETER), all),
        }
    }
}

/// Random arguments, biased towards valid ones.
struct Gen<'m> {
    rng: &'m mut Rng,
    model: &'m Model,
}

impl Gen<'_> {
    fn domain(&mut self) -> u64 {
        let live: Vec<u64> = self.model.domains.keys().copied().collect();
        let r = self.rng.below(100);
        if r < 85 && !live.is_empty() {
            let mut live = live;
            live.sort_unstable();
            self.rng.pick(&live)
        } else if r < 93 && !self.model.dead.is_empty() {
            self.rng.pick(&self.model.dead)
        } else {
            let junk = self.rng.next();
            self.rng.pick(&[0, 1, 1 << 16 | 5, 7 << 16, u64::MAX, junk])
        }
    }

    /// A granule-aligned address inside a random mapped leaf of `id`.
    fn in_leaf(&mut self, id: u64) -> Option<u64> {
        let d = self.model.domains.get(&id)?;
        if d.leaves.is_empty() {
            return None;
        }
        let i = self.rng.below(d.leaves.len() as u64) as usize;
        let (&base, &(size, _, _)) = d.leaves.iter().nth(i)?;
        let granule = d.sizes.last().copied().unwrap_or(PAGE);
        Some(base + self.rng.below(size / granule) * granule)
    }

    /// A live domain without attached streams, usually.
    fn free_candidate(&mut self) -> u64 {
        let mut idle: Vec<u64> = self
            .model
            .domains
            .iter()
            .filter(|(_, d)| d.attached == 0)
            .map(|(&id, _)| id)
            .collect();
        idle.sort_unstable();
        if !idle.is_empty() && self.rng.pct(70) {
            self.rng.pick(&idle)
        } else {
            self.domain()
        }
    }

    /// An attached stream, usually.
    fn attached_stream(&mut self) -> (u64, u64) {
        let mut att: Vec<(u64, u64)> = self.model.attached.keys().copied().collect();
        att.sort_unstable();
        if !att.is_empty() && self.rng.pct(60) {
            self.rng.pick(&att)
        } else {
            let smmu = self.smmu();
            (smmu, self.sid(smmu))
        }
    }

    fn smmu(&mut self) -> u64 {
        match self.rng.below(100) {
            0..=69 => 0,
            70..=87 => 1,
            88..=92 => 2,
            93..=96 => 3,
            _ => self.rng.next(),
        }
    }

    fn sid(&mut self, smmu: u64) -> u64 {
        match self.rng.below(100) {
            0..=79 if smmu == 1 => 0x100 + self.rng.below(16),
            0..=59 => self.rng.below(64),
            60..=79 => 0x1000 + self.rng.below(8),
            80..=93 => self.rng.below(0x2000),
            94..=96 => 1 << 16,
            _ => self.rng.next(),
        }
    }

    fn pgsize(&mut self, id: u64) -> u64 {
        let bitmap = self.model.domains.get(&id).map_or(PAGE, |d| d.bitmap);
        let sizes: Vec<u64> = (0..64)
            .filter(|b| bitmap & (1 << b) != 0)
            .map(|b| 1u64 << b)
            .collect();
        match self.rng.below(100) {
            0..=74 => sizes[0],
            75..=89 => sizes[(1).min(sizes.len() - 1)],
            90..=91 => self.rng.pick(&sizes),
            _ => self.rng.pick(&[
                0,
                3,
                0x800,
                0x2000,
                0x4000,
                0x1_0000,
                1 << 21,
                1 << 30,
                1 << 63,
            ]),
        }
    }

    fn pgcount(&mut self) -> u64 {
        match self.rng.below(100) {
            0..=69 => 1 + self.rng.below(8),
            70..=84 => 1 + self.rng.below(64),
            85..=89 => 512,
            90..=93 => 0,
            94..=96 => 1 << 60,
            _ => self.rng.next(),
        }
    }

    fn iova(&mut self, pgsize: u64, ipa_bits: u32) -> u64 {
        let ps = pgsize.clamp(1, 1 << 40);
        match self.rng.below(100) {
            0..=79 => self.rng.below(48) * ps,
            80..=87 => 0x4000_0000 + self.rng.below(16) * ps,
            88..=91 => self.rng.below(48) * ps + 0x1000,
            92..=95 => (1u64 << ipa_bits).saturating_sub(ps * self.rng.below(3)),
            _ => self.rng.next(),
        }
    }

    /// A physical address, and whether it wants MMIO attributes.
    fn pa(&mut self, pgsize: u64) -> (u64, bool) {
        let ps = pgsize.clamp(1, 1 << 40);
        match self.rng.below(100) {
            0..=59 => (EL1_RAM + self.rng.below(24) * ps.min(2 << 20), false),
            60..=67 => (EL2_MEM.start + self.rng.below(4) * PAGE, false),
            68..=79 => (MMIO + self.rng.below(32) * ps.min(2 << 20), true),
            80..=83 => (
                self.rng.pick(&[
                    GIC.start,
                    smmu_regs(0).start,
                    smmu_regs(1).start + 0x1_f000,
                    DOORBELL.start,
                    DOORBELL.start,
                    MMIO_WINDOWS[1].end(),
                ]),
                true,
            ),
            84..=85 => (RAM.end().saturating_sub(ps), false),
            86..=87 => (NO_MAP.start + self.rng.below(2) * PAGE, false),
            88..=91 => (RAM.start - PAGE, self.rng.pct(50)),
            92..=94 => (1 << OAS, true),
            _ => (self.rng.next() & !0xfff, self.rng.pct(50)),
        }
    }

    fn prot(&mut self, mmio: bool) -> u64 {
        let base = match self.rng.below(100) {
            0..=59 => prot::READ | prot::WRITE,
            60..=69 => prot::READ | prot::NOEXEC,
            70..=74 => prot::WRITE | prot::NOEXEC,
            75..=84 => prot::WRITE | prot::NOEXEC | prot::READ,
            85..=89 => prot::READ | prot::NONCACHEABLE,
            90..=94 => return self.rng.below(64),
            _ => return self.rng.next(),
        };
        if mmio {
            (base & !prot::NONCACHEABLE) | prot::MMIO
        } else if self.rng.pct(3) {
            base | prot::MMIO
        } else {
            base
        }
    }
}

/// Compares every live domain's tables with the model, leaf by leaf.
fn check_tables<S: SmmuBackend>(svc: &Svc<'_, S>, model: &Model) {
    for (&id, d) in &model.domains {
        let leaves = svc
            .with_domain(DomainId(id), |dom| {
                let mut v = Vec::new();
                dom.table().walk(0, u64::MAX, &mut |l| {
                    v.push((
                        l.iova,
                        (l.size, l.pa, crate::hypercall::prot::encode(l.prot)),
                    ));
                });
                v
            })
            .expect("live domain");
        let expected: Vec<_> = d.leaves.iter().map(|(&k, &v)| (k, v)).collect();
        assert_eq!(leaves, expected, "tables of domain {id:#x}");
        let attached = svc
            .with_domain(DomainId(id), |dom| dom.attached())
            .unwrap_or(u32::MAX);
        assert_eq!(attached, d.attached);
    }
}

fn check_refs(storage: &Storage, model: &Model, pa: u64, size: u64) {
    let pa = pa & !(PAGE - 1);
    let size = size.clamp(PAGE, RAM.size);
    if pa.checked_add(size).is_none() || !matches!(classify(pa, size), Class::Ram) {
        return;
    }
    for p in Model::pages(pa, size) {
        assert_eq!(
            storage.refcount(p),
            model.refs.get(&p).copied().unwrap_or(0),
            "refcount of {p:#x}"
        );
    }
}

#[test]
fn random_calls_match_the_model() {
    with_fakes(2, true, |fakes, smmus| {
        let storage = Storage::new(SLOTS);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let mut model = Model {
            slots: std::vec![(0, None); SLOTS],
            ..Model::default()
        };
        let mut rng = Rng(0x005e_ed0f_1077);
        let ram = ListRam::new();
        let mut seen = [0u64; 13];
        let mut per_call: BTreeMap<(u32, i64), u64> = BTreeMap::new();
        for n in 0..CALLS {
            let op = rng.below(100);
            let mut g = Gen {
                rng: &mut rng,
                model: &model,
            };
            // A list written at LIST for a HYP_MAP_LIST, with EL1's RAM
            // readable for that call.
            let mut list: Option<Vec<[u64; 4]>> = None;
            let (args, touched): (client::Args, Option<(u64, u64)>) = match op {
                0..=29 if g.rng.pct(30) => {
                    // A scatter-gather list of maps, sometimes a bad count.
                    let id = g.domain();
                    let ipa = model.domains.get(&id).map_or(40, |d| d.ipa_bits);
                    let n = 1 + g.rng.below(4);
                    let mut entries = Vec::new();
                    let mut mmio = false;
                    for _ in 0..n {
                        let pgsize = g.pgsize(id);
                        let iova = g.iova(pgsize, ipa);
                        let (pa, m) = g.pa(pgsize);
                        mmio = m;
                        entries.push([iova, pa, pgsize, g.pgcount()]);
                    }
                    let p = g.prot(mmio);
                    let count = match g.rng.below(100) {
                        0..=1 => 0,
                        2..=3 => abi::map_list::MAX_ENTRIES + 1,
                        _ => n,
                    };
                    ram.put(LIST, &entries);
                    let [_, pa, pgsize, pgcount] = entries[0];
                    let span = pgsize.saturating_mul(pgcount.min(1 << 14));
                    entries.truncate(count as usize);
                    if count > n {
                        // Never read: refused before the list is.
                        entries.resize(count as usize, [0; 4]);
                    }
                    list = Some(entries);
                    (client::map_list(id, LIST, count, p), Some((pa, span)))
                }
                0..=29 => {
                    let id = g.domain();
                    let pgsize = g.pgsize(id);
                    let ipa = model.domains.get(&id).map_or(40, |d| d.ipa_bits);
                    let iova = g.iova(pgsize, ipa);
                    let (pa, mmio) = g.pa(pgsize);
                    let count = g.pgcount();
                    let p = g.prot(mmio);
                    let span = pgsize.saturating_mul(count.min(1 << 14));
                    (
                        client::map(id, iova, pa, pgsize, count, p),
                        Some((pa, span)),
                    )
                }
                30..=54 => {
                    let id = g.domain();
                    let pgsize = g.pgsize(id);
                    let ipa = model.domains.get(&id).map_or(40, |d| d.ipa_bits);
                    let (iova, count) = match g.in_leaf(id) {
                        Some(a) if g.rng.pct(30) => (a & !(pgsize.max(1) - 1), 1 + g.rng.below(4)),
                        _ => (g.iova(pgsize, ipa), g.pgcount()),
                    };
                    let flags = match g.rng.below(100) {
                        0..=64 => 0,
                        65..=94 => abi::unmap::WHOLE_LEAF,
                        _ => g.rng.next(),
                    };
                    (client::unmap(id, iova, pgsize, count, flags), None)
                }
                55..=64 => {
                    let id = g.domain();
                    let ipa = model.domains.get(&id).map_or(40, |d| d.ipa_bits);
                    let base = match g.in_leaf(id) {
                        Some(a) if g.rng.pct(50) => a,
                        _ => g.iova(PAGE, ipa),
                    };
                    let iova = base.wrapping_add(g.rng.below(PAGE));
                    (client::iova_to_phys(id, iova), None)
                }
                65..=70 => {
                    let ipa = match g.rng.below(10) {
                        0 => g.rng.below(64),
                        _ => 32 + g.rng.below(13),
                    };
                    let granule = g.rng.pick(&[0, 0, 0, 0x1000, 0x4000, 0x1_0000, 0x2000]);
                    (
                        [
                            u64::from(abi::HYP_DOMAIN_ALLOC),
                            ipa,
                            granule,
                            0,
                            0,
                            0,
                            0,
                            0,
                        ],
                        None,
                    )
                }
                71..=74 => {
                    let id = g.free_candidate();
                    (client::domain_free(id), None)
                }
                75..=80 => {
                    let smmu = g.smmu();
                    let sid = g.sid(smmu);
                    let id = g.domain();
                    (
                        [u64::from(abi::HYP_ATTACH), smmu, sid, id, 0, 0, 0, 0],
                        None,
                    )
                }
                81..=86 => {
                    let (smmu, sid) = g.attached_stream();
                    ([u64::from(abi::HYP_DETACH), smmu, sid, 0, 0, 0, 0, 0], None)
                }
                87..=90 => {
                    // Inject a fault on SMMU 0 or 1 sometimes, then pop.
                    let i = g.rng.below(2) as usize;
                    if g.rng.pct(60) && model.faults[i].len() < 60 {
                        let sid = g.rng.below(64) as u32;
                        let addr = g.rng.next() & 0xffff_ffff_f000 | g.rng.below(PAGE);
                        fakes[i].inject_event(translation_fault(sid, addr));
                        model.faults[i].push_back((sid, addr));
                        model.injected[i] += 1;
                    }
                    let mut g = Gen {
                        rng: &mut rng,
                        model: &model,
                    };
                    let smmu = g.smmu();
                    (
                        [u64::from(abi::HYP_FAULT_POP), smmu, 0, 0, 0, 0, 0, 0],
                        None,
                    )
                }
                91..=94 => {
                    let sel = g.rng.below(6);
                    let smmu = g.smmu();
                    ([u64::from(abi::HYP_STATS), sel, smmu, 0, 0, 0, 0, 0], None)
                }
                95..=96 => {
                    let fid = g
                        .rng
                        .pick(&[abi::HYP_MAP, abi::HYP_ECHO, 0xc600_0003, 0xc600_7777]);
                    (client::features(fid), None)
                }
                _ => {
                    let fid = match g.rng.below(3) {
                        0 => 0xc600_0000 | g.rng.below(0x40) as u32,
                        1 => g.rng.next() as u32,
                        _ => 0xc600_0000 | g.rng.next() as u32 & 0xffff,
                    };
                    let mut a = [0u64; 8];
                    a[0] = u64::from(fid) | g.rng.next() << 32;
                    for x in a.iter_mut().skip(1) {
                        *x = g.rng.next();
                    }
                    (a, None)
                }
            };
            let got = match list {
                Some(_) => call_el1(&svc, &storage, &ram, args),
                None => call(&svc, args),
            };
            let fid = args[0] as u32;
            let mut mask = [true; 3];
            let expected = match fid {
                abi::HYP_ABI_VERSION => Err(abi::ABI_VERSION as i64),
                abi::HYP_ECHO => Ok([args[1], args[2], args[3]]),
                abi::HYP_FEATURES => {
                    if abi::ALL_CALLS.contains(&(args[1] as u32)) {
                        Ok([0; 3])
                    } else {
                        Err(abi::NOT_SUPPORTED)
                    }
                }
                abi::HYP_IOMMU_INFO => Ok([3, SLOTS as u64, 256]),
                abi::HYP_SMMU_INFO => {
                    // Values checked by the directed tests.
                    mask = [false; 3];
                    model.smmu(args[1]).map(|()| [0; 3])
                }
                abi::HYP_DOMAIN_ALLOC => model.domain_alloc(args[1], args[2]),
                abi::HYP_DOMAIN_FREE => model.domain_free(args[1]),
                abi::HYP_ATTACH => model.attach(args[1], args[2], args[3]),
                abi::HYP_DETACH => model.detach(args[1], args[2]),
                abi::HYP_MAP => model.map(args[1], args[2], args[3], args[4], args[5], args[6]),
                abi::HYP_MAP_LIST => match &list {
                    Some(entries) => model.map_list(args[1], entries, args[4]),
                    None => model.map_list_unreadable(args[1], args[2], args[3], args[4]),
                },
                abi::HYP_UNMAP => model.unmap(args[1], args[2], args[3], args[4], args[5]),
                abi::HYP_IOVA_TO_PHYS => model.iova_to_phys(args[1], args[2]),
                abi::HYP_FAULT_POP => model.fault_pop(args[1]),
                abi::HYP_STATS => {
                    // Stats report the counters before this call.
                    let (r, m) = model.stats(args[1], args[2]);
                    mask = m;
                    r
                }
                id if smccc_arch(id) => {
                    // SMCCC_VERSION / ARCH_FEATURES / the UID: not the
                    // service's.
                    mask = [false; 3];
                    got
                }
                _ => Err(abi::NOT_SUPPORTED),
            };
            let masked = |r: Res| r.map(|v| [0, 1, 2].map(|i| if mask[i] { v[i] } else { 0 }));
            assert_eq!(
                masked(got),
                masked(expected),
                "call #{n}: {args:#x?}, model expected {}",
                match expected {
                    Err(e) => abi::error_name(e),
                    Ok(_) => "success",
                }
            );
            if expected.is_err() && abi::IOMMU_CALLS.contains(&fid) {
                model.errors += 1;
            }
            if let Err(e) = expected {
                if let Some(slot) = seen.get_mut((-e) as usize) {
                    *slot += 1;
                }
            } else {
                seen[0] += 1;
            }
            *per_call
                .entry((fid, expected.err().unwrap_or(0)))
                .or_insert(0u64) += 1;
            if let Some((pa, span)) = touched {
                check_refs(&storage, &model, pa, span);
            }
            let sum: u64 = model.refs.values().map(|&r| u64::from(r)).sum();
            assert_eq!(svc.tracker().dma_refs(), sum, "call #{n}: DMA references");
            if n % 4096 == 0 || n == CALLS - 1 {
                check_tables(&svc, &model);
                check_refs(&storage, &model, RAM.start, RAM.size);
            }
        }
        std::eprintln!(
            "fuzz: {CALLS} calls, outcomes by -code {seen:?}, {} maps and {} unmaps succeeded",
            model.maps,
            model.unmaps
        );
        for ((fid, code), n) in &per_call {
            if abi::IOMMU_CALLS.contains(fid) {
                std::eprintln!("  {fid:#x} {:>18} {n}", abi::error_name(*code));
            }
        }
        // Every outcome class was exercised.
        // (Not NO_MEMORY and SMMU_ERROR: table memory is unlimited and the
        // fakes never fail here; the directed tests cover both.)
        for (i, count) in seen.iter().enumerate() {
            let code = -(i as i64);
            if code != abi::NO_MEMORY && code != abi::SMMU_ERROR {
                assert!(
                    *count > 0,
                    "no call returned {}: {seen:?}",
                    abi::error_name(code)
                );
            }
        }
        // Tear down: everything detached and freed gives everything back.
        let attached: Vec<(u64, u64)> = model.attached.keys().copied().collect();
        for (smmu, sid) in attached {
            assert_eq!(
                call(&svc, client::detach(smmu as u32, sid as u32)),
                model.detach(smmu, sid)
            );
        }
        let ids: Vec<u64> = model.domains.keys().copied().collect();
        for id in ids {
            assert_eq!(call(&svc, client::domain_free(id)), model.domain_free(id));
        }
        assert_eq!(svc.tracker().dma_refs(), 0);
        assert_eq!(svc.tracker().underflows(), 0);
        assert_eq!(budget.live(), 0, "table memory leaked");
        assert_eq!(svc.vmids_in_use(), 0);
        assert_eq!(svc.attached_streams(), 0);
    });
}

fn smccc_arch(fid: u32) -> bool {
    fid == crate::smccc::SMCCC_VERSION
        || fid == crate::smccc::SMCCC_ARCH_FEATURES
        || fid == crate::smccc::VENDOR_HYP_CALL_UID
}

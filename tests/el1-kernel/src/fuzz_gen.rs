//! Random hypercalls for the fuzz suite, biased towards valid ones: most
//! name live domains, mapped leaves, aligned addresses in a small window
//! (so overlaps, partial blocks and holes are frequent), EL1 RAM and the
//! StreamIDs behind the SMMU; the rest are every kind of wrong.
//!
//! The generator reads the model to aim (live ids, leaves, attachments)
//! but never decides results: that is the model's job.

use crate::model::{self, Model};
use crate::rng::Rng;
use smmu_hyp::hypercall::abi::{self, prot};
use smmu_hyp::smccc;

use smmu_hyp::mem::PAGE_SIZE as PAGE;
/// StreamIDs the fuzz attaches: two level-2 stream tables' worth (each
/// new level-2 table costs EL2 memory for good).
const SIDS: [u64; 8] = [8, 9, 0x10, 0x11, 0x20, 0x100, 0x101, 0x1ff];
const RAM_PROTS: [u64; 7] = [
    prot::READ,
    prot::WRITE,
    prot::READ | prot::WRITE,
    prot::READ | prot::WRITE | prot::NOEXEC,
    prot::READ | prot::NONCACHEABLE,
    prot::READ | prot::WRITE | prot::NONCACHEABLE,
    prot::WRITE | prot::NOEXEC,
];
const MMIO_PROTS: [u64; 3] = [
    prot::READ | prot::WRITE | prot::MMIO,
    prot::READ | prot::MMIO,
    prot::READ | prot::WRITE | prot::MMIO | prot::NOEXEC,
];
const BAD_PROTS: [u64; 5] = [
    0,
    prot::NOEXEC,
    prot::READ | 1 << 5,
    prot::READ | prot::MMIO | prot::NONCACHEABLE,
    u64::MAX,
];
/// Physical bases outside RAM that no rule forbids (PCIe windows and
/// beyond), for MMIO mappings.
const MMIO_BASES: [u64; 3] = [0x1000_0000, 0x1_0000_0000, 0x80_0000_0000];

/// Where the generator takes addresses from.
pub struct Places {
    /// EL1-owned RAM: `[start, end)`.
    pub el1: (u64, u64),
    /// EL2's image and pool.
    pub el2: [(u64, u64); 2],
    /// Pages no device may be given (GIC, SMMU, UART).
    pub forbidden: [u64; 8],
    pub nforbidden: usize,
    /// First RAM address.
    pub ram_start: u64,
}

pub struct Gen {
    pub rng: Rng,
    places: Places,
    /// Allocating until the domain table is full.
    burst: bool,
}

impl Gen {
    pub fn new(seed: u64, places: Places) -> Self {
        Self {
            rng: Rng::new(seed),
            places,
            burst: false,
        }
    }

    /// The next call's x0..x7.
    pub fn call(&mut self, m: &Model) -> [u64; 8] {
        let live = m.live_count();
        if !self.burst && self.rng.below(20_000) == 0 {
            self.burst = true;
        }
        if self.burst && live >= m.env.max_domains {
            self.burst = false;
            return self.alloc();
        }
        let roll = self.rng.below(1000);
        let (mut a, used) = match roll {
            _ if self.burst && roll < 500 => (self.alloc(), 2),
            0..300 => self.map_or_unmap(m),
            300..540 => (self.unmap(m), 5),
            540..690 => (self.iova_to_phys(m), 2),
            690..750 => {
                if live >= 8 && self.rng.chance(70) {
                    (self.free(m), 1)
                } else {
                    (self.alloc(), 2)
                }
            }
            750..790 => (self.free(m), 1),
            790..840 => (self.attach(m), 3),
            840..880 => (self.detach(m), 2),
            880..935 => (self.stats(), 2),
            935..950 => (call(abi::HYP_FAULT_POP, [self.smmu(), 0, 0]), 1),
            950..960 => (call(abi::HYP_SMMU_INFO, [self.smmu(), 0, 0]), 1),
            960..965 => (call(abi::HYP_IOMMU_INFO, [0; 3]), 0),
            965..973 => (self.features(), 1),
            973..980 => {
                let x = [self.rng.next(), self.rng.next(), self.rng.next()];
                (call(abi::HYP_ECHO, x), 3)
            }
            980..984 => (call(abi::HYP_ABI_VERSION, [0; 3]), 0),
            984..988 => {
                let fid = self
                    .rng
                    .pick(&[smccc::SMCCC_VERSION, smccc::SMCCC_ARCH_FEATURES]);
                let q = {
                    let junk = self.rng.next();
                    self.rng.pick(&[
                        u64::from(smccc::SMCCC_VERSION),
                        u64::from(smccc::SMCCC_ARCH_FEATURES),
                        u64::from(abi::HYP_MAP),
                        junk,
                    ])
                };
                (call(fid, [q, 0, 0]), 1)
            }
            _ => (self.unknown(), 6),
        };
        // Registers a call does not use are ignored (they should be zero).
        if self.rng.chance(5) {
            for r in a.iter_mut().skip(used + 1) {
                *r = self.rng.next();
            }
        }
        // Only the low 32 bits of x0 are the function ID.
        if self.rng.chance(3) {
            a[0] |= self.rng.next() << 32;
        }
        a
    }

    fn map_or_unmap(&mut self, m: &Model) -> ([u64; 8], usize) {
        let d = self.domain(m);
        match m.lookup(d) {
            Some(slot) if m.domains[slot].n + model::MAX_NEW > model::MAX_LEAVES => {
                (self.unmap(m), 5)
            }
            _ => (self.map(m, d), 6),
        }
    }

    /// A domain id: mostly live ones, else every kind of dead or bogus.
    fn domain(&mut self, m: &Model) -> u64 {
        let mut live = [0u64; model::MAX_DOMAINS];
        let mut n = 0;
        for id in m.live_ids() {
            live[n] = id;
            n += 1;
        }
        if n > 0 && self.rng.chance(88) {
            return live[self.rng.below(n as u64) as usize];
        }
        let max = m.env.max_domains as u64;
        let slot = self.rng.below(max);
        let generation = u64::from(m.domains[slot as usize].generation);
        match self.rng.below(7) {
            0 => 0,
            1 => slot | generation << 16,
            2 => slot | (generation + 1) << 16,
            3 => self.rng.next(),
            4 => (max + self.rng.below(0x1_0000 - max)) | 1 << 16,
            5 => slot | 1 << 48,
            _ => u64::MAX,
        }
    }

    fn smmu(&mut self) -> u64 {
        if self.rng.chance(92) {
            0
        } else {
            self.rng.pick(&[1, 4, 1 << 32, u64::MAX])
        }
    }

    /// Page size, count and leaf-slot spacing for a domain.
    fn size(&mut self, m: &Model, id: u64) -> (u64, u64) {
        let (gshift, pgsizes) = m.lookup(id).map_or((12, PAGE | 1 << 21 | 1 << 30), |s| {
            (m.domains[s].gshift, m.domains[s].pgsizes)
        });
        let granule = 1u64 << gshift;
        let r = self.rng.below(100);
        let pgsize = if r < 80 {
            granule
        } else if r < 93 {
            let blocks = pgsizes & !granule;
            let n = blocks.count_ones().max(1);
            let k = self.rng.below(u64::from(n));
            (0..64)
                .map(|b| 1u64 << b)
                .filter(|b| blocks & b != 0)
                .nth(k as usize)
                .unwrap_or(granule)
        } else {
            {
                let junk = self.rng.next();
                self.rng
                    .pick(&[0, 0x2000, 0x3000, 0x4000, 0x1_0000, 1 << 39, 1 << 63, junk])
            }
        };
        let r = self.rng.below(100);
        let count = if r < 3 {
            0
        } else if r < 5 {
            self.rng.pick(&[1 << 52, u64::MAX, 1 << 40])
        } else if pgsize == granule {
            1 + self.rng.below(16)
        } else {
            1 + self.rng.below(2)
        };
        (pgsize, count)
    }

    /// An iova for `pgsize` pages in `id`: mostly aligned slots in a small
    /// window, else unaligned, at the top of the IPA space, or junk.
    fn iova(&mut self, m: &Model, id: u64, pgsize: u64) -> u64 {
        let ipa = m.lookup(id).map_or(40, |s| m.domains[s].ipa_bits);
        let top = 1u64 << ipa;
        let step = pgsize.clamp(PAGE, 1 << 40);
        let slots = if pgsize <= 0x1_0000 { 4096 } else { 8 };
        let r = self.rng.below(100);
        if r < 90 {
            (self.rng.below(slots) * step).min(top - step.min(top))
        } else if r < 94 {
            self.rng.below(slots) * step + self.rng.pick(&[1, 0x800, step / 2])
        } else if r < 98 {
            top.wrapping_sub(step * self.rng.below(3))
        } else {
            {
                let junk = self.rng.next();
                self.rng.pick(&[junk & !(step - 1), !(step - 1)])
            }
        }
    }

    /// A physical address for `size` bytes at `align`, and whether it was
    /// chosen as MMIO.
    fn pa(&mut self, align: u64, size: u64) -> (u64, bool) {
        let align = align.clamp(PAGE, 1 << 40);
        let p = &self.places;
        let r = self.rng.below(100);
        if r < 72 {
            let (start, end) = p.el1;
            let first = start.div_ceil(align);
            let last = end.saturating_sub(size.min(end)) / align;
            let n = last.saturating_sub(first).max(1);
            ((first + self.rng.below(n)) * align, false)
        } else if r < 84 {
            let base = self.rng.pick(&MMIO_BASES);
            (
                base.next_multiple_of(align) + self.rng.below(64) * align,
                true,
            )
        } else if r < 90 {
            let (start, end) = p.el2[self.rng.below(2) as usize];
            let pa = start + self.rng.below((end - start) / PAGE) * PAGE;
            (pa & !(align - 1), false)
        } else if r < 93 {
            let pa = p.forbidden[self.rng.below(p.nforbidden.max(1) as u64) as usize];
            (pa & !(align - 1), true)
        } else if r < 95 {
            (p.ram_start.wrapping_sub(align), false)
        } else if r < 97 {
            (1 << 44, true)
        } else if r < 99 {
            (p.el1.0.next_multiple_of(align) + 0x800, false)
        } else {
            (self.rng.next() & !(align - 1), self.rng.chance(50))
        }
    }

    fn prot(&mut self, mmio: bool) -> u64 {
        let r = self.rng.below(100);
        if r < 6 {
            self.rng.pick(&BAD_PROTS)
        } else if (r < 95) == mmio {
            self.rng.pick(&MMIO_PROTS)
        } else {
            self.rng.pick(&RAM_PROTS)
        }
    }

    fn map(&mut self, m: &Model, d: u64) -> [u64; 8] {
        let (pgsize, count) = self.size(m, d);
        let iova = self.iova(m, d, pgsize);
        let size = pgsize.saturating_mul(count.min(64));
        let (pa, mmio) = self.pa(pgsize, size);
        let prot = self.prot(mmio);
        args(abi::HYP_MAP, [d, iova, pa, pgsize, count, prot])
    }

    fn unmap(&mut self, m: &Model) -> [u64; 8] {
        let d = self.domain(m);
        let flags = match self.rng.below(100) {
            0..75 => 0,
            75..96 => abi::unmap::WHOLE_LEAF,
            _ => {
                let junk = self.rng.next();
                self.rng.pick(&[2, 3, junk])
            }
        };
        if let Some(slot) = m.lookup(d)
            && m.domains[slot].n > 0
            && self.rng.chance(70)
        {
            let dom = &m.domains[slot];
            let leaf = dom.leaves()[self.rng.below(dom.n as u64) as usize];
            let granule = 1u64 << dom.gshift;
            let pgsize = if self.rng.chance(75) {
                granule
            } else {
                leaf.size
            };
            let iova = if self.rng.chance(80) {
                leaf.iova
            } else {
                leaf.iova + granule
            };
            let count = if self.rng.chance(60) {
                leaf.size / pgsize
            } else {
                1 + self.rng.below(32)
            };
            return args(abi::HYP_UNMAP, [d, iova, pgsize, count, flags, 0]);
        }
        let (pgsize, count) = self.size(m, d);
        let iova = self.iova(m, d, pgsize);
        args(abi::HYP_UNMAP, [d, iova, pgsize, count, flags, 0])
    }

    fn iova_to_phys(&mut self, m: &Model) -> [u64; 8] {
        let d = self.domain(m);
        let iova = match m.lookup(d) {
            Some(slot) if m.domains[slot].n > 0 && self.rng.chance(65) => {
                let dom = &m.domains[slot];
                let leaf = dom.leaves()[self.rng.below(dom.n as u64) as usize];
                leaf.iova + self.rng.below(leaf.size)
            }
            _ => {
                let (pgsize, _) = self.size(m, d);
                self.iova(m, d, pgsize) + self.rng.below(PAGE)
            }
        };
        args(abi::HYP_IOVA_TO_PHYS, [d, iova, 0, 0, 0, 0])
    }

    fn alloc(&mut self) -> [u64; 8] {
        let ipa = if self.rng.chance(85) {
            32 + self.rng.below(13)
        } else {
            self.rng.pick(&[0, 31, 45, 48, 64, 1 << 32 | 40, u64::MAX])
        };
        let granule = match self.rng.below(100) {
            0..65 => 0,
            65..75 => 0x1000,
            75..85 => 0x4000,
            85..95 => 0x1_0000,
            _ => self.rng.pick(&[0x2000, 0x8000, 1 << 32 | 0x1000, u64::MAX]),
        };
        args(abi::HYP_DOMAIN_ALLOC, [ipa, granule, 0, 0, 0, 0])
    }

    fn free(&mut self, m: &Model) -> [u64; 8] {
        let d = self.domain(m);
        args(abi::HYP_DOMAIN_FREE, [d, 0, 0, 0, 0, 0])
    }

    fn sid(&mut self) -> u64 {
        if self.rng.chance(90) {
            self.rng.pick(&SIDS)
        } else {
            {
                let junk = self.rng.next();
                self.rng.pick(&[0x1_0000, 1 << 32 | 8, u64::MAX, junk])
            }
        }
    }

    fn attach(&mut self, m: &Model) -> [u64; 8] {
        let (smmu, sid) = (self.smmu(), self.sid());
        let d = self.domain(m);
        args(abi::HYP_ATTACH, [smmu, sid, d, 0, 0, 0])
    }

    fn detach(&mut self, m: &Model) -> [u64; 8] {
        if m.nattached > 0 && self.rng.chance(80) {
            let (smmu, sid, _) = m.attached[self.rng.below(m.nattached as u64) as usize];
            return args(abi::HYP_DETACH, [smmu, sid, 0, 0, 0, 0]);
        }
        let (smmu, sid) = (self.smmu(), self.sid());
        args(abi::HYP_DETACH, [smmu, sid, 0, 0, 0, 0])
    }

    fn stats(&mut self) -> [u64; 8] {
        let selector = if self.rng.chance(92) {
            self.rng.below(5)
        } else {
            {
                let junk = self.rng.next();
                self.rng.pick(&[5, 6, u64::MAX, junk])
            }
        };
        call(abi::HYP_STATS, [selector, self.smmu(), 0])
    }

    fn features(&mut self) -> [u64; 8] {
        let fid = match self.rng.below(10) {
            0..6 => u64::from(self.rng.pick(&abi::ALL_CALLS)),
            6..9 => 0xc600_0000 | self.rng.below(0x40),
            _ => self.rng.next(),
        };
        call(abi::HYP_FEATURES, [fid, 0, 0])
    }

    fn unknown(&mut self) -> [u64; 8] {
        let fid = match self.rng.below(4) {
            0 => 0xc600_0000 | self.rng.below(0x1_0000),
            1 => u64::from(self.rng.next() as u32),
            2 => self
                .rng
                .pick(&[0x8600_0024, 0x4600_0024, 0xc700_0024, 0xc500_0001]),
            _ => self.rng.next(),
        };
        // HYP_MAP_LIST reads its list from EL1's memory, whose content
        // the model does not know: the bad-input and dma suites test it.
        let fid = if fid as u32 == abi::HYP_MAP_LIST {
            u64::from(abi::HYP_ECHO)
        } else {
            fid
        };
        let mut a = [fid, 0, 0, 0, 0, 0, 0, 0];
        for r in a.iter_mut().take(7).skip(1) {
            *r = self.rng.next();
        }
        a
    }
}

fn args(fid: u32, a: [u64; 6]) -> [u64; 8] {
    [u64::from(fid), a[0], a[1], a[2], a[3], a[4], a[5], 0]
}

fn call(fid: u32, a: [u64; 3]) -> [u64; 8] {
    args(fid, [a[0], a[1], a[2], 0, 0, 0])
}

//! Host tests of the page-table engine. Every engine test runs under the
//! BBM auditor (`audit.rs`).

use std::collections::BTreeSet;
use std::vec::Vec;

use super::audit::{AuditedMemory, AuditedTlb, Violation};
use super::descriptor as desc;
use super::harness::{Harness, SplitMix, Stats, fuzz_configs, fuzz_one};
use super::*;

use Granule::{Size4K, Size16K, Size64K};
use StartLevelPolicy::{FewestLevels, Level, NoConcatenation};

const K: u64 = 1 << 10;
const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

fn cfg(g: Granule, ipa: u32, oas: u32, p: StartLevelPolicy) -> Config {
    Config::new(g, ipa, oas, p).unwrap()
}

/// An engine under the auditor, with helpers.
struct T {
    pt: PageTable<AuditedMemory>,
    tlb: AuditedTlb,
    cfg: Config,
}

impl T {
    fn new(cfg: Config, ril: bool) -> T {
        let (mem, tlb) = AuditedMemory::new(&cfg, ril);
        let mut pt = PageTable::new(cfg, mem).unwrap();
        let root = pt.root();
        pt.memory_mut().attach_root(root, cfg.root_size());
        T { pt, tlb, cfg }
    }

    fn g(&self) -> u64 {
        self.cfg.granule().size()
    }

    /// Flushes and checks the walker holds nothing stale; returns the syncs.
    fn flush(&mut self) -> u64 {
        self.pt.memory().check_published();
        let before = self.tlb.auditor().syncs;
        self.pt.flush(&mut self.tlb).unwrap();
        self.pt.memory().auditor().check_quiescent();
        self.assert_clean();
        self.tlb.auditor().syncs - before
    }

    fn assert_clean(&self) {
        let mut a = self.pt.memory().auditor();
        assert_eq!(a.violation_count(), 0, "{:?}", a.take_violations());
    }

    fn violations(&self) -> Vec<Violation> {
        self.pt.memory().auditor().take_violations()
    }

    fn map(&mut self, iova: u64, pa: u64, size: u64) -> Result<(), Error> {
        let r = self.pt.map(iova, pa, size, Prot::RW);
        self.pt.memory().check_published();
        self.assert_clean();
        r
    }

    fn unmap(&mut self, iova: u64, size: u64) -> Result<Unmapped, Error> {
        let r = self.pt.unmap(iova, size, UnmapFlags::EXACT);
        self.flush();
        r
    }

    /// Fingerprint of all table memory plus allocation count.
    fn state(&self) -> (u64, usize, u64) {
        let h = self.pt.memory().host();
        (
            h.fingerprint(),
            h.live_pages(),
            self.pt.memory().auditor().writes_to_reachable(),
        )
    }

    fn live_pages(&self) -> usize {
        self.pt.memory().host().live_pages()
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.pt.memory().read(table, index)
    }

    /// Table at `level` on the walk of `iova` (must exist).
    fn table_of(&self, iova: u64, level: u32) -> PhysAddr {
        let g = self.cfg.granule();
        let mut t = self.pt.root();
        for l in self.cfg.start_level()..level {
            let n = if l == self.cfg.start_level() {
                self.cfg.root_entries()
            } else {
                g.entries()
            };
            let d = self.read(t, ((iova >> g.level_shift(l)) as usize) & (n - 1));
            assert!(desc::is_table(d, l), "no table at level {l} for {iova:#x}");
            t = desc::address(d);
        }
        t
    }

    fn index(&self, iova: u64, level: u32) -> usize {
        let g = self.cfg.granule();
        let n = if level == self.cfg.start_level() {
            self.cfg.root_entries()
        } else {
            g.entries()
        };
        ((iova >> g.level_shift(level)) as usize) & (n - 1)
    }

    /// Detaches the root, destroys the table and checks nothing leaked.
    fn finish(mut self) {
        let root = self.pt.root();
        let size = self.cfg.root_size();
        self.pt.memory_mut().detach_root(root, size);
        let mem = self.pt.destroy(&mut self.tlb).unwrap();
        mem.auditor().check_quiescent();
        assert_eq!(
            mem.auditor().violation_count(),
            0,
            "{:?}",
            mem.auditor().violations()
        );
        assert_eq!(mem.host().live_pages(), 0);
    }
}

/// Every valid configuration over a grid of IPA and output sizes, both
/// policies, without duplicates.
fn all_configs() -> Vec<Config> {
    let mut v = Vec::new();
    for g in Granule::ALL {
        for ipa in [32, 33, 34, 36, 37, 39, 40, 41, 42, 43, 44, 46, 47, 48] {
            for oas in [40, 44, 48] {
                for p in [FewestLevels, NoConcatenation] {
                    if let Ok(c) = Config::new(g, ipa, oas, p)
                        && !v.contains(&c)
                    {
                        v.push(c);
                    }
                }
            }
        }
    }
    v
}

fn leaf_sizes(c: &Config) -> Vec<u64> {
    (0..64)
        .rev()
        .filter(|b| c.leaf_sizes() & (1 << b) != 0)
        .map(|b| 1u64 << b)
        .collect()
}

// ---------------------------------------------------------------- config --

#[test]
fn start_level_and_concatenation_choices() {
    // (granule, ipa, oas, policy) -> (start level, concatenated tables)
    type Case = (Granule, u32, u32, StartLevelPolicy, Option<(u32, usize)>);
    let cases: &[Case] = &[
        (Size4K, 39, 48, FewestLevels, Some((1, 1))),
        (Size4K, 40, 44, FewestLevels, Some((1, 2))),
        (Size4K, 40, 44, NoConcatenation, Some((0, 1))),
        (Size4K, 40, 40, NoConcatenation, None),
        (Size4K, 40, 40, FewestLevels, Some((1, 2))),
        (Size4K, 43, 48, FewestLevels, Some((1, 16))),
        (Size4K, 44, 48, FewestLevels, Some((0, 1))),
        (Size4K, 44, 42, FewestLevels, None),
        (Size4K, 48, 48, NoConcatenation, Some((0, 1))),
        (Size4K, 32, 48, FewestLevels, Some((2, 4))),
        (Size4K, 32, 48, NoConcatenation, Some((1, 1))),
        (Size4K, 34, 48, FewestLevels, Some((2, 16))),
        (Size4K, 40, 44, Level(1), Some((1, 2))),
        (Size4K, 40, 44, Level(2), None),
        (Size4K, 39, 48, Level(3), None),
        (Size16K, 48, 48, FewestLevels, Some((1, 2))),
        (Size16K, 48, 48, NoConcatenation, None),
        (Size16K, 47, 48, FewestLevels, Some((1, 1))),
        (Size16K, 36, 48, FewestLevels, Some((2, 1))),
        (Size16K, 40, 48, FewestLevels, Some((2, 16))),
        (Size16K, 40, 48, NoConcatenation, Some((1, 1))),
        (Size16K, 40, 40, NoConcatenation, None),
        (Size16K, 42, 40, FewestLevels, None),
        (Size16K, 48, 48, Level(0), None),
        (Size64K, 42, 48, FewestLevels, Some((2, 1))),
        (Size64K, 46, 48, FewestLevels, Some((2, 16))),
        (Size64K, 46, 48, NoConcatenation, Some((1, 1))),
        (Size64K, 48, 48, FewestLevels, Some((1, 1))),
        (Size64K, 48, 42, FewestLevels, None),
        (Size64K, 32, 48, FewestLevels, Some((3, 8))),
        (Size64K, 32, 48, NoConcatenation, Some((2, 1))),
        (Size4K, 31, 48, FewestLevels, None),
        (Size4K, 49, 48, FewestLevels, None),
        (Size4K, 40, 43, FewestLevels, None),
    ];
    for &(g, ipa, oas, p, want) in cases {
        let got = Config::new(g, ipa, oas, p)
            .map(|c| (c.start_level(), c.concatenated_tables()))
            .ok();
        assert_eq!(got, want, "{g:?} ipa {ipa} oas {oas} {p:?}");
        if want.is_none() {
            assert_eq!(Config::new(g, ipa, oas, p), Err(Error::BadConfig));
        }
    }
}

/// The start-level rules, recomputed from the Arm ARM pseudocode formulas
/// (`S2InconsistentSL`: min = levels * stride + granule bits + 1,
/// max = min + stride - 1 + 4; `S2InvalidSL` PAMax checks).
#[test]
fn start_level_rules_match_pseudocode() {
    for g in Granule::ALL {
        let stride = g.stride();
        let gbits = g.shift();
        for ipa in 32..=48 {
            for oas in [32, 36, 40, 42, 44, 48] {
                for sl in 0..=3u32 {
                    let sl0_ok = match (g, sl) {
                        (Size4K, 0) => oas >= 44,
                        (Size4K, 3) => false,
                        (Size16K, 0) => false,
                        (Size16K, 1) => oas >= 42,
                        (Size64K, 0) => false,
                        (Size64K, 1) => oas >= 44,
                        _ => true,
                    };
                    let levels = 3 - sl;
                    let min = levels * stride + gbits + 1;
                    let max = min + (stride - 1) + 4;
                    let want = sl0_ok && ipa >= min && ipa <= max;
                    assert_eq!(
                        Config::start_level_legal(g, ipa, oas, sl),
                        want,
                        "{g:?} ipa {ipa} oas {oas} sl {sl}"
                    );
                }
                let fewest = Config::new(g, ipa, oas, FewestLevels);
                let plain = Config::new(g, ipa, oas, NoConcatenation);
                assert_eq!(
                    Config::requires_concatenation(g, ipa, oas),
                    fewest.is_ok() && plain.is_err(),
                    "{g:?} {ipa} {oas}"
                );
                if let Ok(c) = fewest {
                    assert!(c.concatenated_tables() <= MAX_CONCATENATED);
                    assert_eq!(c.root_size(), (c.root_entries() as u64 * 8).max(g.size()));
                }
            }
        }
    }
    assert!(Config::requires_concatenation(Size16K, 48, 48));
    assert!(Config::requires_concatenation(Size4K, 40, 40));
    assert!(Config::requires_concatenation(Size64K, 44, 42));
    assert!(Config::requires_concatenation(Size16K, 38, 40));
    assert!(!Config::requires_concatenation(Size4K, 40, 44));
    assert!(!Config::requires_concatenation(Size64K, 48, 48));
}

#[test]
fn ste_fields() {
    let c = cfg(Size4K, 40, 44, FewestLevels);
    assert_eq!((c.s2t0sz(), c.s2sl0(), c.s2tg(), c.s2ps()), (24, 1, 0, 4));
    assert_eq!(c.root_size(), 8 * K);
    let c = cfg(Size4K, 40, 44, NoConcatenation);
    assert_eq!((c.s2t0sz(), c.s2sl0(), c.root_size()), (24, 2, 4 * K));
    let c = cfg(Size4K, 32, 48, FewestLevels);
    assert_eq!((c.s2sl0(), c.s2ps(), c.root_size()), (0, 5, 16 * K));
    let c = cfg(Size16K, 48, 48, FewestLevels);
    assert_eq!((c.s2t0sz(), c.s2sl0(), c.s2tg()), (16, 2, 0b10));
    let c = cfg(Size64K, 42, 40, FewestLevels);
    assert_eq!((c.s2sl0(), c.s2tg(), c.s2ps()), (1, 0b01, 2));
    let c = cfg(Size64K, 32, 32, FewestLevels);
    assert_eq!(
        (c.start_level(), c.s2sl0(), c.s2ps(), c.root_size()),
        (3, 0, 0, 512 * K)
    );
    for (oas, ps) in [(32, 0), (36, 1), (40, 2), (42, 3), (44, 4), (48, 5)] {
        assert_eq!(cfg(Size4K, 36, oas, FewestLevels).s2ps(), ps);
    }
    assert_eq!(
        cfg(Size4K, 39, 48, FewestLevels).leaf_sizes(),
        (4 * K) | (2 * M) | G
    );
    assert_eq!(
        cfg(Size4K, 32, 48, FewestLevels).leaf_sizes(),
        (4 * K) | (2 * M)
    );
    assert_eq!(
        cfg(Size16K, 47, 48, FewestLevels).leaf_sizes(),
        (16 * K) | (32 * M)
    );
    assert_eq!(
        cfg(Size64K, 48, 48, FewestLevels).leaf_sizes(),
        (64 * K) | (512 * M)
    );
    assert_eq!(
        (Size4K.tlbi_tg(), Size16K.tlbi_tg(), Size64K.tlbi_tg()),
        (1, 2, 3)
    );
}

// ------------------------------------------------------------ descriptor --

#[test]
fn descriptor_encoding() {
    let attrs = Prot::RW.leaf_attrs();
    assert_eq!(desc::leaf(0x1234_5000, 3, attrs), 0x0040_0000_1234_57ff);
    assert_eq!(desc::leaf(0x4020_0000, 2, attrs), 0x0040_0000_4020_07fd);
    assert_eq!(desc::table(0x8000_1000), 0x8000_1003);
    let dev = Prot {
        read: true,
        write: false,
        no_exec: false,
        mem: MemType::Device,
    };
    // AF | SH outer | S2AP read | Device-nGnRE | page.
    assert_eq!(desc::leaf(0x9000_0000, 3, dev.leaf_attrs()), 0x9000_0647);
    let nc = Prot {
        read: false,
        write: true,
        no_exec: true,
        mem: MemType::NonCacheable,
    };
    assert_eq!(desc::leaf(0, 1, nc.leaf_attrs()), (1 << 54) | 0x695);
    // XN[0] (bit 53) is never set: under FEAT_XNX 0b11 would allow EL1 execution.
    assert_eq!(Prot::RW.leaf_attrs() & (1 << 53), 0);
    for bits in 0..24u8 {
        let p = Prot {
            read: bits & 1 != 0,
            write: bits & 2 != 0,
            no_exec: bits & 4 != 0,
            mem: [MemType::Normal, MemType::NonCacheable, MemType::Device][usize::from(bits >> 3)],
        };
        let d = desc::leaf(0x1000, 3, p.leaf_attrs());
        assert_eq!(Prot::from_leaf(d), p);
        assert!(desc::is_valid(d) && !desc::is_table(d, 3) && desc::is_table(d, 2));
        assert_eq!(desc::address(d), 0x1000);
    }
}

// ---------------------------------------------------------------- gather --

fn gather4k() -> Gather {
    Gather::new(&cfg(Size4K, 48, 48, FewestLevels))
}

/// Union of the ranges reached by `cmds`, asserting they are contiguous.
fn covered(cmds: &[Invalidation], shift: u32) -> (u64, u64) {
    let mut lo = cmds[0].span(shift).0;
    let mut hi = lo;
    for c in cmds {
        let (s, e) = c.span(shift);
        assert_eq!(s, hi, "range commands not contiguous: {cmds:?}");
        hi = e;
        lo = lo.min(s);
    }
    (lo, hi)
}

#[test]
fn range_commands_cover_exactly_and_stay_few() {
    let g = 4 * K;
    let mut counts: Vec<u64> = (1..=3000).collect();
    counts.extend([
        1 << 18,
        (1 << 18) + 1,
        (1 << 31) - 1,
        1 << 31,
        (1 << 31) + 33,
        (1 << 36) - 1,
    ]);
    for &n in &counts {
        for (leaf, level) in [(true, 3u8), (false, 3), (true, LEVEL_MIXED)] {
            let mut ga = gather4k();
            let start = 7 * G;
            ga.add(start, start + n * g, level, leaf);
            let cmds: Vec<_> = ga.invalidations(true).collect();
            let ttl = if leaf && level != LEVEL_MIXED { 3 } else { 0 };
            for c in &cmds {
                let Invalidation::Range {
                    tg,
                    scale,
                    num,
                    ttl: t,
                    leaf: l,
                    ..
                } = *c
                else {
                    panic!("{c:?}")
                };
                assert_eq!((tg, t, l), (1, ttl, leaf));
                assert!(scale <= 31 && num <= 31);
                assert!(ttl | scale | num != 0, "illegal command for n = {n}");
            }
            let (lo, hi) = covered(&cmds, 12);
            if ttl == 0 && n % 32 == 1 {
                assert_eq!((lo, hi), (start - g, start + n * g), "n = {n}");
            } else {
                assert_eq!((lo, hi), (start, start + n * g), "n = {n}");
            }
            // At most ceil(log2 n) + 1 commands (in fact one per 5 bits).
            let bound = u64::from(64 - (n - 1).leading_zeros()) + 1;
            assert!(
                cmds.len() as u64 <= bound,
                "n = {n}: {} > {bound}",
                cmds.len()
            );
            assert!(cmds.len() <= 8);
            assert_eq!(ga.syncs(), 1);
        }
    }
}

#[test]
fn per_page_commands_and_vmid_threshold() {
    let g = 4 * K;
    for n in [1, 2, 100, PER_PAGE_LIMIT - 1, PER_PAGE_LIMIT, 5000] {
        let mut ga = gather4k();
        ga.add(G, G + n * g, 3, true);
        let cmds: Vec<_> = ga.invalidations(false).collect();
        if n < PER_PAGE_LIMIT {
            assert_eq!(cmds.len() as u64, n);
            for (i, c) in cmds.iter().enumerate() {
                assert_eq!(
                    *c,
                    Invalidation::Page {
                        ipa: G + i as u64 * g,
                        leaf: true,
                        ttl: 3
                    }
                );
            }
        } else {
            assert_eq!(cmds, [Invalidation::VmidAll]);
        }
    }
    // Blocks: one command per block, TTL = 2.
    let mut ga = gather4k();
    ga.add(2 * G, 2 * G + 6 * M, 2, true);
    let cmds: Vec<_> = ga.invalidations(false).collect();
    assert_eq!(cmds.len(), 3);
    assert_eq!(
        cmds[1],
        Invalidation::Page {
            ipa: 2 * G + 2 * M,
            leaf: true,
            ttl: 2
        }
    );
    // With RIL a 2 MiB block is one command: 512 pages = SCALE 9, NUM 0.
    let cmds: Vec<_> = ga.invalidations(true).collect();
    assert_eq!(
        cmds[0],
        Invalidation::Range {
            base: 2 * G,
            tg: 1,
            scale: 9,
            num: 2,
            ttl: 2,
            leaf: true
        }
    );
    assert_eq!(cmds.len(), 1);
    // Empty: nothing, not even a sync.
    let ga = gather4k();
    assert_eq!(
        ga.invalidations(false).count() + ga.invalidations(true).count(),
        0
    );
    assert_eq!(ga.syncs(), 0);
}

#[test]
fn gather_merges_and_folds_conservatively() {
    let g = 4 * K;
    let mut ga = gather4k();
    ga.add(0, g, 3, true);
    ga.add(g, 2 * g, 3, true);
    assert_eq!(ga.ranges().len(), 1);
    // Adjacent but another level: kept apart so the hints stay exact.
    ga.add(2 * M, 4 * M, 2, true);
    assert_eq!(ga.ranges().len(), 2);
    // A non-leaf hint inside the last run turns it into a non-leaf range.
    ga.add(3 * M, 4 * M, 2, false);
    assert_eq!(ga.ranges().len(), 2);
    assert!(!ga.ranges()[1].leaf && ga.ranges()[0].leaf);

    // Overflow: every range added stays covered, with leaf cleared if any
    // non-leaf range was folded in.
    let mut ga = gather4k();
    let mut added = Vec::new();
    for i in 0..(GATHER_CAPACITY as u64 + 20) {
        let s = i * 10 * g;
        let leaf = i % 7 != 3;
        ga.add(s, s + 2 * g, 3, leaf);
        added.push((s, s + 2 * g, leaf));
    }
    assert_eq!(ga.ranges().len(), GATHER_CAPACITY);
    for (s, e, leaf) in added {
        let r = ga
            .ranges()
            .iter()
            .find(|r| r.start <= s && e <= r.end)
            .expect("range lost");
        assert!(leaf || !r.leaf);
    }
    assert!(ga.intersects(5 * g, 6 * g));
}

#[test]
fn flush_emission_matches_the_iterator() {
    use super::harness::Entropy;
    let mut rng = SplitMix(5);
    let mut w = || rng.word().unwrap();
    for round in 0..3000 {
        let c = [
            cfg(Size4K, 48, 48, FewestLevels),
            cfg(Size16K, 47, 48, FewestLevels),
            cfg(Size64K, 48, 48, FewestLevels),
        ][round % 3];
        let g = c.granule().size();
        let mut ga = Gather::new(&c);
        let mut addr = (w() % (1 << 40)) & !(g - 1);
        for _ in 0..w() % 48 {
            let level = [1u8, 2, 3, 3, 3, LEVEL_MIXED][(w() % 6) as usize];
            let span = if level == LEVEL_MIXED || !c.granule().leaf_allowed(u32::from(level)) {
                g
            } else {
                1 << c.granule().level_shift(u32::from(level))
            };
            addr = (addr + (w() % 4) * g).next_multiple_of(span);
            let len = span * (1 + w() % if round % 2 == 0 { 4 } else { 700 });
            ga.add(addr, addr + len, level, w() % 3 != 0);
            addr += len;
        }
        if w() % 50 == 0 {
            ga.invalidate_all();
        }
        for ril in [false, true] {
            let a: Vec<_> = ga.invalidations(ril).collect();
            let mut b = Vec::new();
            ga.for_each_invalidation(ril, |i| b.push(i));
            assert_eq!(a, b);
            assert_eq!(ga.command_count(ril), a.len());
            if !ril {
                assert!(a.len() < PER_PAGE_LIMIT as usize || a == [Invalidation::VmidAll]);
            }
        }
    }
}

// ---------------------------------------------------------------- engine --

/// Linux-style self-test over granule x IPA size x start level x leaf size.
#[test]
fn selftest_matrix() {
    let configs = all_configs();
    assert!(configs.len() > 40, "{}", configs.len());
    for (n, c) in configs.into_iter().enumerate() {
        let mut t = T::new(c, n % 2 == 0);
        let g = t.g();
        let top = 1u64 << c.ipa_bits();
        let oa_top = 1u64 << c.oas_bits();
        // Empty tables translate nothing.
        for iova in [0, g, top / 2, top - g, top - 1] {
            assert_eq!(t.pt.iova_to_phys(iova), None);
        }
        let mut n_leaves = 0;
        t.pt.walk(0, u64::MAX, &mut |_| n_leaves += 1);
        assert_eq!(n_leaves, 0);
        for s in leaf_sizes(&c) {
            if s > top / 4 {
                continue;
            }
            let iova = top / 4 + s;
            let pa = (oa_top / 4) & !(s - 1);
            let prot = Prot {
                read: true,
                write: s != g,
                no_exec: true,
                mem: MemType::Normal,
            };
            t.pt.map(iova, pa, s, prot).unwrap();
            t.flush();
            let l = t.pt.leaf_at(iova + s / 2).unwrap();
            assert_eq!((l.iova, l.size, l.pa, l.prot), (iova, s, pa, prot), "{c:?}");
            assert_eq!(t.pt.iova_to_phys(iova), Some(pa));
            assert_eq!(t.pt.iova_to_phys(iova + s - 1), Some(pa + s - 1));
            assert_eq!(t.pt.iova_to_phys(iova + s), None);
            assert_eq!(t.pt.iova_to_phys(iova - 1), None);
            // Overlaps, exact, inside and around, are rejected untouched.
            let st = t.state();
            for (i, sz) in [
                (iova, s),
                (iova + s - g, g),
                (iova - g, 2 * g),
                (iova - g, s + 2 * g),
            ] {
                assert_eq!(
                    t.pt.map(i, 0, sz, Prot::RW),
                    Err(Error::Overlap),
                    "{c:?} {s:#x}"
                );
            }
            assert_eq!(t.state(), st);
            // Unmap, remap with other permissions, unmap.
            assert_eq!(
                t.pt.unmap(iova, s, UnmapFlags::EXACT),
                Ok(Unmapped {
                    iova,
                    size: s,
                    bytes: s
                })
            );
            assert_eq!(t.flush(), 1);
            assert_eq!(t.pt.iova_to_phys(iova), None);
            assert_eq!(t.pt.table_count(), 0, "{c:?}: tables left");
            assert_eq!(t.live_pages(), c.concatenated_tables());
            t.pt.map(iova, pa, s, Prot::RO).unwrap();
            assert_eq!(t.pt.leaf_at(iova).unwrap().prot, Prot::RO);
            t.unmap(iova, s).unwrap();
        }
        // The last page of the IPA space.
        t.map(top - g, oa_top - g, g).unwrap();
        assert_eq!(t.pt.iova_to_phys(top - 1), Some(oa_top - 1));
        assert_eq!(
            t.pt.map(top - g, 0, 2 * g, Prot::RW),
            Err(Error::OutOfRange)
        );
        assert_eq!(t.pt.map(top, 0, g, Prot::RW), Err(Error::OutOfRange));
        assert_eq!(t.pt.iova_to_phys(top), None);
        assert_eq!(t.unmap(top - g, g).map(|u| u.bytes), Ok(g));
        assert_eq!(t.pt.table_count(), 0);
        t.finish();
    }
}

/// QEMU 10 walks concatenated roots wrongly (IPAs >= 512 GiB land in the
/// first table with 4K / 40 bits / start level 1). Pin down what the
/// architecture requires: the second table holds them.
#[test]
fn concatenated_root_layout() {
    let c = cfg(Size4K, 40, 44, FewestLevels);
    assert_eq!(
        (c.start_level(), c.concatenated_tables(), c.root_entries()),
        (1, 2, 1024)
    );
    let mut t = T::new(c, false);
    let (lo, hi) = (0x7000, 0x80_0000_7000);
    t.map(lo, 0x4000_0000, 4 * K).unwrap();
    t.map(hi, 0x5000_0000, 4 * K).unwrap();
    assert_eq!(t.pt.iova_to_phys(lo), Some(0x4000_0000));
    assert_eq!(t.pt.iova_to_phys(hi + 0x10), Some(0x5000_0010));
    let root = t.pt.root();
    assert_eq!(root % (8 * K), 0, "concatenated root aligned to its size");
    // IPA bit 39 selects the second 4 KiB table: descriptor 512, i.e. the
    // first descriptor at root + 4 KiB.
    assert_eq!(t.index(hi, 1), 512);
    let d_lo = t.read(root, 0);
    let d_hi = t.read(root + 4 * K, 0);
    assert_eq!(d_hi, t.read(root, 512));
    assert!(desc::is_table(d_lo, 1) && desc::is_table(d_hi, 1) && d_lo != d_hi);
    for i in 1..512 {
        assert_eq!(t.read(root, i), 0);
        assert_eq!(t.read(root + 4 * K, i), 0);
    }
    t.unmap(hi, 4 * K).unwrap();
    assert_eq!(t.pt.iova_to_phys(lo), Some(0x4000_0000));
    t.unmap(lo, 4 * K).unwrap();
    t.finish();

    // The same IPA size without concatenation (what the QEMU board uses):
    // a two-entry level-0 root.
    let c = cfg(Size4K, 40, 44, NoConcatenation);
    let mut t = T::new(c, false);
    t.map(hi, 0x5000_0000, 4 * K).unwrap();
    assert!(desc::is_table(t.read(t.pt.root(), 1), 0));
    assert_eq!(t.read(t.pt.root(), 0), 0);
    t.unmap(hi, 4 * K).unwrap();
    t.finish();
}

#[test]
fn largest_leaf_alignment_allows() {
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), true);
    // 1 GiB + 2 MiB + 4 KiB, all aligned: one block of each size.
    t.map(G, 3 * G, G + 2 * M + 4 * K).unwrap();
    let mut levels = Vec::new();
    t.pt.walk(0, u64::MAX, &mut |l| levels.push((l.iova, l.level, l.size)));
    assert_eq!(
        levels,
        [(G, 1, G), (2 * G, 2, 2 * M), (2 * G + 2 * M, 3, 4 * K)]
    );
    assert_eq!(t.pt.table_count(), 2);
    t.unmap(G, G + 2 * M + 4 * K).unwrap();
    // Output not 2 MiB aligned: pages only.
    t.map(0, 4 * K, 2 * M).unwrap();
    let mut n = 0;
    t.pt.walk(0, u64::MAX, &mut |l| {
        assert_eq!(l.size, 4 * K);
        n += 1;
    });
    assert_eq!(n, 512);
    t.unmap(0, 2 * M).unwrap();
    t.finish();

    for (c, block) in [
        (cfg(Size16K, 47, 48, FewestLevels), 32 * M),
        (cfg(Size64K, 48, 48, FewestLevels), 512 * M),
    ] {
        let mut t = T::new(c, false);
        t.map(4 * block, 2 * block, 2 * block + t.g()).unwrap();
        assert_eq!(t.pt.leaf_at(4 * block).unwrap().size, block);
        assert_eq!(t.pt.leaf_at(5 * block).unwrap().size, block);
        assert_eq!(t.pt.leaf_at(6 * block).unwrap().size, t.g());
        t.unmap(4 * block, 2 * block + t.g()).unwrap();
        t.finish();
    }
}

#[test]
fn minimum_table_memory() {
    // 39-bit IPA, start level 1: the root is level 1.
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.map(G, 2 * M, G).unwrap(); // 2 MiB blocks (PA not 1 GiB aligned)
    assert_eq!(t.pt.table_count(), 1);
    t.unmap(G, G).unwrap();
    assert_eq!(t.pt.table_count(), 0);
    t.map(G, 4 * K, G).unwrap(); // 4 KiB pages (PA not 2 MiB aligned)
    assert_eq!(t.pt.table_count(), 513);
    assert_eq!(t.pt.table_bytes(), 514 * 4 * K);
    assert_eq!(t.live_pages(), 514);
    t.unmap(G, G).unwrap();
    assert_eq!(t.live_pages(), 1);
    t.finish();
    // 48-bit IPA: one more table above level 2.
    let mut t = T::new(cfg(Size4K, 48, 48, FewestLevels), true);
    t.map(5 * G, 4 * K, G).unwrap();
    assert_eq!(t.pt.table_count(), 514);
    t.unmap(5 * G, G).unwrap();
    assert_eq!(t.live_pages(), 1);
    t.finish();
}

#[test]
fn bad_inputs_change_nothing() {
    let mut t = T::new(cfg(Size4K, 39, 40, FewestLevels), false);
    let g = 4 * K;
    t.map(4 * M, 8 * M, 2 * M).unwrap(); // one 2 MiB block
    t.map(8 * M, 0x1000, 3 * g).unwrap();
    let st = t.state();
    let top = 1u64 << 39;
    let map_cases = [
        (4 * M + 0x800, 0, g, Error::Unaligned),
        (0, 0x800, g, Error::Unaligned),
        (0, 0, g + 1, Error::Unaligned),
        (0, 0, 0, Error::ZeroSize),
        (!(g - 1), 0, 2 * g, Error::Wraps),
        (0, !(g - 1), 2 * g, Error::Wraps),
        (top - g, 0, 2 * g, Error::OutOfRange),
        (top, 0, g, Error::OutOfRange),
        (0, (1 << 40) - g, 2 * g, Error::OutputOutOfRange),
        (5 * M, 0, g, Error::Overlap),
        (3 * M, 0, 2 * M, Error::Overlap),
        (8 * M + 2 * g, 0, g, Error::Overlap),
    ];
    for (iova, pa, size, e) in map_cases {
        assert_eq!(
            t.pt.map(iova, pa, size, Prot::RW),
            Err(e),
            "map {iova:#x} {pa:#x} {size:#x}"
        );
        assert!(t.pt.gather().is_empty());
        assert_eq!(t.state(), st);
    }
    let unmap_cases = [
        (0x800, g, Error::Unaligned),
        (0, g + 8, Error::Unaligned),
        (0, 0, Error::ZeroSize),
        (!(g - 1), 2 * g, Error::Wraps),
        (top - g, 2 * g, Error::OutOfRange),
        (0, g, Error::NotMapped),
        (16 * M, 64 * M, Error::NotMapped),
        (4 * M + g, g, Error::PartialBlock),
        (4 * M, M, Error::PartialBlock),
        (3 * M, 2 * M, Error::PartialBlock),
    ];
    for (iova, size, e) in unmap_cases {
        assert_eq!(
            t.pt.unmap(iova, size, UnmapFlags::EXACT),
            Err(e),
            "unmap {iova:#x} {size:#x}"
        );
        assert!(t.pt.gather().is_empty());
        assert_eq!(t.state(), st);
    }
    // Engine-level BBM guard: no make over a pending break.
    t.pt.unmap(8 * M, g, UnmapFlags::EXACT).unwrap();
    assert_eq!(
        t.pt.map(8 * M, 0x9000, g, Prot::RW),
        Err(Error::SyncPending)
    );
    assert_eq!(t.flush(), 1);
    t.map(8 * M, 0x9000, g).unwrap();
    t.unmap(4 * M, 6 * M).unwrap();
    t.finish();
}

#[test]
fn allocation_failure_anywhere_in_a_map_rolls_back() {
    for c in [
        cfg(Size4K, 48, 48, FewestLevels),
        cfg(Size16K, 48, 48, FewestLevels),
        cfg(Size64K, 48, 48, FewestLevels),
    ] {
        let g = c.granule().size();
        let l2 = 1u64 << c.granule().level_shift(2);
        // Crosses a level-1 boundary and needs pages on both sides.
        let l1 = 1u64 << c.granule().level_shift(1);
        let (iova, size) = (3 * l1 - l2 - g, 2 * l2 + 2 * g);
        // Something already mapped in a table the map shares.
        let other = 3 * l1 + 8 * l2;
        let setup = || {
            let mut t = T::new(c, true);
            t.map(other, 0, g).unwrap();
            t
        };
        let need = {
            let mut t = setup();
            let before = t.pt.table_count();
            t.map(iova, g, size).unwrap();
            t.pt.table_count() - before
        };
        assert!(need >= 3, "{need}");
        for k in 0..need as u64 {
            let mut t = setup();
            let st = t.state();
            t.pt.memory_mut().host_mut().fail_after(k);
            assert_eq!(t.pt.map(iova, g, size, Prot::RW), Err(Error::NoMemory));
            assert_eq!(t.pt.memory().host().failed(), 1);
            t.pt.memory_mut().host_mut().clear_failure();
            assert_eq!(t.state(), st, "{c:?} failing after {k}");
            assert!(t.pt.gather().is_empty());
            assert_eq!(t.flush(), 0);
            t.map(iova, g, size).unwrap();
            assert_eq!(t.pt.iova_to_phys(iova), Some(g));
            t.unmap(iova, size).unwrap();
            t.unmap(other, g).unwrap();
            t.finish();
        }
    }
    // The root itself.
    let c = cfg(Size4K, 39, 48, FewestLevels);
    let (mut mem, _) = AuditedMemory::new(&c, false);
    mem.host_mut().fail_after(0);
    assert!(matches!(PageTable::new(c, mem), Err(Error::NoMemory)));
}

#[test]
fn partial_block_unmap_and_whole_leaves() {
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), true);
    t.map(4 * M, 4 * M, 4 * M).unwrap(); // two 2 MiB blocks
    let st = t.state();
    assert_eq!(
        t.pt.unmap(4 * M + 4 * K, 4 * K, UnmapFlags::EXACT),
        Err(Error::PartialBlock)
    );
    assert_eq!(t.state(), st);
    assert_eq!(
        t.pt.unmap(5 * M, 2 * M, UnmapFlags::WHOLE_LEAVES),
        Ok(Unmapped {
            iova: 4 * M,
            size: 4 * M,
            bytes: 4 * M
        })
    );
    assert_eq!(t.flush(), 1);
    assert_eq!(t.pt.iova_to_phys(4 * M), None);
    // Whole leaves with holes and pages on the side.
    t.map(2 * M - 8 * K, 0x10_0000, 8 * K).unwrap();
    t.map(2 * M, 2 * M, 2 * M).unwrap();
    assert_eq!(
        t.pt.unmap(2 * M - 16 * K, 16 * K + 4 * K, UnmapFlags::WHOLE_LEAVES),
        Ok(Unmapped {
            iova: 2 * M - 16 * K,
            size: 16 * K + 2 * M,
            bytes: 8 * K + 2 * M
        })
    );
    t.flush();
    assert_eq!(t.pt.table_count(), 0);
    t.finish();
}

#[test]
fn unmapping_holes_counts_only_mapped_bytes() {
    let mut t = T::new(cfg(Size16K, 40, 48, NoConcatenation), false);
    let g = t.g();
    for p in [0, 2, 5] {
        t.map(64 * M + p * g, p * g, g).unwrap();
    }
    assert_eq!(
        t.unmap(64 * M, 8 * g),
        Ok(Unmapped {
            iova: 64 * M,
            size: 8 * g,
            bytes: 3 * g
        })
    );
    assert_eq!(t.unmap(64 * M, 8 * g), Err(Error::NotMapped));
    t.finish();
}

#[test]
fn empty_tables_are_freed_only_after_the_sync() {
    for ril in [false, true] {
        let mut t = T::new(cfg(Size4K, 48, 48, FewestLevels), ril);
        let iova = 0x1234_5678_9000;
        t.map(iova, 0x8000, 4 * K).unwrap();
        assert_eq!(t.pt.table_count(), 3);
        assert_eq!(t.live_pages(), 4);
        t.pt.unmap(iova, 4 * K, UnmapFlags::EXACT).unwrap();
        assert_eq!(t.pt.gather().freed_tables(), 3);
        assert_eq!(t.pt.table_count(), 0);
        // Still allocated: the walker may hold them until the sync.
        assert_eq!(t.live_pages(), 4);
        let cmds: Vec<_> = t.pt.gather().invalidations(ril).collect();
        if ril {
            // One page, non-leaf, TTL 0 -> widened to two pages (legal).
            assert_eq!(
                cmds,
                [Invalidation::Range {
                    base: iova - 4 * K,
                    tg: 1,
                    scale: 1,
                    num: 0,
                    ttl: 0,
                    leaf: false
                }]
            );
        } else {
            assert_eq!(
                cmds,
                [Invalidation::Page {
                    ipa: iova,
                    leaf: false,
                    ttl: 0
                }]
            );
        }
        assert_eq!(t.flush(), 1);
        assert_eq!(t.live_pages(), 1);
        t.finish();
    }
}

#[test]
fn invalidations_per_unmap() {
    let c = cfg(Size4K, 39, 48, FewestLevels);
    let mut t = T::new(c, false);
    t.map(0, 0, 8 * 4 * K).unwrap();
    // Three pages in a table that stays: three leaf commands with TTL 3.
    t.pt.unmap(4 * K, 3 * 4 * K, UnmapFlags::EXACT).unwrap();
    let cmds: Vec<_> = t.pt.gather().invalidations(false).collect();
    assert_eq!(
        cmds,
        (1..4)
            .map(|i| Invalidation::Page {
                ipa: i * 4 * K,
                leaf: true,
                ttl: 3
            })
            .collect::<Vec<_>>()
    );
    let cmds: Vec<_> = t.pt.gather().invalidations(true).collect();
    assert_eq!(
        cmds,
        [Invalidation::Range {
            base: 4 * K,
            tg: 1,
            scale: 0,
            num: 2,
            ttl: 3,
            leaf: true
        }]
    );
    t.flush();
    // A block: one command, TTL 2.
    t.map(2 * G, 2 * G, 2 * M).unwrap();
    t.pt.unmap(2 * G, 2 * M, UnmapFlags::EXACT).unwrap();
    assert_eq!(
        t.pt.gather().invalidations(false).collect::<Vec<_>>(),
        [Invalidation::Page {
            ipa: 2 * G,
            leaf: false,
            ttl: 0
        }]
    );
    t.flush();
    // 1 GiB of pages: VMID-wide without RIL, one range with it.
    t.map(G, 4 * K, G).unwrap();
    t.pt.unmap(G, G, UnmapFlags::EXACT).unwrap();
    assert_eq!(
        t.pt.gather().invalidations(false).collect::<Vec<_>>(),
        [Invalidation::VmidAll]
    );
    assert_eq!(
        t.pt.gather().invalidations(true).collect::<Vec<_>>(),
        [Invalidation::Range {
            base: G,
            tg: 1,
            scale: 18,
            num: 0,
            ttl: 0,
            leaf: false
        }]
    );
    assert_eq!(t.flush(), 1);
    // Several unmaps may share one flush and one sync.
    t.map(8 * G, 0, 8 * 4 * K).unwrap();
    t.pt.unmap(8 * G, 4 * K, UnmapFlags::EXACT).unwrap();
    t.pt.unmap(8 * G + 8 * K, 4 * K, UnmapFlags::EXACT).unwrap();
    assert_eq!(t.pt.gather().syncs(), 1);
    assert_eq!(t.flush(), 1);
    assert_eq!(t.flush(), 0);
    assert_eq!(t.unmap(8 * G, 8 * 4 * K).unwrap().bytes, 6 * 4 * K);
    assert_eq!(t.unmap(0, 8 * 4 * K).unwrap().bytes, 5 * 4 * K);
    assert_eq!(t.live_pages(), 1);
    t.finish();
}

#[test]
fn many_subtrees_in_one_unmap() {
    // More fully covered subtrees than the gather keeps by root: the rest
    // are threaded into the free list. Either way they go after the sync.
    for ril in [false, true] {
        let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), ril);
        let n = SUBTREE_CAPACITY as u64 + 5;
        t.map(2 * G, 4 * K, n * 2 * M).unwrap(); // pages: one level-3 table per 2 MiB
        t.map(2 * G + n * 2 * M, 0, 4 * K).unwrap(); // keeps the level-2 table alive
        assert_eq!(t.pt.table_count(), n as usize + 2);
        let r = t.pt.unmap(2 * G, n * 2 * M, UnmapFlags::EXACT).unwrap();
        assert_eq!(r.bytes, n * 2 * M);
        assert_eq!(t.pt.gather().freed_tables(), n as usize);
        assert_eq!(t.live_pages(), n as usize + 3);
        assert_eq!(t.flush(), 1);
        assert_eq!(t.live_pages(), 3);
        t.unmap(2 * G + n * 2 * M, 4 * K).unwrap();
        assert_eq!(t.live_pages(), 1);
        t.finish();
    }
}

#[test]
fn walk_and_dump() {
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.map(G, 3 * G, 2 * M + 4 * K).unwrap();
    let mut s = String::new();
    t.pt.dump(&mut s).unwrap();
    assert!(s.contains("start level 1"), "{s}");
    assert!(
        s.contains("L2[0] 0x40000000..0x40200000 -> 0xc0000000"),
        "{s}"
    );
    assert!(
        s.contains("L3[0] 0x40200000..0x40201000 -> 0xc0200000"),
        "{s}"
    );
    let mut tables = Vec::new();
    t.pt.walk_tables(&mut |ti| tables.push((ti.level, ti.valid, ti.root)));
    assert_eq!(tables, [(1, 1, true), (2, 2, false), (3, 1, false)]);
    let mut leaves = Vec::new();
    t.pt.walk(G + 4 * K, G + 8 * K, &mut |l| leaves.push(l.iova));
    assert_eq!(leaves, [G]);
    t.unmap(G, 2 * M + 4 * K).unwrap();
    t.finish();
}

// --------------------------------------------------- auditor self-tests --

/// A 4K / 39-bit table with one page mapped at `IOVA`.
const IOVA: u64 = 0x4020_3000;

fn one_page() -> (T, PhysAddr, usize) {
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.map(IOVA, 0x9000_0000, 4 * K).unwrap();
    t.map(IOVA + 4 * K, 0x9000_1000, 4 * K).unwrap();
    let l3 = t.table_of(IOVA, 3);
    let i = t.index(IOVA, 3);
    (t, l3, i)
}

fn page_desc(pa: u64) -> u64 {
    desc::leaf(pa, 3, Prot::RW.leaf_attrs())
}

#[test]
fn auditor_catches_valid_to_valid() {
    let (mut t, l3, i) = one_page();
    t.pt.memory_mut().write(l3, i, page_desc(0x7000_0000));
    assert!(matches!(
        t.violations()[..],
        [Violation::ValidToValid { .. }]
    ));
    // Rewriting the same value is not a change.
    let d = t.read(l3, i);
    t.pt.memory_mut().write(l3, i, d);
    assert!(t.violations().is_empty());
}

#[test]
fn auditor_catches_make_before_invalidate_and_sync() {
    // Break then make, no invalidation.
    let (mut t, l3, i) = one_page();
    t.pt.memory_mut().write(l3, i, 0);
    t.pt.memory_mut().write(l3, i, page_desc(0x7000_0000));
    assert!(matches!(
        t.violations()[..],
        [Violation::MakeBeforeInvalidate { .. }]
    ));
    // Invalidated but not synced yet.
    let (mut t, l3, i) = one_page();
    t.pt.memory_mut().write(l3, i, 0);
    t.tlb.invalidate(Invalidation::Page {
        ipa: IOVA,
        leaf: true,
        ttl: 3,
    });
    t.pt.memory_mut().write(l3, i, page_desc(0x7000_0000));
    assert!(matches!(
        t.violations()[..],
        [Violation::MakeBeforeInvalidate { .. }]
    ));
    // Break, invalidate, sync, make: legal.
    let (mut t, l3, i) = one_page();
    t.pt.memory_mut().write(l3, i, 0);
    t.tlb.invalidate(Invalidation::Page {
        ipa: IOVA,
        leaf: true,
        ttl: 3,
    });
    t.tlb.sync().unwrap();
    t.pt.memory_mut().write(l3, i, page_desc(0x7000_0000));
    assert!(t.violations().is_empty());
    // Replacing a block by a table before its invalidation completed.
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.map(2 * M, 2 * M, 2 * M).unwrap();
    let l2 = t.table_of(2 * M, 2);
    t.pt.memory_mut().write(l2, 1, 0);
    let fresh = t.pt.memory_mut().alloc_table(4 * K).unwrap();
    t.pt.memory_mut().barrier_before_link();
    t.pt.memory_mut().write(l2, 1, desc::table(fresh));
    assert!(matches!(
        t.violations()[..],
        [Violation::MakeBeforeInvalidate { .. }]
    ));
}

#[test]
fn auditor_catches_tables_freed_or_reused_while_cached() {
    // Freed before the sync.
    let (mut t, l3, _) = one_page();
    let l2 = t.table_of(IOVA, 2);
    let j = t.index(IOVA, 2);
    t.pt.memory_mut().write(l2, j, 0);
    t.pt.memory_mut().free_table(l3, 4 * K);
    assert!(matches!(t.violations()[..], [Violation::FreeCached { .. }]));
    // Freed after a sync, but the invalidation was leaf-only: walk caches
    // still point at it.
    let (mut t, l3, _) = one_page();
    let l2 = t.table_of(IOVA, 2);
    t.pt.memory_mut().write(l2, j, 0);
    t.tlb.invalidate(Invalidation::Page {
        ipa: IOVA,
        leaf: true,
        ttl: 3,
    });
    t.tlb.invalidate(Invalidation::Page {
        ipa: IOVA + 4 * K,
        leaf: true,
        ttl: 3,
    });
    t.tlb.sync().unwrap();
    t.pt.memory_mut().free_table(l3, 4 * K);
    assert!(matches!(t.violations()[..], [Violation::FreeCached { .. }]));
    // Freed while still linked.
    let (mut t, l3, _) = one_page();
    t.pt.memory_mut().free_table(l3, 4 * K);
    assert!(matches!(t.violations()[..], [Violation::FreeLive { .. }]));
    // Reused (linked a second time) while still live elsewhere.
    let (mut t, l3, _) = one_page();
    let l2 = t.table_of(IOVA, 2);
    t.pt.memory_mut().write(l2, 100, desc::table(l3));
    assert!(matches!(
        t.violations()[..],
        [Violation::LinkNotFresh { .. }]
    ));
    // A valid descriptor written into a detached table.
    let (mut t, l3, _) = one_page();
    let l2 = t.table_of(IOVA, 2);
    let j = t.index(IOVA, 2);
    t.pt.memory_mut().write(l2, j, 0);
    t.pt.memory_mut().write(l3, 7, page_desc(0));
    assert!(matches!(
        t.violations()[..],
        [Violation::MakeInDetached { .. }]
    ));
    // Destroy without detaching the root from the STE first.
    let (t, _, _) = one_page();
    let mut tlb = t.tlb;
    let mem = t.pt.destroy(&mut tlb).unwrap();
    let v = mem.auditor().take_violations();
    assert!(
        !v.is_empty() && v.iter().all(|v| matches!(v, Violation::FreeLive { .. })),
        "{v:?}"
    );
}

#[test]
fn auditor_catches_missed_invalidations() {
    // A driver that drops every command: the walker keeps the old page.
    let (mut t, _, _) = one_page();
    t.tlb.drop_if = Some(|_| true);
    t.pt.unmap(IOVA + 4 * K, 4 * K, UnmapFlags::EXACT).unwrap();
    t.pt.flush(&mut t.tlb).unwrap();
    t.pt.memory().auditor().check_quiescent();
    assert!(matches!(
        t.violations()[..],
        [Violation::Missed { level: 3, .. }]
    ));
    // The wrong TTL hint misses a level-3 entry.
    let (mut t, l3, i) = one_page();
    t.pt.memory_mut().write(l3, i, 0);
    t.tlb.invalidate(Invalidation::Page {
        ipa: IOVA,
        leaf: true,
        ttl: 2,
    });
    t.tlb.sync().unwrap();
    t.pt.memory().auditor().check_quiescent();
    assert!(matches!(t.violations()[..], [Violation::Missed { .. }]));
    // A range that stops one page short.
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), true);
    t.map(0, 0, 5 * 4 * K).unwrap();
    t.tlb.drop_if = Some(|i| matches!(i, Invalidation::Range { num: 4, .. }));
    t.pt.unmap(0, 5 * 4 * K, UnmapFlags::EXACT).unwrap();
    t.pt.flush(&mut t.tlb).unwrap();
    t.pt.memory().auditor().check_quiescent();
    assert!(!t.violations().is_empty());
    // Issued but never synced.
    let (t, _, _) = one_page();
    let mut tlb = t.tlb;
    tlb.invalidate(Invalidation::VmidAll);
    t.pt.memory().auditor().check_quiescent();
    assert!(matches!(
        t.pt.memory().auditor().take_violations()[..],
        [Violation::Unsynced { commands: 1 }]
    ));
}

#[test]
fn auditor_catches_illegal_commands_unpublished_and_malformed_writes() {
    let (mut t, l3, _) = one_page();
    let bad = Invalidation::Range {
        base: 0,
        tg: 1,
        scale: 0,
        num: 0,
        ttl: 0,
        leaf: false,
    };
    t.tlb.invalidate(bad);
    t.tlb.invalidate(Invalidation::Range {
        base: 0,
        tg: 3,
        scale: 0,
        num: 0,
        ttl: 3,
        leaf: true,
    });
    t.tlb.sync().unwrap();
    assert!(matches!(
        t.violations()[..],
        [Violation::IllegalCommand(_), Violation::IllegalCommand(_)]
    ));
    // A write that a non-coherent SMMU would never see.
    t.pt.memory_mut().write(l3, 9, page_desc(0x1000));
    t.pt.memory().check_published();
    assert!(matches!(
        t.violations()[..],
        [Violation::Unpublished { .. }]
    ));
    t.pt.memory_mut().publish(l3, 9, 1);
    // Block descriptor at level 3, missing AF, misaligned block.
    t.pt.memory_mut()
        .write(l3, 10, desc::leaf(0x1000, 2, Prot::RW.leaf_attrs()));
    t.pt.memory_mut()
        .write(l3, 11, 0x2000 | desc::VALID | desc::TABLE_OR_PAGE);
    let l2 = t.table_of(IOVA, 2);
    t.pt.memory_mut()
        .write(l2, 5, desc::leaf(0x1000, 2, Prot::RW.leaf_attrs()));
    assert_eq!(
        t.violations()
            .iter()
            .filter(|v| matches!(v, Violation::Malformed { .. }))
            .count(),
        3
    );
    // A write to a freed page.
    let p = t.pt.memory_mut().alloc_table(4 * K).unwrap();
    t.pt.memory_mut().free_table(p, 4 * K);
    t.pt.memory_mut().write(p, 0, 0);
    assert!(matches!(
        t.violations()[..],
        [Violation::WriteToFree { .. }]
    ));
}

#[test]
fn auditor_allows_occupancy_updates_but_not_unpublished_links() {
    // Ignored bits of a live table descriptor may change in place.
    let (mut t, _, _) = one_page();
    let l2 = t.table_of(IOVA, 2);
    let j = t.index(IOVA, 2);
    let d = t.read(l2, j);
    assert_eq!(desc::occupancy(d), 2);
    t.pt.memory_mut().write(l2, j, desc::with_occupancy(d, 7));
    t.pt.memory().check_published();
    assert!(t.violations().is_empty());
    // A new table whose contents were never published before linking.
    let fresh = t.pt.memory_mut().alloc_table(4 * K).unwrap();
    t.pt.memory_mut().write(fresh, 3, page_desc(0x5000));
    t.pt.memory_mut().barrier_before_link();
    t.pt.memory_mut().write(l2, 200, desc::table(fresh));
    assert!(matches!(
        t.violations()[..],
        [Violation::Unpublished { .. }]
    ));
}

#[test]
fn auditor_catches_a_table_linked_before_a_barrier_orders_its_contents() {
    // A page whose zeroing and contents were published (cleaned) but not
    // ordered before the link: even a coherent walker may follow the link
    // and read what the page held before.
    let (mut t, _, _) = one_page();
    let l2 = t.table_of(IOVA, 2);
    let fresh = t.pt.memory_mut().alloc_table(4 * K).unwrap();
    t.pt.memory_mut().write(fresh, 3, page_desc(0x5000));
    t.pt.memory_mut().publish(fresh, 3, 1);
    t.pt.memory_mut().write(l2, 200, desc::table(fresh));
    let count = t.pt.memory().auditor().violation_count();
    let v = t.violations();
    assert_eq!(count, 512, "every slot of the page is unordered: {v:?}");
    assert!(v.iter().all(|v| matches!(
        v,
        Violation::Unordered { table, .. } if *table == fresh
    )));
    // A barrier between the last write and the link is enough.
    let fresh = t.pt.memory_mut().alloc_table(4 * K).unwrap();
    t.pt.memory_mut().write(fresh, 3, page_desc(0x5000));
    t.pt.memory_mut().publish(fresh, 3, 1);
    t.pt.memory_mut().barrier_before_link();
    t.pt.memory_mut().write(l2, 201, desc::table(fresh));
    assert!(t.violations().is_empty());
}

#[test]
fn map_orders_every_new_table_before_linking_it() {
    // A memory whose barrier does nothing: each table the map creates
    // (level 2 and level 3, below the root) is reported unordered.
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.pt.memory_mut().drop_barriers = true;
    t.pt.map(IOVA, 0x1000, 4 * K, Prot::RW).unwrap();
    let unordered: BTreeSet<PhysAddr> = t
        .violations()
        .iter()
        .filter_map(|v| match v {
            Violation::Unordered { table, .. } => Some(*table),
            _ => None,
        })
        .collect();
    assert_eq!(unordered.len(), 2, "{unordered:x?}");
    // With the barrier the same map is clean.
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.map(IOVA, 0x1000, 4 * K).unwrap();
    t.finish();
}

/// A TLB whose sync times out.
struct FailingSync(AuditedTlb);

impl TlbMaintenance for FailingSync {
    type Error = &'static str;
    fn range_invalidation(&self) -> bool {
        false
    }
    fn invalidate(&mut self, inv: Invalidation) {
        self.0.invalidate(inv);
    }
    fn sync(&mut self) -> Result<(), &'static str> {
        Err("CMD_SYNC timeout")
    }
}

#[test]
fn failed_sync_keeps_tables() {
    let mut t = T::new(cfg(Size4K, 39, 48, FewestLevels), false);
    t.map(G, 0, 4 * K).unwrap();
    t.pt.unmap(G, 4 * K, UnmapFlags::EXACT).unwrap();
    let (mem, tlb) = AuditedMemory::new(&t.cfg, false);
    drop(mem);
    let mut bad = FailingSync(tlb);
    assert_eq!(t.pt.flush(&mut bad), Err("CMD_SYNC timeout"));
    // Nothing released: the walker may still hold the tables.
    assert_eq!(t.live_pages(), 3);
    assert_eq!(t.pt.gather().freed_tables(), 2);
    assert_eq!(t.pt.map(G, 0, 4 * K, Prot::RW), Err(Error::SyncPending));
    assert_eq!(t.flush(), 1);
    assert_eq!(t.live_pages(), 1);
    t.finish();
}

#[test]
fn engine_operations_pass_the_auditor_in_every_gather_mode() {
    // The auditor sees no violation in a mix that frees tables at every
    // level, with and without RIL, through VMID-wide collapses.
    for ril in [false, true] {
        let mut t = T::new(cfg(Size4K, 48, 48, FewestLevels), ril);
        t.map(0, 4 * K, G + 2 * M).unwrap();
        t.map(512 * G, 0, 2 * G).unwrap();
        t.map(514 * G, 8 * K, 6 * 4 * K).unwrap();
        assert_eq!(t.unmap(G - 4 * K, 8 * K).unwrap().bytes, 8 * K);
        assert_eq!(t.unmap(0, G + 2 * M).unwrap().bytes, G + 2 * M - 8 * K);
        assert_eq!(t.unmap(512 * G, 3 * G).unwrap().bytes, 2 * G + 6 * 4 * K);
        assert_eq!(t.live_pages(), 1);
        t.finish();
    }
}

// ------------------------------------------------- differential random --

/// Runs `ops` random operations and returns the counters.
fn random(c: Config, ril: bool, base: u64, size: u64, seed: u64, ops: u64) -> Stats {
    let mut h = Harness::new(c, ril, base, size);
    h.run(&mut SplitMix(seed), ops, 4096);
    let s = h.finish();
    assert!(s.ops >= ops);
    assert!(s.maps > ops / 10 && s.unmaps > ops / 20, "{s:?}");
    assert!(s.errors > 0 && s.syncs > 0 && s.mismatches == 0, "{s:?}");
    // Without tables below the root nothing can fail to allocate.
    assert!(s.rollbacks > 0 || c.start_level() == 3, "{s:?}");
    std::println!("{c:?} ril={ril}: {s:?}");
    s
}

/// The random tests below add up to 1,000,000 operations.
const RANDOM_OPS: [u64; 8] = [
    150_000, 150_000, 125_000, 100_000, 100_000, 125_000, 125_000, 125_000,
];

#[test]
fn random_ops_total_one_million() {
    assert_eq!(RANDOM_OPS.iter().sum::<u64>(), 1_000_000);
}

#[test]
fn random_4k_39() {
    random(
        cfg(Size4K, 39, 44, FewestLevels),
        false,
        0,
        4 * G,
        1,
        RANDOM_OPS[0],
    );
}

#[test]
fn random_4k_40_concatenated() {
    let c = cfg(Size4K, 40, 44, FewestLevels);
    assert_eq!(c.concatenated_tables(), 2);
    random(c, true, (1 << 39) - 2 * G, 4 * G, 2, RANDOM_OPS[1]);
}

#[test]
fn random_4k_48_top_of_ipa() {
    random(
        cfg(Size4K, 48, 48, NoConcatenation),
        false,
        (1 << 48) - 4 * G,
        4 * G,
        3,
        RANDOM_OPS[2],
    );
}

#[test]
fn random_4k_32_concatenated_level2() {
    let c = cfg(Size4K, 32, 40, FewestLevels);
    assert_eq!((c.start_level(), c.concatenated_tables()), (2, 4));
    random(c, true, 0, 4 * G, 4, RANDOM_OPS[3]);
}

#[test]
fn random_16k_36() {
    random(
        cfg(Size16K, 36, 44, NoConcatenation),
        false,
        1 << 33,
        G,
        5,
        RANDOM_OPS[4],
    );
}

#[test]
fn random_16k_48_concatenated() {
    let c = cfg(Size16K, 48, 48, FewestLevels);
    assert_eq!(c.concatenated_tables(), 2);
    random(c, true, (1 << 47) - G / 2, G, 6, RANDOM_OPS[5]);
}

#[test]
fn random_64k_42() {
    random(
        cfg(Size64K, 42, 44, FewestLevels),
        true,
        0,
        4 * G,
        7,
        RANDOM_OPS[6],
    );
}

#[test]
fn random_64k_33_concatenated_level3() {
    let c = cfg(Size64K, 33, 40, FewestLevels);
    assert_eq!((c.start_level(), c.concatenated_tables()), (3, 16));
    random(c, false, 0, 8 * G, 8, RANDOM_OPS[7]);
}

/// The fuzz entry point runs on arbitrary bytes (a smoke test of the target;
/// the real fuzzing is `cargo fuzz run random_ops` in tests/fuzz).
#[test]
fn fuzz_entry_point_smoke() {
    let mut rng = SplitMix(99);
    let mut seen = BTreeSet::new();
    for i in 0..48u8 {
        let mut data = std::vec![i, i / 8];
        for _ in 0..(200 + 100 * usize::from(i % 5)) {
            data.push(super::harness::Entropy::word(&mut rng).unwrap() as u8);
        }
        seen.insert(usize::from(i) % fuzz_configs().len());
        fuzz_one(&data);
    }
    fuzz_one(&[]);
    fuzz_one(&[1]);
    assert_eq!(seen.len(), fuzz_configs().len());
}

//! Randomized: a driver sends random requests (mostly valid, many not)
//! and a model written from the virtio spec predicts every status and
//! what each endpoint can reach afterwards. Device resets are mixed in.
//! Any difference fails with the operation that caused it.

use std::collections::BTreeMap;

use super::backend::{DMA_RAM, DOORBELL, EL2_RAM, GRANULE, HOLE, INPUT_END, PEER_MMIO};
use super::driver::{Driver, Rig};
use crate::pgtable::harness::{Entropy, SplitMix};
use crate::vdev::iommu_wire::{Request, Status, map_flags};
use crate::vdev::virtio_iommu::OFFERED_FEATURES;

const OPS: usize = 20_000;
/// The device's domain range with the fake backend: 0..=15.
const LAST_DOMAIN: u32 = 15;
/// Endpoints used: these exist; `MISSING` does not.
const ENDPOINTS: [u32; 6] = [8, 9, 10, 11, 16, 17];
const MISSING: u32 = 0x100;
/// IOVAs are drawn around this base, and around the reserved regions.
const IOVA_BASE: u64 = 0x100_0000;

struct Rng(SplitMix);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.word().unwrap() % n
    }
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// (end inclusive, pa, flags) by start.
type Maps = BTreeMap<u64, (u64, u64, u32)>;

/// The virtio-iommu device and the IOMMU core, as the spec and
/// `docs/virtio-iommu.md` describe them.
#[derive(Default)]
struct Model {
    domains: BTreeMap<u32, Maps>,
    attached: BTreeMap<u32, u32>,
}

fn exists(ep: u32) -> bool {
    ENDPOINTS.contains(&ep)
}

impl Model {
    fn drop_if_empty(&mut self, id: u32) {
        if !self.attached.values().any(|&d| d == id) {
            self.domains.remove(&id);
        }
    }

    /// The mappings of `domain`, if it exists and the range is sane.
    fn range_of(&mut self, domain: u32, start: u64, end: u64) -> Result<&mut Maps, Status> {
        let maps = self.domains.get_mut(&domain).ok_or(Status::NoEnt)?;
        if start > end {
            return Err(Status::Inval);
        }
        if end > INPUT_END {
            return Err(Status::Range);
        }
        Ok(maps)
    }

    fn apply(&mut self, req: &Request) -> Status {
        match *req {
            Request::Attach {
                domain,
                endpoint,
                flags,
                reserved_set,
            } => {
                if reserved_set || flags & !1 != 0 {
                    return Status::Inval;
                }
                if domain > LAST_DOMAIN {
                    return Status::Range;
                }
                if !exists(endpoint) {
                    return Status::NoEnt;
                }
                if flags != 0 {
                    return if self.domains.contains_key(&domain) {
                        Status::Inval
                    } else {
                        Status::Unsupp
                    };
                }
                let old = self.attached.insert(endpoint, domain);
                self.domains.entry(domain).or_default();
                if let Some(o) = old.filter(|&o| o != domain) {
                    self.drop_if_empty(o);
                }
                Status::Ok
            }
            Request::Detach { domain, endpoint } => {
                if !exists(endpoint) {
                    return Status::NoEnt;
                }
                if self.attached.get(&endpoint) != Some(&domain) {
                    return Status::Inval;
                }
                self.attached.remove(&endpoint);
                self.drop_if_empty(domain);
                Status::Ok
            }
            Request::Map {
                domain,
                virt_start,
                virt_end,
                phys_start,
                flags,
            } => {
                if flags & !map_flags::ALL != 0 {
                    return Status::Inval;
                }
                let maps = match self.range_of(domain, virt_start, virt_end) {
                    Ok(maps) => maps,
                    Err(s) => return s,
                };
                let size = virt_end - virt_start + 1;
                if (virt_start | phys_start | size) % GRANULE != 0
                    || phys_start.checked_add(size).is_none()
                {
                    return Status::Range;
                }
                if [DOORBELL, HOLE]
                    .iter()
                    .any(|r| r.start <= virt_end && virt_start <= r.end)
                {
                    return Status::Inval;
                }
                if flags & (map_flags::READ | map_flags::WRITE) == 0 {
                    return Status::Inval;
                }
                let allowed = if flags & map_flags::MMIO != 0 {
                    PEER_MMIO
                } else {
                    DMA_RAM
                };
                if phys_start < allowed.start || phys_start + size > allowed.end {
                    return Status::Fault;
                }
                if maps
                    .iter()
                    .any(|(&s, &(e, _, _))| s <= virt_end && virt_start <= e)
                {
                    return Status::Inval;
                }
                maps.insert(virt_start, (virt_end, phys_start, flags));
                Status::Ok
            }
            Request::Unmap {
                domain,
                virt_start,
                virt_end,
                reserved_set,
            } => {
                if reserved_set {
                    return Status::Inval;
                }
                let maps = match self.range_of(domain, virt_start, virt_end) {
                    Ok(maps) => maps,
                    Err(s) => return s,
                };
                let splits = maps.iter().any(|(&s, &(e, _, _))| {
                    (s < virt_start && virt_start <= e) || (s <= virt_end && virt_end < e)
                });
                if splits {
                    return Status::Range;
                }
                maps.retain(|&s, &mut (e, _, _)| !(virt_start <= s && e <= virt_end));
                Status::Ok
            }
            Request::Probe { endpoint } => {
                if exists(endpoint) {
                    Status::Ok
                } else {
                    Status::NoEnt
                }
            }
        }
    }

    /// What `ep` reaches: (start, end, pa).
    fn reach(&self, ep: u32) -> Vec<(u64, u64, u64)> {
        self.attached
            .get(&ep)
            .map(|d| {
                self.domains[d]
                    .iter()
                    .map(|(&s, &(e, pa, _))| (s, e, pa))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Page references RAM mappings hold.
    fn refs(&self) -> u64 {
        self.domains
            .values()
            .flat_map(|m| m.iter())
            .filter(|(_, (_, _, f))| f & map_flags::MMIO == 0)
            .map(|(&s, &(e, _, _))| (e - s + 1) / GRANULE)
            .sum()
    }
}

fn random_request(rng: &mut Rng) -> Request {
    let domain = if rng.pct(90) {
        rng.below(6) as u32
    } else {
        rng.pick(&[LAST_DOMAIN, LAST_DOMAIN + 1, u32::MAX])
    };
    let endpoint = if rng.pct(95) {
        rng.pick(&ENDPOINTS)
    } else {
        MISSING
    };
    let page = |rng: &mut Rng| {
        let base = rng.pick(&[
            IOVA_BASE,
            IOVA_BASE,
            IOVA_BASE,
            DOORBELL.start,
            HOLE.end + 1 - 0x4000,
            INPUT_END + 1 - 0x10000,
        ]);
        base + rng.below(16) * GRANULE
    };
    let jitter = |rng: &mut Rng| if rng.pct(5) { rng.below(GRANULE) } else { 0 };
    match rng.below(100) {
        0..=19 => Request::Attach {
            domain,
            endpoint,
            flags: if rng.pct(93) { 0 } else { rng.pick(&[1, 2]) },
            reserved_set: rng.pct(3),
        },
        20..=29 => Request::Detach { domain, endpoint },
        30..=64 => {
            let start = page(rng) + jitter(rng);
            let pages = 1 + rng.below(4);
            let end = (start + pages * GRANULE - 1 + jitter(rng)).min(if rng.pct(98) {
                INPUT_END
            } else {
                u64::MAX
            });
            let pa = match rng.below(20) {
                0 => EL2_RAM.start,
                1 => PEER_MMIO.start + rng.below(8) * GRANULE,
                2 => DMA_RAM.end - GRANULE,
                _ => DMA_RAM.start + rng.below(64) * GRANULE,
            } + jitter(rng);
            let flags = if rng.pct(90) {
                rng.pick(&[1, 2, 3, 3, 3])
            } else {
                rng.pick(&[0, 6, 7, 8])
            };
            let (virt_start, virt_end) = if rng.pct(3) {
                (end, start)
            } else {
                (start, end)
            };
            Request::Map {
                domain,
                virt_start,
                virt_end,
                phys_start: pa,
                flags,
            }
        }
        65..=94 => {
            let start = page(rng) + jitter(rng);
            let end = start + rng.below(12) * GRANULE + GRANULE - 1 + jitter(rng);
            Request::Unmap {
                domain,
                virt_start: start,
                virt_end: end.min(if rng.pct(97) { INPUT_END } else { u64::MAX }),
                reserved_set: rng.pct(2),
            }
        }
        _ => Request::Probe { endpoint },
    }
}

fn run(seed: u64) {
    let rig = Rig::new();
    let dev = rig.device();
    let mut d = Driver::up(&dev, &rig.mem);
    let mut model = Model::default();
    let mut rng = Rng(SplitMix(seed));
    let mut statuses = BTreeMap::new();
    for op in 0..OPS {
        if rng.pct(1) {
            d.init(OFFERED_FEATURES);
            model = Model::default();
            continue;
        }
        let req = random_request(&mut rng);
        let expect = model.apply(&req);
        let got = d.status_of(req);
        assert_eq!(got, expect, "seed {seed} op {op}: {req:?}");
        *statuses.entry(got as u8).or_insert(0) += 1;
        dev.with_backend(|b| {
            for ep in ENDPOINTS {
                let reach: Vec<_> = b.mappings_of(ep).iter().map(|m| (m.0, m.1, m.2)).collect();
                assert_eq!(
                    reach,
                    model.reach(ep),
                    "seed {seed} op {op}: endpoint {ep} after {req:?}"
                );
            }
            assert_eq!(b.total_refs(), model.refs(), "seed {seed} op {op}");
            assert!(b.doorbells_intact());
        });
        assert_eq!(
            dev.counts(),
            (model.attached.len(), model.domains.len()),
            "seed {seed} op {op}"
        );
        if op % 512 == 0 {
            rig.journal.take();
        }
    }
    assert!(!d.needs_reset());
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
    // Every status the model can produce came up.
    for s in [
        Status::Ok,
        Status::Unsupp,
        Status::Inval,
        Status::Range,
        Status::NoEnt,
        Status::Fault,
    ] {
        assert!(
            statuses.get(&(s as u8)).copied().unwrap_or(0) >= 5,
            "seed {seed}: {s:?} only {statuses:?}"
        );
    }
}

#[test]
fn random_requests_match_a_model_of_the_spec() {
    for seed in [1, 2, 3] {
        run(seed);
    }
}

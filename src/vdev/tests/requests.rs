//! Every request type and every status, against virtio 1.2 "IOMMU Device
//! / Device operations".

use super::backend::{
    DMA_RAM, DOORBELL, EL2_RAM, ENDPOINTS, FakeBackend, HOLE, INPUT_END, PEER_MMIO,
};
use super::driver::{Driver, Reply, Rig};
use crate::vdev::iommu_backend::BackendError;
use crate::vdev::iommu_wire::{
    ATTACH_F_BYPASS, PROBE_T_RESV_MEM, Request, Status, feature, map_flags,
};
use crate::vdev::mmio_transport::F_VERSION_1;
use crate::vdev::virtio_iommu::{MAX_ENDPOINTS, OFFERED_FEATURES, PROBE_SIZE, status_of};

const EP: u32 = 0x8;
const EP2: u32 = 0x10;
const PA: u64 = DMA_RAM.start;
const R: u32 = map_flags::READ;
const RW: u32 = map_flags::READ | map_flags::WRITE;
const PAGE: u64 = 0x1000;

/// Runs `f` with a driver that brought the device up with `features`.
fn with_driver(features: u64, f: impl FnOnce(&mut Driver<'_>)) {
    with_backend(features, |_| {}, f);
}

fn with_backend(
    features: u64,
    setup: impl FnOnce(&mut FakeBackend),
    f: impl FnOnce(&mut Driver<'_>),
) {
    let rig = Rig::new();
    let dev = rig.device_with(setup);
    let mut d = Driver::new(&dev, &rig.mem);
    d.init(features);
    f(&mut d);
    assert_eq!(rig.mem.violations(), Vec::<String>::new());
}

fn backend<R>(d: &Driver<'_>, f: impl FnOnce(&mut FakeBackend) -> R) -> R {
    d.dev.with_backend(f)
}

#[test]
fn attach_creates_the_domain_and_points_the_endpoint_at_it() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(3, EP), Status::Ok);
        assert_eq!(d.dev.counts(), (1, 1));
        backend(d, |b| {
            assert_eq!(b.attached.len(), 1);
            assert!(b.doorbells_intact());
        });
    });
}

#[test]
fn attach_refuses_reserved_bytes_and_unknown_flags_with_inval_changing_nothing() {
    with_driver(OFFERED_FEATURES, |d| {
        for (flags, reserved_set) in [(0, true), (2, false), (1 << 31, false)] {
            let req = Request::Attach {
                domain: 1,
                endpoint: EP,
                flags,
                reserved_set,
            };
            assert_eq!(d.status_of(req), Status::Inval);
        }
        assert_eq!(d.dev.counts(), (0, 0));
    });
}

#[test]
fn attach_refuses_a_domain_beyond_the_domain_range_with_range() {
    with_backend(
        OFFERED_FEATURES,
        |b| b.max_domains = 4,
        |d| {
            assert_eq!(d.attach(4, EP), Status::Range);
            assert_eq!(d.attach(u32::MAX, EP), Status::Range);
            assert_eq!(d.attach(3, EP), Status::Ok);
        },
    );
}

#[test]
fn attach_of_an_endpoint_that_does_not_exist_is_noent() {
    with_backend(
        OFFERED_FEATURES,
        |b| {
            b.missing.insert(EP2);
        },
        |d| {
            assert_eq!(d.attach(1, ENDPOINTS.end), Status::NoEnt);
            assert_eq!(d.attach(1, EP2), Status::NoEnt);
            assert_eq!(d.dev.counts(), (0, 0));
        },
    );
}

#[test]
fn bypass_domains_are_refused() {
    let bypass = |domain| Request::Attach {
        domain,
        endpoint: EP2,
        flags: ATTACH_F_BYPASS,
        reserved_set: false,
    };
    with_driver(OFFERED_FEATURES, |d| {
        // A new bypass domain cannot be created.
        assert_eq!(d.status_of(bypass(2)), Status::Unsupp);
        // An existing domain is not a bypass domain.
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.status_of(bypass(1)), Status::Inval);
        assert_eq!(d.dev.counts(), (1, 1));
    });
    // Without BYPASS_CONFIG the flag is unknown.
    with_driver(OFFERED_FEATURES & !feature::BYPASS_CONFIG, |d| {
        assert_eq!(d.status_of(bypass(2)), Status::Inval);
    });
}

#[test]
fn config_bypass_reads_zero_and_ignores_writes() {
    use crate::vdev::mmio_transport::reg;
    use crate::vdev::{AccessSize, MmioDevice};
    with_driver(OFFERED_FEATURES, |d| {
        let bypass = reg::CONFIG + 36;
        assert_eq!(d.dev.read(bypass, AccessSize::Byte), 0);
        d.dev.write(bypass, AccessSize::Byte, 1);
        assert_eq!(d.dev.read(bypass, AccessSize::Byte), 0);
        // Unattached endpoints still have no translation at all.
        assert_eq!(backend(d, |b| b.translate(EP, PA)), None);
    });
}

#[test]
fn attaching_to_another_domain_moves_the_endpoint_and_frees_the_emptied_domain() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Ok);
        assert_eq!(d.attach(2, EP), Status::Ok);
        assert_eq!(d.dev.counts(), (1, 1));
        backend(d, |b| {
            assert_eq!(b.translate(EP, 0x10_0000), None);
            assert_eq!(b.total_refs(), 0);
            assert_eq!(b.domains.len(), 1);
        });
        // Domain 1 ceased to exist.
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::NoEnt);
    });
}

#[test]
fn attaching_again_to_the_same_domain_changes_nothing() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Ok);
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(backend(d, |b| b.translate(EP, 0x10_0000)), Some(PA));
        assert_eq!(d.dev.counts(), (1, 1));
    });
}

#[test]
fn a_failed_domain_allocation_answers_nomem_and_changes_nothing() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        backend(d, |b| {
            b.fail = Some(("domain_alloc", BackendError::NoMemory))
        });
        assert_eq!(d.attach(2, EP), Status::NoMem);
        assert_eq!(d.dev.counts(), (1, 1));
        assert_eq!(backend(d, |b| b.attached[&EP]), 1);
    });
}

#[test]
fn a_failed_attach_answers_deverr_and_leaves_the_endpoint_on_its_old_domain() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Ok);
        backend(d, |b| b.fail = Some(("attach", BackendError::Hardware)));
        assert_eq!(d.attach(2, EP), Status::DevErr);
        assert_eq!(d.dev.counts(), (1, 1));
        backend(d, |b| {
            assert_eq!(b.translate(EP, 0x10_0000), Some(PA));
            assert_eq!(b.domains.len(), 1, "the new domain was freed");
        });
        // A first attach that fails leaves no domain behind either.
        backend(d, |b| b.fail = Some(("attach", BackendError::Hardware)));
        assert_eq!(d.attach(3, EP2), Status::DevErr);
        assert_eq!(d.dev.counts(), (1, 1));
        assert_eq!(d.attach(3, EP2), Status::Ok);
    });
}

#[test]
fn attach_answers_nomem_when_every_endpoint_slot_is_taken() {
    with_driver(OFFERED_FEATURES, |d| {
        let eps: Vec<u32> = ENDPOINTS.take(MAX_ENDPOINTS + 1).collect();
        for &ep in &eps[..MAX_ENDPOINTS] {
            assert_eq!(d.attach(0, ep), Status::Ok);
        }
        assert_eq!(d.attach(0, eps[MAX_ENDPOINTS]), Status::NoMem);
        // Moving an attached endpoint needs no new slot.
        assert_eq!(d.attach(1, eps[0]), Status::Ok);
        assert_eq!(d.dev.counts(), (MAX_ENDPOINTS, 2));
    });
}

#[test]
fn detach_frees_the_domain_with_its_last_endpoint_and_every_mapping() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_ffff, PA, RW), Status::Ok);
        assert_eq!(backend(d, |b| b.total_refs()), 16);
        assert_eq!(d.detach(1, EP), Status::Ok);
        assert_eq!(d.dev.counts(), (0, 0));
        backend(d, |b| {
            assert!(b.domains.is_empty());
            assert_eq!(b.total_refs(), 0);
        });
        // Its id can be reused for a fresh domain.
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(backend(d, |b| b.translate(EP, 0x10_0000)), None);
    });
}

#[test]
fn detach_of_an_unknown_endpoint_is_noent_and_from_the_wrong_domain_inval() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.detach(1, ENDPOINTS.end), Status::NoEnt);
        assert_eq!(d.detach(1, EP), Status::Inval, "not attached");
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.detach(2, EP), Status::Inval);
        assert_eq!(d.dev.counts(), (1, 1));
    });
}

#[test]
fn a_domain_shared_by_two_endpoints_lives_until_both_detach() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.attach(1, EP2), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Ok);
        assert_eq!(backend(d, |b| b.translate(EP2, 0x10_0000)), Some(PA));
        assert_eq!(d.detach(1, EP), Status::Ok);
        assert_eq!(backend(d, |b| b.translate(EP2, 0x10_0000)), Some(PA));
        assert_eq!(d.detach(1, EP2), Status::Ok);
        assert_eq!(d.dev.counts(), (0, 0));
    });
}

#[test]
fn a_detach_the_smmu_fails_is_deverr_and_keeps_the_endpoint_attached() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        backend(d, |b| b.fail = Some(("detach", BackendError::Hardware)));
        assert_eq!(d.detach(1, EP), Status::DevErr);
        assert_eq!(d.dev.counts(), (1, 1));
        assert_eq!(d.detach(1, EP), Status::Ok);
    });
}

#[test]
fn map_makes_the_range_translate_and_takes_page_references() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x20_0000, 0x3f_ffff, PA, R), Status::Ok);
        backend(d, |b| {
            assert_eq!(b.translate(EP, 0x20_1234), Some(PA + 0x1234));
            assert_eq!(b.mappings_of(EP).len(), 1);
            assert_eq!(b.total_refs(), 512);
        });
    });
}

#[test]
fn map_refuses_unknown_flags_and_mmio_without_its_feature_with_inval() {
    with_driver(OFFERED_FEATURES & !feature::MMIO, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        for flags in [RW | 8, 1 << 31, map_flags::MMIO | map_flags::WRITE] {
            assert_eq!(
                d.map(1, 0x10_0000, 0x10_0fff, PEER_MMIO.start, flags),
                Status::Inval
            );
        }
        assert!(backend(d, |b| b.mappings_of(EP).is_empty()));
    });
}

#[test]
fn map_to_a_domain_that_does_not_exist_is_noent() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.map(5, 0x10_0000, 0x10_0fff, PA, RW), Status::NoEnt);
        assert_eq!(d.map(u32::MAX, 0x10_0000, 0x10_0fff, PA, RW), Status::NoEnt);
    });
}

#[test]
fn map_refuses_misaligned_or_out_of_range_addresses_with_range() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        for (start, end, pa) in [
            (0x10_0800, 0x10_17ff, PA),
            (0x10_0000, 0x10_0fff, PA + 0x10),
            (0x10_0000, 0x10_0ffe, PA),
            (INPUT_END + 1, INPUT_END + 0x1000, PA),
            (INPUT_END - 0xfff, INPUT_END + 0x1000, PA),
            (0x10_0000, u64::MAX, PA),
            (0x10_0000, 0x10_1fff, u64::MAX - 0xfff),
        ] {
            assert_eq!(
                d.map(1, start, end, pa, RW),
                Status::Range,
                "{start:#x}..={end:#x} -> {pa:#x}"
            );
        }
        assert!(backend(d, |b| b.mappings_of(EP).is_empty()));
    });
}

#[test]
fn map_refuses_an_inverted_range_overlaps_and_reserved_regions_with_inval() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_1000, 0x10_0fff, PA, RW), Status::Inval);
        assert_eq!(d.map(1, 0x10_0000, 0x10_3fff, PA, RW), Status::Ok);
        assert_eq!(d.map(1, 0x10_3000, 0x10_4fff, PA, RW), Status::Inval);
        assert_eq!(d.map(1, 0x0f_f000, 0x10_0fff, PA, RW), Status::Inval);
        for r in [DOORBELL, HOLE] {
            assert_eq!(d.map(1, r.start, r.start + 0xfff, PA, RW), Status::Inval);
            assert_eq!(
                d.map(1, r.start - 0x1000, r.end + 1 + 0xfff, PA, RW),
                Status::Inval
            );
        }
        assert_eq!(backend(d, |b| b.mappings_of(EP).len()), 1);
        assert!(backend(d, |b| b.doorbells_intact()));
    });
}

#[test]
fn map_of_memory_el1_may_not_give_a_device_is_fault() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(
            d.map(1, 0x10_0000, 0x10_0fff, EL2_RAM.start, RW),
            Status::Fault
        );
        // MMIO needs the MMIO flag and an allowed target, and RAM the
        // opposite.
        assert_eq!(
            d.map(1, 0x10_0000, 0x10_0fff, PEER_MMIO.start, RW),
            Status::Fault
        );
        assert_eq!(
            d.map(1, 0x10_0000, 0x10_0fff, PA, RW | map_flags::MMIO),
            Status::Fault
        );
        assert_eq!(
            d.map(
                1,
                0x10_0000,
                0x10_0fff,
                PEER_MMIO.start,
                RW | map_flags::MMIO
            ),
            Status::Ok
        );
        assert_eq!(
            backend(d, |b| b.total_refs()),
            0,
            "MMIO holds no page reference"
        );
    });
}

#[test]
fn map_without_read_or_write_is_refused_by_the_backend_with_inval() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, 0), Status::Inval);
    });
}

#[test]
fn map_answers_nomem_or_deverr_when_the_backend_fails() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        backend(d, |b| b.fail = Some(("map", BackendError::NoMemory)));
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::NoMem);
        backend(d, |b| b.fail = Some(("map", BackendError::Hardware)));
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::DevErr);
        assert!(backend(d, |b| b.mappings_of(EP).is_empty()));
    });
}

#[test]
fn map_and_unmap_are_unsupported_unless_map_unmap_was_negotiated() {
    with_driver(F_VERSION_1, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Unsupp);
        assert_eq!(d.unmap(1, 0x10_0000, 0x10_0fff), Status::Unsupp);
    });
}

/// One of the spec's UNMAP examples: the maps, the unmap, its status and
/// the starts of the mappings left.
type UnmapExample = (&'static [(u64, u64)], (u64, u64), Status, &'static [u64]);

/// The spec's UNMAP examples, one page per unit: each sequence starts
/// from a blank domain.
#[test]
fn unmap_follows_the_spec_examples() {
    let page = |n: u64| 0x100_0000 + n * PAGE;
    let cases: [UnmapExample; 7] = [
        (&[], (0, 4), Status::Ok, &[]),
        (&[(0, 9)], (0, 9), Status::Ok, &[]),
        (&[(0, 4), (5, 9)], (0, 9), Status::Ok, &[]),
        (&[(0, 9)], (0, 4), Status::Range, &[0]),
        (&[(0, 4), (5, 9)], (0, 4), Status::Ok, &[5]),
        (&[(0, 4)], (0, 9), Status::Ok, &[]),
        (&[(0, 4), (10, 14)], (0, 14), Status::Ok, &[]),
    ];
    for (i, (maps, (us, ue), expect, left)) in cases.into_iter().enumerate() {
        with_driver(OFFERED_FEATURES, |d| {
            assert_eq!(d.attach(1, EP), Status::Ok);
            for &(s, e) in maps {
                assert_eq!(
                    d.map(1, page(s), page(e + 1) - 1, PA + s * PAGE, RW),
                    Status::Ok
                );
            }
            assert_eq!(
                d.unmap(1, page(us), page(ue + 1) - 1),
                expect,
                "example ({})",
                i + 1
            );
            let starts: Vec<u64> = backend(d, |b| b.mappings_of(EP))
                .iter()
                .map(|m| (m.0 - page(0)) / PAGE)
                .collect();
            assert_eq!(starts, left, "example ({})", i + 1);
        });
    }
}

#[test]
fn an_unmap_that_would_split_at_either_end_removes_nothing() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_3fff, PA, RW), Status::Ok);
        assert_eq!(d.map(1, 0x20_0000, 0x20_0fff, PA, RW), Status::Ok);
        assert_eq!(d.map(1, 0x30_0000, 0x30_3fff, PA, RW), Status::Ok);
        assert_eq!(d.unmap(1, 0x10_1000, 0x30_3fff), Status::Range);
        assert_eq!(d.unmap(1, 0x10_0000, 0x30_0fff), Status::Range);
        assert_eq!(backend(d, |b| b.mappings_of(EP).len()), 3);
        assert_eq!(d.unmap(1, 0x10_0000, 0x30_3fff), Status::Ok);
        assert_eq!(
            backend(d, |b| (b.mappings_of(EP).len(), b.total_refs())),
            (0, 0)
        );
    });
}

#[test]
fn unmap_bounds_inside_unmapped_granules_need_no_alignment() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Ok);
        assert_eq!(d.map(1, 0x10_2000, 0x10_2fff, PA, RW), Status::Ok);
        // Ends in the middle of unmapped pages: only the page between goes.
        assert_eq!(d.unmap(1, 0x10_0fff + 0x123, 0x10_3abc), Status::Ok);
        let left: Vec<u64> = backend(d, |b| b.mappings_of(EP))
            .iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(left, [0x10_0000]);
        // A byte inside a mapping that is not its first splits it.
        assert_eq!(d.unmap(1, 0x10_0001, 0x10_0fff), Status::Range);
    });
}

#[test]
fn unmap_of_everything_keeps_the_msi_doorbell_mapping() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        for (i, iova) in [
            0u64,
            0x0808_0000,
            0x080a_0000,
            0xfed0_0000,
            0xfef0_0000,
            INPUT_END - 0xfff,
        ]
        .into_iter()
        .enumerate()
        {
            let pa = PA + i as u64 * PAGE;
            assert_eq!(
                d.map(1, iova, iova + 0xfff, pa, RW),
                Status::Ok,
                "{iova:#x}"
            );
        }
        // Bounds inside a reserved region split nothing of the driver's.
        assert_eq!(
            d.unmap(1, DOORBELL.start + 0x1000, DOORBELL.end + 0x1000),
            Status::Ok
        );
        assert_eq!(backend(d, |b| b.translate(EP, DOORBELL.end + 1)), None);
        assert_eq!(d.unmap(1, 0x0808_0000, DOORBELL.end - 0x10), Status::Ok);
        assert_eq!(backend(d, |b| b.translate(EP, 0x0808_0000)), None);
        assert_eq!(d.unmap(1, 0, INPUT_END), Status::Ok);
        backend(d, |b| {
            assert!(b.mappings_of(EP).is_empty());
            assert!(b.doorbells_intact());
            assert_eq!(
                b.translate(EP, DOORBELL.start + 0x40),
                Some(DOORBELL.start + 0x40)
            );
        });
    });
}

#[test]
fn unmap_refuses_reserved_bytes_unknown_domains_inverted_and_out_of_range_ranges() {
    with_driver(OFFERED_FEATURES, |d| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_0fff, PA, RW), Status::Ok);
        let unmap = |domain, virt_start, virt_end, reserved_set| Request::Unmap {
            domain,
            virt_start,
            virt_end,
            reserved_set,
        };
        assert_eq!(
            d.status_of(unmap(1, 0x10_0000, 0x10_0fff, true)),
            Status::Inval
        );
        assert_eq!(
            d.status_of(unmap(2, 0x10_0000, 0x10_0fff, false)),
            Status::NoEnt
        );
        assert_eq!(
            d.status_of(unmap(1, 0x10_1000, 0x10_0fff, false)),
            Status::Inval
        );
        assert_eq!(
            d.status_of(unmap(1, 0, INPUT_END + 1, false)),
            Status::Range
        );
        assert_eq!(d.status_of(unmap(1, 0, u64::MAX, false)), Status::Range);
        assert_eq!(backend(d, |b| b.mappings_of(EP).len()), 1);
    });
}

#[test]
fn probe_reports_each_reserved_region_then_zeroes() {
    with_driver(OFFERED_FEATURES, |d| {
        let Reply::Answered { status, properties } = d.send(Request::Probe { endpoint: EP }) else {
            panic!("probe unanswered");
        };
        assert_eq!(status, Status::Ok as u8);
        assert_eq!(properties.len(), PROBE_SIZE);
        let mut at = 0;
        for (r, subtype) in [(DOORBELL, 1u8), (HOLE, 0)] {
            let p = &properties[at..at + 24];
            assert_eq!(u16::from_le_bytes([p[0], p[1]]), PROBE_T_RESV_MEM);
            let len = u16::from_le_bytes([p[2], p[3]]);
            assert_eq!(len, 20);
            assert_eq!(p[4], subtype);
            assert_eq!(&p[5..8], &[0; 3]);
            assert_eq!(u64::from_le_bytes(p[8..16].try_into().unwrap()), r.start);
            assert_eq!(u64::from_le_bytes(p[16..24].try_into().unwrap()), r.end);
            at += 4 + usize::from(len);
        }
        assert!(properties[at..].iter().all(|&b| b == 0));
    });
}

#[test]
fn probe_of_an_unknown_endpoint_is_noent_with_no_property() {
    with_driver(OFFERED_FEATURES, |d| {
        let reply = d.send(Request::Probe {
            endpoint: ENDPOINTS.end,
        });
        assert_eq!(reply.status(), Some(Status::NoEnt));
        let Reply::Answered { properties, .. } = reply else {
            unreachable!()
        };
        assert!(properties.iter().all(|&b| b == 0));
    });
}

#[test]
fn probe_is_unsupported_unless_negotiated() {
    with_driver(OFFERED_FEATURES & !feature::PROBE, |d| {
        assert_eq!(d.status_of(Request::Probe { endpoint: EP }), Status::Unsupp);
    });
}

#[test]
fn an_unknown_request_type_is_returned_unwritten() {
    with_driver(OFFERED_FEATURES, |d| {
        for ty in [0u8, 6, 0xff] {
            let mut bytes = [0u8; 40];
            bytes[0] = ty;
            let (head, back) = d.request_chain(&bytes, 4);
            d.publish(0, head);
            d.kick(0);
            assert_eq!(d.collect(head, back, 4), Reply::Unanswered);
            assert_eq!(d.mem.peek(back, 4), [0xaa; 4], "not written");
        }
    });
}

#[test]
fn a_request_shorter_than_its_type_is_inval_and_not_executed() {
    with_driver(OFFERED_FEATURES, |d| {
        let full = Request::Attach {
            domain: 1,
            endpoint: EP,
            flags: 0,
            reserved_set: false,
        }
        .encode();
        for len in [4, 12, full.len() - 1] {
            assert_eq!(
                d.send_bytes(&full[..len]).status(),
                Some(Status::Inval),
                "{len} bytes"
            );
        }
        assert_eq!(d.dev.counts(), (0, 0));
        // Longer than needed is fine: the rest is ignored.
        let mut long = full.clone();
        long.extend_from_slice(&[0xee; 12]);
        assert_eq!(d.send_bytes(&long).status(), Some(Status::Ok));
    });
}

#[test]
fn every_backend_error_becomes_the_spec_status_for_it() {
    use BackendError as E;
    let table = [
        (E::NotFound, Status::NoEnt),
        (E::Denied, Status::Fault),
        (E::OutOfRange, Status::Range),
        (E::Unaligned, Status::Range),
        (E::Overlap, Status::Inval),
        (E::WouldSplit, Status::Range),
        (E::Unsupported, Status::Inval),
        (E::NoMemory, Status::NoMem),
        (E::Hardware, Status::DevErr),
    ];
    for (e, s) in table {
        assert_eq!(status_of(e), s, "{e}");
        assert_ne!(s, Status::Ok);
    }
}

#[test]
fn status_codes_have_the_spec_values() {
    let all = [
        (Status::Ok, 0),
        (Status::IoErr, 1),
        (Status::Unsupp, 2),
        (Status::DevErr, 3),
        (Status::Inval, 4),
        (Status::Range, 5),
        (Status::NoEnt, 6),
        (Status::Fault, 7),
        (Status::NoMem, 8),
    ];
    for (s, v) in all {
        assert_eq!(s as u8, v);
    }
}

#[test]
fn the_device_counts_and_times_what_it_serves_by_request_type() {
    use crate::vdev::iommu_device::{OTHER_REQUESTS, RequestStats};
    use core::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(0);
    // Each reading of the clock advances it by 10.
    fn clock() -> u64 {
        NOW.fetch_add(10, Ordering::Relaxed)
    }
    let rig = Rig::new();
    let dev = rig.device().with_clock(clock);
    let mut d = Driver::up(&dev, &rig.mem);
    assert_eq!(d.attach(1, 8), Status::Ok);
    assert_eq!(d.map(1, 0, 0xfff, DMA_RAM.start, 1), Status::Ok);
    assert_eq!(d.map(1, 0x1000, 0x1fff, DMA_RAM.start, 1), Status::Ok);
    assert_eq!(d.unmap(1, 0, 0x1fff), Status::Ok);
    assert_eq!(d.send_bytes(&[0x77, 0, 0, 0]), Reply::Unanswered);
    let s = dev.stats();
    assert_eq!(s.kicks, 5);
    let want = [1, 0, 2, 1, 0, 1];
    assert_eq!(s.count, want);
    let steps: [u64; 6] = want.map(|n| 10 * n);
    assert_eq!(s.ticks, steps, "one clock step per request");
    assert_eq!(RequestStats::index(Some(3)), 2);
    assert_eq!(RequestStats::index(Some(9)), OTHER_REQUESTS);
}

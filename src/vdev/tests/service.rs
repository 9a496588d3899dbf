//! The device over the real IOMMU core: [`ServiceBackend`] on the
//! `IommuService` with the real SMMU driver on the auditing fake SMMU
//! (`crate::iommu::tests` fixtures). Each test drives the device as
//! Linux does and checks what the core and the SMMU did.

use std::vec::Vec;

use super::driver::{Device, Driver, Rig};
use crate::iommu::api::{DomainId, StatsQuery};
use crate::iommu::domain::domain_id;
use crate::iommu::tests::{
    DOORBELL, EL1_RAM, EL2_MEM, GIC, MMIO, STREAMS, Storage, TableBudget, UNLIMITED,
    commands_since, service, translation_fault, with_fakes,
};
use crate::iommu::{IommuService, SmmuBackend, TableAllocator};
use crate::pgtable::MemType;
use crate::smmu::Command;
use crate::vdev::iommu_backend::{Fault, FaultReason, ReservedKind, ReservedRegion};
use crate::vdev::iommu_device::VirtioIommu;
use crate::vdev::iommu_wire::{
    FAULT_RECORD_LEN, Request, Status, fault_record, map_flags, resv_mem_property,
};
use crate::vdev::mmio_transport::{interrupt, reg};
use crate::vdev::service_backend::{BackendSetupError, ServiceBackend};

const R: u32 = map_flags::READ;
const W: u32 = map_flags::WRITE;
const MMIO_FLAG: u32 = map_flags::MMIO;
const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
/// Endpoints of SMMU 0 (its StreamIDs in the test's `iommu-map`).
const EP: u32 = 8;
const EP2: u32 = 9;

/// Runs `$body` with `$d` a driver that brought up a device over a
/// service on one fake SMMU, `$svc` the service, `$storage` its memory
/// records and `$fake` the fake SMMU. (A macro: the fixtures' lifetimes
/// are local to `with_fakes`.)
macro_rules! with_device {
    (|$d:ident, $svc:ident, $storage:ident, $fake:ident| $body:block) => {
        with_fakes(1, false, |fakes, smmus| {
            let storage = Storage::new(8);
            let budget = TableBudget::new(UNLIMITED);
            let svc = service(smmus, &storage, &budget);
            let backend = ServiceBackend::new(&svc, 0, &STREAMS, &[DOORBELL]).unwrap();
            let rig = Rig::new();
            let dev: Device<'_, _> = VirtioIommu::new(backend, &rig.mem, &rig.irq).unwrap();
            let mut driver = Driver::up(&dev, &rig.mem);
            #[allow(unused_variables)]
            let ($d, $svc, $storage, $fake) = (&mut driver, &svc, &storage, &fakes[0]);
            $body
            assert_eq!(rig.mem.violations(), Vec::<String>::new());
        })
    };
}

/// Objects the core holds: domains, attached streams, bytes mapped.
fn objects<S: SmmuBackend, A: TableAllocator>(svc: &IommuService<'_, S, A>) -> [u64; 3] {
    svc.stats(StatsQuery::Objects).unwrap()
}

/// The one live domain's id (the test services start empty).
fn only_domain<S: SmmuBackend, A: TableAllocator>(svc: &IommuService<'_, S, A>) -> DomainId {
    (0..8)
        .flat_map(|slot| (1..4).map(move |g| DomainId(domain_id(slot, g))))
        .find(|id| svc.check_domain(*id).is_ok())
        .expect("a live domain")
}

#[test]
fn the_configuration_space_reports_the_domains_page_sizes_and_input_range() {
    with_device!(|d, svc, storage, fake| {
        let cfg = |offset: u64| u64::from(d.read(reg::CONFIG + offset));
        let mask = cfg(0) | cfg(4) << 32;
        assert_eq!(
            mask,
            K4 | M2 | 1 << 30,
            "4 KiB pages, 2 MiB and 1 GiB blocks"
        );
        let end = cfg(16) | cfg(20) << 32;
        assert_eq!(end, (1 << 44) - 1, "QEMU's SMMU outputs 44 bits");
    });
}

#[test]
fn attach_creates_a_core_domain_with_the_msi_doorbell_mapped_identity_and_write_only() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(objects(svc), [1, 1, K4]);
        let t = svc.iova_to_phys(only_domain(svc), DOORBELL.start).unwrap();
        assert_eq!(t.pa, DOORBELL.start);
        assert!(t.prot.write && !t.prot.read && t.prot.no_exec);
        assert_eq!(t.prot.mem, MemType::Device);
        // A second endpoint joins the same domain.
        assert_eq!(d.attach(1, EP2), Status::Ok);
        assert_eq!(objects(svc), [1, 2, K4]);
    });
}

#[test]
fn probe_reports_the_doorbell_as_an_msi_region() {
    with_device!(|d, svc, storage, fake| {
        let reply = d.send(Request::Probe { endpoint: EP });
        assert_eq!(reply.status(), Some(Status::Ok));
        let super::driver::Reply::Answered { properties, .. } = reply else {
            unreachable!()
        };
        let doorbell = ReservedRegion {
            start: DOORBELL.start,
            end: DOORBELL.end() - 1,
            kind: ReservedKind::Msi,
        };
        assert_eq!(properties[..24], resv_mem_property(&doorbell));
        assert!(properties[24..].iter().all(|&b| b == 0));
    });
}

#[test]
fn endpoints_outside_the_smmus_iommu_map_do_not_exist() {
    with_device!(|d, svc, storage, fake| {
        // 0x100 is a StreamID of SMMU 1, 0x800 of none.
        for ep in [0x100, 0x800, 64] {
            assert_eq!(d.attach(1, ep), Status::NoEnt, "{ep:#x}");
            assert_eq!(
                d.send(Request::Probe { endpoint: ep }).status(),
                Some(Status::NoEnt)
            );
        }
        assert_eq!(d.attach(1, 0x1000), Status::Ok, "second range of SMMU 0");
        assert_eq!(objects(svc)[1], 1);
    });
}

#[test]
fn map_takes_el1_ram_with_a_reference_and_the_reply_follows_the_tlb_sync() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        let pa = EL1_RAM + 0x10_0000;
        assert_eq!(d.map(1, 0x4000_0000, 0x4000_ffff, pa, R | W), Status::Ok);
        let t = svc.iova_to_phys(only_domain(svc), 0x4000_8000).unwrap();
        assert_eq!(t.pa, pa + 0x8000);
        assert!(t.prot.read && t.prot.write);
        assert_eq!(t.prot.mem, MemType::Normal);
        assert_eq!(storage.refcount(pa), 1);
        assert_eq!(storage.refcount(pa + 0xf000), 1);
        let before = fake.state().trail.len();
        assert_eq!(d.unmap(1, 0x4000_0000, 0x4000_ffff), Status::Ok);
        // By the time the reply was written, the SMMU had executed the
        // invalidation and its sync.
        let cmds = commands_since(fake, before);
        let last = cmds.last().expect("commands");
        assert_eq!(*last, Command::sync());
        assert!(cmds.len() >= 2, "a TLBI before the sync: {cmds:?}");
        assert_eq!(storage.refcount(pa), 0);
        assert_eq!(objects(svc), [1, 1, K4], "only the doorbell");
    });
}

#[test]
fn map_refuses_what_el1_may_not_give_a_device_with_s_fault() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        let cases = [
            ("EL2's memory", EL2_MEM.start, R | W),
            ("the GIC, as MMIO", GIC.start, R | W | MMIO_FLAG),
            ("RAM with the MMIO flag", EL1_RAM, R | W | MMIO_FLAG),
            ("an allowed window without the MMIO flag", MMIO, R | W),
            ("the doorbell, readable", DOORBELL.start, R | W | MMIO_FLAG),
            ("a hole in the memory map", 0x7000_0000, R | W | MMIO_FLAG),
        ];
        for (what, pa, flags) in cases {
            assert_eq!(
                d.map(1, 0x10_0000, 0x10_0fff, pa, flags),
                Status::Fault,
                "{what}"
            );
        }
        assert_eq!(objects(svc), [1, 1, K4], "nothing mapped");
        assert_eq!(storage.refcount(EL1_RAM), 0);
        // What the allow-list permits does map: a BAR, and the doorbell
        // write-only at another address.
        assert_eq!(
            d.map(1, 0x10_0000, 0x10_0fff, MMIO, R | W | MMIO_FLAG),
            Status::Ok
        );
        assert_eq!(
            d.map(1, 0x20_0000, 0x20_0fff, DOORBELL.start, W | MMIO_FLAG),
            Status::Ok
        );
    });
}

#[test]
fn overlaps_reserved_iovas_and_missing_access_are_refused_with_s_inval() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_1fff, EL1_RAM, R), Status::Ok);
        assert_eq!(
            d.map(1, 0x10_1000, 0x10_2fff, EL1_RAM + 0x8000, R),
            Status::Inval,
            "overlap"
        );
        assert_eq!(
            d.map(1, DOORBELL.start, DOORBELL.end() - 1, EL1_RAM, W),
            Status::Inval,
            "the doorbell's IOVA is reserved"
        );
        assert_eq!(
            d.map(1, 0x30_0000, 0x30_0fff, EL1_RAM, 0),
            Status::Inval,
            "neither read nor write"
        );
        assert_eq!(objects(svc)[2], K4 + 2 * K4);
    });
}

#[test]
fn unmap_removes_every_leaf_in_the_range_and_refuses_to_split_a_block() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        let block = EL1_RAM + 0x20_0000 - (EL1_RAM % M2) + M2;
        assert_eq!(d.map(1, 0x4000_0000, 0x401f_ffff, block, R | W), Status::Ok);
        assert_eq!(
            svc.iova_to_phys(only_domain(svc), 0x4000_0000)
                .unwrap()
                .leaf_size,
            M2
        );
        assert_eq!(d.map(1, 0x5000_0000, 0x5000_0fff, EL1_RAM, R), Status::Ok);
        assert_eq!(d.map(1, 0x5000_8000, 0x5000_8fff, EL1_RAM, R), Status::Ok);
        assert_eq!(storage.refcount(EL1_RAM), 2);
        // Cutting the 2 MiB block: refused, nothing removed.
        assert_eq!(d.unmap(1, 0x4000_0000, 0x400f_ffff), Status::Range);
        assert_eq!(d.unmap(1, 0x3ff0_0000, 0x4000_0fff), Status::Range);
        assert_eq!(objects(svc)[2], K4 + M2 + 2 * K4);
        // A range with holes and two pages in it.
        assert_eq!(d.unmap(1, 0x4ff0_0000, 0x5fff_ffff), Status::Ok);
        assert_eq!(storage.refcount(EL1_RAM), 0);
        // Nothing mapped there: still S_OK.
        assert_eq!(d.unmap(1, 0x6000_0000, 0x6fff_ffff), Status::Ok);
        assert_eq!(d.unmap(1, 0x4000_0000, 0x401f_ffff), Status::Ok);
        assert_eq!(objects(svc), [1, 1, K4]);
        assert_eq!(storage.refcount(block), 0);
    });
}

#[test]
fn the_last_detach_frees_the_core_domain_with_its_mappings_and_references() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.attach(1, EP2), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_ffff, EL1_RAM, R | W), Status::Ok);
        assert_eq!(d.detach(1, EP), Status::Ok);
        assert_eq!(objects(svc)[0], 1, "the domain lives on with EP2");
        assert_eq!(d.detach(1, EP2), Status::Ok);
        assert_eq!(objects(svc), [0, 0, 0]);
        assert_eq!(storage.refcount(EL1_RAM), 0);
        assert_eq!(svc.stats(StatsQuery::Memory).unwrap()[..2], [0, 0]);
        assert_eq!(svc.vmids_in_use(), 0);
    });
}

#[test]
fn a_device_reset_detaches_and_frees_everything_in_the_core() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.attach(2, EP2), Status::Ok);
        assert_eq!(d.map(2, 0x10_0000, 0x10_ffff, EL1_RAM, R | W), Status::Ok);
        d.write(reg::STATUS, 0);
        assert_eq!(objects(svc), [0, 0, 0]);
        assert_eq!(storage.refcount(EL1_RAM), 0);
    });
}

#[test]
fn a_stream_attached_through_the_hypercalls_is_not_taken_over() {
    with_device!(|d, svc, storage, fake| {
        let other = svc
            .domain_alloc(40, crate::pgtable::Granule::Size4K)
            .unwrap()
            .id;
        let stream = crate::iommu::StreamRef { smmu: 0, sid: EP };
        svc.attach(stream, other).unwrap();
        assert_eq!(d.attach(1, EP), Status::Inval);
        assert_eq!(objects(svc), [1, 1, 0], "the virtio domain was discarded");
        svc.detach(stream).unwrap();
        assert_eq!(d.attach(1, EP), Status::Ok);
    });
}

#[test]
fn smmu_events_of_endpoints_become_fault_records_when_the_driver_reads_interrupt_status() {
    with_device!(|d, svc, storage, fake| {
        d.post_event_buffers(4, FAULT_RECORD_LEN as u32);
        fake.inject_event(translation_fault(EP, 0x1234_5000));
        // StreamID 0x500 is behind the SMMU but not listed for EL1.
        fake.inject_event(translation_fault(0x500, 0x9000));
        let mut bad_ste = translation_fault(EP2, 0);
        bad_ste[0] = (bad_ste[0] & !0xff) | 0x04;
        fake.inject_event(bad_ste);
        assert_eq!(d.read(reg::INTERRUPT_STATUS), interrupt::USED_BUFFER);
        let mapping = Fault {
            endpoint: EP,
            reason: FaultReason::Mapping,
            read: true,
            write: false,
            address: Some(0x1234_5000),
        };
        let domain = Fault {
            endpoint: EP2,
            reason: FaultReason::Domain,
            read: false,
            write: false,
            address: None,
        };
        assert_eq!(
            d.take_events(),
            [
                fault_record(&mapping).to_vec(),
                fault_record(&domain).to_vec()
            ]
        );
        assert_eq!(d.dev.with_backend(|b| b.foreign_events()), 1);
    });
}

#[test]
fn a_backend_needs_a_driven_smmu_endpoints_and_aligned_doorbells() {
    with_fakes(1, true, |_, smmus| {
        let storage = Storage::new(8);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let err = |smmu, doorbells: &[_]| {
            ServiceBackend::new(&svc, smmu, &STREAMS, doorbells)
                .err()
                .unwrap()
        };
        assert_eq!(err(1, &[DOORBELL]), BackendSetupError::NoSmmu);
        assert_eq!(err(7, &[DOORBELL]), BackendSetupError::NoSmmu);
        let odd = crate::memmap::PhysRange::new(DOORBELL.start + 4, K4);
        assert_eq!(err(0, &[odd]), BackendSetupError::BadDoorbells);
        let none: [crate::iommu::StreamRange; 0] = [];
        assert_eq!(
            ServiceBackend::new(&svc, 0, &none, &[DOORBELL]).err(),
            Some(BackendSetupError::NoEndpoints)
        );
    });
}

#[test]
fn a_stream_detached_through_the_hypercalls_can_still_be_detached_and_moved_by_the_driver() {
    with_device!(|d, svc, storage, fake| {
        let stream = crate::iommu::StreamRef { smmu: 0, sid: EP };
        assert_eq!(d.attach(1, EP), Status::Ok);
        svc.detach(stream).unwrap();
        assert_eq!(
            d.detach(1, EP),
            Status::Ok,
            "DETACH of an existing endpoint"
        );
        assert_eq!(
            objects(svc),
            [0, 0, 0],
            "domain 1 freed with its last endpoint"
        );
        assert_eq!(d.attach(1, EP), Status::Ok);
        svc.detach(stream).unwrap();
        assert_eq!(d.attach(2, EP), Status::Ok, "ATTACH elsewhere");
        assert_eq!(
            objects(svc),
            [1, 1, K4],
            "domain 1 freed, domain 2 holds EP"
        );
    });
}

#[test]
fn a_domain_the_core_cannot_free_stays_the_devices_until_it_can() {
    with_device!(|d, svc, storage, fake| {
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.map(1, 0x10_0000, 0x10_ffff, EL1_RAM, R | W), Status::Ok);
        // EL1 attaches another stream to the device's domain through the
        // hypercalls: the core refuses to free it at the last DETACH.
        let other = crate::iommu::StreamRef { smmu: 0, sid: EP2 };
        svc.attach(other, only_domain(svc)).unwrap();
        assert_eq!(d.detach(1, EP), Status::DevErr);
        // The device still knows domain 1: it maps, and frees it once the
        // hypercall stream is gone.
        assert_eq!(d.map(1, 0x20_0000, 0x20_ffff, EL1_RAM, R | W), Status::Ok);
        svc.detach(other).unwrap();
        assert_eq!(d.attach(1, EP), Status::Ok);
        assert_eq!(d.detach(1, EP), Status::Ok);
        assert_eq!(objects(svc), [0, 0, 0]);
        assert_eq!(storage.refcount(EL1_RAM), 0);
    });
}

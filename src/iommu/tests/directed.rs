//! One test per behaviour: the happy path, every refusal class (with the
//! state checked unchanged), ownership, the sync ordering of reference
//! counts, multi-SMMU flushes, chunked unmaps, faults.

use std::vec::Vec;

use super::*;
use crate::hypercall::abi::{self, prot, stats, unmap as uflags};
use crate::smmu::fake::Outcome;

const MIB2: u64 = 2 << 20;
const K4: u64 = 0x1000;

fn alloc<S: SmmuBackend>(svc: &Svc<'_, S>, ipa: u32) -> u64 {
    client::decode_domain_alloc(hypercall::dispatch_with(
        &client::domain_alloc(ipa, 0),
        Some(svc),
    ))
    .expect("domain_alloc")
    .id
}

#[test]
fn happy_path_alloc_attach_map_translate_unmap_detach_free() {
    with_fakes(2, true, |fakes, smmus| {
        let storage = Storage::new(8);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        assert_eq!(
            call(&svc, client::iommu_info()),
            Ok([3, 8, super::super::attach::MAX_ATTACHMENTS as u64])
        );
        let d = client::decode_domain_alloc(hypercall::dispatch_with(
            &client::domain_alloc(40, 0),
            Some(&svc),
        ))
        .unwrap();
        assert_eq!(d.pgsizes, K4 | MIB2 | 1 << 30);
        assert_eq!(d.ipa_bits, 40);
        let id = d.id;
        assert_eq!(call(&svc, client::attach(0, 5, id)), Ok([0; 3]));
        let Outcome::Stage2(cfg) = fakes[0].translate(5) else {
            panic!("sid 5 not translating");
        };
        let expected = svc.with_domain(DomainId(id), |d| d.s2_config()).unwrap();
        assert_eq!(cfg, expected);

        let pa = EL1_RAM + 0x10_0000;
        let before = syncs(fakes);
        assert_eq!(
            call(
                &svc,
                client::map(id, 0x10_0000, pa, K4, 4, RW | prot::NOEXEC)
            ),
            Ok([0x4000, 0, 0])
        );
        assert_eq!(syncs(fakes), before, "a map needs no sync");
        let t = client::decode_iova_to_phys(hypercall::dispatch_with(
            &client::iova_to_phys(id, 0x10_1234),
            Some(&svc),
        ))
        .unwrap();
        assert_eq!(
            (t.pa, t.prot, t.leaf_size),
            (pa + 0x1234, RW | prot::NOEXEC, K4)
        );
        for p in 0..4 {
            assert_eq!(storage.refcount(pa + p * K4), 1);
        }
        assert_eq!(storage.refcount(pa + 4 * K4), 0);

        let trail = activity(fakes);
        let u = client::decode_unmap(hypercall::dispatch_with(
            &client::unmap(id, 0x10_0000, K4, 4, 0),
            Some(&svc),
        ))
        .unwrap();
        assert_eq!((u.bytes, u.iova, u.size), (0x4000, 0x10_0000, 0x4000));
        let after = syncs(fakes);
        assert_eq!(after[0], before[0] + 1, "one CMD_SYNC on the attached SMMU");
        assert_eq!(after[1], before[1], "none on the other");
        let cmds = commands_since(&fakes[0], trail[0]);
        assert_eq!(cmds.last(), Some(&Command::sync()));
        assert!(cmds.len() >= 2, "TLBIs before the sync: {cmds:?}");
        for p in 0..4 {
            assert_eq!(storage.refcount(pa + p * K4), 0);
        }
        assert_eq!(
            call(&svc, client::iova_to_phys(id, 0x10_1234)),
            Err(abi::NOT_FOUND)
        );

        let vmid = svc.with_domain(DomainId(id), |d| d.vmid()).unwrap();
        let trail = activity(fakes);
        assert_eq!(call(&svc, client::detach(0, 5)), Ok([0; 3]));
        assert_eq!(fakes[0].translate(5), Outcome::Abort);
        let cmds = commands_since(&fakes[0], trail[0]);
        let vmall = cmds
            .iter()
            .position(|c| *c == Command::tlbi_s12_vmall(vmid))
            .expect("VMID invalidated at the last detach");
        assert_eq!(cmds.get(vmall + 1), Some(&Command::sync()));

        assert_eq!(call(&svc, client::domain_free(id)), Ok([0; 3]));
        assert_eq!(budget.live(), 0, "every table freed");
        assert_eq!(svc.vmids_in_use(), 0);
        assert_eq!(call(&svc, client::stats(stats::CALLS, 0)), Ok([1, 1, 1]));
        assert_eq!(call(&svc, client::stats(stats::OBJECTS, 0)), Ok([0, 0, 0]));
        assert_eq!(
            call(&svc, client::stats(stats::MEMORY, 0)),
            Ok([0, 0, EL2_MEM.size / K4])
        );
        assert_eq!(
            call(&svc, client::domain_free(id)),
            Err(abi::NOT_FOUND),
            "a freed id stays invalid"
        );
    });
}

/// Calls `args`, expects `code`, and checks that nothing changed: tables,
/// reference counts, counters, table memory, VMIDs, and the SMMUs saw no
/// command or register write.
fn refused<S: SmmuBackend>(
    svc: &Svc<'_, S>,
    fakes: &[FakeSmmu<'_>],
    ids: &[u64],
    storage: &Storage,
    budget: &TableBudget,
    args: client::Args,
    code: i64,
) {
    let before = Snapshot::take(svc, ids, storage, budget);
    let trail = activity(fakes);
    let errors = svc.stats(StatsQuery::Calls).unwrap()[2];
    assert_eq!(
        call(svc, args),
        Err(code),
        "{args:x?} should be {}",
        abi::error_name(code)
    );
    assert_eq!(
        Snapshot::take(svc, ids, storage, budget),
        before,
        "{args:x?}"
    );
    assert_eq!(activity(fakes), trail, "{args:x?} touched an SMMU");
    if args[0] as u32 & 0xff00_0000 == 0xc600_0000 && abi::IOMMU_CALLS.contains(&(args[0] as u32)) {
        assert_eq!(svc.stats(StatsQuery::Calls).unwrap()[2], errors + 1);
    }
}

#[test]
fn every_bad_input_is_refused_with_its_code_and_changes_nothing() {
    with_fakes(2, true, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        let b = alloc(&svc, 32);
        let stale = alloc(&svc, 32);
        call(&svc, client::domain_free(stale)).unwrap();
        call(&svc, client::attach(0, 1, a)).unwrap();
        let block_pa = EL1_RAM;
        let page_pa = EL1_RAM + 0x40_0000;
        call(&svc, client::map(a, 0x20_0000, block_pa, MIB2, 1, RW)).unwrap();
        call(&svc, client::map(a, 0x1000, page_pa, K4, 1, RW)).unwrap();
        let ids = [a, b, stale];
        let no = |args, code| refused(&svc, fakes, &ids, &storage, &budget, args, code);

        // Unknown function.
        no([0xc600_00ff, 1, 2, 3, 4, 5, 6, 7], abi::NOT_SUPPORTED);
        no([0xc600_0028, 1, 2, 3, 4, 5, 6, 7], abi::NOT_SUPPORTED);
        // Bad domain ids: never allocated, freed, slot out of range, junk.
        for id in [0, stale, b | 0xff, u64::MAX, 1 << 16 | 3] {
            no(client::map(id, 0, EL1_RAM, K4, 1, RW), abi::NOT_FOUND);
            no(client::unmap(id, 0x1000, K4, 1, 0), abi::NOT_FOUND);
            no(client::iova_to_phys(id, 0x1000), abi::NOT_FOUND);
            no(client::domain_free(id), abi::NOT_FOUND);
            no(client::attach(0, 2, id), abi::NOT_FOUND);
        }
        // SMMU index out of range, or not driven.
        no(client::attach(3, 1, b), abi::OUT_OF_RANGE);
        no(
            [u64::from(abi::HYP_ATTACH), 1 << 40, 1, b, 0, 0, 0, 0],
            abi::OUT_OF_RANGE,
        );
        no(client::attach(2, 1, b), abi::NOT_FOUND);
        no(client::detach(2, 1), abi::NOT_FOUND);
        no(client::fault_pop(7), abi::OUT_OF_RANGE);
        no(client::smmu_info(3), abi::OUT_OF_RANGE);
        no(client::smmu_info(2), abi::NOT_FOUND);
        no(client::stats(stats::SMMU_COMMANDS, 9), abi::OUT_OF_RANGE);
        // StreamID beyond the SMMU's limit, or not behind that SMMU.
        no(client::attach(0, 1 << 16, b), abi::OUT_OF_RANGE);
        no(
            [u64::from(abi::HYP_ATTACH), 0, 1 << 32 | 1, b, 0, 0, 0, 0],
            abi::OUT_OF_RANGE,
        );
        no(client::attach(0, 0x100, b), abi::DENIED);
        no(client::attach(1, 1, b), abi::DENIED);
        no(client::attach(0, 64, b), abi::DENIED);
        no(client::detach(1, 1), abi::DENIED);
        // Attach of an attached stream (to any domain); detach of a free one.
        no(client::attach(0, 1, b), abi::EXISTS);
        no(client::attach(0, 1, a), abi::EXISTS);
        no(client::detach(0, 2), abi::NOT_FOUND);
        // Free of an attached domain.
        no(client::domain_free(a), abi::BUSY);
        // Unaligned iova or pa.
        no(client::map(b, 0x1000, EL1_RAM, MIB2, 1, RW), abi::UNALIGNED);
        no(client::map(b, 0, EL1_RAM + K4, MIB2, 1, RW), abi::UNALIGNED);
        no(client::unmap(a, 0x20_1000, MIB2, 1, 0), abi::UNALIGNED);
        // Page size not supported by the domain.
        for pgsize in [0, 3, 0x800, 0x2000, 0x4000, 0x1_0000, 1 << 39, 1 << 63] {
            no(
                client::map(b, 0, EL1_RAM, pgsize, 1, RW),
                abi::INVALID_PARAMETER,
            );
            no(client::unmap(a, 0, pgsize, 1, 0), abi::INVALID_PARAMETER);
        }
        // Zero or overflowing size, wrapping ranges.
        no(
            client::map(b, 0, EL1_RAM, K4, 0, RW),
            abi::INVALID_PARAMETER,
        );
        no(
            client::map(b, 0, EL1_RAM, K4, 1 << 52, RW),
            abi::INVALID_PARAMETER,
        );
        no(client::unmap(a, 0, K4, 0, 0), abi::INVALID_PARAMETER);
        no(
            client::unmap(a, 0, MIB2, u64::MAX, 0),
            abi::INVALID_PARAMETER,
        );
        no(
            client::map(b, !0xfff, EL1_RAM, K4, 2, RW),
            abi::INVALID_PARAMETER,
        );
        no(
            client::map(b, 0, !0xfff, K4, 2, prot::MMIO | R),
            abi::INVALID_PARAMETER,
        );
        no(client::unmap(a, !0xfff, K4, 2, 0), abi::INVALID_PARAMETER);
        // Beyond the IPA size or the output size.
        no(
            client::map(b, (1 << 32) - K4, EL1_RAM, K4, 2, RW),
            abi::OUT_OF_RANGE,
        );
        no(
            client::map(b, 1 << 32, EL1_RAM, K4, 1, RW),
            abi::OUT_OF_RANGE,
        );
        no(client::unmap(b, 1 << 32, K4, 1, 0), abi::OUT_OF_RANGE);
        no(client::iova_to_phys(b, 1 << 32), abi::OUT_OF_RANGE);
        no(
            client::map(b, 0, 1 << 44, K4, 1, prot::MMIO | R),
            abi::OUT_OF_RANGE,
        );
        // Overlap with a block and with a page.
        no(
            client::map(a, 0x20_1000, EL1_RAM + 0x50_0000, K4, 1, RW),
            abi::EXISTS,
        );
        no(
            client::map(a, 0, EL1_RAM + 0x50_0000, K4, 4, RW),
            abi::EXISTS,
        );
        no(client::map(a, 0, EL1_RAM, MIB2, 2, RW), abi::EXISTS);
        // Unmap of an unmapped range.
        no(client::unmap(b, 0, K4, 1, 0), abi::NOT_FOUND);
        no(client::unmap(a, 0x4000_0000, K4, 16, 0), abi::NOT_FOUND);
        no(
            client::unmap(a, 0x2000, K4, 8, uflags::WHOLE_LEAF),
            abi::NOT_FOUND,
        );
        // Partial block (either end) without WHOLE_LEAF.
        no(client::unmap(a, 0x20_1000, K4, 1, 0), abi::PARTIAL_BLOCK);
        no(client::unmap(a, 0x1000, K4, 0x200, 0), abi::PARTIAL_BLOCK);
        // Not the caller's memory: EL2's, the SMMUs', the GIC, straddling.
        no(client::map(b, 0, EL2_MEM.start, K4, 1, RW), abi::DENIED);
        no(
            client::map(b, 0, EL2_MEM.start + 0x1f_f000, K4, 1, RW),
            abi::DENIED,
        );
        no(client::map(b, 0, EL1_RAM - K4, K4, 2, RW), abi::DENIED);
        no(client::map(b, 0, EL2_MEM.start, MIB2, 1, RW), abi::DENIED);
        // No-map reserved memory, whole, one page of it, or straddled.
        no(client::map(b, 0, NO_MAP.start, MIB2, 1, RW), abi::DENIED);
        no(client::map(b, 0, NO_MAP.end() - K4, K4, 1, RW), abi::DENIED);
        no(client::map(b, 0, NO_MAP.start - K4, K4, 2, RW), abi::DENIED);
        for i in 0..2 {
            let regs = smmu_regs(i).start;
            no(client::map(b, 0, regs, K4, 1, prot::MMIO | RW), abi::DENIED);
            no(
                client::map(b, 0, regs + 0x1_f000, K4, 1, prot::MMIO | RW),
                abi::DENIED,
            );
        }
        no(
            client::map(b, 0, GIC.start, K4, 1, prot::MMIO | RW),
            abi::DENIED,
        );
        no(
            client::map(b, 0, GIC.start - K4, K4, 2, prot::MMIO | RW),
            abi::DENIED,
        );
        no(client::map(b, 0, RAM.end() - K4, K4, 2, RW), abi::DENIED);
        // MMIO outside every allowed window (a fw_cfg-like bus master,
        // flash at 0, past the last window, just below the first), or
        // running past a window's end.
        for pa in [0x902_0000, 0, MMIO_WINDOWS[1].end(), MMIO - K4] {
            no(client::map(b, 0, pa, K4, 1, prot::MMIO | W), abi::DENIED);
        }
        no(
            client::map(b, 0, MMIO_WINDOWS[0].end() - K4, K4, 2, prot::MMIO | W),
            abi::DENIED,
        );
        // An MSI doorbell: write-only device memory, one page.
        no(
            client::map(b, 0, DOORBELL.start, K4, 1, prot::MMIO | RW),
            abi::DENIED,
        );
        no(
            client::map(b, 0, DOORBELL.start, K4, 1, W),
            abi::INVALID_PARAMETER,
        );
        no(
            client::map(b, 0, DOORBELL.start, K4, 2, prot::MMIO | W),
            abi::DENIED,
        );
        no(
            client::map(b, 0, RAM.start - K4, K4, 2, prot::MMIO | RW),
            abi::DENIED,
        );
        // Memory type must match: MMIO outside RAM only, and only MMIO there.
        no(
            client::map(b, 0, EL1_RAM, K4, 1, prot::MMIO | RW),
            abi::INVALID_PARAMETER,
        );
        no(client::map(b, 0, MMIO, K4, 1, RW), abi::INVALID_PARAMETER);
        no(
            client::map(b, 0, MMIO, K4, 1, prot::NONCACHEABLE | RW),
            abi::INVALID_PARAMETER,
        );
        // Bad prot and flag bits.
        no(client::map(b, 0, EL1_RAM, K4, 1, 0), abi::INVALID_PARAMETER);
        no(
            client::map(b, 0, EL1_RAM, K4, 1, prot::NOEXEC),
            abi::INVALID_PARAMETER,
        );
        no(
            client::map(b, 0, EL1_RAM, K4, 1, RW | 1 << 5),
            abi::INVALID_PARAMETER,
        );
        no(
            client::map(b, 0, EL1_RAM, K4, 1, prot::MMIO | prot::NONCACHEABLE | R),
            abi::INVALID_PARAMETER,
        );
        no(client::unmap(a, 0x1000, K4, 1, 2), abi::INVALID_PARAMETER);
        // Bad domain shapes.
        for (ipa, granule) in [
            (31, 0),
            (45, 0),
            (64, 0),
            (1 << 33, 0),
            (40, 0x2000),
            (40, 1),
        ] {
            no(
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
                abi::INVALID_PARAMETER,
            );
        }
        no(client::stats(99, 0), abi::INVALID_PARAMETER);
        // No fault recorded.
        no(client::fault_pop(0), abi::NOT_FOUND);
        // EL2 out of memory: nothing half-done.
        budget.set_left(0);
        no(
            client::map(b, 0x8000_0000, EL1_RAM, K4, 1, RW),
            abi::NO_MEMORY,
        );
        no(
            client::map(a, 0x80_0000_0000, EL1_RAM, K4, 1, RW),
            abi::NO_MEMORY,
        );
        no(client::domain_alloc(40, 0), abi::NO_MEMORY);
        // Half of what a deep map needs: the first tables are given back.
        budget.set_left(K4 as i64);
        no(
            client::map(a, 0x90_0000_0000, EL1_RAM, K4, 1, RW),
            abi::NO_MEMORY,
        );
        budget.unlimit();

        // Everything still works afterwards.
        assert_eq!(
            call(&svc, client::map(b, 0, EL1_RAM + 0x60_0000, K4, 1, RW)),
            Ok([K4, 0, 0])
        );
    });
}

#[test]
fn too_many_domains() {
    with_fakes(1, false, |fakes, smmus| {
        let storage = Storage::new(3);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let ids: Vec<u64> = (0..3).map(|_| alloc(&svc, 36)).collect();
        refused(
            &svc,
            fakes,
            &ids,
            &storage,
            &budget,
            client::domain_alloc(36, 0),
            abi::TOO_MANY,
        );
        call(&svc, client::domain_free(ids[1])).unwrap();
        let again = alloc(&svc, 36);
        assert_ne!(again, ids[1], "a reused slot gets a new id");
        assert_eq!(again & 0xffff, ids[1] & 0xffff);
        assert_eq!(svc.vmids_in_use(), 3);
    });
}

#[test]
fn whole_leaf_unmap_removes_the_covering_leaf_and_reports_it() {
    with_fakes(1, false, |_, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        call(&svc, client::map(a, 0x20_0000, EL1_RAM, MIB2, 1, RW)).unwrap();
        // 512 pages at once: a 2 MiB-aligned 4K map becomes a block.
        call(&svc, client::map(a, 0x40_0000, EL1_RAM + MIB2, K4, 512, RW)).unwrap();
        assert_eq!(
            call(&svc, client::iova_to_phys(a, 0x40_0000)).unwrap()[2],
            MIB2,
            "larger leaves where alignment allows"
        );
        assert_eq!(storage.refcount(EL1_RAM + 0x1000), 1);
        let u = client::decode_unmap(hypercall::dispatch_with(
            &client::unmap(a, 0x20_1000, K4, 1, uflags::WHOLE_LEAF),
            Some(&svc),
        ))
        .unwrap();
        assert_eq!((u.bytes, u.iova, u.size), (MIB2, 0x20_0000, MIB2));
        for p in 0..512 {
            assert_eq!(storage.refcount(EL1_RAM + p * K4), 0);
            assert_eq!(storage.refcount(EL1_RAM + MIB2 + p * K4), 1);
        }
        assert_eq!(svc.tracker().dma_refs(), 512);
    });
}

#[test]
fn a_doorbell_maps_write_only_as_device_memory_and_is_never_counted() {
    with_fakes(1, false, |_, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        call(
            &svc,
            client::map(a, 0, DOORBELL.start, K4, 1, prot::MMIO | W),
        )
        .unwrap();
        let t = call(&svc, client::iova_to_phys(a, 0x40)).unwrap();
        assert_eq!(t, [DOORBELL.start + 0x40, prot::MMIO | W, K4]);
        let last = MMIO_WINDOWS[0].end() - K4;
        call(
            &svc,
            client::map(a, 0x10_0000, last, K4, 1, prot::MMIO | RW),
        )
        .unwrap();
        assert_eq!(svc.tracker().dma_refs(), 0, "MMIO is never counted");
    });
}

#[test]
fn mmio_is_mapped_with_device_attributes_and_never_counted() {
    with_fakes(1, false, |_, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        call(&svc, client::map(a, 0, MMIO, K4, 16, prot::MMIO | RW)).unwrap();
        let t = call(&svc, client::iova_to_phys(a, 0x3008)).unwrap();
        assert_eq!(t, [MMIO + 0x3008, prot::MMIO | RW, K4]);
        assert_eq!(svc.tracker().dma_refs(), 0);
        call(
            &svc,
            client::map(a, 0x10_0000, EL1_RAM, K4, 1, prot::NONCACHEABLE | R),
        )
        .unwrap();
        assert_eq!(
            call(&svc, client::iova_to_phys(a, 0x10_0000)).unwrap()[1],
            prot::NONCACHEABLE | R
        );
        assert_eq!(
            call(&svc, client::unmap(a, 0, K4, 16, 0)).unwrap()[0],
            16 * K4
        );
        assert_eq!(svc.tracker().underflows(), 0);
        assert_eq!(svc.tracker().dma_refs(), 1);
    });
}

#[test]
fn refcounts_drop_only_after_the_sync_completed() {
    let storage = Storage::new(4);
    let page = EL1_RAM + 0x33_0000;
    let seen = std::sync::Mutex::new(Vec::new());
    let mut mock = MockSmmu::new();
    let (st, sn) = (&storage, &seen);
    mock.on_sync = Some(Box::new(move || sn.lock().unwrap().push(st.refcount(page))));
    let m = spin::Mutex::new(mock);
    let smmus = [Some(&m)];
    let budget = TableBudget::new(UNLIMITED);
    let svc = service(&smmus, &storage, &budget);
    let a = alloc(&svc, 40);
    call(&svc, client::attach(0, 3, a)).unwrap();
    call(&svc, client::map(a, 0x5000, page, K4, 1, RW)).unwrap();
    call(&svc, client::map(a, 0x9000, page, K4, 1, R)).unwrap();
    assert_eq!(storage.refcount(page), 2, "one reference per mapping");
    seen.lock().unwrap().clear();
    call(&svc, client::unmap(a, 0x5000, K4, 1, 0)).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [2],
        "still referenced while the sync runs"
    );
    assert_eq!(storage.refcount(page), 1);

    // A sync that fails: the page stays referenced (pinned) for good.
    m.lock().fail_syncs = true;
    assert_eq!(
        call(&svc, client::unmap(a, 0x9000, K4, 1, 0)),
        Err(abi::SMMU_ERROR)
    );
    assert_eq!(storage.refcount(page), 1);
    assert_eq!(
        call(&svc, client::iova_to_phys(a, 0x9000)),
        Err(abi::NOT_FOUND)
    );
    // The pending invalidation is retried before the range is reused; the
    // new page's claim is undone when it fails.
    let other = EL1_RAM + 0x44_0000;
    assert_eq!(
        call(&svc, client::map(a, 0x9000, other, K4, 1, RW)),
        Err(abi::SMMU_ERROR)
    );
    assert_eq!(storage.refcount(other), 0);
    m.lock().fail_syncs = false;
    call(&svc, client::map(a, 0x9000, other, K4, 1, RW)).unwrap();
    assert_eq!(storage.refcount(other), 1);
    assert_eq!(storage.refcount(page), 1, "leaked, never released unsynced");
    // An ownership change refuses the pinned page.
    assert_eq!(
        svc.tracker().set_owner(page, K4, Owner::El2),
        Err(crate::mem::OwnershipError::Mapped)
    );
}

#[test]
fn unmap_flushes_every_attached_smmu_once() {
    with_fakes(2, false, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        call(&svc, client::attach(0, 1, a)).unwrap();
        call(&svc, client::attach(0, 2, a)).unwrap();
        call(&svc, client::attach(1, 0x100, a)).unwrap();
        call(&svc, client::map(a, 0, EL1_RAM, K4, 64, RW)).unwrap();
        let before = syncs(fakes);
        call(&svc, client::unmap(a, 0, K4, 64, 0)).unwrap();
        let after = syncs(fakes);
        assert_eq!([after[0] - before[0], after[1] - before[1]], [1, 1]);
        // Detaching one of two streams on SMMU 0 keeps it in the flushes;
        // detaching SMMU 1's only stream drops SMMU 1 (after invalidating
        // the VMID there).
        call(&svc, client::detach(0, 1)).unwrap();
        call(&svc, client::detach(1, 0x100)).unwrap();
        call(&svc, client::map(a, 0, EL1_RAM, K4, 1, RW)).unwrap();
        let before = syncs(fakes);
        call(&svc, client::unmap(a, 0, K4, 1, 0)).unwrap();
        let after = syncs(fakes);
        assert_eq!([after[0] - before[0], after[1] - before[1]], [1, 0]);
        assert_eq!(svc.attached_streams(), 1);
    });
}

#[test]
fn discontiguous_unmaps_sync_once_per_128_runs_and_contiguous_ones_once() {
    with_fakes(1, false, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        call(&svc, client::attach(0, 1, a)).unwrap();
        // 300 pages, each from a different physical run.
        for i in 0..300u64 {
            call(
                &svc,
                client::map(a, 0x100_0000 + i * K4, EL1_RAM + i * 2 * K4, K4, 1, RW),
            )
            .unwrap();
        }
        assert_eq!(svc.tracker().dma_refs(), 300);
        let before = syncs(fakes)[0];
        let u = call(&svc, client::unmap(a, 0x100_0000, K4, 300, 0)).unwrap();
        assert_eq!(u[0], 300 * K4);
        assert_eq!(syncs(fakes)[0] - before, 3, "ceil(300 / 128) syncs");
        assert_eq!(svc.tracker().dma_refs(), 0);
        // 64 MiB-ish contiguous, mixed blocks and pages, with holes: one sync.
        call(&svc, client::map(a, 0x4000_0000, EL1_RAM, K4, 16, RW)).unwrap();
        call(
            &svc,
            client::map(a, 0x4020_0000, EL1_RAM + MIB2, MIB2, 8, RW),
        )
        .unwrap();
        let before = syncs(fakes)[0];
        let u = call(&svc, client::unmap(a, 0x4000_0000, MIB2, 512, 0)).unwrap();
        assert_eq!(u[0], 16 * K4 + 8 * MIB2);
        assert_eq!(syncs(fakes)[0] - before, 1);
        assert_eq!(svc.tracker().dma_refs(), 0);
        assert_eq!(svc.tracker().underflows(), 0);
    });
}

#[test]
fn freeing_a_domain_releases_its_pages_tables_and_vmid() {
    with_fakes(1, false, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 44);
        call(&svc, client::attach(0, 7, a)).unwrap();
        for i in 0..200u64 {
            call(
                &svc,
                client::map(a, i << 30, EL1_RAM + i * 3 * K4, K4, 1, RW),
            )
            .unwrap();
        }
        call(&svc, client::map(a, 0xfff_0000_0000, EL1_RAM, MIB2, 4, RW)).unwrap();
        assert_eq!(svc.tracker().dma_refs(), 200 + 4 * 512);
        let vmid = svc.with_domain(DomainId(a), |d| d.vmid()).unwrap();
        call(&svc, client::detach(0, 7)).unwrap();
        let trail = activity(fakes);
        call(&svc, client::domain_free(a)).unwrap();
        assert_eq!(svc.tracker().dma_refs(), 0);
        assert_eq!(budget.live(), 0);
        // Detach already invalidated the VMID: freeing needs no command.
        assert_eq!(commands_since(&fakes[0], trail[0]), []);
        let b = alloc(&svc, 40);
        assert_eq!(
            svc.with_domain(DomainId(b), |d| d.vmid()),
            Some(vmid),
            "clean VMID reused"
        );
    });
}

#[test]
fn a_dirty_vmid_is_invalidated_everywhere_before_reuse() {
    let storage = Storage::new(2);
    let (m0, m1) = (
        spin::Mutex::new(MockSmmu::new()),
        spin::Mutex::new(MockSmmu::new()),
    );
    let smmus = [Some(&m0), Some(&m1)];
    let budget = TableBudget::new(UNLIMITED);
    let svc = service(&smmus, &storage, &budget);
    let a = alloc(&svc, 40);
    assert_eq!(svc.with_domain(DomainId(a), |d| d.vmid()), Some(1));
    call(&svc, client::attach(0, 1, a)).unwrap();
    m0.lock().fail_syncs = true;
    // The last detach's VMID invalidation fails: SMMU 0 stays in the mask.
    call(&svc, client::detach(0, 1)).unwrap();
    assert_eq!(svc.with_domain(DomainId(a), |d| d.tlb_mask), Some(1));
    assert_eq!(call(&svc, client::domain_free(a)), Err(abi::SMMU_ERROR));
    assert_eq!(call(&svc, client::domain_free(a)), Err(abi::NOT_FOUND));
    m0.lock().fail_syncs = false;
    // Clean VMIDs first (VMIDs are bounded by the slots: 1 and 2).
    let b = alloc(&svc, 40);
    assert_eq!(svc.with_domain(DomainId(b), |d| d.vmid()), Some(2));
    let (s0, s1) = (m0.lock().syncs, m1.lock().syncs);
    let c = alloc(&svc, 40);
    assert_eq!(svc.with_domain(DomainId(c), |d| d.vmid()), Some(1));
    assert_eq!((m0.lock().syncs - s0, m1.lock().syncs - s1), (1, 1));
    assert_eq!(svc.vmids_in_use(), 2);
}

#[test]
fn an_attach_that_fails_after_its_ste_went_live_leaves_the_vmid_invalidated_before_reuse() {
    let storage = Storage::new(1);
    let m0 = spin::Mutex::new(MockSmmu::new());
    let smmus = [Some(&m0)];
    let budget = TableBudget::new(UNLIMITED);
    let svc = service(&smmus, &storage, &budget);
    let a = alloc(&svc, 40);
    let vmid = svc.with_domain(DomainId(a), |d| d.vmid()).unwrap();
    // The STE was live (DMA may have filled the TLB with entries tagged
    // with the VMID), then the attach failed and the service detached.
    m0.lock().fail_attach_after_ste = true;
    assert_eq!(call(&svc, client::attach(0, 1, a)), Err(abi::SMMU_ERROR));
    m0.lock().fail_attach_after_ste = false;
    assert!(m0.lock().stes.is_empty(), "the service detached the stream");
    assert_eq!(svc.with_domain(DomainId(a), |d| d.tlb_mask), Some(1));
    m0.lock().commands.clear();
    call(&svc, client::domain_free(a)).unwrap();
    let b = alloc(&svc, 40);
    assert_eq!(svc.with_domain(DomainId(b), |d| d.vmid()), Some(vmid));
    // Between the failed attach and the reuse, the VMID was invalidated on
    // the SMMU that may have cached it.
    assert!(
        m0.lock().commands.contains(&Command::tlbi_s12_vmall(vmid)),
        "{:?}",
        m0.lock().commands
    );
}

#[test]
fn faults_are_popped_in_order_with_a_more_flag() {
    with_fakes(1, false, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        fakes[0].inject_event(translation_fault(5, 0x1234_5678));
        fakes[0].inject_event(translation_fault(6, 0x9000));
        let r =
            client::decode_fault_pop(hypercall::dispatch_with(&client::fault_pop(0), Some(&svc)))
                .unwrap();
        assert_eq!((r.sid, r.kind), (5, 0x10));
        assert_eq!(r.input_addr, Some(0x1234_5678));
        assert_eq!(r.addr2, Some(0x1234_5000));
        assert!(r.more());
        assert_ne!(r.flags & abi::fault::RNW, 0);
        assert_ne!(r.flags & abi::fault::S2, 0);
        assert_eq!(abi::fault::class(r.pack()[0]), 2);
        let r =
            client::decode_fault_pop(hypercall::dispatch_with(&client::fault_pop(0), Some(&svc)))
                .unwrap();
        assert_eq!(r.sid, 6);
        assert!(!r.more());
        assert_eq!(call(&svc, client::fault_pop(0)), Err(abi::NOT_FOUND));
        assert_eq!(
            call(&svc, client::stats(stats::SMMU_EVENTS, 0)),
            Ok([2, 0, 0])
        );
    });
}

#[test]
fn discovery_and_smmu_info() {
    with_fakes(1, true, |_, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        for fid in abi::ALL_CALLS {
            assert_eq!(call(&svc, client::features(fid)), Ok([0; 3]), "{fid:#x}");
        }
        assert_eq!(
            call(&svc, client::features(0xc600_0100)),
            Err(abi::NOT_SUPPORTED)
        );
        let i =
            client::decode_smmu_info(hypercall::dispatch_with(&client::smmu_info(0), Some(&svc)))
                .unwrap();
        assert_eq!((i.oas_bits, i.max_ipa_bits, i.sid_bits), (44, 44, 16));
        use abi::smmu_feat as f;
        for bit in [
            f::RIL,
            f::COHERENT,
            f::VMID16,
            f::STAGE2,
            f::TWO_LEVEL_STRTAB,
            f::GRAN4K,
        ] {
            assert_ne!(i.features & bit, 0, "{bit:#x}");
        }
        assert_eq!(
            i.pgsizes,
            K4 | MIB2 | 1 << 30 | 1 << 14 | 1 << 25 | 1 << 16 | 1 << 29
        );
        let d = client::decode_domain_alloc(hypercall::dispatch_with(
            &client::domain_alloc(36, 0x1_0000),
            Some(&svc),
        ))
        .unwrap();
        assert_eq!(d.pgsizes, 1 << 16 | 1 << 29);
        call(
            &svc,
            client::map(d.id, 0x2000_0000, EL1_RAM, 1 << 16, 2, RW),
        )
        .unwrap();
        assert_eq!(
            call(&svc, client::map(d.id, 0, EL1_RAM + 0x2_0000, K4, 1, RW)),
            Err(abi::INVALID_PARAMETER),
            "4K pages in a 64K domain"
        );
    });
}

#[test]
fn a_stuck_smmu_keeps_unmapped_pages_referenced() {
    with_fakes(1, false, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        call(&svc, client::attach(0, 1, a)).unwrap();
        let pa = EL1_RAM + 0x7_0000;
        call(&svc, client::map(a, 0, pa, K4, 2, RW)).unwrap();
        let before = syncs(fakes)[0];
        fakes[0].state_mut().consume = crate::smmu::fake::Consume::Stopped;
        // The CMD_SYNC never completes: the driver times out.
        assert_eq!(
            call(&svc, client::unmap(a, 0, K4, 2, 0)),
            Err(abi::SMMU_ERROR)
        );
        assert_eq!(syncs(fakes)[0], before, "no sync completed");
        assert_eq!([storage.refcount(pa), storage.refcount(pa + K4)], [1, 1]);
        assert_eq!(
            call(&svc, client::stats(stats::SMMU_COMMANDS, 0)).unwrap()[2],
            1
        );
        fakes[0].state_mut().consume = crate::smmu::fake::Consume::Eager;
        // Later work goes on; the pinned pages stay pinned.
        call(&svc, client::map(a, 0x10_0000, EL1_RAM, K4, 1, RW)).unwrap();
        call(&svc, client::unmap(a, 0x10_0000, K4, 1, 0)).unwrap();
        assert_eq!(storage.refcount(pa), 1);
        assert_eq!(storage.refcount(EL1_RAM), 0);
    });
}

#[test]
fn freeing_a_domain_with_mappings_returns_all_its_table_bytes() {
    with_fakes(1, true, |_fakes, smmus| {
        let storage = Storage::new(8);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let id = alloc(&svc, 40);
        let root = call(&svc, client::stats(stats::MEMORY, 0)).unwrap()[0];
        for gib in 0..4u64 {
            let r = call(&svc, client::map(id, gib << 30, EL1_RAM, K4, 1, RW));
            assert_eq!(r, Ok([K4, 0, 0]));
        }
        let mapped = call(&svc, client::stats(stats::MEMORY, 0)).unwrap()[0];
        assert!(mapped > root, "{mapped:#x} table bytes with 4 GiB regions");
        assert_eq!(call(&svc, client::domain_free(id)), Ok([0; 3]));
        assert_eq!(budget.live(), 0, "every table freed");
        assert_eq!(
            call(&svc, client::stats(stats::MEMORY, 0)),
            Ok([0, 0, EL2_MEM.size / K4]),
            "the counter follows the tables"
        );
    });
}

/// A RAM page that ends where RAM ends and an MMIO page that starts
/// there, mapped back to back: one unmap (or the domain's free) must drop
/// the RAM page's reference although the two are physically contiguous.
#[test]
fn ram_and_mmio_leaves_that_touch_physically_release_the_ram_references() {
    with_fakes(1, true, |_fakes, smmus| {
        let storage = Storage::new(8);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let last = RAM.end() - K4;
        for free in [false, true] {
            let id = alloc(&svc, 40);
            let ram = client::map(id, 0x10_0000, last, K4, 1, RW);
            let mmio = client::map(id, 0x10_1000, RAM.end(), K4, 1, RW | prot::MMIO);
            assert_eq!(call(&svc, ram), Ok([K4, 0, 0]));
            assert_eq!(call(&svc, mmio), Ok([K4, 0, 0]));
            assert_eq!(storage.refcount(last), 1);
            if free {
                assert_eq!(call(&svc, client::domain_free(id)), Ok([0; 3]));
            } else {
                let u = call(&svc, client::unmap(id, 0x10_0000, K4, 2, 0));
                assert_eq!(u, Ok([2 * K4, 0x10_0000, 2 * K4]));
                assert_eq!(call(&svc, client::domain_free(id)), Ok([0; 3]));
            }
            assert_eq!(storage.refcount(last), 0, "free: {free}");
            assert_eq!(
                call(&svc, client::stats(stats::MEMORY, 0)).unwrap()[1],
                0,
                "free: {free}"
            );
        }
    });
}

#[test]
fn services_over_one_ownership_record_see_each_others_pages() {
    let storage = Storage::new(4);
    let (m1, m2) = (
        spin::Mutex::new(MockSmmu::new()),
        spin::Mutex::new(MockSmmu::new()),
    );
    let (smmus1, smmus2) = ([Some(&m1)], [Some(&m2)]);
    let budget = TableBudget::new(UNLIMITED);
    let first = service(&smmus1, &storage, &budget);
    // A second user of the same record, with its own domains.
    let slots: Vec<DomainSlot<BudgetMemory>> = (0..4).map(|_| DomainSlot::new()).collect();
    let second = IommuService::new(
        ServiceConfig {
            smmus: &smmus2,
            streams: &STREAMS[..2],
            start_level: StartLevelPolicy::NoConcatenation,
        },
        &slots,
        &storage.tracker,
        PhysPolicy::default(),
        HostTables(Arc::clone(&budget)),
    )
    .expect("second service");
    assert!(std::ptr::eq(first.tracker(), second.tracker()));
    let page = EL1_RAM + 0x50_0000;
    let (a, b) = (alloc(&first, 40), alloc(&second, 40));
    call(&first, client::map(a, 0x5000, page, K4, 1, RW)).unwrap();
    call(&second, client::map(b, 0x5000, page, K4, 1, RW)).unwrap();
    assert_eq!(storage.refcount(page), 2, "one record counts both mappings");
    call(&first, client::unmap(a, 0x5000, K4, 1, 0)).unwrap();
    assert_eq!(
        storage.tracker.set_owner(page, K4, Owner::El2),
        Err(crate::mem::OwnershipError::Mapped),
        "still mapped by the second user"
    );
    call(&second, client::unmap(b, 0x5000, K4, 1, 0)).unwrap();
    storage.tracker.set_owner(page, K4, Owner::El2).unwrap();
    assert_eq!(
        call(&first, client::map(a, 0x5000, page, K4, 1, RW)),
        Err(abi::DENIED),
        "EL2's page, whoever gave it to EL2"
    );
}

#[test]
fn the_typed_core_serves_a_front_end_without_any_abi_encoding() {
    use crate::iommu::IommuError;
    use crate::iommu::api::{Pages, StreamRef, UnmapMode};
    use crate::pgtable::{Granule, Prot};
    let storage = Storage::new(4);
    let m = spin::Mutex::new(MockSmmu::new());
    let smmus = [Some(&m)];
    let budget = TableBudget::new(UNLIMITED);
    let svc = service(&smmus, &storage, &budget);
    let d = svc.domain_alloc(40, Granule::Size4K).unwrap();
    assert_eq!(d.pgsizes, K4 | MIB2 | 1 << 30);
    let stream = StreamRef { smmu: 0, sid: 3 };
    svc.attach(stream, d.id).unwrap();
    let page = Pages { size: K4, count: 2 };
    assert_eq!(svc.map(d.id, 0x8000, EL1_RAM, page, Prot::RO), Ok(2 * K4));
    let t = svc.iova_to_phys(d.id, 0x9010).unwrap();
    assert_eq!(
        (t.pa, t.prot, t.leaf_size),
        (EL1_RAM + 0x1010, Prot::RO, K4)
    );
    let no_access = Prot {
        read: false,
        write: false,
        ..Prot::RO
    };
    assert_eq!(
        svc.map(d.id, 0x10_0000, EL1_RAM, page, no_access),
        Err(IommuError::InvalidParameter),
        "a mapping must allow some access, whichever front end asks"
    );
    let one = Pages { size: K4, count: 1 };
    assert_eq!(
        svc.unmap(d.id, 0x9000, one, UnmapMode::Exact)
            .map(|u| u.bytes),
        Ok(K4)
    );
    assert_eq!(storage.refcount(EL1_RAM + K4), 0);
    svc.detach(stream).unwrap();
    svc.domain_free(d.id).unwrap();
    assert_eq!(svc.check_domain(d.id), Err(IommuError::NotFound));
}

#[test]
fn abi_decoding_errors_come_after_the_checks_the_abi_orders_first() {
    with_fakes(1, true, |_, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let a = alloc(&svc, 40);
        let gone = a + (1 << 20);
        // HYP_MAP: domain, then prot (unknown bits, MMIO with NONCACHEABLE).
        for bad in [1 << 9 | R, prot::MMIO | prot::NONCACHEABLE | R] {
            refuses(
                &svc,
                client::map(gone, 0, EL1_RAM, K4, 1, bad),
                abi::NOT_FOUND,
            );
            refuses(
                &svc,
                client::map(a, 0, EL1_RAM, K4, 1, bad),
                abi::INVALID_PARAMETER,
            );
        }
        // HYP_UNMAP: domain, then flags.
        refuses(&svc, client::unmap(gone, 0, K4, 1, 2), abi::NOT_FOUND);
        refuses(&svc, client::unmap(a, 0, K4, 1, 2), abi::INVALID_PARAMETER);
        // HYP_ATTACH / HYP_DETACH: SMMU index, then a StreamID beyond 32
        // bits.
        let wide = 1u64 << 32;
        let raw = |fid: u32, smmu: u64| [u64::from(fid), smmu, wide, a, 0, 0, 0, 0];
        for fid in [abi::HYP_ATTACH, abi::HYP_DETACH] {
            refuses(&svc, raw(fid, 1), abi::NOT_FOUND);
            refuses(&svc, raw(fid, 7), abi::OUT_OF_RANGE);
            refuses(&svc, raw(fid, 0), abi::OUT_OF_RANGE);
        }
    });
}

fn refuses<S: SmmuBackend>(svc: &Svc<'_, S>, args: client::Args, code: i64) {
    assert_eq!(call(svc, args), Err(code), "{args:x?}");
}

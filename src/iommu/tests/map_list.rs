//! `HYP_MAP_LIST`: the list read from EL1's RAM through the same checks as
//! an emulated device's (`OwnedRam`), every entry mapped as `HYP_MAP`
//! would, all or nothing.

use std::vec::Vec;

use super::*;
use crate::hypercall::abi::{self, map_list};

const K4: u64 = 0x1000;
const MIB2: u64 = 2 << 20;
fn alloc<S: SmmuBackend>(svc: &Svc<'_, S>) -> u64 {
    call(svc, client::domain_alloc(40, 0)).expect("domain_alloc")[0]
}

/// Runs `f` with one fake SMMU under the real driver, a service over it,
/// EL1's RAM for lists and a fresh 40-bit domain.
fn with_domain(
    f: impl FnOnce(&[FakeSmmu<'_>], &Svc<'_, Driver<'_>>, &Storage, &TableBudget, &ListRam, u64),
) {
    with_fakes(1, false, |fakes, smmus| {
        let storage = Storage::new(4);
        let budget = TableBudget::new(UNLIMITED);
        let svc = service(smmus, &storage, &budget);
        let ram = ListRam::new();
        let d = alloc(&svc);
        f(fakes, &svc, &storage, &budget, &ram, d)
    })
}

/// Where `iova` leads in domain `d` (it must be mapped).
fn xlate<S: SmmuBackend>(svc: &Svc<'_, S>, d: u64, iova: u64) -> client::Translation {
    client::decode_iova_to_phys(hypercall::dispatch_with(
        &client::iova_to_phys(d, iova),
        Some(svc),
    ))
    .expect("mapped")
}

#[test]
fn every_entry_is_mapped_in_one_call() {
    with_domain(|fakes, svc, storage, _, ram, d| {
        call(svc, client::attach(0, 1, d)).unwrap();
        // A scatter-gather list: contiguous IOVA, scattered pages, and a
        // 2 MiB segment that becomes a block.
        let segments = [
            [0x20_0000, EL1_RAM + 0x5000, K4, 1],
            [0x20_1000, EL1_RAM + 0x9000, K4, 3],
            [0x40_0000, EL1_RAM + 0x20_0000, MIB2, 1],
        ];
        ram.put(LIST, &segments);
        let syncs_before = syncs(fakes);
        assert_eq!(
            call_el1(svc, storage, ram, client::map_list(d, LIST, 3, RW)),
            Ok([4 * K4 + MIB2, 0, 0])
        );
        assert_eq!(syncs(fakes), syncs_before, "a map needs no sync");
        for [iova, pa, size, count] in segments {
            for p in 0..count {
                let t = xlate(svc, d, iova + p * size + 0x10);
                assert_eq!((t.pa, t.prot), (pa + p * size + 0x10, RW));
                assert_eq!(storage.refcount(pa + p * size), 1);
            }
        }
        let t = xlate(svc, d, 0x40_0000);
        assert_eq!(t.leaf_size, MIB2);
        // Each entry counts as a map.
        assert_eq!(
            call(svc, client::stats(abi::stats::CALLS, 0)).unwrap()[0],
            3
        );
        // Every byte of the list was read once: what EL1 writes there during
        // the call cannot change an entry after its checks.
        assert_eq!(ram.reads(LIST, 3 * 32), std::vec![1; 3 * 32]);
    });
}

#[test]
fn a_full_list_across_a_page_boundary_maps_128_entries() {
    with_domain(|_, svc, storage, _, ram, d| {
        let max = map_list::MAX_ENTRIES;
        // Starts half-way into the first page, ends in the second.
        let at = LIST + K4 / 2;
        let entries: Vec<[u64; 4]> = (0..max)
            .map(|k| [0x100_0000 + k * K4, EL1_RAM + (max - 1 - k) * K4, K4, 1])
            .collect();
        ram.put(at, &entries);
        assert_eq!(
            call_el1(svc, storage, ram, client::map_list(d, at, max, RW)),
            Ok([max * K4, 0, 0])
        );
        for [iova, pa, _, _] in entries {
            let t = xlate(svc, d, iova);
            assert_eq!(t.pa, pa);
        }
    });
}

#[test]
fn an_smmu_failure_while_undoing_leaves_nothing_mapped_and_the_pages_pinned() {
    let storage = &Storage::new(4);
    let m = spin::Mutex::new(MockSmmu::new());
    let smmus = [Some(&m)];
    let budget = TableBudget::new(UNLIMITED);
    let svc = &service(&smmus, storage, &budget);
    let ram = &ListRam::new();
    let d = alloc(svc);
    call(svc, client::attach(0, 1, d)).unwrap();
    let pages = [EL1_RAM + 0x1000, EL1_RAM + 0x7000, EL1_RAM + 0x9000];
    ram.put(
        LIST,
        &[
            [0x30_0000, pages[0], K4, 1],
            [0x30_1000, pages[1], K4, 1],
            [0x30_2000, pages[2], K4, 1],
            [0x30_3000, EL2_MEM.start, K4, 1],
        ],
    );
    m.lock().fail_syncs = true;
    assert_eq!(
        call_el1(svc, storage, ram, client::map_list(d, LIST, 4, RW)),
        Err(abi::SMMU_ERROR)
    );
    // No entry translates any more, none counts as mapped; their pages
    // stay referenced until an invalidation completes.
    for k in 0..3 {
        assert_eq!(
            call(svc, client::iova_to_phys(d, 0x30_0000 + k * K4)),
            Err(abi::NOT_FOUND)
        );
    }
    assert_eq!(
        call(svc, client::stats(abi::stats::OBJECTS, 0)).unwrap()[2],
        0
    );
    assert_eq!(pages.map(|p| storage.refcount(p)), [1, 1, 1]);
    // The pending invalidation is retried before the next map.
    m.lock().fail_syncs = false;
    let syncs = m.lock().syncs;
    call(svc, client::map(d, 0x40_0000, EL1_RAM, K4, 1, RW)).unwrap();
    assert_eq!(m.lock().syncs, syncs + 1);
}

#[test]
fn a_refused_entry_leaves_nothing_mapped() {
    with_domain(|fakes, svc, storage, budget, ram, d| {
        call(svc, client::attach(0, 1, d)).unwrap();
        // Something mapped before, sharing the entries' tables.
        call(svc, client::map(d, 0x30_0000, EL1_RAM, K4, 1, RW)).unwrap();
        let ok = [
            [0x30_1000, EL1_RAM + 0x1000, K4, 2],
            [0x30_4000, EL1_RAM + 0x8000, K4, 1],
        ];
        // Each way the third entry can be refused, with HYP_MAP's code.
        let third = [
            ([0x30_5000, EL2_MEM.start, K4, 1], abi::DENIED),
            ([0x30_5000, NO_MAP.start, K4, 1], abi::DENIED),
            ([0x30_5000, MMIO, K4, 1], abi::INVALID_PARAMETER),
            (
                [0x30_5000, EL1_RAM + 0x1000, 0x3000, 1],
                abi::INVALID_PARAMETER,
            ),
            ([0x30_5000, EL1_RAM + 0x1000, K4, 0], abi::INVALID_PARAMETER),
            ([0x30_5800, EL1_RAM + 0x1000, K4, 1], abi::UNALIGNED),
            ([1 << 40, EL1_RAM, K4, 1], abi::OUT_OF_RANGE),
            // Overlapping an earlier entry of the same list, or what was
            // mapped before.
            ([0x30_2000, EL1_RAM + 0x1000, K4, 1], abi::EXISTS),
            ([0x30_0000, EL1_RAM + 0x1000, K4, 1], abi::EXISTS),
        ];
        for (bad, code) in third {
            ram.put(LIST, &[ok[0], ok[1], bad]);
            let before = Snapshot::take(svc, &[d], storage, budget);
            let syncs_before = syncs(fakes)[0];
            assert_eq!(
                call_el1(svc, storage, ram, client::map_list(d, LIST, 3, RW)),
                Err(code),
                "{bad:x?}"
            );
            assert_eq!(
                Snapshot::take(svc, &[d], storage, budget),
                before,
                "{bad:x?}"
            );
            // The two entries mapped first were unmapped, one sync for both.
            assert_eq!(syncs(fakes)[0], syncs_before + 1, "{bad:x?}");
        }
        // A refused first entry: nothing to undo, the SMMU is not touched.
        ram.put(LIST, &[third[0].0, ok[0]]);
        let trail = activity(fakes);
        assert_eq!(
            call_el1(svc, storage, ram, client::map_list(d, LIST, 2, RW)),
            Err(abi::DENIED)
        );
        assert_eq!(activity(fakes), trail);
        // Out of table memory halfway: the same.
        ram.put(LIST, &[ok[0], [0x8000_0000, EL1_RAM + 0x9000, K4, 1]]);
        let before = Snapshot::take(svc, &[d], storage, budget);
        budget.set_left(0);
        assert_eq!(
            call_el1(svc, storage, ram, client::map_list(d, LIST, 2, RW)),
            Err(abi::NO_MEMORY)
        );
        budget.unlimit();
        assert_eq!(Snapshot::take(svc, &[d], storage, budget), before);
    });
}

#[test]
fn a_bad_list_is_refused_before_anything_is_mapped() {
    with_domain(|fakes, svc, storage, budget, ram, d| {
        let entry = [0x10_0000, EL1_RAM, K4, 1];
        ram.put(LIST, &[entry; 2]);
        let max = map_list::MAX_ENTRIES;
        let cases = [
            // The domain is checked first.
            (client::map_list(d + 1, LIST, 0, 0), abi::NOT_FOUND),
            (client::map_list(d, LIST, 1, 0), abi::INVALID_PARAMETER),
            // Prot before the list: an unreadable list with a bad prot.
            (
                client::map_list(d, EL2_MEM.start, 1, 0),
                abi::INVALID_PARAMETER,
            ),
            (
                client::map_list(d, EL2_MEM.start, 1, abi::prot::NOEXEC),
                abi::INVALID_PARAMETER,
            ),
            (client::map_list(d, LIST, 1, 1 << 9), abi::INVALID_PARAMETER),
            (client::map_list(d, LIST, 0, RW), abi::INVALID_PARAMETER),
            (
                client::map_list(d, LIST, max + 1, RW),
                abi::INVALID_PARAMETER,
            ),
            (
                client::map_list(d, LIST, u64::MAX, RW),
                abi::INVALID_PARAMETER,
            ),
            (client::map_list(d, LIST + 4, 1, RW), abi::INVALID_PARAMETER),
            // The list in EL2's memory, in a no-map carve-out, in MMIO, or
            // running past the end of RAM.
            (client::map_list(d, EL2_MEM.start, 1, RW), abi::DENIED),
            (client::map_list(d, EL1_RAM - 32, 2, RW), abi::DENIED),
            (client::map_list(d, NO_MAP.start, 1, RW), abi::DENIED),
            (client::map_list(d, MMIO, 1, RW), abi::DENIED),
            (client::map_list(d, RAM.end() - 32, 2, RW), abi::DENIED),
            (
                client::map_list(d, u64::MAX - 7, 1, RW),
                abi::INVALID_PARAMETER,
            ),
        ];
        for (args, code) in cases {
            let before = Snapshot::take(svc, &[d], storage, budget);
            let trail = activity(fakes);
            assert_eq!(call_el1(svc, storage, ram, args), Err(code), "{args:x?}");
            assert_eq!(
                Snapshot::take(svc, &[d], storage, budget),
                before,
                "{args:x?}"
            );
            assert_eq!(activity(fakes), trail, "{args:x?}");
        }
        // Without access to EL1's memory the list cannot be read at all.
        assert_eq!(
            call(svc, client::map_list(d, LIST, 1, RW)),
            Err(abi::DENIED)
        );
        // And the same list is fine where EL1's RAM is readable.
        assert_eq!(
            call_el1(svc, storage, ram, client::map_list(d, LIST, 1, RW)),
            Ok([K4, 0, 0])
        );
    });
}

//! What unmapping costs in SMMU commands: for N contiguous 4 KiB pages and
//! for 2 MiB and 1 GiB blocks, the TLBI commands and CMD_SYNCs one unmap
//! issues (`make bench` prints these; the QEMU test checks the targets).
//!
//! Targets: exactly one CMD_SYNC per operation; with range invalidation
//! (IDR3.RIL) at most ceil(log2(N)) + 1 TLBIs; never more than one command
//! per page.

use crate::checks::Checks;
use crate::hyp::domain::Domain;
use crate::hyp::smmu::smmu;
use crate::mem::PAGE_SIZE as PAGE;
use crate::pgtable::{Prot, UnmapFlags};

const SMMU: usize = 0;
/// Mappings point at RAM; no device runs, so nothing is ever accessed.
const PA_BASE: u64 = 0x4000_0000;
const IOVA_BASE: u64 = 0x80_0000_0000;

fn print(args: core::fmt::Arguments<'_>) {
    crate::console::print(args);
}

/// (TLBI_S2_IPA, TLBI_S12_VMALL, CMD_SYNC) issued so far.
fn counts() -> (u64, u64, u64) {
    let c = smmu(SMMU).map(|s| s.lock().counters()).unwrap_or_default();
    (
        c.cmdq.issued.tlbi_s2_ipa,
        c.cmdq.issued.tlbi_s12_vmall,
        c.syncs(),
    )
}

fn ceil_log2(n: u64) -> u64 {
    u64::from(64 - (n - 1).leading_zeros()) * u64::from(n > 1)
}

/// Maps `size` bytes at once, unmaps them at once, and checks what the
/// unmap issued.
fn case(c: &mut Checks, dom: &mut Domain, name: &str, size: u64, leaf: u64) {
    let ril = smmu(SMMU).is_some_and(|s| s.lock().features().ril);
    if let Err(e) = dom.map(IOVA_BASE, PA_BASE, size, Prot::RW) {
        c.check(name, false, format_args!("map failed: {e}"));
        return;
    }
    let (ipa0, vmall0, sync0) = counts();
    let unmapped = dom.unmap(IOVA_BASE, size, UnmapFlags::EXACT);
    let (ipa1, vmall1, sync1) = counts();
    let (by_ipa, vmall, syncs) = (ipa1 - ipa0, vmall1 - vmall0, sync1 - sync0);
    let tlbis = by_ipa + vmall;
    let leaves = size / leaf;
    let limit = if ril { ceil_log2(leaves) + 1 } else { leaves };
    print(format_args!(
        "smmu-bench: unmap {name}: leaves={leaves} tlbi={tlbis} (s2_ipa={by_ipa} s12_vmall={vmall}) sync={syncs} tlbi_limit={limit} ril={ril}\n"
    ));
    c.check(
        name,
        unmapped.is_ok() && syncs == 1 && tlbis >= 1 && tlbis <= limit && tlbis <= leaves.max(1),
        format_args!("{tlbis} TLBI, {syncs} CMD_SYNC"),
    );
}

pub fn run() -> u32 {
    let mut c = Checks::new("el2", print);
    let mut dom = match Domain::new(SMMU, 9, 40) {
        Ok(d) => d,
        Err(e) => {
            c.check("domain", false, format_args!("{e}"));
            return c.finish();
        }
    };
    for pages in [1u64, 16, 512, 4096, 262_144] {
        let mut name = heapless::String::<32>::new();
        let _ = core::fmt::write(&mut name, format_args!("4K x {pages}"));
        case(&mut c, &mut dom, &name, pages * PAGE, PAGE);
    }
    case(&mut c, &mut dom, "2M block", 0x20_0000, 0x20_0000);
    case(&mut c, &mut dom, "1G block", 0x4000_0000, 0x4000_0000);
    c.check(
        "every table freed",
        dom.table_bytes() == PAGE,
        format_args!("{} bytes of tables left", dom.table_bytes()),
    );
    c.finish()
}

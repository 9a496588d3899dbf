//! The GIC as a bus master, attacked from EL1 (part of suite `attack`).
//!
//! The ITS control frame and the redistributors are trapped and emulated
//! by the hyp: reads and writes pass through, but table bases in EL2's
//! memory are refused, the ITS gets the hyp's copies of its tables and
//! command queue, and refused commands become SYNCs. EL1 cannot read
//! EL2's memory to see that the GIC never wrote it, so the checks are
//! what EL1 can observe: registers reading back unchanged, EnableLPIs
//! staying clear, `GITS_CREADR` moving past replaced commands, EL1's own
//! device table staying untouched, and an LPI still being delivered
//! through a well-formed MAPD, MAPC, MAPTI, INT sequence. The hyp logs
//! each kind of refusal once (checked by `tests/qemu.rs`).

use super::attack::Seen;
use crate::arena;
use crate::el2_layout;
use crate::probe;
use crate::report::Report;
use smmu_hyp::esr::ec;
use smmu_hyp::platform::Platform;

// Register offsets (IHI 0069).
const GITS_CTLR: u64 = 0x0;
const GITS_TYPER: u64 = 0x8;
/// IMPLEMENTATION DEFINED on a GIC-600; nothing architected.
const GITS_FCTLR: u64 = 0x20;
const GITS_CBASER: u64 = 0x80;
const GITS_CWRITER: u64 = 0x88;
const GITS_CREADR: u64 = 0x90;
const GITS_BASER: u64 = 0x100;
const GICR_CTLR: u64 = 0x0;
const GICR_TYPER: u64 = 0x8;
const GICR_PROPBASER: u64 = 0x70;
const GICR_PENDBASER: u64 = 0x78;
const GICR_IPRIORITYR: u64 = 0x1_0400;

const VALID: u64 = 1 << 63;
const INDIRECT: u64 = 1 << 62;
/// Inner write-back cacheable, inner shareable: what Linux programs.
const ATTRIBUTES: u64 = (7 << 59) | (1 << 10);
/// Type, Entry_Size and Page_Size of a GITS_BASER.
const BASER_FIXED: u64 = (0b111 << 56) | (0x1f << 48) | (0b11 << 8);
const PAGE_64K: u64 = 2 << 8;
const ENABLE_LPIS: u64 = 1;
/// GICR_PROPBASER.IDbits: 14 interrupt ID bits, LPIs 8192..16383.
const ID_BITS: u64 = 13;
const LPI: u64 = 8192;

// EL1's memory for the GIC, in the arena (page 0 is 2 MiB-aligned).
const DEVICE_TABLE: u64 = arena::page(0); // 64 KiB
const COLLECTION_TABLE: u64 = arena::page(16); // 64 KiB
const QUEUE: u64 = arena::page(32); // 4 KiB: 128 commands
const CONFIG: u64 = arena::page(48); // 8 KiB
const PENDING: u64 = arena::page(64); // 64 KiB-aligned, 2 KiB used
const ITT: u64 = arena::page(80);

// ITS commands.
const MAPD: u64 = 0x08;
const MAPC: u64 = 0x09;
const MAPTI: u64 = 0x0a;
const INT: u64 = 0x03;
const SYNC: u64 = 0x05;
const VSYNC: u64 = 0x25;

/// Where the GICv3's frames are, read by the test kernel itself.
struct Gic {
    distributor: u64,
    /// The first redistributor's RD_base.
    redistributor: u64,
    /// The ITS control frame.
    its: u64,
}

fn first_reg(dtb: &fdt::Fdt<'_>, compatible: &str, index: usize) -> Option<u64> {
    let node = dtb.find_compatible(&[compatible])?;
    Some(node.reg()?.nth(index)?.starting_address as u64)
}

fn find(platform: &Platform<'_>) -> Option<Gic> {
    // SAFETY: the device tree the hyp passed in x0, whose header gave this
    // size (`Platform::parse` validated it); EL1 reads it physically.
    let dtb = unsafe {
        core::slice::from_raw_parts(platform.dtb.start as *const u8, platform.dtb.size as usize)
    };
    let dtb = fdt::Fdt::new(dtb).ok()?;
    Some(Gic {
        distributor: first_reg(&dtb, "arm,gic-v3", 0)?,
        redistributor: first_reg(&dtb, "arm,gic-v3", 1)?,
        its: first_reg(&dtb, "arm,gic-v3-its", 0)?,
    })
}

/// The ITS control frame's address, if the machine has an ITS.
pub fn its_frame(platform: &Platform<'_>) -> Option<u64> {
    find(platform).map(|g| g.its)
}

/// `GITS_TYPER` of the ITS at `its`.
pub const fn its_typer(its: u64) -> u64 {
    its + GITS_TYPER
}

fn read(addr: u64) -> u64 {
    probe::read(addr).unwrap_or(0xbad)
}

fn write(addr: u64, value: u64) -> bool {
    probe::write(addr, value).is_ok()
}

struct Attack<'r> {
    report: &'r mut Report,
    gic: Gic,
    /// A 64 KiB-aligned page of EL2's memory.
    el2: u64,
    /// Next free slot of the command queue.
    slot: u64,
}

pub fn run(platform: &Platform<'_>, report: &mut Report) {
    let Some(gic) = find(platform) else {
        report.check(
            "a GICv3 with an ITS",
            false,
            format_args!("not in the device tree"),
        );
        return;
    };
    let Some(el2) = el2_layout::derive(platform) else {
        report.check("EL2's ranges known", false, format_args!("no layout"));
        return;
    };
    let mut a = Attack {
        report,
        gic,
        el2: el2.pool.start,
        slot: 0,
    };
    a.trapped_accesses();
    a.its_tables();
    a.lpi_tables();
    a.commands();
}

impl Attack<'_> {
    /// Reads and writes of trapped frames behave as on the hardware.
    fn trapped_accesses(&mut self) {
        let its = self.gic.its;
        let typer = probe::read(its + GITS_TYPER);
        let halves = probe::read32(its + GITS_TYPER)
            .and_then(|lo| Ok(lo | (probe::read32(its + GITS_TYPER + 4)? << 32)));
        self.report.check(
            "a trapped 64-bit read is emulated (GITS_TYPER), and its two 32-bit halves agree",
            matches!(typer, Ok(t) if t != 0) && halves == typer,
            format_args!("{}, halves {}", Seen(typer), Seen(halves)),
        );
        let rd = probe::read(self.gic.redistributor + GICR_TYPER);
        self.report.check(
            "a redistributor's registers are emulated (GICR_TYPER)",
            matches!(rd, Ok(t) if t & 1 != 0),
            format_args!("{}", Seen(rd)),
        );
        // GITS_CTLR after reset: Quiescent (bit 31), disabled.
        let w = probe::read32(its + GITS_CTLR);
        let sw = probe::read32_signed(its + GITS_CTLR);
        self.report.check(
            "an emulated 32-bit load zero-extends into Wt, ldrsw sign-extends into Xt",
            w == Ok(0x8000_0000) && sw == Ok(0xffff_ffff_8000_0000),
            format_args!("ldr w {}, ldrsw {}", Seen(w), Seen(sw)),
        );
        let pair = probe::read_pair(its + GITS_TYPER);
        self.report.check(
            "ldp on a trapped frame (no instruction syndrome) takes an external abort",
            matches!(pair, Err(f) if f.esr.class() == ec::DABT_CURRENT
                && f.esr.iss() & 0x3f == 0x10
                && f.far == its + GITS_TYPER),
            format_args!("{}", Seen(pair)),
        );
        let byte = probe::read8(its + GITS_TYPER);
        self.report.check(
            "a byte read of an ITS register (unsupported size) reads as zero",
            byte == Ok(0),
            format_args!("{}", Seen(byte)),
        );
        // A GIC-600's IMPLEMENTATION DEFINED GITS_FCTLR: a real GIC may
        // answer an offset it does not decode with an error, which EL2
        // would take, so the hyp never lets it through.
        let impdef =
            probe::write32(its + GITS_FCTLR, 1).and_then(|()| probe::read32(its + GITS_FCTLR));
        self.report.check(
            "an ITS offset with no architected register (GITS_FCTLR) reads as zero and ignores writes",
            impdef == Ok(0),
            format_args!("{}", Seen(impdef)),
        );
        let priority = self.gic.redistributor + GICR_IPRIORITYR;
        let wrote = probe::write8(priority + 1, 0xa0);
        let back = probe::read32(priority);
        self.report.check(
            "a byte write to a priority register (byte-accessible) passes through",
            wrote.is_ok() && matches!(back, Ok(v) if (v >> 8) & 0xff == 0xa0),
            format_args!("GICR_IPRIORITYR0 {}", Seen(back)),
        );
    }

    /// GITS_BASER<n> and GITS_CBASER.
    fn its_tables(&mut self) {
        let its = self.gic.its;
        let device = its + GITS_BASER;
        let before = read(device);
        let fixed = before & BASER_FIXED & !(0b11 << 8);
        let in_el2 = VALID | ATTRIBUTES | fixed | PAGE_64K | self.el2;
        write(device, in_el2);
        let after = read(device);
        self.report.check(
            "GITS_BASER0 (device table) in EL2's memory is refused: reads back unchanged",
            (before >> 56) & 7 == 1 && after == before,
            format_args!("wrote {in_el2:#x}, read {after:#x}"),
        );
        write(device, fixed | PAGE_64K | INDIRECT);
        let probe_indirect = read(device);
        self.report.check(
            "GITS_BASER Indirect (two-level tables) is forced to 0: flat tables only",
            probe_indirect & INDIRECT == 0,
            format_args!("read {probe_indirect:#x}"),
        );
        for (n, table, what) in [
            (0, DEVICE_TABLE, "device"),
            (1, COLLECTION_TABLE, "collection"),
        ] {
            arena::fill(table, 0x1_0000, 0);
            let reg = its + GITS_BASER + 8 * n;
            let value = VALID
                | ATTRIBUTES
                | (read(reg) & BASER_FIXED & !(0b11 << 8))
                | PAGE_64K
                | arena::pa(table);
            write(reg, value);
            let got = read(reg);
            self.report.check(
                "an EL1-owned ITS table is accepted (reads back as written)",
                got == value,
                format_args!("{what} table: wrote {value:#x}, read {got:#x}"),
            );
        }
        let queue_in_el2 = VALID | ATTRIBUTES | self.el2;
        write(its + GITS_CBASER, queue_in_el2);
        let got = read(its + GITS_CBASER);
        self.report.check(
            "GITS_CBASER in EL2's memory is refused: reads back unchanged",
            got & VALID == 0,
            format_args!("wrote {queue_in_el2:#x}, read {got:#x}"),
        );
        arena::fill(QUEUE, 0x1000, 0);
        let queue = VALID | ATTRIBUTES | arena::pa(QUEUE);
        write(its + GITS_CBASER, queue);
        let got = read(its + GITS_CBASER);
        self.report.check(
            "an EL1-owned command queue is accepted (reads back as written)",
            got == queue,
            format_args!("wrote {queue:#x}, read {got:#x}"),
        );
    }

    /// GICR_PROPBASER, GICR_PENDBASER and EnableLPIs on the first
    /// redistributor.
    fn lpi_tables(&mut self) {
        let rd = self.gic.redistributor;
        arena::fill(CONFIG, 0x2000, 0);
        // LPI 8192: priority 0xa0, group 1 (RES1), enabled.
        arena::write(CONFIG, 0xa3);
        arena::fill(PENDING, 0x800, 0);
        let before = read(rd + GICR_PROPBASER);
        let bad = self.el2 | ID_BITS;
        write(rd + GICR_PROPBASER, bad);
        let got = read(rd + GICR_PROPBASER);
        self.report.check(
            "GICR_PROPBASER in EL2's memory is refused: reads back unchanged",
            got == before,
            format_args!("wrote {bad:#x}, read {got:#x}"),
        );
        let prop = ATTRIBUTES | arena::pa(CONFIG) | ID_BITS;
        write(rd + GICR_PROPBASER, prop);
        write(rd + GICR_PENDBASER, ATTRIBUTES | self.el2);
        let _ = probe::write32(rd + GICR_CTLR, ENABLE_LPIS);
        let ctlr = probe::read32(rd + GICR_CTLR);
        self.report.check(
            "EnableLPIs with the pending table in EL2's memory is refused",
            matches!(ctlr, Ok(c) if c & ENABLE_LPIS == 0),
            format_args!("GICR_CTLR {}", Seen(ctlr)),
        );
        let pend = ATTRIBUTES | arena::pa(PENDING);
        write(rd + GICR_PENDBASER, pend);
        let _ = probe::write32(rd + GICR_CTLR, ENABLE_LPIS);
        let ctlr = probe::read32(rd + GICR_CTLR);
        self.report.check(
            "EnableLPIs with both LPI tables EL1-owned is accepted",
            matches!(ctlr, Ok(c) if c & ENABLE_LPIS != 0)
                && read(rd + GICR_PROPBASER) == prop
                && read(rd + GICR_PENDBASER) == pend,
            format_args!("GICR_CTLR {}", Seen(ctlr)),
        );
        write(
            rd + GICR_PROPBASER,
            ATTRIBUTES | arena::pa(CONFIG + 0x1000) | ID_BITS,
        );
        let got = read(rd + GICR_PROPBASER);
        self.report.check(
            "GICR_PROPBASER cannot change while LPIs are enabled",
            got == prop,
            format_args!("read {got:#x}"),
        );
    }

    /// Writes `commands` at the next slots and moves GITS_CWRITER past
    /// them; returns whether GITS_CREADR followed (bounded wait).
    fn post(&mut self, commands: &[[u64; 4]]) -> (bool, u64) {
        for c in commands {
            for (i, w) in c.iter().enumerate() {
                arena::write_u64(QUEUE + self.slot * 32 + 8 * i as u64, *w);
            }
            self.slot = (self.slot + 1) % 128;
        }
        let cwriter = self.slot * 32;
        write(self.gic.its + GITS_CWRITER, cwriter);
        let mut creadr = 0;
        for _ in 0..10_000 {
            creadr = read(self.gic.its + GITS_CREADR);
            if creadr & !1 == cwriter {
                return (true, creadr);
            }
        }
        (false, creadr)
    }

    /// Commands through the hyp's copy of the queue.
    fn commands(&mut self) {
        let its = self.gic.its;
        let pta = read(its + GITS_TYPER) & (1 << 19) != 0;
        // The redistributor as commands name it.
        let target = if pta { self.gic.redistributor } else { 0 };
        self.cpu_interface_on();
        let _ = probe::write32(its + GITS_CTLR, 1);
        let (ok, creadr) = self.post(&[[MAPC, 0, VALID | target, 0]]);
        self.report.check(
            "the ITS runs commands from the hyp's copy of the queue (MAPC)",
            ok,
            format_args!("GITS_CREADR {creadr:#x}"),
        );
        let (ok, creadr) = self.post(&[
            [MAPD | (1 << 32), 0, VALID | self.el2, 0],
            [SYNC, 0, target, 0],
        ]);
        self.report.check(
            "a MAPD whose ITT is EL2's memory is replaced: GITS_CREADR moves past it and the SYNC after it",
            ok,
            format_args!("GITS_CREADR {creadr:#x}"),
        );
        arena::fill(ITT, 256, 0);
        let (ok, creadr) = self.post(&[
            [MAPD, 0, VALID | arena::pa(ITT), 0],
            [MAPTI, LPI << 32, 0, 0],
            [INT, 0, 0, 0],
            [SYNC, 0, target, 0],
        ]);
        let untouched = arena::all_are(DEVICE_TABLE, 0x1_0000, 0);
        let itt = arena::read_u64(ITT);
        self.report.check(
            "MAPD, MAPTI, INT with an EL1-owned ITT: the ITS writes the ITT, never EL1's device table",
            ok && untouched && itt != 0,
            format_args!("GITS_CREADR {creadr:#x}; ITT entry {itt:#x}; EL1's device table untouched: {untouched}"),
        );
        let intid = acknowledge();
        self.report.check(
            "the LPI is delivered: ICC_IAR1_EL1 reads 8192",
            intid == LPI,
            format_args!("{intid}"),
        );
        let (ok, creadr) = self.post(&[[VSYNC, 0, 0, 0], [0x00, 0, 0, 0], [SYNC, 0, target, 0]]);
        self.report.check(
            "a GICv4 command and an unknown opcode are replaced: GITS_CREADR moves past them",
            ok,
            format_args!("GITS_CREADR {creadr:#x}"),
        );
        let before = read(its + GITS_CWRITER);
        write(its + GITS_CWRITER, 0x1000);
        let after = read(its + GITS_CWRITER);
        self.report.check(
            "GITS_CWRITER past the end of the queue is ignored",
            after == before,
            format_args!("{before:#x} -> {after:#x}"),
        );
    }

    /// The distributor's groups, the redistributor awake, EL1's CPU
    /// interface taking group 1 at any priority.
    fn cpu_interface_on(&mut self) {
        crate::gic_cpu::interface_on(self.gic.distributor, self.gic.redistributor);
    }
}

/// Acknowledges the highest-priority pending group-1 interrupt (and ends
/// it); 1023 when none is pending.
fn acknowledge() -> u64 {
    let mut intid = 1023;
    for _ in 0..1000 {
        // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt of this
        // CPU; writing ICC_EOIR1_EL1 with it ends it.
        unsafe {
            core::arch::asm!(
                "mrs {i}, S3_0_C12_C12_0", // ICC_IAR1_EL1
                "dsb sy",
                i = out(reg) intid,
                options(nostack),
            )
        };
        if intid != 1023 {
            // SAFETY: as above.
            unsafe {
                core::arch::asm!("msr S3_0_C12_C12_1, {i}", "isb", i = in(reg) intid, options(nostack))
            };
            break;
        }
    }
    intid
}

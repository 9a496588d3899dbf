//! The GICv3 ITS control frame (the first 64 KiB of an ITS), emulated so
//! that EL1 cannot make the ITS write outside EL1's RAM.
//!
//! The ITS writes memory in three ways, all programmed by software:
//!
//! * **Its tables** (`GITS_BASER<n>`: device, collection, vPE). Their
//!   entries hold addresses the ITS later writes through (a device table
//!   entry holds the device's ITT address, IMPLEMENTATION DEFINED format;
//!   QEMU's holds it in bits [49:6]). In EL1's RAM, EL1 could forge an
//!   entry and have the ITS write an ITT entry anywhere, bypassing every
//!   check on MAPD. So the ITS never gets EL1's tables: the hyp gives it
//!   a zeroed copy of the same size from its own pool, which EL1 cannot
//!   reach (the pKVM ITS emulation takes the tables from the host for the
//!   same reason). EL1's table must still be its own RAM (a table in
//!   EL2's memory is refused), and reads return EL1's address. Two-level
//!   tables are refused by forcing `Indirect` to 0: their level-1 entries
//!   are pointers software writes. An ITS that reports flat tables only is
//!   architectural, and Linux then uses flat tables.
//! * **The command queue** (`GITS_CBASER`), read by the ITS. The hyp keeps
//!   EL1's queue for itself and gives the ITS a copy in the hyp's memory:
//!   on each `GITS_CWRITER` write it copies the new commands, reading each
//!   one from EL1's memory exactly once and checking the copy (EL1 may
//!   rewrite its queue at any time), replaces a refused command by a SYNC,
//!   cleans the copy to the point of coherency, then writes the real
//!   `GITS_CWRITER`. It never rewrites a slot the ITS may still be
//!   reading. Offsets are the same in both queues, so `GITS_CREADR` passes
//!   through.
//! * **ITTs**, written by the ITS at the address a MAPD command names:
//!   a MAPD is accepted only if the whole ITT (2^(Size+1) entries of
//!   `GITS_TYPER.ITT_entry_size` bytes) is EL1's RAM. An ITT entry holds
//!   no address, so EL1 may write its own ITTs.
//!
//! `GITS_BASER<n>` and `GITS_CBASER` writes are dropped unless the ITS is
//! disabled and quiescent (the GIC architecture makes them UNPREDICTABLE
//! otherwise, as Linux's `its_force_quiescent` notes); that is also what
//! lets the hyp free a copy the ITS stopped using. One lock per ITS
//! serialises every access to its frame, so no check is raced by another
//! CPU's write.
//!
//! GICv4 commands are refused: they name virtual LPI tables (VMAPP) and
//! vPE tables whose contents the hyp would have to check too, and the hyp
//! gives EL1 no virtual LPIs. `GITS_TYPER` hides the GICv4 features, so
//! that EL1 does not try them.
//!
//! Offsets that hold no architected register ([`reg::REGISTERS`]) read as
//! zero and ignore writes (see [`super::gic`]).

use super::AccessSize;
use super::gic::{
    BOOT_POLLS, El1Memory, GicError, Redistributors, Refusal, Refusals, RegisterFrame,
    check_access, extract, merge, table_is_el1_ram, width_at,
};
use crate::smmu::{DmaMemory, DmaRegion};

/// Bytes of the control frame the hyp traps; the translation frame after
/// it (`GITS_TRANSLATER`, the MSI doorbell) stays EL1's.
pub const CONTROL_FRAME_SIZE: u64 = 0x1_0000;

/// Register offsets in the control frame (IHI 0069, "ITS register map").
pub mod reg {
    use crate::vdev::gic::Width::{self, Doubleword, Word};

    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0008;
    pub const CBASER: u64 = 0x0080;
    pub const CWRITER: u64 = 0x0088;
    pub const CREADR: u64 = 0x0090;
    /// `GITS_BASER<n>` is at `BASER + 8 * n`.
    pub const BASER: u64 = 0x0100;
    pub const BASER_COUNT: usize = 8;

    /// `GITS_BASER<n>` of an offset, if it is one.
    pub fn baser_index(offset: u64) -> Option<usize> {
        let n = usize::try_from(offset.checked_sub(BASER)? / 8).ok()?;
        (n < BASER_COUNT).then_some(n)
    }

    /// The architected registers of the control frame (IHI 0069, "ITS
    /// register map"); everything else in it (e.g. a GIC-600's
    /// IMPLEMENTATION DEFINED `GITS_FCTLR`, `GITS_OPR`) is left out.
    /// Linux's `irq-gic-v3-its.c` uses no other offset.
    pub const REGISTERS: [(core::ops::Range<u64>, Width); 8] = [
        (0x0000..0x0008, Word),       // GITS_CTLR, GITS_IIDR
        (0x0008..0x0010, Doubleword), // GITS_TYPER
        (0x0010..0x001c, Word),       // GITS_MPAMIDR, GITS_PARTIDR, GITS_MPIDR
        (0x0040..0x0044, Word),       // GITS_STATUSR
        (0x0048..0x0050, Doubleword), // GITS_UMSIR
        (0x0080..0x0098, Doubleword), // GITS_CBASER, GITS_CWRITER, GITS_CREADR
        (0x0100..0x0140, Doubleword), // GITS_BASER<n>
        // Identification registers (GITS_PIDR2: the architecture version).
        (0xffd0..0x1_0000, Word),
    ];
}

/// `GITS_CTLR` fields.
pub mod ctlr {
    pub const ENABLED: u64 = 1 << 0;
    pub const QUIESCENT: u64 = 1 << 31;
}

/// `GITS_TYPER` fields.
pub mod typer {
    /// Physical Target Addresses: commands name redistributors by address.
    pub const PTA: u64 = 1 << 19;
    /// GICv4 features: Virtual (bit 1), VMOVP (37), VSGI (39), VMAPP (40),
    /// SVPET (42:41). EL1 reads them as 0: the hyp refuses every GICv4
    /// command, so it does not advertise them.
    pub const VIRTUAL: u64 = (1 << 1) | (1 << 37) | (1 << 39) | (1 << 40) | (0b11 << 41);

    /// Bytes per ITT entry (`ITT_entry_size` + 1).
    pub fn itt_entry_bytes(typer: u64) -> u64 {
        ((typer >> 4) & 0xf) + 1
    }

    /// EventID bits the ITS supports (`ID_bits` + 1).
    pub fn event_id_bits(typer: u64) -> u64 {
        ((typer >> 8) & 0x1f) + 1
    }
}

/// `GITS_BASER<n>` fields.
pub mod baser {
    pub const VALID: u64 = 1 << 63;
    pub const INDIRECT: u64 = 1 << 62;
    pub const TYPE_SHIFT: u32 = 56;
    /// Physical_Address: PA[47:12] (4 KiB and 16 KiB pages), or PA[47:16]
    /// with PA[51:48] in bits [15:12] (64 KiB pages).
    pub const ADDRESS: u64 = ((1 << 36) - 1) << 12;
    pub const PAGE_SIZE_SHIFT: u32 = 8;
    pub const PAGE_SIZE: u64 = 0b11 << PAGE_SIZE_SHIFT;
    pub const SIZE: u64 = 0xff;

    /// The table type (0: unimplemented register).
    pub fn table_type(v: u64) -> u64 {
        (v >> TYPE_SHIFT) & 0b111
    }

    /// Bytes per page; `None` for the reserved encoding.
    pub fn page_bytes(v: u64) -> Option<u64> {
        match (v & PAGE_SIZE) >> PAGE_SIZE_SHIFT {
            0 => Some(0x1000),
            1 => Some(0x4000),
            2 => Some(0x1_0000),
            _ => None,
        }
    }

    /// Bytes of the table: `Size` + 1 pages.
    pub fn table_bytes(v: u64, page: u64) -> u64 {
        ((v & SIZE) + 1) * page
    }

    /// The table's physical address for pages of `page` bytes.
    pub fn table_address(v: u64, page: u64) -> u64 {
        if page == 0x1_0000 {
            (v & ADDRESS & !0xffff) | (((v >> 12) & 0xf) << 48)
        } else {
            v & ADDRESS
        }
    }

    /// The Physical_Address field for a table at `pa` with pages of
    /// `page` bytes.
    pub fn encode_address(pa: u64, page: u64) -> u64 {
        if page == 0x1_0000 {
            (pa & ADDRESS & !0xffff) | (((pa >> 48) & 0xf) << 12)
        } else {
            pa & ADDRESS
        }
    }
}

/// `GITS_CBASER` fields.
pub mod cbaser {
    pub const VALID: u64 = 1 << 63;
    /// Physical_Address: PA[51:12].
    pub const ADDRESS: u64 = ((1 << 40) - 1) << 12;
    /// Size: 4 KiB pages minus one.
    pub const SIZE: u64 = 0xff;

    pub fn queue_bytes(v: u64) -> u64 {
        ((v & SIZE) + 1) * 0x1000
    }
}

/// `GITS_CWRITER` / `GITS_CREADR` fields.
pub mod cwriter {
    /// Offset of the next command, in 32-byte units (bits [19:5]).
    pub const OFFSET: u64 = ((1 << 15) - 1) << 5;
    /// Retry: restart a stalled ITS.
    pub const RETRY: u64 = 1 << 0;
}

/// ITS command opcodes (IHI 0069, "ITS commands"; Linux `arm-gic-v3.h`).
pub mod cmd {
    pub const BYTES: u64 = 32;
    pub const MOVI: u64 = 0x01;
    pub const INT: u64 = 0x03;
    pub const CLEAR: u64 = 0x04;
    pub const SYNC: u64 = 0x05;
    pub const MAPD: u64 = 0x08;
    pub const MAPC: u64 = 0x09;
    pub const MAPTI: u64 = 0x0a;
    pub const MAPI: u64 = 0x0b;
    pub const INV: u64 = 0x0c;
    pub const INVALL: u64 = 0x0d;
    pub const MOVALL: u64 = 0x0e;
    pub const DISCARD: u64 = 0x0f;
    /// GICv4 and GICv4.1: VMOVI, VMOVP, VSGI, VSYNC, VMAPP, VMAPTI,
    /// VMAPI, VINVALL, INVDB.
    pub const VIRTUAL: [u64; 9] = [0x21, 0x22, 0x23, 0x25, 0x29, 0x2a, 0x2b, 0x2d, 0x2e];
    /// V (valid) in DW2 of MAPD and MAPC.
    pub const VALID: u64 = 1 << 63;
    /// ITT_addr in DW2 of MAPD: PA[51:8].
    pub const ITT_ADDRESS: u64 = ((1 << 44) - 1) << 8;
    /// Size in DW1 of MAPD: EventID bits minus one.
    pub const ITT_SIZE: u64 = 0x1f;
    /// RDbase in DW2 (and DW3 of MOVALL): PA[51:16] when
    /// `GITS_TYPER.PTA` is 1, else the processor number in bits [31:16].
    pub const RDBASE: u64 = ((1 << 36) - 1) << 16;
}

/// What the hyp keeps of an accepted command queue.
struct Queue {
    /// EL1's `GITS_CBASER` Physical_Address: where commands are read, and
    /// what reads of `GITS_CBASER` return.
    el1_base: u64,
    bytes: u64,
    /// The queue the ITS reads.
    copy: DmaRegion,
    /// Offset up to which EL1's commands were copied: the value of the
    /// real `GITS_CWRITER`.
    copied_to: u64,
}

/// What the hyp keeps of an accepted `GITS_BASER<n>`.
struct Table {
    /// EL1's Physical_Address field: what reads return.
    el1_address: u64,
    bytes: u64,
    /// The table the ITS uses.
    copy: DmaRegion,
}

struct State {
    queue: Option<Queue>,
    tables: [Option<Table>; reg::BASER_COUNT],
}

/// One ITS's control frame, emulated over the real one (`F`), with EL1's
/// RAM (`E`) and the hyp's memory for the copies (`M`).
pub struct Its<F, E, M: DmaMemory> {
    frame: F,
    mem: E,
    dma: M,
    /// `GITS_TYPER`, read-only.
    typer: u64,
    redistributors: Redistributors,
    /// What replaces a refused command.
    harmless: [u64; 4],
    state: spin::Mutex<State>,
    refusals: Refusals,
}

impl<F: RegisterFrame, E: El1Memory, M: DmaMemory> Its<F, E, M> {
    /// Takes over the ITS whose control frame is `frame` (at `base`, for
    /// the log): disables it if firmware left it enabled, waits (bounded)
    /// until it is quiescent, and invalidates its table and queue
    /// registers, so that nothing EL1 did not program is ever used.
    pub fn new(
        base: u64,
        frame: F,
        mem: E,
        dma: M,
        redistributors: &Redistributors,
    ) -> Result<Self, GicError> {
        let (first_rd_base, first_processor) =
            redistributors.first().ok_or(GicError::NoRedistributor)?;
        let typer = frame.read(reg::TYPER, AccessSize::Doubleword);
        let ctl = frame.read(reg::CTLR, AccessSize::Word);
        if ctl & ctlr::ENABLED != 0 {
            frame.write(reg::CTLR, AccessSize::Word, ctl & !ctlr::ENABLED);
        }
        let quiescent =
            (0..BOOT_POLLS).any(|_| frame.read(reg::CTLR, AccessSize::Word) & ctlr::QUIESCENT != 0);
        if !quiescent {
            return Err(GicError::ItsNotQuiescent);
        }
        for n in 0..reg::BASER_COUNT as u64 {
            let offset = reg::BASER + 8 * n;
            let v = frame.read(offset, AccessSize::Doubleword);
            if v & (baser::VALID | baser::INDIRECT) != 0 {
                frame.write(
                    offset,
                    AccessSize::Doubleword,
                    v & !(baser::VALID | baser::INDIRECT),
                );
            }
        }
        let q = frame.read(reg::CBASER, AccessSize::Doubleword);
        if q & cbaser::VALID != 0 {
            frame.write(reg::CBASER, AccessSize::Doubleword, q & !cbaser::VALID);
        }
        // A SYNC to a redistributor that exists changes no mapping and
        // completes, and the ITS must find some command in each slot it
        // reads: it keeps GITS_CREADR (which EL1 waits on) moving.
        let target = if typer & typer::PTA != 0 {
            first_rd_base
        } else {
            u64::from(first_processor) << 16
        };
        Ok(Self {
            frame,
            mem,
            dma,
            typer,
            redistributors: redistributors.clone(),
            harmless: [cmd::SYNC, 0, target & cmd::RDBASE, 0],
            state: spin::Mutex::new(State {
                queue: None,
                tables: [const { None }; reg::BASER_COUNT],
            }),
            refusals: Refusals::new("ITS", base),
        })
    }

    /// What was refused so far.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Whether the access reaches an architected register the way the
    /// architecture allows (see [`super::gic`]); records why not.
    fn supported(&self, offset: u64, size: AccessSize, what: &str) -> bool {
        let checked = check_access(width_at(&reg::REGISTERS, offset), offset, size);
        if let Err(why) = checked {
            self.refusals
                .record(why, format_args!("{what} at {offset:#x}"));
        }
        checked.is_ok()
    }

    pub fn read(&self, offset: u64, size: AccessSize) -> u64 {
        if !self.supported(offset, size, "read") {
            return 0;
        }
        let state = self.state.lock();
        let (register, at) = (offset & !7, offset & 7);
        match register {
            reg::TYPER => extract(self.typer & !typer::VIRTUAL, at, size),
            reg::CBASER => extract(self.visible_cbaser(&state), at, size),
            r => match reg::baser_index(r) {
                Some(n) => extract(self.visible_baser(&state, n), at, size),
                None => self.frame.read(offset, size),
            },
        }
    }

    pub fn write(&self, offset: u64, size: AccessSize, value: u64) {
        if !self.supported(offset, size, "write") {
            return;
        }
        let mut state = self.state.lock();
        let (register, at) = (offset & !7, offset & 7);
        match register {
            reg::CBASER => {
                let new = merge(self.visible_cbaser(&state), at, size, value);
                self.write_cbaser(&mut state, new);
            }
            reg::CWRITER => {
                let new = merge(
                    self.frame.read(reg::CWRITER, AccessSize::Doubleword),
                    at,
                    size,
                    value,
                );
                self.write_cwriter(&mut state, new);
            }
            r => match reg::baser_index(r) {
                Some(n) => {
                    let new = merge(self.visible_baser(&state, n), at, size, value);
                    self.write_baser(&mut state, n, new);
                }
                None => self.frame.write(offset, size, value),
            },
        }
    }

    /// `GITS_CBASER` as EL1 sees it: the real register with EL1's address.
    fn visible_cbaser(&self, state: &State) -> u64 {
        let real = self.frame.read(reg::CBASER, AccessSize::Doubleword);
        match &state.queue {
            Some(q) => (real & !cbaser::ADDRESS) | q.el1_base,
            None => real,
        }
    }

    /// `GITS_BASER<n>` as EL1 sees it: the real register with EL1's
    /// address.
    fn visible_baser(&self, state: &State, n: usize) -> u64 {
        let real = self
            .frame
            .read(reg::BASER + 8 * n as u64, AccessSize::Doubleword);
        match &state.tables[n] {
            Some(t) if real & baser::VALID != 0 => (real & !baser::ADDRESS) | t.el1_address,
            _ => real,
        }
    }

    /// Whether table and queue registers may be written now.
    fn idle(&self) -> bool {
        let ctl = self.frame.read(reg::CTLR, AccessSize::Word);
        ctl & ctlr::ENABLED == 0 && ctl & ctlr::QUIESCENT != 0
    }

    /// Returns a copy the ITS no longer uses to the pool.
    fn release(&self, copy: DmaRegion) {
        // SAFETY: callers release a copy only when the real register no
        // longer points at it and the ITS is disabled and quiescent (every
        // write that replaces one checks `idle` first), so the ITS does
        // not access it any more; nothing else holds a pointer into it.
        unsafe { self.dma.free(copy) };
    }

    fn write_baser(&self, state: &mut State, n: usize, value: u64) {
        let offset = reg::BASER + 8 * n as u64;
        if !self.idle() {
            self.refusals
                .record(Refusal::ItsBusy, format_args!("GITS_BASER{n} = {value:#x}"));
            return;
        }
        let old = self.frame.read(offset, AccessSize::Doubleword);
        if baser::table_type(old) == 0 {
            // Unimplemented: RAZ/WI.
            return;
        }
        let value = value & !baser::INDIRECT;
        if value & baser::VALID == 0 {
            self.frame.write(offset, AccessSize::Doubleword, value);
            if let Some(t) = state.tables[n].take() {
                self.release(t.copy);
            }
            return;
        }
        // What the ITS makes of the other fields (some may be read-only,
        // e.g. a fixed page size), learnt with the table still invalid.
        self.frame
            .write(offset, AccessSize::Doubleword, value & !baser::VALID);
        let probe = self.frame.read(offset, AccessSize::Doubleword);
        let undo = |why: Refusal, what: core::fmt::Arguments<'_>| {
            self.frame.write(offset, AccessSize::Doubleword, old);
            self.refusals.record(why, what);
        };
        let Some(page) = baser::page_bytes(probe) else {
            return undo(
                Refusal::DidNotStick,
                format_args!("GITS_BASER{n} = {probe:#x}"),
            );
        };
        let bytes = baser::table_bytes(probe, page);
        let el1_table = baser::table_address(value, page);
        if !table_is_el1_ram(&self.mem, el1_table, Some(bytes)) {
            return undo(
                Refusal::TableNotEl1Ram,
                format_args!("GITS_BASER{n}: {bytes:#x} bytes at {el1_table:#x}"),
            );
        }
        let el1_address = value & baser::ADDRESS;
        // Rewriting the same table (e.g. after a resume) keeps its entries.
        let keep = state.tables[n]
            .as_ref()
            .filter(|t| t.el1_address == el1_address && t.bytes == bytes)
            .map(|t| t.copy.pa());
        let fresh = match keep {
            Some(_) => None,
            None => match self.dma.alloc_zeroed(bytes as usize, page as usize) {
                Ok(copy) => {
                    self.dma.clean_for_device(&copy, 0, bytes as usize);
                    Some(copy)
                }
                Err(_) => {
                    return undo(
                        Refusal::NoMemory,
                        format_args!("GITS_BASER{n}: {bytes:#x} bytes"),
                    );
                }
            },
        };
        let copy_pa = keep.or(fresh.as_ref().map(DmaRegion::pa)).unwrap_or(0);
        let real = (probe & !baser::ADDRESS) | baser::VALID | baser::encode_address(copy_pa, page);
        self.frame.write(offset, AccessSize::Doubleword, real);
        const KEPT: u64 =
            baser::VALID | baser::INDIRECT | baser::ADDRESS | baser::PAGE_SIZE | baser::SIZE;
        let got = self.frame.read(offset, AccessSize::Doubleword);
        if got & KEPT != real & KEPT {
            self.frame.write(offset, AccessSize::Doubleword, old);
            if let Some(copy) = fresh {
                self.release(copy);
            }
            self.refusals.record(
                Refusal::DidNotStick,
                format_args!("GITS_BASER{n}: wrote {real:#x}, read {got:#x}"),
            );
            return;
        }
        if let Some(copy) = fresh {
            let replaced = state.tables[n].replace(Table {
                el1_address,
                bytes,
                copy,
            });
            if let Some(t) = replaced {
                self.release(t.copy);
            }
        }
    }

    fn write_cbaser(&self, state: &mut State, value: u64) {
        if !self.idle() {
            self.refusals
                .record(Refusal::ItsBusy, format_args!("GITS_CBASER = {value:#x}"));
            return;
        }
        if value & cbaser::VALID == 0 {
            self.frame.write(reg::CBASER, AccessSize::Doubleword, value);
            if let Some(q) = state.queue.take() {
                self.release(q.copy);
            }
            return;
        }
        let bytes = cbaser::queue_bytes(value);
        let el1_base = value & cbaser::ADDRESS;
        if !table_is_el1_ram(&self.mem, el1_base, Some(bytes)) {
            self.refusals.record(
                Refusal::QueueNotEl1Ram,
                format_args!("{bytes:#x} bytes at {el1_base:#x}"),
            );
            return;
        }
        // 64 KiB-aligned: an ITS may ignore address bits [15:12].
        let copy = match self.dma.alloc_zeroed(bytes as usize, 0x1_0000) {
            Ok(copy) => copy,
            Err(_) => {
                self.refusals
                    .record(Refusal::NoMemory, format_args!("{bytes:#x}-byte queue"));
                return;
            }
        };
        self.dma.clean_for_device(&copy, 0, bytes as usize);
        let old = self.frame.read(reg::CBASER, AccessSize::Doubleword);
        let real = (value & !cbaser::ADDRESS) | copy.pa();
        self.frame.write(reg::CBASER, AccessSize::Doubleword, real);
        const KEPT: u64 = cbaser::VALID | cbaser::ADDRESS | cbaser::SIZE;
        let got = self.frame.read(reg::CBASER, AccessSize::Doubleword);
        if got & KEPT != real & KEPT {
            self.frame.write(reg::CBASER, AccessSize::Doubleword, old);
            self.release(copy);
            self.refusals.record(
                Refusal::DidNotStick,
                format_args!("GITS_CBASER: wrote {real:#x}, read {got:#x}"),
            );
            return;
        }
        if let Some(q) = state.queue.take() {
            self.release(q.copy);
        }
        let mut queue = Queue {
            el1_base,
            bytes,
            copy,
            copied_to: 0,
        };
        // The write reset GITS_CREADR to 0: whatever lies between there and
        // GITS_CWRITER is now pending, so it must be checked too. A write
        // pointer outside the new queue means nothing; restart it at 0.
        let pending = self.frame.read(reg::CWRITER, AccessSize::Doubleword) & cwriter::OFFSET;
        if pending < bytes {
            self.copy_commands(&mut queue, pending);
        } else {
            self.frame.write(reg::CWRITER, AccessSize::Doubleword, 0);
        }
        state.queue = Some(queue);
    }

    fn write_cwriter(&self, state: &mut State, value: u64) {
        let Some(queue) = state.queue.as_mut() else {
            // No queue the hyp accepted: the real GITS_CBASER is invalid,
            // so the ITS reads no command.
            self.frame
                .write(reg::CWRITER, AccessSize::Doubleword, value);
            return;
        };
        let to = value & cwriter::OFFSET;
        if to >= queue.bytes {
            self.refusals.record(
                Refusal::CwriterOutOfRange,
                format_args!("offset {to:#x} in a {:#x}-byte queue", queue.bytes),
            );
            return;
        }
        if !self.mem.is_el1_ram(queue.el1_base, queue.bytes) {
            self.refusals.record(
                Refusal::QueueNotEl1Ram,
                format_args!("{:#x} bytes at {:#x}", queue.bytes, queue.el1_base),
            );
            return;
        }
        // The ITS may be reading any slot from GITS_CREADR up to the last
        // copied command: rewriting one could let it read half an old and
        // half a new command, which neither check covered. So a write
        // pointer inside that span (or back at its start) only moves the
        // pointer; one past it gets the commands in between, which never
        // reach GITS_CREADR (the queue is empty when the pointers are
        // equal, so one slot always stays free). The ITS only moves
        // GITS_CREADR forwards, so a stale value only makes the span
        // larger. Either way the copy holds nothing but checked commands
        // (or zeros, which the ITS rejects as a command error).
        let read = self.frame.read(reg::CREADR, AccessSize::Doubleword) & cwriter::OFFSET;
        let size = queue.bytes;
        if read >= size {
            self.refusals.record(
                Refusal::ReaderOutOfRange,
                format_args!("GITS_CREADR {read:#x} in a {size:#x}-byte queue"),
            );
            return;
        }
        let unread = (queue.copied_to + size - read) % size;
        let back = (queue.copied_to + size - to) % size;
        if back <= unread {
            queue.copied_to = to;
        } else {
            self.copy_commands(queue, to);
        }
        self.frame.write(
            reg::CWRITER,
            AccessSize::Doubleword,
            value & (cwriter::OFFSET | cwriter::RETRY),
        );
    }

    /// Copies EL1's commands from `queue.copied_to` up to `to` (wrapping)
    /// into the ITS's queue, each read once and checked, and cleans them
    /// to the point of coherency (the ITS may not snoop the CPU's caches).
    fn copy_commands(&self, queue: &mut Queue, to: u64) {
        let from = queue.copied_to;
        let mut at = from;
        while at != to {
            let mut command = [0u64; 4];
            for (i, word) in command.iter_mut().enumerate() {
                // SAFETY: `at` is a 32-byte-aligned offset below the queue's
                // size, and the caller checked that the whole queue is EL1's
                // RAM.
                *word = unsafe { self.mem.read_u64(queue.el1_base + at + 8 * i as u64) };
            }
            if let Err(why) = self.check(&command) {
                self.refusals.record(
                    why,
                    format_args!(
                        "command {:#04x} at offset {at:#x}: {:#x} {:#x} {:#x} {:#x}",
                        command[0] & 0xff,
                        command[0],
                        command[1],
                        command[2],
                        command[3]
                    ),
                );
                command = self.harmless;
            }
            for (i, word) in command.iter().enumerate() {
                queue.copy.write_u64(at as usize + 8 * i, *word);
            }
            at = (at + cmd::BYTES) % queue.bytes;
        }
        let spans = if from <= to {
            [(from, to - from), (0, 0)]
        } else {
            [(from, queue.bytes - from), (0, to)]
        };
        for (start, len) in spans.into_iter().filter(|s| s.1 != 0) {
            self.dma
                .clean_for_device(&queue.copy, start as usize, len as usize);
        }
        queue.copied_to = to;
    }

    /// Why `command` may not reach the ITS, if it may not.
    pub fn check(&self, command: &[u64; 4]) -> Result<(), Refusal> {
        let op = command[0] & 0xff;
        match op {
            cmd::MOVI
            | cmd::INT
            | cmd::CLEAR
            | cmd::MAPTI
            | cmd::MAPI
            | cmd::INV
            | cmd::INVALL
            | cmd::DISCARD => Ok(()),
            cmd::SYNC => self.check_redistributor(command[2]),
            cmd::MAPC if command[2] & cmd::VALID != 0 => self.check_redistributor(command[2]),
            cmd::MAPC => Ok(()),
            cmd::MOVALL => {
                self.check_redistributor(command[2])?;
                self.check_redistributor(command[3])
            }
            cmd::MAPD if command[2] & cmd::VALID != 0 => {
                let bits = (command[1] & cmd::ITT_SIZE) + 1;
                let itt = command[2] & cmd::ITT_ADDRESS;
                let bytes = (bits <= typer::event_id_bits(self.typer))
                    .then(|| (1u64 << bits) * typer::itt_entry_bytes(self.typer));
                if table_is_el1_ram(&self.mem, itt, bytes) {
                    Ok(())
                } else {
                    Err(Refusal::IttNotEl1Ram)
                }
            }
            cmd::MAPD => Ok(()),
            op if cmd::VIRTUAL.contains(&op) => Err(Refusal::VirtualCommand),
            _ => Err(Refusal::UnknownCommand),
        }
    }

    /// With `GITS_TYPER.PTA` = 1 an RDbase field is a physical address the
    /// ITS sends to: it must be a redistributor's. With PTA = 0 it is a
    /// processor number, which the ITS range-checks itself.
    fn check_redistributor(&self, word: u64) -> Result<(), Refusal> {
        if self.typer & typer::PTA == 0 {
            return Ok(());
        }
        if self.redistributors.is_rd_base(word & cmd::RDBASE) {
            Ok(())
        } else {
            Err(Refusal::NotARedistributor)
        }
    }
}

impl<F, E, M> super::MmioDevice for Its<F, E, M>
where
    F: RegisterFrame + Sync,
    E: El1Memory + Sync,
    M: DmaMemory + Sync,
{
    fn read(&self, offset: u64, size: AccessSize) -> u64 {
        Its::read(self, offset, size)
    }

    fn write(&self, offset: u64, size: AccessSize, value: u64) {
        Its::write(self, offset, size, value)
    }
}

#[cfg(test)]
mod tests;

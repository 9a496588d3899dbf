//! Host-test fakes that *audit* the driver: a DMA allocator that tracks
//! every region, a clock, and an SMMU model that consumes commands
//! synchronously (like QEMU) but checks the programming rules real hardware
//! relies on (alignment, no writes to live configuration, no producer
//! overrun, RES0 fields, commands the SMMU does not support) and records
//! what it saw for the tests to inspect.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::BTreeMap;
use std::format;
use std::ptr::NonNull;
use std::string::String;
use std::vec::Vec;

use super::command::{Command, opcode};
use super::dma::{DmaError, DmaMemory, DmaRegion};
use super::event::EventKind;
use super::features::{Features, IdRegs};
use super::poll::Clock;
use super::regs::{SmmuRegs, offset};
use super::ste::{S2Config, Ste, SteConfig};

// ---------------------------------------------------------------- clock

/// A clock that advances by `step` ns every time it is read.
pub struct FakeClock {
    now: Cell<u64>,
    step: u64,
}

impl FakeClock {
    pub fn new(step: u64) -> Self {
        Self {
            now: Cell::new(0),
            step,
        }
    }
}

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        let t = self.now.get();
        self.now.set(t + self.step);
        t
    }
}

// ---------------------------------------------------------------- DMA

struct Allocation {
    /// Start of the host allocation (may differ from the PA handed out when
    /// testing a misbehaving allocator).
    base: *mut u8,
    layout: Layout,
    size: usize,
    /// With a modelled CPU cache: what the device sees.
    cache: Option<CacheModel>,
}

/// Bytes per modelled cache line.
const LINE: usize = 64;
/// What memory held before the allocator zeroed it through the cache.
const STALE: u64 = 0x5a5a_5a5a_5a5a_5a5a;

/// A write-back CPU cache in front of a non-coherent device, per 64-byte
/// line. The host allocation is the CPU's view (cache over memory): the
/// driver's pointers read and write it directly. `memory` is the point of
/// coherency, the only thing the device reads and writes. `synced` is the
/// CPU's view of each word when its line was last cleaned or refilled: a
/// line whose view differs from it holds CPU writes not yet written back
/// (dirty).
struct CacheModel {
    memory: Vec<u64>,
    synced: Vec<u64>,
}

impl CacheModel {
    /// After the allocator zeroed `words` words with cacheable stores:
    /// every line is dirty and memory still holds its old contents.
    fn zeroed(words: usize) -> Self {
        Self {
            memory: std::vec![STALE; words],
            synced: std::vec![STALE; words],
        }
    }

    /// Writes back the dirty lines among `words` (DC CVAC).
    fn clean(&mut self, view: &[u64], words: core::ops::Range<usize>) {
        for line in Self::lines(words, view.len()) {
            if view[line.clone()] != self.synced[line.clone()] {
                self.memory[line.clone()].copy_from_slice(&view[line.clone()]);
                self.synced[line.clone()].copy_from_slice(&view[line]);
            }
        }
    }

    /// Writes back the dirty lines among `words`, then drops them so the
    /// CPU reads memory again (DC CIVAC).
    fn clean_invalidate(&mut self, view: &mut [u64], words: core::ops::Range<usize>) {
        self.clean(view, words.clone());
        for line in Self::lines(words, view.len()) {
            view[line.clone()].copy_from_slice(&self.memory[line.clone()]);
            self.synced[line.clone()].copy_from_slice(&self.memory[line]);
        }
    }

    /// The whole lines covering `words`, within `0..len`.
    fn lines(
        words: core::ops::Range<usize>,
        len: usize,
    ) -> impl Iterator<Item = core::ops::Range<usize>> {
        let per_line = LINE / 8;
        let first = words.start / per_line * per_line;
        (first..words.end)
            .step_by(per_line)
            .map(move |w| w..(w + per_line).min(len))
    }
}

#[derive(Default)]
pub struct DmaState {
    live: BTreeMap<u64, Allocation>,
    /// Bytes that may be live at once.
    pub limit: usize,
    pub used: usize,
    /// Fail the allocation with this ordinal (0-based), once.
    pub fail_at: Option<u64>,
    /// Hand out addresses 8 bytes off the requested alignment.
    pub misalign: bool,
    /// Model a CPU cache in front of a non-coherent SMMU (see
    /// [`FakeDma::with_cpu_cache`]).
    pub cpu_cache: bool,
    pub allocs: u64,
    pub frees: u64,
    pub cleans: u64,
    pub invalidates: u64,
}

/// Host memory as DMA memory, identity-mapped (PA = host address) so the
/// fake SMMU can follow the physical addresses the driver programs.
pub struct FakeDma {
    s: RefCell<DmaState>,
}

impl FakeDma {
    pub fn new() -> Self {
        Self::with_limit(64 << 20)
    }

    pub fn with_limit(limit: usize) -> Self {
        Self {
            s: RefCell::new(DmaState {
                limit,
                ..DmaState::default()
            }),
        }
    }

    /// DMA memory behind a write-back CPU cache, as a non-coherent SMMU
    /// sees it: the SMMU reads and writes only the point of coherency, the
    /// allocator zeroes through the cache (dirty lines over stale memory),
    /// `clean_for_device` writes dirty lines back (DC CVAC) and
    /// `invalidate_for_cpu` cleans and invalidates them (DC CIVAC, as the
    /// hyp's allocator does). A dirty line the CPU never cleans is written
    /// back over whatever the SMMU wrote at the next clean+invalidate.
    pub fn with_cpu_cache() -> Self {
        let dma = Self::new();
        dma.s.borrow_mut().cpu_cache = true;
        dma
    }

    pub fn state(&self) -> RefMut<'_, DmaState> {
        self.s.borrow_mut()
    }

    /// Runs `f` on the CPU's view of the live region at `pa` and its cache
    /// model, with the word index of `pa` in it; `None` without a model.
    fn with_cache<T>(
        &self,
        pa: u64,
        f: impl FnOnce(&mut [u64], &mut CacheModel, usize) -> T,
    ) -> Option<T> {
        let mut s = self.s.borrow_mut();
        let (&start, a) = s.live.range_mut(..=pa).next_back()?;
        let cache = a.cache.as_mut()?;
        // SAFETY: `start` is a live, 8-byte aligned host allocation of
        // `size` bytes, not otherwise borrowed during `f` (the driver does
        // not run while the fake executes).
        let view = unsafe { std::slice::from_raw_parts_mut(start as *mut u64, a.size / 8) };
        Some(f(view, cache, ((pa - start) / 8) as usize))
    }

    pub fn live_regions(&self) -> usize {
        self.s.borrow().live.len()
    }

    /// Whether `[pa, pa + len)` lies inside one live region.
    pub fn contains(&self, pa: u64, len: usize) -> bool {
        let s = self.s.borrow();
        s.live
            .range(..=pa)
            .next_back()
            .is_some_and(|(&start, a)| pa + len as u64 <= start + a.size as u64)
    }

    /// A read by the SMMU.
    pub fn read(&self, pa: u64) -> u64 {
        assert!(
            self.contains(pa, 8),
            "SMMU read outside DMA memory at {pa:#x}"
        );
        if let Some(v) = self.with_cache(pa, |_, c, i| c.memory[i]) {
            return v;
        }
        // SAFETY: identity-mapped live host allocation, checked above.
        unsafe { (pa as *const u64).read_volatile() }
    }

    /// A write by the SMMU.
    pub fn write(&self, pa: u64, value: u64) {
        assert!(
            self.contains(pa, 8),
            "SMMU write outside DMA memory at {pa:#x}"
        );
        if self.with_cache(pa, |_, c, i| c.memory[i] = value).is_some() {
            return;
        }
        // SAFETY: as in `read`.
        unsafe { (pa as *mut u64).write_volatile(value) }
    }
}

// SAFETY: regions are fresh zeroed host allocations of the requested size
// and alignment (except in `misalign` mode, which exists to check that the
// driver rejects it), identity-mapped.
unsafe impl DmaMemory for FakeDma {
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<DmaRegion, DmaError> {
        let mut s = self.s.borrow_mut();
        let ordinal = s.allocs;
        s.allocs += 1;
        if s.fail_at == Some(ordinal) || s.used + size > s.limit {
            return Err(DmaError::Exhausted);
        }
        let extra = if s.misalign { align } else { 0 };
        let layout = Layout::from_size_align(size + extra, align.max(8)).unwrap();
        // SAFETY: non-zero size layout.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null());
        // SAFETY: `extra` leaves room for the offset.
        let va = unsafe { base.add(if s.misalign { 8 } else { 0 }) };
        s.used += size;
        let cache = s.cpu_cache.then(|| CacheModel::zeroed(size / 8));
        s.live.insert(
            va as u64,
            Allocation {
                base,
                layout,
                size,
                cache,
            },
        );
        Ok(DmaRegion::new(va as u64, NonNull::new(va).unwrap(), size))
    }

    unsafe fn free(&self, region: DmaRegion) {
        let mut s = self.s.borrow_mut();
        let a = s
            .live
            .remove(&region.pa())
            .unwrap_or_else(|| panic!("free of unknown region {:#x}", region.pa()));
        s.used -= a.size;
        s.frees += 1;
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(a.base, a.layout) };
    }

    fn clean_for_device(&self, region: &DmaRegion, offset: usize, len: usize) {
        assert!(offset + len <= region.size(), "clean outside the region");
        self.s.borrow_mut().cleans += 1;
        let words = offset / 8..(offset + len).div_ceil(8);
        self.with_cache(region.pa(), |view, c, _| c.clean(view, words));
    }

    fn invalidate_for_cpu(&self, region: &DmaRegion, offset: usize, len: usize) {
        assert!(
            offset + len <= region.size(),
            "invalidate outside the region"
        );
        self.s.borrow_mut().invalidates += 1;
        let words = offset / 8..(offset + len).div_ceil(8);
        self.with_cache(region.pa(), |view, c, _| c.clean_invalidate(view, words));
    }
}

impl Drop for FakeDma {
    fn drop(&mut self) {
        for (_, a) in std::mem::take(&mut self.s.borrow_mut().live) {
            // SAFETY: allocated with this layout and not freed.
            unsafe { dealloc(a.base, a.layout) };
        }
    }
}

// ---------------------------------------------------------------- SMMU

/// When the fake consumes commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consume {
    /// On every PROD write and CONS read (QEMU consumes on PROD write).
    Eager,
    /// Only `n` commands per CONS read: a slow SMMU.
    PerConsRead(u32),
    /// Never: a stuck SMMU.
    Stopped,
}

/// One thing the driver did, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trail {
    Write { off: usize, value: u64 },
    Cmd(Command),
}

/// What a DMA from a StreamID would meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Bypass,
    Abort,
    Fault(EventKind),
    Stage2(S2Config),
}

/// Result of injecting an event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    Written,
    /// Queue full, hardware behaviour: lost, OVFLG toggled (once per
    /// acknowledged episode).
    Overflowed,
    /// Queue full, QEMU behaviour: lost, GERROR.EVENTQ_ABT_ERR.
    Aborted,
    /// EVENTQEN = 0.
    Disabled,
}

pub struct SmmuState {
    pub id: IdRegs,
    features: Features,
    pub cr0: u32,
    pub cr0ack: u32,
    pub cr1: u32,
    pub cr2: u32,
    pub gbpa: u32,
    pub irq_ctrl: u32,
    pub irq_ctrlack: u32,
    /// SMMU_EVENTQ_IRQ_CFG0: the event interrupt's MSI address (reset
    /// value UNKNOWN: all ones here, so a driver that never clears it is
    /// seen).
    pub evtq_irq_cfg0: u64,
    pub gerror: u32,
    pub gerrorn: u32,
    pub strtab_base: u64,
    pub strtab_base_cfg: u32,
    pub cmdq_base: u64,
    pub cmdq_prod: u32,
    pub cmdq_cons: u32,
    pub evtq_base: u64,
    pub evtq_prod: u32,
    pub evtq_cons: u32,

    // Behaviour knobs.
    pub consume: Consume,
    /// CR0ACK follows CR0.
    pub ack_cr0: bool,
    /// GBPA.UPDATE never clears.
    pub gbpa_stuck: bool,
    /// A full event queue raises GERROR.EVENTQ_ABT_ERR (QEMU defect 4)
    /// instead of toggling OVFLG.
    pub qemu_evtq_full: bool,
    /// Extra opcodes this "implementation" rejects with CERROR_ILL.
    pub illegal_opcodes: Vec<u8>,
    /// The next command fetches abort (CERROR_ABT) this many times.
    pub fetch_aborts: u32,

    // Audit trail.
    pub trail: Vec<Trail>,
    /// (StreamID, STE in memory) at every CFGI_STE consumed.
    pub cfgi_snapshots: Vec<(u32, Option<Ste>)>,
    pub syncs: u64,
    pub violations: Vec<String>,
    ste_cache: BTreeMap<u32, Ste>,
}

pub struct FakeSmmu<'d> {
    dma: &'d FakeDma,
    s: RefCell<SmmuState>,
}

const CR0_SMMUEN: u32 = 1;
const CR0_EVENTQEN: u32 = 1 << 2;
const IRQ_CTRL_EVENTQ_IRQEN: u32 = 1 << 2;
const CR0_CMDQEN: u32 = 1 << 3;
const GBPA_UPDATE: u32 = 1 << 31;
const GBPA_ABORT: u32 = 1 << 20;
const GERROR_CMDQ: u32 = 1;
const GERROR_EVTQ_ABT: u32 = 1 << 2;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_ffc0;

/// Allowed bits per opcode: anything else set is a RES0 violation, which
/// hardware may treat as CERROR_ILL (we always do).
fn allowed_bits(op: u8) -> Option<[u64; 2]> {
    let op_bits = 0xff;
    let sid = 0xffff_ffff << 32;
    let vmid = 0xffff << 32;
    Some(match op {
        opcode::PREFETCH_CONFIG => [op_bits | sid, 0],
        opcode::CFGI_STE => [op_bits | sid, 1],
        opcode::CFGI_STE_RANGE => [op_bits | sid, 0x1f],
        opcode::TLBI_NSNH_ALL | opcode::TLBI_EL2_ALL => [op_bits, 0],
        opcode::TLBI_S12_VMALL => [op_bits | vmid, 0],
        opcode::TLBI_S2_IPA => [
            op_bits | (0x1f << 12) | (0x1f << 20) | vmid,
            1 | (0xf << 8) | 0x000f_ffff_ffff_f000,
        ],
        opcode::CMD_SYNC => [op_bits | (3 << 12), 0],
        _ => return None,
    })
}

impl<'d> FakeSmmu<'d> {
    pub fn new(dma: &'d FakeDma, id: IdRegs) -> Self {
        Self {
            dma,
            s: RefCell::new(SmmuState {
                id,
                features: Features::decode(id),
                cr0: 0,
                cr0ack: 0,
                cr1: 0,
                cr2: 0,
                // Reset value: bypass (SHCFG = use incoming).
                gbpa: 0x1000,
                irq_ctrl: 0,
                irq_ctrlack: 0,
                evtq_irq_cfg0: u64::MAX,
                gerror: 0,
                gerrorn: 0,
                strtab_base: 0,
                strtab_base_cfg: 0,
                cmdq_base: 0,
                cmdq_prod: 0,
                cmdq_cons: 0,
                evtq_base: 0,
                evtq_prod: 0,
                evtq_cons: 0,
                consume: Consume::Eager,
                ack_cr0: true,
                gbpa_stuck: false,
                qemu_evtq_full: false,
                illegal_opcodes: Vec::new(),
                fetch_aborts: 0,
                trail: Vec::new(),
                cfgi_snapshots: Vec::new(),
                syncs: 0,
                violations: Vec::new(),
                ste_cache: BTreeMap::new(),
            }),
        }
    }

    pub fn state(&self) -> Ref<'_, SmmuState> {
        self.s.borrow()
    }

    pub fn state_mut(&self) -> RefMut<'_, SmmuState> {
        self.s.borrow_mut()
    }

    /// Commands consumed, in order.
    pub fn executed(&self) -> Vec<Command> {
        self.s
            .borrow()
            .trail
            .iter()
            .filter_map(|t| match t {
                Trail::Cmd(c) => Some(*c),
                Trail::Write { .. } => None,
            })
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.s.borrow().violations.clone()
    }

    fn violation(s: &mut SmmuState, msg: String) {
        s.violations.push(msg);
    }

    fn queue_log2(base: u64, max: u8) -> u32 {
        u32::from(((base & 0x1f) as u8).min(max))
    }

    /// Checks a queue base when the queue is enabled.
    fn audit_queue(&self, s: &mut SmmuState, name: &str, base: u64, max_log2: u8, entry: usize) {
        let log2 = Self::queue_log2(base, max_log2);
        let bytes = (entry << log2).max(32);
        let pa = base & 0x000f_ffff_ffff_ffe0;
        if !pa.is_multiple_of(bytes as u64) {
            Self::violation(s, format!("{name} base {pa:#x} not aligned to {bytes:#x}"));
        }
        if !self.dma.contains(pa, bytes) {
            Self::violation(s, format!("{name} base {pa:#x} not in DMA memory"));
        }
    }

    fn audit_strtab(&self, s: &mut SmmuState) {
        let cfg = s.strtab_base_cfg;
        let log2 = cfg & 0x3f;
        let split = (cfg >> 6) & 0x1f;
        let fmt = (cfg >> 16) & 3;
        let pa = s.strtab_base & ADDR_MASK;
        if log2 > u32::from(s.features.sid_bits) {
            Self::violation(s, format!("STRTAB LOG2SIZE {log2} > SIDSIZE"));
        }
        let bytes = match fmt {
            0 => 64u64 << log2,
            1 => {
                if ![6, 8, 10].contains(&split) {
                    Self::violation(s, format!("SPLIT {split} not 6, 8 or 10"));
                }
                (8u64 << log2.saturating_sub(split)).max(64)
            }
            _ => {
                Self::violation(s, format!("STRTAB FMT {fmt}"));
                return;
            }
        };
        if !pa.is_multiple_of(bytes) {
            Self::violation(s, format!("stream table {pa:#x} not aligned to {bytes:#x}"));
        }
        if !self.dma.contains(pa, bytes as usize) {
            Self::violation(s, format!("stream table {pa:#x} not in DMA memory"));
        }
    }

    /// The STE for `sid`, found the way the SMMU finds it.
    pub fn fetch_ste(&self, sid: u32) -> Result<Ste, EventKind> {
        let s = self.s.borrow();
        let cfg = s.strtab_base_cfg;
        let log2 = (cfg & 0x3f).min(u32::from(s.features.sid_bits));
        let split = (cfg >> 6) & 0x1f;
        let base = s.strtab_base & ADDR_MASK;
        if u64::from(sid) >= 1u64 << log2 {
            return Err(EventKind::BadStreamId);
        }
        let addr = if (cfg >> 16) & 3 == 0 {
            base + u64::from(sid) * 64
        } else {
            let desc = self.dma.read(base + u64::from(sid >> split) * 8);
            let span = desc & 0x1f;
            if span == 0 {
                return Err(EventKind::BadStreamId);
            }
            let l2 = desc & ADDR_MASK;
            let index = u64::from(sid) & ((1 << split) - 1);
            if index >= 1 << (span - 1) {
                return Err(EventKind::BadSte);
            }
            if !l2.is_multiple_of(64 << (span - 1)) {
                return Err(EventKind::BadSte);
            }
            l2 + index * 64
        };
        Ok(Ste(core::array::from_fn(|w| {
            self.dma.read(addr + w as u64 * 8)
        })))
    }

    /// What a DMA from `sid` would meet now (using and filling the
    /// configuration cache, like the model and hardware do).
    pub fn translate(&self, sid: u32) -> Outcome {
        {
            let s = self.s.borrow();
            if s.cr0 & CR0_SMMUEN == 0 {
                return if s.gbpa & GBPA_ABORT != 0 {
                    Outcome::Abort
                } else {
                    Outcome::Bypass
                };
            }
        }
        let cached = self.s.borrow().ste_cache.get(&sid).copied();
        let ste = match cached {
            Some(ste) => ste,
            None => match self.fetch_ste(sid) {
                Ok(ste) => {
                    self.s.borrow_mut().ste_cache.insert(sid, ste);
                    ste
                }
                Err(kind) => return Outcome::Fault(kind),
            },
        };
        match ste.config() {
            SteConfig::Abort => Outcome::Abort,
            SteConfig::Stage2 => Outcome::Stage2(ste.s2_config().unwrap()),
            _ => Outcome::Fault(EventKind::BadSte),
        }
    }

    fn cmdq_geometry(s: &SmmuState) -> (u32, u32) {
        let log2 = Self::queue_log2(s.cmdq_base, s.features.cmdq_log2);
        (1 << log2, (2 << log2) - 1)
    }

    /// Executes one command; `Err(code)` is the CERROR to report.
    fn execute(&self, s: &mut SmmuState, cmd: Command) -> Result<(), u32> {
        let op = cmd.opcode();
        let f = s.features;
        if s.illegal_opcodes.contains(&op) {
            return Err(1);
        }
        let Some(allowed) = allowed_bits(op) else {
            return Err(1);
        };
        if cmd.0[0] & !allowed[0] != 0 || cmd.0[1] & !allowed[1] != 0 {
            return Err(1);
        }
        match op {
            opcode::CFGI_STE => {
                let sid = (cmd.0[0] >> 32) as u32;
                s.ste_cache.remove(&sid);
                // Snapshot outside the borrow: fetch_ste borrows again.
                s.cfgi_snapshots.push((sid, None));
            }
            opcode::CFGI_STE_RANGE => {
                let sid = (cmd.0[0] >> 32) as u32;
                let range = (cmd.0[1] & 0x1f) as u32;
                let span = 2u64 << range;
                let first = u64::from(sid) & !(span - 1);
                s.ste_cache
                    .retain(|&k, _| !(first..first + span).contains(&u64::from(k)));
            }
            opcode::TLBI_EL2_ALL if !f.hyp => return Err(1),
            opcode::TLBI_S12_VMALL | opcode::TLBI_S2_IPA if !f.stage2 => return Err(1),
            opcode::TLBI_S2_IPA if !f.ril && (cmd.0[1] >> 10) & 3 != 0 => return Err(1),
            opcode::CMD_SYNC => {
                if (cmd.0[0] >> 12) & 3 != 0 {
                    Self::violation(s, String::from("CMD_SYNC with CS != none"));
                }
                s.syncs += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// Consumes up to `limit` commands.
    fn consume(&self, limit: u32) {
        let mut done = 0;
        while done < limit {
            let (cmd, slot_pa) = {
                let mut s = self.s.borrow_mut();
                if s.cr0 & CR0_CMDQEN == 0 || (s.gerror ^ s.gerrorn) & GERROR_CMDQ != 0 {
                    return;
                }
                let (entries, mask) = Self::cmdq_geometry(&s);
                let cons = s.cmdq_cons & mask;
                if cons == s.cmdq_prod & mask {
                    return;
                }
                if s.fetch_aborts > 0 {
                    s.fetch_aborts -= 1;
                    s.cmdq_cons = cons | (2 << 24);
                    s.gerror ^= GERROR_CMDQ;
                    return;
                }
                let pa =
                    (s.cmdq_base & 0x000f_ffff_ffff_ffe0) + u64::from(cons & (entries - 1)) * 16;
                (Command([self.dma.read(pa), self.dma.read(pa + 8)]), pa)
            };
            let _ = slot_pa;
            let result = {
                let mut s = self.s.borrow_mut();
                s.trail.push(Trail::Cmd(cmd));
                self.execute(&mut s, cmd)
            };
            if cmd.opcode() == opcode::CFGI_STE && result.is_ok() {
                let sid = (cmd.0[0] >> 32) as u32;
                let snap = self.fetch_ste(sid).ok();
                if let Some(last) = self.s.borrow_mut().cfgi_snapshots.last_mut() {
                    *last = (sid, snap);
                }
            }
            let mut s = self.s.borrow_mut();
            let (_, mask) = Self::cmdq_geometry(&s);
            let cons = s.cmdq_cons & mask;
            match result {
                Ok(()) => s.cmdq_cons = (cons + 1) & mask,
                Err(code) => {
                    s.cmdq_cons = cons | (code << 24);
                    s.gerror ^= GERROR_CMDQ;
                    return;
                }
            }
            done += 1;
        }
    }

    fn consume_now(&self) {
        let mode = self.s.borrow().consume;
        match mode {
            Consume::Eager => self.consume(u32::MAX),
            Consume::PerConsRead(_) | Consume::Stopped => {}
        }
    }

    /// Puts an event record into the event queue as the SMMU would.
    pub fn inject_event(&self, record: [u64; 4]) -> Inject {
        let mut s = self.s.borrow_mut();
        if s.cr0 & CR0_EVENTQEN == 0 {
            return Inject::Disabled;
        }
        let log2 = Self::queue_log2(s.evtq_base, s.features.evtq_log2);
        let entries = 1u32 << log2;
        let mask = (2 << log2) - 1;
        let prod = s.evtq_prod & mask;
        let cons = s.evtq_cons & mask;
        if prod.wrapping_sub(cons) & mask == entries {
            if s.qemu_evtq_full {
                if (s.gerror ^ s.gerrorn) & GERROR_EVTQ_ABT == 0 {
                    s.gerror ^= GERROR_EVTQ_ABT;
                }
                return Inject::Aborted;
            }
            // Signal once per acknowledged episode.
            if (s.evtq_prod >> 31) == (s.evtq_cons >> 31) {
                s.evtq_prod ^= 1 << 31;
            }
            return Inject::Overflowed;
        }
        let pa = (s.evtq_base & 0x000f_ffff_ffff_ffe0) + u64::from(prod & (entries - 1)) * 32;
        for (i, w) in record.iter().enumerate() {
            self.dma.write(pa + i as u64 * 8, *w);
        }
        s.evtq_prod = (s.evtq_prod & (1 << 31)) | ((prod + 1) & mask);
        Inject::Written
    }
}

impl SmmuRegs for FakeSmmu<'_> {
    fn read32(&self, off: usize) -> u32 {
        if off == offset::CMDQ_CONS {
            let mode = self.s.borrow().consume;
            match mode {
                Consume::Eager => self.consume(u32::MAX),
                Consume::PerConsRead(n) => self.consume(n),
                Consume::Stopped => {}
            }
        }
        let mut s = self.s.borrow_mut();
        match off {
            offset::IDR0 => s.id.idr0,
            offset::IDR1 => s.id.idr1,
            offset::IDR2 => s.id.idr2,
            offset::IDR3 => s.id.idr3,
            offset::IDR4 => s.id.idr4,
            offset::IDR5 => s.id.idr5,
            offset::IIDR => s.id.iidr,
            offset::AIDR => s.id.aidr,
            offset::CR0 => s.cr0,
            offset::CR0ACK => s.cr0ack,
            offset::CR1 => s.cr1,
            offset::CR2 => s.cr2,
            offset::STATUSR => 0,
            offset::GBPA => s.gbpa,
            offset::IRQ_CTRL => s.irq_ctrl,
            offset::IRQ_CTRLACK => s.irq_ctrlack,
            offset::GERROR => s.gerror,
            offset::GERRORN => s.gerrorn,
            offset::STRTAB_BASE_CFG => s.strtab_base_cfg,
            offset::CMDQ_PROD => s.cmdq_prod,
            offset::CMDQ_CONS => s.cmdq_cons,
            offset::EVENTQ_PROD => s.evtq_prod,
            offset::EVENTQ_CONS => s.evtq_cons,
            _ => {
                Self::violation(&mut s, format!("32-bit read of {off:#x}"));
                0
            }
        }
    }

    fn write32(&self, off: usize, value: u32) {
        {
            let mut s = self.s.borrow_mut();
            s.trail.push(Trail::Write {
                off,
                value: value.into(),
            });
            let enabled = s.cr0 & CR0_SMMUEN != 0;
            match off {
                offset::CR0 => {
                    let rising = value & !s.cr0;
                    if rising & CR0_CMDQEN != 0 {
                        let (base, max) = (s.cmdq_base, s.features.cmdq_log2);
                        self.audit_queue(&mut s, "CMDQ", base, max, 16);
                    }
                    if rising & CR0_EVENTQEN != 0 {
                        let (base, max) = (s.evtq_base, s.features.evtq_log2);
                        self.audit_queue(&mut s, "EVENTQ", base, max, 32);
                    }
                    if rising & CR0_SMMUEN != 0 {
                        self.audit_strtab(&mut s);
                        if s.gbpa & GBPA_ABORT == 0 {
                            Self::violation(&mut s, String::from("SMMUEN with GBPA bypass"));
                        }
                        s.ste_cache.clear();
                    }
                    s.cr0 = value;
                    if s.ack_cr0 {
                        s.cr0ack = value;
                    }
                }
                offset::CR1 | offset::CR2 | offset::STRTAB_BASE_CFG if enabled => {
                    Self::violation(&mut s, format!("{off:#x} written while SMMUEN"));
                }
                offset::CR1 => s.cr1 = value,
                offset::CR2 => s.cr2 = value,
                offset::STRTAB_BASE_CFG => s.strtab_base_cfg = value,
                offset::GBPA => {
                    if s.gbpa & GBPA_UPDATE != 0 {
                        Self::violation(&mut s, String::from("GBPA written during an update"));
                    }
                    if value & GBPA_UPDATE == 0 {
                        Self::violation(&mut s, String::from("GBPA written without UPDATE"));
                    } else if s.gbpa_stuck {
                        s.gbpa = value;
                    } else {
                        s.gbpa = value & !GBPA_UPDATE;
                    }
                }
                offset::IRQ_CTRL => {
                    s.irq_ctrl = value;
                    s.irq_ctrlack = value;
                }
                offset::GERRORN => s.gerrorn = value,
                offset::CMDQ_PROD => {
                    let (entries, mask) = Self::cmdq_geometry(&s);
                    let used = s.cmdq_prod.wrapping_sub(s.cmdq_cons) & mask;
                    let advance = value.wrapping_sub(s.cmdq_prod) & mask;
                    if used + advance > entries {
                        Self::violation(
                            &mut s,
                            format!(
                                "producer overran consumer: {used} queued, {advance} added, {entries} slots"
                            ),
                        );
                    }
                    s.cmdq_prod = value & mask;
                }
                offset::CMDQ_CONS => {
                    if s.cr0 & CR0_CMDQEN != 0 {
                        Self::violation(&mut s, String::from("CMDQ_CONS written while enabled"));
                    }
                    s.cmdq_cons = value;
                }
                offset::EVENTQ_PROD => {
                    if s.cr0 & CR0_EVENTQEN != 0 {
                        Self::violation(&mut s, String::from("EVENTQ_PROD written while enabled"));
                    }
                    s.evtq_prod = value;
                }
                offset::EVENTQ_CONS => s.evtq_cons = value,
                _ => Self::violation(&mut s, format!("32-bit write of {off:#x}")),
            }
        }
        if off == offset::CMDQ_PROD || off == offset::GERRORN || off == offset::CR0 {
            self.consume_now();
        }
    }

    fn read64(&self, off: usize) -> u64 {
        let mut s = self.s.borrow_mut();
        match off {
            offset::STRTAB_BASE => s.strtab_base,
            offset::CMDQ_BASE => s.cmdq_base,
            offset::EVENTQ_BASE => s.evtq_base,
            _ => {
                Self::violation(&mut s, format!("64-bit read of {off:#x}"));
                0
            }
        }
    }

    fn write64(&self, off: usize, value: u64) {
        let mut s = self.s.borrow_mut();
        s.trail.push(Trail::Write { off, value });
        let cr0 = s.cr0;
        match off {
            offset::STRTAB_BASE if cr0 & CR0_SMMUEN != 0 => {
                Self::violation(&mut s, String::from("STRTAB_BASE written while SMMUEN"))
            }
            offset::CMDQ_BASE if cr0 & CR0_CMDQEN != 0 => {
                Self::violation(&mut s, String::from("CMDQ_BASE written while enabled"))
            }
            offset::EVENTQ_BASE if cr0 & CR0_EVENTQEN != 0 => {
                Self::violation(&mut s, String::from("EVENTQ_BASE written while enabled"))
            }
            offset::EVENTQ_IRQ_CFG0
                if (s.irq_ctrl | s.irq_ctrlack) & IRQ_CTRL_EVENTQ_IRQEN != 0 =>
            {
                Self::violation(
                    &mut s,
                    String::from("EVENTQ_IRQ_CFG0 written while the event interrupt is enabled"),
                )
            }
            offset::EVENTQ_IRQ_CFG0 => s.evtq_irq_cfg0 = value,
            offset::STRTAB_BASE => s.strtab_base = value,
            offset::CMDQ_BASE => s.cmdq_base = value,
            offset::EVENTQ_BASE => s.evtq_base = value,
            _ => Self::violation(&mut s, format!("64-bit write of {off:#x}")),
        }
    }
}

/// The ID registers of QEMU 10's `-M virt,iommu=smmuv3` (`docs/qemu.md`).
pub const QEMU_VIRT: IdRegs = IdRegs {
    idr0: 0x0d44_101b,
    idr1: 0x0273_0010,
    idr2: 0,
    idr3: 0x1414,
    idr4: 0,
    idr5: 0x74,
    iidr: 0,
    aidr: 0x1,
};

/// `-M virt-9.1 -global arm-smmuv3.stage=1`.
pub const QEMU_STAGE1_ONLY: IdRegs = IdRegs {
    idr0: 0x0d44_101a,
    idr3: 0x1404,
    ..QEMU_VIRT
};

/// `-M virt-9.1 -global arm-smmuv3.stage=2`.
pub const QEMU_STAGE2_ONLY: IdRegs = IdRegs {
    idr0: 0x0d44_1019,
    ..QEMU_VIRT
};

//! The SMMU driver object: probe and enable, attach/detach stage-2 domains
//! to StreamIDs, invalidate, drain events, handle global errors.
//!
//! Single owner: every method takes `&mut self`; wrap the driver in a lock
//! to share it between CPUs. Nothing here allocates from a heap, and every
//! wait is bounded by [`Budget::poll`].

use tock_registers::LocalRegisterCopy;

use super::cmdq::{CmdqStats, CommandQueue};
use super::command::{CMD0, CMD1, Command, opcode};
use super::dma::{DmaMemory, DmaRegion};
use super::error::SmmuError;
use super::evtq::{EventQueue, EvtqStats};
use super::fault_log::{FaultLog, OverflowPolicy};
use super::features::Features;
use super::hw::{Hw, HwParts};
use super::poll::{Clock, PollBudget};
use super::regs::{CR0, CR1, CR2, GERROR, IRQ_CTRL, SmmuRegs, offset};
use super::ste::{S2Config, STE_BYTES, Ste, SteUpdate, SteWriter, write_ste};
use super::strtab::{StreamTable, StreamTableFormat};

/// Default capacity of the per-SMMU fault log.
pub const DEFAULT_FAULT_LOG: usize = 64;

/// Resource limits for one SMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Command queue entries (log2), capped by IDR1.CMDQS. 8 = 256
    /// entries = 4 KiB.
    pub cmdq_log2: u8,
    /// Event queue entries (log2), capped by IDR1.EVENTQS. 7 = 128
    /// entries = 4 KiB.
    pub evtq_log2: u8,
    /// StreamID bits, capped by IDR1.SIDSIZE. StreamIDs at or above
    /// 2^bits are refused by `attach_s2` and aborted by the SMMU
    /// (C_BAD_STREAMID).
    pub max_sid_bits: u8,
    /// Use a linear stream table up to this many StreamID bits (always
    /// linear if the SMMU lacks 2-level tables; then the table is
    /// 64 B << sid_bits, so size `max_sid_bits` accordingly).
    pub linear_max_sid_bits: u8,
    /// Bound on every wait.
    pub poll: PollBudget,
    pub fault_log_policy: OverflowPolicy,
    /// Records moved per `drain_events` call at most.
    pub max_events_per_drain: usize,
}

impl Budget {
    pub const DEFAULT: Self = Self {
        cmdq_log2: 8,
        evtq_log2: 7,
        max_sid_bits: 16,
        linear_max_sid_bits: 8,
        poll: PollBudget::DEFAULT,
        fault_log_policy: OverflowPolicy::DropOldest,
        max_events_per_drain: 1024,
    };
}

impl Default for Budget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Global errors handled, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GerrorCounts {
    /// GERROR.CMDQ_ERR (details in `CmdqStats::errors`).
    pub cmdq: u64,
    /// GERROR.EVENTQ_ABT_ERR.
    pub evtq_abort: u64,
    /// Event queue restarts done to recover from EVENTQ_ABT_ERR.
    pub evtq_resets: u64,
    /// GERROR.SFM_ERR.
    pub sfm: u64,
    /// MSI write aborts and PRIQ aborts (MSIs and PRI are not used).
    pub other: u64,
}

/// Everything the driver counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Commands issued by kind, syncs completed, timeouts, CMDQ errors.
    pub cmdq: CmdqStats,
    /// Events drained by kind, overflows.
    pub evtq: EvtqStats,
    pub gerror: GerrorCounts,
    pub attaches: u64,
    pub detaches: u64,
    /// STE transitions and the syncs they used.
    pub ste_updates: u64,
    pub ste_syncs: u64,
    /// Transitions that aborted traffic in between (not hitless).
    pub ste_breaking_updates: u64,
    pub l2_tables: u64,
    pub invalidate_batches: u64,
    /// Events dropped by the fault log's overflow policy.
    pub fault_log_dropped: u64,
}

impl Counters {
    /// CMD_SYNCs completed.
    pub fn syncs(&self) -> u64 {
        self.cmdq.syncs_completed
    }

    /// TLB invalidation commands issued.
    pub fn tlbis(&self) -> u64 {
        self.cmdq.issued.tlbis()
    }

    /// Errors of any kind observed.
    pub fn errors(&self) -> u64 {
        self.cmdq.errors.total()
            + self.cmdq.sync_timeouts
            + self.cmdq.space_timeouts
            + self.gerror.evtq_abort
            + self.gerror.sfm
            + self.gerror.other
            + self.evtq.overflows
    }
}

/// One SMMUv3 owned by EL2.
pub struct Smmu<R, M, C, const LOG: usize = DEFAULT_FAULT_LOG>
where
    R: SmmuRegs,
    M: DmaMemory,
    C: Clock,
{
    /// Registers, DMA memory, clock, wait budget and coherency: what every
    /// operation's [`Hw`] is built from.
    parts: HwParts<R, M, C>,
    features: Features,
    cmdq: CommandQueue,
    evtq: EventQueue,
    strtab: StreamTable,
    faults: FaultLog<LOG>,
    counters: Counters,
    max_events_per_drain: usize,
    in_sfm: bool,
}

/// The STE of one StreamID in DMA memory, for the update protocol.
struct DmaSte<'a, 'h, R, M, C> {
    hw: &'a Hw<'h, R, M, C>,
    region: &'a DmaRegion,
    offset: usize,
    sid: u32,
    cmdq: &'a mut CommandQueue,
}

impl<R: SmmuRegs, M: DmaMemory, C: Clock> SteWriter for DmaSte<'_, '_, R, M, C> {
    fn read(&self, i: usize) -> u64 {
        self.region.read_u64(self.offset + i * 8)
    }
    fn write(&mut self, i: usize, value: u64) {
        self.region.write_u64(self.offset + i * 8, value);
    }
    fn sync(&mut self) -> Result<(), SmmuError> {
        self.flush();
        // Leaf: the level-1 descriptor did not change.
        self.cmdq
            .submit(self.hw, &[Command::cfgi_ste(self.sid, true)], true)
    }
    fn flush(&mut self) {
        self.hw.clean(self.region, self.offset, STE_BYTES);
    }
}

const CMDQ_ERR: u32 = 1 << GERROR::CMDQ_ERR.shift;
const EVENTQ_ABT_ERR: u32 = 1 << GERROR::EVENTQ_ABT_ERR.shift;
const SFM_ERR: u32 = 1 << GERROR::SFM_ERR.shift;
/// PRIQ_ABT and the MSI aborts.
const OTHER_ERRS: u32 = 0xf8;

impl<R, M, C, const LOG: usize> Smmu<R, M, C, LOG>
where
    R: SmmuRegs,
    M: DmaMemory,
    C: Clock,
{
    /// Reads and checks the features, allocates the queues and the stream
    /// table, and enables the SMMU with every StreamID aborting.
    ///
    /// Nothing is written to the SMMU before the feature check passes. On
    /// failure the SMMU is left disabled with GBPA.ABORT set when possible;
    /// DMA memory is freed only if the SMMU acknowledged being disabled
    /// (otherwise it is leaked, never handed back while the SMMU may still
    /// use it).
    pub fn probe(regs: R, mem: M, clock: C, budget: Budget) -> Result<Self, SmmuError> {
        let features = Features::read(&regs);
        features.check()?;

        let parts = HwParts {
            regs,
            mem,
            clock,
            poll: budget.poll,
            coherent: features.coherent,
        };
        let hw = parts.hw();
        // Close the bypass window first: with SMMUEN = 0 traffic follows
        // GBPA, which resets to bypass on QEMU and many parts.
        hw.set_gbpa_abort()?;
        // Queue and table bases may only be written while disabled.
        hw.write_cr0(0)?;
        // Polled operation for now; interrupts are wired later.
        hw.write_irq_ctrl(0)?;
        let regs = hw.regs;
        let stale = regs.read32(offset::GERROR) ^ regs.read32(offset::GERRORN);
        if stale != 0 {
            log::warn!("SMMU: acknowledging stale global errors {stale:#x}");
            regs.write32(offset::GERRORN, regs.read32(offset::GERROR));
        }

        let sid_bits = features.sid_bits.min(budget.max_sid_bits);
        let two_level = features.two_level_strtab && sid_bits > budget.linear_max_sid_bits;
        let cmdq = CommandQueue::new(&hw, features.cmdq_log2.min(budget.cmdq_log2))?;
        let evtq = match EventQueue::new(&hw, features.evtq_log2.min(budget.evtq_log2)) {
            Ok(q) => q,
            Err(e) => {
                // SAFETY: never shown to the SMMU.
                unsafe { hw.mem.free(cmdq.into_region()) };
                return Err(e);
            }
        };
        let strtab = match StreamTable::new(&hw, sid_bits, two_level) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: never shown to the SMMU.
                unsafe {
                    hw.mem.free(cmdq.into_region());
                    hw.mem.free(evtq.into_region());
                }
                return Err(e);
            }
        };

        let mut smmu = Self {
            parts,
            features,
            cmdq,
            evtq,
            strtab,
            faults: FaultLog::new(budget.fault_log_policy),
            counters: Counters::default(),
            max_events_per_drain: budget.max_events_per_drain,
            in_sfm: false,
        };
        match smmu.enable() {
            Ok(()) => Ok(smmu),
            Err(e) => {
                log::error!("SMMU: enable failed: {e}");
                smmu.abandon();
                Err(e)
            }
        }
    }

    /// The enable sequence (queues and tables already allocated, SMMU
    /// disabled, GBPA aborting).
    fn enable(&mut self) -> Result<(), SmmuError> {
        let hw = self.parts.hw();
        let regs = hw.regs;
        let Self {
            features,
            cmdq,
            evtq,
            strtab,
            ..
        } = self;
        // Table walks and queue accesses: cacheable and inner shareable
        // when the SMMU is coherent; otherwise non-cacheable (EL2 cleans
        // everything it writes to PoC and invalidates what it reads).
        let cr1 = if features.coherent {
            CR1::QUEUE_IC::WriteBack
                + CR1::QUEUE_OC::WriteBack
                + CR1::QUEUE_SH::Inner
                + CR1::TABLE_IC::WriteBack
                + CR1::TABLE_OC::WriteBack
                + CR1::TABLE_SH::Inner
        } else {
            CR1::QUEUE_IC::NonCacheable
                + CR1::QUEUE_OC::NonCacheable
                + CR1::QUEUE_SH::Outer
                + CR1::TABLE_IC::NonCacheable
                + CR1::TABLE_OC::NonCacheable
                + CR1::TABLE_SH::Outer
        };
        regs.write32(offset::CR1, cr1.value);
        // E2H = 0 (our STEs are stage-2, EL1 StreamWorld); RECINVSID:
        // record C_BAD_STREAMID; PTM: ignore broadcast TLB maintenance (we
        // invalidate explicitly, and host VMIDs must not alias ours).
        regs.write32(offset::CR2, (CR2::RECINVSID::SET + CR2::PTM::SET).value);
        regs.write64(offset::STRTAB_BASE, strtab.strtab_base());
        regs.write32(offset::STRTAB_BASE_CFG, strtab.strtab_base_cfg());
        regs.write64(offset::CMDQ_BASE, cmdq.q_base());
        regs.write32(offset::CMDQ_PROD, 0);
        regs.write32(offset::CMDQ_CONS, 0);
        regs.write64(offset::EVENTQ_BASE, evtq.q_base());
        regs.write32(offset::EVENTQ_PROD, 0);
        regs.write32(offset::EVENTQ_CONS, 0);
        let queues = (CR0::CMDQEN::SET + CR0::EVENTQEN::SET).value;
        hw.write_cr0(queues)?;
        // Forget anything cached by a previous owner. TLBI_EL2_ALL is
        // ILLEGAL without IDR0.HYP (QEMU ignores it, hardware does not).
        let inv = [
            Command::cfgi_all(),
            Command::tlbi_nsnh_all(),
            Command::tlbi_el2_all(),
        ];
        let n = if features.hyp { 3 } else { 2 };
        cmdq.submit(&hw, &inv[..n], true)?;
        hw.write_cr0(queues | CR0::SMMUEN::SET.value)?;
        // The platform announces the SMMU (it knows its name).
        log::debug!(
            "SMMU: enabled, {} StreamID bits ({}), cmdq 2^{}, evtq 2^{}",
            strtab.sid_bits(),
            strtab.format(),
            cmdq.geometry().log2(),
            evtq.geometry().log2()
        );
        Ok(())
    }

    /// Failure after programming: disable, and free memory only if the SMMU
    /// confirmed it stopped using it.
    fn abandon(self) {
        if self.parts.hw().write_cr0(0).is_err() {
            log::error!("SMMU: disable not acknowledged; leaking its DMA memory");
            return;
        }
        let mem = &self.parts.mem;
        // SAFETY: CR0ACK confirms SMMUEN, CMDQEN and EVENTQEN are 0, so the
        // SMMU no longer reads the stream table or queues, and nothing else
        // refers to these regions once `self` is consumed.
        unsafe {
            mem.free(self.cmdq.into_region());
            mem.free(self.evtq.into_region());
        }
        // SAFETY: as above.
        self.strtab.into_regions(|r| unsafe { mem.free(r) });
    }

    pub fn features(&self) -> &Features {
        &self.features
    }

    /// StreamIDs below this value can be attached.
    pub fn sid_limit(&self) -> u64 {
        self.strtab.sid_limit()
    }

    pub fn stream_table_format(&self) -> StreamTableFormat {
        self.strtab.format()
    }

    pub fn fault_log(&self) -> &FaultLog<LOG> {
        &self.faults
    }

    pub fn fault_log_mut(&mut self) -> &mut FaultLog<LOG> {
        &mut self.faults
    }

    /// Makes the SMMU raise its wired event-queue interrupt whenever it
    /// writes an event record (SMMU_IRQ_CTRL.EVENTQ_IRQEN, waiting for
    /// IRQ_CTRLACK). The hyp takes no interrupts itself: the line is for
    /// whoever the platform routes it to (EL1, through the virtio-iommu
    /// device, `docs/virtio-iommu.md`). MSIs stay off: SMMU_EVENTQ_IRQ_CFG0
    /// gets address 0 first, which sends none (SMMUv3 "MSI
    /// configuration"; RES0 without SMMU_IDR0.MSI), and it may only be
    /// written while the interrupt is disabled.
    pub fn enable_event_interrupt(&mut self) -> Result<(), SmmuError> {
        let hw = self.parts.hw();
        hw.regs.write64(offset::EVENTQ_IRQ_CFG0, 0);
        hw.write_irq_ctrl(IRQ_CTRL::EVENTQ_IRQEN::SET.value)
    }

    pub fn counters(&self) -> Counters {
        Counters {
            cmdq: self.cmdq.stats(),
            evtq: self.evtq.stats(),
            fault_log_dropped: self.faults.dropped(),
            ..self.counters
        }
    }

    fn check_sid(&self, sid: u32) -> Result<(), SmmuError> {
        let limit = self.strtab.sid_limit();
        if u64::from(sid) >= limit {
            return Err(SmmuError::SidOutOfRange { sid, limit });
        }
        Ok(())
    }

    /// The STE currently in memory for `sid`; `None` if its level-2 table
    /// does not exist (the SMMU aborts that StreamID).
    pub fn read_ste(&self, sid: u32) -> Result<Option<Ste>, SmmuError> {
        self.check_sid(sid)?;
        Ok(self.strtab.read_ste(sid))
    }

    /// Points `sid` at a stage-2 translation. Replaces whatever `sid` had;
    /// see [`super::ste`] for the update order and its sync count.
    ///
    /// The caller owns VMID allocation: if `cfg.vmid` was used before by a
    /// different table, invalidate it (TLBI_S12_VMALL) before reusing it.
    pub fn attach_s2(&mut self, sid: u32, cfg: &S2Config) -> Result<SteUpdate, SmmuError> {
        self.check_sid(sid)?;
        let target = Ste::s2(cfg, &self.features)?;
        self.ensure_l2(sid)?;
        let update = self.update_ste(sid, &target)?;
        self.counters.attaches += 1;
        Ok(update)
    }

    /// Makes `sid` abort again. TLB entries of the domain stay valid for
    /// other StreamIDs using the same VMID; invalidate the VMID when the
    /// domain itself goes away.
    pub fn detach(&mut self, sid: u32) -> Result<SteUpdate, SmmuError> {
        self.check_sid(sid)?;
        if self.strtab.ste_location(sid).is_none() {
            // No level-2 table: already aborting.
            return Ok(SteUpdate {
                hitless: true,
                ..SteUpdate::default()
            });
        }
        let update = self.update_ste(sid, &Ste::ABORT)?;
        self.counters.detaches += 1;
        Ok(update)
    }

    fn ensure_l2(&mut self, sid: u32) -> Result<(), SmmuError> {
        let hw = self.parts.hw();
        if let Some((first, range)) = self.strtab.ensure_l2(&hw, sid)? {
            self.counters.l2_tables += 1;
            let cmd = Command::cfgi_ste_range(first, range)?;
            self.cmdq.submit(&hw, &[cmd], true)?;
        }
        Ok(())
    }

    fn update_ste(&mut self, sid: u32, target: &Ste) -> Result<SteUpdate, SmmuError> {
        let hw = self.parts.hw();
        let Self {
            cmdq,
            strtab,
            counters,
            ..
        } = self;
        let (region, offset) = strtab.ste_location(sid).ok_or(SmmuError::SidOutOfRange {
            sid,
            limit: strtab.sid_limit(),
        })?;
        let mut slot = DmaSte {
            hw: &hw,
            region,
            offset,
            sid,
            cmdq,
        };
        let update = write_ste(&mut slot, target)?;
        counters.ste_updates += 1;
        counters.ste_syncs += u64::from(update.syncs);
        if !update.hitless {
            counters.ste_breaking_updates += 1;
        }
        Ok(update)
    }

    /// Refuses anything that is not an invalidation this SMMU supports.
    fn check_invalidation(&self, cmd: &Command) -> Result<(), SmmuError> {
        let f = &self.features;
        let d0 = LocalRegisterCopy::<u64, CMD0::Register>::new(cmd.0[0]);
        let d1 = LocalRegisterCopy::<u64, CMD1::Register>::new(cmd.0[1]);
        let vmid_ok = f.vmid16 || d0.read(CMD0::VMID) <= 0xff;
        let ok = match cmd.opcode() {
            opcode::CFGI_STE | opcode::CFGI_STE_RANGE | opcode::TLBI_NSNH_ALL => true,
            opcode::TLBI_EL2_ALL => f.hyp,
            opcode::TLBI_S12_VMALL => vmid_ok,
            // The range/TTL form needs IDR3.RIL.
            opcode::TLBI_S2_IPA => vmid_ok && (f.ril || d1.read(CMD1::TG) == 0),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(SmmuError::CommandNotAllowed {
                opcode: cmd.opcode(),
            })
        }
    }

    /// Issues invalidation commands (CFGI_*, TLBI_*) as one batch ending in
    /// one CMD_SYNC, and waits for it. Nothing is issued if any command is
    /// refused.
    pub fn invalidate(&mut self, cmds: &[Command]) -> Result<(), SmmuError> {
        for cmd in cmds {
            self.check_invalidation(cmd)?;
        }
        self.counters.invalidate_batches += 1;
        self.submit(cmds, true)
    }

    /// Issues invalidation commands (CFGI_*, TLBI_*) without a sync: for a
    /// batch too large to hold at once, followed by one [`sync`](Self::sync).
    /// Nothing is issued if any command is refused.
    pub fn queue_invalidations(&mut self, cmds: &[Command]) -> Result<(), SmmuError> {
        for cmd in cmds {
            self.check_invalidation(cmd)?;
        }
        self.submit(cmds, false)
    }

    /// Waits until every command issued so far has completed.
    pub fn sync(&mut self) -> Result<(), SmmuError> {
        self.submit(&[], true)
    }

    fn submit(&mut self, cmds: &[Command], sync: bool) -> Result<(), SmmuError> {
        self.cmdq.submit(&self.parts.hw(), cmds, sync)
    }

    /// Issues commands without the invalidation filter, then a sync. Only
    /// for self-tests that prove the command-error recovery on real
    /// hardware: an illegal command must be reported and skipped.
    pub fn submit_unfiltered(&mut self, cmds: &[Command]) -> Result<(), SmmuError> {
        self.submit(cmds, true)
    }

    /// Moves pending event records into the fault log (at most
    /// `Budget::max_events_per_drain` per call) and handles global errors.
    /// Returns the number of records moved.
    pub fn drain_events(&mut self) -> Result<usize, SmmuError> {
        let drained = self.drain_some();
        Ok(drained + self.service_gerror()?)
    }

    fn drain_some(&mut self) -> usize {
        self.evtq.drain(
            &self.parts.hw(),
            &mut self.faults,
            self.max_events_per_drain,
        )
    }

    /// Handles active global errors (GERROR != GERRORN). Returns the number
    /// of event records drained while recovering the event queue.
    ///
    /// - CMDQ_ERR: the command queue recovery (see [`super::cmdq`]).
    /// - EVENTQ_ABT_ERR: an event record write aborted (QEMU: the queue was
    ///   full). Records before it are valid: drain them, then restart the
    ///   queue empty (EVENTQEN off, PROD = CONS = 0, EVENTQEN on) so the
    ///   queue state is known again, then acknowledge. Events raised while
    ///   the queue is off are lost.
    /// - SFM_ERR: Service Failure Mode; all traffic is terminated until the
    ///   SMMU is reset, which this driver does not do: reported as an error
    ///   every time (counted once), left unacknowledged.
    /// - PRIQ/MSI aborts: counted and acknowledged (neither is used).
    pub fn service_gerror(&mut self) -> Result<usize, SmmuError> {
        let hw = self.parts.hw();
        let regs = hw.regs;
        let active = regs.read32(offset::GERROR) ^ regs.read32(offset::GERRORN);
        if active == 0 {
            return Ok(0);
        }
        let Self {
            cmdq,
            evtq,
            faults,
            counters,
            max_events_per_drain,
            in_sfm,
            ..
        } = self;
        let mut ack = 0;
        let mut drained = 0;
        if active & CMDQ_ERR != 0 {
            counters.gerror.cmdq += 1;
            // Acknowledges CMDQ_ERR itself.
            cmdq.recover_error(&hw);
        }
        if active & EVENTQ_ABT_ERR != 0 {
            counters.gerror.evtq_abort += 1;
            log::error!("SMMU: event queue write aborted; restarting the event queue");
            drained += evtq.drain(&hw, faults, *max_events_per_drain);
            let cr0 = regs.read32(offset::CR0);
            hw.write_cr0(cr0 & !CR0::EVENTQEN::SET.value)?;
            regs.write32(offset::EVENTQ_PROD, 0);
            regs.write32(offset::EVENTQ_CONS, 0);
            evtq.reset_pointers();
            hw.write_cr0(cr0)?;
            counters.gerror.evtq_resets += 1;
            ack |= EVENTQ_ABT_ERR;
        }
        if active & OTHER_ERRS != 0 {
            counters.gerror.other += u64::from((active & OTHER_ERRS).count_ones());
            log::error!("SMMU: global error {:#x}", active & OTHER_ERRS);
            ack |= active & OTHER_ERRS;
        }
        if ack != 0 {
            let gerrorn = regs.read32(offset::GERRORN);
            regs.write32(offset::GERRORN, gerrorn ^ ack);
        }
        if active & SFM_ERR != 0 {
            if !*in_sfm {
                *in_sfm = true;
                counters.gerror.sfm += 1;
                log::error!("SMMU: Service Failure Mode");
            }
            return Err(SmmuError::ServiceFailureMode);
        }
        Ok(drained)
    }
}

/// DMA memory for register-only work: has none to give.
struct NoDma;

// SAFETY: never hands out memory.
unsafe impl DmaMemory for NoDma {
    fn alloc_zeroed(
        &self,
        _size: usize,
        _align: usize,
    ) -> Result<DmaRegion, crate::smmu::DmaError> {
        Err(crate::smmu::DmaError::Exhausted)
    }
    unsafe fn free(&self, _region: DmaRegion) {}
    fn clean_for_device(&self, _region: &DmaRegion, _offset: usize, _len: usize) {}
    fn invalidate_for_cpu(&self, _region: &DmaRegion, _offset: usize, _len: usize) {}
}

/// For an SMMU the driver refuses: makes its devices' traffic abort.
/// GBPA.ABORT first (with the UPDATE handshake), so that once disabled it
/// aborts instead of bypassing to physical memory, the reset state of many
/// parts (QEMU included); then SMMUEN = 0 (CR0 = 0, waiting for CR0ACK),
/// because GBPA applies only while SMMUEN = 0 and firmware may have left
/// the SMMU enabled with its own, often bypassing, stream table. The same
/// order as Linux's `arm_smmu_device_reset` for an SMMU found enabled. If
/// the GBPA update fails the SMMU is left as it was: disabling it then
/// could open the bypass. Writes nothing else.
pub fn abort_all_traffic<R: SmmuRegs, C: Clock>(
    regs: &R,
    clock: &C,
    poll: PollBudget,
) -> Result<(), SmmuError> {
    let hw = Hw {
        regs,
        mem: &NoDma,
        clock,
        poll,
        coherent: true,
    };
    hw.set_gbpa_abort()?;
    hw.write_cr0(0)
}

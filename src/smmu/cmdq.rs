//! The command queue: a single-producer ring in DMA memory that EL2 fills
//! and the SMMU drains.
//!
//! - Space: a batch waits for *n* free slots (index and wrap bit compared),
//!   never merely "not full", so a batch cannot overrun the consumer.
//! - Batching: commands are written first and PROD is published once per
//!   batch (or once per queue-full chunk if the batch is larger than the
//!   queue).
//! - Completion: a batch that asks for it ends with one CMD_SYNC (CS = none);
//!   it is complete when CONS has moved past the CMD_SYNC. No interrupt or
//!   MSI is involved, so this works before interrupts are wired.
//! - Every wait is bounded (see [`super::poll`]); a stuck SMMU yields
//!   `Timeout`, never a hang.
//! - Errors: GERROR.CMDQ_ERR stops the SMMU at the failing command with
//!   CONS pointing at it and CMDQ_CONS.ERR saying why. Software may not move
//!   CONS while the queue is enabled; it fixes the entry and acknowledges.
//!   Like Linux, a CERROR_ILL command is overwritten with a CMD_SYNC (legal
//!   anywhere, no effect) before GERRORN is toggled; CERROR_ABT (the fetch
//!   aborted) and CERROR_ATC_INV_SYNC are acknowledged so the SMMU retries.
//!   A replaced command is reported by the next completed sync as
//!   [`SmmuError::CommandFailed`], because it had no effect.

use core::fmt;

use tock_registers::LocalRegisterCopy;

use super::command::{Command, opcode};
use super::dma::{DmaMemory, DmaRegion};
use super::error::{SmmuError, WaitFor};
use super::hw::Hw;
use super::poll::Clock;
use super::queue::{QueueGeometry, QueueRing};
use super::regs::{CMDQ_CONS, GERROR, SmmuRegs, offset};

/// Bytes per command.
pub const CMD_BYTES: usize = 16;

/// CMDQ_CONS.ERR: why the SMMU stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdqError {
    /// CERROR_NONE (a spurious CMDQ_ERR).
    None,
    /// CERROR_ILL: unknown opcode, reserved field set, or a command this
    /// SMMU does not support.
    Illegal,
    /// CERROR_ABT: fetching the command from memory aborted.
    Abort,
    /// CERROR_ATC_INV_SYNC: an ATS invalidation did not complete.
    AtcInvSync,
    /// An implementation-defined code.
    Unknown(u8),
}

impl fmt::Display for CmdqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("CERROR_NONE"),
            Self::Illegal => f.write_str("CERROR_ILL"),
            Self::Abort => f.write_str("CERROR_ABT"),
            Self::AtcInvSync => f.write_str("CERROR_ATC_INV_SYNC"),
            Self::Unknown(code) => write!(f, "CERROR {code:#x}"),
        }
    }
}

impl CmdqError {
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::None,
            1 => Self::Illegal,
            2 => Self::Abort,
            3 => Self::AtcInvSync,
            other => Self::Unknown(other),
        }
    }
}

/// A command the SMMU rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandFailure {
    pub error: CmdqError,
    pub command: Command,
    /// CMDQ_CONS (index and wrap) when the error was seen.
    pub cons: u32,
}

impl fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at CONS {:#x}: {}",
            self.error, self.cons, self.command
        )
    }
}

/// Commands written to the queue, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandCounts {
    pub prefetch_config: u64,
    pub cfgi_ste: u64,
    pub cfgi_ste_range: u64,
    pub cfgi_all: u64,
    pub tlbi_nsnh_all: u64,
    pub tlbi_el2_all: u64,
    pub tlbi_s12_vmall: u64,
    pub tlbi_s2_ipa: u64,
    pub sync: u64,
    pub other: u64,
}

impl CommandCounts {
    fn count(&mut self, cmd: &Command) {
        let slot = match cmd.opcode() {
            opcode::PREFETCH_CONFIG => &mut self.prefetch_config,
            opcode::CFGI_STE => &mut self.cfgi_ste,
            opcode::CFGI_STE_RANGE if *cmd == Command::cfgi_all() => &mut self.cfgi_all,
            opcode::CFGI_STE_RANGE => &mut self.cfgi_ste_range,
            opcode::TLBI_NSNH_ALL => &mut self.tlbi_nsnh_all,
            opcode::TLBI_EL2_ALL => &mut self.tlbi_el2_all,
            opcode::TLBI_S12_VMALL => &mut self.tlbi_s12_vmall,
            opcode::TLBI_S2_IPA => &mut self.tlbi_s2_ipa,
            opcode::CMD_SYNC => &mut self.sync,
            _ => &mut self.other,
        };
        *slot += 1;
    }

    /// TLB invalidations of any kind.
    pub fn tlbis(&self) -> u64 {
        self.tlbi_nsnh_all + self.tlbi_el2_all + self.tlbi_s12_vmall + self.tlbi_s2_ipa
    }

    pub fn total(&self) -> u64 {
        self.prefetch_config
            + self.cfgi_ste
            + self.cfgi_ste_range
            + self.cfgi_all
            + self.tlbis()
            + self.sync
            + self.other
    }
}

/// CMDQ_ERR occurrences by CMDQ_CONS.ERR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmdqErrorCounts {
    pub illegal: u64,
    pub abort: u64,
    pub atc_inv_sync: u64,
    pub spurious: u64,
    pub unknown: u64,
}

impl CmdqErrorCounts {
    fn count(&mut self, e: CmdqError) {
        *match e {
            CmdqError::None => &mut self.spurious,
            CmdqError::Illegal => &mut self.illegal,
            CmdqError::Abort => &mut self.abort,
            CmdqError::AtcInvSync => &mut self.atc_inv_sync,
            CmdqError::Unknown(_) => &mut self.unknown,
        } += 1;
    }

    pub fn total(&self) -> u64 {
        self.illegal + self.abort + self.atc_inv_sync + self.spurious + self.unknown
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmdqStats {
    /// Commands written by the driver (not counting error replacements).
    pub issued: CommandCounts,
    /// PROD register writes (one per batch or per queue-sized chunk).
    pub publishes: u64,
    /// CMD_SYNCs seen complete.
    pub syncs_completed: u64,
    pub sync_timeouts: u64,
    pub space_timeouts: u64,
    pub errors: CmdqErrorCounts,
    /// Failed commands overwritten with CMD_SYNC.
    pub replaced: u64,
}

pub struct CommandQueue {
    ring: QueueRing,
    /// Our producer pointer (index and wrap); the SMMU has seen it once it
    /// is published.
    prod: u32,
    /// Last consistent CMDQ_CONS value read.
    cons: u32,
    stats: CmdqStats,
    /// First failure since the last completed sync.
    pending_error: Option<CommandFailure>,
}

const CMDQ_ERR_BIT: u32 = 1 << GERROR::CMDQ_ERR.shift;

impl CommandQueue {
    /// Allocates a queue of 2^log2 entries (clamped to the architectural
    /// maximum; alignment as in `QueueRing::new`).
    pub(crate) fn new<R, M: DmaMemory, C>(hw: &Hw<'_, R, M, C>, log2: u8) -> Result<Self, SmmuError>
    where
        R: SmmuRegs,
        C: Clock,
    {
        Ok(Self {
            ring: QueueRing::new(hw, log2, CMD_BYTES)?,
            prod: 0,
            cons: 0,
            stats: CmdqStats::default(),
            pending_error: None,
        })
    }

    /// SMMU_CMDQ_BASE value: address, LOG2SIZE and the read-allocate hint.
    pub fn q_base(&self) -> u64 {
        self.ring.q_base()
    }

    pub fn geometry(&self) -> QueueGeometry {
        self.ring.geo
    }

    pub fn stats(&self) -> CmdqStats {
        self.stats
    }

    pub(crate) fn into_region(self) -> DmaRegion {
        self.ring.region
    }

    fn write_entry(&self, slot: u32, cmd: Command) {
        let off = slot as usize * CMD_BYTES;
        self.ring.region.write_u64(off, cmd.0[0]);
        self.ring.region.write_u64(off + 8, cmd.0[1]);
    }

    fn read_entry(&self, slot: u32) -> Command {
        let off = slot as usize * CMD_BYTES;
        Command([
            self.ring.region.read_u64(off),
            self.ring.region.read_u64(off + 8),
        ])
    }

    /// Cleans `n` entries starting at pointer `first` (two ranges when the
    /// run wraps) for a non-coherent SMMU.
    fn clean_entries<R, M, C>(&self, hw: &Hw<'_, R, M, C>, first: u32, n: u32)
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let start = self.ring.geo.index(first);
        let head = n.min(self.ring.geo.entries() - start);
        hw.clean(
            &self.ring.region,
            start as usize * CMD_BYTES,
            head as usize * CMD_BYTES,
        );
        if head < n {
            hw.clean(&self.ring.region, 0, (n - head) as usize * CMD_BYTES);
        }
    }

    fn refresh_cons<R: SmmuRegs, M, C>(&mut self, hw: &Hw<'_, R, M, C>) {
        let cons = hw.regs.read32(offset::CMDQ_CONS) & self.ring.geo.ptr_mask();
        // A value that is not within one queue behind PROD cannot be right;
        // keep the last good one and let the wait time out if it persists.
        if self.ring.geo.consistent(self.prod, cons) {
            self.cons = cons;
        }
    }

    /// Handles GERROR.CMDQ_ERR if it is active.
    fn check_error<R, M, C>(&mut self, hw: &Hw<'_, R, M, C>)
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let active = hw.regs.read32(offset::GERROR) ^ hw.regs.read32(offset::GERRORN);
        if active & CMDQ_ERR_BIT != 0 {
            self.recover_error(hw);
        }
    }

    /// Recovers from an active GERROR.CMDQ_ERR (see the module comment) and
    /// acknowledges that bit alone.
    pub(crate) fn recover_error<R, M, C>(&mut self, hw: &Hw<'_, R, M, C>)
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let raw =
            LocalRegisterCopy::<u32, CMDQ_CONS::Register>::new(hw.regs.read32(offset::CMDQ_CONS));
        let cons = raw.get() & self.ring.geo.ptr_mask();
        if self.ring.geo.consistent(self.prod, cons) {
            self.cons = cons;
        }
        let error = CmdqError::from_code(raw.read(CMDQ_CONS::ERR) as u8);
        let slot = self.ring.geo.index(cons);
        let command = self.read_entry(slot);
        log::error!("SMMU: command queue error {error} at CONS {cons:#x}: {command}");
        match error {
            CmdqError::Illegal | CmdqError::Unknown(_) => {
                self.write_entry(slot, Command::sync());
                hw.clean(&self.ring.region, slot as usize * CMD_BYTES, CMD_BYTES);
                self.stats.replaced += 1;
                // The command will never take effect: tell the caller.
                if self.pending_error.is_none() {
                    self.pending_error = Some(CommandFailure {
                        error,
                        command,
                        cons,
                    });
                }
            }
            // The SMMU retries the fetch (ABT) or the sync (ATC_INV_SYNC)
            // once acknowledged; if it keeps failing, the wait times out.
            CmdqError::Abort | CmdqError::AtcInvSync | CmdqError::None => {}
        }
        self.stats.errors.count(error);
        // The MMIO write is ordered after the entry rewrite (see SmmuRegs).
        let gerrorn = hw.regs.read32(offset::GERRORN);
        hw.regs.write32(offset::GERRORN, gerrorn ^ CMDQ_ERR_BIT);
    }

    fn wait_for_space<R, M, C>(&mut self, hw: &Hw<'_, R, M, C>, n: u32) -> Result<(), SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        if self.ring.geo.free(self.prod, self.cons) >= n {
            return Ok(());
        }
        let r = hw.wait(WaitFor::CmdqSpace, || {
            self.refresh_cons(hw);
            if self.ring.geo.free(self.prod, self.cons) >= n {
                return Some(());
            }
            self.check_error(hw);
            None
        });
        if r.is_err() {
            self.stats.space_timeouts += 1;
        }
        r
    }

    /// Whether CONS has reached `target` (a pointer at or before PROD).
    fn reached(&self, target: u32) -> bool {
        self.ring.geo.used(self.prod, self.cons) <= self.ring.geo.used(self.prod, target)
    }

    fn wait_for_sync<R, M, C>(
        &mut self,
        hw: &Hw<'_, R, M, C>,
        sync_ptr: u32,
    ) -> Result<(), SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let after = self.ring.geo.advance(sync_ptr, 1);
        let r = hw.wait(WaitFor::CmdSync, || {
            self.refresh_cons(hw);
            if self.reached(after) {
                return Some(());
            }
            self.check_error(hw);
            None
        });
        match r {
            Ok(()) => self.stats.syncs_completed += 1,
            Err(_) => self.stats.sync_timeouts += 1,
        }
        r
    }

    /// Writes `cmds` (and a trailing CMD_SYNC if `sync`), publishing PROD
    /// once per chunk of at most a queue's worth, then waits for the sync.
    ///
    /// Returns `CommandFailed` if the SMMU rejected any command since the
    /// previous completed sync (the queue has been recovered by then).
    pub(crate) fn submit<R, M, C>(
        &mut self,
        hw: &Hw<'_, R, M, C>,
        cmds: &[Command],
        sync: bool,
    ) -> Result<(), SmmuError>
    where
        R: SmmuRegs,
        M: DmaMemory,
        C: Clock,
    {
        let total = cmds.len() + usize::from(sync);
        let cap = self.ring.geo.entries() as usize;
        let mut done = 0;
        let mut sync_ptr = None;
        while done < total {
            let n = (total - done).min(cap);
            self.wait_for_space(hw, n as u32)?;
            let first = self.prod;
            for k in done..done + n {
                let cmd = match cmds.get(k) {
                    Some(c) => *c,
                    None => {
                        sync_ptr = Some(self.prod);
                        Command::sync()
                    }
                };
                self.write_entry(self.ring.geo.index(self.prod), cmd);
                self.stats.issued.count(&cmd);
                self.prod = self.ring.geo.advance(self.prod, 1);
            }
            self.clean_entries(hw, first, n as u32);
            hw.regs.write32(offset::CMDQ_PROD, self.prod);
            self.stats.publishes += 1;
            done += n;
        }
        if let Some(ptr) = sync_ptr {
            self.wait_for_sync(hw, ptr)?;
            if let Some(failure) = self.pending_error.take() {
                return Err(SmmuError::CommandFailed(failure));
            }
        }
        Ok(())
    }
}

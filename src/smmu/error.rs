//! The driver's error type.

use core::fmt;

use super::cmdq::CommandFailure;
use super::command::CommandError;
use super::features::Unsupported;
use super::ste::S2ConfigError;

/// What a timed-out wait was waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// SMMU_CR0ACK to reflect a write to SMMU_CR0.
    Cr0Ack,
    /// SMMU_IRQ_CTRLACK to reflect a write to SMMU_IRQ_CTRL.
    IrqCtrlAck,
    /// SMMU_GBPA.UPDATE to clear.
    GbpaUpdate,
    /// Enough free command-queue slots for a batch.
    CmdqSpace,
    /// CMDQ_CONS to pass a CMD_SYNC.
    CmdSync,
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cr0Ack => "CR0ACK",
            Self::IrqCtrlAck => "IRQ_CTRLACK",
            Self::GbpaUpdate => "GBPA.UPDATE to clear",
            Self::CmdqSpace => "command queue space",
            Self::CmdSync => "CMD_SYNC",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmmuError {
    /// The SMMU lacks something this driver needs; nothing was programmed.
    Unsupported(Unsupported),
    /// DMA memory for a queue or table could not be allocated.
    OutOfMemory { size: usize, align: usize },
    /// The DMA allocator returned memory that breaks its contract
    /// (misaligned or too small). It was returned unused.
    BadAllocation { pa: u64, size: usize, align: usize },
    /// A bounded wait ran out of budget.
    Timeout(WaitFor),
    /// The StreamID is beyond the stream table.
    SidOutOfRange { sid: u32, limit: u64 },
    /// All level-2 stream-table slots the driver tracks are in use.
    TooManyL2Tables,
    /// The stage-2 configuration would give an ILLEGAL STE.
    InvalidS2Config(S2ConfigError),
    /// A command encoder refused its arguments.
    InvalidCommand(CommandError),
    /// `invalidate` only issues invalidation commands the SMMU supports.
    CommandNotAllowed { opcode: u8 },
    /// The SMMU rejected a command (CMDQ_ERR). The queue was recovered and
    /// the sync that reports this completed, but the command had no effect.
    CommandFailed(CommandFailure),
    /// GERROR.SFM_ERR: the SMMU entered Service Failure Mode and terminates
    /// all traffic until it is reset.
    ServiceFailureMode,
}

impl From<Unsupported> for SmmuError {
    fn from(e: Unsupported) -> Self {
        Self::Unsupported(e)
    }
}

impl From<S2ConfigError> for SmmuError {
    fn from(e: S2ConfigError) -> Self {
        Self::InvalidS2Config(e)
    }
}

impl From<CommandError> for SmmuError {
    fn from(e: CommandError) -> Self {
        Self::InvalidCommand(e)
    }
}

impl fmt::Display for SmmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(u) => write!(f, "unsupported SMMU: {u}"),
            Self::OutOfMemory { size, align } => {
                write!(f, "out of DMA memory ({size:#x} bytes, align {align:#x})")
            }
            Self::BadAllocation { pa, size, align } => write!(
                f,
                "DMA allocator broke its contract: pa {pa:#x} for {size:#x} bytes align {align:#x}"
            ),
            Self::Timeout(w) => write!(f, "timed out waiting for {w}"),
            Self::SidOutOfRange { sid, limit } => {
                write!(f, "StreamID {sid:#x} out of range (limit {limit:#x})")
            }
            Self::TooManyL2Tables => write!(f, "no free level-2 stream table slot"),
            Self::InvalidS2Config(e) => write!(f, "invalid stage-2 config: {e}"),
            Self::InvalidCommand(e) => write!(f, "invalid command: {e}"),
            Self::CommandNotAllowed { opcode } => write!(f, "command {opcode:#x} not allowed"),
            Self::CommandFailed(c) => write!(f, "SMMU rejected a command: {c}"),
            Self::ServiceFailureMode => write!(f, "SMMU in Service Failure Mode"),
        }
    }
}

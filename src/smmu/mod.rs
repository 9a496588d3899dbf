//! Arm SMMUv3 driver core owned by EL2 (see `docs/smmu.md`).
//!
//! Hardware-independent: the SMMU is reached through three small traits,
//! each with a real implementation for the target and an auditing fake for
//! host tests:
//! - [`regs::SmmuRegs`]: register access ([`regs::MmioRegs`] on hardware);
//! - [`dma::DmaMemory`]: memory for queues and tables, plus cache
//!   maintenance for non-coherent SMMUs;
//! - [`poll::Clock`]: time, so that every wait is bounded.
//!
//! [`driver::Smmu`] ties the pieces together; see `docs/smmu.md` for the
//! enable sequence, the STE update order, queue and error handling.

pub mod cmdq;
pub mod command;
pub mod dma;
pub mod driver;
pub mod error;
pub mod event;
pub mod evtq;
pub mod fault_log;
pub mod features;
mod hw;
pub mod poll;
pub mod queue;
pub mod regs;
pub mod ste;
pub mod strtab;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use cmdq::{CmdqError, CommandFailure};
pub use command::{Command, CommandError};
pub use dma::{DmaError, DmaMemory, DmaRegion};
pub use driver::{Budget, Counters, Smmu};
pub use error::{SmmuError, WaitFor};
pub use event::{Event, EventKind, FaultClass};
pub use fault_log::{FaultLog, OverflowPolicy};
pub use features::{Features, IdRegs, Unsupported};
pub use poll::{Clock, PollBudget, PollCountOnly};
pub use regs::{MmioRegs, SmmuRegs};
pub use ste::{S2Config, S2ConfigError, Ste, SteUpdate};
pub use strtab::StreamTableFormat;

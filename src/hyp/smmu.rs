//! The SMMUs the hyp owns: the driver core (`crate::smmu`) wired to the
//! hyp's page pool, the generic timer and the real registers.

use super::mem::PAGE_POOL;
use crate::arch::aarch64::cache;
use crate::platform::{MAX_SMMUS, Platform};
use crate::smmu::{Budget, Clock, DmaError, DmaMemory, DmaRegion, MmioRegs, Smmu, SmmuError};
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
use core::ptr::NonNull;

/// Queues and stream tables come from the hyp's page pool (identity mapped:
/// VA == PA), zeroed.
pub struct PoolDma;

// SAFETY: pool memory is normal, physically contiguous, exclusively ours
// until freed, identity mapped, and aligned as asked (`PagePool::alloc`).
unsafe impl DmaMemory for PoolDma {
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<DmaRegion, DmaError> {
        let range = PAGE_POOL
            .lock()
            .alloc(size as u64, align as u64)
            .map_err(|_| DmaError::Exhausted)?;
        let va = NonNull::new(range.start as *mut u8).ok_or(DmaError::Exhausted)?;
        // SAFETY: the pool just handed this range to us; it is mapped
        // read-write.
        unsafe { core::ptr::write_bytes(va.as_ptr(), 0, range.size as usize) };
        Ok(DmaRegion::new(range.start, va, range.size as usize))
    }

    unsafe fn free(&self, region: DmaRegion) {
        let range = crate::memmap::PhysRange::new(region.pa(), region.size() as u64);
        PAGE_POOL.lock().free(range, region.size() as u64);
    }

    fn clean_for_device(&self, region: &DmaRegion, offset: usize, len: usize) {
        cache::clean_to_poc(region.pa() + offset as u64, len as u64);
    }

    fn invalidate_for_cpu(&self, region: &DmaRegion, offset: usize, len: usize) {
        // Clean+invalidate: harmless for lines the CPU never wrote, and never
        // throws away a CPU write the way a bare invalidate could.
        cache::clean_invalidate_to_poc(region.pa() + offset as u64, len as u64);
    }
}

/// The generic timer's physical counter.
pub struct CounterClock;

impl Clock for CounterClock {
    fn now_ns(&self) -> u64 {
        let freq = CNTFRQ_EL0.get().max(1);
        (u128::from(CNTPCT_EL0.get()) * 1_000_000_000 / u128::from(freq)) as u64
    }
}

pub type HypSmmu = Smmu<MmioRegs, PoolDma, CounterClock>;

/// Every SMMU the hyp drives, by device-tree index; a slot stays empty for
/// an SMMU the driver refused. (Statics, not a collection built on the
/// stack: a driver instance is ~10 KiB.)
static SMMUS: [spin::Once<spin::Mutex<HypSmmu>>; MAX_SMMUS] =
    [const { spin::Once::new() }; MAX_SMMUS];

/// SMMU `index`, if the hyp drives it.
pub fn smmu(index: usize) -> Option<&'static spin::Mutex<HypSmmu>> {
    SMMUS.get(index)?.get()
}

/// An SMMU whose traffic could not be made to abort: its devices could
/// reach any physical address.
#[derive(Clone, Copy, Debug)]
pub struct NotAborting {
    pub index: usize,
    pub base: u64,
    pub error: SmmuError,
}

impl core::fmt::Display for NotAborting {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "smmu{} at {:#x} cannot be made to abort its devices' traffic ({}): they could \
             reach any memory",
            self.index, self.base, self.error
        )
    }
}

/// Makes every SMMU of the device tree abort all traffic (GBPA.ABORT, then
/// SMMUEN = 0: `driver::abort_all_traffic`), before anything else the hyp
/// does at boot: an SMMU may come out of reset in bypass, or firmware may
/// leave it enabled with its own tables, while a device the loader left
/// running still DMAs. Register accesses and a bounded wait only, so it
/// runs with the MMU off.
pub fn abort_all(platform: &Platform<'_>) -> Result<(), NotAborting> {
    for (index, node) in platform.smmus.iter().enumerate() {
        // SAFETY: the SMMU's frame from the device tree, reached physically
        // (the MMU is off) as device memory; no driver owns it yet.
        let regs = unsafe { MmioRegs::new(node.regs.start as usize) };
        crate::smmu::driver::abort_all_traffic(&regs, &CounterClock, Budget::DEFAULT.poll)
            .map_err(|error| NotAborting {
                index,
                base: node.regs.start,
                error,
            })?;
    }
    Ok(())
}

/// Probes every `arm,smmu-v3` in the device tree. An SMMU the driver cannot
/// use is reported and left aborting all its traffic (as [`abort_all`]
/// left it); the hyp keeps running. `Err` if such an SMMU cannot be made to
/// abort again after the driver gave it up.
pub fn probe_all(platform: &Platform<'_>) -> Result<(), NotAborting> {
    for (i, node) in platform.smmus.iter().enumerate() {
        // SAFETY: the SMMU's frame is in the identity map as device memory,
        // and only this driver programs it.
        let regs = unsafe { MmioRegs::new(node.regs.start as usize) };
        match Smmu::probe(regs, PoolDma, CounterClock, Budget::DEFAULT) {
            Ok(driver) => {
                let smmu = SMMUS[i].call_once(|| spin::Mutex::new(driver)).lock();
                log::info!("smmu{i}: {}", smmu.features());
                log::info!(
                    "smmu{i}: enabled, {} stream table, StreamIDs < {:#x}, every StreamID aborts",
                    smmu.stream_table_format(),
                    smmu.sid_limit()
                );
            }
            Err(e) => {
                log::error!("smmu{i}: not used: {e}");
                // The driver may have got as far as enabling it: its
                // devices must not reach memory through it either way.
                // SAFETY: as above; the driver did not take the SMMU.
                let regs = unsafe { MmioRegs::new(node.regs.start as usize) };
                crate::smmu::driver::abort_all_traffic(&regs, &CounterClock, Budget::DEFAULT.poll)
                    .map_err(|error| NotAborting {
                        index: i,
                        base: node.regs.start,
                        error,
                    })?;
                log::warn!("smmu{i}: disabled with GBPA.ABORT: its devices cannot DMA");
            }
        }
    }
    Ok(())
}

/// Whether every requester of the PCIe host bridge reaches an SMMU the hyp
/// drives (false without a bridge). Decides whether EL1 may use the bridge
/// at all (the host stage-2) and whether devices may be given its windows
/// (the DMA policy).
pub fn pcie_translated(platform: &Platform<'_>) -> bool {
    platform.pcie.as_ref().is_some_and(|host| {
        host.every_requester_translated(|phandle| {
            platform.smmu_by_phandle(phandle).and_then(smmu).is_some()
        })
    })
}

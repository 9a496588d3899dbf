//! Unmapping with reference counts dropped only after the sync.
//!
//! The pages an unmap removes may be released (their DMA reference
//! dropped) only once the invalidation and `CMD_SYNC` completed, but by
//! then the descriptors naming them are gone. So their physical runs are
//! collected from a walk *before* unmapping, in a fixed buffer of
//! [`MAX_RUNS`] runs (leaves with consecutive physical addresses share a
//! run, so a physically contiguous unmap is one run whatever its size;
//! MMIO leaves hold no references and are not collected).
//!
//! The range is walked in windows. Each window's leaves are added to the
//! buffer and the window is unmapped (the invalidations accumulate in the
//! engine's gather). When a leaf no longer fits, the range up to that
//! leaf is unmapped, then flushed (TLBIs + one CMD_SYNC per SMMU), then
//! its runs are released, and the walk goes on from that leaf. So an
//! unmap costs one sync per SMMU per [`MAX_RUNS`] discontiguous physical
//! runs, and exactly one for a contiguous one.
//!
//! Windows start at [`MAX_RUNS`] granules (which cannot overflow the
//! buffer) and double while the buffer has room, so a huge sparse range
//! costs a logarithmic number of walks, and the only wasted work is the
//! rest of the window in which the buffer fills.

use super::error::IommuError;
use crate::pgtable::{MemType, PageTable, TableMemory, UnmapFlags};
use crate::smmu::SmmuError;

/// Physical runs held before a flush.
pub const MAX_RUNS: usize = 128;

/// Physically contiguous runs of unmapped leaves.
pub struct PaRuns {
    runs: heapless::Vec<(u64, u64), MAX_RUNS>,
}

impl PaRuns {
    pub const fn new() -> Self {
        Self {
            runs: heapless::Vec::new(),
        }
    }

    /// Adds `[pa, pa + size)`, extending the last run when it continues
    /// it. `false` if it needs a new run and there is no room.
    pub fn push(&mut self, pa: u64, size: u64) -> bool {
        if let Some(last) = self.runs.last_mut()
            && last.0.checked_add(last.1) == Some(pa)
        {
            last.1 += size;
            return true;
        }
        self.runs.push((pa, size)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

impl Default for PaRuns {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`unmap_and_release`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Bytes unmapped before it stopped (their pages stay referenced if
    /// their flush did not complete).
    pub bytes: u64,
    pub error: IommuError,
}

/// Flushes, then releases the collected runs.
fn complete<M: TableMemory>(
    pt: &mut PageTable<M>,
    runs: &mut PaRuns,
    bytes: u64,
    flush: &mut dyn FnMut(&mut PageTable<M>) -> Result<(), SmmuError>,
    release: &mut dyn FnMut(u64, u64),
) -> Result<(), Stopped> {
    flush(pt).map_err(|e| Stopped {
        bytes,
        error: IommuError::Smmu(e),
    })?;
    for (pa, size) in runs.iter() {
        release(pa, size);
    }
    runs.clear();
    Ok(())
}

/// Unmaps every leaf in `[start, end)` and returns the bytes unmapped
/// (0: nothing was mapped, nothing changed, nothing was flushed).
///
/// Preconditions (checked by the caller): `start` and `end` are
/// granule-aligned and no leaf crosses either of them.
///
/// `flush` completes the invalidation of everything unmapped so far (TLBIs
/// and one CMD_SYNC per SMMU); `release` is then called for each physical
/// run removed. If a flush fails, the runs it covered are never released
/// (their pages stay pinned: leaking is safe, releasing a page a device
/// might still reach is not) and the error is returned.
pub fn unmap_and_release<M: TableMemory>(
    pt: &mut PageTable<M>,
    start: u64,
    end: u64,
    flush: &mut dyn FnMut(&mut PageTable<M>) -> Result<(), SmmuError>,
    release: &mut dyn FnMut(u64, u64),
) -> Result<u64, Stopped> {
    let granule = pt.config().granule().size();
    let base_window = MAX_RUNS as u64 * granule;
    let mut window = base_window;
    let mut runs = PaRuns::new();
    let mut cursor = start;
    let mut bytes = 0u64;
    while cursor < end {
        let wend = cursor.saturating_add(window).min(end);
        let mut full_at: Option<u64> = None;
        let mut last_end = cursor;
        let mut leaves = 0u64;
        pt.walk(cursor, wend, &mut |leaf| {
            if full_at.is_some() {
                return;
            }
            if leaf.prot.mem == MemType::Device {
                // MMIO holds no page references: nothing to release, and
                // it must not join a RAM run that ends where it starts (the
                // release of a run that is not all RAM does nothing).
                last_end = leaf.iova + leaf.size;
                leaves += 1;
            } else if runs.push(leaf.pa, leaf.size) {
                last_end = leaf.iova + leaf.size;
                leaves += 1;
            } else {
                full_at = Some(leaf.iova);
            }
        });
        // A leaf sticking out of the window was taken whole.
        let chunk_end = full_at.unwrap_or(wend.max(last_end)).min(end).max(cursor);
        if leaves > 0 {
            match pt.unmap(cursor, chunk_end - cursor, UnmapFlags::EXACT) {
                Ok(u) => bytes += u.bytes,
                Err(e) => {
                    // Cannot happen given the preconditions. This window's
                    // runs are mixed with earlier ones, so release nothing:
                    // complete what was unmapped and keep every collected
                    // page pinned.
                    let _ = flush(pt);
                    return Err(Stopped {
                        bytes,
                        error: e.into(),
                    });
                }
            }
        }
        cursor = chunk_end;
        if full_at.is_some() {
            complete(pt, &mut runs, bytes, flush, release)?;
            window = base_window;
        } else {
            window = window.saturating_mul(2);
        }
    }
    if !runs.is_empty() {
        complete(pt, &mut runs, bytes, flush, release)?;
    }
    Ok(bytes)
}

//! The GICv3 as a bus master, confined: every ITS control frame and every
//! redistributor region is put on the MMIO bus (so the host stage-2 traps
//! them) and emulated by [`crate::vdev::gic_its`] and
//! [`crate::vdev::gic_redist`] over the real registers, the page
//! ownership record and the hyp's page pool.

use super::mmio::Bus;
use super::smmu::PoolDma;
use crate::memmap::PhysRange;
use crate::platform::{
    Gic, GicVersion, MAX_GIC_MSI_FRAMES, MAX_GIC_REDISTRIBUTOR_REGIONS, Platform,
};
use crate::vdev::gic::{El1Memory, GicError, Redistributors, RegisterFrame};
use crate::vdev::gic_its::{self, Its};
use crate::vdev::gic_redist::RedistRegion;
use crate::vdev::{AccessSize, MmioDevice};
use core::fmt;

/// A GIC register frame in the EL2 identity map (Device-nGnRE).
pub struct DeviceFrame {
    base: u64,
    size: u64,
}

impl DeviceFrame {
    /// # Safety
    /// `[base, base + size)` is a GIC frame the EL2 identity map maps as
    /// device memory, for as long as the hyp runs.
    const unsafe fn new(range: PhysRange) -> Self {
        Self {
            base: range.start,
            size: range.size,
        }
    }

    /// The address of an access, if it lies inside the frame.
    fn at(&self, offset: u64, size: AccessSize) -> Option<u64> {
        let bytes = u64::from(size.bytes());
        let end = offset.checked_add(bytes)?;
        (end <= self.size && offset.is_multiple_of(bytes)).then_some(self.base + offset)
    }
}

impl RegisterFrame for DeviceFrame {
    fn read(&self, offset: u64, size: AccessSize) -> u64 {
        let Some(addr) = self.at(offset, size) else {
            return 0;
        };
        // SAFETY: inside the frame (checked), aligned to its size; `new`'s
        // contract makes it mapped device memory. One access of exactly
        // this size, as the GIC requires.
        unsafe {
            match size {
                AccessSize::Byte => u64::from((addr as *const u8).read_volatile()),
                AccessSize::Halfword => u64::from((addr as *const u16).read_volatile()),
                AccessSize::Word => u64::from((addr as *const u32).read_volatile()),
                AccessSize::Doubleword => (addr as *const u64).read_volatile(),
            }
        }
    }

    fn write(&self, offset: u64, size: AccessSize, value: u64) {
        let Some(addr) = self.at(offset, size) else {
            return;
        };
        // SAFETY: as for `read`.
        unsafe {
            match size {
                AccessSize::Byte => (addr as *mut u8).write_volatile(value as u8),
                AccessSize::Halfword => (addr as *mut u16).write_volatile(value as u16),
                AccessSize::Word => (addr as *mut u32).write_volatile(value as u32),
                AccessSize::Doubleword => (addr as *mut u64).write_volatile(value),
            }
        }
    }
}

/// EL1's RAM per the page ownership record (none at all if the record
/// could not be built: every table is then refused).
pub struct El1Ram;

// SAFETY: the ownership record answers for RAM only and marks every page
// EL2 keeps and every no-map page; the EL2 identity map maps all other RAM
// as normal memory (`layout::el2_ram`).
unsafe impl El1Memory for El1Ram {
    fn is_el1_ram(&self, start: u64, size: u64) -> bool {
        super::mem::ownership().is_some_and(|o| o.is_el1_ram(start, size))
    }

    unsafe fn read_u64(&self, pa: u64) -> u64 {
        // SAFETY: the caller passes an aligned address in a range
        // `is_el1_ram` accepted: identity-mapped RAM.
        unsafe { (pa as *const u64).read_volatile() }
    }
}

type HypIts = Its<DeviceFrame, El1Ram, PoolDma>;
type HypRedistributors = RedistRegion<DeviceFrame, El1Ram>;

static ITS: [spin::Once<HypIts>; MAX_GIC_MSI_FRAMES] =
    [const { spin::Once::new() }; MAX_GIC_MSI_FRAMES];
static REDISTRIBUTORS: [spin::Once<HypRedistributors>; MAX_GIC_REDISTRIBUTOR_REGIONS] =
    [const { spin::Once::new() }; MAX_GIC_REDISTRIBUTOR_REGIONS];

/// Why the GIC could not be confined.
#[derive(Clone, Copy, Debug)]
pub enum GicInitError {
    Gic(GicError),
    Bus(crate::vdev::bus::BusError),
}

impl fmt::Display for GicInitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gic(e) => write!(f, "{e}"),
            Self::Bus(e) => write!(f, "{e}"),
        }
    }
}

/// Takes over the GICv3's ITSs and redistributors and registers them on
/// `bus` (a GICv2 has no LPIs: nothing to do). Call after the ownership
/// record and the page pool exist, before the host stage-2 is built from
/// the bus.
pub fn init(platform: &Platform<'_>, bus: &mut Bus) -> Result<(), GicInitError> {
    let gic = &platform.gic;
    if gic.version != GicVersion::V3 {
        return Ok(());
    }
    let redistributors = take_redistributors(gic, bus)?;
    for (i, control) in gic.its.iter().enumerate() {
        let control = PhysRange::new(control.start, gic_its::CONTROL_FRAME_SIZE);
        // SAFETY: the ITS's frame is part of the GIC the identity map
        // maps as device memory.
        let frame = unsafe { DeviceFrame::new(control) };
        let its = Its::new(control.start, frame, El1Ram, PoolDma, &redistributors)
            .map_err(GicInitError::Gic)?;
        let its = ITS[i].call_once(|| its);
        register(bus, control, its)?;
    }
    log::info!(
        "gic: {} ITS control frame(s) and {} redistributor(s) emulated: EL1's LPI tables, ITS tables and commands are checked",
        gic.its.len(),
        redistributors.count()
    );
    Ok(())
}

/// Takes over every redistributor region; returns every redistributor.
fn take_redistributors(gic: &Gic, bus: &mut Bus) -> Result<Redistributors, GicInitError> {
    // SAFETY: GICD is part of the GIC the identity map maps as device
    // memory; GICD_TYPER is a read-only 32-bit register at 0x4.
    let gicd_typer =
        unsafe { DeviceFrame::new(gic.distributor) }.read(0x4, AccessSize::Word) as u32;
    let mut all = Redistributors::default();
    for (i, region) in gic.redistributors.iter().enumerate() {
        // SAFETY: a redistributor region of the GIC, mapped as device
        // memory by the identity map.
        let frame = unsafe { DeviceFrame::new(*region) };
        let r = RedistRegion::new(
            region.start,
            region.size,
            gic.redistributor_stride,
            frame,
            El1Ram,
            gicd_typer,
        )
        .map_err(GicInitError::Gic)?;
        let r = REDISTRIBUTORS[i].call_once(|| r);
        all.add(r.span(), r.first_processor())
            .map_err(GicInitError::Gic)?;
        register(bus, *region, r)?;
    }
    Ok(all)
}

fn register(
    bus: &mut Bus,
    range: PhysRange,
    device: &'static dyn MmioDevice,
) -> Result<(), GicInitError> {
    bus.register(range, device).map_err(GicInitError::Bus)
}

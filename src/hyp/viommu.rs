//! The virtio-iommu device on this machine (`docs/virtio-iommu.md`): the
//! library device (`crate::vdev::VirtioIommu`) over the IOMMU service, EL1
//! memory through the ownership record and EL2's identity map, and the
//! SMMU's event-queue SPI as its interrupt.
//!
//! The window is the board's (`VIRTIO_IOMMU_WINDOW` in
//! `board/<name>/board.rs`): a range chosen, per board, where the board's
//! device tree has nothing, so the device does not shadow real hardware.
//! The hyp checks only what it parses (RAM, its own MMIO, the hidden bus
//! masters, the PCIe host bridge; [`window_in_use`]): that the board
//! constant misses every other node (a UART, an RTC, a non-hidden
//! transport) is the board file's promise. The host stage-2 traps the
//! page that holds it and the MMIO bus calls the device. Requests are
//! served in the trapped `QueueNotify` store.
//!
//! Interrupts: the hyp takes none. The device's interrupt in EL1's tree is
//! the SMMU's own event-queue SPI, and the SMMU raises it
//! (`SMMU_IRQ_CTRL.EVENTQ_IRQEN`; QEMU pulses the wired line for every
//! record it writes, `hw/arm/smmuv3.c`, `smmuv3_trigger_irq`) whenever it
//! logs an event; Linux's handler then reads `InterruptStatus`, which is
//! where the device turns the SMMU's events into fault records. The
//! device's own interrupts (used event buffers after a kick, a
//! configuration change) make the same SPI pending through
//! `GICD_ISPENDR`; the distributor stays EL1's, no vGIC is needed.

use super::board;
use super::iommu::{Service, Tables};
use super::mem::IdentityMap;
use super::mmio::Bus;
use super::smmu::HypSmmu;
use crate::dt::el1_tree::El1Iommu;
use crate::mem::{PAGE_SIZE, PhysPolicy, forbidden_mmio};
use crate::memmap::PhysRange;
use crate::platform::Platform;
use crate::vdev::guest_memory::OwnedRam;
use crate::vdev::iommu_device::RequestStats;
use crate::vdev::iommu_wire::req_type;
use crate::vdev::mmio_transport::WINDOW_SIZE;
use crate::vdev::service_backend::ServiceBackend;
use crate::vdev::{InterruptLine, VirtioIommu};
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

/// An SPI made pending by a write to the distributor's `GICD_ISPENDR<n>`
/// (GICv3 architecture specification, "GICD_ISPENDR<n>": write-1-to-set,
/// so concurrent writers never lose each other's bits).
pub struct SpiLine {
    gicd: u64,
    intid: u32,
}

impl InterruptLine for SpiLine {
    fn raise(&self) {
        const ISPENDR: u64 = 0x200;
        let reg = self.gicd + ISPENDR + 4 * u64::from(self.intid / 32);
        // The device's writes to EL1's memory (used ring, fault records)
        // are observed before the interrupt, as Linux's `writel` orders a
        // device register write after normal memory.
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::OSHST);
        // SAFETY: GICD is part of the GIC the EL2 identity map maps as
        // device memory; ISPENDR<n> of an SPI is a 32-bit register inside
        // it (`intid` is below 1020, checked by `init`).
        unsafe { (reg as *mut u32).write_volatile(1 << (self.intid % 32)) };
    }
}

type Device =
    VirtioIommu<ServiceBackend<'static, HypSmmu, Tables>, OwnedRam<'static, IdentityMap>, SpiLine>;

static DEVICE: spin::Once<Device> = spin::Once::new();

/// The first SPI and the limit of SPI INTIDs (GICv3: 32..=1019).
const SPIS: core::ops::Range<u32> = 32..1020;

/// Builds the device and registers its window on `bus`, after the IOMMU
/// service and before the host stage-2 (which traps the bus's windows).
/// Returns what EL1's device tree must say, or why there is no device.
pub fn init(platform: &Platform<'_>, bus: &mut Bus) -> Result<El1Iommu<'static>, &'static str> {
    let base = board::VIRTIO_IOMMU_WINDOW.ok_or("the board names no window for it")?;
    let window = PhysRange::new(base, WINDOW_SIZE);
    let page = window.align_out(PAGE_SIZE);
    if window_in_use(platform, page) {
        return Err(
            "the board's window overlaps RAM, the hyp's MMIO, a hidden bus master or the PCIe bridge",
        );
    }
    let service: &'static Service = super::iommu::service().ok_or("no IOMMU service")?;
    let host = platform.pcie.as_ref().ok_or("no PCIe host bridge")?;
    // The SMMU the host bridge's iommu-map names first, if the hyp drives
    // it: the device stands for that one (endpoint ids are its StreamIDs).
    let (index, phandle) = host
        .iommu_map
        .iter()
        .find_map(|e| {
            let i = platform.smmu_by_phandle(e.iommu_phandle)?;
            super::smmu::smmu(i).map(|_| (i, e.iommu_phandle))
        })
        .ok_or("the PCIe iommu-map names no SMMU the hyp drives")?;
    let intid = platform.smmus[index]
        .irqs
        .iter()
        .find(|(name, _)| *name == "eventq")
        .map(|&(_, intid)| intid)
        .filter(|i| SPIS.contains(i))
        .ok_or("the SMMU has no eventq SPI")?;
    let streams: heapless::Vec<_, { crate::iommu::attach::MAX_STREAM_RANGES }> = host
        .iommu_map
        .iter()
        .filter(|e| e.iommu_phandle == phandle)
        .map(|e| crate::iommu::StreamRange {
            smmu: index,
            first: e.sid_base,
            count: e.length,
        })
        .take(crate::iommu::attach::MAX_STREAM_RANGES)
        .collect();
    let policy = PhysPolicy::for_platform(platform, super::smmu::pcie_translated(platform))
        .map_err(|_| "too many MMIO ranges for the DMA policy")?;
    let backend =
        ServiceBackend::new(service, index, &streams, policy.doorbells()).map_err(|e| {
            log::error!("virtio-iommu: {e}");
            "the IOMMU service cannot back it"
        })?;
    let tracker = super::mem::ownership().ok_or("no page ownership record")?;
    let irq = SpiLine {
        gicd: platform.gic.distributor.start,
        intid,
    };
    let device =
        VirtioIommu::new(backend, OwnedRam::new(tracker, IdentityMap), irq).map_err(|e| {
            log::error!("virtio-iommu: {e}");
            "the IOMMU service cannot back it"
        })?;
    let device = DEVICE.call_once(|| device.with_clock(|| CNTPCT_EL0.get()));
    bus.register(window, device)
        .map_err(|_| "its window overlaps another emulated device")?;
    super::smmu::smmu(index)
        .ok_or("no SMMU")?
        .lock()
        .enable_event_interrupt()
        .map_err(|e| {
            log::error!("smmu{index}: event interrupt: {e}");
            "the SMMU's event interrupt cannot be enabled"
        })?;
    log::info!(
        "virtio-iommu: at {window} for smmu{index}'s StreamIDs, interrupt: the SMMU's eventq SPI {}",
        intid - SPIS.start
    );
    Ok(El1Iommu::Virtio {
        window,
        smmu: phandle,
    })
}

/// Whether `page` overlaps what the hyp parsed from the device tree and
/// must not shadow: RAM, the hyp's own MMIO, the hidden bus masters, the
/// PCIe host bridge. Other nodes are not checked (the parser keeps no
/// list of every `reg`); the board's window constant must miss them.
fn window_in_use(platform: &Platform<'_>, page: PhysRange) -> bool {
    let pcie = platform.pcie.iter().flat_map(|p| {
        core::iter::once(p.ecam).chain(p.windows.iter().map(|w| PhysRange::new(w.cpu_addr, w.size)))
    });
    platform
        .ram
        .iter()
        .copied()
        .chain(forbidden_mmio(platform))
        .chain(platform.hidden.iter().copied())
        .chain(pcie)
        .any(|r| r.overlaps(&page))
}

/// Logs what the device served, with the average time in EL2 per MAP and
/// per UNMAP request (nanoseconds of the generic counter: under QEMU's
/// `-icount shift=0` one nanosecond is one instruction). Called with the
/// IOMMU counters when EL1 powers the machine off or resets it.
pub fn log_stats() {
    let Some(s) = DEVICE.get().map(Device::stats) else {
        return;
    };
    let freq = CNTFRQ_EL0.get().max(1);
    let avg_ns = |i: usize| {
        let n = s.count[i].max(1);
        (u128::from(s.ticks[i]) * 1_000_000_000 / u128::from(freq) / u128::from(n)) as u64
    };
    let map_ns = avg_ns(RequestStats::index(Some(req_type::MAP)));
    let unmap_ns = avg_ns(RequestStats::index(Some(req_type::UNMAP)));
    let [attach, detach, map, unmap, probe, other] = s.count;
    log::info!(
        "virtio-iommu: {} kicks; {attach} ATTACH, {detach} DETACH, {map} MAP ({map_ns} ns each in EL2), \
         {unmap} UNMAP ({unmap_ns} ns each), {probe} PROBE, {other} unanswerable; {} faults delivered",
        s.kicks,
        s.faults
    );
}

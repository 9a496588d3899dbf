//! The `edu` PCI device as seen from EL1: found by scanning every bus of
//! the host bridge's ECAM (on the root bus, behind root ports and switches
//! EL2 numbered at boot, or on an expander's root bus, which no bridge leads
//! to), its BAR0 (assigned by EL2 at boot) read from configuration space
//! and translated through the bridge's windows, its StreamID from the
//! device tree's `iommu-map` with the function's real bus number. Bus
//! mastering is the driver's to turn on (EL2 leaves it off).
//!
//! The device's 4 KiB buffer is reachable only by DMA, so data goes RAM ->
//! device -> RAM: [`DmaDevice::copy`] reads `len` bytes from one IOVA into
//! the device and writes them back out to another.

use qemu_edu::{self as edu, Edu, Timeout};
use smmu_hyp::pci::bus_master;
use smmu_hyp::pci::ecam::Ecam;
use smmu_hyp::pci::{Bdf, ConfigSpace, header};
use smmu_hyp::platform::Platform;

pub struct DmaDevice {
    edu: Edu,
    pub bdf: Bdf,
    /// CPU address of BAR0.
    pub bar0: u64,
    /// SMMU index (device-tree order, the ABI's index) and StreamID.
    pub smmu: u32,
    pub sid: u32,
}

/// The first `edu` function in bus order.
pub fn find(platform: &Platform<'_>) -> Option<DmaDevice> {
    let host = platform.pcie.as_ref()?;
    // SAFETY: the device tree's ECAM window for these buses; EL1 runs with
    // its MMU off, so it is reached as Device memory.
    let ecam = unsafe { Ecam::new(host.ecam.start, host.bus_start, host.bus_end) };
    let bdf = (host.bus_start..=host.bus_end)
        .flat_map(|bus| (0..32).map(move |dev| Bdf::new(bus, dev, 0)))
        .find(|&bdf| {
            let id = ecam.read32(bdf, header::VENDOR_DEVICE);
            id & 0xffff == u32::from(edu::VENDOR) && id >> 16 == u32::from(edu::DEVICE)
        })?;
    // EL2 enabled memory decoding and left bus mastering off: the driver
    // turns it on, for the device and the bridges above it, as Linux's
    // pci_set_master does.
    if ecam.read32(bdf, header::COMMAND) & header::COMMAND_MEMORY == 0 {
        return None;
    }
    bus_master::enable(&ecam, bdf, host.bus_start..=host.bus_end);
    let low = ecam.read32(bdf, header::BAR0);
    if low & header::BAR_IO != 0 {
        return None;
    }
    let mut bus_addr = u64::from(low & !0xf);
    if low & header::BAR_TYPE_MASK == header::BAR_TYPE_64 {
        bus_addr |= u64::from(ecam.read32(bdf, header::BAR0 + 4)) << 32;
    }
    let bar0 = host
        .windows
        .iter()
        .find(|w| (w.pci_addr..w.pci_addr + w.size).contains(&bus_addr))
        .map(|w| bus_addr - w.pci_addr + w.cpu_addr)?;
    let (phandle, sid) = host.stream_id(bdf.rid())?;
    let smmu = platform.smmu_by_phandle(phandle)? as u32;
    // SAFETY: BAR0 of an edu function with memory decoding on, reached
    // physically (MMU off) as Device memory.
    let edu = unsafe { Edu::new(bar0) };
    Some(DmaDevice {
        edu,
        bdf,
        bar0,
        smmu,
        sid,
    })
}

impl DmaDevice {
    /// A device write: `len` bytes of the device buffer (from offset 0) to
    /// `iova`.
    pub fn write_to(&self, iova: u64, len: u64) -> Result<(), Timeout> {
        self.edu.write_to(iova, 0, len)
    }

    /// A device read: `len` bytes from `iova` into the device buffer (at
    /// offset 0).
    pub fn read_from(&self, iova: u64, len: u64) -> Result<(), Timeout> {
        self.edu.read_from(iova, 0, len)
    }

    /// Reads `len` bytes at `src` and writes them to `dst`, both IOVAs.
    pub fn copy(&self, src: u64, dst: u64, len: u64) -> Result<(), Timeout> {
        self.read_from(src, len)?;
        self.write_to(dst, len)
    }
}

impl core::fmt::Display for DmaDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} BAR0 {:#x}, StreamID {:#x} behind smmu{}",
            self.bdf, self.bar0, self.sid, self.smmu
        )
    }
}

/// The check every DMA suite starts with.
pub fn check_found(report: &mut crate::report::Report, dev: &Option<DmaDevice>) -> bool {
    match dev {
        Some(d) => report.check("found the edu DMA device", true, format_args!("{d}")),
        None => report.check(
            "found the edu DMA device",
            false,
            format_args!("no usable edu function on the PCIe bus"),
        ),
    }
}

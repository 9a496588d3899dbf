//! The primary CPU's boot, from the first Rust instruction to EL1.

use super::mem::PAGE_POOL;
use super::{CONFIG, RunConfig, board, payload};
use crate::arch::aarch64::{self, el1, image, mmu};
use crate::bootargs::{self, IommuFrontDoor};
use crate::console;
use crate::dt::el1_tree::{El1Iommu, PvIommu};
use crate::layout::{BootLayout, CpuStacks};
use crate::mem::{PAGE_SIZE, forbidden_mmio};
use crate::memmap::{PhysRange, RangeSet};
use crate::multiboot;
use crate::pci::bus_master;
use crate::pci::ecam::Ecam;
use crate::pci::enumerate::{Function, MAX_FUNCTIONS, enumerate};
use crate::platform::{self, MAX_SMMUS, Platform};
use crate::stage1::{IdMap, Kind, Table};
use core::fmt;

/// Pages the hyp keeps for itself at boot, unless `hyp_mem=<MiB>` says
/// otherwise: page tables, stream tables, queues, ownership records.
const DEFAULT_POOL_MIB: u64 = 32;
/// Tables for the EL2 identity map: a few per discontiguous region.
const ID_MAP_TABLES: usize = 64;

/// The EL2 identity map's tables. Written once, by the primary CPU, before
/// any other CPU runs.
static mut ID_MAP: [Table; ID_MAP_TABLES] = [const { Table::EMPTY }; ID_MAP_TABLES];

/// The PCI functions found at boot, with their BARs assigned.
pub static PCI_FUNCTIONS: spin::Once<heapless::Vec<Function, MAX_FUNCTIONS>> = spin::Once::new();

/// The host bridge's configuration space, once it is mapped.
pub static PCI_CONFIG: spin::Once<Ecam> = spin::Once::new();

/// The boot memory layout; [`BootLayout::el2_owned`] is memory that must
/// never be handed to EL1 or mapped for a device.
pub static LAYOUT: spin::Once<BootLayout> = spin::Once::new();

/// Reports a failure that happens before the console exists (MMU off, on
/// the board's early UART) and ends the run like every boot failure.
fn fail_early(what: fmt::Arguments<'_>) -> ! {
    console::emergency_print(format_args!("hyp: boot failed: {what}\n"));
    super::end_run(crate::exit::BOOT_FAILURE)
}

fn fail(what: fmt::Arguments<'_>) -> ! {
    log::error!("boot failed: {what}");
    super::end_run(crate::exit::BOOT_FAILURE)
}

/// The device tree at `dtb_pa`, as a byte slice of its declared size.
fn device_tree(dtb_pa: u64) -> Option<&'static [u8]> {
    if dtb_pa == 0 || !dtb_pa.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot protocol puts a DTB at `dtb_pa`; its header is read
    // first and its declared size bounds the slice.
    let header = unsafe { &*(dtb_pa as *const [u8; 8]) };
    let size = platform::dtb_total_size(header)?;
    // SAFETY: as above; the loader placed `size` bytes there.
    Some(unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, size) })
}

/// Builds the EL2 identity map: RAM but no-map reserved memory, the image
/// by permission, every CPU's stack, and the MMIO the hyp drives. Stack
/// guard pages stay unmapped. Returns the root table's address and the
/// number of tables used.
fn build_id_map(
    platform: &Platform<'_>,
    image: &image::ImageLayout,
    stacks: &CpuStacks,
) -> Result<(u64, usize), crate::stage1::MapError> {
    // SAFETY: only the primary CPU runs, once, before the MMU is on; nothing
    // else refers to the tables.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(ID_MAP) };
    let mut map = IdMap::new(tables)?;
    map.map(image.text, Kind::Text)?;
    map.map(image.rodata, Kind::ReadOnly)?;
    map.map(image.data, Kind::ReadWrite)?;
    map.map(image.boot_stack, Kind::ReadWrite)?;
    for stack in stacks.stacks() {
        map.map(stack, Kind::ReadWrite)?;
    }
    // The rest of RAM (the image and the stacks are mapped above, without
    // their guard pages), but no-map reserved memory.
    let ram: RangeSet<{ platform::MAX_RAM_REGIONS + platform::MAX_RESERVED + 2 }> =
        crate::layout::el2_ram(platform, &[image.whole, stacks.region])
            .map_err(|_| crate::stage1::MapError::BadRange)?;
    for part in ram.iter() {
        map.map(*part, Kind::ReadWrite)?;
    }
    let pcie = platform.pcie.iter().flat_map(|p| {
        core::iter::once(p.ecam).chain(p.windows.iter().map(|w| PhysRange::new(w.cpu_addr, w.size)))
    });
    // The early UART keeps crash reports printable until the console
    // exists; it is usually the device tree's UART itself.
    let early_uart = board::EARLY_UART
        .map(|base| PhysRange::new(base, PAGE_SIZE))
        .filter(|u| platform.uart.is_none_or(|dt| !dt.overlaps(u)));
    for device in forbidden_mmio(platform).chain(early_uart).chain(pcie) {
        map.map(device.align_out(PAGE_SIZE), Kind::Device)?;
    }
    Ok((map.root_pa(), map.tables_used()))
}

fn banner(platform: &Platform<'_>, layout: &BootLayout) {
    log::info!(
        "smmu-hyp {} (board {}) at CurrentEL = {}",
        env!("CARGO_PKG_VERSION"),
        env!("BOARD_NAME"),
        aarch64::current_el()
    );
    log::info!(
        "machine: {}, {} CPU(s)",
        platform.model,
        platform.cpus.len()
    );
    for r in platform.ram.iter() {
        log::info!("memory: {} ({} MiB)", r, r.size >> 20);
    }
    log::info!(
        "hyp image {} + page pool {} ({} MiB)",
        layout.image,
        layout.pool,
        layout.pool.size >> 20
    );
    for (i, smmu) in platform.smmus.iter().enumerate() {
        log::info!(
            "smmu{i}: SMMUv3 at {:#x} (size {:#x})",
            smmu.regs.start,
            smmu.regs.size
        );
    }
    match &platform.pcie {
        Some(p) => log::info!(
            "pcie: ECAM at {:#x}, buses {}..={}",
            p.ecam.start,
            p.bus_start,
            p.bus_end
        ),
        None => log::info!("pcie: none"),
    }
    match platform.psci {
        Some(conduit) => log::info!("psci: {conduit}; bootargs: \"{}\"", platform.bootargs),
        None => log::info!("psci: none; bootargs: \"{}\"", platform.bootargs),
    }
}

/// Enumerates the host bridge's buses, numbering bridges and assigning
/// BARs and windows, and logs each function with the SMMU and StreamID its
/// requester ID reaches.
fn scan_pci(platform: &Platform<'_>) {
    let Some(host) = &platform.pcie else { return };
    let ecam = PCI_CONFIG.call_once(|| {
        // SAFETY: the ECAM window is in the identity map as device memory.
        unsafe { Ecam::new(host.ecam.start, host.bus_start, host.bus_end) }
    });
    let functions = PCI_FUNCTIONS.call_once(|| {
        let mut found = heapless::Vec::new();
        let scanned = enumerate(
            ecam,
            host.bus_start,
            host.bus_end,
            &host.windows,
            &mut found,
        );
        if let Err(e) = scanned {
            log::error!("pci: enumeration stopped: {e}");
        }
        found
    });
    for f in functions {
        let route = host
            .stream_id(f.bdf.rid())
            .and_then(|(phandle, sid)| Some((platform.smmu_by_phandle(phandle)?, sid)));
        match (f.bridge, route) {
            (Some(b), _) => log::info!(
                "pci {} [{:04x}:{:04x}] bridge to buses {:02x}..={:02x}",
                f.bdf,
                f.vendor,
                f.device,
                b.secondary,
                b.subordinate
            ),
            (None, Some((smmu, sid))) => log::info!(
                "pci {} [{:04x}:{:04x}] -> smmu{smmu} StreamID {sid:#x}",
                f.bdf,
                f.vendor,
                f.device
            ),
            (None, None) => log::info!(
                "pci {} [{:04x}:{:04x}] (not behind an SMMU)",
                f.bdf,
                f.vendor,
                f.device
            ),
        }
        for bar in &f.bars {
            log::debug!(
                "pci {}   BAR{} at {:#x} ({:#x} bytes)",
                f.bdf,
                bar.index,
                bar.address,
                bar.size
            );
        }
    }
}

/// Turns bus mastering off on every function of a host bridge whose
/// requesters do not all reach an SMMU the hyp drives: EL1 never gets that
/// bridge (the host stage-2 hides it), and whatever firmware left running
/// there stops issuing requests.
fn stop_untranslated_bus_masters(platform: &Platform<'_>) {
    let (Some(ecam), Some(functions)) = (PCI_CONFIG.get(), PCI_FUNCTIONS.get()) else {
        return;
    };
    if super::smmu::pcie_translated(platform) {
        return;
    }
    bus_master::disable(ecam, functions.iter().map(|f| f.bdf));
    log::warn!(
        "pci: bus mastering off on all {} function(s): not every requester ID reaches an SMMU the hyp drives",
        functions.len()
    );
}

/// Sets up the IOMMU front door `iommu=` asks for (see
/// [`IommuFrontDoor`]) and returns what EL1's device tree must say. A
/// front door that cannot be set up leaves EL1 without an IOMMU: its
/// devices behind the SMMUs cannot DMA, which is safe.
/// `pv` holds the paravirtual IOMMU nodes' SMMUs (`iommu=pv`).
fn front_door<'p>(
    platform: &Platform<'_>,
    bus: &mut super::mmio::Bus,
    pv: &'p mut heapless::Vec<PvIommu, MAX_SMMUS>,
) -> El1Iommu<'p> {
    let none = "EL1's devices behind the SMMU cannot DMA";
    match bootargs::iommu_front_door(platform.bootargs) {
        Ok(IommuFrontDoor::Virtio) => super::viommu::init(platform, bus).unwrap_or_else(|why| {
            log::error!("iommu=virtio: no virtio-iommu ({why}): {none}");
            El1Iommu::None
        }),
        Ok(IommuFrontDoor::Pv) => {
            *pv = super::iommu::pv_iommus(platform);
            if pv.is_empty() {
                log::error!("iommu=pv: no SMMU the hyp drives: {none}");
                return El1Iommu::None;
            }
            for p in pv.iter() {
                log::info!("pv-iommu: smmu{} as a paravirtual IOMMU node", p.smmu);
            }
            El1Iommu::Pv(pv)
        }
        Ok(IommuFrontDoor::None) => {
            log::info!("iommu=none: {none}");
            El1Iommu::None
        }
        Err(other) => {
            log::error!("iommu={other}: unknown (virtio, pv or none): {none}");
            El1Iommu::None
        }
    }
}

/// The first Rust code on the primary CPU; `dtb_pa` is what the boot loader
/// passed in x0; `e2h_stuck`: `boot.S` could not clear HCR_EL2.E2H.
pub fn start(dtb_pa: u64, e2h_stuck: bool) -> ! {
    if let Some(uart) = board::EARLY_UART {
        // SAFETY: the board file names the UART that firmware left usable;
        // with the MMU off its physical address is reachable, and after it
        // the identity map keeps it.
        unsafe { console::set_early(uart) };
    }
    let Some(dtb) = device_tree(dtb_pa) else {
        fail_early(format_args!("no device tree at {dtb_pa:#x} (x0)"))
    };
    // Known before the full parse, so that its failures end the run too.
    super::set_semihosting(
        platform::chosen_bootargs(dtb).is_some_and(|a| bootargs::flag(a, "semihosting")),
    );
    if e2h_stuck {
        fail_early(format_args!(
            "this CPU runs EL2 only with HCR_EL2.E2H = 1 (VHE); the hyp uses the E2H = 0 layout"
        ))
    }
    let platform = Platform::parse_hiding(dtb, dtb_pa, board::HIDDEN_BUS_MASTERS)
        .unwrap_or_else(|e| fail_early(format_args!("{e}")));
    // EL1 gets the tree's CPU nodes as they are: it must not be able to
    // start one except through the PSCI calls the hyp intercepts.
    platform
        .check_cpus_start_through_psci()
        .unwrap_or_else(|e| fail_early(format_args!("{e}")));
    // Before the hyp writes anything a device could overwrite (tables,
    // pool) and before it touches PCI: no DMA reaches memory past an SMMU.
    super::smmu::abort_all(&platform).unwrap_or_else(|e| fail_early(format_args!("{e}")));
    let modules = multiboot::parse(dtb).unwrap_or_else(|e| fail_early(format_args!("{e}")));
    let image = image::layout();
    let pool_mib = bootargs::value(platform.bootargs, "hyp_mem")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_POOL_MIB);
    let layout = BootLayout::new(&platform, image.whole, pool_mib << 20, modules.ranges())
        .unwrap_or_else(|e| fail_early(format_args!("{e}")));
    let (root, id_map_tables) = build_id_map(&platform, &image, &layout.stacks)
        .unwrap_or_else(|e| fail_early(format_args!("identity map: {e}")));
    let mmu_registers = mmu::registers(root);
    // SAFETY: the map covers the image (this code, its stack, its data),
    // RAM and the devices used from here on; everything written so far with
    // the MMU off lies in the image.
    unsafe { mmu::enable(&mmu_registers, image.whole) };

    // Atomics (locks) are usable from here: memory is normal and cacheable.
    let config = CONFIG.call_once(|| RunConfig {
        psci: platform.psci,
        gic: platform.gic.version,
    });
    if let Some(uart) = platform.uart.map(|u| u.start).or(board::EARLY_UART) {
        // SAFETY: the UART is in the identity map as device memory.
        unsafe { console::init(uart) };
    }
    console::init_logger(bootargs::log_level(platform.bootargs));
    banner(&platform, &layout);

    // SAFETY: the pool's pages are RAM that BootLayout keeps out of every
    // other use (the stacks are not among them), mapped read-write at
    // their physical address.
    unsafe { PAGE_POOL.lock().add(layout.pages()) };
    log::debug!(
        "EL2 identity map: {id_map_tables} tables; page pool: {} KiB; {} CPU stack(s) at {}",
        PAGE_POOL.lock().total_bytes() >> 10,
        layout.stacks.count,
        layout.stacks.region
    );
    let boot_cpu = super::cpus::init(&platform.cpus, aarch64::mpidr())
        .unwrap_or_else(|e| fail(format_args!("{e}")));
    super::cpus::publish_boot_data(mmu_registers, &layout.stacks);
    let tree_bytes = crate::dt::reader::Fdt::new(dtb).map_or(0, |f| f.content_bytes());
    let heap = super::heap::size_for_tree(tree_bytes as u64);
    if super::heap::init(heap).is_none() {
        fail(format_args!(
            "no {} KiB in the page pool for the boot heap",
            heap >> 10
        ));
    }

    scan_pci(&platform);
    super::smmu::probe_all(&platform).unwrap_or_else(|e| fail(format_args!("{e}")));
    stop_untranslated_bus_masters(&platform);
    let layout = LAYOUT.call_once(|| layout);
    if let Err(e) = super::mem::init_ownership(&platform, layout) {
        log::error!("mem: no page ownership record: {e}");
    }
    super::iommu::init(&platform);

    let mut bus = super::mmio::Bus::new();
    super::gic::init(&platform, &mut bus)
        .unwrap_or_else(|e| fail(format_args!("the GIC cannot be confined: {e}")));
    let mut pv_iommus = heapless::Vec::new();
    let el1_iommu = front_door(&platform, &mut bus, &mut pv_iommus);
    super::mmio::publish(bus);
    super::host_s2::init(&platform)
        .unwrap_or_else(|e| fail(format_args!("EL1 cannot be confined: {e}")));

    if let Some(test) = bootargs::value(platform.bootargs, "test") {
        super::run_selftest(test);
    }

    let Some(kernel) = modules.kernel else {
        fail(format_args!(
            "no EL1 payload: pass the kernel as a multiboot,kernel module in /chosen (QEMU: -device guest-loader,kernel=...)"
        ))
    };
    let loaded =
        payload::load_kernel(kernel.image, layout).unwrap_or_else(|e| fail(format_args!("{e}")));
    let el1_dtb = payload::write_el1_tree(dtb, &modules, loaded, layout, el1_iommu)
        .unwrap_or_else(|e| fail(format_args!("{e}")));
    log::info!("entering EL1 at {:#x}", loaded.start);
    // Cannot fail: `cpus::init` found the boot CPU among the stacks' CPUs.
    let stack = layout
        .stacks
        .top(boot_cpu)
        .unwrap_or_else(|| fail(format_args!("no stack")));
    let stage2 = super::host_s2::install_on_this_cpu();
    // SAFETY: the kernel and its device tree are in place and cleaned; from
    // here this CPU runs on its own stack from the pool, and nothing on the
    // boot stack is used after the jump; the host stage-2 is complete and
    // installed.
    unsafe { el1::enter(loaded.start, el1_dtb, stack, stage2, config.gic) }
}

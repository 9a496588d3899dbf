//! A GICv3 redistributor region (every redistributor in one `reg` entry
//! of the GIC's device-tree node), emulated so that EL1 cannot make a
//! redistributor read or write LPI tables outside EL1's RAM.
//!
//! A redistributor with LPIs enabled (`GICR_CTLR.EnableLPIs`) reads the
//! LPI configuration table at `GICR_PROPBASER` (one byte per LPI:
//! priority and enable) and reads and writes the LPI pending table at
//! `GICR_PENDBASER` (one bit per interrupt ID). Neither holds an address,
//! so both may live in EL1's RAM; they must not live anywhere else. The
//! rules (see `docs/gic.md`):
//!
//! * `GICR_CTLR.EnableLPIs` is set only if the configuration table
//!   (2^IDbits - 8192 bytes) and the pending table (2^IDbits / 8 bytes)
//!   are EL1's RAM, with IDbits the smaller of `GICR_PROPBASER.IDbits`
//!   and `GICD_TYPER.IDbits` (plus one); otherwise the bit is dropped
//!   from the write.
//! * `GICR_PROPBASER` and `GICR_PENDBASER` writes are dropped while LPIs
//!   are enabled or still being disabled (`GICR_CTLR.RWP`): the
//!   architecture makes them UNPREDICTABLE then.
//! * A `GICR_PROPBASER` write is also dropped unless its configuration
//!   table is EL1's RAM: redistributors may share one configuration table
//!   (`GICR_TYPER.CommonLPIAff`), so a value written on one redistributor
//!   may be used for another's LPIs.
//! * GICv4 `GICR_VPROPBASER` and `GICR_VPENDBASER` writes are dropped: the
//!   hyp gives EL1 no virtual LPIs.
//!
//! Every other access to an architected register passes through; the
//! rest of each redistributor's frames (IMPLEMENTATION DEFINED registers,
//! reserved offsets, padding up to the device tree's
//! `redistributor-stride`) reads as zero and ignores writes. One lock per
//! region serialises the checks against writes from other CPUs.

use super::AccessSize;
use super::gic::{
    BOOT_POLLS, El1Memory, GicError, RedistributorSpan, Refusal, Refusals, RegisterFrame,
    check_access, merge, table_is_el1_ram,
};

/// Register offsets from a redistributor's base (IHI 0069,
/// "Redistributor register map"). Each redistributor is an RD_base
/// frame, an SGI_base frame 64 KiB above it and, with GICv4, a VLPI_base
/// frame 128 KiB above it (and a reserved fourth one).
pub mod reg {
    use crate::vdev::gic::Width::{Bytes, Doubleword, Word};
    use crate::vdev::gic::{RegisterMap, Width};

    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0008;
    pub const WAKER: u64 = 0x0014;
    pub const PROPBASER: u64 = 0x0070;
    pub const PENDBASER: u64 = 0x0078;
    pub const SGI_BASE: u64 = 0x1_0000;
    pub const VLPI_BASE: u64 = 0x2_0000;
    pub const VPROPBASER: u64 = VLPI_BASE + 0x70;
    pub const VPENDBASER: u64 = VLPI_BASE + 0x78;

    /// The architected registers of the RD_base and SGI_base frames
    /// (IHI 0069, "The GIC Redistributor register map" and "SGI and PPI
    /// Redistributor register map"), the `<n>E` registers of the extended
    /// PPI range and GICv3.3's NMI registers included. Linux's
    /// `irq-gic-v3.c` and `irq-gic-v3-its.c` use no other offset.
    const REGISTERS: [(core::ops::Range<u64>, Width); 21] = [
        (0x0000..0x0008, Word),       // GICR_CTLR, GICR_IIDR
        (0x0008..0x0010, Doubleword), // GICR_TYPER
        // GICR_STATUSR, GICR_WAKER, GICR_MPAMIDR, GICR_PARTIDR
        (0x0010..0x0020, Word),
        (0x0040..0x0050, Doubleword), // GICR_SETLPIR, GICR_CLRLPIR
        (0x0070..0x0080, Doubleword), // GICR_PROPBASER, GICR_PENDBASER
        (0x00a0..0x00a8, Doubleword), // GICR_INVLPIR
        (0x00b0..0x00b8, Doubleword), // GICR_INVALLR
        (0x00c0..0x00c4, Word),       // GICR_SYNCR
        // Identification registers (GICR_PIDR2: the architecture version).
        (0xffd0..0x1_0000, Word),
        (SGI_BASE + 0x0080..SGI_BASE + 0x008c, Word), // GICR_IGROUPR0, <n>E
        (SGI_BASE + 0x0100..SGI_BASE + 0x010c, Word), // GICR_ISENABLER0, <n>E
        (SGI_BASE + 0x0180..SGI_BASE + 0x018c, Word), // GICR_ICENABLER0, <n>E
        (SGI_BASE + 0x0200..SGI_BASE + 0x020c, Word), // GICR_ISPENDR0, <n>E
        (SGI_BASE + 0x0280..SGI_BASE + 0x028c, Word), // GICR_ICPENDR0, <n>E
        (SGI_BASE + 0x0300..SGI_BASE + 0x030c, Word), // GICR_ISACTIVER0, <n>E
        (SGI_BASE + 0x0380..SGI_BASE + 0x038c, Word), // GICR_ICACTIVER0, <n>E
        (SGI_BASE + 0x0400..SGI_BASE + 0x0460, Bytes), // GICR_IPRIORITYR<n>, <n>E
        (SGI_BASE + 0x0c00..SGI_BASE + 0x0c18, Word), // GICR_ICFGR0, 1, <n>E
        (SGI_BASE + 0x0d00..SGI_BASE + 0x0d0c, Word), // GICR_IGRPMODR0, <n>E
        (SGI_BASE + 0x0e00..SGI_BASE + 0x0e04, Word), // GICR_NSACR
        (SGI_BASE + 0x0f80..SGI_BASE + 0x1000, Word), // GICR_INMIR0, <n>E
    ];

    /// The VLPI_base frame (GICv4): `GICR_VPROPBASER` and
    /// `GICR_VPENDBASER`, which EL1 may read but not write. GICv4.1's
    /// `GICR_VSGIR` and `GICR_VSGIPENDR` are left out: they query the
    /// vSGIs of a vPE, and the hyp gives EL1 no vPE.
    const VLPI_REGISTERS: [(core::ops::Range<u64>, Width); 1] =
        [(VPROPBASER..VPENDBASER + 8, Doubleword)];

    /// The width of the architected register at `offset` from a
    /// redistributor's base, if one is there (`vlpis`: it has a VLPI_base
    /// frame).
    pub fn width_at(offset: u64, vlpis: bool) -> Option<Width> {
        let vlpi: &RegisterMap = if vlpis { &VLPI_REGISTERS } else { &[] };
        crate::vdev::gic::width_at(&REGISTERS, offset)
            .or_else(|| crate::vdev::gic::width_at(vlpi, offset))
    }
}

/// `GICR_CTLR` fields.
pub mod ctlr {
    pub const ENABLE_LPIS: u64 = 1 << 0;
    /// Register Write Pending: among others, clearing EnableLPIs has not
    /// taken effect yet.
    pub const RWP: u64 = 1 << 3;
}

/// `GICR_TYPER` fields.
pub mod typer {
    /// The redistributor has a VLPI_base frame (GICv4).
    pub const VLPIS: u64 = 1 << 1;
    /// The last redistributor of its region.
    pub const LAST: u64 = 1 << 4;

    pub fn processor_number(t: u64) -> u16 {
        ((t >> 8) & 0xffff) as u16
    }
}

/// A redistributor's frames: two (GICv3) or four (GICv4), of 64 KiB
/// each; without a `redistributor-stride`, also the distance between
/// redistributors.
pub const STRIDE_V3: u64 = 0x2_0000;
pub const STRIDE_V4: u64 = 0x4_0000;
const FRAME: u64 = 0x1_0000;

/// `GICR_PROPBASER`: IDbits in [4:0], Physical_Address PA[51:12].
const PROP_ID_BITS: u64 = 0x1f;
const PROP_ADDRESS: u64 = ((1 << 40) - 1) << 12;
/// `GICR_PENDBASER`: Physical_Address PA[51:16].
const PEND_ADDRESS: u64 = ((1 << 36) - 1) << 16;
/// `GICR_VPENDBASER.Valid`: a vPE is resident.
const VPEND_VALID: u64 = 1 << 63;
/// The first LPI.
const FIRST_LPI: u64 = 8192;

/// The interrupt ID bits LPIs use: the smaller of what `GICR_PROPBASER`
/// and `GICD_TYPER` say (both encode bits minus one), at least 14 (with
/// fewer, every LPI is out of range, but the pending table's first
/// kilobyte may still be used).
fn lpi_id_bits(propbaser: u64, gicd_typer: u32) -> u32 {
    let prop = (propbaser & PROP_ID_BITS) as u32;
    let dist = (gicd_typer >> 19) & 0x1f;
    (prop.min(dist) + 1).max(14)
}

/// Where the LPI configuration table of `propbaser` is, and its size.
fn config_table(propbaser: u64, gicd_typer: u32) -> (u64, u64) {
    let bits = lpi_id_bits(propbaser, gicd_typer);
    (propbaser & PROP_ADDRESS, (1u64 << bits) - FIRST_LPI)
}

/// Where the LPI pending table is, and its size.
fn pending_table(propbaser: u64, pendbaser: u64, gicd_typer: u32) -> (u64, u64) {
    let bits = lpi_id_bits(propbaser, gicd_typer);
    (pendbaser & PEND_ADDRESS, (1u64 << bits) / 8)
}

/// The redistributors of one region, emulated over the real frames (`F`,
/// offsets from the region's base) with EL1's RAM (`E`).
pub struct RedistRegion<F, E> {
    frame: F,
    mem: E,
    base: u64,
    /// How many redistributors the region holds, `stride` bytes apart.
    count: u64,
    stride: u64,
    /// They have a VLPI_base frame (GICv4).
    vlpis: bool,
    /// `GICR_TYPER.Processor_Number` of the first one.
    first_processor: u16,
    gicd_typer: u32,
    lock: spin::Mutex<()>,
    refusals: Refusals,
}

impl<F: RegisterFrame, E: El1Memory> RedistRegion<F, E> {
    /// Finds the redistributors of the `size`-byte region at `base`
    /// (`GICR_TYPER.Last` ends it; each has two 64 KiB frames, or four
    /// with `GICR_TYPER.VLPIS`, which must be the same for all; `stride`
    /// is the device tree's `redistributor-stride`, at least that and a
    /// multiple of 64 KiB, else the frames themselves), and takes them
    /// over: LPIs that firmware left enabled on tables outside EL1's RAM
    /// are disabled, a resident vPE is made non-resident. `gicd_typer` is
    /// the distributor's `GICD_TYPER`.
    pub fn new(
        base: u64,
        size: u64,
        stride: Option<u64>,
        frame: F,
        mem: E,
        gicd_typer: u32,
    ) -> Result<Self, GicError> {
        let first = frame.read(reg::TYPER, AccessSize::Doubleword);
        let vlpis = first & typer::VLPIS != 0;
        let frames = if vlpis { STRIDE_V4 } else { STRIDE_V3 };
        let stride = stride.unwrap_or(frames);
        if stride < frames || !stride.is_multiple_of(FRAME) {
            return Err(GicError::BadStride);
        }
        if size < frames {
            return Err(GicError::NoRedistributor);
        }
        let mut count = 0;
        let mut offset = 0u64;
        while offset.saturating_add(frames) <= size {
            let t = frame.read(offset + reg::TYPER, AccessSize::Doubleword);
            if (t & typer::VLPIS != 0) != vlpis {
                return Err(GicError::MixedRedistributors);
            }
            count += 1;
            if t & typer::LAST != 0 {
                break;
            }
            offset = offset.saturating_add(stride);
        }
        let region = Self {
            frame,
            mem,
            base,
            count,
            stride,
            vlpis,
            first_processor: typer::processor_number(first),
            gicd_typer,
            lock: spin::Mutex::new(()),
            refusals: Refusals::new("redistributors", base),
        };
        for i in 0..count {
            region.take_over(i * stride)?;
        }
        Ok(region)
    }

    /// Where the redistributors are.
    pub fn span(&self) -> RedistributorSpan {
        RedistributorSpan {
            base: self.base,
            count: self.count,
            stride: self.stride,
        }
    }

    /// `GICR_TYPER.Processor_Number` of the first redistributor.
    pub fn first_processor(&self) -> u16 {
        self.first_processor
    }

    /// What was refused so far.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Takes over the redistributor at offset `rd` of the region.
    fn take_over(&self, rd: u64) -> Result<(), GicError> {
        let ctl = self.frame.read(rd + reg::CTLR, AccessSize::Word);
        if ctl & ctlr::ENABLE_LPIS != 0 && !self.lpi_tables_are_el1_ram(rd) {
            self.frame
                .write(rd + reg::CTLR, AccessSize::Word, ctl & !ctlr::ENABLE_LPIS);
            let disabled = (0..BOOT_POLLS).any(|_| {
                self.frame.read(rd + reg::CTLR, AccessSize::Word) & (ctlr::ENABLE_LPIS | ctlr::RWP)
                    == 0
            });
            if !disabled {
                return Err(GicError::LpisStuck);
            }
        }
        if self.vlpis {
            let vpend = self
                .frame
                .read(rd + reg::VPENDBASER, AccessSize::Doubleword);
            if vpend & VPEND_VALID != 0 {
                self.frame.write(
                    rd + reg::VPENDBASER,
                    AccessSize::Doubleword,
                    vpend & !VPEND_VALID,
                );
                let now = self
                    .frame
                    .read(rd + reg::VPENDBASER, AccessSize::Doubleword);
                if now & VPEND_VALID != 0 {
                    return Err(GicError::VpeResident);
                }
            }
        }
        Ok(())
    }

    /// Whether both LPI tables of the redistributor at offset `rd`, as its
    /// registers hold them now, are EL1's RAM.
    fn lpi_tables_are_el1_ram(&self, rd: u64) -> bool {
        let prop = self.frame.read(rd + reg::PROPBASER, AccessSize::Doubleword);
        let pend = self.frame.read(rd + reg::PENDBASER, AccessSize::Doubleword);
        let (config, config_bytes) = config_table(prop, self.gicd_typer);
        let (pending, pending_bytes) = pending_table(prop, pend, self.gicd_typer);
        table_is_el1_ram(&self.mem, config, Some(config_bytes))
            && table_is_el1_ram(&self.mem, pending, Some(pending_bytes))
    }

    /// The redistributor holding `offset` (its index), and the offset in
    /// it.
    fn locate(&self, offset: u64) -> Option<(u64, u64)> {
        let index = offset / self.stride;
        (index < self.count).then_some((index, offset % self.stride))
    }

    /// The redistributor and offset in it of a supported access, or the
    /// refusal recorded.
    fn route(&self, offset: u64, size: AccessSize, what: &str) -> Option<(u64, u64)> {
        let Some((index, at)) = self.locate(offset) else {
            self.refusals.record(
                Refusal::NoRedistributor,
                format_args!("{what} at offset {offset:#x}"),
            );
            return None;
        };
        if let Err(why) = check_access(reg::width_at(at, self.vlpis), at, size) {
            self.refusals.record(
                why,
                format_args!("{what} of {} bytes at offset {offset:#x}", size.bytes()),
            );
            return None;
        }
        Some((index, at))
    }

    pub fn read(&self, offset: u64, size: AccessSize) -> u64 {
        match self.route(offset, size, "read") {
            Some(_) => {
                let _serialised = self.lock.lock();
                self.frame.read(offset, size)
            }
            None => 0,
        }
    }

    pub fn write(&self, offset: u64, size: AccessSize, value: u64) {
        let Some((index, at)) = self.route(offset, size, "write") else {
            return;
        };
        let _serialised = self.lock.lock();
        let rd = index * self.stride;
        match at & !7 {
            reg::CTLR if at == reg::CTLR => {
                let old = self.frame.read(rd + reg::CTLR, AccessSize::Word);
                let mut value = value;
                if value & ctlr::ENABLE_LPIS != 0
                    && old & ctlr::ENABLE_LPIS == 0
                    && !self.lpi_tables_are_el1_ram(rd)
                {
                    self.refusals.record(
                        Refusal::LpiTablesNotEl1Ram,
                        format_args!(
                            "redistributor {index}: GICR_PROPBASER {:#x}, GICR_PENDBASER {:#x}",
                            self.frame.read(rd + reg::PROPBASER, AccessSize::Doubleword),
                            self.frame.read(rd + reg::PENDBASER, AccessSize::Doubleword)
                        ),
                    );
                    value &= !ctlr::ENABLE_LPIS;
                }
                self.frame.write(offset, size, value);
            }
            register @ (reg::PROPBASER | reg::PENDBASER) => {
                let ctl = self.frame.read(rd + reg::CTLR, AccessSize::Word);
                let old = self.frame.read(rd + register, AccessSize::Doubleword);
                let new = merge(old, at & 7, size, value);
                if ctl & (ctlr::ENABLE_LPIS | ctlr::RWP) != 0 {
                    self.refusals.record(
                        Refusal::LpisEnabled,
                        format_args!("redistributor {index}: {new:#x} at {register:#x}"),
                    );
                    return;
                }
                if register == reg::PROPBASER {
                    let (config, bytes) = config_table(new, self.gicd_typer);
                    if !table_is_el1_ram(&self.mem, config, Some(bytes)) {
                        self.refusals.record(
                            Refusal::ConfigTableNotEl1Ram,
                            format_args!("redistributor {index}: {bytes:#x} bytes at {config:#x}"),
                        );
                        return;
                    }
                }
                self.frame.write(rd + register, AccessSize::Doubleword, new);
            }
            register @ (reg::VPROPBASER | reg::VPENDBASER) if self.vlpis => {
                self.refusals.record(
                    Refusal::VirtualLpis,
                    format_args!("redistributor {index}: {value:#x} at {register:#x}"),
                );
            }
            _ => self.frame.write(offset, size, value),
        }
    }
}

impl<F, E> super::MmioDevice for RedistRegion<F, E>
where
    F: RegisterFrame + Sync,
    E: El1Memory + Sync,
{
    fn read(&self, offset: u64, size: AccessSize) -> u64 {
        RedistRegion::read(self, offset, size)
    }

    fn write(&self, offset: u64, size: AccessSize, value: u64) {
        RedistRegion::write(self, offset, size, value)
    }
}

#[cfg(test)]
mod tests;

//! What the GIC emulation needs from the machine, and what its two devices
//! ([`gic_its`](super::gic_its), [`gic_redist`](super::gic_redist)) share.
//!
//! The GICv3 is a bus master: the ITS and the redistributors read and
//! write tables in memory at addresses software programs. The hyp traps
//! the frames holding those addresses and lets EL1 program only tables in
//! its own RAM (see `docs/gic.md`). Every other access passes through to
//! the real register unchanged, so EL1 drives the GIC as it would without
//! the hyp.
//!
//! What passes through: each device lists the architected registers of
//! its frames ([`RegisterMap`], from the register maps of IHI 0069).
//! Anything else, an IMPLEMENTATION DEFINED register (a GIC-600's
//! `GITS_FCTLR`, `GICR_PWRR`) or an offset no register decodes, reads as
//! zero and ignores writes, as reserved GIC registers do: an access the
//! GIC does not decode may get an error response, and the hyp, not EL1,
//! would take that external abort. Of the architected registers, the GIC
//! architecture ("GIC memory-mapped register access") supports 32-bit
//! accesses to every register, 64-bit accesses to 64-bit registers and
//! byte accesses to the priority registers only; any other access is
//! refused the same way. Each refusal is logged once.

use super::AccessSize;
use crate::platform::MAX_GIC_REDISTRIBUTOR_REGIONS;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// Raw access to one real register frame, by offset from its base.
///
/// The EL2 implementation makes single volatile accesses of exactly
/// `size` bytes through its Device-memory identity map; host tests use a
/// register file.
pub trait RegisterFrame {
    fn read(&self, offset: u64, size: AccessSize) -> u64;
    fn write(&self, offset: u64, size: AccessSize, value: u64);
}

/// EL1's RAM, as the GIC emulation sees it.
///
/// # Safety
///
/// `is_el1_ram` answers true only for ranges that are entirely RAM owned
/// by EL1 (never EL2's, never MMIO) and that the hyp's own address space
/// maps, so that [`read_u64`](Self::read_u64) inside them reads memory
/// and nothing else.
pub unsafe trait El1Memory {
    /// Whether `[start, start + size)` is entirely RAM owned by EL1.
    /// `false` for an empty or wrapping range.
    fn is_el1_ram(&self, start: u64, size: u64) -> bool;

    /// One 64-bit read of EL1's RAM (EL1 may be writing it at the same
    /// time: the caller copies what it reads before checking it).
    ///
    /// # Safety
    ///
    /// `pa` is 8-byte aligned and inside a range `is_el1_ram` accepted.
    unsafe fn read_u64(&self, pa: u64) -> u64;
}

impl<T: RegisterFrame + ?Sized> RegisterFrame for &T {
    fn read(&self, offset: u64, size: AccessSize) -> u64 {
        (**self).read(offset, size)
    }
    fn write(&self, offset: u64, size: AccessSize, value: u64) {
        (**self).write(offset, size, value)
    }
}

// SAFETY: forwards to an implementation that upholds the contract.
unsafe impl<T: El1Memory + ?Sized> El1Memory for &T {
    fn is_el1_ram(&self, start: u64, size: u64) -> bool {
        (**self).is_el1_ram(start, size)
    }
    unsafe fn read_u64(&self, pa: u64) -> u64 {
        // SAFETY: the caller upholds `read_u64`'s contract.
        unsafe { (**self).read_u64(pa) }
    }
}

/// Whether a table of `size` bytes at `start` is EL1's RAM, with the
/// arithmetic checked (a size that does not fit is not RAM).
pub fn table_is_el1_ram(mem: &impl El1Memory, start: u64, size: Option<u64>) -> bool {
    match size {
        Some(size) => size != 0 && start.checked_add(size).is_some() && mem.is_el1_ram(start, size),
        None => false,
    }
}

/// The 64-bit register after an access of `size` at byte `at` (0 or 4)
/// in it writes `value` (a 32-bit write replaces one half).
pub fn merge(old: u64, at: u64, size: AccessSize, value: u64) -> u64 {
    let shift = 8 * at;
    let mask = size.mask() << shift;
    (old & !mask) | ((value << shift) & mask)
}

/// What an access of `size` at byte `at` of a 64-bit register reads.
pub fn extract(reg: u64, at: u64, size: AccessSize) -> u64 {
    (reg >> (8 * at)) & size.mask()
}

/// Whether `offset` is aligned to `size`.
pub fn aligned(offset: u64, size: AccessSize) -> bool {
    offset.is_multiple_of(u64::from(size.bytes()))
}

/// How an architected GIC register may be accessed (IHI 0069, "GIC
/// memory-mapped register access").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// A 32-bit register: 32-bit accesses.
    Word,
    /// A 64-bit register: 64-bit accesses, or 32-bit ones to either half.
    Doubleword,
    /// A 32-bit register that is also byte-accessible (the priority
    /// registers).
    Bytes,
}

/// The architected registers of a frame: runs of same-width registers,
/// `[start, end)` offsets from the frame's base, each run aligned to its
/// width.
pub type RegisterMap = [(core::ops::Range<u64>, Width)];

/// The width of the register of `map` that holds `offset`, if one does.
pub fn width_at(map: &RegisterMap, offset: u64) -> Option<Width> {
    map.iter()
        .find(|(run, _)| run.contains(&offset))
        .map(|&(_, width)| width)
}

/// Whether an access of `size` at `offset` reaches an architected register
/// (of width `width`, `None` for none) the way the architecture allows;
/// otherwise why it is refused.
pub fn check_access(width: Option<Width>, offset: u64, size: AccessSize) -> Result<(), Refusal> {
    let width = width.ok_or(Refusal::NoRegister)?;
    let supported = aligned(offset, size)
        && matches!(
            (size, width),
            (AccessSize::Word, _)
                | (AccessSize::Doubleword, Width::Doubleword)
                | (AccessSize::Byte, Width::Bytes)
        );
    if supported {
        Ok(())
    } else {
        Err(Refusal::AccessSize)
    }
}

/// The redistributors of one region, as found at boot: `count` of them,
/// their RD_base frames `stride` bytes apart from `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedistributorSpan {
    pub base: u64,
    pub count: u64,
    pub stride: u64,
}

impl RedistributorSpan {
    /// Whether `pa` is the RD_base of one of them.
    pub fn holds(&self, pa: u64) -> bool {
        pa.checked_sub(self.base)
            .is_some_and(|d| d.is_multiple_of(self.stride) && d / self.stride < self.count)
    }
}

/// Every redistributor of the machine, as ITS commands name them.
#[derive(Clone, Debug, Default)]
pub struct Redistributors {
    spans: heapless::Vec<RedistributorSpan, MAX_GIC_REDISTRIBUTOR_REGIONS>,
    /// `GICR_TYPER.Processor_Number` of the first one.
    first_processor: u16,
}

impl Redistributors {
    /// Adds a region's redistributors; `first_processor` is the processor
    /// number of the region's first one.
    pub fn add(&mut self, span: RedistributorSpan, first_processor: u16) -> Result<(), GicError> {
        if self.spans.is_empty() {
            self.first_processor = first_processor;
        }
        self.spans
            .push(span)
            .map_err(|_| GicError::TooManyRedistributorRegions)
    }

    /// Whether `pa` is some redistributor's RD_base.
    pub fn is_rd_base(&self, pa: u64) -> bool {
        self.spans.iter().any(|s| s.holds(pa))
    }

    /// The first redistributor: its RD_base and its processor number.
    pub fn first(&self) -> Option<(u64, u16)> {
        self.spans
            .iter()
            .find(|s| s.count != 0)
            .map(|s| (s.base, self.first_processor))
    }

    /// How many there are.
    pub fn count(&self) -> u64 {
        self.spans.iter().map(|s| s.count).sum()
    }
}

/// Why the hyp cannot take over the GIC; it refuses to boot, since EL1
/// could then make the GIC write anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// An ITS that firmware left enabled did not become quiescent.
    ItsNotQuiescent,
    /// A redistributor has LPIs enabled on tables that are not EL1's RAM
    /// and `GICR_CTLR.EnableLPIs` cannot be cleared.
    LpisStuck,
    /// A redistributor has a vPE resident (`GICR_VPENDBASER.Valid`) that
    /// cannot be made non-resident.
    VpeResident,
    /// A redistributor region holds no redistributor.
    NoRedistributor,
    /// The redistributors of one region differ in `GICR_TYPER.VLPIS`, so
    /// they are not evenly spaced.
    MixedRedistributors,
    /// The device tree's `redistributor-stride` is smaller than a
    /// redistributor's frames (two, or four with `GICR_TYPER.VLPIS`) or
    /// not a multiple of 64 KiB: one redistributor's frames would be taken
    /// for another's.
    BadStride,
    /// More redistributor regions than the hyp keeps.
    TooManyRedistributorRegions,
}

impl fmt::Display for GicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ItsNotQuiescent => "an ITS left enabled by firmware does not become quiescent",
            Self::LpisStuck => "a redistributor has LPIs enabled on tables outside EL1's RAM",
            Self::VpeResident => "a redistributor has a vPE resident that cannot be removed",
            Self::NoRedistributor => "a redistributor region holds no redistributor",
            Self::MixedRedistributors => {
                "the redistributors of a region differ in GICR_TYPER.VLPIS"
            }
            Self::BadStride => {
                "the device tree's redistributor-stride is smaller than a redistributor's frames or not a multiple of 64 KiB"
            }
            Self::TooManyRedistributorRegions => "too many redistributor regions",
        })
    }
}

/// Polls a register at most this many times while taking over the GIC at
/// boot (a few milliseconds on any real GIC; QEMU answers at once).
pub const BOOT_POLLS: u32 = 1_000_000;

/// What the hyp refused EL1. Each kind is logged the first time it
/// happens on a device and counted every time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An access size or alignment these registers do not support: read
    /// as zero, write ignored.
    AccessSize,
    /// An access beyond the last redistributor of a region: read as zero,
    /// write ignored.
    NoRedistributor,
    /// An offset that holds no architected register (an IMPLEMENTATION
    /// DEFINED one, a reserved offset, padding between redistributors):
    /// read as zero, write ignored.
    NoRegister,
    /// `GITS_BASER<n>` or `GITS_CBASER` written while the ITS is enabled
    /// or not quiescent (UNPREDICTABLE): dropped.
    ItsBusy,
    /// A `GITS_BASER<n>` table that is not EL1's RAM: dropped.
    TableNotEl1Ram,
    /// A `GITS_CBASER` queue that is not EL1's RAM: dropped.
    QueueNotEl1Ram,
    /// The hyp has no memory left for its copy of a table or queue:
    /// dropped.
    NoMemory,
    /// The ITS did not keep the value the hyp wrote (unsupported size,
    /// address or page size): the write is undone.
    DidNotStick,
    /// A `GITS_CWRITER` offset at or past the end of the queue: dropped.
    CwriterOutOfRange,
    /// `GITS_CREADR` outside the queue (an ITS that does not follow the
    /// architecture): `GITS_CWRITER` writes are dropped.
    ReaderOutOfRange,
    /// A MAPD whose ITT is not EL1's RAM, or larger than the ITS allows:
    /// replaced by a SYNC.
    IttNotEl1Ram,
    /// A command naming a redistributor that does not exist
    /// (`GITS_TYPER.PTA` = 1): replaced by a SYNC.
    NotARedistributor,
    /// A GICv4 (virtual LPI) command: replaced by a SYNC.
    VirtualCommand,
    /// An opcode the architecture does not define: replaced by a SYNC.
    UnknownCommand,
    /// `GICR_PROPBASER` or `GICR_PENDBASER` written while LPIs are enabled
    /// (UNPREDICTABLE) or still being disabled: dropped.
    LpisEnabled,
    /// A `GICR_PROPBASER` whose configuration table is not EL1's RAM:
    /// dropped.
    ConfigTableNotEl1Ram,
    /// `GICR_CTLR.EnableLPIs` set while the LPI tables are not EL1's RAM:
    /// the bit is dropped.
    LpiTablesNotEl1Ram,
    /// `GICR_VPROPBASER` or `GICR_VPENDBASER` written: the hyp gives EL1
    /// no virtual LPIs: dropped.
    VirtualLpis,
}

impl Refusal {
    const ALL: [Refusal; 18] = [
        Self::AccessSize,
        Self::NoRedistributor,
        Self::NoRegister,
        Self::ItsBusy,
        Self::TableNotEl1Ram,
        Self::QueueNotEl1Ram,
        Self::NoMemory,
        Self::DidNotStick,
        Self::CwriterOutOfRange,
        Self::ReaderOutOfRange,
        Self::IttNotEl1Ram,
        Self::NotARedistributor,
        Self::VirtualCommand,
        Self::UnknownCommand,
        Self::LpisEnabled,
        Self::ConfigTableNotEl1Ram,
        Self::LpiTablesNotEl1Ram,
        Self::VirtualLpis,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AccessSize => "unsupported access size: read as zero, write ignored",
            Self::NoRedistributor => "no redistributor there: read as zero, write ignored",
            Self::NoRegister => "no architected register there: read as zero, write ignored",
            Self::ItsBusy => "table base written while the ITS is enabled or busy: dropped",
            Self::TableNotEl1Ram => "ITS table outside EL1's RAM: dropped",
            Self::QueueNotEl1Ram => "ITS command queue outside EL1's RAM: dropped",
            Self::NoMemory => "no hyp memory for the ITS's copy: dropped",
            Self::DidNotStick => "the ITS did not keep the value: undone",
            Self::CwriterOutOfRange => "GITS_CWRITER past the end of the queue: dropped",
            Self::ReaderOutOfRange => "GITS_CREADR outside the queue: GITS_CWRITER dropped",
            Self::IttNotEl1Ram => "MAPD with an ITT outside EL1's RAM: replaced by a SYNC",
            Self::NotARedistributor => "command naming no redistributor: replaced by a SYNC",
            Self::VirtualCommand => "GICv4 command: replaced by a SYNC",
            Self::UnknownCommand => "unknown ITS command: replaced by a SYNC",
            Self::LpisEnabled => "LPI table base written while LPIs are enabled: dropped",
            Self::ConfigTableNotEl1Ram => "LPI configuration table outside EL1's RAM: dropped",
            Self::LpiTablesNotEl1Ram => "EnableLPIs with LPI tables outside EL1's RAM: bit dropped",
            Self::VirtualLpis => "virtual LPI table base written: dropped",
        })
    }
}

/// How often each [`Refusal`] happened on one device; the first of each
/// kind is logged.
pub struct Refusals {
    /// The device, for the log: e.g. "ITS at 0x8080000".
    what: &'static str,
    base: u64,
    counts: [AtomicU32; Refusal::ALL.len()],
}

impl Refusals {
    pub const fn new(what: &'static str, base: u64) -> Self {
        Self {
            what,
            base,
            counts: [const { AtomicU32::new(0) }; Refusal::ALL.len()],
        }
    }

    /// Counts `why`, and logs it with `detail` if it is the first.
    pub fn record(&self, why: Refusal, detail: fmt::Arguments<'_>) {
        if self.counts[why.index()].fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!(
                "gic: {} at {:#x}: {why} ({detail}; logged once)",
                self.what,
                self.base
            );
        }
    }

    /// How many times `why` happened.
    pub fn count(&self, why: Refusal) -> u32 {
        self.counts[why.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A register file standing in for a GIC frame, and EL1 RAM that
    //! counts its reads.

    use super::*;
    use crate::memmap::PhysRange;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::vec::Vec;

    /// Registers by 8-byte-aligned offset; `hook` runs after every write
    /// (with the aligned offset) to model side effects.
    pub struct FakeFrame {
        pub regs: Mutex<BTreeMap<u64, u64>>,
        /// Bits of a register (by aligned offset) that writes cannot change.
        pub read_only: BTreeMap<u64, u64>,
        pub writes: Mutex<Vec<(u64, AccessSize, u64)>>,
        /// Offsets read, oldest first.
        pub reads: Mutex<Vec<u64>>,
        pub hook: fn(&mut BTreeMap<u64, u64>, u64),
    }

    impl FakeFrame {
        pub fn new(hook: fn(&mut BTreeMap<u64, u64>, u64)) -> Self {
            Self {
                regs: Mutex::new(BTreeMap::new()),
                read_only: BTreeMap::new(),
                writes: Mutex::new(Vec::new()),
                reads: Mutex::new(Vec::new()),
                hook,
            }
        }

        pub fn get(&self, offset: u64) -> u64 {
            *self.regs.lock().unwrap().get(&offset).unwrap_or(&0)
        }

        pub fn set(&self, offset: u64, value: u64) {
            self.regs.lock().unwrap().insert(offset, value);
        }

        /// Writes made to `offset` (any size), oldest first.
        pub fn writes_to(&self, offset: u64) -> Vec<u64> {
            self.writes
                .lock()
                .unwrap()
                .iter()
                .filter(|(o, _, _)| *o & !7 == offset)
                .map(|w| w.2)
                .collect()
        }
    }

    impl RegisterFrame for FakeFrame {
        fn read(&self, offset: u64, size: AccessSize) -> u64 {
            self.reads.lock().unwrap().push(offset);
            extract(self.get(offset & !7), offset & 7, size)
        }

        fn write(&self, offset: u64, size: AccessSize, value: u64) {
            self.writes.lock().unwrap().push((offset, size, value));
            let reg = offset & !7;
            let mut regs = self.regs.lock().unwrap();
            let old = *regs.get(&reg).unwrap_or(&0);
            let ro = *self.read_only.get(&reg).unwrap_or(&0);
            let new = merge(old, offset & 7, size, value);
            regs.insert(reg, (new & !ro) | (old & ro));
            (self.hook)(&mut regs, reg);
        }
    }

    /// EL1's RAM: which ranges are EL1's, what they hold, and how many
    /// times each word was read.
    #[derive(Default)]
    pub struct FakeRam {
        pub el1: Vec<PhysRange>,
        pub words: Mutex<BTreeMap<u64, u64>>,
        pub reads: Mutex<BTreeMap<u64, u32>>,
    }

    impl FakeRam {
        pub fn new(el1: &[PhysRange]) -> Self {
            Self {
                el1: el1.to_vec(),
                ..Self::default()
            }
        }

        pub fn put(&self, pa: u64, words: &[u64]) {
            let mut m = self.words.lock().unwrap();
            for (i, w) in words.iter().enumerate() {
                m.insert(pa + 8 * i as u64, *w);
            }
        }

        pub fn reads_of(&self, pa: u64) -> u32 {
            *self.reads.lock().unwrap().get(&pa).unwrap_or(&0)
        }
    }

    // SAFETY: a host map; `read_u64` asserts the caller's side of the
    // contract instead of relying on it.
    unsafe impl El1Memory for FakeRam {
        fn is_el1_ram(&self, start: u64, size: u64) -> bool {
            let Some(end) = start.checked_add(size) else {
                return false;
            };
            size != 0 && self.el1.iter().any(|r| start >= r.start && end <= r.end())
        }

        unsafe fn read_u64(&self, pa: u64) -> u64 {
            assert!(
                pa.is_multiple_of(8) && self.is_el1_ram(pa, 8),
                "read of {pa:#x}"
            );
            *self.reads.lock().unwrap().entry(pa).or_insert(0) += 1;
            *self.words.lock().unwrap().get(&pa).unwrap_or(&0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_32_bit_write_replaces_one_half_of_a_64_bit_register() {
        let old = 0x1111_2222_3333_4444;
        assert_eq!(
            merge(old, 0, AccessSize::Word, 0xaaaa_bbbb),
            0x1111_2222_aaaa_bbbb
        );
        assert_eq!(
            merge(old, 4, AccessSize::Word, 0xaaaa_bbbb),
            0xaaaa_bbbb_3333_4444
        );
        assert_eq!(merge(old, 0, AccessSize::Doubleword, 5), 5);
        assert_eq!(
            merge(old, 4, AccessSize::Word, 0xffff_ffff_0000_0001),
            0x0000_0001_3333_4444
        );
        assert_eq!(extract(old, 4, AccessSize::Word), 0x1111_2222);
        assert_eq!(extract(old, 0, AccessSize::Word), 0x3333_4444);
        assert_eq!(extract(old, 2, AccessSize::Byte), 0x33);
    }

    #[test]
    fn a_table_size_that_overflows_or_wraps_is_not_el1_ram() {
        let ram = fake::FakeRam::new(&[crate::memmap::PhysRange::new(0x4000_0000, 0x1000_0000)]);
        assert!(table_is_el1_ram(&ram, 0x4000_0000, Some(0x1000)));
        assert!(!table_is_el1_ram(&ram, 0x4000_0000, None));
        assert!(!table_is_el1_ram(&ram, 0x4000_0000, Some(0)));
        assert!(!table_is_el1_ram(&ram, u64::MAX - 0xfff, Some(0x2000)));
        assert!(!table_is_el1_ram(&ram, 0x4fff_f000, Some(0x2000)));
    }

    #[test]
    fn an_rd_base_is_a_multiple_of_the_stride_below_the_count() {
        let mut r = Redistributors::default();
        assert_eq!(r.first(), None);
        r.add(
            RedistributorSpan {
                base: 0x080a_0000,
                count: 2,
                stride: 0x2_0000,
            },
            3,
        )
        .unwrap();
        r.add(
            RedistributorSpan {
                base: 0x1_0000_0000,
                count: 1,
                stride: 0x4_0000,
            },
            9,
        )
        .unwrap();
        assert!(r.is_rd_base(0x080a_0000) && r.is_rd_base(0x080c_0000));
        assert!(!r.is_rd_base(0x080e_0000), "past the count");
        assert!(!r.is_rd_base(0x080b_0000), "an SGI_base frame");
        assert!(!r.is_rd_base(0x0809_0000) && !r.is_rd_base(0));
        assert!(r.is_rd_base(0x1_0000_0000));
        assert_eq!(r.first(), Some((0x080a_0000, 3)));
        assert_eq!(r.count(), 3);
    }

    #[test]
    fn each_refusal_kind_is_counted_on_its_own() {
        let r = Refusals::new("ITS", 0x808_0000);
        r.record(Refusal::ItsBusy, format_args!("first"));
        r.record(Refusal::ItsBusy, format_args!("second"));
        r.record(Refusal::VirtualLpis, format_args!("other"));
        assert_eq!(r.count(Refusal::ItsBusy), 2);
        assert_eq!(r.count(Refusal::VirtualLpis), 1);
        assert_eq!(r.count(Refusal::UnknownCommand), 0);
        let distinct: std::collections::BTreeSet<usize> =
            Refusal::ALL.iter().map(|r| r.index()).collect();
        assert_eq!(distinct.len(), Refusal::ALL.len());
    }
}

//! SMMUv3 programming interface: register offsets, field layouts and the
//! small trait through which the driver touches the hardware.
//!
//! Field positions follow the SMMUv3 architecture specification (IHI 0070)
//! and were cross-checked against Linux `arm-smmu-v3.h` and QEMU
//! `smmuv3-internal.h`. Layouts are `tock-registers` bitfields so that the
//! driver decodes register values through `LocalRegisterCopy`, which works on
//! the host as well as on the target.

use core::mem::offset_of;
use core::ptr::{read_volatile, write_volatile};

use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields![u32,
    /// SMMU_IDR0: translation features.
    pub IDR0 [
        S2P OFFSET(0) NUMBITS(1) [],
        S1P OFFSET(1) NUMBITS(1) [],
        TTF OFFSET(2) NUMBITS(2) [
            AArch32 = 1,
            AArch64 = 2,
            AArch32AndAArch64 = 3
        ],
        COHACC OFFSET(4) NUMBITS(1) [],
        BTM OFFSET(5) NUMBITS(1) [],
        HTTU OFFSET(6) NUMBITS(2) [
            None = 0,
            Access = 1,
            AccessDirty = 2
        ],
        DORMHINT OFFSET(8) NUMBITS(1) [],
        HYP OFFSET(9) NUMBITS(1) [],
        ATS OFFSET(10) NUMBITS(1) [],
        NS1ATS OFFSET(11) NUMBITS(1) [],
        ASID16 OFFSET(12) NUMBITS(1) [],
        MSI OFFSET(13) NUMBITS(1) [],
        SEV OFFSET(14) NUMBITS(1) [],
        ATOS OFFSET(15) NUMBITS(1) [],
        PRI OFFSET(16) NUMBITS(1) [],
        VMW OFFSET(17) NUMBITS(1) [],
        VMID16 OFFSET(18) NUMBITS(1) [],
        CD2L OFFSET(19) NUMBITS(1) [],
        VATOS OFFSET(20) NUMBITS(1) [],
        TTENDIAN OFFSET(21) NUMBITS(2) [
            Mixed = 0,
            Little = 2,
            Big = 3
        ],
        ATSRECERR OFFSET(23) NUMBITS(1) [],
        STALL_MODEL OFFSET(24) NUMBITS(2) [
            StallAndTerminate = 0,
            TerminateOnly = 1,
            StallForced = 2
        ],
        TERM_MODEL OFFSET(26) NUMBITS(1) [],
        ST_LEVEL OFFSET(27) NUMBITS(2) [
            Linear = 0,
            TwoLevel = 1
        ],
        RME_IMPL OFFSET(30) NUMBITS(1) []
    ],
    /// SMMU_IDR1: table and queue sizes.
    pub IDR1 [
        SIDSIZE OFFSET(0) NUMBITS(6) [],
        SSIDSIZE OFFSET(6) NUMBITS(5) [],
        PRIQS OFFSET(11) NUMBITS(5) [],
        EVENTQS OFFSET(16) NUMBITS(5) [],
        CMDQS OFFSET(21) NUMBITS(5) [],
        ATTR_PERMS_OVR OFFSET(26) NUMBITS(1) [],
        ATTR_TYPES_OVR OFFSET(27) NUMBITS(1) [],
        REL OFFSET(28) NUMBITS(1) [],
        QUEUES_PRESET OFFSET(29) NUMBITS(1) [],
        TABLES_PRESET OFFSET(30) NUMBITS(1) [],
        ECMDQ OFFSET(31) NUMBITS(1) []
    ],
    /// SMMU_IDR3: optional architecture features.
    pub IDR3 [
        HAD OFFSET(2) NUMBITS(1) [],
        PBHA OFFSET(3) NUMBITS(1) [],
        XNX OFFSET(4) NUMBITS(1) [],
        PPS OFFSET(5) NUMBITS(1) [],
        MPAM OFFSET(7) NUMBITS(1) [],
        FWB OFFSET(8) NUMBITS(1) [],
        STT OFFSET(9) NUMBITS(1) [],
        RIL OFFSET(10) NUMBITS(1) [],
        BBML OFFSET(11) NUMBITS(2) [],
        E0PD OFFSET(13) NUMBITS(1) [],
        PTWNNC OFFSET(14) NUMBITS(1) [],
        DPT OFFSET(15) NUMBITS(1) []
    ],
    /// SMMU_IDR5: output address size and granules.
    pub IDR5 [
        OAS OFFSET(0) NUMBITS(3) [
            Bits32 = 0,
            Bits36 = 1,
            Bits40 = 2,
            Bits42 = 3,
            Bits44 = 4,
            Bits48 = 5,
            Bits52 = 6
        ],
        GRAN4K OFFSET(4) NUMBITS(1) [],
        GRAN16K OFFSET(5) NUMBITS(1) [],
        GRAN64K OFFSET(6) NUMBITS(1) [],
        VAX OFFSET(10) NUMBITS(2) [],
        STALL_MAX OFFSET(16) NUMBITS(16) []
    ],
    /// SMMU_AIDR: architecture revision (`SMMUv3.<minor>`).
    pub AIDR [
        ARCH_MINOR OFFSET(0) NUMBITS(4) [],
        ARCH_MAJOR OFFSET(4) NUMBITS(4) []
    ],
    /// SMMU_CR0 and SMMU_CR0ACK.
    pub CR0 [
        SMMUEN OFFSET(0) NUMBITS(1) [],
        PRIQEN OFFSET(1) NUMBITS(1) [],
        EVENTQEN OFFSET(2) NUMBITS(1) [],
        CMDQEN OFFSET(3) NUMBITS(1) [],
        ATSCHK OFFSET(4) NUMBITS(1) [],
        VMW OFFSET(6) NUMBITS(3) []
    ],
    /// SMMU_CR1: memory attributes of the SMMU's own table walks and queue
    /// accesses. The cacheability encoding is not the TCR one: 1 = WB.
    pub CR1 [
        QUEUE_IC OFFSET(0) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        QUEUE_OC OFFSET(2) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        QUEUE_SH OFFSET(4) NUMBITS(2) [NonShareable = 0, Outer = 2, Inner = 3],
        TABLE_IC OFFSET(6) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        TABLE_OC OFFSET(8) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        TABLE_SH OFFSET(10) NUMBITS(2) [NonShareable = 0, Outer = 2, Inner = 3]
    ],
    /// SMMU_CR2.
    pub CR2 [
        E2H OFFSET(0) NUMBITS(1) [],
        RECINVSID OFFSET(1) NUMBITS(1) [],
        PTM OFFSET(2) NUMBITS(1) []
    ],
    /// SMMU_GBPA: what happens to traffic while SMMUEN == 0.
    pub GBPA [
        MEMATTR OFFSET(0) NUMBITS(4) [],
        MTCFG OFFSET(4) NUMBITS(1) [],
        ALLOCCFG OFFSET(8) NUMBITS(4) [],
        SHCFG OFFSET(12) NUMBITS(2) [],
        PRIVCFG OFFSET(16) NUMBITS(2) [],
        INSTCFG OFFSET(18) NUMBITS(2) [],
        ABORT OFFSET(20) NUMBITS(1) [],
        UPDATE OFFSET(31) NUMBITS(1) []
    ],
    /// SMMU_IRQ_CTRL and SMMU_IRQ_CTRLACK.
    pub IRQ_CTRL [
        GERROR_IRQEN OFFSET(0) NUMBITS(1) [],
        PRIQ_IRQEN OFFSET(1) NUMBITS(1) [],
        EVENTQ_IRQEN OFFSET(2) NUMBITS(1) []
    ],
    /// SMMU_GERROR and SMMU_GERRORN: an error is active while the two
    /// registers differ in its bit; software acknowledges by toggling GERRORN.
    pub GERROR [
        CMDQ_ERR OFFSET(0) NUMBITS(1) [],
        EVENTQ_ABT_ERR OFFSET(2) NUMBITS(1) [],
        PRIQ_ABT_ERR OFFSET(3) NUMBITS(1) [],
        MSI_CMDQ_ABT_ERR OFFSET(4) NUMBITS(1) [],
        MSI_EVENTQ_ABT_ERR OFFSET(5) NUMBITS(1) [],
        MSI_PRIQ_ABT_ERR OFFSET(6) NUMBITS(1) [],
        MSI_GERROR_ABT_ERR OFFSET(7) NUMBITS(1) [],
        SFM_ERR OFFSET(8) NUMBITS(1) []
    ],
    /// SMMU_STRTAB_BASE_CFG.
    pub STRTAB_BASE_CFG [
        LOG2SIZE OFFSET(0) NUMBITS(6) [],
        SPLIT OFFSET(6) NUMBITS(5) [],
        FMT OFFSET(16) NUMBITS(2) [
            Linear = 0,
            TwoLevel = 1
        ]
    ],
    /// SMMU_CMDQ_PROD. The pointer is log2size index bits plus one wrap bit;
    /// 20 bits cover the architectural maximum (CMDQS <= 19).
    pub CMDQ_PROD [
        WR OFFSET(0) NUMBITS(20) []
    ],
    /// SMMU_CMDQ_CONS, with the error code of the command CONS points at.
    pub CMDQ_CONS [
        RD OFFSET(0) NUMBITS(20) [],
        ERR OFFSET(24) NUMBITS(7) [
            None = 0,
            Illegal = 1,
            Abort = 2,
            AtcInvSync = 3
        ]
    ],
    /// SMMU_EVENTQ_PROD (page 1), with the overflow flag.
    pub EVENTQ_PROD [
        WR OFFSET(0) NUMBITS(20) [],
        OVFLG OFFSET(31) NUMBITS(1) []
    ],
    /// SMMU_EVENTQ_CONS (page 1), with the overflow acknowledge flag.
    pub EVENTQ_CONS [
        RD OFFSET(0) NUMBITS(20) [],
        OVACKFLG OFFSET(31) NUMBITS(1) []
    ]
];

register_bitfields![u64,
    /// SMMU_CMDQ_BASE / SMMU_EVENTQ_BASE. Bit 62 is the read-allocate hint
    /// for the command queue and the write-allocate hint for the event queue.
    pub Q_BASE [
        LOG2SIZE OFFSET(0) NUMBITS(5) [],
        ADDR OFFSET(5) NUMBITS(47) [],
        RWA OFFSET(62) NUMBITS(1) []
    ],
    /// SMMU_STRTAB_BASE.
    pub STRTAB_BASE [
        ADDR OFFSET(6) NUMBITS(46) [],
        RA OFFSET(62) NUMBITS(1) []
    ]
];

register_structs! {
    /// The SMMU register frame: page 0 (0x0000-0xFFFF) and the part of page 1
    /// the driver uses. It is never instantiated; it pins the offsets below
    /// to the architected layout (the macro checks every offset at compile
    /// time) so that a typo cannot silently move a register.
    pub SmmuRegisterBlock {
        (0x0000 => pub idr0: ReadOnly<u32, IDR0::Register>),
        (0x0004 => pub idr1: ReadOnly<u32, IDR1::Register>),
        (0x0008 => pub idr2: ReadOnly<u32>),
        (0x000c => pub idr3: ReadOnly<u32, IDR3::Register>),
        (0x0010 => pub idr4: ReadOnly<u32>),
        (0x0014 => pub idr5: ReadOnly<u32, IDR5::Register>),
        (0x0018 => pub iidr: ReadOnly<u32>),
        (0x001c => pub aidr: ReadOnly<u32, AIDR::Register>),
        (0x0020 => pub cr0: ReadWrite<u32, CR0::Register>),
        (0x0024 => pub cr0ack: ReadOnly<u32, CR0::Register>),
        (0x0028 => pub cr1: ReadWrite<u32, CR1::Register>),
        (0x002c => pub cr2: ReadWrite<u32, CR2::Register>),
        (0x0030 => _reserved0),
        (0x0040 => pub statusr: ReadOnly<u32>),
        (0x0044 => pub gbpa: ReadWrite<u32, GBPA::Register>),
        (0x0048 => pub agbpa: ReadWrite<u32>),
        (0x004c => _reserved1),
        (0x0050 => pub irq_ctrl: ReadWrite<u32, IRQ_CTRL::Register>),
        (0x0054 => pub irq_ctrlack: ReadOnly<u32, IRQ_CTRL::Register>),
        (0x0058 => _reserved2),
        (0x0060 => pub gerror: ReadOnly<u32, GERROR::Register>),
        (0x0064 => pub gerrorn: ReadWrite<u32, GERROR::Register>),
        (0x0068 => pub gerror_irq_cfg0: ReadWrite<u64>),
        (0x0070 => pub gerror_irq_cfg1: ReadWrite<u32>),
        (0x0074 => pub gerror_irq_cfg2: ReadWrite<u32>),
        (0x0078 => _reserved3),
        (0x0080 => pub strtab_base: ReadWrite<u64, STRTAB_BASE::Register>),
        (0x0088 => pub strtab_base_cfg: ReadWrite<u32, STRTAB_BASE_CFG::Register>),
        (0x008c => _reserved4),
        (0x0090 => pub cmdq_base: ReadWrite<u64, Q_BASE::Register>),
        (0x0098 => pub cmdq_prod: ReadWrite<u32, CMDQ_PROD::Register>),
        (0x009c => pub cmdq_cons: ReadWrite<u32, CMDQ_CONS::Register>),
        (0x00a0 => pub eventq_base: ReadWrite<u64, Q_BASE::Register>),
        // 0xA8/0xAC on page 0 are not the event queue pointers: those live
        // on page 1 (only some errata parts alias them here).
        (0x00a8 => _reserved5),
        (0x00b0 => pub eventq_irq_cfg0: ReadWrite<u64>),
        (0x00b8 => pub eventq_irq_cfg1: ReadWrite<u32>),
        (0x00bc => pub eventq_irq_cfg2: ReadWrite<u32>),
        (0x00c0 => _reserved6),
        (0x100a8 => pub eventq_prod: ReadWrite<u32, EVENTQ_PROD::Register>),
        (0x100ac => pub eventq_cons: ReadWrite<u32, EVENTQ_CONS::Register>),
        (0x100b0 => @END),
    }
}

/// Register offsets from the start of the SMMU frame, derived from
/// [`SmmuRegisterBlock`] so that there is a single source of truth.
pub mod offset {
    use super::{SmmuRegisterBlock, offset_of};

    pub const IDR0: usize = offset_of!(SmmuRegisterBlock, idr0);
    pub const IDR1: usize = offset_of!(SmmuRegisterBlock, idr1);
    pub const IDR2: usize = offset_of!(SmmuRegisterBlock, idr2);
    pub const IDR3: usize = offset_of!(SmmuRegisterBlock, idr3);
    pub const IDR4: usize = offset_of!(SmmuRegisterBlock, idr4);
    pub const IDR5: usize = offset_of!(SmmuRegisterBlock, idr5);
    pub const IIDR: usize = offset_of!(SmmuRegisterBlock, iidr);
    pub const AIDR: usize = offset_of!(SmmuRegisterBlock, aidr);
    pub const CR0: usize = offset_of!(SmmuRegisterBlock, cr0);
    pub const CR0ACK: usize = offset_of!(SmmuRegisterBlock, cr0ack);
    pub const CR1: usize = offset_of!(SmmuRegisterBlock, cr1);
    pub const CR2: usize = offset_of!(SmmuRegisterBlock, cr2);
    pub const STATUSR: usize = offset_of!(SmmuRegisterBlock, statusr);
    pub const GBPA: usize = offset_of!(SmmuRegisterBlock, gbpa);
    pub const IRQ_CTRL: usize = offset_of!(SmmuRegisterBlock, irq_ctrl);
    pub const IRQ_CTRLACK: usize = offset_of!(SmmuRegisterBlock, irq_ctrlack);
    pub const GERROR: usize = offset_of!(SmmuRegisterBlock, gerror);
    pub const GERRORN: usize = offset_of!(SmmuRegisterBlock, gerrorn);
    pub const GERROR_IRQ_CFG0: usize = offset_of!(SmmuRegisterBlock, gerror_irq_cfg0);
    pub const STRTAB_BASE: usize = offset_of!(SmmuRegisterBlock, strtab_base);
    pub const STRTAB_BASE_CFG: usize = offset_of!(SmmuRegisterBlock, strtab_base_cfg);
    pub const CMDQ_BASE: usize = offset_of!(SmmuRegisterBlock, cmdq_base);
    pub const CMDQ_PROD: usize = offset_of!(SmmuRegisterBlock, cmdq_prod);
    pub const CMDQ_CONS: usize = offset_of!(SmmuRegisterBlock, cmdq_cons);
    pub const EVENTQ_BASE: usize = offset_of!(SmmuRegisterBlock, eventq_base);
    pub const EVENTQ_IRQ_CFG0: usize = offset_of!(SmmuRegisterBlock, eventq_irq_cfg0);
    pub const EVENTQ_PROD: usize = offset_of!(SmmuRegisterBlock, eventq_prod);
    pub const EVENTQ_CONS: usize = offset_of!(SmmuRegisterBlock, eventq_cons);
}

/// Size of the SMMU register frame the driver needs mapped: page 0 and
/// page 1, 64 KiB each.
pub const FRAME_SIZE: usize = 0x2_0000;

/// The hardware boundary: 32- and 64-bit accesses to the SMMU register frame
/// by byte offset (see [`offset`]).
///
/// Implementations must order accesses like Linux's `readl`/`writel`: every
/// write is ordered after all earlier normal-memory accesses of this CPU
/// (queue entries and STEs written before a PROD update must be visible to
/// the SMMU), and every read is ordered before later normal-memory reads
/// (event records must not be read before the PROD value that covers them).
/// [`MmioRegs`] does this with barriers; fakes get it for free.
pub trait SmmuRegs {
    fn read32(&self, offset: usize) -> u32;
    fn write32(&self, offset: usize, value: u32);
    fn read64(&self, offset: usize) -> u64;
    fn write64(&self, offset: usize, value: u64);
}

impl<T: SmmuRegs + ?Sized> SmmuRegs for &T {
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        (**self).read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        (**self).write64(offset, value)
    }
}

/// Real MMIO access to an SMMU register frame.
#[derive(Debug)]
pub struct MmioRegs {
    base: usize,
}

impl MmioRegs {
    /// # Safety
    ///
    /// `base` must be the virtual address of this SMMU's register frame
    /// ([`FRAME_SIZE`] bytes: page 0 and page 1), mapped as Device memory for
    /// as long as the returned value (and anything built on it) lives, and
    /// nothing else may program these registers meanwhile.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    /// Address of a register; panics on an offset outside the frame or
    /// misaligned for the access size, which would be a driver bug.
    fn addr(&self, offset: usize, size: usize) -> usize {
        assert!(
            offset.is_multiple_of(size) && offset + size <= FRAME_SIZE,
            "SMMU register offset {offset:#x} out of frame"
        );
        self.base + offset
    }
}

/// Before an MMIO write: complete every earlier memory access, so that the
/// SMMU sees queue entries and STEs before the register write that tells it
/// to look, and so that reads of a slot finish before CONS frees it.
#[inline(always)]
fn barrier_before_mmio_write() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `dsb sy` only waits for outstanding memory accesses; it changes
    // no register or memory state. No `nomem`, so it is also a compiler
    // barrier.
    unsafe {
        core::arch::asm!("dsb sy", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}

/// After an MMIO read: later memory reads (event records, reused command
/// slots) must not be performed before the register value that allows them.
#[inline(always)]
fn barrier_after_mmio_read() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `dsb ld` only orders loads; no state is changed.
    unsafe {
        core::arch::asm!("dsb ld", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}

impl SmmuRegs for MmioRegs {
    fn read32(&self, offset: usize) -> u32 {
        let addr = self.addr(offset, 4);
        // SAFETY: `new`'s contract makes [base, base + FRAME_SIZE) a live
        // Device mapping of the SMMU frame; `addr` is inside it and 4-byte
        // aligned.
        let value = unsafe { read_volatile(addr as *const u32) };
        barrier_after_mmio_read();
        value
    }

    fn write32(&self, offset: usize, value: u32) {
        let addr = self.addr(offset, 4);
        barrier_before_mmio_write();
        // SAFETY: as in `read32`; the frame is exclusively ours to program.
        unsafe { write_volatile(addr as *mut u32, value) }
    }

    fn read64(&self, offset: usize) -> u64 {
        let addr = self.addr(offset, 8);
        // SAFETY: as in `read32`, 8-byte aligned. 64-bit registers accept
        // single 64-bit accesses.
        let value = unsafe { read_volatile(addr as *const u64) };
        barrier_after_mmio_read();
        value
    }

    fn write64(&self, offset: usize, value: u64) {
        let addr = self.addr(offset, 8);
        barrier_before_mmio_write();
        // SAFETY: as in `read64`.
        unsafe { write_volatile(addr as *mut u64, value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tock_registers::LocalRegisterCopy;

    #[test]
    fn offsets_match_the_architecture() {
        assert_eq!(offset::IDR0, 0x0);
        assert_eq!(offset::IDR1, 0x4);
        assert_eq!(offset::IDR3, 0xc);
        assert_eq!(offset::IDR5, 0x14);
        assert_eq!(offset::IIDR, 0x18);
        assert_eq!(offset::AIDR, 0x1c);
        assert_eq!(offset::CR0, 0x20);
        assert_eq!(offset::CR0ACK, 0x24);
        assert_eq!(offset::CR1, 0x28);
        assert_eq!(offset::CR2, 0x2c);
        assert_eq!(offset::STATUSR, 0x40);
        assert_eq!(offset::GBPA, 0x44);
        assert_eq!(offset::IRQ_CTRL, 0x50);
        assert_eq!(offset::IRQ_CTRLACK, 0x54);
        assert_eq!(offset::GERROR, 0x60);
        assert_eq!(offset::GERRORN, 0x64);
        assert_eq!(offset::GERROR_IRQ_CFG0, 0x68);
        assert_eq!(offset::STRTAB_BASE, 0x80);
        assert_eq!(offset::STRTAB_BASE_CFG, 0x88);
        assert_eq!(offset::CMDQ_BASE, 0x90);
        assert_eq!(offset::CMDQ_PROD, 0x98);
        assert_eq!(offset::CMDQ_CONS, 0x9c);
        assert_eq!(offset::EVENTQ_BASE, 0xa0);
        assert_eq!(offset::EVENTQ_IRQ_CFG0, 0xb0);
        assert_eq!(offset::EVENTQ_PROD, 0x100a8);
        assert_eq!(offset::EVENTQ_CONS, 0x100ac);
        const { assert!(offset::EVENTQ_CONS + 4 <= FRAME_SIZE) };
    }

    #[test]
    fn field_layouts_decode_known_values() {
        // QEMU virt: IDR0 = 0x0d44101b.
        let idr0 = LocalRegisterCopy::<u32, IDR0::Register>::new(0x0d44_101b);
        assert!(idr0.is_set(IDR0::S2P) && idr0.is_set(IDR0::S1P));
        assert_eq!(idr0.read(IDR0::TTF), 2);
        assert!(idr0.is_set(IDR0::COHACC));
        assert!(!idr0.is_set(IDR0::HYP));
        assert!(idr0.is_set(IDR0::ASID16) && idr0.is_set(IDR0::VMID16));
        assert_eq!(idr0.read(IDR0::TTENDIAN), 2);
        assert_eq!(idr0.read(IDR0::STALL_MODEL), 1);
        assert!(idr0.is_set(IDR0::TERM_MODEL));
        assert_eq!(idr0.read(IDR0::ST_LEVEL), 1);

        let idr1 = LocalRegisterCopy::<u32, IDR1::Register>::new(0x0273_0010);
        assert_eq!(idr1.read(IDR1::SIDSIZE), 16);
        assert_eq!(idr1.read(IDR1::SSIDSIZE), 0);
        assert_eq!(idr1.read(IDR1::EVENTQS), 19);
        assert_eq!(idr1.read(IDR1::CMDQS), 19);

        let cons = LocalRegisterCopy::<u32, CMDQ_CONS::Register>::new(0x0100_0005);
        assert_eq!(cons.read(CMDQ_CONS::ERR), 1);
        assert_eq!(cons.read(CMDQ_CONS::RD), 5);

        // Encodings used by the enable sequence.
        let cr1 = (CR1::QUEUE_IC::WriteBack
            + CR1::QUEUE_OC::WriteBack
            + CR1::QUEUE_SH::Inner
            + CR1::TABLE_IC::WriteBack
            + CR1::TABLE_OC::WriteBack
            + CR1::TABLE_SH::Inner)
            .value;
        assert_eq!(cr1, 0b11_01_01_11_01_01);
        assert_eq!((CR2::RECINVSID::SET + CR2::PTM::SET).value, 0b110);
        assert_eq!((GBPA::ABORT::SET + GBPA::UPDATE::SET).value, 0x8010_0000);
        assert_eq!(
            (Q_BASE::RWA::SET + Q_BASE::ADDR.val(0x4000_1000 >> 5) + Q_BASE::LOG2SIZE.val(8)).value,
            (1 << 62) | 0x4000_1000 | 8
        );
        assert_eq!(
            (STRTAB_BASE_CFG::FMT::TwoLevel
                + STRTAB_BASE_CFG::SPLIT.val(8)
                + STRTAB_BASE_CFG::LOG2SIZE.val(16))
            .value,
            (1 << 16) | (8 << 6) | 16
        );
    }
}

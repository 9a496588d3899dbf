//! virtio-iommu layouts and constants (virtio 1.2, "IOMMU Device"; the
//! same values as Linux's `include/uapi/linux/virtio_iommu.h`).
//!
//! Every multi-byte field is little-endian. Requests are decoded from a
//! copy of their device-readable bytes into [`Request`]; replies, probe
//! properties and fault records are encoded into byte arrays. Nothing here
//! touches EL1 memory.

use super::iommu_backend::{Fault, FaultReason, ReservedKind, ReservedRegion};

/// The virtio device ID of an IOMMU.
pub const DEVICE_ID: u32 = 23;

/// The request queue's index.
pub const REQUEST_QUEUE: u16 = 0;
/// The event queue's index.
pub const EVENT_QUEUE: u16 = 1;

/// Device feature bits.
pub mod feature {
    pub const INPUT_RANGE: u64 = 1 << 0;
    pub const DOMAIN_RANGE: u64 = 1 << 1;
    pub const MAP_UNMAP: u64 = 1 << 2;
    pub const BYPASS: u64 = 1 << 3;
    pub const PROBE: u64 = 1 << 4;
    pub const MMIO: u64 = 1 << 5;
    pub const BYPASS_CONFIG: u64 = 1 << 6;
}

/// Request types.
pub mod req_type {
    pub const ATTACH: u8 = 1;
    pub const DETACH: u8 = 2;
    pub const MAP: u8 = 3;
    pub const UNMAP: u8 = 4;
    pub const PROBE: u8 = 5;
}

/// A request's status, written in its tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    IoErr = 1,
    Unsupp = 2,
    DevErr = 3,
    Inval = 4,
    Range = 5,
    NoEnt = 6,
    Fault = 7,
    NoMem = 8,
}

/// `ATTACH` flag: attach to a bypass domain.
pub const ATTACH_F_BYPASS: u32 = 1;

/// `MAP` flags.
pub mod map_flags {
    pub const READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const MMIO: u32 = 1 << 2;
    pub const ALL: u32 = READ | WRITE | MMIO;
}

/// Bytes of a request's tail (status and 3 reserved bytes).
pub const TAIL_LEN: usize = 4;

/// Probe property type of a reserved memory region.
pub const PROBE_T_RESV_MEM: u16 = 1;
/// Bytes of one RESV_MEM property, header included.
pub const RESV_MEM_PROPERTY_LEN: usize = 24;

/// Fault record flags.
pub mod fault_flags {
    pub const READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const ADDRESS: u32 = 1 << 8;
}

/// Bytes of a fault record on the event queue.
pub const FAULT_RECORD_LEN: usize = 24;

/// Bytes of the device configuration space.
pub const CONFIG_LEN: usize = 40;

/// A decoded request (the device-readable part, without its tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Attach {
        domain: u32,
        endpoint: u32,
        flags: u32,
        /// Whether the reserved bytes (which must be zero) are not.
        reserved_set: bool,
    },
    Detach {
        domain: u32,
        endpoint: u32,
    },
    Map {
        domain: u32,
        virt_start: u64,
        virt_end: u64,
        phys_start: u64,
        flags: u32,
    },
    Unmap {
        domain: u32,
        virt_start: u64,
        virt_end: u64,
        reserved_set: bool,
    },
    Probe {
        endpoint: u32,
    },
}

/// The longest device-readable part of any request (PROBE's).
pub const MAX_REQUEST_LEN: usize = 72;

/// The device-readable bytes a request of type `ty` has, header included:
/// its structure up to the tail. `None` for an unknown type.
pub const fn request_len(ty: u8) -> Option<usize> {
    match ty {
        req_type::ATTACH | req_type::DETACH => Some(20),
        req_type::MAP => Some(36),
        req_type::UNMAP => Some(28),
        req_type::PROBE => Some(MAX_REQUEST_LEN),
        _ => None,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Request {
    /// Decodes a request from its device-readable bytes. `None` if the
    /// type is unknown or `bytes` is shorter than [`request_len`]. The
    /// head's reserved bytes are ignored (virtio 1.2: the device MUST).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let ty = *bytes.first()?;
        if bytes.len() < request_len(ty)? {
            return None;
        }
        Some(match ty {
            req_type::ATTACH => Self::Attach {
                domain: u32_at(bytes, 4),
                endpoint: u32_at(bytes, 8),
                flags: u32_at(bytes, 12),
                reserved_set: u32_at(bytes, 16) != 0,
            },
            req_type::DETACH => Self::Detach {
                domain: u32_at(bytes, 4),
                endpoint: u32_at(bytes, 8),
            },
            req_type::MAP => Self::Map {
                domain: u32_at(bytes, 4),
                virt_start: u64_at(bytes, 8),
                virt_end: u64_at(bytes, 16),
                phys_start: u64_at(bytes, 24),
                flags: u32_at(bytes, 32),
            },
            req_type::UNMAP => Self::Unmap {
                domain: u32_at(bytes, 4),
                virt_start: u64_at(bytes, 8),
                virt_end: u64_at(bytes, 16),
                reserved_set: u32_at(bytes, 24) != 0,
            },
            _ => Self::Probe {
                endpoint: u32_at(bytes, 4),
            },
        })
    }

    /// The request's bytes (for drivers in tests): the inverse of
    /// [`decode`](Self::decode).
    #[cfg(test)]
    pub fn encode(&self) -> std::vec::Vec<u8> {
        let mut b = std::vec::Vec::new();
        let put32 = |b: &mut std::vec::Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
        match *self {
            Self::Attach {
                domain,
                endpoint,
                flags,
                reserved_set,
            } => {
                b.extend_from_slice(&[req_type::ATTACH, 0, 0, 0]);
                put32(&mut b, domain);
                put32(&mut b, endpoint);
                put32(&mut b, flags);
                put32(&mut b, u32::from(reserved_set));
            }
            Self::Detach { domain, endpoint } => {
                b.extend_from_slice(&[req_type::DETACH, 0, 0, 0]);
                put32(&mut b, domain);
                put32(&mut b, endpoint);
                b.extend_from_slice(&[0; 8]);
            }
            Self::Map {
                domain,
                virt_start,
                virt_end,
                phys_start,
                flags,
            } => {
                b.extend_from_slice(&[req_type::MAP, 0, 0, 0]);
                put32(&mut b, domain);
                for v in [virt_start, virt_end, phys_start] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                put32(&mut b, flags);
            }
            Self::Unmap {
                domain,
                virt_start,
                virt_end,
                reserved_set,
            } => {
                b.extend_from_slice(&[req_type::UNMAP, 0, 0, 0]);
                put32(&mut b, domain);
                for v in [virt_start, virt_end] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                put32(&mut b, u32::from(reserved_set));
            }
            Self::Probe { endpoint } => {
                b.extend_from_slice(&[req_type::PROBE, 0, 0, 0]);
                put32(&mut b, endpoint);
                b.extend_from_slice(&[0; 64]);
            }
        }
        b
    }
}

/// `struct virtio_iommu_config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub page_size_mask: u64,
    /// Inclusive.
    pub input_range: (u64, u64),
    /// Inclusive.
    pub domain_range: (u32, u32),
    pub probe_size: u32,
    pub bypass: u8,
}

impl Config {
    pub fn encode(&self) -> [u8; CONFIG_LEN] {
        let mut b = [0; CONFIG_LEN];
        b[0..8].copy_from_slice(&self.page_size_mask.to_le_bytes());
        b[8..16].copy_from_slice(&self.input_range.0.to_le_bytes());
        b[16..24].copy_from_slice(&self.input_range.1.to_le_bytes());
        b[24..28].copy_from_slice(&self.domain_range.0.to_le_bytes());
        b[28..32].copy_from_slice(&self.domain_range.1.to_le_bytes());
        b[32..36].copy_from_slice(&self.probe_size.to_le_bytes());
        b[36] = self.bypass;
        b
    }
}

/// A RESV_MEM probe property for `region`.
pub fn resv_mem_property(region: &ReservedRegion) -> [u8; RESV_MEM_PROPERTY_LEN] {
    let mut b = [0; RESV_MEM_PROPERTY_LEN];
    b[0..2].copy_from_slice(&PROBE_T_RESV_MEM.to_le_bytes());
    // The length excludes the 4-byte property header.
    b[2..4].copy_from_slice(&((RESV_MEM_PROPERTY_LEN - 4) as u16).to_le_bytes());
    b[4] = match region.kind {
        ReservedKind::Reserved => 0,
        ReservedKind::Msi => 1,
    };
    b[8..16].copy_from_slice(&region.start.to_le_bytes());
    b[16..24].copy_from_slice(&region.end.to_le_bytes());
    b
}

/// The event-queue record of `fault`.
pub fn fault_record(fault: &Fault) -> [u8; FAULT_RECORD_LEN] {
    let mut b = [0; FAULT_RECORD_LEN];
    b[0] = match fault.reason {
        FaultReason::Unknown => 0,
        FaultReason::Domain => 1,
        FaultReason::Mapping => 2,
    };
    let mut flags = 0;
    if fault.read {
        flags |= fault_flags::READ;
    }
    if fault.write {
        flags |= fault_flags::WRITE;
    }
    if let Some(address) = fault.address {
        flags |= fault_flags::ADDRESS;
        b[16..24].copy_from_slice(&address.to_le_bytes());
    }
    b[4..8].copy_from_slice(&flags.to_le_bytes());
    b[8..12].copy_from_slice(&fault.endpoint.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_round_trips_and_shorter_bytes_are_refused() {
        let reqs = [
            Request::Attach {
                domain: 7,
                endpoint: 0x10,
                flags: 1,
                reserved_set: true,
            },
            Request::Detach {
                domain: 7,
                endpoint: 0x10,
            },
            Request::Map {
                domain: 1,
                virt_start: 0x1000,
                virt_end: 0x1fff,
                phys_start: 0x4000_0000,
                flags: 3,
            },
            Request::Unmap {
                domain: 1,
                virt_start: 0,
                virt_end: u64::MAX,
                reserved_set: false,
            },
            Request::Probe { endpoint: 8 },
        ];
        for r in reqs {
            let b = r.encode();
            assert_eq!(Some(b.len()), request_len(b[0]));
            assert_eq!(Request::decode(&b), Some(r));
            assert_eq!(Request::decode(&b[..b.len() - 1]), None);
        }
        assert_eq!(Request::decode(&[]), None);
        assert_eq!(Request::decode(&[6; 80]), None);
        assert_eq!(Request::decode(&[0; 80]), None);
    }

    #[test]
    fn the_head_reserved_bytes_are_ignored() {
        let mut b = Request::Probe { endpoint: 3 }.encode();
        b[1..4].copy_from_slice(&[0xff; 3]);
        b[8..].fill(0xee);
        assert_eq!(Request::decode(&b), Some(Request::Probe { endpoint: 3 }));
    }

    #[test]
    fn layouts_match_the_spec_offsets() {
        let c = Config {
            page_size_mask: 0x4020_1000,
            input_range: (0, (1 << 48) - 1),
            domain_range: (0, 31),
            probe_size: 128,
            bypass: 0,
        }
        .encode();
        assert_eq!(&c[0..8], &0x4020_1000u64.to_le_bytes());
        assert_eq!(&c[16..24], &((1u64 << 48) - 1).to_le_bytes());
        assert_eq!(&c[28..32], &31u32.to_le_bytes());
        assert_eq!(&c[32..36], &128u32.to_le_bytes());
        assert_eq!(c[36], 0);

        let p = resv_mem_property(&ReservedRegion {
            start: 0x0809_0000,
            end: 0x0809_ffff,
            kind: ReservedKind::Msi,
        });
        assert_eq!(&p[0..4], &[1, 0, 20, 0]);
        assert_eq!(p[4..8], [1, 0, 0, 0]);
        assert_eq!(&p[8..16], &0x0809_0000u64.to_le_bytes());
        assert_eq!(&p[16..24], &0x0809_ffffu64.to_le_bytes());

        let f = fault_record(&Fault {
            endpoint: 8,
            reason: FaultReason::Mapping,
            read: false,
            write: true,
            address: Some(0xdead_0000),
        });
        assert_eq!(f[0..4], [2, 0, 0, 0]);
        assert_eq!(&f[4..8], &(0x102u32).to_le_bytes());
        assert_eq!(&f[8..12], &8u32.to_le_bytes());
        assert_eq!(&f[12..16], &[0; 4]);
        assert_eq!(&f[16..24], &0xdead_0000u64.to_le_bytes());
        let f = fault_record(&Fault {
            endpoint: 9,
            reason: FaultReason::Domain,
            read: true,
            write: false,
            address: None,
        });
        assert_eq!(f[0], 1);
        assert_eq!(&f[4..8], &1u32.to_le_bytes());
        assert_eq!(&f[16..24], &[0; 8]);
    }
}

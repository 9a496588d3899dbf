//! Bus mastering: the COMMAND register's Bus Master Enable. Without it a
//! function issues no memory request (no DMA, no MSI write), and a bridge
//! forwards none from its secondary side upstream (PCI Local Bus 3.0,
//! 6.2.2; PCI-to-PCI Bridge 1.2, 3.2.2.1; PCIe Base, "Command Register").
//!
//! The hyp turns it on for no function at boot: a device may DMA only once
//! the kernel that drives it says so (Linux's `pci_set_master`, which also
//! enables the bridges above the device), by which time the SMMUs translate
//! or abort its requests. Functions of a host bridge whose requesters an
//! SMMU does not all translate have it turned off, since EL1 never reaches
//! their configuration space to do so.

use super::{Bdf, ConfigSpace, bridge, header};
use core::ops::RangeInclusive;

/// Writes the command register of `bdf` with bus mastering `on` or off.
/// Only the low half is written: the status register above it is
/// write-1-to-clear.
fn set(cfg: &dyn ConfigSpace, bdf: Bdf, on: bool) {
    let command = cfg.read32(bdf, header::COMMAND) & 0xffff;
    let command = if on {
        command | header::COMMAND_BUS_MASTER
    } else {
        command & !header::COMMAND_BUS_MASTER
    };
    cfg.write32(bdf, header::COMMAND, command);
}

/// Turns bus mastering on for `bdf` and for every bridge on `buses` that
/// forwards its bus (the bridges between it and the host bridge), as a
/// driver does before its device's first DMA.
pub fn enable(cfg: &dyn ConfigSpace, bdf: Bdf, buses: RangeInclusive<u8>) {
    for bus in buses {
        for device in 0..32 {
            for function in 0..8 {
                let at = Bdf::new(bus, device, function);
                if cfg.read32(at, header::VENDOR_DEVICE) & 0xffff == 0xffff {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                let header_dword = cfg.read32(at, header::HEADER_TYPE_DWORD);
                if header_dword & header::HEADER_TYPE_MASK == header::HEADER_TYPE_BRIDGE {
                    let (_, below) = bridge::bus_numbers(cfg, at);
                    if below.secondary != 0
                        && (below.secondary..=below.subordinate).contains(&bdf.bus)
                    {
                        set(cfg, at, true);
                    }
                }
                if function == 0 && header_dword & header::HEADER_MULTI_FUNCTION == 0 {
                    break;
                }
            }
        }
    }
    set(cfg, bdf, true);
}

/// Turns bus mastering off on every function of `functions` (bridges
/// included); memory decoding stays as it is.
pub fn disable(cfg: &dyn ConfigSpace, functions: impl IntoIterator<Item = Bdf>) {
    for bdf in functions {
        set(cfg, bdf, false);
    }
}

#[cfg(test)]
mod tests {
    use super::super::enumerate::{Function, MAX_FUNCTIONS, enumerate};
    use super::super::fake::{
        BAR_1M, EDU, FakeEcam, Parent, ROOT_PORT, SWITCH_DOWN, SWITCH_UP, window,
    };
    use super::*;
    use heapless::Vec;

    fn master(ecam: &FakeEcam, id: usize) -> bool {
        ecam.reg(id, header::COMMAND) & header::COMMAND_BUS_MASTER != 0
    }

    /// Root port 00:01.0 -> switch up -> two downstream ports, an edu
    /// below each; a second root port with an edu. Enumerated.
    fn switch_tree() -> (FakeEcam, [usize; 8], Vec<Function, MAX_FUNCTIONS>) {
        let ecam = FakeEcam::default();
        let root = ecam.bridge(Parent::Root(0), 1, ROOT_PORT);
        let up = ecam.bridge(Parent::Bridge(root), 0, SWITCH_UP);
        let down0 = ecam.bridge(Parent::Bridge(up), 0, SWITCH_DOWN);
        let down1 = ecam.bridge(Parent::Bridge(up), 1, SWITCH_DOWN);
        let edu0 = ecam.device(Parent::Bridge(down0), 0, EDU, &BAR_1M);
        let edu1 = ecam.device(Parent::Bridge(down1), 0, EDU, &BAR_1M);
        let other_root = ecam.bridge(Parent::Root(0), 2, ROOT_PORT);
        let edu2 = ecam.device(Parent::Bridge(other_root), 0, EDU, &BAR_1M);
        let mut found = Vec::new();
        enumerate(&ecam, 0, 255, &[window()], &mut found).unwrap();
        let ids = [root, up, down0, down1, edu0, edu1, other_root, edu2];
        (ecam, ids, found)
    }

    #[test]
    fn a_device_gets_bus_mastering_with_every_bridge_above_it_and_nothing_else_does() {
        let (ecam, ids, found) = switch_tree();
        let [root, up, down0, down1, edu0, edu1, other_root, edu2] = ids;
        assert!(ids.iter().all(|&id| !master(&ecam, id)), "none after boot");
        let bdf = found
            .iter()
            .filter(|f| f.vendor == 0x1234)
            .map(|f| f.bdf)
            .next()
            .unwrap();
        enable(&ecam, bdf, 0..=255);
        for id in [edu0, down0, up, root] {
            assert!(master(&ecam, id), "function {id}: on the device's path");
        }
        for id in [edu1, down1, other_root, edu2] {
            assert!(!master(&ecam, id), "function {id}: elsewhere");
        }
        let memory = header::COMMAND_MEMORY;
        assert_eq!(ecam.reg(edu0, header::COMMAND) & memory, memory, "kept");
    }

    #[test]
    fn disabling_clears_bus_mastering_on_every_function_and_keeps_memory_decoding() {
        let (ecam, ids, found) = switch_tree();
        for f in &found {
            enable(&ecam, f.bdf, 0..=255);
        }
        assert!(ids.iter().all(|&id| master(&ecam, id)));
        disable(&ecam, found.iter().map(|f| f.bdf));
        for id in ids {
            assert!(!master(&ecam, id), "function {id}");
            let memory = header::COMMAND_MEMORY;
            assert_eq!(ecam.reg(id, header::COMMAND) & memory, memory);
        }
    }
}

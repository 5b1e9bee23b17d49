//! `e1000`: the logic of Axolotl's driver for Intel's e1000 family of NICs — the 82540EM and
//! 82545EM (QEMU's `e1000`, `e1000-82545em`) and the 82574L (QEMU's `e1000e`) — kept apart from
//! the driver program (`drivers/e1000d`) so that it is tested on the host:
//!
//! - [`regs`]: register offsets and bits; [`desc`]: the legacy descriptor layouts;
//! - [`mmio`]: the [`mmio::Registers`] trait the device is reached through (real MMIO, or a
//!   fake register file in the tests);
//! - [`dma`]: DMA memory given as (virtual base, physical base, length) and its division;
//! - [`ring`]: the RX and TX descriptor rings, over the driver's own buffers or a shared pool's,
//!   with every index and every value the device writes checked;
//! - [`model`]: the parts known by PCI id — the supported 82540EM, 82545EM and 82574L, and the
//!   chipset-integrated 82579, I217, I218 and I219, recognised but refused (with the reason);
//! - [`device`]: the bring-up sequence of a supported model (reset, link, MAC, rings);
//! - [`nic`]: one NIC with its rings and counters, the core the driver loop turns;
//! - [`napi`]: when to take interrupts and when to poll;
//! - [`path`]: the driver's end of the zero-copy data path to pf (docs/netpath.md): rx-pool
//!   buffers posted to the NIC and lent to pf, tx-pool frames sent and sent home;
//! - [`stats`]: the statistics registers, which QEMU does not clear on read;
//! - [`arp`]: Ethernet and ARP, for the driver's own gateway probe and ARP answers;
//! - [`proto`]: the statistics protocol the shell's `ifconfig` speaks over kernel IPC.
//!
//! No system calls and no allocation: `no_std` everywhere but in the tests.
#![cfg_attr(not(test), no_std)]

pub mod arp;
pub mod desc;
pub mod device;
pub mod dma;
#[cfg(test)]
pub mod fake;
pub mod mmio;
pub mod model;
pub mod napi;
pub mod nic;
pub mod path;
pub mod proto;
pub mod regs;
pub mod ring;
pub mod stats;

pub use arp::{Ipv4, Mac};
pub use device::{InitError, Model};
pub use mmio::{Mmio, Registers};
pub use nic::Nic;

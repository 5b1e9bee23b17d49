//! `ipd`: Axolotl's ip server (DESIGN.md §3, §6; binary `ip`) — Ethernet, ARP, IPv4 and ICMP
//! echo on the zero-copy data path (docs/netpath.md), between pf and, later, tcp and udp.
//!
//! - [`stack`]: the server's logic over the rx-pool (read in place) and the tx-pool (owned):
//!   each message from pf, each client request and each timer, without system calls, so that it
//!   is tested on the host. The protocols themselves are `netproto`'s.
//! - [`proto`]: the kernel-IPC protocol of its clients — the shell's `ping` (one echo per
//!   request, answered when the reply came or the timeout passed) and `ifconfig` (interface
//!   information, counters).
//!
//! - [`server`]: the loop body with the system calls — it maps the pools, the channels and its
//!   state region, asks the driver for the MAC address, and each round takes messages from pf
//!   in batches, IPC requests, timers, the outbox to pf. The program (`src/main.rs`) runs it on
//!   a CPU of its own and sleeps when idle; the single layout's netstack runs it beside the
//!   other servers. See README.md.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod proto;
pub mod server;
pub mod stack;

pub use proto::SERVICE;
pub use stack::Stack;

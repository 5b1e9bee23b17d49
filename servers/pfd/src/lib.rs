//! `pfd`: the packet filter server of Axolotl (process and binary `pf`), which sits on the data
//! path between the e1000 driver and ip (DESIGN.md §3, docs/netpath.md) and passes or drops every
//! IPv4 packet by the rules of the `pf` library. Frames travel by descriptor: pf reads the headers
//! in place, in the shared pool, and never copies a payload byte.
//!
//! This library is the part that needs no system call, tested on the host:
//!
//! - [`path`]: the forwarding core — four channels, two pool views, the rule set; one
//!   [`path::Path::round`] reads up to [`path::BATCH`] messages from each input, judges them and
//!   sends them on, holding what does not fit in a queue per output (allocated once, as many
//!   messages as the pools have buffers);
//! - [`ctl`]: the control protocol the shell's `pf list|add|del` speaks over kernel IPC, and the
//!   server's side of it ([`ctl::serve`]).
//!
//! [`server`] adds the system calls: it maps the regions, finds its peers, answers requests;
//! the program (`main.rs`) loops around it (forward, sleep when idle), and so does the single
//! layout's netstack.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod ctl;
pub mod path;
pub mod server;

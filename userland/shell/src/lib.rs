//! The Axolotl shell: reads lines on the serial console (prompt `axolotl> `), runs the commands
//! of DESIGN.md §9 that exist so far, and reports every failure the same way, which the test
//! runner relies on: one line `CMD: REASON`, then `[exit N]` with N non-zero. A success prints no
//! status line.
//!
//! Everything but the main loop lives in this library, which is `no_std` + `alloc` and is tested
//! on the host: line editing ([`line`]), splitting and number parsing ([`parse`]), the commands
//! over a [`Sys`] trait that `main.rs` implements with system calls ([`commands`]; `ifconfig` and
//! `lspci` in [`net`], `kill` and `restart` in [`procctl`], `pf` in [`pfctl`], `ping` in [`ping`]), and the `ps`/`stat` tables
//! ([`table`]); programs started on demand (`NAME ARGS`, `NAME ARGS &`, `jobs`) in [`jobs`].
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod commands;
pub mod jobs;
pub mod line;
pub mod net;
pub mod netcon;
pub mod parse;
pub mod pfctl;
pub mod ping;
pub mod procctl;
pub mod table;

pub use commands::{Failure, Sys, run_line};
pub use line::{Feed, LineEditor};

/// The prompt.
pub const PROMPT: &str = "axolotl> ";

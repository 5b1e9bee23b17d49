//! `pf`: the logic of Axolotl's packet filter server, which sits between the e1000 driver and
//! ip (DESIGN.md §3) and passes or drops every IPv4 packet by an ordered list of rules. The
//! server program is a thin loop around this library, which is tested on the host:
//!
//! - [`rule`]: one [`Rule`] and its parts — [`Verdict`], [`Direction`], [`Proto`],
//!   [`Ipv4Prefix`], [`PortRange`] — and how a rule matches a packet;
//! - [`ruleset`]: the [`RuleSet`] of at most [`MAX_RULES`] rules, first match wins, default
//!   allow, with per-rule hit counters and per-verdict [`Counters`];
//! - [`packet`]: [`PacketMeta`], the fields rules match on, read from untrusted IPv4 bytes;
//! - [`text`]: the text syntax of rules and of the shell's `pf list|add|del`, parsed with
//!   errors that name the wrong word, printed back in canonical form;
//! - [`state`]: the rule set's image in the state region kept across restarts (DESIGN.md §6).
//!
//! No system calls, no allocation, no `unsafe`: `no_std` everywhere but in the tests.
//!
//! # Grammar
//! A line is split into words at ASCII whitespace; keywords are lowercase and nothing else is
//! case-folded. `/` and `-` join the parts of one word: `10.0.2.0/24`, `1000-2000`.
//!
//! ```text
//! line      = [ "pf" ] command
//! command   = "list"
//!           / "add" [ number ] rule           ; number: the position, 1..=len+1; none: append
//!           / "del" number
//! rule      = verdict [ direction ] [ proto ] "from" endpoint "to" endpoint
//! verdict   = "allow" / "deny"
//! direction = "in" / "out" / "any"            ; left out: any
//! proto     = "tcp" / "udp" / "icmp" / "any"  ; left out: any
//! endpoint  = address [ "port" ports ]        ; "port" only if proto is tcp or udp
//! address   = "any" / ipv4 [ "/" length ]     ; "any" is 0.0.0.0/0; no length: /32
//! ipv4      = octet "." octet "." octet "." octet     ; octet: decimal 0..=255
//! length    = decimal 0..=32                  ; bits past it must be 0 in the address
//! ports     = port [ "-" port ]               ; first <= last; port: decimal 0..=65535
//! number    = decimal 1..=4294967295          ; a rule number as `pf list` shows it
//! decimal   = "0" / %x31-39 *DIGIT            ; no sign, no leading zeros
//! ```
//!
//! A rule stands alone ([`parse_rule`]) or in a command ([`parse_command`]); the rule runs to
//! the end of the line. After the verdict, `any` is read as the direction (both default to
//! `any`, so the meaning is the same). Examples:
//!
//! ```text
//! pf add deny in tcp from any to 10.0.2.15/32 port 7
//! pf add allow out udp from 10.0.2.0/24 port 1000-2000 to any
//! pf add 1 allow in icmp from 10.0.2.2 to any
//! pf del 3
//! pf list
//! ```
//!
//! Printing ([`Rule`]'s and [`Command`]'s `Display`) gives the canonical form: a direction or
//! protocol of `any` left out, `0.0.0.0/0` as `any`, other prefixes with their length
//! (`10.0.2.15/32`), a one-port range as one port. Parsing a printed rule gives the same rule,
//! and printing is idempotent on any text that parses.
//!
//! A syntax error is a [`ParseError`]: the position of the wrong word (from 1, a leading `pf`
//! counting), the word, and a [`ParseErrorKind`] — what the grammar expected there, or what is
//! wrong with the address, prefix length, port or rule number.
//!
//! # Semantics
//! - A packet matches a rule when its direction, protocol, source and destination all match;
//!   and for each side where the rule names ports, the packet has ports and its port is in
//!   range. Only TCP and UDP packets at fragment offset zero have ports: a non-first fragment
//!   is matched only by rules that name no ports ([`packet`] explains why that is safe).
//! - The first matching rule decides; its hit counter goes up. No match: allow.
//! - A packet pf cannot read (too short, not version 4, bad lengths, a TCP/UDP first fragment
//!   without its ports) is denied and counted as malformed ([`RuleSet::filter_ipv4`]).
//! - Non-IPv4 frames (ARP ...) are not pf's to judge: [`packet::ipv4_in_ethernet`] returns
//!   `None` for them and the server passes them on.
#![cfg_attr(not(test), no_std)]

pub mod packet;
pub mod rule;
pub mod ruleset;
pub mod state;
pub mod text;

pub use packet::{PacketError, PacketMeta};
pub use rule::{Direction, Ipv4Prefix, PortRange, Proto, Rule, RuleError, Verdict};
pub use ruleset::{Counters, Decision, Listing, MAX_RULES, Reason, RuleSet, RuleSetError};
pub use state::{Restored, StateError};
pub use text::{Command, Expected, ParseError, ParseErrorKind, parse_command, parse_rule};

//! Packet bytes from the wire: extraction never panics, ports appear only where they exist,
//! and the rule set's decision agrees with its counters. The first byte picks the direction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf::{Direction, PacketMeta, Reason, RuleSet, Verdict, parse_rule};

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let dir = if first & 1 == 0 {
        Direction::In
    } else {
        Direction::Out
    };
    let meta = PacketMeta::from_ipv4(bytes, dir);
    if let Ok(meta) = meta {
        assert_eq!(meta.sport.is_some(), meta.dport.is_some());
        assert!(meta.sport.is_none() || meta.proto == 6 || meta.proto == 17);
    }
    let mut set = RuleSet::new();
    for text in [
        "deny in tcp from any to any port 7",
        "allow out udp from 10.0.0.0/8 port 1000-2000 to any",
        "deny icmp from 10.0.2.2 to any",
        "deny in from 0.0.0.0/1 to any",
    ] {
        set.push(parse_rule(text).unwrap()).unwrap();
    }
    let decision = set.filter_ipv4(dir, bytes);
    match decision.reason {
        Reason::Rule(n) => assert_eq!(decision.verdict, set.rules()[n - 1].verdict),
        Reason::Default => assert_eq!(decision.verdict, Verdict::Allow),
        Reason::Malformed(e) => assert_eq!(meta, Err(e)),
    }
    let _ = pf::packet::ipv4_in_ethernet(bytes);
});

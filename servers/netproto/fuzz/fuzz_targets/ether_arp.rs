//! Ethernet frames and ARP packets, and the ARP cache driven by the input as operations.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netproto::fuzzing::ether_arp(data));

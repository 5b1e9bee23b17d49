//! IPv4 packets (the first byte says which checksums to repair) and the ICMP messages in them,
//! the echo reply builder, the checksum.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netproto::fuzzing::ipv4_icmp_target(data));

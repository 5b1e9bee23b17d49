//! Whole frames through the demultiplexer (the first byte says which checksums to repair), and
//! the DHCP, state-region and prefix parsers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netproto::fuzzing::demux(data));

//! Host tests of the engine: scripted peers ([`protocol`]) and the real iperf3 ([`interop`]),
//! over `std::net` ([`hostnet`]).

mod hostnet;
mod interop;
mod protocol;

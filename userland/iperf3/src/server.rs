//! The server (`iperf3 -s`): accepts a control connection, drives the test through its states,
//! accepts the data streams that carry the test's cookie (others get ACCESS_DENIED), moves data
//! until the client's TEST_END, exchanges results and prints the summary. It follows iperf3's
//! `iperf_run_server`/`iperf_handle_message_server`.

use alloc::format;
use alloc::vec::Vec;

use crate::proto::{
    CONTROL_TIMEOUT_NS, COOKIE_SIZE, Cookie, IEBLOCKSIZE, State, StreamResult, TestParams,
    TestResults, frame_json, read_byte, read_exact, read_json, stream_id, write_server_error,
    write_state,
};
use crate::report;
use crate::transfer::{
    DataStream, IDLE_WAIT_NS, Meter, SEC_NS, StreamTotal, alloc_buffer, poll_control,
    print_summary, recv_round, secs, send_block, unexpected_state,
};
use crate::{Conn, Direction, Error, Net, Output, Role, ServerOptions, Summary};

/// What the server was doing when `accept` on the listener failed.
const ACCEPTING: &str = "accepting a connection";
/// How long a new data connection may take to present its cookie.
const STREAM_COOKIE_TIMEOUT_NS: u64 = 5_000_000_000;
/// Connections without the test's cookie tolerated while the streams are being opened.
const MAX_REFUSED: u32 = 16;
/// Time the server grants the client beyond the test's duration to end it (iperf3's grace
/// period: 4 s of round trip for each of 10 state transitions).
const GRACE_S: u64 = 40;

/// Runs the server: listens on the port, then serves one test after another (only one with
/// `one_off`). After each test it prints an error line if the test failed and last the
/// `iperf3: role=server ...` line. Returns after the first test with `one_off`, or when the
/// listener fails.
pub fn run_server<N: Net>(net: &mut N, opts: &ServerOptions, out: Output<'_>) -> Result<(), Error> {
    let mut summary = Summary {
        role: Role::Server,
        dir: Direction::Recv,
        bytes: 0,
        seconds: 0.0,
    };
    let mut listener = match net.listen(opts.port) {
        Ok(l) => l,
        Err(error) => {
            let e = Error::Net {
                during: "listening",
                error,
            };
            out(&format!("iperf3: error - {e}"));
            out(&summary.line());
            return Err(e);
        }
    };
    loop {
        out("-----------------------------------------------------------");
        out(&format!("Server listening on {}", opts.port));
        out("-----------------------------------------------------------");
        summary.dir = Direction::Recv;
        summary.bytes = 0;
        summary.seconds = 0.0;
        let r = serve_one(net, &mut listener, out, &mut summary);
        if let Err(e) = &r {
            out(&format!("iperf3: error - {e}"));
        }
        out(&summary.line());
        let listener_broken = matches!(
            r,
            Err(Error::Net {
                during: ACCEPTING,
                ..
            })
        );
        if opts.one_off || listener_broken {
            return r;
        }
    }
}

fn serve_one<N: Net>(
    net: &mut N,
    listener: &mut N::Listener,
    out: Output<'_>,
    sum: &mut Summary,
) -> Result<(), Error> {
    let (mut ctrl, peer) = net.accept(listener).map_err(Error::net(ACCEPTING))?;
    out(&format!(
        "Accepted connection from {}, port {}",
        peer.ip(),
        peer.port()
    ));
    let mut raw = [0u8; COOKIE_SIZE];
    read_exact(
        &mut ctrl,
        &mut raw,
        CONTROL_TIMEOUT_NS,
        "reading the client's cookie",
    )?;
    let cookie = Cookie::from_wire(raw)?;

    write_state(&mut ctrl, State::ParamExchange, "asking for the parameters")?;
    let params = match TestParams::from_json(&read_json(&mut ctrl, "client parameters")?) {
        Ok(p) => p,
        Err(e) => {
            let _ = write_server_error(&mut ctrl, e.ierrno());
            return Err(Error::Params(e));
        }
    };
    let mut buf = match alloc_buffer(params.block_len) {
        Ok(b) => b,
        Err(e) => {
            let _ = write_server_error(&mut ctrl, IEBLOCKSIZE);
            return Err(e);
        }
    };
    let sending = params.reverse;
    sum.dir = if sending {
        Direction::Send
    } else {
        Direction::Recv
    };

    write_state(&mut ctrl, State::CreateStreams, "asking for the streams")?;
    let mut streams = Vec::new();
    let mut refused = 0;
    while streams.len() < params.parallel as usize {
        let (mut c, from) = net
            .accept(listener)
            .map_err(Error::net("accepting a data stream"))?;
        let mut got = [0u8; COOKIE_SIZE];
        let ours = read_exact(
            &mut c,
            &mut got,
            STREAM_COOKIE_TIMEOUT_NS,
            "reading a stream's cookie",
        )
        .is_ok()
            && got == *cookie.as_bytes();
        if ours {
            let label = 5 + streams.len() as u32;
            out(&format!(
                "[{}] connected to {} port {}",
                report::label(label),
                from.ip(),
                from.port()
            ));
            streams.push(DataStream::new(c, stream_id(streams.len()), label));
        } else {
            // Another client, or a stranger: iperf3 answers it ACCESS_DENIED and closes.
            let _ = c.write_all(&[State::AccessDenied.byte()]);
            refused += 1;
            if refused > MAX_REFUSED {
                return Err(Error::Protocol(
                    "too many connections without the test's cookie".into(),
                ));
            }
        }
    }
    ctrl.write_all(&[State::TestStart.byte(), State::TestRunning.byte()])
        .map_err(Error::net("starting the test"))?;

    // The data phase: the client ends it with TEST_END.
    let start = net.now_ns();
    let limit = (params.time_s > 0).then(|| {
        start.saturating_add(
            (u64::from(params.time_s) + u64::from(params.omit_s) + GRACE_S) * SEC_NS,
        )
    });
    let mut meter = Meter::new(start);
    let mut turn = 0;
    let mut now;
    let during = "waiting for the end of the test";
    loop {
        let mut wait = 0;
        if sending {
            for s in streams.iter_mut() {
                send_block(&mut s.conn, &buf, params.block_len)
                    .map_err(Error::net("writing a data stream"))?;
                s.bytes += u64::from(params.block_len);
                s.interval_bytes += u64::from(params.block_len);
            }
        } else if streams.iter().any(|s| s.open) {
            recv_round(&mut streams, &mut buf, IDLE_WAIT_NS, &mut turn)?;
        } else {
            // Every stream has ended: only the control connection is left to wait on.
            wait = 10 * IDLE_WAIT_NS;
        }
        now = net.now_ns();
        if let Some(b) = poll_control(&mut ctrl, wait, during)? {
            if b == State::TestEnd.byte() {
                break;
            }
            return Err(unexpected_state(&mut ctrl, b, "TestEnd"));
        }
        sum.bytes = streams.iter().map(|s| s.bytes).sum();
        sum.seconds = secs(now - start);
        meter.tick(now, &mut streams, out);
        if limit.is_some_and(|l| now > l) {
            return Err(Error::Protocol(
                "the client did not end the test in time".into(),
            ));
        }
    }
    meter.finish(now, &mut streams, out);
    let seconds = secs(now - start);
    sum.bytes = streams.iter().map(|s| s.bytes).sum();
    sum.seconds = seconds;
    let totals: Vec<StreamTotal> = streams
        .iter()
        .map(|s| StreamTotal {
            label: s.label,
            id: s.id,
            bytes: s.bytes,
        })
        .collect();
    let own = TestResults {
        cpu_util_total: 0.0,
        cpu_util_user: 0.0,
        cpu_util_system: 0.0,
        sender_has_retransmits: if sending { 0 } else { -1 },
        streams: streams
            .iter()
            .map(|s| StreamResult {
                id: s.id,
                bytes: s.bytes,
                retransmits: -1,
                jitter: 0.0,
                errors: 0,
                packets: 0,
                start_time: 0.0,
                end_time: seconds,
            })
            .collect(),
    };
    // iperf3 closes the data streams on TEST_END, before the results.
    drop(streams);

    write_state(
        &mut ctrl,
        State::ExchangeResults,
        "starting the results exchange",
    )?;
    let peer = TestResults::from_json(&read_json(&mut ctrl, "client results")?)?;
    ctrl.write_all(&frame_json(&own.to_json(), &[State::DisplayResults.byte()]))
        .map_err(Error::net("sending the results"))?;
    print_summary(out, &totals, seconds, sum.dir, Some(&peer));
    // The client closes with IPERF_DONE; a client that just hangs up is fine too.
    match read_byte(&mut ctrl, "waiting for IPERF_DONE") {
        Ok(b) if b == State::IperfDone.byte() => {}
        Ok(b) => return Err(unexpected_state(&mut ctrl, b, "IperfDone")),
        Err(Error::ControlClosed { .. }) => {}
        Err(e) => return Err(e),
    }
    let _ = ctrl.shutdown();
    Ok(())
}

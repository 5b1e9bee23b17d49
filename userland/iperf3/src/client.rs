//! The client (`iperf3 -c`): connects, sends the cookie and the parameters when the server asks
//! for them, opens the data streams, moves data until the time or byte count is reached, ends
//! the test, exchanges results and prints the summary. It follows iperf3's
//! `iperf_run_client`/`iperf_handle_message_client`.

use alloc::format;
use alloc::vec::Vec;

use crate::proto::{
    Cookie, State, StreamResult, TestParams, TestResults, frame_json, read_byte, read_json,
    stream_id, write_state,
};
use crate::report;
use crate::transfer::{
    DataStream, Draining, IDLE_WAIT_NS, Meter, SEC_NS, StreamTotal, alloc_buffer, poll_control,
    print_summary, recv_round, secs, send_block, unexpected_state,
};
use crate::{ClientOptions, Conn, Direction, Error, Net, Output, Role, Summary};

/// Runs one test as a client. Prints iperf3-style lines through `out`, then, whatever
/// happened, an error line if the test failed and last the `iperf3: role=client ...` line
/// (with what was moved before a failure).
pub fn run_client<N: Net>(
    net: &mut N,
    opts: &ClientOptions,
    out: Output<'_>,
) -> Result<Summary, Error> {
    let mut summary = Summary {
        role: Role::Client,
        dir: if opts.reverse {
            Direction::Recv
        } else {
            Direction::Send
        },
        bytes: 0,
        seconds: 0.0,
    };
    let r = client(net, opts, out, &mut summary);
    if let Err(e) = &r {
        out(&format!("iperf3: error - {e}"));
    }
    out(&summary.line());
    r.map(|()| summary)
}

/// Waits for the state `wanted`; anything else is an error (with the server's reason when it
/// sends one).
fn expect<C: Conn>(ctrl: &mut C, wanted: State) -> Result<(), Error> {
    let b = read_byte(ctrl, "waiting for the server")?;
    if b == wanted.byte() {
        Ok(())
    } else {
        Err(unexpected_state(ctrl, b, &format!("{wanted:?}")))
    }
}

/// Sends the client's results (`own`, framed), reads the server's and its DISPLAY_RESULTS.
fn exchange_results<C: Conn>(ctrl: &mut C, own: &[u8]) -> Result<TestResults, Error> {
    ctrl.write_all(own)
        .map_err(Error::net("sending the results"))?;
    let peer = TestResults::from_json(&read_json(ctrl, "server results")?)?;
    expect(ctrl, State::DisplayResults)?;
    Ok(peer)
}

fn client<N: Net>(
    net: &mut N,
    o: &ClientOptions,
    out: Output<'_>,
    sum: &mut Summary,
) -> Result<(), Error> {
    o.validate()?;
    let sending = !o.reverse;
    let mut buf = alloc_buffer(o.block_len)?;
    let addr = o.server;
    out(&format!(
        "Connecting to host {}, port {}",
        addr.ip(),
        addr.port()
    ));
    if o.reverse {
        out(&format!(
            "Reverse mode, remote host {} is sending",
            addr.ip()
        ));
    }
    let mut ctrl = net
        .connect(addr)
        .map_err(Error::net("connecting to the server"))?;
    let seed = net.now_ns() ^ (u64::from(u32::from(*addr.ip())) << 16) ^ u64::from(addr.port());
    let cookie = Cookie::generate(seed);
    ctrl.write_all(cookie.as_bytes())
        .map_err(Error::net("sending the cookie"))?;

    expect(&mut ctrl, State::ParamExchange)?;
    let params = TestParams {
        time_s: o.time_s,
        omit_s: 0,
        bytes: o.bytes,
        parallel: o.parallel,
        reverse: o.reverse,
        block_len: o.block_len,
    };
    ctrl.write_all(&frame_json(&params.to_json(), &[]))
        .map_err(Error::net("sending the parameters"))?;

    expect(&mut ctrl, State::CreateStreams)?;
    let mut streams = Vec::new();
    for i in 0..o.parallel as usize {
        let mut c = net
            .connect(addr)
            .map_err(Error::net("opening a data stream"))?;
        c.write_all(cookie.as_bytes())
            .map_err(Error::net("sending a data stream's cookie"))?;
        let label = 5 + i as u32;
        out(&format!(
            "[{}] connected to {} port {}",
            report::label(label),
            addr.ip(),
            addr.port()
        ));
        streams.push(DataStream::new(c, stream_id(i), label));
    }
    expect(&mut ctrl, State::TestStart)?;
    expect(&mut ctrl, State::TestRunning)?;

    // The data phase: this side decides when it ends.
    let start = net.now_ns();
    let end_ns = start.saturating_add(u64::from(o.time_s) * SEC_NS);
    let mut meter = Meter::with_interval(start, o.interval_ns);
    let mut turn = 0;
    let mut total = 0u64;
    let mut now;
    loop {
        if sending {
            for s in streams.iter_mut() {
                send_block(&mut s.conn, &buf, o.block_len)
                    .map_err(Error::net("writing a data stream"))?;
                s.bytes += u64::from(o.block_len);
                s.interval_bytes += u64::from(o.block_len);
                total += u64::from(o.block_len);
                if o.bytes != 0 && total >= o.bytes {
                    break;
                }
            }
        } else {
            total += recv_round(&mut streams, &mut buf, IDLE_WAIT_NS, &mut turn)?;
            if streams.iter().all(|s| !s.open) {
                return Err(Error::Protocol(
                    "the server closed the data streams before the end of the test".into(),
                ));
            }
        }
        if let Some(b) = poll_control(&mut ctrl, 0, "watching the control connection")? {
            return Err(unexpected_state(&mut ctrl, b, "the end of the test"));
        }
        now = net.now_ns();
        sum.bytes = total;
        sum.seconds = secs(now - start);
        meter.tick(now, &mut streams, out);
        if (o.time_s != 0 && now >= end_ns) || (o.bytes != 0 && total >= o.bytes) {
            break;
        }
    }
    meter.finish(now, &mut streams, out);
    let seconds = secs(now - start);
    write_state(&mut ctrl, State::TestEnd, "ending the test")?;

    // Until the exchange is over, a receiving client keeps draining what the server still
    // sends: the server may block on a full window and never read TEST_END, and the bytes in
    // flight share the rx pool with the control connection (iperf3 does the same).
    let clock = || net.now_ns();
    let during = "waiting for the results exchange";
    let b = if sending {
        read_byte(&mut ctrl, during)?
    } else {
        read_byte(
            &mut Draining::new(&mut ctrl, &mut streams, &mut buf, &clock),
            during,
        )?
    };
    if b != State::ExchangeResults.byte() {
        return Err(unexpected_state(&mut ctrl, b, "ExchangeResults"));
    }
    sum.bytes = streams.iter().map(|s| s.bytes).sum();
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
    let own = frame_json(&own.to_json(), &[]);
    let peer = if sending {
        exchange_results(&mut ctrl, &own)?
    } else {
        exchange_results(
            &mut Draining::new(&mut ctrl, &mut streams, &mut buf, &clock),
            &own,
        )?
    };

    let totals: Vec<StreamTotal> = streams
        .iter()
        .map(|s| StreamTotal {
            label: s.label,
            id: s.id,
            bytes: s.bytes,
        })
        .collect();
    // Close the data streams before saying IPERF_DONE, as iperf3's client does.
    drop(streams);
    print_summary(out, &totals, seconds, sum.dir, Some(&peer));
    write_state(&mut ctrl, State::IperfDone, "saying IPERF_DONE")?;
    let _ = ctrl.shutdown();
    out("");
    out("iperf Done.");
    Ok(())
}

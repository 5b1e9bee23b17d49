//! The engine's state handling against scripted peers: what it writes, and how it takes refusals,
//! unknown states, malformed messages and hostile lengths. A scripted connection releases each
//! piece of its input only after the engine has made a given number of writes on it, the way a
//! real peer answers only what it was sent.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use crate::json::{self, Value};
use crate::proto::ParamError;
use crate::proto::{COOKIE_SIZE, Cookie, State, TestParams, TestResults, frame_json};
use crate::{ClientOptions, Conn, Error, Net, NetError, ServerOptions, run_client, run_server};

/// What a scripted connection was sent.
#[derive(Default)]
struct Sent {
    bytes: Vec<u8>,
    writes: usize,
    shut: bool,
}

/// Pieces of input, each released after that many writes.
type Pieces = VecDeque<(usize, Vec<u8>)>;

struct Script {
    /// Pieces of input, each released after that many writes (on `clock`).
    input: Rc<RefCell<Pieces>>,
    sent: Rc<RefCell<Sent>>,
    /// Whose writes release the pieces: this connection's own, unless [`Script::released_by`].
    clock: Rc<RefCell<Sent>>,
    /// Another connection whose released and unread input holds this one's back once this one
    /// made that many writes, the way bytes left unread on one connection can fill an rx pool
    /// that several share.
    behind: Option<(Box<Script>, usize)>,
}

impl Script {
    fn new(pieces: Vec<(usize, Vec<u8>)>) -> (Self, Rc<RefCell<Sent>>) {
        let sent = Rc::new(RefCell::new(Sent::default()));
        (
            Self {
                input: Rc::new(RefCell::new(pieces.into())),
                sent: sent.clone(),
                clock: sent.clone(),
                behind: None,
            },
            sent,
        )
    }

    /// Releases the pieces by the writes on another connection instead.
    fn released_by(mut self, other: &Rc<RefCell<Sent>>) -> Self {
        self.clock = other.clone();
        self
    }

    /// A view of this connection's input, for [`Script::behind`].
    fn watch(&self) -> Box<Script> {
        Box::new(Script {
            input: self.input.clone(),
            sent: self.sent.clone(),
            clock: self.clock.clone(),
            behind: None,
        })
    }

    /// True when a piece is released and not yet read.
    fn pending(&self) -> bool {
        let writes = self.clock.borrow().writes;
        self.input
            .borrow()
            .front()
            .is_some_and(|(after, _)| *after <= writes)
    }

    /// `Some(n)` bytes read, `Some(0)` at the end of the script, `None` while the next piece
    /// waits for more writes (or for the connection it is behind to be read).
    fn take(&mut self, buf: &mut [u8]) -> Option<usize> {
        let writes = self.sent.borrow().writes;
        if let Some((other, from)) = &self.behind
            && writes >= *from
            && other.pending()
        {
            return None;
        }
        let writes = self.clock.borrow().writes;
        let mut input = self.input.borrow_mut();
        let Some((after, piece)) = input.front_mut() else {
            return Some(0);
        };
        if *after > writes {
            return None;
        }
        let n = piece.len().min(buf.len());
        buf[..n].copy_from_slice(&piece[..n]);
        piece.drain(..n);
        if piece.is_empty() {
            input.pop_front();
        }
        Some(n)
    }
}

impl Conn for Script {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.take(buf).ok_or(NetError::TimedOut)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        let mut s = self.sent.borrow_mut();
        s.bytes.extend_from_slice(buf);
        s.writes += 1;
        Ok(())
    }

    fn read_timeout(&mut self, buf: &mut [u8], _: u64) -> Result<Option<usize>, NetError> {
        Ok(self.take(buf))
    }

    fn shutdown(&mut self) -> Result<(), NetError> {
        self.sent.borrow_mut().shut = true;
        Ok(())
    }
}

/// Hands out scripted connections in order, for `connect` and `accept` alike.
struct ScriptNet {
    conns: VecDeque<Script>,
    clock: Cell<u64>,
}

impl ScriptNet {
    fn new(conns: Vec<Script>) -> Self {
        Self {
            conns: conns.into(),
            clock: Cell::new(0),
        }
    }
}

impl Net for ScriptNet {
    type Conn = Script;
    type Listener = ();

    fn connect(&mut self, _: SocketAddrV4) -> Result<Script, NetError> {
        self.conns.pop_front().ok_or(NetError::Refused)
    }

    fn listen(&mut self, _: u16) -> Result<(), NetError> {
        Ok(())
    }

    fn accept(&mut self, _: &mut ()) -> Result<(Script, SocketAddrV4), NetError> {
        let peer = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000 + self.conns.len() as u16);
        self.conns
            .pop_front()
            .map(|c| (c, peer))
            .ok_or(NetError::TimedOut)
    }

    fn now_ns(&self) -> u64 {
        // A millisecond passes at every look at the clock.
        self.clock.set(self.clock.get() + 1_000_000);
        self.clock.get()
    }
}

fn options() -> ClientOptions {
    ClientOptions::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5201))
}

fn client_run(opts: &ClientOptions, conns: Vec<Script>) -> (Result<(), Error>, Vec<String>) {
    let mut net = ScriptNet::new(conns);
    let mut lines = Vec::new();
    let r = run_client(&mut net, opts, &mut |l: &str| lines.push(l.to_string()));
    (r.map(|_| ()), lines)
}

fn server_run(conns: Vec<Script>) -> (Result<(), Error>, Vec<String>) {
    let mut net = ScriptNet::new(conns);
    let mut lines = Vec::new();
    let opts = ServerOptions {
        port: 5201,
        one_off: true,
    };
    let r = run_server(&mut net, &opts, &mut |l: &str| lines.push(l.to_string()));
    (r, lines)
}

/// A framed JSON message.
fn frame(text: &str) -> Vec<u8> {
    let mut m = (text.len() as u32).to_be_bytes().to_vec();
    m.extend_from_slice(text.as_bytes());
    m
}

fn cookie() -> Cookie {
    Cookie::generate(42)
}

/// Splits what a client wrote on its control connection after the cookie into the framed
/// parameters and the rest.
fn sent_params(bytes: &[u8]) -> (Value, &[u8]) {
    Cookie::from_wire(bytes[..COOKIE_SIZE].try_into().expect("37 bytes")).expect("a cookie");
    let rest = &bytes[COOKIE_SIZE..];
    let n = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    (json::parse(&rest[4..4 + n]).expect("JSON"), &rest[4 + n..])
}

#[test]
fn cookie_shape_and_checks() {
    let c = Cookie::generate(1);
    let b = c.as_bytes();
    assert_eq!(b.len(), 37);
    assert_eq!(b[36], 0);
    assert!(
        b[..36]
            .iter()
            .all(|x| b"abcdefghijklmnopqrstuvwxyz234567".contains(x))
    );
    assert_eq!(Cookie::from_wire(*b), Ok(c));
    assert_ne!(Cookie::generate(2), c, "different seeds, different cookies");
    // All 32 characters show up over a few cookies (the 5-bit draw is not biased to a subset).
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        seen.extend(Cookie::generate(seed).as_bytes()[..36].iter().copied());
    }
    assert_eq!(seen.len(), 32);
    let mut bad = *b;
    bad[36] = b'a';
    assert!(Cookie::from_wire(bad).is_err(), "no NUL");
    let mut bad = *b;
    bad[3] = b'A';
    assert!(Cookie::from_wire(bad).is_err(), "upper case");
    let mut bad = *b;
    bad[0] = 0;
    assert!(Cookie::from_wire(bad).is_err(), "NUL inside");
}

#[test]
fn state_bytes_are_iperf3s() {
    let all = [
        (State::TestStart, 1u8),
        (State::TestRunning, 2),
        (State::TestEnd, 4),
        (State::ParamExchange, 9),
        (State::CreateStreams, 10),
        (State::ServerTerminate, 11),
        (State::ClientTerminate, 12),
        (State::ExchangeResults, 13),
        (State::DisplayResults, 14),
        (State::IperfDone, 16),
        (State::AccessDenied, 0xff),
        (State::ServerError, 0xfe),
    ];
    for (s, b) in all {
        assert_eq!(s.byte(), b, "{s:?}");
        assert_eq!(State::from_byte(b), Some(s));
    }
    for b in [0u8, 3, 5, 6, 7, 8, 15, 17, 0x7f, 0x80, 0xfd] {
        assert_eq!(State::from_byte(b), None, "{b}");
    }
}

#[test]
fn stream_ids_skip_two_like_iperf3() {
    let ids: Vec<i64> = (0..4).map(crate::proto::stream_id).collect();
    assert_eq!(ids, [1, 3, 4, 5]);
}

#[test]
fn params_round_trip_and_stock_message() {
    let p = TestParams {
        time_s: 3,
        omit_s: 0,
        bytes: 0,
        parallel: 2,
        reverse: true,
        block_len: 65536,
    };
    assert_eq!(TestParams::from_json(&p.to_json()), Ok(p));
    let stock = br#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#;
    let q = TestParams::from_json(&json::parse(stock).expect("JSON")).expect("accepted");
    assert_eq!(
        (q.time_s, q.parallel, q.reverse, q.block_len, q.bytes),
        (1, 1, false, 131072, 0)
    );
}

#[test]
fn params_refusals() {
    let refuse = |text: &str| {
        TestParams::from_json(&json::parse(text.as_bytes()).expect("JSON")).expect_err(text)
    };
    use ParamError as E;
    assert_eq!(refuse(r#"{"udp":true,"time":1}"#), E::Protocol("UDP"));
    assert_eq!(refuse(r#"{"sctp":true}"#), E::Protocol("SCTP"));
    assert_eq!(
        refuse(r#"{"tcp":true,"bidirectional":true}"#),
        E::Unsupported("bidirectional")
    );
    assert_eq!(refuse(r#"{"parallel":9}"#), E::Parallel(9));
    assert_eq!(refuse(r#"{"parallel":0}"#), E::Parallel(0));
    assert_eq!(refuse(r#"{"len":0}"#), E::BlockLen(0));
    assert_eq!(refuse(r#"{"len":1048577}"#), E::BlockLen(1048577));
    assert_eq!(refuse(r#"{"time":-1}"#), E::Time(-1));
    assert_eq!(refuse(r#"{"time":1e300}"#), E::BadField("time"));
    assert_eq!(refuse(r#"{"time":"10"}"#), E::BadField("time"));
    assert_eq!(refuse(r#"{"num":-5}"#), E::BadField("num"));
    assert_eq!(refuse(r#"{"parallel":1.5}"#), E::BadField("parallel"));
    assert_eq!(refuse(r#"[1]"#), E::NotAnObject);
    assert_eq!(E::Protocol("UDP").ierrno(), 131);
    assert_eq!(E::Parallel(9).ierrno(), 6);
    // A flag that says false is not set; unknown options are ignored.
    let p = TestParams::from_json(
        &json::parse(br#"{"udp":false,"reverse":false,"window":65536,"nodelay":true}"#)
            .expect("JSON"),
    )
    .expect("accepted");
    assert!(!p.reverse);
}

#[test]
fn results_from_stock_iperf3() {
    // What iperf3 3.12 sends as a receiving server (its -1s travel as 2^64 - 1).
    let stock = "{\n\t\"cpu_util_total\":\t43.942766486305032,\n\t\"cpu_util_user\":\t3.4991687913106722,\n\t\"cpu_util_system\":\t40.44349779010382,\n\t\"sender_has_retransmits\":\t1.8446744073709552e+19,\n\t\"congestion_used\":\t\"bbr\",\n\t\"streams\":\t[{\n\t\t\t\"id\":\t1,\n\t\t\t\"bytes\":\t1274019840,\n\t\t\t\"retransmits\":\t1.8446744073709552e+19,\n\t\t\t\"jitter\":\t0,\n\t\t\t\"errors\":\t0,\n\t\t\t\"packets\":\t0,\n\t\t\t\"start_time\":\t0,\n\t\t\t\"end_time\":\t1.000586\n\t\t}, {\n\t\t\t\"id\":\t3,\n\t\t\t\"bytes\":\t1.25304832e+17,\n\t\t\t\"retransmits\":\t6,\n\t\t\t\"jitter\":\t0,\n\t\t\t\"errors\":\t0,\n\t\t\t\"packets\":\t0\n\t\t}]\n}";
    let r = TestResults::from_json(&json::parse(stock.as_bytes()).expect("JSON")).expect("ok");
    assert_eq!(r.sender_has_retransmits, -1);
    assert_eq!(r.streams.len(), 2);
    assert_eq!((r.streams[0].id, r.streams[0].bytes), (1, 1_274_019_840));
    assert_eq!(r.streams[0].retransmits, -1);
    assert!((r.streams[0].seconds() - 1.000586).abs() < 1e-9);
    assert_eq!(r.streams[1].bytes, 125_304_832_000_000_000);
    assert_eq!(r.streams[1].seconds(), 0.0, "times missing: 0");
    assert_eq!(r.stream(3).map(|s| s.retransmits), Some(6));
    // What we send reads back the same.
    assert_eq!(TestResults::from_json(&r.to_json()), Ok(r));
}

#[test]
fn results_refusals() {
    let refuse = |text: &str| {
        let v = json::parse(text.as_bytes()).expect("JSON");
        assert!(TestResults::from_json(&v).is_err(), "{text} accepted");
    };
    let head =
        r#""cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"sender_has_retransmits":0"#;
    let stream = r#""id":1,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0"#;
    assert!(
        TestResults::from_json(
            &json::parse(format!("{{{head},\"streams\":[{{{stream}}}]}}").as_bytes())
                .expect("JSON")
        )
        .is_ok()
    );
    refuse(&format!("{{\"streams\":[{{{stream}}}]}}"));
    refuse(&format!("{{{head}}}"));
    refuse(&format!("{{{head},\"streams\":{{}}}}"));
    refuse(&format!("{{{head},\"streams\":[1]}}"));
    for field in ["id", "bytes", "retransmits", "jitter", "errors", "packets"] {
        let partial: Vec<&str> = stream
            .split(',')
            .filter(|kv| !kv.starts_with(&format!("\"{field}\"")))
            .collect();
        refuse(&format!(
            "{{{head},\"streams\":[{{{}}}]}}",
            partial.join(",")
        ));
    }
    refuse(&format!(
        "{{{head},\"streams\":[{{{}}}]}}",
        stream.replace("\"bytes\":5", "\"bytes\":-5")
    ));
    refuse(&format!(
        "{{{head},\"streams\":[{{{}}}]}}",
        stream.replace("\"bytes\":5", "\"bytes\":5.5")
    ));
    let many = vec![format!("{{{stream}}}"); 129].join(",");
    refuse(&format!("{{{head},\"streams\":[{many}]}}"));
}

#[test]
fn client_takes_access_denied() {
    let (ctrl, sent) = Script::new(vec![(1, vec![State::AccessDenied.byte()])]);
    let (r, lines) = client_run(&options(), vec![ctrl]);
    assert_eq!(r, Err(Error::AccessDenied));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("iperf3: error - the server is busy"))
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("iperf3: role=client dir=send bytes=0 seconds=0.00 gbps=0.0000")
    );
    assert_eq!(
        sent.borrow().bytes.len(),
        COOKIE_SIZE,
        "only the cookie was sent"
    );
}

#[test]
fn client_takes_server_error_and_sends_its_params() {
    let mut refusal = vec![State::ServerError.byte()];
    refusal.extend_from_slice(&131i32.to_be_bytes());
    refusal.extend_from_slice(&0i32.to_be_bytes());
    let (ctrl, sent) = Script::new(vec![(1, vec![State::ParamExchange.byte()]), (2, refusal)]);
    let mut o = options();
    o.reverse = true;
    o.parallel = 3;
    o.time_s = 7;
    o.block_len = 1000;
    let (r, lines) = client_run(&o, vec![ctrl]);
    assert_eq!(
        r,
        Err(Error::ServerError {
            code: 131,
            errno: 0
        })
    );
    assert!(
        lines.iter().any(|l| l.contains("protocol does not exist")),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("iperf3: role=client dir=recv "))
    );
    let sent = sent.borrow();
    let (params, rest) = sent_params(&sent.bytes);
    assert!(rest.is_empty());
    assert_eq!(params.get("tcp"), Some(&Value::Bool(true)));
    assert_eq!(params.get("reverse"), Some(&Value::Bool(true)));
    let int = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_number)
            .and_then(|n| n.as_i64())
    };
    assert_eq!(
        (
            int("time"),
            int("parallel"),
            int("len"),
            int("num"),
            int("omit")
        ),
        (Some(7), Some(3), Some(1000), Some(0), Some(0))
    );
}

#[test]
fn client_refuses_unknown_states_and_takes_terminations() {
    let (ctrl, _) = Script::new(vec![(1, vec![77])]);
    let (r, _) = client_run(&options(), vec![ctrl]);
    assert!(
        matches!(&r, Err(Error::Protocol(m)) if m.contains("unknown state byte 77")),
        "{r:?}"
    );
    // A known state at the wrong time.
    let (ctrl, _) = Script::new(vec![(1, vec![State::TestRunning.byte()])]);
    let (r, _) = client_run(&options(), vec![ctrl]);
    assert!(
        matches!(&r, Err(Error::Protocol(m)) if m.contains("TestRunning")),
        "{r:?}"
    );
    let (ctrl, _) = Script::new(vec![
        (1, vec![State::ParamExchange.byte()]),
        (2, vec![State::ServerTerminate.byte()]),
    ]);
    let (r, _) = client_run(&options(), vec![ctrl]);
    assert_eq!(r, Err(Error::ServerTerminated));
    let (ctrl, _) = Script::new(vec![]);
    let (r, lines) = client_run(&options(), vec![ctrl]);
    assert!(matches!(r, Err(Error::ControlClosed { .. })), "{r:?}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("iperf3: role=client"))
    );
    // Nobody listening.
    let (r, _) = client_run(&options(), vec![]);
    assert!(
        matches!(
            r,
            Err(Error::Net {
                error: NetError::Refused,
                ..
            })
        ),
        "{r:?}"
    );
}

/// A server's results for one stream of `bytes` (`-1`: "no retransmit count" for a receiver).
fn one_stream_results(bytes: u64, retransmits: i64) -> TestResults {
    TestResults {
        cpu_util_total: 1.0,
        cpu_util_user: 0.5,
        cpu_util_system: 0.5,
        sender_has_retransmits: if retransmits < 0 { -1 } else { 0 },
        streams: vec![crate::proto::StreamResult {
            id: 1,
            bytes,
            retransmits,
            jitter: 0.0,
            errors: 0,
            packets: 0,
            start_time: 0.0,
            end_time: 0.5,
        }],
    }
}

/// A server's control connection for a test that runs to the end: it answers the client's
/// writes (cookie, params, TEST_END, results, IPERF_DONE) in turn, the last with `results`.
fn control_to_the_end(results: &TestResults) -> (Script, Rc<RefCell<Sent>>) {
    let mut last = frame_json(&results.to_json(), &[]);
    last.push(State::DisplayResults.byte());
    Script::new(vec![
        (1, vec![State::ParamExchange.byte()]),
        (
            2,
            vec![
                State::CreateStreams.byte(),
                State::TestStart.byte(),
                State::TestRunning.byte(),
            ],
        ),
        (3, vec![State::ExchangeResults.byte()]),
        (4, last),
    ])
}

/// The client's results and what it wrote after them, from its control connection's bytes
/// (after TEST_END).
fn client_results(ctrl: &[u8]) -> (TestResults, &[u8]) {
    let (_, rest) = sent_params(ctrl);
    assert_eq!(rest[0], State::TestEnd.byte());
    let n = u32::from_be_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
    let ours = TestResults::from_json(&json::parse(&rest[5..5 + n]).expect("JSON")).expect("ok");
    (ours, &rest[5 + n..])
}

#[test]
fn client_byte_count_test_end_to_end() {
    let (ctrl, ctrl_sent) = control_to_the_end(&one_stream_results(262_144, -1));
    let (data, data_sent) = Script::new(vec![]);
    let mut o = options();
    o.time_s = 0;
    o.bytes = 256 * 1024;
    let (r, lines) = client_run(&o, vec![ctrl, data]);
    assert_eq!(r, Ok(()), "{lines:?}");
    let data_sent = data_sent.borrow();
    assert_eq!(data_sent.bytes.len(), COOKIE_SIZE + 256 * 1024);
    assert!(
        data_sent
            .bytes
            .starts_with(cookie_of(&ctrl_sent.borrow().bytes))
    );
    let ctrl_sent = ctrl_sent.borrow();
    let (ours, after) = client_results(&ctrl_sent.bytes);
    assert_eq!((ours.streams[0].id, ours.streams[0].bytes), (1, 262_144));
    assert_eq!(ours.sender_has_retransmits, 0);
    assert_eq!(after, &[State::IperfDone.byte()]);
    assert!(ctrl_sent.shut);
    let text = lines.join("\n");
    assert!(
        text.contains("sender") && text.contains("receiver"),
        "{text}"
    );
    assert!(text.contains("  256 KBytes"), "{text}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("iperf3: role=client dir=send bytes=262144 ")),
        "{text}"
    );
}

/// A receiving client keeps reading its data stream until the results exchange is over: the
/// bytes the server had in flight at the end arrive after the client sent its results, and
/// until they are read the server's results cannot come (they share a full rx pool).
#[test]
fn receiving_client_drains_its_streams_through_the_results_exchange() {
    let (mut ctrl, ctrl_sent) = control_to_the_end(&one_stream_results(300 * 1024, 0));
    let tail = 44 * 1024;
    let (data, _) = Script::new(vec![(2, vec![7; 256 * 1024]), (4, vec![7; tail])]);
    let data = data.released_by(&ctrl_sent);
    // Once the client sent its results, the bytes still in flight fill the pool.
    ctrl.behind = Some((data.watch(), 4));
    let mut o = options();
    o.reverse = true;
    o.time_s = 0;
    o.bytes = 256 * 1024;
    let (r, lines) = client_run(&o, vec![ctrl, data]);
    assert_eq!(r, Ok(()), "{lines:?}");
    let ctrl_sent = ctrl_sent.borrow();
    let (ours, after) = client_results(&ctrl_sent.bytes);
    // Our results are what had arrived when the server asked for them.
    assert_eq!((ours.streams[0].id, ours.streams[0].bytes), (1, 256 * 1024));
    assert_eq!(ours.sender_has_retransmits, -1);
    assert_eq!(after, &[State::IperfDone.byte()]);
    let text = lines.join("\n");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("iperf3: role=client dir=recv bytes=262144 ")),
        "{text}"
    );
}

fn cookie_of(control: &[u8]) -> &[u8] {
    &control[..COOKIE_SIZE]
}

/// What a client sends first on its control connection: cookie, then the parameters.
fn client_opening(params: &str) -> Vec<(usize, Vec<u8>)> {
    vec![(0, cookie().as_bytes().to_vec()), (1, frame(params))]
}

fn server_error_bytes(code: i32) -> Vec<u8> {
    let mut m = vec![State::ParamExchange.byte(), State::ServerError.byte()];
    m.extend_from_slice(&code.to_be_bytes());
    m.extend_from_slice(&0i32.to_be_bytes());
    m
}

#[test]
fn server_refuses_udp_sctp_and_too_many_streams_with_server_error() {
    for (params, code) in [
        (r#"{"udp":true,"time":1,"parallel":1,"len":1460}"#, 131),
        (r#"{"sctp":true,"time":1}"#, 131),
        (r#"{"tcp":true,"bidirectional":true}"#, 13),
        (r#"{"tcp":true,"parallel":9}"#, 6),
        (r#"{"tcp":true,"len":2097152}"#, 7),
    ] {
        let (ctrl, sent) = Script::new(client_opening(params));
        let (r, lines) = server_run(vec![ctrl]);
        assert!(matches!(r, Err(Error::Params(_))), "{params}: {r:?}");
        assert_eq!(sent.borrow().bytes, server_error_bytes(code), "{params}");
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("iperf3: role=server dir=recv bytes=0 ")),
            "{lines:?}"
        );
    }
    let (ctrl, _) = Script::new(client_opening(r#"{"udp":true}"#));
    let (_, lines) = server_run(vec![ctrl]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("UDP tests are not supported")),
        "{lines:?}"
    );
}

#[test]
fn server_refuses_hostile_control_messages() {
    // A giant length prefix: refused before anything is allocated or read.
    let (ctrl, _) = Script::new(vec![
        (0, cookie().as_bytes().to_vec()),
        (1, vec![0xff, 0xff, 0xff, 0xff]),
    ]);
    let (r, _) = server_run(vec![ctrl]);
    assert_eq!(r, Err(Error::MessageTooLong(u32::MAX)));
    // Bad JSON, and JSON nested far too deep.
    let (ctrl, _) = Script::new(client_opening(r#"{"tcp":tru}"#));
    let (r, _) = server_run(vec![ctrl]);
    assert!(matches!(r, Err(Error::Json { .. })), "{r:?}");
    let (ctrl, _) = Script::new(client_opening(&"[".repeat(5000)));
    let (r, _) = server_run(vec![ctrl]);
    assert!(matches!(r, Err(Error::Json { .. })), "{r:?}");
    // A message shorter than announced, then the end of the stream.
    let (ctrl, _) = Script::new(vec![
        (0, cookie().as_bytes().to_vec()),
        (1, vec![0, 0, 0, 100, b'{']),
    ]);
    let (r, _) = server_run(vec![ctrl]);
    assert!(matches!(r, Err(Error::ControlClosed { .. })), "{r:?}");
    // A malformed cookie: nothing is answered.
    let mut bad = *cookie().as_bytes();
    bad[0] = b'!';
    let (ctrl, sent) = Script::new(vec![(0, bad.to_vec())]);
    let (r, _) = server_run(vec![ctrl]);
    assert!(
        matches!(&r, Err(Error::Protocol(m)) if m.contains("cookie")),
        "{r:?}"
    );
    assert!(sent.borrow().bytes.is_empty());
    // A short cookie.
    let (ctrl, _) = Script::new(vec![(0, b"abc".to_vec())]);
    let (r, _) = server_run(vec![ctrl]);
    assert!(matches!(r, Err(Error::ControlClosed { .. })), "{r:?}");
}

#[test]
fn server_test_end_to_end_with_a_stranger_denied() {
    let client_results = TestResults {
        cpu_util_total: 0.0,
        cpu_util_user: 0.0,
        cpu_util_system: 0.0,
        sender_has_retransmits: 0,
        streams: vec![crate::proto::StreamResult {
            id: 1,
            bytes: 5000,
            retransmits: -1,
            jitter: 0.0,
            errors: 0,
            packets: 0,
            start_time: 0.0,
            end_time: 0.25,
        }],
    };
    // Server writes on control: PARAM_EXCHANGE, CREATE_STREAMS, TEST_START+TEST_RUNNING,
    // EXCHANGE_RESULTS, results+DISPLAY_RESULTS.
    let mut pieces = client_opening(r#"{"tcp":true,"time":1,"parallel":1,"len":8192}"#);
    pieces.push((3, vec![State::TestEnd.byte()]));
    pieces.push((4, frame_json(&client_results.to_json(), &[])));
    pieces.push((5, vec![State::IperfDone.byte()]));
    let (ctrl, ctrl_sent) = Script::new(pieces);
    // Another client's control connection arrives while the streams are being opened.
    let (stranger, stranger_sent) = Script::new(vec![(0, Cookie::generate(7).as_bytes().to_vec())]);
    let mut data = cookie().as_bytes().to_vec();
    data.extend(std::iter::repeat_n(b'x', 5000));
    let (stream, _) = Script::new(vec![(0, data)]);
    let (r, lines) = server_run(vec![ctrl, stranger, stream]);
    assert_eq!(r, Ok(()), "{lines:?}");
    assert_eq!(stranger_sent.borrow().bytes, [State::AccessDenied.byte()]);
    let sent = ctrl_sent.borrow();
    let b = &sent.bytes;
    assert_eq!(
        &b[..5],
        &[9, 10, 1, 2, 13],
        "PARAM_EXCHANGE, CREATE_STREAMS, TEST_START, TEST_RUNNING, EXCHANGE_RESULTS"
    );
    let n = u32::from_be_bytes(b[5..9].try_into().expect("4 bytes")) as usize;
    let ours = TestResults::from_json(&json::parse(&b[9..9 + n]).expect("JSON")).expect("ok");
    assert_eq!((ours.streams[0].id, ours.streams[0].bytes), (1, 5000));
    assert_eq!(ours.sender_has_retransmits, -1, "a receiver says -1");
    assert_eq!(&b[9 + n..], &[State::DisplayResults.byte()]);
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("iperf3: role=server dir=recv bytes=5000 ")),
        "{lines:?}"
    );
}

//! iperf3's control protocol: the state bytes, the cookie, JSON framing, and the parameter and
//! result messages, as esnet/iperf 3.12 writes and reads them (`iperf_api.h`, `iperf_api.c`:
//! `send_parameters`/`get_parameters`, `send_results`/`get_results`, `JSON_write`/`JSON_read`).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::json::{self, Number, Value};
use crate::{Conn, Error, MAX_BLOCK_LEN, MAX_PARALLEL, MAX_TIME_S, NetError};

/// Bytes of the cookie: 36 characters and a NUL (iperf3's `COOKIE_SIZE`).
pub const COOKIE_SIZE: usize = 37;
/// The characters of a cookie (iperf3's `make_cookie`).
pub const COOKIE_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Longest JSON control message accepted; longer announced lengths are refused unread.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Most streams a results message may list (iperf3's `MAX_STREAMS`).
pub const MAX_RESULT_STREAMS: usize = 128;
/// How long a control read waits with no progress before the peer is given up.
pub const CONTROL_TIMEOUT_NS: u64 = 20_000_000_000;

/// A state byte on the control connection (a signed char on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum State {
    /// The server starts the data phase.
    TestStart = 1,
    /// The data is flowing.
    TestRunning = 2,
    /// The client ends the test.
    TestEnd = 4,
    /// The server asks for the parameters.
    ParamExchange = 9,
    /// The server asks the client to open the data streams.
    CreateStreams = 10,
    /// The server is going away (a signal).
    ServerTerminate = 11,
    /// The client is going away (a signal).
    ClientTerminate = 12,
    /// Both sides send their results, client first.
    ExchangeResults = 13,
    /// The client may print its summary.
    DisplayResults = 14,
    /// The client is done.
    IperfDone = 16,
    /// The server is busy with another test.
    AccessDenied = -1,
    /// The server refuses the test; two big-endian `i32`s follow (`i_errno`, `errno`).
    ServerError = -2,
}

impl State {
    /// The state a byte stands for, if any.
    pub fn from_byte(b: u8) -> Option<State> {
        Some(match b as i8 {
            1 => State::TestStart,
            2 => State::TestRunning,
            4 => State::TestEnd,
            9 => State::ParamExchange,
            10 => State::CreateStreams,
            11 => State::ServerTerminate,
            12 => State::ClientTerminate,
            13 => State::ExchangeResults,
            14 => State::DisplayResults,
            16 => State::IperfDone,
            -1 => State::AccessDenied,
            -2 => State::ServerError,
            _ => return None,
        })
    }

    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        self as i8 as u8
    }
}

/// A test's cookie: 36 characters of [`COOKIE_ALPHABET`] and a NUL. It names the test on the
/// control connection and on every data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie([u8; COOKIE_SIZE]);

impl Cookie {
    /// A cookie drawn from `seed` (a clock reading is enough: it tells tests apart, it is not
    /// a secret in iperf3 either).
    pub fn generate(seed: u64) -> Cookie {
        let mut state = seed;
        let mut c = [0u8; COOKIE_SIZE];
        let mut bits = 0u64;
        let mut have = 0;
        for slot in c.iter_mut().take(COOKIE_SIZE - 1) {
            if have < 5 {
                bits = splitmix64(&mut state);
                have = 64;
            }
            *slot = COOKIE_ALPHABET[(bits & 31) as usize];
            bits >>= 5;
            have -= 5;
        }
        Cookie(c)
    }

    /// Checks a cookie read from the wire: 36 alphabet characters, then a NUL.
    pub fn from_wire(bytes: [u8; COOKIE_SIZE]) -> Result<Cookie, Error> {
        let (text, nul) = bytes.split_at(COOKIE_SIZE - 1);
        if nul != [0] || !text.iter().all(|b| COOKIE_ALPHABET.contains(b)) {
            return Err(Error::Protocol("malformed cookie".into()));
        }
        Ok(Cookie(bytes))
    }

    /// The 37 bytes on the wire.
    pub fn as_bytes(&self) -> &[u8; COOKIE_SIZE] {
        &self.0
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The id iperf3 gives the `index`-th stream of a test (0-based): 1, 3, 4, 5, ... — its
/// `iperf_add_stream` skips 2, and both sides must agree because results name streams by id.
pub fn stream_id(index: usize) -> i64 {
    if index == 0 { 1 } else { index as i64 + 2 }
}

/// Reads exactly `buf.len()` bytes; gives up when a read waits `timeout_ns` without progress.
pub fn read_exact<C: Conn>(
    c: &mut C,
    buf: &mut [u8],
    timeout_ns: u64,
    during: &'static str,
) -> Result<(), Error> {
    let mut got = 0;
    while got < buf.len() {
        match c.read_timeout(&mut buf[got..], timeout_ns) {
            Ok(Some(0)) => return Err(Error::ControlClosed { during }),
            Ok(Some(n)) => got += n,
            Ok(None) | Err(NetError::TimedOut) => return Err(Error::Timeout { during }),
            Err(error) => return Err(Error::Net { during, error }),
        }
    }
    Ok(())
}

/// Reads one byte of the control connection (waiting up to [`CONTROL_TIMEOUT_NS`]).
pub fn read_byte<C: Conn>(c: &mut C, during: &'static str) -> Result<u8, Error> {
    let mut b = [0u8; 1];
    read_exact(c, &mut b, CONTROL_TIMEOUT_NS, during)?;
    Ok(b[0])
}

/// Writes one state byte.
pub fn write_state<C: Conn>(c: &mut C, s: State, during: &'static str) -> Result<(), Error> {
    c.write_all(&[s.byte()])
        .map_err(|error| Error::Net { during, error })
}

/// Writes SERVER_ERROR with iperf3's error number `code` and errno 0.
pub fn write_server_error<C: Conn>(c: &mut C, code: i32) -> Result<(), NetError> {
    let mut m = [0u8; 9];
    m[0] = State::ServerError.byte();
    m[1..5].copy_from_slice(&code.to_be_bytes());
    c.write_all(&m)
}

/// The frame of a JSON message: its length as a big-endian `u32`, then the text; `extra` is
/// appended after it (a state byte that follows, so both leave in one write).
pub fn frame_json(v: &Value, extra: &[u8]) -> Vec<u8> {
    let text = v.encode();
    let mut m = Vec::with_capacity(4 + text.len() + extra.len());
    m.extend_from_slice(&(text.len() as u32).to_be_bytes());
    m.extend_from_slice(text.as_bytes());
    m.extend_from_slice(extra);
    m
}

/// Reads one framed JSON message. A length over [`MAX_MESSAGE_LEN`] is refused before anything
/// is allocated.
pub fn read_json<C: Conn>(c: &mut C, message: &'static str) -> Result<Value, Error> {
    let mut len = [0u8; 4];
    read_exact(c, &mut len, CONTROL_TIMEOUT_NS, message)?;
    let n = u32::from_be_bytes(len);
    if n as usize > MAX_MESSAGE_LEN {
        return Err(Error::MessageTooLong(n));
    }
    let mut text = vec![0u8; n as usize];
    read_exact(c, &mut text, CONTROL_TIMEOUT_NS, message)?;
    json::parse(&text).map_err(|error| Error::Json { message, error })
}

/// Why a client's parameters are refused, with the iperf3 error number the server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// The message is not a JSON object.
    NotAnObject,
    /// A protocol other than TCP (`udp`, `sctp`).
    Protocol(&'static str),
    /// A mode this implementation does not run (`bidirectional`).
    Unsupported(&'static str),
    /// A field has the wrong type or sign.
    BadField(&'static str),
    /// More parallel streams than [`MAX_PARALLEL`], or none.
    Parallel(i64),
    /// A block length of 0 or over [`MAX_BLOCK_LEN`].
    BlockLen(i64),
    /// A duration over [`MAX_TIME_S`].
    Time(i64),
}

impl ParamError {
    /// The `i_errno` iperf3's client understands for this refusal.
    pub fn ierrno(&self) -> i32 {
        match self {
            ParamError::NotAnObject | ParamError::BadField(_) => IERECVPARAMS,
            ParamError::Protocol(_) => IEPROTOCOL,
            ParamError::Unsupported(_) => IEUNIMP,
            ParamError::Parallel(_) => IENUMSTREAMS,
            ParamError::BlockLen(_) => IEBLOCKSIZE,
            ParamError::Time(_) => IEDURATION,
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::NotAnObject => f.write_str("the parameters are not a JSON object"),
            ParamError::Protocol(p) => {
                write!(f, "{p} tests are not supported (this iperf3 runs TCP only)")
            }
            ParamError::Unsupported(m) => write!(f, "{m} mode is not supported"),
            ParamError::BadField(k) => write!(f, "bad parameter '{k}'"),
            ParamError::Parallel(n) => {
                write!(
                    f,
                    "{n} parallel streams requested (1..={MAX_PARALLEL} supported)"
                )
            }
            ParamError::BlockLen(n) => {
                write!(f, "block length {n} out of range (1..={MAX_BLOCK_LEN})")
            }
            ParamError::Time(n) => write!(f, "test duration {n} s out of range (0..={MAX_TIME_S})"),
        }
    }
}

/// iperf3's `i_errno` values this implementation sends or names.
pub const IEDURATION: i32 = 5;
/// Too many parallel streams.
pub const IENUMSTREAMS: i32 = 6;
/// Block size too large.
pub const IEBLOCKSIZE: i32 = 7;
/// Not implemented.
pub const IEUNIMP: i32 = 13;
/// Unable to receive parameters from the client.
pub const IERECVPARAMS: i32 = 114;
/// Protocol does not exist.
pub const IEPROTOCOL: i32 = 131;

/// A short description of an iperf3 `i_errno` from a SERVER_ERROR.
pub fn describe_ierrno(code: i32) -> String {
    let known = match code {
        IEDURATION => "test duration too long",
        IENUMSTREAMS => "number of parallel streams too large",
        IEBLOCKSIZE => "block size too large",
        IEUNIMP => "not implemented",
        IERECVPARAMS => "unable to receive parameters from client",
        IEPROTOCOL => "protocol does not exist",
        27 => "total required bandwidth is larger than the server limit",
        102 => "unable to start listener for connections",
        142 => "test authorization failed",
        _ => "",
    };
    if known.is_empty() {
        alloc::format!("iperf3 error {code}")
    } else {
        alloc::format!("{known} (iperf3 error {code})")
    }
}

/// A TCP test's parameters (the PARAM_EXCHANGE message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestParams {
    /// Seconds to run (0: until the byte count).
    pub time_s: u32,
    /// Seconds at the start left out of the statistics (iperf3's `-O`); the server only uses it
    /// to bound how long it waits.
    pub omit_s: u32,
    /// Bytes to move (0: by time).
    pub bytes: u64,
    /// Parallel streams.
    pub parallel: u32,
    /// The server sends.
    pub reverse: bool,
    /// Bytes per write.
    pub block_len: u32,
}

impl TestParams {
    /// The message iperf3's client sends (its `send_parameters`, TCP fields only).
    pub fn to_json(&self) -> Value {
        let mut m = vec![
            ("tcp".into(), Value::Bool(true)),
            ("omit".into(), Value::int(i64::from(self.omit_s))),
            ("time".into(), Value::int(i64::from(self.time_s))),
            ("num".into(), Value::int(self.bytes as i64)),
            ("blockcount".into(), Value::int(0)),
            ("parallel".into(), Value::int(i64::from(self.parallel))),
        ];
        if self.reverse {
            m.push(("reverse".into(), Value::Bool(true)));
        }
        m.push(("len".into(), Value::int(i64::from(self.block_len))));
        // The protocol level spoken; iperf3 servers print it at most.
        m.push(("client_version".into(), Value::str("3.12")));
        Value::Object(m)
    }

    /// Reads and checks a client's parameters. Like iperf3's `get_parameters`, a flag counts
    /// when its key is there (stock clients send only `true`), except an explicit `false` or
    /// `null`. Tuning options this implementation does not apply (window, MSS, nodelay,
    /// bandwidth, congestion, TOS, ...) are ignored.
    pub fn from_json(v: &Value) -> Result<TestParams, ParamError> {
        if !matches!(v, Value::Object(_)) {
            return Err(ParamError::NotAnObject);
        }
        let flag = |k: &str| !matches!(v.get(k), None | Some(Value::Bool(false) | Value::Null));
        if flag("udp") {
            return Err(ParamError::Protocol("UDP"));
        }
        if flag("sctp") {
            return Err(ParamError::Protocol("SCTP"));
        }
        if flag("bidirectional") {
            return Err(ParamError::Unsupported("bidirectional"));
        }
        let int = |k: &'static str, default: i64| -> Result<i64, ParamError> {
            match v.get(k) {
                None => Ok(default),
                Some(Value::Number(n)) => n.as_i64().ok_or(ParamError::BadField(k)),
                Some(_) => Err(ParamError::BadField(k)),
            }
        };
        let time = int("time", i64::from(crate::DEFAULT_TIME_S))?;
        if !(0..=i64::from(MAX_TIME_S)).contains(&time) {
            return Err(ParamError::Time(time));
        }
        let omit = int("omit", 0)?;
        if !(0..=i64::from(MAX_TIME_S)).contains(&omit) {
            return Err(ParamError::BadField("omit"));
        }
        let bytes = int("num", 0)?;
        if bytes < 0 {
            return Err(ParamError::BadField("num"));
        }
        if int("blockcount", 0)? < 0 {
            return Err(ParamError::BadField("blockcount"));
        }
        let parallel = int("parallel", 1)?;
        if !(1..=i64::from(MAX_PARALLEL)).contains(&parallel) {
            return Err(ParamError::Parallel(parallel));
        }
        let block_len = int("len", i64::from(crate::DEFAULT_BLOCK_LEN))?;
        if !(1..=i64::from(MAX_BLOCK_LEN)).contains(&block_len) {
            return Err(ParamError::BlockLen(block_len));
        }
        // The ranges were checked above, so the conversions are exact.
        Ok(TestParams {
            time_s: time as u32,
            omit_s: omit as u32,
            bytes: bytes as u64,
            parallel: parallel as u32,
            reverse: flag("reverse"),
            block_len: block_len as u32,
        })
    }
}

/// A byte count: a non-negative integer, or a double beyond 2^53 that cJSON printed with
/// 17 significant digits (truncated).
fn byte_count(n: &Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        let f = n.as_f64();
        // `as` saturates; the range check keeps fractions and negatives out.
        (9_007_199_254_740_992.0..18_446_744_073_709_551_616.0)
            .contains(&f)
            .then_some(f as u64)
    })
}

/// One stream's line of a results message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamResult {
    /// The stream's id ([`stream_id`]).
    pub id: i64,
    /// Bytes the sender wrote, or the receiver read, on it.
    pub bytes: u64,
    /// TCP retransmissions (-1: unknown).
    pub retransmits: i64,
    /// UDP jitter (0 for TCP).
    pub jitter: f64,
    /// UDP losses (0 for TCP).
    pub errors: i64,
    /// UDP packets (0 for TCP).
    pub packets: i64,
    /// Seconds from the test's start to the stream's start.
    pub start_time: f64,
    /// Seconds from the test's start to the stream's end.
    pub end_time: f64,
}

impl StreamResult {
    /// The stream's duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.end_time - self.start_time
    }
}

/// A results message (EXCHANGE_RESULTS), as iperf3's `send_results` writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResults {
    /// CPU utilisation, percent (this implementation reports 0: it does not measure it).
    pub cpu_util_total: f64,
    /// User-mode CPU, percent.
    pub cpu_util_user: f64,
    /// Kernel-mode CPU, percent.
    pub cpu_util_system: f64,
    /// 1 when the sender's `retransmits` are meaningful, 0 when not, -1 from a receiver.
    pub sender_has_retransmits: i64,
    /// One entry per stream.
    pub streams: Vec<StreamResult>,
}

impl TestResults {
    /// The message.
    pub fn to_json(&self) -> Value {
        let streams = self
            .streams
            .iter()
            .map(|s| {
                Value::Object(vec![
                    ("id".into(), Value::int(s.id)),
                    ("bytes".into(), Value::int(s.bytes as i64)),
                    ("retransmits".into(), Value::int(s.retransmits)),
                    ("jitter".into(), Value::float(s.jitter)),
                    ("errors".into(), Value::int(s.errors)),
                    ("packets".into(), Value::int(s.packets)),
                    ("start_time".into(), Value::float(s.start_time)),
                    ("end_time".into(), Value::float(s.end_time)),
                ])
            })
            .collect();
        Value::Object(vec![
            ("cpu_util_total".into(), Value::float(self.cpu_util_total)),
            ("cpu_util_user".into(), Value::float(self.cpu_util_user)),
            ("cpu_util_system".into(), Value::float(self.cpu_util_system)),
            (
                "sender_has_retransmits".into(),
                Value::int(self.sender_has_retransmits),
            ),
            ("streams".into(), Value::Array(streams)),
        ])
    }

    /// Reads a peer's results with the checks of iperf3's `get_results`: the CPU figures,
    /// `sender_has_retransmits` and `streams` must be there, and every stream must have `id`,
    /// `bytes`, `retransmits`, `jitter`, `errors` and `packets` (`start_time` and `end_time`
    /// may be missing, as from servers before 3.2: they read as 0).
    pub fn from_json(v: &Value) -> Result<TestResults, Error> {
        let bad = |what: &str| Error::Protocol(alloc::format!("results: {what}"));
        let num = |o: &Value, k: &str| -> Result<Number, Error> {
            o.get(k)
                .and_then(Value::as_number)
                .copied()
                .ok_or_else(|| bad(&alloc::format!("'{k}' missing or not a number")))
        };
        let int = |o: &Value, k: &str| -> Result<i64, Error> {
            num(o, k)?
                .as_i64()
                .ok_or_else(|| bad(&alloc::format!("'{k}' is not an integer")))
        };
        // iperf3 3.12 writes its -1s ("unknown", "from a receiver") through an unsigned
        // conversion, as 1.8446744073709552e+19: a count beyond i64 reads as -1.
        let count = |o: &Value, k: &str| -> Result<i64, Error> {
            let n = num(o, k)?;
            Ok(n.as_i64().unwrap_or(-1))
        };
        let opt_float = |o: &Value, k: &str| -> Result<f64, Error> {
            match o.get(k) {
                None => Ok(0.0),
                Some(_) => Ok(num(o, k)?.as_f64()),
            }
        };
        let list = v
            .get("streams")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("'streams' missing or not an array"))?;
        if list.len() > MAX_RESULT_STREAMS {
            return Err(bad("too many streams"));
        }
        let mut streams = Vec::with_capacity(list.len());
        for s in list {
            streams.push(StreamResult {
                id: int(s, "id")?,
                bytes: byte_count(&num(s, "bytes")?)
                    .ok_or_else(|| bad("'bytes' is not a byte count"))?,
                retransmits: count(s, "retransmits")?,
                jitter: num(s, "jitter")?.as_f64(),
                errors: count(s, "errors")?,
                packets: count(s, "packets")?,
                start_time: opt_float(s, "start_time")?,
                end_time: opt_float(s, "end_time")?,
            });
        }
        Ok(TestResults {
            cpu_util_total: num(v, "cpu_util_total")?.as_f64(),
            cpu_util_user: num(v, "cpu_util_user")?.as_f64(),
            cpu_util_system: num(v, "cpu_util_system")?.as_f64(),
            sender_has_retransmits: count(v, "sender_has_retransmits")?,
            streams,
        })
    }

    /// The entry for stream `id`.
    pub fn stream(&self, id: i64) -> Option<&StreamResult> {
        self.streams.iter().find(|s| s.id == id)
    }
}

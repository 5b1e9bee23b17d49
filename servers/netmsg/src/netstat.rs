//! `netstat`'s protocol over kernel IPC (64-byte messages): the shell asks the tcp or udp
//! server for its socket number `index` and gets one [`Entry`] back with the total, until it has
//! them all. Both sides treat the other's bytes as untrusted: every field is decoded with bounds
//! and an unknown state code reads as `?`.

/// Size of an IPC message (the kernel's `IPC_MSG_LEN`).
pub const MSG_LEN: usize = 64;
/// First four bytes of a request.
pub const MAGIC: [u8; 4] = *b"NSTA";

/// States a socket may be in, by code (TCP's RFC 793 names, and `BOUND` for UDP).
pub const STATES: [&str; 13] = [
    "CLOSED",
    "LISTEN",
    "SYN-SENT",
    "SYN-RECEIVED",
    "ESTABLISHED",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "CLOSE-WAIT",
    "CLOSING",
    "LAST-ACK",
    "TIME-WAIT",
    "BOUND",
    "LISTEN(full)",
];

/// The code of state `name` (`STATES.len()` when unknown).
pub fn state_code(name: &str) -> u8 {
    STATES
        .iter()
        .position(|s| *s == name)
        .unwrap_or(STATES.len()) as u8
}

/// The server a request is for: in the single layout tcp and udp are one process (netstack),
/// which tells them apart by this byte of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The tcp server.
    Tcp,
    /// The udp server.
    Udp,
}

impl Server {
    /// The server's process name (`tcp`, `udp`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Tcp => b'T',
            Self::Udp => b'U',
        }
    }
}

/// The request to `server` for its socket number `index`.
pub fn request(server: Server, index: u32) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[..4].copy_from_slice(&MAGIC);
    m[4..8].copy_from_slice(&index.to_le_bytes());
    m[8] = server.code();
    m
}

/// The server a netstat request is addressed to; `None` when it is no netstat request or names
/// no server.
pub fn addressee(m: &[u8; MSG_LEN]) -> Option<Server> {
    decode_request(m)?;
    [Server::Tcp, Server::Udp]
        .into_iter()
        .find(|s| s.code() == m[8])
}

/// The index a request asks for; `None` when it is not a netstat request.
pub fn decode_request(m: &[u8; MSG_LEN]) -> Option<u32> {
    (m[..4] == MAGIC).then(|| u32::from_le_bytes([m[4], m[5], m[6], m[7]]))
}

/// One socket, as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    /// Sockets the server has in all.
    pub total: u32,
    /// The application's name (NUL-padded, at most 16 bytes).
    pub app: [u8; 16],
    /// Our port.
    pub local_port: u16,
    /// The peer's address and port (0 for none).
    pub remote: (u32, u16),
    /// Index into [`STATES`].
    pub state: u8,
    /// Bytes received and not yet read by the application (`u32::MAX`: not applicable).
    pub recv_queue: u32,
    /// Bytes sent and not yet acknowledged (`u32::MAX`: not applicable).
    pub send_queue: u32,
}

/// Status byte of a reply: the entry follows.
pub const OK: u8 = 0;
/// Status byte of a reply: no socket with that index (`total` is still set).
pub const NO_SUCH: u8 = 1;

impl Entry {
    /// The application's name as text (up to its first NUL; `?` when not UTF-8).
    pub fn app_name(&self) -> &str {
        let end = self.app.iter().position(|&b| b == 0).unwrap_or(16);
        core::str::from_utf8(&self.app[..end]).unwrap_or("?")
    }

    /// Sets the application's name (cut at 16 bytes).
    pub fn set_app(&mut self, name: &str) {
        self.app = [0; 16];
        let n = name.len().min(16);
        self.app[..n].copy_from_slice(&name.as_bytes()[..n]);
    }

    /// The state's name.
    pub fn state_name(&self) -> &'static str {
        STATES.get(usize::from(self.state)).copied().unwrap_or("?")
    }

    /// The reply carrying this entry (status [`OK`]).
    pub fn reply(&self) -> [u8; MSG_LEN] {
        let mut m = [0u8; MSG_LEN];
        m[0] = OK;
        m[4..8].copy_from_slice(&self.total.to_le_bytes());
        m[8..24].copy_from_slice(&self.app);
        m[24..26].copy_from_slice(&self.local_port.to_le_bytes());
        m[26..30].copy_from_slice(&self.remote.0.to_le_bytes());
        m[30..32].copy_from_slice(&self.remote.1.to_le_bytes());
        m[32] = self.state;
        m[36..40].copy_from_slice(&self.recv_queue.to_le_bytes());
        m[40..44].copy_from_slice(&self.send_queue.to_le_bytes());
        m
    }

    /// The reply for an index past the end.
    pub fn none(total: u32) -> [u8; MSG_LEN] {
        let mut m = [0u8; MSG_LEN];
        m[0] = NO_SUCH;
        m[4..8].copy_from_slice(&total.to_le_bytes());
        m
    }

    /// Reads a reply: `Ok(Some(entry))`, `Ok(None)` past the end (with the total), or `Err`
    /// with the status byte when it is neither.
    pub fn decode(m: &[u8; MSG_LEN]) -> Result<(u32, Option<Entry>), u8> {
        let u32_at = |i: usize| u32::from_le_bytes([m[i], m[i + 1], m[i + 2], m[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([m[i], m[i + 1]]);
        let total = u32_at(4);
        match m[0] {
            OK => {
                let mut app = [0u8; 16];
                app.copy_from_slice(&m[8..24]);
                Ok((
                    total,
                    Some(Entry {
                        total,
                        app,
                        local_port: u16_at(24),
                        remote: (u32_at(26), u16_at(30)),
                        state: m[32],
                        recv_queue: u32_at(36),
                        send_queue: u32_at(40),
                    }),
                ))
            }
            NO_SUCH => Ok((total, None)),
            other => Err(other),
        }
    }
}

/// The reply to request `m` of a server with `total` sockets, whose `i`th `get` gives (the
/// entry's `total` is set here); a message that is no netstat request gets status 0xff.
pub fn answer(
    m: &[u8; MSG_LEN],
    total: u32,
    get: impl FnOnce(u32) -> Option<Entry>,
) -> [u8; MSG_LEN] {
    match decode_request(m) {
        Some(i) if i < total => match get(i) {
            Some(e) => Entry { total, ..e }.reply(),
            None => Entry::none(total),
        },
        Some(_) => Entry::none(total),
        None => {
            let mut r = [0u8; MSG_LEN];
            r[0] = 0xff;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_told_apart() {
        let mut e = Entry {
            total: 3,
            local_port: 7,
            remote: (0x0a00_0202, 40000),
            state: state_code("ESTABLISHED"),
            recv_queue: 5,
            send_queue: u32::MAX,
            ..Default::default()
        };
        e.set_app("echo-server-with-a-long-name");
        assert_eq!(e.app_name(), "echo-server-with");
        assert_eq!(Entry::decode(&e.reply()), Ok((3, Some(e))));
        assert_eq!(e.state_name(), "ESTABLISHED");
        assert_eq!(Entry::decode(&Entry::none(3)), Ok((3, None)));
        let mut bad = e.reply();
        bad[0] = 9;
        assert_eq!(Entry::decode(&bad), Err(9));
        bad[0] = OK;
        bad[32] = 200;
        bad[8] = 0xff;
        let (_, got) = Entry::decode(&bad).unwrap();
        let got = got.unwrap();
        assert_eq!((got.state_name(), got.app_name()), ("?", "?"));
        assert_eq!(state_code("nonsense") as usize, STATES.len());
        assert_eq!(decode_request(&request(Server::Tcp, 12)), Some(12));
        assert_eq!(decode_request(&[0; MSG_LEN]), None);
        assert_eq!(addressee(&request(Server::Tcp, 1)), Some(Server::Tcp));
        assert_eq!(addressee(&request(Server::Udp, 1)), Some(Server::Udp));
        let mut nobody = request(Server::Udp, 1);
        nobody[8] = 0;
        assert_eq!(addressee(&nobody), None);
        assert_eq!(addressee(&[b'U'; MSG_LEN]), None);
    }

    #[test]
    fn answers() {
        let e = Entry {
            local_port: 9,
            ..Default::default()
        };
        let got = Entry::decode(&answer(&request(Server::Udp, 1), 2, |_| Some(e))).unwrap();
        assert_eq!(got, (2, Some(Entry { total: 2, ..e })));
        assert_eq!(
            Entry::decode(&answer(&request(Server::Tcp, 2), 2, |_| Some(e))),
            Ok((2, None))
        );
        assert_eq!(
            Entry::decode(&answer(&[1; MSG_LEN], 2, |_| Some(e))),
            Err(0xff)
        );
    }
}

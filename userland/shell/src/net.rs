//! `ifconfig` (the e1000 driver's link, address and counters, asked over kernel IPC with the
//! protocol of `e1000::proto`; then, when the ip server runs, its address line and counters,
//! asked with `ipd::proto`), `lspci` (every PCI function the kernel found) and `netstat` (the
//! tcp and udp servers' sockets, asked with `netmsg::netstat`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use axolotl_abi::{Error, PciInfo};
use e1000::Model;
use e1000::proto::{self, Counters, Status};
use ipd::proto::{CountersPage, DhcpInfo, DhcpPhase, Info, Request};
use libsys::Message;

use crate::commands::{Failure, Outcome, Sys};
use crate::table::{Align, write_table};

/// The NIC the driver drives.
pub const NIC: &str = "nic0";
/// How long to wait for the driver's answer once it took the request.
pub const REPLY_TIMEOUT_NS: u64 = 2_000_000_000;
/// Most PCI functions `lspci` reads, in case a kernel never says `NotFound`.
const MAX_FUNCTIONS: u32 = 4096;

/// Sends `request` to `pid` and waits for its answer: `ipc_send`, then `ipc_recv` until a
/// message from `pid` arrives or [`REPLY_TIMEOUT_NS`] passed (messages from others are dropped).
/// The driver cannot answer an `ipc_call` without blocking (`e1000::proto`).
pub fn exchange(
    sys: &mut impl Sys,
    pid: u32,
    request: &Message,
    who: &str,
) -> Result<Message, Failure> {
    sys.ipc_send(pid, request)
        .map_err(|e| Failure::failed(format!("request to {who} (pid {pid}) failed: {e}")))?;
    let deadline = sys.time_ns().saturating_add(REPLY_TIMEOUT_NS);
    loop {
        let now = sys.time_ns();
        if now >= deadline {
            return Err(Failure::failed(format!(
                "no answer from {who} (pid {pid}) within 2 s"
            )));
        }
        let mut reply: Message = [0; axolotl_abi::IPC_MSG_LEN];
        match sys.ipc_recv(&mut reply, deadline - now) {
            Ok(from) if from == pid => return Ok(reply),
            Ok(_) => continue,
            Err(Error::TimedOut) => continue,
            Err(e) => return Err(Failure::failed(format!("waiting for {who}'s answer: {e}"))),
        }
    }
}

/// `ifconfig`: asks the driver for its status and counters and prints them.
pub fn ifconfig(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let who = proto::SERVICE;
    let pid = sys
        .lookup(who)
        .map_err(|e| Failure::failed(format!("no running process {who} ({e})")))?;
    let status_reply = exchange(sys, pid, &proto::request(proto::REQUEST_STATUS), who)?;
    let counters_reply = exchange(sys, pid, &proto::request(proto::REQUEST_COUNTERS), who)?;
    if proto::is_unknown(&status_reply) || proto::is_unknown(&counters_reply) {
        return Err(Failure::failed(format!(
            "{who} does not understand the statistics requests"
        )));
    }
    write_ifconfig(
        out,
        &Status::decode(&status_reply),
        &Counters::decode(&counters_reply),
    )?;
    ip_lines(sys, out)
}

/// How long the ip server may take to answer one request.
pub const IP_TIMEOUT_NS: u64 = 2_000_000_000;
/// Most counter pages asked for (the server has about 50 counters, 6 a page).
const MAX_COUNTER_PAGES: u32 = 32;
/// Counters per line of `ifconfig`'s ip part.
const COUNTERS_PER_LINE: usize = 6;

/// The ip server's part of `ifconfig`: nothing when it does not run; else its address line
/// and its counters (`rx_frames` and `tx_frames` always, the others when not zero).
fn ip_lines(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let who = ipd::SERVICE;
    let Ok(pid) = sys.lookup(who) else {
        return Ok(());
    };
    let ask = |sys: &mut _, r: Request| -> Result<Message, Failure> {
        let mut reply: Message = [0; axolotl_abi::IPC_MSG_LEN];
        Sys::ipc_call_timeout(sys, pid, &r.encode(), &mut reply, IP_TIMEOUT_NS)
            .map_err(|e| Failure::failed(format!("no answer from {who} (pid {pid}): {e}")))?;
        Ok(reply)
    };
    let reply = ask(sys, Request::Info)?;
    let info = Info::decode(&reply)
        .ok_or_else(|| Failure::failed(format!("{who} refused the information request")))?;
    let dhcp = DhcpInfo::read(&reply);
    let mut values = Vec::new();
    for _ in 0..MAX_COUNTER_PAGES {
        let first = values.len() as u32;
        let page = CountersPage::decode(&ask(sys, Request::Counters { first })?)
            .ok_or_else(|| Failure::failed(format!("{who} refused the counters request")))?;
        values.extend_from_slice(page.valid());
        if page.valid().is_empty() || values.len() >= page.total as usize {
            break;
        }
    }
    write_ip(out, &info, &dhcp, &values)?;
    Ok(())
}

/// The ip part of `ifconfig`: `inet ADDR/PREFIX gateway .. dns .. mtu .. arp_entries=..`
/// (`inet none` while DHCP has no lease), with DHCP a `dhcp PHASE ...` line, then the counters
/// as `key=value`, named by `ipd::proto::counter_names`.
pub fn write_ip(
    out: &mut impl Write,
    info: &Info,
    dhcp: &DhcpInfo,
    values: &[u64],
) -> core::fmt::Result {
    let opt = |a: Option<core::net::Ipv4Addr>| a.map_or("none".to_string(), |a| a.to_string());
    let dhcp_on = dhcp.phase != DhcpPhase::Off;
    let address = if dhcp_on && !dhcp.configured {
        "none".to_string()
    } else {
        info.address.to_string()
    };
    writeln!(
        out,
        "  inet {address} gateway {} dns {} mtu {} arp_entries={}",
        opt(info.gateway),
        opt(info.dns),
        info.mtu,
        info.arp_entries
    )?;
    if dhcp_on {
        let phase = dhcp.phase.name();
        if dhcp.configured {
            writeln!(out, "  dhcp {phase}, lease {} s left", dhcp.lease_secs_left)?;
        } else {
            writeln!(
                out,
                "  dhcp {phase}: no lease yet, still trying ({} attempts)",
                dhcp.attempts
            )?;
        }
    }
    let shown: Vec<String> = ipd::proto::counter_names()
        .zip(values)
        .filter(|&(name, &v)| v != 0 || name == "rx_frames" || name == "tx_frames")
        .map(|(name, v)| format!("{name}={v}"))
        .collect();
    for line in shown.chunks(COUNTERS_PER_LINE) {
        writeln!(out, "  ip {}", line.join(" "))?;
    }
    Ok(())
}

/// The `ifconfig` report: one line of identity and link, then `key=value` counters.
pub fn write_ifconfig(out: &mut impl Write, s: &Status, c: &Counters) -> core::fmt::Result {
    let model = Model::from_ids(s.vendor, s.device).map_or("unknown model", Model::name);
    writeln!(
        out,
        "{NIC}: {model} ({:04x}:{:04x}) mac {} link {}",
        s.vendor,
        s.device,
        s.mac,
        if s.link_up { "up" } else { "down" }
    )?;
    writeln!(
        out,
        "  rx frames={} bytes={} drops={} too_long={} errors={}",
        c.rx_frames, c.rx_bytes, c.rx_drops, c.rx_too_long, s.rx_errors
    )?;
    writeln!(
        out,
        "  tx frames={} bytes={} drops={}",
        c.tx_frames, c.tx_bytes, s.tx_drops
    )?;
    writeln!(
        out,
        "  interrupts={} polls={} link_changes={}",
        c.interrupts, c.polls, s.link_changes
    )
}

/// `lspci`: every PCI function.
pub fn lspci(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let mut fns = Vec::new();
    for index in 0..MAX_FUNCTIONS {
        match sys.pci_info(index) {
            Ok(f) => fns.push(f),
            Err(Error::NotFound) => break,
            Err(e) => return Err(Failure::failed(format!("PCI function {index}: {e}"))),
        }
    }
    write_lspci(out, &fns)?;
    Ok(())
}

/// Header of `lspci`.
pub const LSPCI_HEADER: [&str; 5] = ["BUS:DEV.F", "VENDOR:DEVICE", "CLASS", "NAME", "DESCRIPTION"];

/// The `lspci` table: address, ids, class and subclass (hex), the kernel's device name (`-` for
/// none) and what the function is.
pub fn write_lspci(out: &mut impl Write, fns: &[PciInfo]) -> core::fmt::Result {
    let rows: Vec<[String; 5]> = fns
        .iter()
        .map(|f| {
            [
                format!("{:02x}:{:02x}.{}", f.bus, f.dev, f.func),
                format!("{:04x}:{:04x}", f.vendor, f.device),
                format!("{:02x}{:02x}", f.class, f.subclass),
                device_name(f),
                describe(f),
            ]
        })
        .collect();
    use Align::Left;
    write_table(out, LSPCI_HEADER, [Left; 5], &rows)
}

fn device_name(f: &PciInfo) -> String {
    let n = f.name.iter().position(|&c| c == 0).unwrap_or(f.name.len());
    match core::str::from_utf8(&f.name[..n]) {
        Ok("") | Err(_) => "-".to_string(),
        Ok(s) => s.to_string(),
    }
}

/// What a function is: its class in words, and the model for the NICs the driver knows.
pub fn describe(f: &PciInfo) -> String {
    let class = match (f.class, f.subclass) {
        (0x01, 0x01) => "IDE controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x08) => "NVMe controller",
        (0x01, _) => "storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, _) => "network controller",
        (0x03, 0x00) => "VGA controller",
        (0x03, _) => "display controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, _) => "bridge",
        (0x0C, 0x03) => "USB controller",
        (0x0C, 0x05) => "SMBus controller",
        (0x0C, _) => "serial bus controller",
        _ => return format!("class {:02x} subclass {:02x}", f.class, f.subclass),
    };
    match Model::from_ids(f.vendor, f.device) {
        Some(m) => format!("{class}: Intel {}", m.name()),
        None => class.to_string(),
    }
}

/// Most sockets `netstat` asks one server for.
const MAX_SOCKETS: u32 = 256;

/// One row of `netstat`: the protocol and the server's entry.
pub type SocketRow = (&'static str, netmsg::netstat::Entry);

/// `netstat`: every socket of the tcp and udp servers that run (a server that does not is
/// skipped with a note; one that answers badly fails the command).
pub fn netstat(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for server in [netmsg::netstat::Server::Tcp, netmsg::netstat::Server::Udp] {
        let proto = server.name();
        let Ok(pid) = sys.lookup(proto) else {
            notes.push(format!("({proto}: no server running)"));
            continue;
        };
        let mut index = 0;
        loop {
            let mut reply: Message = [0; axolotl_abi::IPC_MSG_LEN];
            let request = netmsg::netstat::request(server, index);
            sys.ipc_call_timeout(pid, &request, &mut reply, IP_TIMEOUT_NS)
                .map_err(|e| Failure::failed(format!("asking {proto} (pid {pid}): {e}")))?;
            match netmsg::netstat::Entry::decode(&reply) {
                Ok((_, Some(e))) => rows.push((proto, e)),
                Ok((_, None)) => break,
                Err(code) => {
                    return Err(Failure::failed(format!(
                        "{proto} does not understand netstat (status {code:#x})"
                    )));
                }
            }
            index += 1;
            if index >= MAX_SOCKETS {
                notes.push(format!("({proto}: first {MAX_SOCKETS} sockets only)"));
                break;
            }
        }
    }
    write_netstat(out, &rows)?;
    for n in notes {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// Prints `rows` as netstat's table.
pub fn write_netstat(out: &mut impl Write, rows: &[SocketRow]) -> core::fmt::Result {
    let queue = |q: u32| {
        if q == u32::MAX {
            "-".to_string()
        } else {
            q.to_string()
        }
    };
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|(proto, e)| {
            let remote = match e.remote {
                (0, _) => "-".to_string(),
                (ip, port) => format!("{}:{port}", core::net::Ipv4Addr::from(ip)),
            };
            [
                proto.to_string(),
                e.app_name().to_string(),
                e.local_port.to_string(),
                remote,
                e.state_name().to_string(),
                format!("{}/{}", queue(e.recv_queue), queue(e.send_queue)),
            ]
        })
        .collect();
    write_table(
        out,
        ["PROTO", "APP", "PORT", "REMOTE", "STATE", "RECV-Q/SEND-Q"],
        [
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Left,
            Align::Left,
            Align::Right,
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::run_command;
    use crate::commands::tests::Fake;
    use e1000::Mac;

    /// A PCI function at (bus, dev, func) with (vendor, device) and (class, subclass).
    fn pci(at: (u8, u8, u8), ids: (u16, u16), class: (u8, u8), name: &str) -> PciInfo {
        let ((bus, dev, func), (vendor, device), (class, subclass)) = (at, ids, class);
        let mut p = PciInfo {
            bus,
            dev,
            func,
            vendor,
            device,
            class,
            subclass,
            ..PciInfo::default()
        };
        p.name[..name.len()].copy_from_slice(name.as_bytes());
        p
    }

    fn run(k: &mut Fake, line: &str) -> (i32, String) {
        let mut out = String::new();
        let status = run_command(k, &mut out, line);
        (status, out)
    }

    fn driver(k: &mut Fake) {
        k.e1000 = Some(5);
        k.e1000_status = Status {
            link_up: true,
            mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            vendor: 0x8086,
            device: 0x100E,
            link_changes: 1,
            rx_errors: 2,
            tx_drops: 3,
        };
        k.e1000_counters = Counters {
            rx_frames: 10,
            rx_bytes: 1000,
            tx_frames: 4,
            tx_bytes: 168,
            rx_drops: 0,
            rx_too_long: 1,
            interrupts: 3,
            polls: 7,
        };
    }

    #[test]
    fn ifconfig_prints_the_driver_status() {
        let mut k = Fake::new();
        driver(&mut k);
        let (status, out) = run(&mut k, "ifconfig");
        assert_eq!(status, 0, "{out}");
        assert_eq!(
            out,
            "nic0: 82540EM (8086:100e) mac 52:54:00:12:34:56 link up\n\
             \x20 rx frames=10 bytes=1000 drops=0 too_long=1 errors=2\n\
             \x20 tx frames=4 bytes=168 drops=3\n\
             \x20 interrupts=3 polls=7 link_changes=1\n"
        );
        // Each request asked to be answered by send, and the shell waited for the driver only.
        assert_eq!(k.sent.len(), 2);
        assert!(
            k.sent
                .iter()
                .all(|(pid, m)| *pid == 5 && proto::replies_by_send(m))
        );
        assert_eq!(
            (k.sent[0].1[0], k.sent[1].1[0]),
            (proto::REQUEST_STATUS, proto::REQUEST_COUNTERS)
        );
    }

    #[test]
    fn ifconfig_adds_the_ip_line_when_the_ip_server_runs() {
        let mut k = Fake::new();
        driver(&mut k);
        let mut ip = crate::ping::tests::FakeIp::new(6);
        let names: Vec<&str> = ipd::proto::counter_names().collect();
        ip.counters = names
            .iter()
            .map(|&n| match n {
                "rx_frames" => 12,
                "arp" => 2,
                "icmp_echo_replies" => 3,
                "tx_done" => 5,
                "channel_errors" => 1,
                _ => 0,
            })
            .collect();
        k.ip = Some(ip);
        let (status, out) = run(&mut k, "ifconfig");
        assert_eq!(status, 0, "{out}");
        assert!(
            out.ends_with(
                "  interrupts=3 polls=7 link_changes=1\n\
                 \x20 inet 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 mtu 1500 arp_entries=1\n\
                 \x20 ip rx_frames=12 arp=2 icmp_echo_replies=3 tx_frames=0 tx_done=5 channel_errors=1\n"
            ),
            "{out}"
        );
        // Information, then one page of counters per six.
        let calls = k.ip.as_ref().unwrap().calls.len();
        assert_eq!(calls, 1 + names.len().div_ceil(ipd::proto::PER_PAGE));
        // A silent ip server makes ifconfig fail, after the driver's part.
        let mut k = Fake::new();
        driver(&mut k);
        let mut ip = crate::ping::tests::FakeIp::new(6);
        ip.silent = true;
        k.ip = Some(ip);
        let (status, out) = run(&mut k, "ifconfig");
        assert_eq!(status, 1);
        assert!(
            out.ends_with(
                "link_changes=1\nifconfig: no answer from ip (pid 6): timed out\n[exit 1]\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn ifconfig_shows_the_dhcp_state() {
        let info = crate::ping::tests::FakeIp::new(6).info;
        let names = ipd::proto::counter_names().count();
        let values = vec![0; names];
        let write = |info: &Info, dhcp: DhcpInfo| {
            let mut out = String::new();
            write_ip(&mut out, info, &dhcp, &values).unwrap();
            out.lines().take(2).collect::<Vec<_>>().join("\n")
        };
        let bound = DhcpInfo {
            phase: DhcpPhase::Bound,
            configured: true,
            attempts: 1,
            lease_secs_left: 86_390,
        };
        assert_eq!(
            write(&info, bound),
            "  inet 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 mtu 1500 arp_entries=1\n\
             \x20 dhcp bound, lease 86390 s left"
        );
        let none = Info {
            address: "0.0.0.0/0".parse().unwrap(),
            gateway: None,
            dns: None,
            ..info
        };
        let selecting = DhcpInfo {
            phase: DhcpPhase::Selecting,
            configured: false,
            attempts: 3,
            lease_secs_left: 0,
        };
        assert_eq!(
            write(&none, selecting),
            "  inet none gateway none dns none mtu 1500 arp_entries=1\n\
             \x20 dhcp selecting: no lease yet, still trying (3 attempts)"
        );
        // Without DHCP, no dhcp line.
        assert!(write(&info, DhcpInfo::OFF).ends_with("\n  ip rx_frames=0 tx_frames=0"));
    }

    #[test]
    fn ifconfig_skips_messages_from_others_and_times_out() {
        let mut k = Fake::new();
        driver(&mut k);
        k.stray_messages = 2;
        assert_eq!(run(&mut k, "ifconfig").0, 0);
        k.e1000_silent = true;
        let (status, out) = run(&mut k, "ifconfig");
        assert_eq!(
            out,
            "ifconfig: no answer from e1000 (pid 5) within 2 s\n[exit 1]\n"
        );
        assert_eq!(status, 1);
    }

    #[test]
    fn ifconfig_fails_without_a_driver() {
        let mut k = Fake::new();
        let (status, out) = run(&mut k, "ifconfig");
        assert_eq!(status, 1);
        assert_eq!(
            out,
            "ifconfig: no running process e1000 (not found)\n[exit 1]\n"
        );
        driver(&mut k);
        k.e1000_send_error = Some(Error::Gone);
        assert_eq!(
            run(&mut k, "ifconfig").1,
            "ifconfig: request to e1000 (pid 5) failed: peer gone\n[exit 1]\n"
        );
        assert_eq!(run(&mut k, "ifconfig -a").0, 2);
    }

    #[test]
    fn lspci_lists_every_function() {
        let mut k = Fake::new();
        k.pci = vec![
            pci((0, 0, 0), (0x8086, 0x29C0), (0x06, 0x00), ""),
            pci((0, 1, 0), (0x1234, 0x1111), (0x03, 0x00), ""),
            pci((0, 2, 0), (0x8086, 0x100E), (0x02, 0x00), "nic0"),
            pci((0, 0x1F, 2), (0x8086, 0x2922), (0x01, 0x06), ""),
            pci((0, 3, 0), (0x10EC, 0x8139), (0x02, 0x00), ""),
            pci((0, 4, 0), (0x1AF4, 0x1000), (0xFF, 0x42), ""),
        ];
        let (status, out) = run(&mut k, "lspci");
        assert_eq!(status, 0);
        assert_eq!(
            out,
            "BUS:DEV.F  VENDOR:DEVICE  CLASS  NAME  DESCRIPTION\n\
             00:00.0    8086:29c0      0600   -     host bridge\n\
             00:01.0    1234:1111      0300   -     VGA controller\n\
             00:02.0    8086:100e      0200   nic0  Ethernet controller: Intel 82540EM\n\
             00:1f.2    8086:2922      0106   -     SATA controller\n\
             00:03.0    10ec:8139      0200   -     Ethernet controller\n\
             00:04.0    1af4:1000      ff42   -     class ff subclass 42\n"
        );
        assert_eq!(run(&mut k, "lspci x").0, 2);
        k.pci.clear();
        assert_eq!(
            run(&mut k, "lspci").1,
            "BUS:DEV.F  VENDOR:DEVICE  CLASS  NAME  DESCRIPTION\n"
        );
    }

    #[test]
    fn netstat_table() {
        use netmsg::netstat::{Entry, state_code};
        let mut listen = Entry {
            local_port: 7,
            state: state_code("LISTEN"),
            ..Default::default()
        };
        listen.set_app("echo-server");
        let conn = Entry {
            remote: (0x0a00_0202, 40000),
            state: state_code("ESTABLISHED"),
            recv_queue: 12,
            send_queue: 3,
            ..listen
        };
        let bound = Entry {
            state: state_code("BOUND"),
            recv_queue: u32::MAX,
            send_queue: u32::MAX,
            ..listen
        };
        let mut out = String::new();
        write_netstat(&mut out, &[("tcp", listen), ("tcp", conn), ("udp", bound)]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("PROTO"));
        for (line, want) in lines[1..].iter().zip([
            ["tcp", "echo-server", "7", "-", "LISTEN", "0/0"],
            [
                "tcp",
                "echo-server",
                "7",
                "10.0.2.2:40000",
                "ESTABLISHED",
                "12/3",
            ],
            ["udp", "echo-server", "7", "-", "BOUND", "-/-"],
        ]) {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words, want);
        }
    }
}

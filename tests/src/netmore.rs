//! More end-to-end scenarios of the network stack (docs/netpath.md): the ip server configured
//! by QEMU's DHCP server (tests/manifests/net-dhcp.toml), a pf rule that cuts a guest's TCP
//! service off from a host client until it is deleted (in both layouts), and the single
//! layout's netstack standing in for pf, ip, udp and tcp.
//!
//! Host traffic goes to 127.0.0.1 only (QEMU forwards it into the guest). As in [`crate::net`],
//! a guest script that must wait for the host runs `nc -l DONE_PORT`, which returns when the
//! host connects there and closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::net::{Layout, say_done, with_client};
use crate::{
    BootResult, BootSpec, CommandOutput, Harness, ManifestSource, NET_MANIFEST, NicModel,
    ScenarioResult,
};

/// tests/manifests/net.toml with ip's `args = "dhcp"`.
pub const DHCP_MANIFEST: &str = "tests/manifests/net-dhcp.toml";
/// Guest port the host connects to when it is done with a phase.
const DONE_PORT: u16 = 9;
/// How long a probe of the echo waits for its bytes to come back before calling it cut off.
const PROBE_WAIT: Duration = Duration::from_secs(4);

/// One try of the TCP echo behind host port `port`: connects, sends 4 bytes and waits up to
/// `wait` for them. `Ok(true)`: echoed; `Ok(false)`: no echo (QEMU took the connection, but
/// nothing came back in time or it was reset); `Err`: the host could not even connect.
fn probe_echo(port: u16, wait: Duration) -> Result<bool, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let mut back = [0u8; 4];
    let echoed =
        s.write_all(b"ping").is_ok() && s.read_exact(&mut back).is_ok() && &back == b"ping";
    let _ = s.shutdown(std::net::Shutdown::Both);
    Ok(echoed)
}

/// Probes until the echo answers (`want` true) or until a probe gets no answer (`want`
/// false), for up to `limit`; returns how long it took.
fn until_echo(
    port: u16,
    want: bool,
    limit: Duration,
    stop: &AtomicBool,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("the guest stopped first".into());
        }
        if start.elapsed() > limit {
            let what = if want {
                "an echo"
            } else {
                "a probe without echo"
            };
            return Err(format!("no {what} within {limit:?}"));
        }
        let wait = if want {
            Duration::from_secs(2)
        } else {
            PROBE_WAIT
        };
        if probe_echo(port, wait) == Ok(want) {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every run of `command` in the boot's exec session, in order.
fn runs<'r>(r: &'r BootResult, command: &str) -> Vec<&'r CommandOutput> {
    r.exec
        .as_ref()
        .map(|e| e.commands.iter().filter(|c| c.command == command).collect())
        .unwrap_or_default()
}

/// The number before `unit` in `line` (`"... 812 ms after ..."` gives 812 for " ms after").
fn number_before(line: &str, unit: &str) -> Option<u64> {
    let head = &line[..line.find(unit)?];
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The rule of [`pf_drops_tcp_to_port_7_until_the_rule_goes`].
const RULE: &str = "deny in tcp from any to any port 7";

/// The `hits=` of [`RULE`] in the output of `pf list` or `pf del` (pf's own log line about the
/// rule has none).
fn rule_hits(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains(RULE) && l.contains("hits="))
        .and_then(|l| l.split("hits=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The address QEMU's DHCP server hands out.
const LEASED: &str = "10.0.2.15/24";

/// ip runs with `dhcp` (tests/manifests/net-dhcp.toml): it starts with no address, QEMU's
/// DHCP server leases it 10.0.2.15/24 with gateway 10.0.2.2; `ifconfig` shows the address and
/// `dhcp bound`, and `ping -c 3 10.0.2.2` gets its 3 replies. Then `crash ip`: rs restarts
/// it, the restarted ip keeps the lease the `ip-state` region remembers (and asks the server to
/// confirm it), and `ifconfig` and the ping are as before.
pub fn dhcp_configures_ip_and_survives_its_crash(h: &dyn Harness) -> ScenarioResult {
    dhcp_in(h, Layout::Split)
}

/// [`dhcp_configures_ip_and_survives_its_crash`] in the single layout: netstack's ip part asks
/// DHCP (`ip:dhcp`), logs as `netstack:`, and the crash is netstack's.
pub fn dhcp_configures_ip_and_survives_its_crash_single(h: &dyn Harness) -> ScenarioResult {
    dhcp_in(h, Layout::Single)
}

fn dhcp_in(h: &dyn Harness, layout: Layout) -> ScenarioResult {
    // The process that is ip: its name in `crash`, in its log lines and in rs's.
    let ip = match layout {
        Layout::Single => "netstack",
        _ => "ip",
    };
    let crash = format!("crash {ip}");
    let ping = "ping -c 3 10.0.2.2";
    let spec = BootSpec::bios(8, layout.cmdline())
        .manifest(ManifestSource::File(DHCP_MANIFEST))
        .nic(NicModel::E1000)
        .exec(&[
            "sleep 4", "ifconfig", ping, &crash, "sleep 2", "ifconfig", ping,
        ])
        .timeout(Duration::from_secs(240));
    let r = h.boot(
        &layout.name("dhcp_configures_ip_and_survives_its_crash"),
        &spec,
    );
    r.exec_verdict()?;
    let t = &r.transcript;
    let start = t
        .find(&format!("{ip}: no address yet (DHCP)"))
        .ok_or_else(|| {
            format!("{ip} did not start without an address (does its manifest args ask for dhcp?)")
        })?;
    let leased = t[start..]
        .lines()
        .find(|l| l.contains(&format!("{ip}: dhcp: leased ")))
        .ok_or_else(|| format!("{ip} never logged a DHCP lease"))?;
    if !leased.contains(&format!("leased {LEASED} gateway 10.0.2.2")) {
        return Err(format!("not the lease QEMU hands out: {}", leased.trim()));
    }
    let after_ms = number_before(leased, " ms after the first message").unwrap_or(0);
    let ifconfigs = runs(&r, "ifconfig");
    let pings = runs(&r, ping);
    if ifconfigs.len() != 2 || pings.len() != 2 {
        return Err("the session did not run ifconfig and ping twice".into());
    }
    for (when, (ifc, p)) in ["after the lease", "after the crash"]
        .iter()
        .zip(ifconfigs.iter().zip(&pings))
    {
        let inet = format!("inet {LEASED} gateway 10.0.2.2");
        if !ifc.output.contains(&inet) || !ifc.output.contains(" s left") {
            return Err(format!(
                "{when}, ifconfig does not show the lease ({inet}, dhcp ... s left):\n{}",
                ifc.output
            ));
        }
        if !p.output.contains("3 packets transmitted, 3 received") {
            return Err(format!(
                "{when}, ping did not get 3 of 3 replies:\n{}",
                p.output
            ));
        }
    }
    if !ifconfigs[0].output.contains("dhcp bound") {
        return Err(format!(
            "ifconfig does not say 'dhcp bound':\n{}",
            ifconfigs[0].output
        ));
    }
    if !t.contains(&format!("rs: restarted {ip}")) {
        return Err(format!("rs did not restart {ip} after the crash"));
    }
    // The gateway's hardware address, learned by the first ping, came back from ip-state.
    if !t.contains(&format!("{ip}: 1 neighbour(s) from ip-state")) {
        return Err(format!(
            "the restarted {ip} did not take the gateway's hardware address from ip-state"
        ));
    }
    let kept = t
        .find(&format!("{ip}: dhcp: keeping {LEASED} from ip-state"))
        .ok_or_else(|| format!("the restarted {ip} did not keep the lease of ip-state"))?;
    // The server's confirmation (INIT-REBOOT), if it came before the end.
    let confirmed_ms = t[kept..]
        .lines()
        .find(|l| l.contains(&format!("{ip}: dhcp: leased ")))
        .and_then(|l| number_before(l, " ms after the first message"))
        .map_or("not seen".to_string(), |ms| format!("{ms} ms"));
    let rtt = pings[0]
        .output
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .unwrap_or("?");
    Ok(Some(format!(
        "{LEASED} leased {after_ms} ms after the first DISCOVER; kept across a crash of {ip}, \
         confirmed by the server after {confirmed_ms}; rtt {rtt}"
    )))
}

/// What the host client of [`pf_drops_tcp_to_port_7_until_the_rule_goes`] saw.
struct CutOff {
    /// From the guest's go-ahead to the first probe without an echo.
    cut_after: Duration,
    /// From that probe to the echo's return.
    back_after: Duration,
}

/// A pf rule denying TCP to port 7 cuts `echo-server tcp 7` off from a host client, and
/// deleting it gives the echo back. The host first sees the echo work, tells the guest so
/// (`nc -l 9`); the guest adds `deny in tcp from any to any port 7` and waits while the host
/// probes until one probe gets no echo within 4 s and tells it so (port 9 is not denied); the
/// guest lists the rules (the rule has hits) and deletes it; the host probes until the echo is
/// back and tells the guest, which ends. pf's `hits=` on the deleted rule are the host's SYNs
/// it dropped.
pub fn pf_drops_tcp_to_port_7_until_the_rule_goes(h: &dyn Harness) -> ScenarioResult {
    pf_drops_tcp_in(h, Layout::Split)
}

/// [`pf_drops_tcp_to_port_7_until_the_rule_goes`] with the kernel moving every message.
pub fn pf_drops_tcp_to_port_7_until_the_rule_goes_kernel_ipc(h: &dyn Harness) -> ScenarioResult {
    pf_drops_tcp_in(h, Layout::KernelIpc)
}

/// [`pf_drops_tcp_to_port_7_until_the_rule_goes`] with pf inside the single layout's netstack.
pub fn pf_drops_tcp_to_port_7_until_the_rule_goes_single(h: &dyn Harness) -> ScenarioResult {
    pf_drops_tcp_in(h, Layout::Single)
}

fn pf_drops_tcp_in(h: &dyn Harness, layout: Layout) -> ScenarioResult {
    let [echo, done] = crate::ports::host_ports()?;
    let wait_done = format!("nc -l {DONE_PORT}");
    let spec = BootSpec::bios(8, layout.cmdline())
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(true, echo, 7)
        .forward(true, done, DONE_PORT)
        .exec(&[
            "echo-server tcp 7 &",
            &wait_done,
            &format!("pf add {RULE}"),
            &wait_done,
            "pf list",
            "pf del 1",
            &wait_done,
            "netstat",
        ])
        .timeout(Duration::from_secs(300));
    let (r, seen) = with_client(
        h,
        &layout.name("pf_drops_tcp_to_port_7_until_the_rule_goes"),
        &spec,
        move |stop| {
            until_echo(echo, true, Duration::from_secs(120), stop)
                .map_err(|e| format!("before the rule: {e}"))?;
            say_done(done, Duration::from_secs(60), stop)?;
            let cut_after = until_echo(echo, false, Duration::from_secs(60), stop)
                .map_err(|e| format!("with the rule: {e}"))?;
            say_done(done, Duration::from_secs(60), stop)?;
            let back_after = until_echo(echo, true, Duration::from_secs(120), stop)
                .map_err(|e| format!("after deleting the rule: {e}"))?;
            say_done(done, Duration::from_secs(60), stop)?;
            Ok(CutOff {
                cut_after,
                back_after,
            })
        },
    );
    r.exec_verdict()?;
    let seen = seen?;
    let added = r.output_of(&format!("pf add {RULE}"))?;
    if !added.contains(&format!("added rule 1: {RULE}")) {
        return Err(format!("pf did not add the rule:\n{added}"));
    }
    let listed =
        rule_hits(r.output_of("pf list")?).ok_or("pf list shows no hit count for the rule")?;
    let deleted = r.output_of("pf del 1")?;
    let hits = rule_hits(deleted).ok_or_else(|| format!("pf del printed no hits:\n{deleted}"))?;
    if listed == 0 || hits == 0 {
        return Err(format!(
            "the rule dropped nothing (hits {listed} listed, {hits} at deletion)"
        ));
    }
    Ok(Some(format!(
        "no echo {:.1} s after the rule went in, echo back {:.1} s later after 'pf del'; \
         {hits} packets dropped by the rule",
        seen.cut_after.as_secs_f64(),
        seen.back_after.as_secs_f64()
    )))
}

/// The single layout (`layout=single`): one `netstack` process, alone on its CPU, is pf, ip,
/// udp and tcp — ping goes through it, `ifconfig`, `netstat` and `pf` reach it by the servers'
/// names, and `ps` lists none of the four split servers.
pub fn single_netstack_stands_in_for_the_four_servers(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(8, Layout::Single.cmdline())
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .exec(&[
            "sleep 2",
            "ping -c 3 10.0.2.2",
            "ifconfig",
            "netstat",
            "pf add deny in udp from any to any port 9",
            "pf list",
            "pf del 1",
            "ps",
        ])
        .timeout(Duration::from_secs(180));
    let r = h.boot("single_netstack_stands_in_for_the_four_servers", &spec);
    r.exec_verdict()?;
    let ping = r.output_of("ping -c 3 10.0.2.2")?;
    if !ping.contains("3 packets transmitted, 3 received") {
        return Err(format!("ping did not get 3 of 3 replies:\n{ping}"));
    }
    let ifconfig = r.output_of("ifconfig")?;
    if !ifconfig.contains("inet 10.0.2.15/24 gateway 10.0.2.2") {
        return Err(format!("ifconfig shows no address from ip:\n{ifconfig}"));
    }
    let netstat = r.output_of("netstat")?;
    if !netstat.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.get(..3) == Some(&["tcp", "shell", "2323"]) && w.get(4) == Some(&"LISTEN")
    }) {
        return Err(format!(
            "netstat does not show the shell's console listening:\n{netstat}"
        ));
    }
    let list = r.output_of("pf list")?;
    if !list.contains("rules=1") || !list.contains("port 9") {
        return Err(format!("pf list does not show the rule added:\n{list}"));
    }
    let rows = crate::ps_rows(&r, "ps")?;
    for name in ["e1000", "netstack"] {
        if !crate::ps_row(&rows, name)?.dedicated {
            return Err(format!("{name} is not alone on its CPU"));
        }
    }
    if let Some(split) = rows
        .iter()
        .find(|p| ["pf", "ip", "udp", "tcp"].contains(&p.name.as_str()))
    {
        return Err(format!("ps lists {} in the single layout", split.name));
    }
    let me = crate::ps_row(&rows, "netstack")?;
    Ok(Some(format!(
        "ping 3/3 through netstack (pid {} alone on cpu{}); ifconfig, netstat and pf reached it",
        me.pid, me.cpu
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_before_their_unit() {
        let l = "[cpu3] ip: dhcp: leased 10.0.2.15/24 ... (renewal in 43200 s), 812 ms after the first message";
        assert_eq!(number_before(l, " ms after the first message"), Some(812));
        assert_eq!(number_before("x ms after", " ms after"), None);
        assert_eq!(number_before("no unit", " ms"), None);
    }

    #[test]
    fn hits_come_from_the_rule_line_not_the_log() {
        let del = "[cpu2] pf: pid 2 deleted rule 1: deny in tcp from any to any port 7; 0 rules now\n\
                   deleted rule 1: deny in tcp from any to any port 7  hits=24\n";
        assert_eq!(rule_hits(del), Some(24));
        let list = " 1: deny in tcp from any to any port 7  hits=3\npf: rules=1 denied=3\n";
        assert_eq!(rule_hits(list), Some(3));
        assert_eq!(
            rule_hits(" 1: deny in udp from any to any port 7  hits=3"),
            None
        );
    }
}

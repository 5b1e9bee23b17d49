//! `netstack`: pf, ip, udp and tcp in one process (the single layout; see the library). At
//! start each part maps its regions and attaches its channels as its own program would; then
//! one loop runs them in turn: `heartbeat()`, a live update at a quiet point, a round of pf, of
//! ip, of udp and of tcp, and the kernel-IPC requests when the status page's mail word says one
//! was queued (`libsys::MailWatch`; no system call otherwise), each handed to the part it is
//! for. Idle for a few hundred rounds (20 ms on a CPU of its own under `idle=poll`), it arms
//! every part's inputs and sleeps until a notify (from e1000, an application or a client) or
//! the earliest timer of any part.
#![no_std]
#![no_main]

extern crate alloc;

use libsys::{Message, log};
use netstack::{Args, Part};

// tcp's connections hold 2 MiB of socket buffers each (as the tcp program's 64 MiB), plus
// what pf, ip and udp allocate.
libsys::entry!(main, heap = 68 << 20);

/// Empty rounds before arming the inputs and sleeping (few: see pfd's `SPIN_TURNS`).
const SPIN_ROUNDS: u32 = 20;
/// Most IPC requests taken in one poll.
const IPC_PER_POLL: usize = 8;

/// The four parts.
struct Stack {
    pf: pfd::server::Server,
    ip: ipd::server::Server,
    udp: Option<udpd::server::Server>,
    tcp: Option<tcpd::server::Server>,
    mail: libsys::MailWatch,
}

impl Stack {
    /// Hands request `m` from `from` to its part; the answer goes back with `ipc_reply` (ip's
    /// with its round's replies).
    fn dispatch(&mut self, from: u32, m: &Message) {
        let reply = match netstack::addressee(m) {
            Part::Pf => self.pf.answer(from, m),
            Part::Tcp => match &self.tcp {
                Some(tcp) => tcp.answer(m),
                None => netmsg::netstat::answer(m, 0, |_| None),
            },
            Part::Udp => match &self.udp {
                Some(udp) => udp.answer(m),
                None => netmsg::netstat::answer(m, 0, |_| None),
            },
            Part::Ip => {
                self.ip.request(from, m);
                return;
            }
        };
        // Fails only when the caller gave up waiting (or died): nothing to do.
        let _ = libsys::ipc_reply(from, &reply);
    }

    /// Takes the requests waiting when the status page says one was queued, without waiting
    /// for one.
    fn serve(&mut self) {
        let mut mail = core::mem::take(&mut self.mail);
        mail.poll(|| {
            for _ in 0..IPC_PER_POLL {
                let mut m: Message = [0; axolotl_abi::IPC_MSG_LEN];
                let Ok(from) = libsys::ipc_recv(&mut m, Some(0)) else {
                    return true;
                };
                self.dispatch(from, &m);
            }
            false
        });
        self.mail = mail;
    }

    fn round(&mut self) -> bool {
        let mut worked = self.pf.round();
        worked |= self.ip.round();
        if let Some(udp) = &mut self.udp {
            worked |= udp.round();
        }
        if let Some(tcp) = &mut self.tcp {
            worked |= tcp.round();
        }
        worked
    }

    /// Idle: arms every input; sleeps once (until the earliest timer of any part) unless one
    /// had a message; disarms them all.
    fn sleep(&mut self) {
        let mut sleep = self.pf.sleep_ns().min(self.ip.sleep_ns());
        if let Some(udp) = &self.udp {
            sleep = sleep.min(udp.sleep_ns());
        }
        if let Some(tcp) = &mut self.tcp {
            sleep = sleep.min(tcp.sleep_ns());
        }
        let mut ready = self.pf.arm();
        ready |= self.ip.arm();
        if let Some(udp) = &mut self.udp {
            ready |= udp.arm();
        }
        if let Some(tcp) = &mut self.tcp {
            ready |= tcp.arm();
        }
        if !ready {
            libsys::heartbeat();
            let _ = libsys::wait(Some(sleep));
        }
        self.pf.disarm();
        self.ip.disarm();
        if let Some(udp) = &mut self.udp {
            udp.disarm();
        }
        if let Some(tcp) = &mut self.tcp {
            tcp.disarm();
        }
    }
}

fn main(args: &str) -> i32 {
    let args = match Args::parse(args) {
        Ok(a) => a,
        Err(why) => {
            log!("bad arguments '{args}': {why}");
            return 2;
        }
    };
    match start(&args) {
        Ok(never) => match never {},
        Err(why) => {
            log!("FAILED: {why}");
            1
        }
    }
}

enum Never {}

fn start(args: &Args) -> Result<Never, &'static str> {
    use libsys::chan::Ipc;
    let pf = pfd::server::Server::start(Ipc::Dispatched)?;
    let (mut ip, early) = ipd::server::Server::start(args.dhcp, Ipc::Dispatched)?;
    // ip tops tcp's loan up in the same loop as tcp uses it.
    ip.set_tcp_credit(tcpmsg::TX_CREDIT_ONE_LOOP);
    let udp = if args.udp.is_empty() {
        None
    } else {
        Some(udpd::server::Server::start(&args.udp, Ipc::Dispatched)?)
    };
    let tcp = if args.tcp.is_empty() {
        None
    } else {
        Some(tcpd::server::Server::start(&args.tcp, Ipc::Dispatched)?)
    };
    let me = libsys::self_info().ok();
    log!(
        "pf, ip{}{} in one process on cpu {}{}",
        if udp.is_some() { ", udp" } else { "" },
        if tcp.is_some() { ", tcp" } else { "" },
        me.map_or(0, |p| p.cpu),
        if me.is_some_and(|p| p.dedicated != 0) {
            " (to itself)"
        } else {
            " (shared)"
        }
    );
    let mut stack = Stack {
        pf,
        ip,
        udp,
        tcp,
        mail: libsys::MailWatch::default(),
    };
    for (from, m) in early {
        stack.dispatch(from, &m);
    }
    let mut idle = libsys::IdlePolicy::new(SPIN_ROUNDS);
    loop {
        libsys::heartbeat();
        // Live update: at a quiet point of pf and ip (the transports keep their state in their
        // regions, and their neighbours recover what they held) hand over to a fresh instance.
        if libsys::update_requested() && stack.pf.quiet() && stack.ip.quiet() {
            log!("live update: quiet; exiting for the new instance");
            libsys::exit(axolotl_abi::EXIT_UPDATE);
        }
        let worked = stack.round();
        stack.serve();
        if worked {
            idle.worked();
            continue;
        }
        if idle.keep_polling() {
            continue;
        }
        stack.sleep();
    }
}

//! The command line of `cargo xtask` (DESIGN.md §9), parsed by hand: every option is validated
//! here, and options whose feature does not exist yet are refused by [`RunArgs::unsupported`]
//! instead of being ignored.

use std::path::PathBuf;
use std::time::Duration;

/// Kernel command line used when none is asked for.
pub const DEFAULT_CMDLINE: &str = "log=info";
/// Default number of virtual CPUs for `run`.
pub const DEFAULT_SMP: u32 = 2;
/// Default guest memory for `run`, in MiB.
pub const DEFAULT_MEM_MIB: u32 = 256;
/// Accepted `--smp` values.
pub const SMP_RANGE: std::ops::RangeInclusive<u32> = 1..=64;
/// Accepted `--mem` values, in MiB.
pub const MEM_RANGE: std::ops::RangeInclusive<u32> = 64..=65536;

/// A parsed `cargo xtask` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help`, `--help` or `SUBCOMMAND --help`: print the help of the subcommand (or the overview).
    Help(Option<&'static str>),
    /// `build [--release]`.
    Build(BuildArgs),
    /// `run ...`.
    Run(RunArgs),
    /// `test [FILTER]`.
    Test(TestArgs),
    /// `bench [--seconds S] [--json PATH] [--net tap|user] [--recovery-seconds R|--no-recovery]`.
    Bench(BenchArgs),
    /// `image [--bios|--uefi] [--out PATH] [--release] [--manifest PATH] [--cmdline WORDS]`.
    Image(ImageArgs),
    /// `flash DEVICE [--bios|--uefi] [--yes] [--release] [--manifest PATH] [--cmdline WORDS]`.
    Flash(FlashArgs),
    /// `console ADDR [--exec "a; b"] [--timeout S]`.
    Console(ConsoleArgs),
}

/// `cargo xtask console`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleArgs {
    /// The shell's address: HOST:PORT, or HOST (port 2323).
    pub addr: String,
    /// Commands to run, one after another; then the session ends (none: interactive).
    pub exec: Vec<String>,
    /// Seconds to wait for the connection and for each answer.
    pub timeout_s: u64,
}

/// The kernel command line made of [`DEFAULT_CMDLINE`] and the `--cmdline` words `extra`.
pub fn full_cmdline(extra: &str) -> String {
    if extra.trim().is_empty() {
        DEFAULT_CMDLINE.to_string()
    } else {
        format!("{DEFAULT_CMDLINE} {}", extra.trim())
    }
}

/// Limit of each wait of an `--exec` session when `--timeout` is not given.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `build`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildArgs {
    /// Build the kernel with the release profile.
    pub release: bool,
    /// The system manifest (`None`: `system.toml` at the workspace root).
    pub manifest: Option<PathBuf>,
}

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Emulation (works everywhere, slow).
    Tcg,
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
}

/// The emulated network card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nic {
    /// Intel 82540EM (QEMU `e1000`).
    E1000,
    /// Intel 82574L (QEMU `e1000e`).
    E1000e,
}

/// How the guest's network card is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// QEMU user networking (host 10.0.2.2, guest 10.0.2.15).
    User,
    /// A TAP device inside a network namespace.
    Tap,
    /// No network card at all.
    None,
}

/// Where the network servers run (DESIGN.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every server on its own core.
    Split,
    /// pf+ip+udp+tcp in one process.
    Single,
}

/// How servers talk (DESIGN.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipc {
    /// Shared-memory channels.
    Chan,
    /// Kernel IPC, one trap per message.
    Kernel,
}

/// What idle servers do (DESIGN.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Poll a few hundred empty rounds, then sleep.
    Sleep,
    /// Poll for 20 ms of idleness on a CPU of their own before sleeping.
    Poll,
}

/// Transport of a forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `--fwd PROTO:HOSTPORT:GUESTPORT`: a host port forwarded into the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Transport.
    pub proto: Proto,
    /// Port on the host's loopback.
    pub host_port: u16,
    /// Port in the guest.
    pub guest_port: u16,
}

/// Options of `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// Virtual CPUs.
    pub smp: u32,
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// Boot through OVMF.
    pub uefi: bool,
    /// Accelerator.
    pub accel: Accel,
    /// Network card model.
    pub nic: Nic,
    /// Network backend.
    pub net: Net,
    /// Server layout.
    pub layout: Layout,
    /// Server transport.
    pub ipc: Ipc,
    /// Idle servers.
    pub idle: Idle,
    /// Port forwards (repeatable).
    pub fwd: Vec<Forward>,
    /// Commands to type into the guest shell (`--exec "a; b"` split at `;`), without a final
    /// `poweroff` (always typed after them).
    pub exec: Option<Vec<String>>,
    /// Kill QEMU after this long; with `--exec`, the limit of each wait instead.
    pub timeout: Option<Duration>,
    /// The system manifest (`None`: `system.toml` at the workspace root).
    pub manifest: Option<PathBuf>,
    /// Release kernel.
    pub release: bool,
    /// Extra kernel command-line words, appended to [`DEFAULT_CMDLINE`] (later words win).
    pub cmdline_extra: String,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            smp: DEFAULT_SMP,
            mem_mib: DEFAULT_MEM_MIB,
            uefi: false,
            accel: Accel::Tcg,
            nic: Nic::E1000,
            net: Net::None,
            layout: Layout::Split,
            ipc: Ipc::Chan,
            idle: Idle::Sleep,
            fwd: Vec::new(),
            exec: None,
            timeout: None,
            manifest: None,
            release: false,
            cmdline_extra: String::new(),
        }
    }
}

impl RunArgs {
    /// The full kernel command line of this run.
    pub fn cmdline(&self) -> String {
        let mut line = full_cmdline(&self.cmdline_extra);
        // The transport between servers and the stack's layout are boot-time choices the
        // kernel hands to every process (`sysconf`; the kernel starts the processes of the
        // layout chosen), so they travel on the kernel command line.
        if self.ipc == Ipc::Kernel {
            line.push_str(" ipc=kernel");
        }
        if self.layout == Layout::Single {
            line.push_str(" layout=single");
        }
        if self.idle == Idle::Poll {
            line.push_str(" idle=poll");
        }
        line
    }
}

/// Options of `test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestArgs {
    /// Run only tests whose name contains this.
    pub filter: Option<String>,
    /// QEMU runs at the same time (1 or 2).
    pub jobs: usize,
    /// Echo every guest's serial output, prefixed by the test name.
    pub verbose: bool,
    /// The system manifest of the scenarios that boot the system (`None`: `system.toml`).
    pub manifest: Option<PathBuf>,
}

impl Default for TestArgs {
    fn default() -> Self {
        Self {
            filter: None,
            jobs: 2,
            verbose: false,
            manifest: None,
        }
    }
}

/// Options of `bench`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchArgs {
    /// Seconds per measurement.
    pub seconds: u32,
    /// Where to write the JSON rows (`None`: `target/bench/results.json`).
    pub json: Option<PathBuf>,
    /// How the guest reaches the host's iperf3: [`Net::Tap`] or [`Net::User`] (`None`: tap when
    /// running as root, else user networking with a warning in the results).
    pub net: Option<Net>,
    /// Seconds of the recovery phase's stream (`crash ip` every 2 s); 0: no recovery phase
    /// (`--no-recovery`).
    pub recovery_seconds: u32,
    /// Rounds of the split/single comparison: the split and single layouts over channels are
    /// booted this many times each, alternately, and their ratio is the median of the rounds'.
    pub rounds: u32,
}

/// Seconds per `bench` measurement when `--seconds` is not given.
pub const DEFAULT_BENCH_SECONDS: u32 = 10;
/// Seconds of `bench`'s recovery stream when `--recovery-seconds` is not given: seven crashes
/// of ip, two seconds apart, with two seconds of stream before the first and after the last.
pub const DEFAULT_RECOVERY_SECONDS: u32 = 16;
/// What `--recovery-seconds` accepts: at least one crash with two seconds on both sides.
pub const RECOVERY_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 4..=300;
/// Rounds of the split/single comparison when `--rounds` is not given: one round's ratio swings
/// with the host's load (0.65x to 1.33x in one afternoon's runs, docs/measurements.md), the
/// median of three less, and with boots of a few seconds three rounds cost about two minutes.
pub const DEFAULT_ROUNDS: u32 = 3;
/// What `--rounds` accepts.
pub const ROUNDS_RANGE: std::ops::RangeInclusive<u32> = 1..=9;

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            seconds: DEFAULT_BENCH_SECONDS,
            json: None,
            net: None,
            recovery_seconds: DEFAULT_RECOVERY_SECONDS,
            rounds: DEFAULT_ROUNDS,
        }
    }
}

/// Firmware type of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS (MBR).
    Bios,
    /// UEFI (GPT).
    Uefi,
}

/// What goes into the one image that `image` and `flash` make: the options they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    /// BIOS (`--bios`, the default) or UEFI (`--uefi`).
    pub firmware: Firmware,
    /// Release kernel.
    pub release: bool,
    /// The system manifest (`None`: `system.toml` at the workspace root).
    pub manifest: Option<PathBuf>,
    /// Extra kernel command-line words, appended to [`DEFAULT_CMDLINE`] (as `run --cmdline`).
    pub cmdline_extra: String,
}

impl Default for ImageSource {
    fn default() -> Self {
        Self {
            firmware: Firmware::Bios,
            release: false,
            manifest: None,
            cmdline_extra: String::new(),
        }
    }
}

impl ImageSource {
    /// The full kernel command line packed into the image.
    pub fn cmdline(&self) -> String {
        full_cmdline(&self.cmdline_extra)
    }
}

/// Options of `image`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageArgs {
    /// What the image holds.
    pub source: ImageSource,
    /// Where to write it (`None`: `target/axolotl/axolotl-bios.img` or `-uefi.img`).
    pub out: Option<PathBuf>,
}

/// Options of `flash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashArgs {
    /// Block device to write.
    pub device: PathBuf,
    /// What the image holds.
    pub source: ImageSource,
    /// Write without asking for confirmation.
    pub yes: bool,
}

/// A command line that cannot be used; the text is the whole explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

/// The subcommands, in help order.
pub const SUBCOMMANDS: [&str; 7] = ["build", "run", "test", "bench", "image", "flash", "console"];

/// Walks the words of one subcommand, splitting `--opt=value` and remembering which options were
/// seen so that repeating a non-repeatable one is an error.
struct Words<'a> {
    sub: &'static str,
    words: std::slice::Iter<'a, String>,
    /// A value split off the current `--opt=value` word, not yet taken.
    pending: Option<String>,
    seen: Vec<String>,
}

/// One item of a subcommand's command line.
enum Item {
    /// `--name` (or `-x`), with `=value` split off into the pending value.
    Opt(String),
    /// A word that is not an option.
    Positional(String),
}

impl<'a> Words<'a> {
    fn new(sub: &'static str, words: &'a [String]) -> Self {
        Self {
            sub,
            words: words.iter(),
            pending: None,
            seen: Vec::new(),
        }
    }

    fn next(&mut self) -> Result<Option<Item>, ArgError> {
        if let Some(v) = self.pending.take() {
            let opt = self.seen.last().cloned().unwrap_or_default();
            return err(format!("option '{opt}' takes no value (got '{opt}={v}')"));
        }
        let Some(word) = self.words.next() else {
            return Ok(None);
        };
        if word == "--" {
            return err(format!("'--' is not used by 'cargo xtask {}'", self.sub));
        }
        if word.starts_with('-') && word.len() > 1 {
            let (name, value) = match word.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (word.clone(), None),
            };
            self.pending = value;
            Ok(Some(Item::Opt(name)))
        } else {
            Ok(Some(Item::Positional(word.clone())))
        }
    }

    /// Marks `opt` as seen; an error if it was seen before and is not repeatable.
    fn once(&mut self, opt: &str) -> Result<(), ArgError> {
        if self.seen.iter().any(|s| s == opt) {
            return err(format!("option '{opt}' given twice"));
        }
        self.seen.push(opt.to_string());
        Ok(())
    }

    /// The value of option `opt`: from `--opt=value` or the next word.
    fn value(&mut self, opt: &str) -> Result<String, ArgError> {
        if let Some(v) = self.pending.take() {
            return Ok(v);
        }
        match self.words.next() {
            Some(v) if !v.starts_with("--") => Ok(v.clone()),
            _ => err(format!("option '{opt}' needs a value")),
        }
    }

    fn unknown(&self, opt: &str) -> ArgError {
        ArgError(format!(
            "unknown option '{opt}' for 'cargo xtask {}' (see 'cargo xtask {} --help')",
            self.sub, self.sub
        ))
    }
}

fn number<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, ArgError> {
    v.parse()
        .map_err(|_| ArgError(format!("option '{opt}' needs a whole number, got '{v}'")))
}

fn in_range(opt: &str, v: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, ArgError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        err(format!(
            "option '{opt}' must be in {}..={}, got {v}",
            range.start(),
            range.end()
        ))
    }
}

fn choice<T: Copy>(opt: &str, v: &str, choices: &[(&str, T)]) -> Result<T, ArgError> {
    match choices.iter().find(|(name, _)| *name == v) {
        Some((_, t)) => Ok(*t),
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            err(format!(
                "option '{opt}' must be one of {}, got '{v}'",
                names.join("|")
            ))
        }
    }
}

/// Parses `tcp:HOSTPORT:GUESTPORT` or `udp:HOSTPORT:GUESTPORT`.
pub fn parse_forward(v: &str) -> Result<Forward, ArgError> {
    let bad = |why: &str| {
        ArgError(format!(
            "option '--fwd': {why} in '{v}' (want tcp|udp:HOSTPORT:GUESTPORT)"
        ))
    };
    let parts: Vec<&str> = v.split(':').collect();
    let [proto, host, guest] = parts[..] else {
        return Err(bad("expected three ':'-separated parts"));
    };
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return Err(bad("protocol must be tcp or udp")),
    };
    let port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n != 0 => Ok(n),
        _ => Err(bad(&format!("'{p}' is not a port 1..=65535"))),
    };
    Ok(Forward {
        proto,
        host_port: port(host)?,
        guest_port: port(guest)?,
    })
}

/// Checks the kernel command-line words with the kernel's own parser.
fn check_cmdline(words: &str) -> Result<(), ArgError> {
    let mut problems = Vec::new();
    klib::cmdline::Cmdline::parse(words, &mut |e| problems.push(e.to_string()));
    if problems.is_empty() {
        Ok(())
    } else {
        err(format!(
            "option '--cmdline': {} (keys: log=error|warn|info|debug|trace, \
             test=kernel|panic|triple-fault|hang|exit-after-boot)",
            problems.join("; ")
        ))
    }
}

/// Parses the words after `cargo xtask`.
pub fn parse(args: &[String]) -> Result<Command, ArgError> {
    let Some((sub, rest)) = args.split_first() else {
        return Ok(Command::Help(None));
    };
    let sub: &'static str = match sub.as_str() {
        "-h" | "--help" | "help" => {
            let topic = rest
                .first()
                .and_then(|t| SUBCOMMANDS.iter().find(|s| *s == t));
            return match (rest.first(), topic) {
                (None, _) => Ok(Command::Help(None)),
                (Some(_), Some(t)) => Ok(Command::Help(Some(t))),
                (Some(t), None) => err(format!("no help on '{t}': unknown subcommand")),
            };
        }
        s => match SUBCOMMANDS.iter().find(|known| **known == s) {
            Some(known) => known,
            None => {
                return err(format!(
                    "unknown subcommand '{s}' (expected one of: {}; see 'cargo xtask --help')",
                    SUBCOMMANDS.join(", ")
                ));
            }
        },
    };
    if rest.iter().any(|w| w == "-h" || w == "--help") {
        return Ok(Command::Help(Some(sub)));
    }
    let mut w = Words::new(sub, rest);
    match sub {
        "build" => parse_build(&mut w).map(Command::Build),
        "run" => parse_run(&mut w).map(Command::Run),
        "test" => parse_test(&mut w).map(Command::Test),
        "bench" => parse_bench(&mut w).map(Command::Bench),
        "image" => parse_image(&mut w).map(Command::Image),
        "console" => parse_console(&mut w).map(Command::Console),
        _ => parse_flash(&mut w).map(Command::Flash),
    }
}

/// The value of `--manifest`: a path that must name an existing file.
fn manifest_path(w: &mut Words, opt: &str) -> Result<PathBuf, ArgError> {
    let v = w.value(opt)?;
    let path = PathBuf::from(&v);
    if !path.is_file() {
        return err(format!("option '{opt}': no such file '{v}'"));
    }
    Ok(path)
}

/// Splits `--exec` into commands; `poweroff` may only come last (it is typed anyway).
pub fn parse_exec(v: &str) -> Result<Vec<String>, ArgError> {
    let mut commands = axolotl_tests::shell::split_commands(v);
    if commands.last().is_some_and(|c| c == "poweroff") {
        commands.pop();
    } else if commands.is_empty() {
        return err("option '--exec' needs at least one command, e.g. --exec \"ps; stat\"");
    }
    if commands.iter().any(|c| c == "poweroff") {
        return err(
            "option '--exec': 'poweroff' may only be the last command (it is typed after the \
             last one anyway)",
        );
    }
    Ok(commands)
}

fn parse_build(w: &mut Words) -> Result<BuildArgs, ArgError> {
    let mut a = BuildArgs::default();
    while let Some(item) = w.next()? {
        match item {
            Item::Opt(o) if o == "--release" => {
                w.once(&o)?;
                a.release = true;
            }
            Item::Opt(o) if o == "--manifest" => {
                w.once(&o)?;
                a.manifest = Some(manifest_path(w, &o)?);
            }
            Item::Opt(o) => return Err(w.unknown(&o)),
            Item::Positional(p) => {
                return err(format!("'cargo xtask build' takes no argument '{p}'"));
            }
        }
    }
    Ok(a)
}

fn parse_run(w: &mut Words) -> Result<RunArgs, ArgError> {
    let mut a = RunArgs::default();
    while let Some(item) = w.next()? {
        let o = match item {
            Item::Opt(o) => o,
            Item::Positional(p) => {
                return err(format!(
                    "'cargo xtask run' takes no argument '{p}' (kernel words go in --cmdline \"...\")"
                ));
            }
        };
        if o != "--fwd" {
            w.once(&o)?;
        }
        match o.as_str() {
            "--smp" => a.smp = in_range(&o, number(&o, &w.value(&o)?)?, SMP_RANGE)?,
            "--mem" => a.mem_mib = in_range(&o, number(&o, &w.value(&o)?)?, MEM_RANGE)?,
            "--uefi" => a.uefi = true,
            "--release" => a.release = true,
            "--accel" => {
                a.accel = choice(
                    &o,
                    &w.value(&o)?,
                    &[("tcg", Accel::Tcg), ("kvm", Accel::Kvm)],
                )?
            }
            "--nic" => {
                a.nic = choice(
                    &o,
                    &w.value(&o)?,
                    &[("e1000", Nic::E1000), ("e1000e", Nic::E1000e)],
                )?
            }
            "--net" => {
                let v = w.value(&o)?;
                a.net = choice(
                    &o,
                    &v,
                    &[("user", Net::User), ("tap", Net::Tap), ("none", Net::None)],
                )?;
            }
            "--layout" => {
                let v = w.value(&o)?;
                a.layout = choice(
                    &o,
                    &v,
                    &[("split", Layout::Split), ("single", Layout::Single)],
                )?;
            }
            "--ipc" => {
                a.ipc = choice(
                    &o,
                    &w.value(&o)?,
                    &[("chan", Ipc::Chan), ("kernel", Ipc::Kernel)],
                )?
            }
            "--idle" => {
                a.idle = choice(
                    &o,
                    &w.value(&o)?,
                    &[("sleep", Idle::Sleep), ("poll", Idle::Poll)],
                )?
            }
            "--fwd" => a.fwd.push(parse_forward(&w.value(&o)?)?),
            "--exec" => a.exec = Some(parse_exec(&w.value(&o)?)?),
            "--manifest" => a.manifest = Some(manifest_path(w, &o)?),
            "--timeout" => {
                let secs: u64 = number(&o, &w.value(&o)?)?;
                if !(1..=86_400).contains(&secs) {
                    return err(format!(
                        "option '--timeout' must be in 1..=86400 seconds, got {secs}"
                    ));
                }
                a.timeout = Some(Duration::from_secs(secs));
            }
            "--cmdline" => a.cmdline_extra = cmdline_value(w, &o)?,
            _ => return Err(w.unknown(&o)),
        }
    }
    if !a.fwd.is_empty() && a.net == Net::Tap {
        return err(
            "option '--fwd' cannot be used with --net tap: forwards are made by QEMU's user \
             networking; with tap the guest (10.0.2.15) is reached from inside the run's network \
             namespace (ip netns exec axolotl-PID-N ...)",
        );
    }
    Ok(a)
}

/// The value of `--cmdline`, checked with the kernel's own parser.
fn cmdline_value(w: &mut Words, opt: &str) -> Result<String, ArgError> {
    let v = w.value(opt)?;
    check_cmdline(&v)?;
    Ok(v)
}

fn parse_test(w: &mut Words) -> Result<TestArgs, ArgError> {
    let mut a = TestArgs::default();
    while let Some(item) = w.next()? {
        match item {
            Item::Opt(o) => {
                w.once(&o)?;
                match o.as_str() {
                    "--jobs" | "-j" => {
                        let v = w.value(&o)?;
                        a.jobs = in_range(&o, number(&o, &v)?, 1..=2)? as usize;
                    }
                    "--verbose" | "-v" => a.verbose = true,
                    "--manifest" => a.manifest = Some(manifest_path(w, &o)?),
                    _ => return Err(w.unknown(&o)),
                }
            }
            Item::Positional(p) if a.filter.is_none() => a.filter = Some(p),
            Item::Positional(p) => {
                return err(format!(
                    "'cargo xtask test' takes one FILTER, got a second: '{p}'"
                ));
            }
        }
    }
    Ok(a)
}

fn parse_bench(w: &mut Words) -> Result<BenchArgs, ArgError> {
    let mut a = BenchArgs::default();
    while let Some(item) = w.next()? {
        match item {
            Item::Opt(o) => {
                w.once(&o)?;
                match o.as_str() {
                    "--seconds" => a.seconds = in_range(&o, number(&o, &w.value(&o)?)?, 1..=3600)?,
                    "--json" => {
                        let v = w.value(&o)?;
                        if v.is_empty() {
                            return err("option '--json' needs a file name");
                        }
                        a.json = Some(PathBuf::from(v));
                    }
                    "--net" => {
                        let v = w.value(&o)?;
                        a.net = Some(choice(&o, &v, &[("tap", Net::Tap), ("user", Net::User)])?);
                    }
                    "--rounds" => {
                        a.rounds = in_range(&o, number(&o, &w.value(&o)?)?, ROUNDS_RANGE)?;
                    }
                    "--recovery-seconds" | "--no-recovery" => {
                        if w.seen.iter().any(|s| s == "--recovery-seconds")
                            && w.seen.iter().any(|s| s == "--no-recovery")
                        {
                            return err(
                                "options '--recovery-seconds' and '--no-recovery' exclude each other",
                            );
                        }
                        a.recovery_seconds = if o == "--no-recovery" {
                            0
                        } else {
                            in_range(&o, number(&o, &w.value(&o)?)?, RECOVERY_SECONDS_RANGE)?
                        };
                    }
                    _ => return Err(w.unknown(&o)),
                }
            }
            Item::Positional(p) => {
                return err(format!("'cargo xtask bench' takes no argument '{p}'"));
            }
        }
    }
    Ok(a)
}

/// Takes option `o` if it is one of the options `image` and `flash` share (`--bios`, `--uefi`,
/// `--release`, `--manifest`, `--cmdline`); `Ok(false)` when it is not.
fn image_source_option(w: &mut Words, o: &str, a: &mut ImageSource) -> Result<bool, ArgError> {
    match o {
        "--bios" | "--uefi" => {
            if w.seen.iter().any(|s| s == "--bios" || s == "--uefi") {
                return err("options '--bios' and '--uefi' exclude each other");
            }
            w.once(o)?;
            a.firmware = if o == "--bios" {
                Firmware::Bios
            } else {
                Firmware::Uefi
            };
        }
        "--release" => {
            w.once(o)?;
            a.release = true;
        }
        "--manifest" => {
            w.once(o)?;
            a.manifest = Some(manifest_path(w, o)?);
        }
        "--cmdline" => {
            w.once(o)?;
            a.cmdline_extra = cmdline_value(w, o)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn parse_image(w: &mut Words) -> Result<ImageArgs, ArgError> {
    let mut a = ImageArgs::default();
    while let Some(item) = w.next()? {
        match item {
            Item::Opt(o) if image_source_option(w, &o, &mut a.source)? => {}
            Item::Opt(o) if o == "--out" => {
                w.once(&o)?;
                let v = w.value(&o)?;
                if v.is_empty() {
                    return err("option '--out' needs a file name");
                }
                a.out = Some(PathBuf::from(v));
            }
            Item::Opt(o) => return Err(w.unknown(&o)),
            Item::Positional(p) => {
                return err(format!(
                    "'cargo xtask image' takes no argument '{p}' (the file goes in --out PATH)"
                ));
            }
        }
    }
    Ok(a)
}

fn parse_console(w: &mut Words) -> Result<ConsoleArgs, ArgError> {
    let mut addr = None;
    let mut exec = Vec::new();
    let mut timeout_s = 30;
    while let Some(item) = w.next()? {
        match item {
            Item::Opt(o) if o == "--exec" => {
                w.once("--exec")?;
                exec = parse_exec(&w.value("--exec")?)?;
            }
            Item::Opt(o) if o == "--timeout" => {
                w.once("--timeout")?;
                timeout_s = u64::from(in_range(
                    "--timeout",
                    number("--timeout", &w.value("--timeout")?)?,
                    1..=3600,
                )?);
            }
            Item::Opt(o) => return Err(w.unknown(&o)),
            Item::Positional(p) if addr.is_none() => addr = Some(p),
            Item::Positional(p) => {
                return err(format!(
                    "'cargo xtask console' takes one ADDR, got a second: '{p}'"
                ));
            }
        }
    }
    match addr {
        Some(addr) => Ok(ConsoleArgs {
            addr,
            exec,
            timeout_s,
        }),
        None => {
            err("'cargo xtask console' needs the shell's ADDR (HOST:PORT, or HOST for port 2323)")
        }
    }
}

fn parse_flash(w: &mut Words) -> Result<FlashArgs, ArgError> {
    let mut device = None;
    let mut source = ImageSource::default();
    let mut yes = false;
    while let Some(item) = w.next()? {
        match item {
            Item::Opt(o) if image_source_option(w, &o, &mut source)? => {}
            Item::Opt(o) if o == "--yes" || o == "-y" => {
                w.once("--yes")?;
                yes = true;
            }
            Item::Opt(o) => return Err(w.unknown(&o)),
            Item::Positional(p) if device.is_none() => device = Some(PathBuf::from(p)),
            Item::Positional(p) => {
                return err(format!(
                    "'cargo xtask flash' takes one DEVICE, got a second: '{p}'"
                ));
            }
        }
    }
    match device {
        Some(device) => Ok(FlashArgs {
            device,
            source,
            yes,
        }),
        None => err("'cargo xtask flash' needs a DEVICE (e.g. /dev/sdX; see 'lsblk')"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, ArgError> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&words)
    }

    fn run(line: &str) -> RunArgs {
        match p(&format!("run {line}")) {
            Ok(Command::Run(r)) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn run_err(line: &str) -> String {
        match p(&format!("run {line}")) {
            Err(ArgError(e)) => e,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn help_forms() {
        assert_eq!(p(""), Ok(Command::Help(None)));
        assert_eq!(p("--help"), Ok(Command::Help(None)));
        assert_eq!(p("-h"), Ok(Command::Help(None)));
        assert_eq!(p("help run"), Ok(Command::Help(Some("run"))));
        assert_eq!(p("run --smp 4 --help"), Ok(Command::Help(Some("run"))));
        assert_eq!(p("test -h"), Ok(Command::Help(Some("test"))));
        assert!(p("help nope").unwrap_err().0.contains("unknown subcommand"));
    }

    #[test]
    fn unknown_subcommand_and_flags() {
        let e = p("boot").unwrap_err().0;
        assert!(
            e.contains("unknown subcommand 'boot'") && e.contains("build, run, test"),
            "{e}"
        );
        assert!(run_err("--smpp 2").contains("unknown option '--smpp' for 'cargo xtask run'"));
        assert!(
            p("build --debug")
                .unwrap_err()
                .0
                .contains("unknown option '--debug'")
        );
        assert!(
            p("build extra")
                .unwrap_err()
                .0
                .contains("takes no argument 'extra'")
        );
        assert!(run_err("stray").contains("takes no argument 'stray'"));
        assert!(run_err("--uefi=yes").contains("takes no value"));
        assert!(run_err("-- --smp 2").contains("'--' is not used"));
    }

    #[test]
    fn run_defaults() {
        let r = run("");
        assert_eq!(r, RunArgs::default());
        assert_eq!(
            (r.smp, r.mem_mib, r.net, r.accel),
            (2, 256, Net::None, Accel::Tcg)
        );
        assert_eq!(r.cmdline(), "log=info");
    }

    #[test]
    fn run_all_supported_options() {
        let r = run(
            "--smp 8 --mem=512 --uefi --accel kvm --nic e1000e --net user --layout split \
                     --ipc chan --fwd udp:5555:7 --timeout 30 --release --cmdline log=debug",
        );
        assert_eq!(r.smp, 8);
        assert_eq!(r.mem_mib, 512);
        assert!(r.uefi && r.release);
        assert_eq!(r.accel, Accel::Kvm);
        assert_eq!(r.net, Net::User);
        assert_eq!(r.timeout, Some(Duration::from_secs(30)));
        assert_eq!(r.cmdline(), "log=info log=debug");
    }

    #[test]
    fn cmdline_with_spaces_is_one_value() {
        let words = ["run", "--cmdline", "log=warn test=kernel"].map(String::from);
        let Ok(Command::Run(r)) = parse(&words) else {
            panic!()
        };
        assert_eq!(r.cmdline(), "log=info log=warn test=kernel");
        let words = ["run", "--cmdline", "log=warn colour=red"].map(String::from);
        let e = parse(&words).unwrap_err().0;
        assert!(e.contains("unknown command-line key 'colour'"), "{e}");
        assert!(run_err("--cmdline log=loud").contains("bad value 'loud'"));
        assert!(run_err("--cmdline quiet").contains("not key=value"));
    }

    #[test]
    fn smp_bounds() {
        assert_eq!(run("--smp 1").smp, 1);
        assert_eq!(run("--smp 64").smp, 64);
        assert!(run_err("--smp 0").contains("must be in 1..=64, got 0"));
        assert!(run_err("--smp 65").contains("must be in 1..=64, got 65"));
        assert!(run_err("--smp -1").contains("whole number, got '-1'"));
        assert!(run_err("--smp two").contains("whole number, got 'two'"));
        assert!(run_err("--smp").contains("'--smp' needs a value"));
        assert!(run_err("--smp 2 --smp 4").contains("given twice"));
        assert!(run_err("--mem 16").contains("64..=65536"));
    }

    #[test]
    fn choices_are_checked() {
        assert!(run_err("--accel hvf").contains("one of tcg|kvm, got 'hvf'"));
        assert!(run_err("--net bridge").contains("one of user|tap|none"));
        assert!(run_err("--nic rtl8139").contains("one of e1000|e1000e"));
        assert!(run_err("--layout --smp").contains("'--layout' needs a value"));
        assert!(run_err("--timeout 0").contains("1..=86400"));
        assert!(run_err("--timeout 1.5").contains("whole number"));
    }

    #[test]
    fn forward_syntax() {
        let f = |proto, host_port, guest_port| Forward {
            proto,
            host_port,
            guest_port,
        };
        assert_eq!(parse_forward("tcp:8080:80"), Ok(f(Proto::Tcp, 8080, 80)));
        assert_eq!(parse_forward("udp:5353:53"), Ok(f(Proto::Udp, 5353, 53)));
        assert_eq!(
            run("--fwd tcp:1:2 --fwd=udp:65535:7").fwd,
            [f(Proto::Tcp, 1, 2), f(Proto::Udp, 65535, 7)]
        );
        for bad in [
            "tcp:80",
            "tcp:1:2:3",
            "sctp:1:2",
            "tcp:0:80",
            "tcp:80:65536",
            "tcp::80",
            "TCP:1:2",
            "",
        ] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
        assert!(
            parse_forward("icmp:1:2")
                .unwrap_err()
                .0
                .contains("protocol must be tcp or udp")
        );
        assert!(
            parse_forward("tcp:x:2")
                .unwrap_err()
                .0
                .contains("'x' is not a port")
        );
    }

    #[test]
    fn ipc_kernel_travels_on_the_kernel_command_line() {
        assert_eq!(run("--ipc kernel").cmdline(), "log=info ipc=kernel");
        assert_eq!(run("--ipc chan").cmdline(), "log=info");
        assert_eq!(run("--idle poll").cmdline(), "log=info idle=poll");
        assert_eq!(run("--idle sleep").cmdline(), "log=info");
    }

    #[test]
    fn layout_single_travels_on_the_kernel_command_line() {
        assert_eq!(run("--layout single").cmdline(), "log=info layout=single");
        assert_eq!(run("--layout split").cmdline(), "log=info");
        assert_eq!(
            run("--layout single --ipc kernel").cmdline(),
            "log=info ipc=kernel layout=single"
        );
    }

    #[test]
    fn net_tap_is_supported_but_not_with_forwards() {
        let r = run("--net tap --nic e1000e --smp 8");
        assert_eq!((r.net, r.nic), (Net::Tap, Nic::E1000e));
        for line in ["--net tap --fwd tcp:8080:80", "--fwd udp:5555:7 --net=tap"] {
            let e = run_err(line);
            assert!(
                e.contains("'--fwd' cannot be used with --net tap") && e.contains("namespace"),
                "{line}: {e}"
            );
        }
        assert!(run_err("--net tap --net user").contains("given twice"));
        // Forwards with user networking stay as they were.
        assert_eq!(run("--net user --fwd tcp:1:2").fwd.len(), 1);
    }

    #[test]
    fn exec_and_manifest() {
        let words = ["run", "--exec", "sleep 2; ps ;", "--timeout", "30"].map(String::from);
        let Ok(Command::Run(r)) = parse(&words) else {
            panic!()
        };
        assert_eq!(r.exec, Some(vec!["sleep 2".to_string(), "ps".to_string()]));
        assert_eq!(parse_exec("ps; poweroff"), Ok(vec!["ps".to_string()]));
        assert_eq!(parse_exec("poweroff"), Ok(vec![]));
        assert!(
            parse_exec(" ; ")
                .unwrap_err()
                .0
                .contains("at least one command")
        );
        assert!(
            parse_exec("poweroff; ps")
                .unwrap_err()
                .0
                .contains("only be the last")
        );
        let root = crate::images::workspace_root();
        let system = root.join("system.toml").display().to_string();
        assert_eq!(
            run(&format!("--manifest {system}")).manifest,
            Some(system.clone().into())
        );
        assert!(run_err("--manifest /nonexistent/s.toml").contains("no such file"));
        assert!(run_err(&format!("--manifest {system} --manifest {system}")).contains("twice"));
        let Ok(Command::Build(b)) = p(&format!("build --manifest={system}")) else {
            panic!()
        };
        assert_eq!(b.manifest, Some(system.clone().into()));
        let Ok(Command::Test(t)) = p(&format!("test --manifest {system} ps_")) else {
            panic!()
        };
        assert_eq!(
            (t.manifest, t.filter),
            (Some(system.into()), Some("ps_".to_string()))
        );
    }

    #[test]
    fn test_args() {
        assert_eq!(p("test"), Ok(Command::Test(TestArgs::default())));
        let Ok(Command::Test(t)) = p("test boot_ -j 1 -v") else {
            panic!()
        };
        assert_eq!(
            t,
            TestArgs {
                filter: Some("boot_".into()),
                jobs: 1,
                verbose: true,
                manifest: None
            }
        );
        assert!(p("test a b").unwrap_err().0.contains("one FILTER"));
        assert!(p("test --jobs 3").unwrap_err().0.contains("1..=2"));
        assert!(
            p("test --nocapture")
                .unwrap_err()
                .0
                .contains("unknown option")
        );
    }

    #[test]
    fn bench_args() {
        assert_eq!(p("bench"), Ok(Command::Bench(BenchArgs::default())));
        assert_eq!(BenchArgs::default().seconds, 10);
        assert_eq!(
            p("bench --seconds 5 --json out.json --net user"),
            Ok(Command::Bench(BenchArgs {
                seconds: 5,
                json: Some("out.json".into()),
                net: Some(Net::User),
                recovery_seconds: 16,
                rounds: 3,
            }))
        );
        let Ok(Command::Bench(b)) = p("bench --rounds 3") else {
            panic!()
        };
        assert_eq!(b.rounds, 3);
        let Ok(Command::Bench(b)) = p("bench --recovery-seconds 20") else {
            panic!()
        };
        assert_eq!(b.recovery_seconds, 20);
        let Ok(Command::Bench(b)) = p("bench --no-recovery") else {
            panic!()
        };
        assert_eq!(b.recovery_seconds, 0);
        let Ok(Command::Bench(b)) = p("bench --net=tap --seconds=3600") else {
            panic!()
        };
        assert_eq!((b.net, b.seconds), (Some(Net::Tap), 3600));
        let e = |line: &str| p(line).unwrap_err().0;
        assert!(e("bench --seconds 0").contains("1..=3600"));
        assert!(e("bench --seconds 3601").contains("1..=3600"));
        assert!(e("bench --seconds ten").contains("whole number"));
        assert!(e("bench --net none").contains("one of tap|user, got 'none'"));
        assert!(e("bench --net").contains("needs a value"));
        assert!(e("bench --json").contains("needs a value"));
        assert!(e("bench --json=").contains("needs a file name"));
        assert!(e("bench --json a --json b").contains("given twice"));
        assert!(e("bench --smp 4").contains("unknown option '--smp' for 'cargo xtask bench'"));
        assert!(e("bench fast").contains("takes no argument 'fast'"));
        assert!(e("bench --recovery-seconds 3").contains("4..=300"));
        assert!(e("bench --recovery-seconds 301").contains("4..=300"));
        assert!(e("bench --no-recovery=yes").contains("takes no value"));
        assert!(e("bench --no-recovery --recovery-seconds 8").contains("exclude each other"));
        assert!(e("bench --recovery-seconds 8 --no-recovery").contains("exclude each other"));
        assert!(e("bench --rounds 0").contains("1..=9"));
        assert!(e("bench --rounds 10").contains("1..=9"));
        assert!(e("bench --rounds 2 --rounds 3").contains("given twice"));
    }

    #[test]
    fn image_args() {
        assert_eq!(p("image"), Ok(Command::Image(ImageArgs::default())));
        assert_eq!(ImageArgs::default().source.firmware, Firmware::Bios);
        assert_eq!(ImageArgs::default().source.cmdline(), "log=info");
        let Ok(Command::Image(a)) = p("image --uefi --out=x.img --release") else {
            panic!()
        };
        assert_eq!(
            a,
            ImageArgs {
                source: ImageSource {
                    firmware: Firmware::Uefi,
                    release: true,
                    ..ImageSource::default()
                },
                out: Some("x.img".into())
            }
        );
        let words = ["image", "--cmdline", "test=exit-after-boot", "--bios"].map(String::from);
        let Ok(Command::Image(a)) = parse(&words) else {
            panic!()
        };
        assert_eq!(a.source.cmdline(), "log=info test=exit-after-boot");
        let e = |line: &str| p(line).unwrap_err().0;
        assert!(e("image --bios --uefi").contains("exclude each other"));
        assert!(e("image --uefi --bios").contains("exclude each other"));
        assert!(e("image --bios --bios").contains("exclude each other"));
        assert!(e("image --out").contains("'--out' needs a value"));
        assert!(e("image --out=").contains("needs a file name"));
        assert!(e("image --out a --out b").contains("given twice"));
        assert!(e("image x.img").contains("takes no argument 'x.img' (the file goes in --out"));
        assert!(e("image --yes").contains("unknown option '--yes' for 'cargo xtask image'"));
        assert!(e("image --cmdline colour=red").contains("unknown command-line key"));
        assert!(e("image --manifest /nonexistent.toml").contains("no such file"));
        assert!(e("image --release=1").contains("takes no value"));
    }

    #[test]
    fn flash_args() {
        assert_eq!(
            p("flash /dev/sdz"),
            Ok(Command::Flash(FlashArgs {
                device: "/dev/sdz".into(),
                source: ImageSource::default(),
                yes: false,
            }))
        );
        let Ok(Command::Flash(a)) = p("flash --uefi /dev/loop3 --yes --release") else {
            panic!()
        };
        assert_eq!(a.device, std::path::Path::new("/dev/loop3"));
        assert!(a.yes && a.source.release);
        assert_eq!(a.source.firmware, Firmware::Uefi);
        let Ok(Command::Flash(a)) = p("flash -y /dev/sdz") else {
            panic!()
        };
        assert!(a.yes);
        let e = |line: &str| p(line).unwrap_err().0;
        assert!(e("flash").contains("needs a DEVICE"));
        assert!(e("flash --yes").contains("needs a DEVICE"));
        assert!(e("flash a b").contains("one DEVICE, got a second: 'b'"));
        assert!(e("flash /dev/sdz --yes -y").contains("given twice"));
        assert!(e("flash /dev/sdz --out x").contains("unknown option '--out'"));
        assert!(e("flash /dev/sdz --bios --uefi").contains("exclude each other"));
        assert!(e("flash /dev/sdz --yes=no").contains("takes no value"));
    }
}

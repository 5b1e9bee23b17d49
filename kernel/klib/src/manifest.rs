//! The boot module table: xtask validates `system.toml` and writes it into the ramdisk module
//! `manifest` as one line per item, which the kernel reads with this parser:
//!
//! ```text
//! process NAME binary=BIN placement=dedicated|shared grants=a,b regions=r1,r2 ipc=p1,p2 args=WORD restart=MAX/WINDOW_MS/BACKOFF_MS start=0|1 [layout=split|single]
//! region NAME pages=N [slots=S]
//! ```
//! `start=1` (the default) starts the process at boot. A process with `start=0` (`start =
//! "on-demand"` in `system.toml`) is placed, granted and given its status page like any other but
//! not started at boot: a process with the `control` grant starts it later (`proc_start`).
//! A process with `layout=split` or `layout=single` exists only when the kernel command line
//! chose that network-stack layout (`layout=`, DESIGN.md §8): the separate pf, ip, udp and tcp
//! servers, or the one `netstack` process that links them all. In the other layout it is neither
//! placed nor started, and cannot be started on demand. Without `layout` it is in both.
//! A region with `slots` is a channel: the kernel writes the channel header (libchan) for S
//! 64-byte slots before mapping it, so both ends find a valid, empty ring.
//! Empty lists are written as `grants=` etc. Lines starting with `#` and blank lines are skipped.
//! The kernel grants exactly what this table says, so the parser is strict: any unknown word is
//! an error naming the line.

/// Most processes a manifest may declare.
pub const MAX_PROCESSES: usize = 32;
/// Most regions a manifest may declare.
pub const MAX_REGIONS: usize = 64;

/// Where a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A CPU of its own, shared with nothing.
    Dedicated,
    /// Time-shares the CPUs no dedicated process owns.
    Shared,
}

/// The reincarnation policy of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window_ms` before giving up.
    pub max_failures: u32,
    /// Length of the failure window.
    pub window_ms: u32,
    /// Delay before the first restart; doubled for each failure in the window.
    pub backoff_ms: u32,
}

/// One `process` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessEntry<'a> {
    pub name: &'a str,
    pub binary: &'a str,
    pub placement: Placement,
    grants: &'a str,
    regions: &'a str,
    ipc: &'a str,
    pub args: &'a str,
    pub restart: RestartPolicy,
    /// Started at boot (`start=1`); false for a process started on demand (`start=0`).
    pub start: bool,
    /// The one network-stack layout the process belongs to (`layout=`); `None`: both.
    pub layout: Option<crate::cmdline::Layout>,
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|w| !w.is_empty())
}

impl<'a> ProcessEntry<'a> {
    /// Capabilities and devices granted (`console`, `power`, `control`, ...).
    pub fn grants(&self) -> impl Iterator<Item = &'a str> {
        list(self.grants)
    }
    /// Regions the process may map.
    pub fn regions(&self) -> impl Iterator<Item = &'a str> {
        list(self.regions)
    }
    /// Processes it may send kernel IPC to and notify.
    pub fn ipc(&self) -> impl Iterator<Item = &'a str> {
        list(self.ipc)
    }
    /// True when the process exists in the network-stack layout `layout` (it names none, or
    /// that one).
    pub fn in_layout(&self, layout: crate::cmdline::Layout) -> bool {
        self.layout.is_none_or(|l| l == layout)
    }
    /// True when `grant` is granted.
    pub fn has_grant(&self, grant: &str) -> bool {
        self.grants().any(|g| g == grant)
    }
    /// True when region `name` is granted.
    pub fn has_region(&self, name: &str) -> bool {
        self.regions().any(|r| r == name)
    }
    /// True when IPC to `name` is granted.
    pub fn has_ipc(&self, name: &str) -> bool {
        self.ipc().any(|p| p == name)
    }
}

/// One `region` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionEntry<'a> {
    pub name: &'a str,
    pub pages: u32,
    /// Slots of the channel ring this region holds, if it is a channel.
    pub slots: Option<u32>,
}

/// Why the table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestError<'a> {
    /// A line starts with a word other than `process` or `region`.
    UnknownItem { line: usize, word: &'a str },
    /// A `key=value` word the item does not take, or without `=`.
    UnknownKey { line: usize, word: &'a str },
    /// A value that does not parse.
    BadValue { line: usize, key: &'a str },
    /// A required key is missing.
    Missing { line: usize, key: &'static str },
    /// More items than the kernel's tables hold.
    TooMany { line: usize },
    /// Two items share a name.
    Duplicate { line: usize, name: &'a str },
}

impl core::fmt::Display for ManifestError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownItem { line, word } => {
                write!(f, "manifest line {line}: unknown item '{word}'")
            }
            Self::UnknownKey { line, word } => {
                write!(f, "manifest line {line}: unknown word '{word}'")
            }
            Self::BadValue { line, key } => {
                write!(f, "manifest line {line}: bad value for '{key}'")
            }
            Self::Missing { line, key } => write!(f, "manifest line {line}: '{key}' missing"),
            Self::TooMany { line } => write!(f, "manifest line {line}: too many items"),
            Self::Duplicate { line, name } => {
                write!(f, "manifest line {line}: '{name}' declared twice")
            }
        }
    }
}

/// A parsed table.
pub struct Manifest<'a> {
    processes: [Option<ProcessEntry<'a>>; MAX_PROCESSES],
    regions: [Option<RegionEntry<'a>>; MAX_REGIONS],
}

fn num(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

impl<'a> Manifest<'a> {
    pub fn parse(text: &'a str) -> Result<Self, ManifestError<'a>> {
        let mut m = Manifest {
            processes: [None; MAX_PROCESSES],
            regions: [None; MAX_REGIONS],
        };
        let (mut np, mut nr) = (0, 0);
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let mut words = raw.split_ascii_whitespace();
            let item = words.next().unwrap_or("");
            let name = words
                .next()
                .ok_or(ManifestError::Missing { line, key: "name" })?;
            if name.contains('=') || name.len() > crate::ramdisk::NAME_LEN {
                return Err(ManifestError::BadValue { line, key: "name" });
            }
            match item {
                "process" => {
                    if np == MAX_PROCESSES {
                        return Err(ManifestError::TooMany { line });
                    }
                    if m.process(name).is_some() {
                        return Err(ManifestError::Duplicate { line, name });
                    }
                    let mut p = ProcessEntry {
                        name,
                        binary: "",
                        placement: Placement::Shared,
                        grants: "",
                        regions: "",
                        ipc: "",
                        args: "",
                        restart: RestartPolicy {
                            max_failures: 0,
                            window_ms: 0,
                            backoff_ms: 0,
                        },
                        start: true,
                        layout: None,
                    };
                    let mut seen_binary = false;
                    for word in words {
                        let (k, v) = word
                            .split_once('=')
                            .ok_or(ManifestError::UnknownKey { line, word })?;
                        match k {
                            "binary" => {
                                if v.is_empty() {
                                    return Err(ManifestError::BadValue { line, key: k });
                                }
                                p.binary = v;
                                seen_binary = true;
                            }
                            "placement" => {
                                p.placement = match v {
                                    "dedicated" => Placement::Dedicated,
                                    "shared" => Placement::Shared,
                                    _ => return Err(ManifestError::BadValue { line, key: k }),
                                }
                            }
                            "grants" => p.grants = v,
                            "regions" => p.regions = v,
                            "ipc" => p.ipc = v,
                            "args" => p.args = v,
                            "start" => {
                                p.start = match v {
                                    "1" => true,
                                    "0" => false,
                                    _ => return Err(ManifestError::BadValue { line, key: k }),
                                }
                            }
                            "layout" => {
                                p.layout = match v {
                                    "split" => Some(crate::cmdline::Layout::Split),
                                    "single" => Some(crate::cmdline::Layout::Single),
                                    _ => return Err(ManifestError::BadValue { line, key: k }),
                                }
                            }
                            "restart" => {
                                let mut parts = v.split('/').map(num);
                                let (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) =
                                    (parts.next(), parts.next(), parts.next(), parts.next())
                                else {
                                    return Err(ManifestError::BadValue { line, key: k });
                                };
                                p.restart = RestartPolicy {
                                    max_failures: a,
                                    window_ms: b,
                                    backoff_ms: c,
                                };
                            }
                            _ => return Err(ManifestError::UnknownKey { line, word }),
                        }
                    }
                    if !seen_binary {
                        return Err(ManifestError::Missing {
                            line,
                            key: "binary",
                        });
                    }
                    m.processes[np] = Some(p);
                    np += 1;
                }
                "region" => {
                    if nr == MAX_REGIONS {
                        return Err(ManifestError::TooMany { line });
                    }
                    if m.region(name).is_some() {
                        return Err(ManifestError::Duplicate { line, name });
                    }
                    let mut pages = None;
                    let mut slots = None;
                    for word in words {
                        match word.split_once('=') {
                            Some(("slots", v)) => {
                                slots = Some(
                                    num(v)
                                        .filter(|&n| n.is_power_of_two() && n <= 1 << 20)
                                        .ok_or(ManifestError::BadValue { line, key: "slots" })?,
                                )
                            }
                            Some(("pages", v)) => {
                                pages = Some(
                                    num(v)
                                        .filter(|&n| n > 0 && n <= 65536)
                                        .ok_or(ManifestError::BadValue { line, key: "pages" })?,
                                )
                            }
                            _ => return Err(ManifestError::UnknownKey { line, word }),
                        }
                    }
                    let pages = pages.ok_or(ManifestError::Missing { line, key: "pages" })?;
                    m.regions[nr] = Some(RegionEntry { name, pages, slots });
                    nr += 1;
                }
                word => return Err(ManifestError::UnknownItem { line, word }),
            }
        }
        Ok(m)
    }

    /// Processes in manifest order.
    pub fn processes(&self) -> impl Iterator<Item = &ProcessEntry<'a>> {
        self.processes.iter().map_while(|p| p.as_ref())
    }

    /// Regions in manifest order.
    pub fn regions(&self) -> impl Iterator<Item = &RegionEntry<'a>> {
        self.regions.iter().map_while(|r| r.as_ref())
    }

    pub fn process(&self, name: &str) -> Option<&ProcessEntry<'a>> {
        self.processes().find(|p| p.name == name)
    }

    pub fn region(&self, name: &str) -> Option<&RegionEntry<'a>> {
        self.regions().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# generated from system.toml
process shell binary=shell placement=shared grants=console,power regions= ipc= args= restart=5/10000/20 start=1
process ping binary=testproc placement=dedicated grants= regions=pp ipc=pong args=ipc-ping restart=0/0/0
process pong binary=testproc placement=dedicated grants= regions=pp ipc=ping args=ipc-pong restart=0/0/0 start=0

region pp pages=4
region ch pages=5 slots=256
";

    #[test]
    fn parses_the_table() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.processes().count(), 3);
        let shell = m.process("shell").unwrap();
        assert_eq!(shell.binary, "shell");
        assert_eq!(shell.placement, Placement::Shared);
        assert!(
            shell.has_grant("console") && shell.has_grant("power") && !shell.has_grant("control")
        );
        assert_eq!(shell.regions().count(), 0);
        assert_eq!(
            shell.restart,
            RestartPolicy {
                max_failures: 5,
                window_ms: 10000,
                backoff_ms: 20
            }
        );
        let ping = m.process("ping").unwrap();
        assert_eq!(ping.placement, Placement::Dedicated);
        assert!(ping.has_region("pp") && ping.has_ipc("pong") && !ping.has_ipc("shell"));
        assert_eq!(ping.args, "ipc-ping");
        assert!(shell.start);
        assert!(ping.start, "boot is the default");
        assert!(!m.process("pong").unwrap().start);
        assert_eq!(m.region("pp").unwrap().pages, 4);
        assert_eq!(m.region("pp").unwrap().slots, None);
        assert_eq!(m.region("ch").unwrap().slots, Some(256));
        assert!(m.region("nope").is_none());
    }

    #[test]
    fn layouts() {
        use crate::cmdline::Layout;
        let m = Manifest::parse(
            "process ip binary=ip layout=split\nprocess netstack binary=netstack layout=single\nprocess shell binary=shell\n",
        )
        .unwrap();
        let ip = m.process("ip").unwrap();
        assert!(ip.in_layout(Layout::Split) && !ip.in_layout(Layout::Single));
        let ns = m.process("netstack").unwrap();
        assert!(!ns.in_layout(Layout::Split) && ns.in_layout(Layout::Single));
        let shell = m.process("shell").unwrap();
        assert!(shell.in_layout(Layout::Split) && shell.in_layout(Layout::Single));
        assert_eq!(
            Manifest::parse("process x binary=y layout=both").err(),
            Some(ManifestError::BadValue {
                line: 1,
                key: "layout"
            })
        );
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let bad = |t: &'static str| Manifest::parse(t).err().unwrap();
        assert_eq!(
            bad("proc x binary=y"),
            ManifestError::UnknownItem {
                line: 1,
                word: "proc"
            }
        );
        assert_eq!(
            bad("process x"),
            ManifestError::Missing {
                line: 1,
                key: "binary"
            }
        );
        assert_eq!(
            bad("process x binary=y colour=red"),
            ManifestError::UnknownKey {
                line: 1,
                word: "colour=red"
            }
        );
        assert_eq!(
            bad("process x binary=y placement=loose"),
            ManifestError::BadValue {
                line: 1,
                key: "placement"
            }
        );
        assert_eq!(
            bad("process x binary=y restart=1/2"),
            ManifestError::BadValue {
                line: 1,
                key: "restart"
            }
        );
        assert_eq!(
            bad("process x binary=y restart=1/2/3/4"),
            ManifestError::BadValue {
                line: 1,
                key: "restart"
            }
        );
        for word in [
            "start=yes",
            "start=boot",
            "start=on-demand",
            "start=",
            "start=01",
        ] {
            let line = std::format!("process x binary=y {word}");
            assert_eq!(
                Manifest::parse(&line).err(),
                Some(ManifestError::BadValue {
                    line: 1,
                    key: "start"
                }),
                "{word}"
            );
        }
        assert_eq!(
            bad("\nprocess x binary=y\nprocess x binary=z"),
            ManifestError::Duplicate { line: 3, name: "x" }
        );
        assert_eq!(
            bad("region r"),
            ManifestError::Missing {
                line: 1,
                key: "pages"
            }
        );
        assert_eq!(
            bad("region r pages=0"),
            ManifestError::BadValue {
                line: 1,
                key: "pages"
            }
        );
        assert_eq!(
            bad("region r pages=2 slots=100"),
            ManifestError::BadValue {
                line: 1,
                key: "slots"
            }
        );
        assert_eq!(
            bad("region r pages=99999999999"),
            ManifestError::BadValue {
                line: 1,
                key: "pages"
            }
        );
        assert_eq!(
            bad("process"),
            ManifestError::Missing {
                line: 1,
                key: "name"
            }
        );
        assert_eq!(
            bad("process a=b binary=c"),
            ManifestError::BadValue {
                line: 1,
                key: "name"
            }
        );
    }

    #[test]
    fn too_many_processes() {
        let mut text = std::string::String::new();
        for i in 0..=MAX_PROCESSES {
            text.push_str(&std::format!("process p{i} binary=b\n"));
        }
        assert_eq!(
            Manifest::parse(&text).err(),
            Some(ManifestError::TooMany {
                line: MAX_PROCESSES + 1
            })
        );
    }
}

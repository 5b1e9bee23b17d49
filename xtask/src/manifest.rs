//! The system manifest (`system.toml`, or a test manifest under `tests/manifests/`): parsed with
//! `toml` + serde, validated, and turned into the boot module table that the kernel reads with
//! `klib::manifest::Manifest::parse` (the ramdisk module `manifest`).
//!
//! The kernel grants exactly what the table says, so the checks here are strict and every
//! problem is reported with the file and the process or region it concerns:
//! - unknown keys anywhere (`deny_unknown_fields`: a typo is an error, never ignored);
//! - names of processes and regions: 1 to [`NAME_MAX`] bytes, no whitespace, `=` or `,`;
//! - `binary` must be a user program xtask can build (`programs`); `placement` dedicated|shared;
//! - `grants`: `console` (exclusive among the processes started at boot: one at most, the
//!   shell; programs started on demand may hold it too, to print on the console), `power`,
//!   `control`, and the network cards `nic0`, `nic1`, ... (each exclusive); nothing else;
//! - `regions` must be declared under `[region.NAME]`; every declared region must be listed by a
//!   process, and a channel region (one with `slots`) by exactly two — its two ends (a channel
//!   with no peer is a mistake); a plain region may belong to one process alone (e.g. a driver's
//!   DMA memory); `pages` in 1..=65536; `slots`
//!   (a channel region) a power of two that `libchan` takes, with `pages` big enough for the
//!   channel's header page and slots (`libchan::region_size`);
//! - `ipc` must name declared processes;
//! - `args` is one word in the table, so it may not hold whitespace (testproc takes
//!   `map-ok,REGION`);
//! - `restart` numbers at most 999,999,999 (the kernel reads nine digits);
//! - `layout` is `"split"` or `"single"` when given: the process exists only when the boot
//!   chose that network-stack layout (`--layout`, DESIGN.md §8); the checks of regions and
//!   exclusive grants apply to each layout's processes apart. A channel region listed by one
//!   process alone is accepted for a `layout = "single"` process: the netstack is both ends of
//!   the channels between the servers it links;
//! - `start` is `"boot"` (the default) or `"on-demand"` (declared and checked like any other
//!   process, started later by a process with the `control` grant: the shell's `NAME ARGS`);
//!   `true` and `false` are accepted for them too;
//! - at most `klib::manifest::MAX_PROCESSES` processes and `MAX_REGIONS` regions.
//!
//! Processes and regions keep their order in the file: the kernel numbers processes in table
//! order and gives dedicated CPUs in that order.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// Longest process or region name, in bytes (the kernel's `NAME_LEN`).
pub const NAME_MAX: usize = 16;
/// Largest region, in 4 KiB pages.
pub const MAX_PAGES: i64 = 65536;
/// Largest number the kernel's table parser reads (nine digits).
pub const MAX_NUMBER: u32 = 999_999_999;
/// Grants the kernel knows by name, and whether one process at most may hold each (a device).
/// Besides these, `nicN` (N a decimal number) grants the N-th network card the kernel finds on
/// PCI; each card is exclusive too.
pub const GRANTS: [(&str, bool); 3] = [("console", true), ("power", false), ("control", false)];

/// True when `grant` names a network card: `nic0`, `nic1`, ... (no leading zeros).
pub fn is_nic(grant: &str) -> bool {
    grant.strip_prefix("nic").is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 3
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'))
    })
}

/// `Some(exclusive)` for a grant the kernel knows, `None` for an unknown one.
fn grant_kind(grant: &str) -> Option<bool> {
    if is_nic(grant) {
        return Some(true);
    }
    GRANTS
        .iter()
        .find(|(known, _)| *known == grant)
        .map(|(_, exclusive)| *exclusive)
}

/// `start` of a process started at boot (the default).
pub const START_BOOT: &str = "boot";
/// `start` of a process started on demand (by a process with the `control` grant).
pub const START_ON_DEMAND: &str = "on-demand";

/// Ramdisk modules that are not programs: no binary may take these names.
pub const RESERVED_MODULES: [&str; 2] = ["cmdline", "manifest"];

/// Where a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A CPU of its own.
    Dedicated,
    /// Time-shares the CPUs no dedicated process owns.
    Shared,
}

impl Placement {
    fn word(self) -> &'static str {
        match self {
            Self::Dedicated => "dedicated",
            Self::Shared => "shared",
        }
    }
}

/// The reincarnation policy of a process (all 0 when the manifest gives none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Restarts allowed within the window before giving up.
    pub max_failures: u32,
    /// Length of the failure window in milliseconds.
    pub window_ms: u32,
    /// Delay before the first restart, in milliseconds.
    pub backoff_ms: u32,
}

/// One validated process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its name (`[process.NAME]`).
    pub name: String,
    /// The user program it runs.
    pub binary: String,
    /// Where it runs.
    pub placement: Placement,
    /// Capabilities and devices.
    pub grants: Vec<String>,
    /// Regions it may map.
    pub regions: Vec<String>,
    /// Processes it may send kernel IPC to.
    pub ipc: Vec<String>,
    /// Its argument string (one word).
    pub args: String,
    /// Reincarnation policy.
    pub restart: Restart,
    /// Started at boot (`start = "boot"`, the default); false for `start = "on-demand"`.
    pub start: bool,
    /// The one network-stack layout it exists in (`"split"` or `"single"`); `None`: both.
    pub layout: Option<String>,
}

/// The network-stack layouts a `layout` key may name.
pub const LAYOUTS: [&str; 2] = ["split", "single"];

impl Process {
    /// True when the process exists in `layout`.
    pub fn in_layout(&self, layout: &str) -> bool {
        self.layout.as_deref().is_none_or(|l| l == layout)
    }
}

/// One validated region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Its name (`[region.NAME]`).
    pub name: String,
    /// Size in 4 KiB pages.
    pub pages: u32,
    /// For a channel region: its number of 64-byte slots (the kernel writes the header).
    pub slots: Option<u32>,
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemManifest {
    /// Processes in file order.
    pub processes: Vec<Process>,
    /// Regions in file order.
    pub regions: Vec<Region>,
}

/// Why a manifest was refused: every problem found, each naming what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The file, as shown to the user.
    pub file: String,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\nerror: ")?;
            }
            write!(f, "{}: {p}", self.file)?;
        }
        Ok(())
    }
}

/// `[process.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessToml {
    binary: String,
    #[serde(default)]
    placement: Option<String>,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    ipc: Vec<String>,
    #[serde(default)]
    args: String,
    #[serde(default)]
    restart: Restart,
    #[serde(default)]
    start: StartToml,
    #[serde(default)]
    layout: Option<String>,
}

/// `start` as written: `"boot"` | `"on-demand"`, or the booleans `true` | `false` for them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StartToml {
    /// A boolean (`true`: at boot).
    Flag(bool),
    /// A word, checked by [`parse`] so that a wrong one gets a message naming the process.
    Word(String),
}

impl Default for StartToml {
    fn default() -> Self {
        Self::Flag(true)
    }
}

impl<'de> Deserialize<'de> for StartToml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StartVisitor;
        impl Visitor<'_> for StartVisitor {
            type Value = StartToml;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"boot\" or \"on-demand\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<StartToml, E> {
                Ok(StartToml::Flag(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StartToml, E> {
                Ok(StartToml::Word(v.to_string()))
            }
        }
        d.deserialize_any(StartVisitor)
    }
}

/// `[region.NAME]` as written (signed, so that a negative number gets our message).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionToml {
    pages: i64,
    #[serde(default)]
    slots: Option<i64>,
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestToml {
    #[serde(default)]
    process: Ordered<ProcessToml>,
    #[serde(default)]
    region: Ordered<RegionToml>,
}

/// A table of tables in file order (`toml` keeps the order with its `preserve_order` feature).
#[derive(Debug)]
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tables<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Tables<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(entry) = map.next_entry::<String, T>()? {
                    all.push(entry);
                }
                Ok(Ordered(all))
            }
        }
        d.deserialize_map(Tables(PhantomData))
    }
}

/// Line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `process 'NAME'` or `region 'NAME'` for the table header `[process.NAME]` that last precedes
/// `line`; the header itself otherwise.
fn context_of(text: &str, line: usize) -> Option<String> {
    let header = text
        .lines()
        .take(line)
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')?.split(']').next()
        })
        .last()?;
    let header = header.trim_start_matches('[').trim();
    let unquote = |s: &str| s.trim().trim_matches('"').to_string();
    Some(match header.split_once('.') {
        Some(("process", name)) => format!("process '{}'", unquote(name)),
        Some(("region", name)) => format!("region '{}'", unquote(name)),
        _ => format!("[{header}]"),
    })
}

/// A `toml` error as one line: `LINE: process 'NAME': MESSAGE`.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    // serde speaks of fields; a manifest has keys.
    let message = e
        .message()
        .trim()
        .replace('\n', " ")
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key");
    match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            match context_of(text, line) {
                Some(ctx) => format!("line {line}: {ctx}: {message}"),
                None => format!("line {line}: {message}"),
            }
        }
        None => message,
    }
}

/// Why `name` cannot be a process or region name, if it cannot.
fn bad_name(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("the name is empty".to_string())
    } else if name.len() > NAME_MAX {
        Some(format!(
            "the name is {} bytes long, at most {NAME_MAX} are allowed",
            name.len()
        ))
    } else {
        name.chars()
            .find(|c| c.is_whitespace() || *c == '=' || *c == ',' || c.is_control())
            .map(|c| format!("the name may not contain {c:?}"))
    }
}

/// Parses and validates manifest `text`. `file` names it in messages; `programs` are the binary
/// names xtask can build.
pub fn parse(text: &str, file: &str, programs: &[&str]) -> Result<SystemManifest, Invalid> {
    let invalid = |problems| Invalid {
        file: file.to_string(),
        problems,
    };
    let raw: ManifestToml =
        toml::from_str(text).map_err(|e| invalid(vec![describe_toml_error(text, &e)]))?;
    let mut problems = Vec::new();

    if raw.process.0.len() > klib::manifest::MAX_PROCESSES {
        problems.push(format!(
            "{} processes declared, the kernel takes at most {}",
            raw.process.0.len(),
            klib::manifest::MAX_PROCESSES
        ));
    }
    if raw.region.0.len() > klib::manifest::MAX_REGIONS {
        problems.push(format!(
            "{} regions declared, the kernel takes at most {}",
            raw.region.0.len(),
            klib::manifest::MAX_REGIONS
        ));
    }

    let mut regions = Vec::new();
    for (name, r) in &raw.region.0 {
        let mut say = |p: String| problems.push(format!("region '{name}': {p}"));
        if let Some(why) = bad_name(name) {
            say(why);
        }
        if !(1..=MAX_PAGES).contains(&r.pages) {
            say(format!(
                "pages = {} is out of range 1..={MAX_PAGES}",
                r.pages
            ));
        }
        let slots = r.slots.map(|n| u32::try_from(n).unwrap_or(0));
        if let Some(n) = slots {
            match libchan::region_size(n) {
                None => say(format!(
                    "slots = {} is not a power of two in 1..={}",
                    r.slots.unwrap_or_default(),
                    libchan::layout::MAX_CAPACITY
                )),
                Some(needed) if (1..=MAX_PAGES).contains(&r.pages) => {
                    let bytes = r.pages as usize * 4096;
                    if bytes < needed {
                        say(format!(
                            "pages = {} hold {bytes} bytes, but a {n}-slot channel needs \
                             {needed} ({} pages)",
                            r.pages,
                            needed.div_ceil(4096)
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        regions.push(Region {
            name: name.clone(),
            pages: u32::try_from(r.pages).unwrap_or(0),
            slots,
        });
    }

    let process_names: Vec<&str> = raw.process.0.iter().map(|(n, _)| n.as_str()).collect();
    let mut processes = Vec::new();
    for (name, p) in &raw.process.0 {
        let mut say = |p: String| problems.push(format!("process '{name}': {p}"));
        if let Some(why) = bad_name(name) {
            say(why);
        }
        if RESERVED_MODULES.contains(&p.binary.as_str()) || !programs.contains(&p.binary.as_str()) {
            say(format!(
                "unknown binary '{}' (user programs: {})",
                p.binary,
                programs.join(", ")
            ));
        }
        let placement = match p.placement.as_deref() {
            None | Some("shared") => Placement::Shared,
            Some("dedicated") => Placement::Dedicated,
            Some(other) => {
                say(format!(
                    "placement = \"{other}\" is neither \"dedicated\" nor \"shared\""
                ));
                Placement::Shared
            }
        };
        for (key, list) in [
            ("grants", &p.grants),
            ("regions", &p.regions),
            ("ipc", &p.ipc),
        ] {
            for (i, item) in list.iter().enumerate() {
                if list[..i].contains(item) {
                    say(format!("{key} lists '{item}' twice"));
                }
            }
        }
        for g in &p.grants {
            if grant_kind(g).is_none() {
                let known: Vec<&str> = GRANTS.iter().map(|(g, _)| *g).collect();
                say(format!(
                    "unknown grant '{g}' (grants: {}, and network cards nic0, nic1, ...)",
                    known.join(", ")
                ));
            }
        }
        for r in &p.regions {
            if !raw.region.0.iter().any(|(n, _)| n == r) {
                say(format!(
                    "region '{r}' is not declared (add a [region.{r}] table)"
                ));
            }
        }
        for peer in &p.ipc {
            if !process_names.contains(&peer.as_str()) {
                say(format!(
                    "ipc names '{peer}', which is not a process of this manifest"
                ));
            }
        }
        if p.args.chars().any(char::is_whitespace) {
            say(format!(
                "args = \"{}\" contains whitespace; the boot table takes one word (testproc \
                 splits its arguments on ',')",
                p.args
            ));
        }
        let start = match &p.start {
            StartToml::Flag(at_boot) => *at_boot,
            StartToml::Word(w) if w == START_BOOT => true,
            StartToml::Word(w) if w == START_ON_DEMAND => false,
            StartToml::Word(other) => {
                say(format!(
                    "start = \"{other}\" is neither \"{START_BOOT}\" nor \"{START_ON_DEMAND}\""
                ));
                true
            }
        };
        if let Some(l) = &p.layout
            && !LAYOUTS.contains(&l.as_str())
        {
            say(format!(
                "layout = \"{l}\" is neither \"split\" nor \"single\""
            ));
        }
        let r = p.restart;
        if [r.max_failures, r.window_ms, r.backoff_ms]
            .iter()
            .any(|&n| n > MAX_NUMBER)
        {
            say(format!("restart numbers may not exceed {MAX_NUMBER}"));
        }
        processes.push(Process {
            name: name.clone(),
            binary: p.binary.clone(),
            placement,
            grants: p.grants.clone(),
            regions: p.regions.clone(),
            ipc: p.ipc.clone(),
            args: p.args.clone(),
            restart: p.restart,
            start,
            layout: p.layout.clone(),
        });
    }

    let mut exclusive_grants: Vec<&str> = Vec::new();
    for g in processes.iter().flat_map(|p| &p.grants) {
        if grant_kind(g) == Some(true) && !exclusive_grants.contains(&g.as_str()) {
            exclusive_grants.push(g);
        }
    }
    for grant in exclusive_grants {
        // The console has one owner at boot (the shell); a program started on demand may hold
        // it too, to print while the shell that started it waits. A device has one owner.
        let console = grant == "console";
        for layout in LAYOUTS {
            let holders: Vec<&str> = processes
                .iter()
                .filter(|p| p.in_layout(layout))
                .filter(|p| p.grants.iter().any(|g| g == grant) && (p.start || !console))
                .map(|p| p.name.as_str())
                .collect();
            if holders.len() > 1 {
                problems.push(format!(
                    "grant '{grant}' is exclusive{}, but processes {} all claim it",
                    if console {
                        " among the processes started at boot"
                    } else {
                        ""
                    },
                    quoted(&holders)
                ));
                break;
            }
        }
    }
    for r in &regions {
        if !processes.iter().any(|p| p.regions.contains(&r.name)) {
            problems.push(format!("region '{}': no process lists it", r.name));
            continue;
        }
        let Some(_) = r.slots else { continue };
        // The layouts tell which processes run together; without any, they are one.
        let layouts: &[&str] = if processes.iter().any(|p| p.layout.is_some()) {
            &LAYOUTS
        } else {
            &LAYOUTS[..1]
        };
        for layout in layouts {
            let users: Vec<&Process> = processes
                .iter()
                .filter(|p| p.in_layout(layout) && p.regions.contains(&r.name))
                .collect();
            let names: Vec<&str> = users.iter().map(|p| p.name.as_str()).collect();
            let ok = match users.as_slice() {
                [] | [_, _] => true,
                [one] => one.layout.as_deref() == Some("single"),
                _ => false,
            };
            if ok {
                continue;
            }
            let who = match names.as_slice() {
                [p] => format!("only process '{p}' lists it"),
                many => format!("processes {} list it", quoted(many)),
            };
            let within = if layouts.len() > 1 {
                format!(" (layout {layout})")
            } else {
                String::new()
            };
            problems.push(format!(
                "region '{}': {who}{within}; a channel has exactly two ends (a channel with no peer, or a third writer, is a mistake), or one process of layout \"single\" that is both",
                r.name
            ));
            break;
        }
    }

    if problems.is_empty() {
        Ok(SystemManifest { processes, regions })
    } else {
        Err(invalid(problems))
    }
}

fn quoted(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    q.join(", ")
}

impl SystemManifest {
    /// The distinct binaries of all processes (started at boot or not), in first-use order.
    pub fn binaries(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for p in &self.processes {
            if !all.contains(&p.binary.as_str()) {
                all.push(&p.binary);
            }
        }
        all
    }

    /// True when a process names `layout` as the one it belongs to.
    pub fn has_layout(&self, layout: &str) -> bool {
        self.processes
            .iter()
            .any(|p| p.layout.as_deref() == Some(layout))
    }

    /// True when a process started at boot holds `grant`.
    pub fn started_with_grant(&self, grant: &str) -> bool {
        self.processes
            .iter()
            .any(|p| p.start && p.grants.iter().any(|g| g == grant))
    }

    /// The boot module table (`klib::manifest` format), with a comment naming `source`.
    pub fn table(&self, source: &str) -> String {
        let mut t = format!("# boot module table, generated by cargo xtask from {source}\n");
        for p in &self.processes {
            let r = p.restart;
            t.push_str(&format!(
                "process {} binary={} placement={} grants={} regions={} ipc={} args={} \
                 restart={}/{}/{} start={}{}\n",
                p.name,
                p.binary,
                p.placement.word(),
                p.grants.join(","),
                p.regions.join(","),
                p.ipc.join(","),
                p.args,
                r.max_failures,
                r.window_ms,
                r.backoff_ms,
                u8::from(p.start),
                p.layout
                    .as_deref()
                    .map_or(String::new(), |l| format!(" layout={l}"))
            ));
        }
        for r in &self.regions {
            t.push_str(&format!("region {} pages={}", r.name, r.pages));
            if let Some(n) = r.slots {
                t.push_str(&format!(" slots={n}"));
            }
            t.push('\n');
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klib::manifest::{Manifest, Placement as KPlacement, RestartPolicy};

    const PROGRAMS: [&str; 3] = ["shell", "testproc", "ipcbench"];

    fn ok(text: &str) -> SystemManifest {
        parse(text, "m.toml", &PROGRAMS).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(text: &str) -> Vec<String> {
        parse(text, "m.toml", &PROGRAMS)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"))
            .problems
    }

    /// The single problem of `text`, which must contain `needle`.
    fn refused(text: &str, needle: &str) {
        let p = problems(text);
        assert!(
            p.len() == 1 && p[0].contains(needle),
            "want one problem with {needle:?}, got {p:#?}"
        );
    }

    /// Checks that the kernel's parser reads `m`'s table back to the same thing.
    fn round_trips(m: &SystemManifest) {
        let text = m.table("m.toml");
        let k = Manifest::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(k.processes().count(), m.processes.len());
        assert_eq!(k.regions().count(), m.regions.len());
        for (kp, p) in k.processes().zip(&m.processes) {
            assert_eq!(kp.name, p.name);
            assert_eq!(kp.binary, p.binary);
            let placement = match p.placement {
                Placement::Dedicated => KPlacement::Dedicated,
                Placement::Shared => KPlacement::Shared,
            };
            assert_eq!(kp.placement, placement);
            assert!(kp.grants().eq(p.grants.iter().map(String::as_str)));
            assert!(kp.regions().eq(p.regions.iter().map(String::as_str)));
            assert!(kp.ipc().eq(p.ipc.iter().map(String::as_str)));
            assert_eq!(kp.args, p.args);
            let r = p.restart;
            assert_eq!(
                kp.restart,
                RestartPolicy {
                    max_failures: r.max_failures,
                    window_ms: r.window_ms,
                    backoff_ms: r.backoff_ms
                }
            );
            assert_eq!(kp.start, p.start);
            assert_eq!(
                kp.layout.map(klib::cmdline::Layout::name),
                p.layout.as_deref()
            );
        }
        for (kr, r) in k.regions().zip(&m.regions) {
            assert_eq!(
                (kr.name, kr.pages, kr.slots),
                (r.name.as_str(), r.pages, r.slots)
            );
        }
    }

    fn repo_file(path: &str) -> String {
        let p = crate::images::workspace_root().join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The binaries xtask can build in this workspace.
    fn workspace_programs() -> Vec<String> {
        crate::programs::discover(&crate::images::workspace_root())
            .unwrap()
            .into_iter()
            .map(|p| p.binary)
            .collect()
    }

    #[test]
    fn the_repository_manifests_are_valid_and_round_trip() {
        let known = workspace_programs();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut paths = vec!["system.toml".to_string()];
        let dir = crate::images::workspace_root().join("tests/manifests");
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".toml") {
                paths.push(format!("tests/manifests/{name}"));
            }
        }
        assert!(paths.len() >= 2, "{paths:?}");
        for path in &paths {
            let m = parse(&repo_file(path), path, &known).unwrap_or_else(|e| panic!("{e}"));
            assert!(!m.processes.is_empty(), "{path}");
            round_trips(&m);
        }
    }

    #[test]
    fn system_toml_as_the_kernel_sees_it() {
        let known = workspace_programs();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let m = parse(&repo_file("system.toml"), "system.toml", &known).unwrap();
        let text = m.table("system.toml");
        let k = Manifest::parse(&text).unwrap();
        // The shell is there and owns the console; everything the table names is declared.
        let shell = k.process("shell").unwrap();
        assert!(shell.has_grant("console") && shell.has_grant("power"));
        assert!(m.started_with_grant("console"));
        assert!(m.binaries().contains(&"shell"));
        for p in k.processes() {
            assert!(p.ipc().all(|peer| k.process(peer).is_some()), "{}", p.name);
            assert!(p.regions().all(|r| k.region(r).is_some()), "{}", p.name);
        }
    }

    #[test]
    fn order_defaults_and_table_text() {
        let m = ok(r#"
            [process.zeta]
            binary = "shell"
            grants = ["console", "power"]
            regions = ["chan"]
            [process.alpha]
            binary = "testproc"
            placement = "dedicated"
            regions = ["chan"]
            ipc = ["zeta"]
            args = "map-ok,chan"
            restart = { max_failures = 3, window_ms = 1000, backoff_ms = 5 }
            start = "on-demand"
            [region.chan]
            pages = 4
        "#);
        assert_eq!(m.processes[0].name, "zeta", "file order kept");
        assert_eq!(m.processes[0].placement, Placement::Shared);
        assert!(m.processes[0].start);
        assert_eq!(m.processes[0].restart, Restart::default());
        assert_eq!(
            m.table("x.toml"),
            "# boot module table, generated by cargo xtask from x.toml\n\
             process zeta binary=shell placement=shared grants=console,power regions=chan ipc= \
             args= restart=0/0/0 start=1\n\
             process alpha binary=testproc placement=dedicated grants= regions=chan ipc=zeta \
             args=map-ok,chan restart=3/1000/5 start=0\n\
             region chan pages=4\n"
        );
        round_trips(&m);
        assert_eq!(m.binaries(), ["shell", "testproc"]);
        round_trips(&ok(""));
    }

    #[test]
    fn typos_are_errors_with_a_place() {
        let p = problems("[process.shell]\nbinary = \"shell\"\nplacment = \"shared\"\n");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("line 3: process 'shell': unknown key `placment`"),
            "{p:?}"
        );
        let p = problems("[proces.shell]\nbinary = \"shell\"\n");
        assert!(p[0].contains("unknown key `proces`"), "{p:?}");
        let p = problems("[process.a]\nbinary = \"shell\"\nrestart = { max_failures = 1 }\n");
        assert!(
            p[0].contains("process 'a'") && p[0].contains("window_ms"),
            "{p:?}"
        );
        let p = problems(
            "[process.a]\nbinary = \"shell\"\nrestart = { max_failures = 1, window_ms = 2, backoff_ms = 3, jitter = 4 }\n",
        );
        assert!(p[0].contains("unknown key `jitter`"), "{p:?}");
        let p = problems("[region.r]\npages = 1\nsize = 2\n");
        assert!(
            p[0].contains("region 'r'") && p[0].contains("`size`"),
            "{p:?}"
        );
        let p = problems("[process.a]\nplacement = \"shared\"\n");
        assert!(p[0].contains("missing key `binary`"), "{p:?}");
        let p = problems("[process.a]\nbinary = 5\n");
        assert!(
            p[0].contains("line 2") && p[0].contains("process 'a'"),
            "{p:?}"
        );
        let p = problems("[process.a\n");
        assert!(p[0].starts_with("line 1"), "{p:?}");
    }

    #[test]
    fn the_rules() {
        let one = |extra: &str| format!("[process.a]\nbinary = \"shell\"\n{extra}\n");
        refused(&one("placement = \"pinned\""), "placement = \"pinned\"");
        refused(&one("grants = [\"gpu0\"]"), "unknown grant 'gpu0'");
        refused(&one("grants = [\"nic01\"]"), "unknown grant 'nic01'");
        refused(&one("grants = [\"nic\"]"), "unknown grant 'nic'");
        refused(
            &one("grants = [\"power\", \"power\"]"),
            "grants lists 'power' twice",
        );
        refused(
            &one("regions = [\"ghost\"]"),
            "region 'ghost' is not declared",
        );
        refused(&one("ipc = [\"nobody\"]"), "ipc names 'nobody'");
        refused(&one("args = \"map-ok shared\""), "contains whitespace");
        refused(
            &one("restart = { max_failures = 1000000000, window_ms = 0, backoff_ms = 0 }"),
            "may not exceed",
        );
        refused(
            "[process.a]\nbinary = \"shel\"\n",
            "unknown binary 'shel' (user programs: shell, testproc, ipcbench)",
        );
        refused(
            "[process.a]\nbinary = \"manifest\"\n",
            "unknown binary 'manifest'",
        );
        refused(
            "[process.a-very-long-namex]\nbinary = \"shell\"\n",
            "17 bytes long",
        );
        refused(
            "[process.\"a b\"]\nbinary = \"shell\"\n",
            "may not contain ' '",
        );
        refused(
            "[process.\"a=b\"]\nbinary = \"shell\"\n",
            "may not contain '='",
        );
        refused(
            "[process.\"a,b\"]\nbinary = \"shell\"\n",
            "may not contain ','",
        );
        refused("[process.\"\"]\nbinary = \"shell\"\n", "the name is empty");
        // Exactly 16 bytes is fine.
        ok("[process.\"a-sixteen-chars!\"]\nbinary = \"shell\"\n");
    }

    #[test]
    fn start_at_boot_or_on_demand() {
        let one = |start: &str| {
            ok(&format!(
                "[process.a]\nbinary = \"testproc\"\nstart = {start}\n"
            ))
            .processes[0]
                .start
        };
        assert!(one("\"boot\""));
        assert!(!one("\"on-demand\""));
        assert!(
            one("true") && !one("false"),
            "the booleans name the same two"
        );
        let m = ok("[process.a]\nbinary = \"shell\"\ngrants = [\"control\"]\n\
                    [process.b]\nbinary = \"testproc\"\nstart = \"on-demand\"\n\
                    restart = { max_failures = 2, window_ms = 100, backoff_ms = 1 }\n");
        assert!(m.table("x").contains(" start=0\n"));
        round_trips(&m);
        // An on-demand process is checked like any other.
        let p = problems(
            "[process.a]\nbinary = \"testproc\"\nstart = \"on-demand\"\ngrants = [\"gpu\"]\n",
        );
        assert!(
            p.len() == 1 && p[0].contains("unknown grant 'gpu'"),
            "{p:?}"
        );
        refused(
            "[process.a]\nbinary = \"testproc\"\nstart = \"later\"\n",
            "process 'a': start = \"later\" is neither \"boot\" nor \"on-demand\"",
        );
        let p = problems("[process.a]\nbinary = \"testproc\"\nstart = 1\n");
        assert!(
            p.len() == 1
                && p[0].starts_with("line 3: process 'a':")
                && p[0].contains("expected \"boot\" or \"on-demand\""),
            "{p:?}"
        );
        // The console's owner may be started on demand, but then `--exec` has no shell.
        let m =
            ok("[process.a]\nbinary = \"shell\"\ngrants = [\"console\"]\nstart = \"on-demand\"\n");
        assert!(!m.started_with_grant("console"));
    }

    #[test]
    fn console_is_exclusive_power_and_control_are_not() {
        refused(
            "[process.a]\nbinary = \"shell\"\ngrants = [\"console\"]\n\
             [process.b]\nbinary = \"testproc\"\ngrants = [\"console\", \"power\"]\n",
            "grant 'console' is exclusive among the processes started at boot, but processes \
             'a', 'b' all claim it",
        );
        // Programs started on demand may print on the console beside the shell.
        ok("[process.a]\nbinary = \"shell\"\ngrants = [\"console\"]\n\
            [process.b]\nbinary = \"testproc\"\ngrants = [\"console\"]\nstart = \"on-demand\"\n\
            [process.c]\nbinary = \"testproc\"\ngrants = [\"console\"]\nstart = \"on-demand\"\n");
        ok(
            "[process.a]\nbinary = \"shell\"\ngrants = [\"power\", \"control\"]\n\
            [process.b]\nbinary = \"testproc\"\ngrants = [\"power\", \"control\"]\n",
        );
        // Network cards are devices: one owner each.
        let m = ok("[process.a]\nbinary = \"shell\"\ngrants = [\"nic0\"]\n\
                    [process.b]\nbinary = \"testproc\"\ngrants = [\"nic1\"]\n");
        round_trips(&m);
        refused(
            "[process.a]\nbinary = \"shell\"\ngrants = [\"nic0\"]\n\
             [process.b]\nbinary = \"testproc\"\ngrants = [\"nic0\"]\nstart = \"on-demand\"\n",
            "grant 'nic0' is exclusive, but processes 'a', 'b' all claim it",
        );
        assert!(is_nic("nic0") && is_nic("nic12") && !is_nic("nic") && !is_nic("nic00"));
        assert!(!is_nic("nicx") && !is_nic("nic1234"));
    }

    #[test]
    fn regions_need_two_users_and_a_sane_size() {
        let two = |pages: &str| {
            format!(
                "[process.a]\nbinary = \"shell\"\nregions = [\"r\"]\n\
                 [process.b]\nbinary = \"testproc\"\nregions = [\"r\"]\nstart = false\n\
                 [region.r]\npages = {pages}\n"
            )
        };
        ok(&two("1"));
        ok(&two("65536"));
        refused(&two("0"), "pages = 0 is out of range 1..=65536");
        refused(&two("65537"), "out of range");
        refused(&two("-1"), "out of range");
        // A plain region may have one owner (a driver's DMA memory); a channel needs two ends.
        ok("[process.a]\nbinary = \"shell\"\nregions = [\"r\"]\n[region.r]\npages = 1\n");
        refused(
            "[process.a]\nbinary = \"shell\"\nregions = [\"r\"]\n[region.r]\npages = 2\nslots = 16\n",
            "region 'r': only process 'a' lists it; a channel has exactly two ends",
        );
        refused("[region.r]\npages = 1\n", "no process lists it");
    }

    #[test]
    fn layouts_are_checked_apart() {
        // Split: a and b are the channel's ends; single: n is both; s is in both layouts.
        let m = ok(
            "[process.a]\nbinary = \"shell\"\nregions = [\"c\"]\nlayout = \"split\"\n\
                    [process.b]\nbinary = \"testproc\"\nregions = [\"c\"]\nlayout = \"split\"\n\
                    [process.n]\nbinary = \"testproc\"\nregions = [\"c\"]\nlayout = \"single\"\n\
                    [process.s]\nbinary = \"testproc\"\n\
                    [region.c]\npages = 2\nslots = 16\n",
        );
        round_trips(&m);
        let t = m.table("x");
        assert!(t.contains(" start=1 layout=split\n") && t.contains(" start=1 layout=single\n"));
        assert!(m.processes[3].in_layout("split") && m.processes[3].in_layout("single"));
        assert!(!m.processes[2].in_layout("split"));
        // A split-layout process alone on a channel has no peer.
        refused(
            "[process.a]\nbinary = \"shell\"\nregions = [\"c\"]\nlayout = \"split\"\n\
             [process.n]\nbinary = \"testproc\"\nregions = [\"c\"]\nlayout = \"single\"\n\
             [region.c]\npages = 2\nslots = 16\n",
            "region 'c': only process 'a' lists it (layout split)",
        );
        // Three ends in the single layout.
        refused(
            "[process.a]\nbinary = \"shell\"\nregions = [\"c\"]\n\
             [process.b]\nbinary = \"testproc\"\nregions = [\"c\"]\n\
             [process.n]\nbinary = \"testproc\"\nregions = [\"c\"]\nlayout = \"single\"\n\
             [region.c]\npages = 2\nslots = 16\n",
            "processes 'a', 'b', 'n' list it (layout single)",
        );
        refused(
            "[process.a]\nbinary = \"shell\"\nlayout = \"both\"\n",
            "layout = \"both\" is neither",
        );
        // An exclusive grant is exclusive within each layout.
        ok(
            "[process.a]\nbinary = \"shell\"\ngrants = [\"nic0\"]\nlayout = \"split\"\n\
            [process.n]\nbinary = \"testproc\"\ngrants = [\"nic0\"]\nlayout = \"single\"\n",
        );
    }

    #[test]
    fn channel_regions() {
        let chan = |pages: u32, slots: &str| {
            format!(
                "[process.a]\nbinary = \"shell\"\nregions = [\"c\"]\n\
                 [process.b]\nbinary = \"testproc\"\nregions = [\"c\"]\n\
                 [region.c]\npages = {pages}\nslots = {slots}\n"
            )
        };
        let m = ok(&chan(17, "1024"));
        assert_eq!(m.regions[0].slots, Some(1024));
        assert!(m.table("x").ends_with("region c pages=17 slots=1024\n"));
        round_trips(&m);
        ok(&chan(2, "1"));
        refused(
            &chan(16, "1024"),
            "pages = 16 hold 65536 bytes, but a 1024-slot channel needs 69632 (17 pages)",
        );
        refused(
            &chan(17, "1000"),
            "slots = 1000 is not a power of two in 1..=1048576",
        );
        refused(&chan(17, "0"), "not a power of two");
        refused(&chan(17, "-4"), "slots = -4 is not a power of two");
        refused(&chan(65536, "2097152"), "not a power of two");
    }

    #[test]
    fn all_problems_are_reported_and_named() {
        let e = parse(
            "[process.a]\nbinary = \"nope\"\ngrants = [\"x\"]\n",
            "sys.toml",
            &PROGRAMS,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 2);
        assert_eq!(
            e.to_string(),
            "sys.toml: process 'a': unknown binary 'nope' (user programs: shell, testproc, \
             ipcbench)\nerror: sys.toml: process 'a': unknown grant 'x' (grants: console, power, \
             control, and network cards nic0, nic1, ...)"
        );
    }

    #[test]
    fn too_many_processes() {
        let mut text = String::new();
        for i in 0..=klib::manifest::MAX_PROCESSES {
            text.push_str(&format!("[process.p{i}]\nbinary = \"testproc\"\n"));
        }
        refused(&text, "33 processes declared, the kernel takes at most 32");
    }
}

//! The kernel command line: `key=value` words separated by spaces, packed by xtask into the
//! ramdisk module `cmdline`. Unknown keys are reported, not ignored silently.

/// Verbosity of the kernel log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// The normal boot log.
    Info,
    /// Detail for debugging the kernel.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Parses `error`, `warn`, `info`, `debug` or `trace`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "error" => Self::Error,
            "warn" => Self::Warn,
            "info" => Self::Info,
            "debug" => Self::Debug,
            "trace" => Self::Trace,
            _ => return None,
        })
    }

    /// The level's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// What the kernel does after boot, chosen by `test=` (used by the QEMU scenario tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// Normal operation.
    Normal,
    /// Run the in-kernel test suite and exit QEMU with its verdict.
    KernelTests,
    /// Panic on purpose after boot (tests the panic path and exit code).
    Panic,
    /// Cause a triple fault after boot (tests that the runner notices the reset).
    TripleFault,
    /// Spin forever with interrupts off after boot (tests the runner's timeout).
    Hang,
    /// Report success right after the boot line (fast boot tests).
    ExitAfterBoot,
}

/// Transport between servers (`ipc=`), DESIGN.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Shared-memory channels (the default).
    Chan,
    /// Kernel IPC, one trap per message (the baseline).
    Kernel,
}

/// Layout of the network stack (`layout=`), DESIGN.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every server on its own CPU (the default).
    Split,
    /// pf, ip, udp and tcp in one process.
    Single,
}

impl Layout {
    /// The layout's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Split => "split",
            Self::Single => "single",
        }
    }
}

/// What idle servers do (`idle=`), DESIGN.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Poll a few hundred empty rounds, then sleep (the default: cheap for a host whose cores
    /// the emulated CPUs share).
    Sleep,
    /// On a CPU of its own, poll for up to 20 ms of idleness before sleeping: no system call
    /// at load, at the price of a busy CPU.
    Poll,
}

/// The reference the TSC and the local APIC timer are calibrated against at boot (`clock=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// The first that works of the ACPI PM timer, the HPET and the PIT (the default).
    Auto,
    /// The ACPI PM timer (`clock=pmtimer`).
    PmTimer,
    /// The HPET (`clock=hpet`).
    Hpet,
    /// The PIT, channel 2 (`clock=pit`).
    Pit,
}

impl ClockSource {
    /// Parses `auto`, `pmtimer`, `hpet` or `pit`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "pmtimer" => Self::PmTimer,
            "hpet" => Self::Hpet,
            "pit" => Self::Pit,
            _ => return None,
        })
    }

    /// The source's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::PmTimer => "pmtimer",
            Self::Hpet => "hpet",
            Self::Pit => "pit",
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmdline {
    /// Kernel log verbosity (`log=`).
    pub log_level: LogLevel,
    /// What to do after boot (`test=`).
    pub mode: BootMode,
    /// Server transport (`ipc=chan|kernel`).
    pub transport: Transport,
    /// Stack layout (`layout=split|single`).
    pub layout: Layout,
    /// Idle servers (`idle=sleep|poll`).
    pub idle: Idle,
    /// Calibration reference (`clock=auto|pmtimer|hpet|pit`); a bad value is reported and
    /// leaves `auto`.
    pub clock: ClockSource,
}

impl Default for Cmdline {
    fn default() -> Self {
        Self {
            log_level: LogLevel::Info,
            mode: BootMode::Normal,
            transport: Transport::Chan,
            layout: Layout::Split,
            idle: Idle::Sleep,
            clock: ClockSource::Auto,
        }
    }
}

/// A word of the command line that could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// `key=value` with a key the kernel does not know.
    UnknownKey(&'a str),
    /// A known key with a value it cannot take.
    BadValue(&'a str, &'a str),
    /// A word without `=`.
    NotKeyValue(&'a str),
}

impl core::fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownKey(k) => write!(f, "unknown command-line key '{k}'"),
            Self::BadValue(k, v) => write!(f, "bad value '{v}' for command-line key '{k}'"),
            Self::NotKeyValue(w) => write!(f, "command-line word '{w}' is not key=value"),
        }
    }
}

impl Cmdline {
    /// Parses `text`; every word that cannot be used is passed to `report` and skipped.
    pub fn parse<'a>(text: &'a str, report: &mut dyn FnMut(CmdlineError<'a>)) -> Self {
        let mut line = Self::default();
        for word in text.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                report(CmdlineError::NotKeyValue(word));
                continue;
            };
            match key {
                "log" => match LogLevel::parse(value) {
                    Some(l) => line.log_level = l,
                    None => report(CmdlineError::BadValue(key, value)),
                },
                "test" => {
                    line.mode = match value {
                        "kernel" => BootMode::KernelTests,
                        "panic" => BootMode::Panic,
                        "triple-fault" => BootMode::TripleFault,
                        "hang" => BootMode::Hang,
                        "exit-after-boot" => BootMode::ExitAfterBoot,
                        _ => {
                            report(CmdlineError::BadValue(key, value));
                            continue;
                        }
                    }
                }
                "ipc" => match value {
                    "chan" => line.transport = Transport::Chan,
                    "kernel" => line.transport = Transport::Kernel,
                    _ => report(CmdlineError::BadValue(key, value)),
                },
                "layout" => match value {
                    "split" => line.layout = Layout::Split,
                    "single" => line.layout = Layout::Single,
                    _ => report(CmdlineError::BadValue(key, value)),
                },
                "idle" => match value {
                    "sleep" => line.idle = Idle::Sleep,
                    "poll" => line.idle = Idle::Poll,
                    _ => report(CmdlineError::BadValue(key, value)),
                },
                "clock" => match ClockSource::parse(value) {
                    Some(c) => line.clock = c,
                    None => {
                        // A source that cannot be named cannot be forced: back to the default.
                        line.clock = ClockSource::Auto;
                        report(CmdlineError::BadValue(key, value));
                    }
                },
                _ => report(CmdlineError::UnknownKey(key)),
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn defaults_and_values() {
        let mut errs = Vec::new();
        assert_eq!(
            Cmdline::parse("", &mut |e| errs.push(e)),
            Cmdline::default()
        );
        let c = Cmdline::parse(
            "  log=debug   test=kernel ipc=kernel layout=single idle=poll\n",
            &mut |e| errs.push(e),
        );
        assert_eq!(c.idle, Idle::Poll);
        assert_eq!(c.transport, Transport::Kernel);
        assert_eq!(c.layout, Layout::Single);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.mode, BootMode::KernelTests);
        assert!(errs.is_empty());
        assert_eq!(LogLevel::parse(LogLevel::Warn.name()), Some(LogLevel::Warn));
        assert_eq!(c.clock, ClockSource::Auto);
    }

    #[test]
    fn clock_sources() {
        for (word, clock) in [
            ("clock=auto", ClockSource::Auto),
            ("clock=pmtimer", ClockSource::PmTimer),
            ("clock=hpet", ClockSource::Hpet),
            ("clock=pit", ClockSource::Pit),
        ] {
            let mut errs = Vec::new();
            let c = Cmdline::parse(word, &mut |e| errs.push(e));
            assert_eq!(c.clock, clock, "{word}");
            assert!(errs.is_empty(), "{word}: {errs:?}");
            assert_eq!(ClockSource::parse(clock.name()), Some(clock));
        }
        // The last good word wins.
        let c = Cmdline::parse("clock=pit clock=hpet", &mut |_| {});
        assert_eq!(c.clock, ClockSource::Hpet);
    }

    #[test]
    fn bad_clock_is_reported_and_falls_back_to_auto() {
        for line in [
            "clock=tsc",
            "clock=hpet clock=HPET",
            "clock=pit clock=",
            "clock=",
        ] {
            let mut errs = Vec::new();
            let c = Cmdline::parse(line, &mut |e| errs.push(e));
            assert_eq!(c.clock, ClockSource::Auto, "{line}");
            assert_eq!(errs.len(), 1, "{line}");
            assert!(
                matches!(errs[0], CmdlineError::BadValue("clock", _)),
                "{line}"
            );
        }
        let mut errs = Vec::new();
        Cmdline::parse("clock=rtc", &mut |e| errs.push(e));
        assert_eq!(
            std::format!("{}", errs[0]),
            "bad value 'rtc' for command-line key 'clock'"
        );
        // Other words are not disturbed.
        let c = Cmdline::parse("log=debug clock=bogus ipc=kernel", &mut |_| {});
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.transport, Transport::Kernel);
    }

    #[test]
    fn reports_every_bad_word() {
        let mut errs = Vec::new();
        let c = Cmdline::parse(
            "log=loud colour=red test=explode quiet log=warn",
            &mut |e| errs.push(e),
        );
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(c.mode, BootMode::Normal);
        assert_eq!(
            errs,
            [
                CmdlineError::BadValue("log", "loud"),
                CmdlineError::UnknownKey("colour"),
                CmdlineError::BadValue("test", "explode"),
                CmdlineError::NotKeyValue("quiet"),
            ]
        );
    }
}

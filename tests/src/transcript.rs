//! Reading the guest's serial transcript: cleaning raw serial bytes into text and finding the
//! machine-readable summary lines the kernel prints (DESIGN.md §9).

/// The kernel's boot summary: `boot: N cpus online boot_ms=T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLine {
    /// CPUs online when boot finished.
    pub cpus: u32,
    /// The kernel's own measure of its boot time, in guest milliseconds.
    pub boot_ms: u64,
}

/// The last boot summary line of `transcript`, if any. The line may carry a log prefix
/// (`[INFO] boot: ...`); words after `online` are `key=value` pairs of which `boot_ms` is needed.
pub fn boot_line(transcript: &str) -> Option<BootLine> {
    transcript.lines().rev().find_map(parse_boot_line)
}

fn parse_boot_line(line: &str) -> Option<BootLine> {
    let at = line.find("boot: ")?;
    let mut words = line[at + "boot: ".len()..].split_ascii_whitespace();
    let cpus = words.next()?.parse().ok()?;
    if !matches!(words.next()?, "cpus" | "cpu") || words.next()? != "online" {
        return None;
    }
    let boot_ms = words
        .find_map(|w| w.strip_prefix("boot_ms="))?
        .parse()
        .ok()?;
    Some(BootLine { cpus, boot_ms })
}

/// The value of `key` in the last line of `transcript` that starts (after any log prefix) with
/// `prefix` and holds `key=value` pairs, e.g. `summary_value(t, "recovery:", "p50_ms")`.
pub fn summary_value<'t>(transcript: &'t str, prefix: &str, key: &str) -> Option<&'t str> {
    transcript
        .lines()
        .rev()
        .filter(|l| l.contains(prefix))
        .find_map(|l| {
            l.split_ascii_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        })
}

/// The last `n` lines of `transcript`, each indented by four spaces, for failure reports.
pub fn tail(transcript: &str, n: usize) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    let from = lines.len().saturating_sub(n);
    let mut out = String::new();
    if from > 0 {
        out.push_str(&format!("    [... {from} earlier lines]\n"));
    }
    for l in &lines[from..] {
        out.push_str("    ");
        out.push_str(l);
        out.push('\n');
    }
    if lines.is_empty() {
        out.push_str("    (the guest printed nothing)\n");
    }
    out
}

/// Turns raw serial output into transcript text: drops `\r`, terminal escape sequences
/// (`ESC [ ... final`, and two-byte `ESC x`) and other control bytes except `\n` and `\t`, and
/// replaces invalid UTF-8. Feed it the whole output at once (an escape split across calls is not
/// recognised).
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            // CSI: parameters and intermediates up to a final byte in '@'..='~'; any other
            // escape is two characters long.
            '\u{1b}' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_boot_line() {
        let t = "boot: starting\n[INFO] boot: 2 cpus online boot_ms=17\nmore\n\
                 boot: 4 cpus online boot_ms=250 extra=1\n";
        assert_eq!(
            boot_line(t),
            Some(BootLine {
                cpus: 4,
                boot_ms: 250
            })
        );
        assert_eq!(
            boot_line("boot: 1 cpu online boot_ms=9"),
            Some(BootLine {
                cpus: 1,
                boot_ms: 9
            })
        );
        assert_eq!(
            boot_line(" 0.012 INFO kernel: boot: 8 cpus online boot_ms=2999"),
            Some(BootLine {
                cpus: 8,
                boot_ms: 2999
            })
        );
    }

    #[test]
    fn rejects_malformed_boot_lines() {
        for bad in [
            "",
            "boot: x cpus online boot_ms=1",
            "boot: 2 cpus offline boot_ms=1",
            "boot: 2 cpus online",
            "boot: 2 cpus online boot_ms=",
            "boot: 2 cpus online boot_ms=-3",
            "reboot:2 cpus online boot_ms=1",
        ] {
            assert_eq!(boot_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn summary_values() {
        let t = "recovery: server=ip faults=1 p50_ms=3\nrecovery: server=tcp faults=2 p50_ms=12\n";
        assert_eq!(summary_value(t, "recovery:", "p50_ms"), Some("12"));
        assert_eq!(summary_value(t, "recovery:", "p50"), None);
        assert_eq!(summary_value(t, "iperf3:", "gbps"), None);
    }

    #[test]
    fn tails() {
        assert_eq!(
            tail("a\nb\nc\n", 2),
            "    [... 1 earlier lines]\n    b\n    c\n"
        );
        assert_eq!(tail("a", 5), "    a\n");
        assert_eq!(tail("", 5), "    (the guest printed nothing)\n");
    }

    #[test]
    fn cleans_serial_noise() {
        let raw = b"\x1b[0;32mINFO\x1b[0m boot\r\n\x1bcx\ttab\x07\xff\n";
        assert_eq!(clean(raw), "INFO boot\nx\ttab\u{fffd}\n");
        assert_eq!(clean(b"cut \x1b[1"), "cut ");
    }
}

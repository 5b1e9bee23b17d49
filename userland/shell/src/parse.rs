//! Splitting a command line and parsing the numbers commands take.

/// One command of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// Its text, trimmed. Empty only for a `&` with no command before it (`&&`, a line starting
    /// with `&`), which the shell refuses.
    pub text: &'a str,
    /// It ended with `&`: run it in the background.
    pub background: bool,
}

/// The commands of a line, in order: each ends at a `;` or a `&` (or the end of the line), and
/// one that ends at `&` runs in the background — so `prog a &; sleep 5` and `prog a & sleep 5`
/// are the same two commands. Texts are trimmed and empty commands dropped, except an empty one
/// before a `&`, which is kept (empty) so that it can be refused.
pub fn commands(line: &str) -> impl Iterator<Item = Command<'_>> {
    let mut rest = Some(line);
    core::iter::from_fn(move || {
        loop {
            let text = rest?;
            let (command, background) = match text.find([';', '&']) {
                Some(at) => {
                    rest = Some(&text[at + 1..]);
                    (&text[..at], text.as_bytes()[at] == b'&')
                }
                None => {
                    rest = None;
                    (text, false)
                }
            };
            let text = command.trim();
            if !text.is_empty() || background {
                return Some(Command { text, background });
            }
        }
    })
}

/// The words of a command, separated by spaces or tabs.
pub fn words(command: &str) -> impl Iterator<Item = &str> {
    command.split_ascii_whitespace()
}

/// A count: decimal digits only (no sign, no separators), fitting a `u64`.
pub fn parse_count(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds as nanoseconds: `2`, `0.5`, `.25`, `1.` — decimal digits with at most one point, at
/// least one digit; digits past the ninth decimal are ignored. `None` for anything else or more
/// than `u64::MAX` nanoseconds (about 584 years).
pub fn parse_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let whole: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_ns = 0u64;
    for i in 0..9 {
        let d = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        frac_ns = frac_ns * 10 + d;
    }
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands of `line` as (text, background).
    fn split(line: &str) -> Vec<(&str, bool)> {
        commands(line).map(|c| (c.text, c.background)).collect()
    }

    #[test]
    fn splits_commands_on_semicolons() {
        let v: Vec<_> = commands(" ps ;stat;; ; echo a  b ;")
            .map(|c| c.text)
            .collect();
        assert_eq!(v, ["ps", "stat", "echo a  b"]);
        assert!(commands("ps;stat").all(|c| !c.background));
        assert_eq!(commands("   ").count(), 0);
        let w: Vec<_> = words("echo \ta  b").collect();
        assert_eq!(w, ["echo", "a", "b"]);
    }

    #[test]
    fn ampersands_end_background_commands() {
        assert_eq!(split("prog a &"), [("prog a", true)]);
        assert_eq!(
            split("prog a &; sleep 5; ps"),
            [("prog a", true), ("sleep 5", false), ("ps", false)]
        );
        assert_eq!(
            split("prog a & sleep 5 ;prog b&"),
            [("prog a", true), ("sleep 5", false), ("prog b", true)]
        );
        assert_eq!(split("a&b"), [("a", true), ("b", false)]);
        // A `&` with nothing before it is kept, empty, to be refused.
        assert_eq!(split("&"), [("", true)]);
        assert_eq!(split("a && b"), [("a", true), ("", true), ("b", false)]);
        assert_eq!(split(" ; & ;"), [("", true)]);
        assert_eq!(split("a ;& b"), [("a", false), ("", true), ("b", false)]);
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("100000"), Some(100_000));
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "1_000",
            "1e3",
            "0x10",
            "18446744073709551616",
            " 1",
        ] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2"), Some(2_000_000_000));
        assert_eq!(parse_seconds("0.5"), Some(500_000_000));
        assert_eq!(parse_seconds(".25"), Some(250_000_000));
        assert_eq!(parse_seconds("1."), Some(1_000_000_000));
        assert_eq!(parse_seconds("0"), Some(0));
        assert_eq!(parse_seconds("1.000000001"), Some(1_000_000_001));
        assert_eq!(
            parse_seconds("0.0000000019"),
            Some(1),
            "past nine decimals is ignored"
        );
        assert_eq!(
            parse_seconds("18446744073"),
            Some(18_446_744_073_000_000_000)
        );
        for bad in [
            "",
            ".",
            "-1",
            "+1",
            "1.2.3",
            "1e3",
            "inf",
            "nan",
            "1,5",
            "18446744074",
            " 1",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }
}

//! The text syntax of rules and of the shell's `pf` commands: [`parse_rule`], [`parse_command`],
//! and [`ParseError`], which names the word that is wrong. The grammar is in the crate
//! documentation; printing is the `Display` of [`Rule`] and [`Command`].

use core::fmt;
use core::net::Ipv4Addr;
use core::str::SplitAsciiWhitespace;

use crate::rule::{Direction, Ipv4Prefix, PortRange, Proto, Rule, RuleError, Verdict};

/// A `pf` command of the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `pf list`: print the numbered rules with their hit counts, and the counters.
    List,
    /// `pf add [NUMBER] RULE`: put `rule` at rule number `at` (the rule there and those after
    /// it move down one), or after the last rule when `at` is `None`.
    Add {
        /// The rule number the new rule takes, `1..=len + 1`; `None` appends.
        at: Option<u32>,
        /// The rule.
        rule: Rule,
    },
    /// `pf del NUMBER`: remove the rule with this number (as `pf list` shows it).
    Del {
        /// The rule number, from 1.
        number: u32,
    },
}

/// Prints the canonical command line, with the leading `pf`: `pf list`, `pf add 2 deny from
/// any to any`, `pf del 3`.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::List => f.write_str("pf list"),
            Command::Add { at: None, rule } => write!(f, "pf add {rule}"),
            Command::Add { at: Some(at), rule } => write!(f, "pf add {at} {rule}"),
            Command::Del { number } => write!(f, "pf del {number}"),
        }
    }
}

/// What the grammar allows at the place of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `list`, `add` or `del` (after an optional `pf`).
    Command,
    /// After `add`: a rule number, `allow` or `deny`.
    RuleNumberOrVerdict,
    /// `allow` or `deny`.
    Verdict,
    /// After the verdict: a direction, a protocol or `from`.
    DirectionProtoOrFrom,
    /// After the direction: a protocol or `from`.
    ProtoOrFrom,
    /// After the protocol: `from`.
    From,
    /// `any` or an IPv4 address, with or without `/length`.
    Address,
    /// After the source address: `port` or `to`.
    PortOrTo,
    /// After the source ports: `to`.
    To,
    /// A port or port range.
    Port,
    /// After the destination address: `port` or the end of the line.
    PortOrEnd,
    /// The end of the line.
    End,
    /// A rule number.
    RuleNumber,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Command => "`list`, `add` or `del`",
            Expected::RuleNumberOrVerdict => "a rule number, `allow` or `deny`",
            Expected::Verdict => "`allow` or `deny`",
            Expected::DirectionProtoOrFrom => "`in`, `out`, `any`, `tcp`, `udp`, `icmp` or `from`",
            Expected::ProtoOrFrom => "`tcp`, `udp`, `icmp`, `any` or `from`",
            Expected::From => "`from`",
            Expected::Address => "`any` or an IPv4 address (a.b.c.d or a.b.c.d/len)",
            Expected::PortOrTo => "`port` or `to`",
            Expected::To => "`to`",
            Expected::Port => "a port (0-65535) or port range (low-high)",
            Expected::PortOrEnd => "`port` or the end of the line",
            Expected::End => "the end of the line",
            Expected::RuleNumber => "a rule number (1, 2, ...)",
        })
    }
}

/// What is wrong with the word a [`ParseError`] points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The line ended where a word was needed (the error's `word` is empty).
    Missing(Expected),
    /// The word is not one the grammar allows here.
    Unexpected(Expected),
    /// Where an address stands: neither `any` nor four decimal octets `0..=255` separated by
    /// dots (no leading zeros).
    BadAddress,
    /// The part after `/` is not a decimal `0..=32`.
    BadPrefixLength,
    /// The address has bits set past its prefix length (`10.0.2.15/24`).
    HostBitsSet,
    /// Where ports stand: not a decimal `0..=65535` nor two of them joined by `-`.
    BadPort,
    /// A port range whose first port is above its last (`2000-1000`).
    ReversedPortRange,
    /// `port` in a rule whose protocol is not `tcp` or `udp` (the error points at `port`).
    PortWithoutTcpUdp,
    /// Where a rule number stands: not a decimal from 1 to 4294967295.
    BadRuleNumber,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::Missing(e) | ParseErrorKind::Unexpected(e) => write!(f, "expected {e}"),
            ParseErrorKind::BadAddress => f.write_str(
                "not an IPv4 address (four decimal numbers 0-255 joined by dots, no leading zeros)",
            ),
            ParseErrorKind::BadPrefixLength => f.write_str("prefix length is not 0-32"),
            ParseErrorKind::HostBitsSet => {
                f.write_str("address has bits set past the prefix length (write the network)")
            }
            ParseErrorKind::BadPort => {
                f.write_str("not a port (0-65535) or port range (low-high, no spaces)")
            }
            ParseErrorKind::ReversedPortRange => f.write_str("port range runs backwards"),
            ParseErrorKind::PortWithoutTcpUdp => f.write_str("ports need protocol tcp or udp"),
            ParseErrorKind::BadRuleNumber => f.write_str("not a rule number (1, 2, ...)"),
        }
    }
}

/// A syntax error: which word is wrong and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError<'a> {
    /// The word's position in the line, from 1 (a leading `pf` counts). For
    /// [`ParseErrorKind::Missing`] it is one past the last word.
    pub position: usize,
    /// The offending word as written; empty for [`ParseErrorKind::Missing`].
    pub word: &'a str,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// One line, e.g. `word 7 "10.0.2.15/24": address has bits set past the prefix length ...` or
/// `missing word 5: expected \`from\``.
impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::Missing(_) => {
                write!(f, "missing word {}: {}", self.position, self.kind)
            }
            _ => write!(f, "word {} \"{}\": {}", self.position, self.word, self.kind),
        }
    }
}

/// A word of the line and its position (from 1).
#[derive(Clone, Copy)]
struct Word<'a> {
    position: usize,
    text: &'a str,
}

impl<'a> Word<'a> {
    fn error(self, kind: ParseErrorKind) -> ParseError<'a> {
        ParseError {
            position: self.position,
            word: self.text,
            kind,
        }
    }
}

/// The words of a line, numbered.
struct Words<'a> {
    words: core::iter::Peekable<SplitAsciiWhitespace<'a>>,
    taken: usize,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Words<'a> {
        Words {
            words: line.split_ascii_whitespace().peekable(),
            taken: 0,
        }
    }

    /// The next word, if any.
    fn next(&mut self) -> Option<Word<'a>> {
        let text = self.words.next()?;
        self.taken += 1;
        Some(Word {
            position: self.taken,
            text,
        })
    }

    fn peek(&mut self) -> Option<&'a str> {
        self.words.peek().copied()
    }

    /// The error of a line that ends where `expected` should come.
    fn missing(&self, expected: Expected) -> ParseError<'a> {
        ParseError {
            position: self.taken + 1,
            word: "",
            kind: ParseErrorKind::Missing(expected),
        }
    }

    /// The next word, or a [`ParseErrorKind::Missing`] error saying what should have come.
    fn require(&mut self, expected: Expected) -> Result<Word<'a>, ParseError<'a>> {
        match self.next() {
            Some(word) => Ok(word),
            None => Err(self.missing(expected)),
        }
    }

    /// The end of the line, or an error at the word found there.
    fn end(&mut self, expected: Expected) -> Result<(), ParseError<'a>> {
        match self.next() {
            None => Ok(()),
            Some(word) => Err(word.error(ParseErrorKind::Unexpected(expected))),
        }
    }
}

/// Parses a rule (`deny in tcp from any to 10.0.2.15/32 port 7`), the whole of `text`.
/// Error positions count the words of `text`.
pub fn parse_rule(text: &str) -> Result<Rule, ParseError<'_>> {
    rule(&mut Words::new(text))
}

/// Parses a shell command line: `[pf] list`, `[pf] add [NUMBER] RULE`, `[pf] del NUMBER`.
pub fn parse_command(line: &str) -> Result<Command, ParseError<'_>> {
    let mut words = Words::new(line);
    let mut word = words.require(Expected::Command)?;
    if word.text == "pf" {
        word = words.require(Expected::Command)?;
    }
    match word.text {
        "list" => {
            words.end(Expected::End)?;
            Ok(Command::List)
        }
        "add" => {
            let at = match words.peek() {
                None => return Err(words.missing(Expected::RuleNumberOrVerdict)),
                Some(next) if next.starts_with(|c: char| c.is_ascii_digit()) => {
                    Some(rule_number(words.require(Expected::RuleNumber)?)?)
                }
                Some(_) => None,
            };
            Ok(Command::Add {
                at,
                rule: rule(&mut words)?,
            })
        }
        "del" => {
            let number = rule_number(words.require(Expected::RuleNumber)?)?;
            words.end(Expected::End)?;
            Ok(Command::Del { number })
        }
        _ => Err(word.error(ParseErrorKind::Unexpected(Expected::Command))),
    }
}

/// `rule = verdict [direction] [proto] "from" endpoint "to" endpoint`, up to the end of the line.
fn rule<'a>(words: &mut Words<'a>) -> Result<Rule, ParseError<'a>> {
    let word = words.require(Expected::Verdict)?;
    let verdict = match word.text {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        _ => return Err(word.error(ParseErrorKind::Unexpected(Expected::Verdict))),
    };

    let mut expected = Expected::DirectionProtoOrFrom;
    let mut word = words.require(expected)?;
    let mut dir = Direction::Any;
    if let Some(d) = direction(word.text) {
        dir = d;
        expected = Expected::ProtoOrFrom;
        word = words.require(expected)?;
    }
    let mut proto = Proto::Any;
    if let Some(p) = protocol(word.text) {
        proto = p;
        expected = Expected::From;
        word = words.require(expected)?;
    }
    if word.text != "from" {
        return Err(word.error(ParseErrorKind::Unexpected(expected)));
    }

    let src = address(words.require(Expected::Address)?)?;
    let mut word = words.require(Expected::PortOrTo)?;
    let mut src_ports = None;
    if word.text == "port" {
        src_ports = Some(ports(word, proto, words)?);
        word = words.require(Expected::To)?;
        if word.text != "to" {
            return Err(word.error(ParseErrorKind::Unexpected(Expected::To)));
        }
    } else if word.text != "to" {
        return Err(word.error(ParseErrorKind::Unexpected(Expected::PortOrTo)));
    }

    let dst = address(words.require(Expected::Address)?)?;
    let mut dst_ports = None;
    match words.next() {
        None => {}
        Some(word) if word.text == "port" => {
            dst_ports = Some(ports(word, proto, words)?);
            words.end(Expected::End)?;
        }
        Some(word) => return Err(word.error(ParseErrorKind::Unexpected(Expected::PortOrEnd))),
    }
    Ok(Rule {
        verdict,
        dir,
        proto,
        src,
        src_ports,
        dst,
        dst_ports,
    })
}

fn direction(word: &str) -> Option<Direction> {
    match word {
        "in" => Some(Direction::In),
        "out" => Some(Direction::Out),
        "any" => Some(Direction::Any),
        _ => None,
    }
}

fn protocol(word: &str) -> Option<Proto> {
    match word {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        "icmp" => Some(Proto::Icmp),
        "any" => Some(Proto::Any),
        _ => None,
    }
}

/// `address = "any" / ipv4 ["/" length]`.
fn address(word: Word<'_>) -> Result<Ipv4Prefix, ParseError<'_>> {
    if word.text == "any" {
        return Ok(Ipv4Prefix::ANY);
    }
    let (addr, len) = match word.text.split_once('/') {
        None => (word.text, None),
        Some((addr, len)) => (addr, Some(len)),
    };
    let addr = ipv4(addr).ok_or(word.error(ParseErrorKind::BadAddress))?;
    let len = match len {
        None => 32,
        Some(len) => match decimal(len) {
            Some(len @ 0..=32) => len as u8,
            _ => return Err(word.error(ParseErrorKind::BadPrefixLength)),
        },
    };
    Ipv4Prefix::new(addr, len).map_err(|e| {
        word.error(match e {
            RuleError::PrefixTooLong => ParseErrorKind::BadPrefixLength,
            _ => ParseErrorKind::HostBitsSet,
        })
    })
}

/// Four decimal octets joined by dots.
fn ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        *octet = u8::try_from(decimal(parts.next()?)?).ok()?;
    }
    match parts.next() {
        None => Some(Ipv4Addr::from(octets)),
        Some(_) => None,
    }
}

/// The ports after the word `port` (given, for the protocol check): `port ["-" port]`.
fn ports<'a>(
    port_word: Word<'a>,
    proto: Proto,
    words: &mut Words<'a>,
) -> Result<PortRange, ParseError<'a>> {
    if !proto.has_ports() {
        return Err(port_word.error(ParseErrorKind::PortWithoutTcpUdp));
    }
    let word = words.require(Expected::Port)?;
    let port = |text: &str| decimal(text).and_then(|p| u16::try_from(p).ok());
    let (first, last) = match word.text.split_once('-') {
        None => {
            let p = port(word.text).ok_or(word.error(ParseErrorKind::BadPort))?;
            (p, p)
        }
        Some((first, last)) => match (port(first), port(last)) {
            (Some(first), Some(last)) => (first, last),
            _ => return Err(word.error(ParseErrorKind::BadPort)),
        },
    };
    PortRange::new(first, last).map_err(|_| word.error(ParseErrorKind::ReversedPortRange))
}

/// A rule number: a decimal `1..=u32::MAX`.
fn rule_number(word: Word<'_>) -> Result<u32, ParseError<'_>> {
    match decimal(word.text) {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(word.error(ParseErrorKind::BadRuleNumber)),
    }
}

/// `decimal = "0" / nonzero-digit *digit`, at most `u32::MAX`: no sign, no leading zero, no
/// empty string.
fn decimal(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || (bytes[0] == b'0' && bytes.len() > 1) {
        return None;
    }
    let mut value: u32 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(a: [u8; 4], len: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(Ipv4Addr::from(a), len).unwrap()
    }

    /// `text` parses, prints as `canonical`, and `canonical` parses to the same rule.
    fn round_trip(text: &str, canonical: &str) -> Rule {
        let rule = parse_rule(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let printed = rule.to_string();
        assert_eq!(printed, canonical, "printing {text:?}");
        assert_eq!(parse_rule(&printed), Ok(rule), "re-parsing {printed:?}");
        rule
    }

    #[test]
    fn issue_examples() {
        let rule = round_trip(
            "deny in tcp from any to 10.0.2.15/32 port 7",
            "deny in tcp from any to 10.0.2.15/32 port 7",
        );
        assert_eq!(
            rule,
            Rule {
                verdict: Verdict::Deny,
                dir: Direction::In,
                proto: Proto::Tcp,
                src: Ipv4Prefix::ANY,
                src_ports: None,
                dst: prefix([10, 0, 2, 15], 32),
                dst_ports: Some(PortRange::single(7)),
            }
        );
        let rule = round_trip(
            "allow out udp from 10.0.2.0/24 port 1000-2000 to any",
            "allow out udp from 10.0.2.0/24 port 1000-2000 to any",
        );
        assert_eq!(rule.src, prefix([10, 0, 2, 0], 24));
        assert_eq!(rule.src_ports, Some(PortRange::new(1000, 2000).unwrap()));
        assert_eq!((rule.dst, rule.dst_ports), (Ipv4Prefix::ANY, None));
    }

    #[test]
    fn canonical_forms() {
        round_trip("deny from any to any", "deny from any to any");
        round_trip("deny any any from any to any", "deny from any to any");
        round_trip("deny any from any to any", "deny from any to any");
        round_trip("allow in any from any to any", "allow in from any to any");
        round_trip("allow any tcp from any to any", "allow tcp from any to any");
        round_trip(
            "allow icmp from 0.0.0.0/0 to 0.0.0.0/0",
            "allow icmp from any to any",
        );
        round_trip(
            "allow from 10.0.2.2 to 10.0.2.15",
            "allow from 10.0.2.2/32 to 10.0.2.15/32",
        );
        round_trip(
            "deny tcp from any port 80-80 to any",
            "deny tcp from any port 80 to any",
        );
        round_trip(
            "  deny\tout   udp from 192.168.0.0/16 port 0-65535 to 0.0.0.0/32 port 0\n",
            "deny out udp from 192.168.0.0/16 port 0-65535 to 0.0.0.0/32 port 0",
        );
        round_trip(
            "allow tcp from 255.255.255.255/32 port 65535 to 128.0.0.0/1 port 0-1",
            "allow tcp from 255.255.255.255/32 port 65535 to 128.0.0.0/1 port 0-1",
        );
    }

    #[test]
    fn every_rule_shape_round_trips() {
        let verdicts = [Verdict::Allow, Verdict::Deny];
        let dirs = [Direction::In, Direction::Out, Direction::Any];
        let protos = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Any];
        let prefixes = [
            Ipv4Prefix::ANY,
            prefix([10, 0, 0, 0], 8),
            prefix([10, 0, 2, 15], 32),
        ];
        let ports = [
            None,
            Some(PortRange::single(0)),
            Some(PortRange::new(1, 65535).unwrap()),
        ];
        for verdict in verdicts {
            for dir in dirs {
                for proto in protos {
                    for src in prefixes {
                        for dst in prefixes {
                            for src_ports in ports {
                                for dst_ports in ports {
                                    let rule = Rule {
                                        verdict,
                                        dir,
                                        proto,
                                        src,
                                        src_ports,
                                        dst,
                                        dst_ports,
                                    };
                                    if rule.check().is_err() {
                                        continue;
                                    }
                                    let text = rule.to_string();
                                    assert_eq!(parse_rule(&text), Ok(rule), "{text}");
                                    let line = Command::Add { at: None, rule }.to_string();
                                    assert_eq!(
                                        parse_command(&line),
                                        Ok(Command::Add { at: None, rule })
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn commands() {
        let deny = Rule::everything(Verdict::Deny);
        let cases = [
            ("pf list", Command::List),
            ("list", Command::List),
            ("pf del 3", Command::Del { number: 3 }),
            ("del 4294967295", Command::Del { number: u32::MAX }),
            (
                "pf add deny from any to any",
                Command::Add {
                    at: None,
                    rule: deny,
                },
            ),
            (
                "pf add 1 deny from any to any",
                Command::Add {
                    at: Some(1),
                    rule: deny,
                },
            ),
            (
                "add 65 deny any any from any to any",
                Command::Add {
                    at: Some(65),
                    rule: deny,
                },
            ),
        ];
        for (text, command) in cases {
            assert_eq!(parse_command(text), Ok(command), "{text}");
            assert_eq!(parse_command(&command.to_string()), Ok(command));
        }
        assert_eq!(Command::List.to_string(), "pf list");
        assert_eq!(Command::Del { number: 3 }.to_string(), "pf del 3");
        assert_eq!(
            Command::Add {
                at: Some(2),
                rule: deny
            }
            .to_string(),
            "pf add 2 deny from any to any"
        );
    }

    /// `text` fails at word `position` (`word` is its text) with `kind`.
    #[track_caller]
    fn fails(
        parse: fn(&str) -> Result<(), ParseError<'_>>,
        text: &str,
        position: usize,
        word: &str,
        kind: ParseErrorKind,
    ) {
        assert_eq!(
            parse(text),
            Err(ParseError {
                position,
                word,
                kind
            }),
            "{text:?}"
        );
    }

    fn rule_only(text: &str) -> Result<(), ParseError<'_>> {
        parse_rule(text).map(drop)
    }

    fn command_only(text: &str) -> Result<(), ParseError<'_>> {
        parse_command(text).map(drop)
    }

    #[test]
    fn rule_syntax_errors() {
        use Expected as E;
        use ParseErrorKind as K;
        let r = rule_only;
        // Missing words, at every place a rule can end too early.
        fails(r, "", 1, "", K::Missing(E::Verdict));
        fails(r, "   ", 1, "", K::Missing(E::Verdict));
        fails(r, "deny", 2, "", K::Missing(E::DirectionProtoOrFrom));
        fails(r, "deny in", 3, "", K::Missing(E::ProtoOrFrom));
        fails(r, "deny in tcp", 4, "", K::Missing(E::From));
        fails(r, "deny tcp", 3, "", K::Missing(E::From));
        fails(r, "deny in tcp from", 5, "", K::Missing(E::Address));
        fails(r, "deny in tcp from any", 6, "", K::Missing(E::PortOrTo));
        fails(r, "deny tcp from any port", 6, "", K::Missing(E::Port));
        fails(r, "deny tcp from any port 5", 7, "", K::Missing(E::To));
        fails(r, "deny tcp from any to", 6, "", K::Missing(E::Address));
        fails(
            r,
            "deny tcp from any to any port",
            8,
            "",
            K::Missing(E::Port),
        );
        // Unexpected words.
        fails(
            r,
            "block from any to any",
            1,
            "block",
            K::Unexpected(E::Verdict),
        );
        fails(
            r,
            "Deny from any to any",
            1,
            "Deny",
            K::Unexpected(E::Verdict),
        );
        fails(
            r,
            "deny sctp from any to any",
            2,
            "sctp",
            K::Unexpected(E::DirectionProtoOrFrom),
        );
        fails(
            r,
            "deny in in from any to any",
            3,
            "in",
            K::Unexpected(E::ProtoOrFrom),
        );
        fails(
            r,
            "deny tcp udp from any to any",
            3,
            "udp",
            K::Unexpected(E::From),
        );
        fails(
            r,
            "deny tcp in from any to any",
            3,
            "in",
            K::Unexpected(E::From),
        );
        fails(r, "deny in tcp to any", 4, "to", K::Unexpected(E::From));
        fails(
            r,
            "deny from any at any",
            4,
            "at",
            K::Unexpected(E::PortOrTo),
        );
        fails(
            r,
            "deny tcp from any port 1 port 2 to any",
            7,
            "port",
            K::Unexpected(E::To),
        );
        fails(
            r,
            "deny from any to any in",
            6,
            "in",
            K::Unexpected(E::PortOrEnd),
        );
        fails(
            r,
            "deny tcp from any to any port 7 7",
            9,
            "7",
            K::Unexpected(E::End),
        );
        // Addresses.
        for bad in [
            "10.0.2",
            "10.0.2.15.1",
            "10.0.2.256",
            "10.0.2.-1",
            "10.0.2.015",
            "10..2.15",
            "a.b.c.d",
            "ANY",
            "10.0.2.15/",
            "/24",
            "10.0.2.1x",
        ] {
            let text = std::format!("deny from {bad} to any");
            let kind = if bad == "10.0.2.15/" {
                K::BadPrefixLength
            } else {
                K::BadAddress
            };
            fails(r, &text, 3, bad, kind);
        }
        fails(
            r,
            "deny from any to 10.0.2.0/33",
            5,
            "10.0.2.0/33",
            K::BadPrefixLength,
        );
        fails(
            r,
            "deny from any to 10.0.2.0/024",
            5,
            "10.0.2.0/024",
            K::BadPrefixLength,
        );
        fails(
            r,
            "deny from any to 10.0.2.0/-1",
            5,
            "10.0.2.0/-1",
            K::BadPrefixLength,
        );
        fails(
            r,
            "deny from any to 10.0.2.0/24/1",
            5,
            "10.0.2.0/24/1",
            K::BadPrefixLength,
        );
        fails(
            r,
            "deny from 10.0.2.15/24 to any",
            3,
            "10.0.2.15/24",
            K::HostBitsSet,
        );
        fails(
            r,
            "deny from 0.0.0.1/0 to any",
            3,
            "0.0.0.1/0",
            K::HostBitsSet,
        );
        // Ports.
        for bad in [
            "65536",
            "-1",
            "1-",
            "-",
            "-5",
            "1-2-3",
            "07",
            "1,000",
            "x",
            "+1",
            "99999999999",
            "1--2",
        ] {
            let text = std::format!("deny tcp from any port {bad} to any");
            fails(r, &text, 6, bad, K::BadPort);
        }
        fails(
            r,
            "deny udp from any to any port 2000-1000",
            8,
            "2000-1000",
            K::ReversedPortRange,
        );
        fails(
            r,
            "deny udp from any to any port 65535-0",
            8,
            "65535-0",
            K::ReversedPortRange,
        );
        fails(
            r,
            "deny icmp from any port 7 to any",
            5,
            "port",
            K::PortWithoutTcpUdp,
        );
        fails(
            r,
            "deny from any to any port 7",
            6,
            "port",
            K::PortWithoutTcpUdp,
        );
        fails(
            r,
            "deny in any from any to any port 7",
            8,
            "port",
            K::PortWithoutTcpUdp,
        );
    }

    #[test]
    fn command_syntax_errors() {
        use Expected as E;
        use ParseErrorKind as K;
        let c = command_only;
        fails(c, "", 1, "", K::Missing(E::Command));
        fails(c, "pf", 2, "", K::Missing(E::Command));
        fails(c, "pf show", 2, "show", K::Unexpected(E::Command));
        fails(c, "pf pf list", 2, "pf", K::Unexpected(E::Command));
        fails(c, "PF list", 1, "PF", K::Unexpected(E::Command));
        fails(c, "pf list all", 3, "all", K::Unexpected(E::End));
        fails(c, "pf add", 3, "", K::Missing(E::RuleNumberOrVerdict));
        fails(c, "pf add 2", 4, "", K::Missing(E::Verdict));
        fails(c, "pf add 0 deny from any to any", 3, "0", K::BadRuleNumber);
        fails(
            c,
            "pf add 2x deny from any to any",
            3,
            "2x",
            K::BadRuleNumber,
        );
        fails(
            c,
            "pf add 4294967296 deny from any to any",
            3,
            "4294967296",
            K::BadRuleNumber,
        );
        fails(
            c,
            "pf add block from any to any",
            3,
            "block",
            K::Unexpected(E::Verdict),
        );
        fails(
            c,
            "pf add deny from any to any now",
            8,
            "now",
            K::Unexpected(E::PortOrEnd),
        );
        fails(
            c,
            "pf add deny from 1.2.3.4/8 to any",
            5,
            "1.2.3.4/8",
            K::HostBitsSet,
        );
        fails(c, "pf del", 3, "", K::Missing(E::RuleNumber));
        fails(c, "del", 2, "", K::Missing(E::RuleNumber));
        fails(c, "pf del 0", 3, "0", K::BadRuleNumber);
        fails(c, "pf del 01", 3, "01", K::BadRuleNumber);
        fails(c, "pf del -1", 3, "-1", K::BadRuleNumber);
        fails(c, "pf del three", 3, "three", K::BadRuleNumber);
        fails(c, "pf del 3 4", 4, "4", K::Unexpected(E::End));
    }

    #[test]
    fn error_messages_name_the_word() {
        let e = parse_command("pf add deny from 10.0.2.15/24 to any").unwrap_err();
        assert_eq!(
            e.to_string(),
            "word 5 \"10.0.2.15/24\": address has bits set past the prefix length (write the network)"
        );
        let e = parse_command("pf add deny in tcp").unwrap_err();
        assert_eq!(e.to_string(), "missing word 6: expected `from`");
        let e = parse_command("pf frobnicate").unwrap_err();
        assert_eq!(
            e.to_string(),
            "word 2 \"frobnicate\": expected `list`, `add` or `del`"
        );
    }

    #[test]
    fn decimal_rules() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("4294967295"), Some(u32::MAX));
        assert_eq!(decimal("4294967296"), None);
        for bad in ["", "00", "01", "+1", "-0", " 1", "1 ", "1_000", "١"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}

//! Rule text from the shell: parsing never panics; an error names a word of the line; what
//! parses prints back to itself and, applied to a rule set, keeps it within bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf::{Command, ParseErrorKind, RuleSet, parse_command, parse_rule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    match parse_command(text) {
        Ok(command) => {
            let printed = command.to_string();
            assert_eq!(parse_command(&printed), Ok(command), "{printed:?}");
            if let Command::Add { rule, .. } = command {
                assert_eq!(parse_rule(&rule.to_string()), Ok(rule));
            }
            let mut set = RuleSet::new();
            for _ in 0..3 {
                let _ = set.apply(&command);
            }
            assert!(set.len() <= pf::MAX_RULES);
        }
        Err(e) => {
            if let ParseErrorKind::Missing(_) = e.kind {
                assert_eq!((e.position, e.word), (words.len() + 1, ""));
            } else {
                assert_eq!(words.get(e.position - 1), Some(&e.word));
            }
            let _ = e.to_string();
        }
    }
    if let Ok(rule) = parse_rule(text) {
        assert_eq!(parse_rule(&rule.to_string()), Ok(rule));
    }
});

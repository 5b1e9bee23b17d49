//! Counting test results from text: the in-kernel suite's serial lines (`ktest NAME ... ok`,
//! `ktest NAME ... FAILED`, and the final `ktest: N passed, M failed`) and `cargo test`'s
//! `test result: ok. N passed; M failed; K ignored; ...` lines.

/// The result of one in-kernel test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ktest {
    /// The test's name as the kernel printed it.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// For a failure: what followed `FAILED` on the line, or a note that the line was cut off.
    pub detail: String,
}

/// What the kernel printed in `test=kernel` mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KtestReport {
    /// Every `ktest NAME ... RESULT` line, in order.
    pub tests: Vec<Ktest>,
    /// The final `ktest: N passed, M failed` line's numbers, if it was printed.
    pub summary: Option<(u32, u32)>,
}

/// Reads the in-kernel test lines out of a transcript. A line may carry a log prefix before
/// `ktest`. A `ktest NAME ... ` line with no result (the kernel died inside that test) counts as
/// a failure.
pub fn parse_ktests(transcript: &str) -> KtestReport {
    let mut report = KtestReport::default();
    for line in transcript.lines() {
        if let Some(rest) = after_word(line, "ktest:") {
            if let Some(counts) = parse_ktest_summary(rest) {
                report.summary = Some(counts);
            }
        } else if let Some(rest) = after_word(line, "ktest ")
            && let Some((name, result)) = rest.split_once(" ...")
        {
            let name = name.trim().to_string();
            let result = result.trim();
            let test = if result == "ok" {
                Ktest {
                    name,
                    passed: true,
                    detail: String::new(),
                }
            } else if let Some(detail) = result.strip_prefix("FAILED") {
                let detail = detail.trim_start_matches([':', ' ']).to_string();
                Ktest {
                    name,
                    passed: false,
                    detail,
                }
            } else {
                let detail = if result.is_empty() {
                    "no result: the kernel stopped inside this test".to_string()
                } else {
                    format!("unreadable result '{result}'")
                };
                Ktest {
                    name,
                    passed: false,
                    detail,
                }
            };
            report.tests.push(test);
        }
    }
    report
}

/// The text after `word` when `word` starts the line or follows a space or `]` (a log prefix).
fn after_word<'l>(line: &'l str, word: &str) -> Option<&'l str> {
    let mut from = 0;
    while let Some(at) = line[from..].find(word) {
        let at = from + at;
        if at == 0 || line[..at].ends_with([' ', ']']) {
            return Some(&line[at + word.len()..]);
        }
        from = at + word.len();
    }
    None
}

fn parse_ktest_summary(rest: &str) -> Option<(u32, u32)> {
    let mut w = rest.split([' ', ',']).filter(|s| !s.is_empty());
    let passed = w.next()?.parse().ok()?;
    (w.next()? == "passed").then_some(())?;
    let failed = w.next()?.parse().ok()?;
    (w.next()? == "failed").then_some(())?;
    Some((passed, failed))
}

/// Numbers of one `cargo test` binary's result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CargoCounts {
    /// Passed tests.
    pub passed: u32,
    /// Failed tests.
    pub failed: u32,
    /// `#[ignore]`d tests (reported as skipped).
    pub ignored: u32,
}

impl std::ops::AddAssign for CargoCounts {
    fn add_assign(&mut self, o: Self) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
    }
}

/// Parses `test result: ok. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; ...`.
pub fn parse_cargo_result(line: &str) -> Option<CargoCounts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_verdict, counts) = rest.split_once(". ")?;
    let mut c = CargoCounts::default();
    for part in counts.split(';') {
        let mut w = part.split_whitespace();
        let (Some(n), Some(what)) = (w.next(), w.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        match what {
            "passed" => c.passed = n,
            "failed" => c.failed = n,
            "ignored" => c.ignored = n,
            _ => {}
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kt(name: &str, passed: bool, detail: &str) -> Ktest {
        Ktest {
            name: name.into(),
            passed,
            detail: detail.into(),
        }
    }

    #[test]
    fn ktest_lines_and_summary() {
        let t = "boot: 2 cpus online boot_ms=10\n\
                 ktest frames::alloc_free ... ok\n\
                 [INFO] ktest heap::big_alloc ... FAILED: got 3, want 4\n\
                 ktest smp::ipi ... FAILED\n\
                 some other log ktest-like text\n\
                 ktest: 1 passed, 2 failed\n";
        let r = parse_ktests(t);
        assert_eq!(
            r.tests,
            [
                kt("frames::alloc_free", true, ""),
                kt("heap::big_alloc", false, "got 3, want 4"),
                kt("smp::ipi", false, ""),
            ]
        );
        assert_eq!(r.summary, Some((1, 2)));
    }

    #[test]
    fn a_test_cut_off_by_a_crash_fails() {
        let r = parse_ktests("ktest a ... ok\nktest b ... \nKERNEL PANIC on cpu0: boom\n");
        assert_eq!(
            r.tests[1],
            kt("b", false, "no result: the kernel stopped inside this test")
        );
        assert_eq!(r.summary, None);
        let r = parse_ktests("ktest c ... maybe\n");
        assert_eq!(r.tests, [kt("c", false, "unreadable result 'maybe'")]);
    }

    #[test]
    fn not_ktest_lines() {
        let r =
            parse_ktests("myktest a ... ok\nktest: lots passed\nktest: 3 passed\nktests ... ok\n");
        assert_eq!(r, KtestReport::default());
        assert_eq!(
            parse_ktests("ktest: 0 passed, 0 failed").summary,
            Some((0, 0))
        );
    }

    #[test]
    fn cargo_result_lines() {
        assert_eq!(
            parse_cargo_result(
                "test result: ok. 13 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s"
            ),
            Some(CargoCounts {
                passed: 13,
                failed: 0,
                ignored: 2
            })
        );
        assert_eq!(
            parse_cargo_result("test result: FAILED. 1 passed; 3 failed; 0 ignored; 0 measured"),
            Some(CargoCounts {
                passed: 1,
                failed: 3,
                ignored: 0
            })
        );
        assert_eq!(parse_cargo_result("test foo ... ok"), None);
        let mut sum = CargoCounts::default();
        sum += CargoCounts {
            passed: 1,
            failed: 2,
            ignored: 3,
        };
        sum += CargoCounts {
            passed: 1,
            failed: 0,
            ignored: 0,
        };
        assert_eq!(
            sum,
            CargoCounts {
                passed: 2,
                failed: 2,
                ignored: 3
            }
        );
    }
}

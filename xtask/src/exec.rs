//! `--exec`: types commands into the guest shell over QEMU's stdin and follows the serial output.
//!
//! The session waits for the prompt `axolotl> ` (which ends with no newline, so the output is
//! searched as bytes arrive, never by lines), types the first command and `\r`, waits for the
//! next prompt, and so on; after the last command it types `poweroff` and waits for QEMU to end.
//! A command's output is what came between the prompt before it and the prompt after it, less
//! the shell's echo of the command. A command whose output holds an `[exit N]` line failed. The
//! session stops at the first failure, and every wait (the first prompt, each command, the
//! power-off) has the same limit.
//!
//! [`Session`] is the state machine, free of threads and pipes so it is tested with canned
//! output; [`drive`] connects it to QEMU.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use axolotl_tests::shell::{self, PROMPT};
use axolotl_tests::{CommandOutput, ExecFailure, ExecReport, transcript};

/// What to type, and how long each wait may last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The commands, without the final `poweroff`.
    pub commands: Vec<String>,
    /// Limit for the first prompt, for each command's prompt, and for the power-off.
    pub step_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first prompt.
    AwaitPrompt,
    /// Command `i` was typed; waiting for the prompt after it.
    Command(usize),
    /// `poweroff` was typed; waiting for QEMU to end.
    PoweringOff,
    /// Finished, or failed.
    Done,
}

/// The exec session's state.
pub struct Session {
    commands: Vec<String>,
    step_secs: u64,
    /// All output so far.
    raw: Vec<u8>,
    /// Where the current command's output starts (just after the prompt it was typed at).
    from: usize,
    state: State,
    report: ExecReport,
}

/// The command typed last after the commands of a plan.
pub const POWEROFF: &str = "poweroff";

impl Session {
    /// A session that will type `plan`'s commands.
    pub fn new(plan: &Plan) -> Self {
        Self {
            commands: plan.commands.clone(),
            step_secs: plan.step_timeout.as_secs(),
            raw: Vec::new(),
            from: 0,
            state: State::AwaitPrompt,
            report: ExecReport::default(),
        }
    }

    /// True when nothing more will be typed: finished or failed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True when the session failed.
    pub fn failed(&self) -> bool {
        self.report.failure.is_some()
    }

    /// What the session did.
    pub fn into_report(self) -> ExecReport {
        self.report
    }

    /// Takes new guest output; returns the bytes to type now (empty: nothing yet).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.raw.extend_from_slice(bytes);
        let Some((start, end)) = find(&self.raw[self.from..], PROMPT.as_bytes())
            .map(|at| (self.from + at, self.from + at + PROMPT.len()))
        else {
            return Vec::new();
        };
        match self.state {
            State::AwaitPrompt => self.type_next(0, end),
            State::Command(i) => {
                let out = self.record(i, start);
                if let Some(status) = out.status {
                    self.fail(ExecFailure::CommandFailed {
                        command: out.command,
                        status,
                    });
                    return Vec::new();
                }
                self.type_next(i + 1, end)
            }
            State::PoweringOff => {
                let out = self.record(self.commands.len(), start);
                self.fail(match out.status {
                    Some(status) => ExecFailure::CommandFailed {
                        command: out.command,
                        status,
                    },
                    None => ExecFailure::PoweroffReturned,
                });
                Vec::new()
            }
            State::Done => Vec::new(),
        }
    }

    /// QEMU's output ended (it exited, or was killed).
    pub fn ended(&mut self) {
        match self.state {
            State::AwaitPrompt => self.fail(ExecFailure::EndedBeforePrompt),
            State::Command(i) => {
                let out = self.record(i, self.raw.len());
                self.fail(ExecFailure::EndedDuringCommand {
                    command: out.command,
                });
            }
            State::PoweringOff => {
                self.record(self.commands.len(), self.raw.len());
                self.state = State::Done;
            }
            State::Done => {}
        }
    }

    /// The current wait outlived its limit.
    pub fn timed_out(&mut self) {
        let secs = self.step_secs;
        match self.state {
            State::AwaitPrompt => self.fail(ExecFailure::NoPrompt { secs }),
            State::Command(i) => {
                let out = self.record(i, self.raw.len());
                self.fail(ExecFailure::CommandTimedOut {
                    command: out.command,
                    secs,
                });
            }
            State::PoweringOff => {
                self.record(self.commands.len(), self.raw.len());
                self.fail(ExecFailure::NoPoweroff { secs });
            }
            State::Done => {}
        }
    }

    fn fail(&mut self, failure: ExecFailure) {
        if self.report.failure.is_none() {
            self.report.failure = Some(failure);
        }
        self.state = State::Done;
    }

    /// True once every command is done and `poweroff` is the next thing typed.
    pub fn powering_off(&self) -> bool {
        self.state == State::PoweringOff
    }

    /// The index of the command being typed or running (`None` before the first and from
    /// `poweroff` on).
    pub fn running(&self) -> Option<usize> {
        match self.state {
            State::Command(i) => Some(i),
            _ => None,
        }
    }

    /// Types command `i` (or `poweroff` after the last), whose output starts at `from`.
    fn type_next(&mut self, i: usize, from: usize) -> Vec<u8> {
        self.from = from;
        let command = match self.commands.get(i) {
            Some(c) => {
                self.state = State::Command(i);
                c.as_str()
            }
            None => {
                self.state = State::PoweringOff;
                POWEROFF
            }
        };
        let mut typed = command.as_bytes().to_vec();
        typed.push(b'\r');
        typed
    }

    /// Records the output of command `i` (the `poweroff` after the last), which ends at `end`.
    fn record(&mut self, i: usize, end: usize) -> CommandOutput {
        let command = self
            .commands
            .get(i)
            .map_or(POWEROFF, String::as_str)
            .to_string();
        let output = without_echo(&transcript::clean(&self.raw[self.from..end]), &command);
        // A kernel log line may have begun inside a line of the command's (the serial line is
        // shared): every reader of the output gets that line whole.
        let output = shell::mend_cut_lines(&output);
        let out = CommandOutput {
            status: shell::exit_status(&output),
            command,
            output,
        };
        self.report.commands.push(out.clone());
        out
    }
}

/// `output` less the first line that is the echo of `command`.
fn without_echo(output: &str, command: &str) -> String {
    let mut lines: Vec<&str> = output.split_inclusive('\n').collect();
    if let Some(at) = lines.iter().position(|l| l.trim() == command.trim()) {
        lines.remove(at);
    }
    lines.concat()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs a session against a live QEMU: `output` delivers its serial output as it arrives (and
/// disconnects when QEMU's stdout closes), `stdin` is its serial input. On failure it sets
/// `stop`, which tells the runner to kill QEMU. `before_command(i)` runs just before command `i`
/// is typed, `before_poweroff` before `poweroff`. Returns when the session is done.
pub fn drive(
    plan: &Plan,
    output: &Receiver<Vec<u8>>,
    mut stdin: impl Write,
    stop: &AtomicBool,
    before_command: &mut dyn FnMut(usize),
    before_poweroff: &mut dyn FnMut(),
) -> ExecReport {
    let mut session = Session::new(plan);
    let mut hooked = false;
    let mut deadline = Instant::now() + plan.step_timeout;
    while !session.is_done() {
        match output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(bytes) => {
                let typed = session.feed(&bytes);
                if !typed.is_empty() {
                    // The last prompt is back: the screen shows the whole session now.
                    if session.powering_off() && !hooked {
                        hooked = true;
                        before_poweroff();
                    }
                    if let Some(i) = session.running() {
                        before_command(i);
                    }
                    // A failed write means QEMU is gone; the closed output says so next.
                    let _ = stdin.write_all(&typed).and_then(|()| stdin.flush());
                    deadline = Instant::now() + plan.step_timeout;
                }
            }
            Err(RecvTimeoutError::Timeout) => session.timed_out(),
            Err(RecvTimeoutError::Disconnected) => session.ended(),
        }
    }
    if session.failed() {
        stop.store(true, Ordering::SeqCst);
    }
    session.into_report()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(commands: &[&str]) -> Plan {
        Plan {
            commands: commands.iter().map(|c| c.to_string()).collect(),
            step_timeout: Duration::from_secs(7),
        }
    }

    /// Feeds `chunks` in turn; returns everything typed.
    fn feed_all(s: &mut Session, chunks: &[&str]) -> String {
        let mut typed = Vec::new();
        for c in chunks {
            typed.extend(s.feed(c.as_bytes()));
        }
        String::from_utf8(typed).unwrap()
    }

    #[test]
    fn a_good_session() {
        let mut s = Session::new(&plan(&["sleep 2", "ps"]));
        // The prompt arrives split across chunks, with no newline after it.
        assert_eq!(
            feed_all(&mut s, &["[cpu0] boot: 4 cpus\r\naxol", "otl"]),
            ""
        );
        assert_eq!(feed_all(&mut s, &["> "]), "sleep 2\r");
        assert_eq!(
            feed_all(&mut s, &["sleep 2\r\n[cpu1] heartbeat: heartbeat 3\r\n"]),
            ""
        );
        assert_eq!(feed_all(&mut s, &["axolotl> "]), "ps\r");
        assert_eq!(
            feed_all(&mut s, &["p", "s\r\nPID  NAME\r\n  1  shell\r\naxolotl> "]),
            "poweroff\r"
        );
        assert!(!s.is_done());
        feed_all(
            &mut s,
            &["poweroff\r\n[cpu0] poweroff requested by shell (code 0)\r\n"],
        );
        s.ended();
        assert!(s.is_done() && !s.failed());
        let r = s.into_report();
        assert_eq!(r.failure, None);
        let outs: Vec<(&str, &str)> = r
            .commands
            .iter()
            .map(|c| (c.command.as_str(), c.output.as_str()))
            .collect();
        assert_eq!(
            outs,
            [
                ("sleep 2", "[cpu1] heartbeat: heartbeat 3\n"),
                ("ps", "PID  NAME\n  1  shell\n"),
                ("poweroff", "[cpu0] poweroff requested by shell (code 0)\n"),
            ]
        );
        assert_eq!(r.output_of("ps"), Some("PID  NAME\n  1  shell\n"));
    }

    #[test]
    fn a_line_cut_by_a_log_line_is_whole_in_the_output() {
        let mut s = Session::new(&plan(&["ps"]));
        feed_all(&mut s, &["axolotl> "]);
        feed_all(
            &mut s,
            &[
                "ps\r\n  5  ip  3*  blocked[cpu4] udp: hi\r\n",
                "     0\r\naxolotl> ",
            ],
        );
        let r = s.into_report();
        assert_eq!(
            r.output_of("ps"),
            Some("[cpu4] udp: hi\n  5  ip  3*  blocked     0\n")
        );
    }

    #[test]
    fn a_failing_command_stops_the_session() {
        let mut s = Session::new(&plan(&["ps", "frob", "ps"]));
        assert_eq!(feed_all(&mut s, &["axolotl> "]), "ps\r");
        assert_eq!(feed_all(&mut s, &["ps\r\nPID\r\naxolotl> "]), "frob\r");
        let typed = feed_all(
            &mut s,
            &["frob\r\nunknown command: frob (try help)\r\n[exit 127]\r\naxolotl> "],
        );
        assert_eq!(typed, "", "nothing typed after a failure");
        assert!(s.is_done() && s.failed());
        let r = s.into_report();
        assert_eq!(
            r.failure,
            Some(ExecFailure::CommandFailed {
                command: "frob".into(),
                status: 127
            })
        );
        assert_eq!(r.commands[1].status, Some(127));
        assert_eq!(
            r.failure.unwrap().to_string(),
            "exec: command 'frob' failed ([exit 127])"
        );
    }

    #[test]
    fn an_echo_of_exit_is_not_a_failure() {
        let mut s = Session::new(&plan(&["echo [exit 5]x"]));
        feed_all(&mut s, &["axolotl> "]);
        let typed = feed_all(&mut s, &["echo [exit 5]x\r\n[exit 5]x\r\naxolotl> "]);
        assert_eq!(typed, "poweroff\r");
        assert!(!s.failed());
    }

    #[test]
    fn no_prompt_and_timeouts() {
        let mut s = Session::new(&plan(&["ps"]));
        feed_all(&mut s, &["booting...\r\n"]);
        s.timed_out();
        assert_eq!(
            s.into_report().failure.unwrap().to_string(),
            "exec: no shell prompt within 7 s"
        );

        let mut s = Session::new(&plan(&["sleep 100"]));
        feed_all(&mut s, &["axolotl> ", "sleep 100\r\n"]);
        s.timed_out();
        let r = s.into_report();
        assert_eq!(
            r.failure,
            Some(ExecFailure::CommandTimedOut {
                command: "sleep 100".into(),
                secs: 7
            })
        );
        assert_eq!(r.commands[0].output, "");

        let mut s = Session::new(&plan(&[]));
        assert_eq!(feed_all(&mut s, &["axolotl> "]), "poweroff\r");
        s.timed_out();
        assert_eq!(
            s.into_report().failure,
            Some(ExecFailure::NoPoweroff { secs: 7 })
        );
    }

    #[test]
    fn qemu_ending_early() {
        let mut s = Session::new(&plan(&["ps"]));
        s.ended();
        assert_eq!(
            s.into_report().failure,
            Some(ExecFailure::EndedBeforePrompt)
        );
        let mut s = Session::new(&plan(&["ps"]));
        feed_all(&mut s, &["axolotl> ", "ps\r\nKERNEL PANIC on cpu0: x\r\n"]);
        s.ended();
        let r = s.into_report();
        assert_eq!(
            r.failure,
            Some(ExecFailure::EndedDuringCommand {
                command: "ps".into()
            })
        );
        assert_eq!(r.commands[0].output, "KERNEL PANIC on cpu0: x\n");
    }

    #[test]
    fn poweroff_that_returns() {
        let mut s = Session::new(&plan(&[]));
        feed_all(&mut s, &["axolotl> "]);
        feed_all(
            &mut s,
            &["poweroff\r\npoweroff: not granted by the manifest\r\n[exit 1]\r\naxolotl> "],
        );
        assert_eq!(
            s.into_report().failure.unwrap().to_string(),
            "exec: command 'poweroff' failed ([exit 1])"
        );
        let mut s = Session::new(&plan(&[]));
        feed_all(&mut s, &["axolotl> ", "poweroff\r\naxolotl> "]);
        assert_eq!(s.into_report().failure, Some(ExecFailure::PoweroffReturned));
    }

    #[test]
    fn the_driver_runs_the_hooks_before_each_command_and_the_poweroff() {
        let (tx, rx) = std::sync::mpsc::channel();
        for chunk in ["axolotl> ", "a\r\naxolotl> ", "b\r\naxolotl> "] {
            tx.send(chunk.as_bytes().to_vec()).unwrap();
        }
        drop(tx);
        let stop = AtomicBool::new(false);
        let typed = std::cell::RefCell::new(Vec::new());
        let seen = std::cell::RefCell::new(Vec::new());
        let mut writer = Recorder(&typed);
        let r = drive(
            &plan(&["a", "b"]),
            &rx,
            &mut writer,
            &stop,
            &mut |i| seen.borrow_mut().push((i, typed.borrow().len())),
            &mut || seen.borrow_mut().push((99, typed.borrow().len())),
        );
        // Each hook ran before its command was typed: nothing, "a\r", "a\rb\r" typed by then.
        assert_eq!(*seen.borrow(), [(0, 0), (1, 2), (99, 4)]);
        assert_eq!(*typed.borrow(), b"a\rb\rpoweroff\r");
        assert_eq!(r.commands.len(), 3);
    }

    /// A writer that keeps what it was given in a shared buffer.
    struct Recorder<'a>(&'a std::cell::RefCell<Vec<u8>>);

    impl Write for Recorder<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_driver_types_and_stops() {
        let (tx, rx) = std::sync::mpsc::channel();
        for chunk in ["axolotl> ", "nope\r\n[exit 127]\r\naxolotl> "] {
            tx.send(chunk.as_bytes().to_vec()).unwrap();
        }
        let stop = AtomicBool::new(false);
        let mut typed = Vec::new();
        let r = drive(
            &plan(&["nope"]),
            &rx,
            &mut typed,
            &stop,
            &mut |_| {},
            &mut || {},
        );
        assert_eq!(typed, b"nope\r");
        assert!(stop.load(Ordering::SeqCst), "a failure stops QEMU");
        assert!(matches!(r.failure, Some(ExecFailure::CommandFailed { .. })));

        // A silent guest: the step limit ends the wait.
        let (_tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let quick = Plan {
            commands: vec![],
            step_timeout: Duration::from_millis(50),
        };
        let stop = AtomicBool::new(false);
        let r = drive(&quick, &rx, std::io::sink(), &stop, &mut |_| {}, &mut || {});
        assert_eq!(r.failure, Some(ExecFailure::NoPrompt { secs: 0 }));
        assert!(stop.load(Ordering::SeqCst));

        // A clean power-off: QEMU's output ends after 'poweroff'.
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(b"axolotl> ".to_vec()).unwrap();
        drop(tx);
        let stop = AtomicBool::new(false);
        let r = drive(
            &plan(&[]),
            &rx,
            std::io::sink(),
            &stop,
            &mut |_| {},
            &mut || {},
        );
        assert_eq!(r.failure, None);
        assert!(!stop.load(Ordering::SeqCst));
    }
}

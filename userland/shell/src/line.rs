//! The line editor: turns bytes typed on a serial terminal into lines, echoing as it goes.
//!
//! Printable ASCII is echoed and kept (a tab counts as a space); backspace (0x08) and DEL (0x7f)
//! erase the last character; CR, LF or CRLF ends the line (a CR followed by an LF is one end);
//! Ctrl-C drops the line. Terminal escape sequences (arrow keys: `ESC [ ... final`) and other
//! control or non-ASCII bytes are ignored. A line holds at most [`LINE_MAX`] bytes; what is typed
//! beyond is dropped.

use core::fmt::Write;

/// Longest line, in bytes.
pub const LINE_MAX: usize = 256;

/// What a byte did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Still reading the line.
    Pending,
    /// The line is complete: take it with [`LineEditor::line`], then [`LineEditor::clear`].
    Line,
    /// The line was dropped (Ctrl-C): prompt again.
    Cancel,
}

/// Where we are in a terminal escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After `ESC [`: parameters until a final byte in 0x40..=0x7e.
    Csi,
}

/// The line being typed.
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    after_cr: bool,
    escape: Escape,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            after_cr: false,
            escape: Escape::None,
        }
    }

    /// The line so far.
    pub fn line(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Empties the line (after a [`Feed::Line`]).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Takes one typed byte, writing its echo to `echo` (a line end echoes as `\n`).
    pub fn feed(&mut self, b: u8, echo: &mut impl Write) -> Feed {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.escape {
            Escape::Start => {
                self.escape = if b == b'[' { Escape::Csi } else { Escape::None };
                return Feed::Pending;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = Escape::None;
                }
                return Feed::Pending;
            }
            Escape::None => {}
        }
        match b {
            b'\n' if after_cr => Feed::Pending,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                let _ = echo.write_str("\n");
                Feed::Line
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    let _ = echo.write_str("\x08 \x08");
                }
                Feed::Pending
            }
            0x03 => {
                self.len = 0;
                let _ = echo.write_str("^C\n");
                Feed::Cancel
            }
            0x1b => {
                self.escape = Escape::Start;
                Feed::Pending
            }
            b'\t' | 0x20..=0x7e => {
                let c = if b == b'\t' { b' ' } else { b };
                if self.len < LINE_MAX {
                    self.buf[self.len] = c;
                    self.len += 1;
                    let _ = echo.write_char(char::from(c));
                }
                Feed::Pending
            }
            _ => Feed::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input`; returns the lines completed, the cancels, and the echo.
    fn type_in(ed: &mut LineEditor, input: &[u8]) -> (Vec<String>, usize, String) {
        let mut echo = String::new();
        let mut lines = Vec::new();
        let mut cancels = 0;
        for &b in input {
            match ed.feed(b, &mut echo) {
                Feed::Pending => {}
                Feed::Line => {
                    lines.push(ed.line().to_string());
                    ed.clear();
                }
                Feed::Cancel => cancels += 1,
            }
        }
        (lines, cancels, echo)
    }

    #[test]
    fn line_ends_cr_lf_and_crlf_once() {
        let mut ed = LineEditor::new();
        let (lines, _, echo) = type_in(&mut ed, b"ps\r\nstat\rhelp\n\n");
        assert_eq!(lines, ["ps", "stat", "help", ""]);
        assert_eq!(echo, "ps\nstat\nhelp\n\n");
        // A CR alone followed later by LF-terminated input still ends only once per CR.
        let (lines, _, _) = type_in(&mut ed, b"a\r");
        assert_eq!(lines, ["a"]);
        let (lines, _, _) = type_in(&mut ed, b"\nb\n");
        assert_eq!(lines, ["b"]);
    }

    #[test]
    fn backspace_and_delete_erase() {
        let mut ed = LineEditor::new();
        let (lines, _, echo) = type_in(&mut ed, b"pz\x7fs\x08\x08\x08ps\r");
        assert_eq!(lines, ["ps"]);
        assert_eq!(
            echo, "pz\x08 \x08s\x08 \x08\x08 \x08ps\n",
            "no erase echoed on an empty line"
        );
    }

    #[test]
    fn escapes_and_controls_are_ignored_and_tab_is_space() {
        let mut ed = LineEditor::new();
        let (lines, _, echo) = type_in(&mut ed, b"ec\x1b[Aho\x1b[1;5C\tx\x01\xc3\xa9\r");
        assert_eq!(lines, ["echo x"]);
        assert_eq!(echo, "echo x\n");
    }

    #[test]
    fn ctrl_c_cancels() {
        let mut ed = LineEditor::new();
        let (lines, cancels, echo) = type_in(&mut ed, b"junk\x03ps\r");
        assert_eq!((lines.as_slice(), cancels), (&["ps".to_string()][..], 1));
        assert_eq!(echo, "junk^C\nps\n");
    }

    #[test]
    fn long_lines_are_capped() {
        let mut ed = LineEditor::new();
        let mut input = vec![b'a'; LINE_MAX + 10];
        input.push(b'\r');
        let (lines, _, echo) = type_in(&mut ed, &input);
        assert_eq!(lines[0].len(), LINE_MAX);
        assert_eq!(echo.len(), LINE_MAX + 1);
    }
}

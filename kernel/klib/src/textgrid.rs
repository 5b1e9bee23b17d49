//! The character grid behind the framebuffer console: a terminal that understands only what a log
//! and a line-editing shell send. `\n` starts a new line (the serial console turns it into `\r\n`
//! too), `\r` returns to the line's start, backspace (0x08) moves one cell back, a tab moves to
//! the next multiple of eight; other control bytes and every ANSI escape sequence (CSI, OSC, and
//! two- or three-byte ESC sequences) are dropped, even when split across writes. A UTF-8
//! character shows as one `?`. A line longer than the screen wraps; output past the last row
//! scrolls the grid up.
//!
//! The grid keeps two copies of the text: what it should show and what the screen shows.
//! [`TextGrid::flush`] hands the renderer only the cells that differ, so writing a log line draws
//! that line's glyphs, and a scroll redraws only the cells whose character changed — writes
//! only, no framebuffer reads (which are slow on real hardware, where the framebuffer is
//! uncached).

/// Byte of `shown` for a cell whose pixels are unknown: it is drawn whatever it should show.
const UNKNOWN: u8 = 0;

/// State of the escape-sequence filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Plain text.
    Ground,
    /// After ESC.
    Esc,
    /// After ESC and intermediate bytes (0x20–0x2f), e.g. `ESC ( B`.
    EscIntermediate,
    /// Inside `ESC [` … final byte (0x40–0x7e).
    Csi,
    /// Inside `ESC ]` … BEL or `ESC \`.
    Osc,
    /// ESC seen inside an OSC string.
    OscEsc,
}

/// A grid of at most `CAP` cells, sized at run time by [`TextGrid::reset`].
pub struct TextGrid<const CAP: usize> {
    cols: usize,
    rows: usize,
    /// What the screen should show, row by row, `cols` bytes a row; printable ASCII only.
    cells: [u8; CAP],
    /// What the screen shows ([`UNKNOWN`]: to be drawn).
    shown: [u8; CAP],
    row: usize,
    /// `cols` when the line is full and the next character wraps.
    col: usize,
    /// Rows `dirty.0..dirty.1` may differ from the screen.
    dirty: (usize, usize),
    escape: Escape,
    /// Lines to scroll at once when output reaches past the last row.
    scroll_step: usize,
}

impl<const CAP: usize> TextGrid<CAP> {
    /// An empty grid of no cells; [`Self::reset`] gives it its size. All zero, so a `static`
    /// grid costs no space in the image.
    pub const fn new() -> Self {
        Self {
            cols: 0,
            rows: 0,
            cells: [0; CAP],
            shown: [0; CAP],
            row: 0,
            col: 0,
            dirty: (0, 0),
            escape: Escape::Ground,
            scroll_step: 1,
        }
    }

    /// Makes the grid `cols` x `rows` (fewer rows when that would exceed `CAP` cells), blank,
    /// with the cursor at the top left. `screen_blank` says the screen is already blank (the
    /// renderer cleared it); otherwise the next flush draws every cell.
    pub fn reset(&mut self, cols: usize, rows: usize, screen_blank: bool) {
        let cols = cols.min(CAP);
        let rows = CAP.checked_div(cols).map_or(0, |fit| rows.min(fit));
        self.cols = cols;
        self.rows = rows;
        let n = cols * rows;
        self.cells[..n].fill(b' ');
        self.shown[..n].fill(if screen_blank { b' ' } else { UNKNOWN });
        self.row = 0;
        self.col = 0;
        self.escape = Escape::Ground;
        self.dirty = if screen_blank { (0, 0) } else { (0, rows) };
    }

    /// Columns of the grid.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Rows of the grid.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The cursor as (row, column); the column is [`Self::cols`] when the next character wraps.
    pub fn cursor(&self) -> (usize, usize) {
        (self.row, self.col)
    }

    /// The text of row `r` (what should be shown), `cols` bytes.
    pub fn line(&self, r: usize) -> &[u8] {
        &self.cells[r * self.cols..(r + 1) * self.cols]
    }

    /// Scroll `lines` at a time (at least one, at most the grid's height) when output reaches
    /// past the last row: more than one makes a long burst of output cheaper to draw.
    pub fn set_scroll_step(&mut self, lines: usize) {
        self.scroll_step = lines.max(1);
    }

    /// Marks every cell as unknown to the screen: the next flush draws them all.
    pub fn invalidate(&mut self) {
        self.shown[..self.cols * self.rows].fill(UNKNOWN);
        self.dirty = (0, self.rows);
    }

    /// Takes `bytes` of output.
    pub fn write(&mut self, bytes: &[u8]) {
        if self.rows == 0 {
            return;
        }
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        const ESC: u8 = 0x1b;
        // CAN and SUB abort a sequence anywhere.
        if matches!(b, 0x18 | 0x1a) {
            self.escape = Escape::Ground;
            return;
        }
        match self.escape {
            Escape::Ground => match b {
                ESC => self.escape = Escape::Esc,
                0x20..=0x7e => self.put(b),
                // A UTF-8 lead byte stands for its character; continuation bytes are dropped.
                0xc0..=0xff => self.put(b'?'),
                _ => self.control(b),
            },
            Escape::Esc => {
                self.escape = match b {
                    b'[' => Escape::Csi,
                    b']' => Escape::Osc,
                    0x20..=0x2f => Escape::EscIntermediate,
                    ESC => Escape::Esc,
                    0x00..=0x1f => {
                        self.control(b);
                        Escape::Esc
                    }
                    _ => Escape::Ground,
                }
            }
            Escape::EscIntermediate => match b {
                0x20..=0x2f => {}
                ESC => self.escape = Escape::Esc,
                0x00..=0x1f => self.control(b),
                _ => self.escape = Escape::Ground,
            },
            Escape::Csi => match b {
                0x40..=0x7e => self.escape = Escape::Ground,
                ESC => self.escape = Escape::Esc,
                // As a VT100 does: control bytes inside a sequence still act.
                0x00..=0x1f => self.control(b),
                _ => {}
            },
            Escape::Osc | Escape::OscEsc => match b {
                0x07 => self.escape = Escape::Ground,
                b'\\' if self.escape == Escape::OscEsc => self.escape = Escape::Ground,
                ESC => self.escape = Escape::OscEsc,
                // A console must not swallow the log after a broken title string: a new line
                // ends it.
                b'\n' => {
                    self.escape = Escape::Ground;
                    self.control(b);
                }
                _ if self.escape == Escape::OscEsc => {
                    // ESC followed by something else: a new sequence begins.
                    self.escape = Escape::Esc;
                    self.byte(b);
                }
                _ => {}
            },
        }
    }

    fn control(&mut self, b: u8) {
        match b {
            b'\n' => self.newline(),
            b'\r' => self.col = 0,
            0x08 => self.col = self.col.saturating_sub(1),
            b'\t' => self.col = ((self.col / 8 + 1) * 8).min(self.cols - 1),
            _ => {}
        }
    }

    fn put(&mut self, b: u8) {
        if self.col >= self.cols {
            self.newline();
        }
        let i = self.row * self.cols + self.col;
        if self.cells[i] != b {
            self.cells[i] = b;
            self.mark(self.row);
        }
        self.col += 1;
    }

    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
        } else {
            let n = self.scroll_step.min(self.rows);
            self.scroll_up(n);
            self.row = self.rows - n;
        }
    }

    /// Moves every row up by `n`, blanking the last `n`.
    fn scroll_up(&mut self, n: usize) {
        let (cols, rows) = (self.cols, self.rows);
        self.cells.copy_within(n * cols..rows * cols, 0);
        self.cells[(rows - n) * cols..rows * cols].fill(b' ');
        self.dirty = (0, rows);
    }

    fn mark(&mut self, row: usize) {
        self.dirty = if self.dirty.0 == self.dirty.1 {
            (row, row + 1)
        } else {
            (self.dirty.0.min(row), self.dirty.1.max(row + 1))
        };
    }

    /// Calls `draw(row, col, byte)` for every cell whose character differs from what the screen
    /// shows, and records that the screen now shows it. Returns the number of cells drawn.
    pub fn flush(&mut self, mut draw: impl FnMut(usize, usize, u8)) -> usize {
        let mut drawn = 0;
        let (from, to) = self.dirty;
        for r in from..to {
            let base = r * self.cols;
            let want = &self.cells[base..base + self.cols];
            let have = &mut self.shown[base..base + self.cols];
            if want == &*have {
                continue;
            }
            for (c, (w, h)) in want.iter().zip(have.iter_mut()).enumerate() {
                if w != h {
                    draw(r, c, *w);
                    *h = *w;
                    drawn += 1;
                }
            }
        }
        self.dirty = (0, 0);
        drawn
    }
}

impl<const CAP: usize> Default for TextGrid<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    type Grid = TextGrid<4096>;

    fn grid(cols: usize, rows: usize) -> Box<Grid> {
        let mut g = Box::new(Grid::new());
        g.reset(cols, rows, true);
        g
    }

    /// The grid's text, trailing blanks trimmed, one string per row.
    fn text(g: &Grid) -> Vec<String> {
        (0..g.rows())
            .map(|r| String::from_utf8_lossy(g.line(r)).trim_end().into())
            .collect()
    }

    /// A screen of `cols` x `rows` characters, drawn only through `flush`.
    struct Screen {
        cols: usize,
        chars: Vec<u8>,
    }

    impl Screen {
        fn new(g: &Grid) -> Self {
            Self {
                cols: g.cols(),
                chars: std::vec![b' '; g.cols() * g.rows()],
            }
        }
        fn flush(&mut self, g: &mut Grid) -> usize {
            let cols = self.cols;
            let chars = &mut self.chars;
            g.flush(|r, c, b| chars[r * cols + c] = b)
        }
        fn text(&self) -> Vec<String> {
            self.chars
                .chunks(self.cols)
                .map(|l| String::from_utf8_lossy(l).trim_end().into())
                .collect()
        }
    }

    #[test]
    fn lines_wrap_and_scroll() {
        let mut g = grid(5, 3);
        g.write(b"ab\ncdefgh");
        assert_eq!(text(&g), ["ab", "cdefg", "h"]);
        assert_eq!(g.cursor(), (2, 1));
        g.write(b"\nxy\n");
        assert_eq!(text(&g), ["h", "xy", ""]);
        assert_eq!(g.cursor(), (2, 0));
    }

    #[test]
    fn a_full_line_then_newline_gives_no_blank_line() {
        let mut g = grid(4, 3);
        g.write(b"abcd\nef");
        assert_eq!(text(&g), ["abcd", "ef", ""]);
        g.write(b"\rgh");
        assert_eq!(g.cursor(), (1, 2));
    }

    #[test]
    fn carriage_return_backspace_and_tab() {
        let mut g = grid(20, 2);
        g.write(b"hello\rj");
        assert_eq!(text(&g)[0], "jello");
        // The shell erases a character with BS, space, BS.
        g.write(b"\rps\x08 \x08x");
        assert_eq!(text(&g)[0], "pxllo");
        g.write(b"\r\x08\x08a");
        assert_eq!(text(&g)[0], "axllo");
        g.write(b"\n\tb\tc\t\t\t\td");
        assert_eq!(text(&g)[1], "        b       c  d");
        // Backspace from a full line stays on it.
        let mut g = grid(3, 2);
        g.write(b"abc\x08 \x08");
        assert_eq!(text(&g), ["ab", ""]);
        assert_eq!(g.cursor(), (0, 2));
    }

    #[test]
    fn escape_sequences_and_other_controls_are_dropped() {
        let mut g = grid(40, 4);
        g.write(b"\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok \x1b(Bz\x1b7\x1b8!");
        g.write(b"\x00\x01\x07\x0b\x0c\x7f.\x1b]2;t\x1b\\,");
        assert_eq!(text(&g)[0], "red ok z!.,");
        // Split across writes.
        g.write(b"\n\x1b");
        g.write(b"[3");
        g.write(b"2mgreen\x1b]8;;http://x");
        g.write(b"\x1b\\link");
        assert_eq!(text(&g)[1], "greenlink");
        // CAN aborts; a newline ends an unterminated OSC; controls act inside CSI.
        g.write(b"\n\x1b[12\x18a\x1b]never ends\nb\x1b[\r\x08mc");
        assert_eq!(text(&g)[2], "a");
        assert_eq!(text(&g)[3], "c");
    }

    #[test]
    fn utf8_shows_one_mark_per_character() {
        let mut g = grid(20, 1);
        g.write("é→x🦎".as_bytes());
        assert_eq!(text(&g)[0], "??x?");
    }

    #[test]
    fn flush_draws_only_what_changed() {
        let mut g = grid(10, 3);
        let mut s = Screen::new(&g);
        g.write(b"one\ntwo");
        assert_eq!(s.flush(&mut g), 6);
        assert_eq!(s.flush(&mut g), 0);
        g.write(b"\rtwx");
        assert_eq!(s.flush(&mut g), 1);
        g.write(b"\nthree\nfour");
        assert_eq!(s.text(), ["one", "twx", ""]);
        s.flush(&mut g);
        assert_eq!(s.text(), ["twx", "three", "four"]);
        assert_eq!(s.text(), text(&g));
    }

    #[test]
    fn scroll_redraws_the_differences_only() {
        let mut g = grid(10, 3);
        let mut s = Screen::new(&g);
        g.write(b"aaaa\naaaa\nab");
        s.flush(&mut g);
        g.write(b"\nc");
        // Row 0 keeps "aaaa", row 1 "aaaa" -> "ab" changes 3 cells, row 2 "ab" -> "c" 2 cells.
        assert_eq!(s.flush(&mut g), 5);
        assert_eq!(s.text(), ["aaaa", "ab", "c"]);
    }

    #[test]
    fn scroll_step_jumps_several_lines() {
        let mut g = grid(4, 4);
        g.set_scroll_step(2);
        g.write(b"1\n2\n3\n4\n5");
        assert_eq!(text(&g), ["3", "4", "5", ""]);
        g.set_scroll_step(100);
        g.write(b"\n6\n7\n8");
        assert_eq!(text(&g), ["7", "8", "", ""]);
    }

    #[test]
    fn a_long_burst_ends_like_a_terminal() {
        let mut g = grid(8, 5);
        let mut s = Screen::new(&g);
        for i in 0..1000 {
            g.write(std::format!("line {i}\n").as_bytes());
        }
        s.flush(&mut g);
        assert_eq!(
            s.text(),
            ["line 996", "line 997", "line 998", "line 999", ""]
        );
    }

    #[test]
    fn reset_fits_the_capacity_and_invalidate_redraws_all() {
        let mut g = Box::new(TextGrid::<100>::new());
        g.reset(30, 10, false);
        assert_eq!((g.cols(), g.rows()), (30, 3));
        let mut n = 0;
        g.flush(|_, _, b| {
            assert_eq!(b, b' ');
            n += 1;
        });
        assert_eq!(n, 90);
        g.invalidate();
        assert_eq!(g.flush(|_, _, _| {}), 90);
        g.reset(200, 10, true);
        assert_eq!((g.cols(), g.rows()), (100, 1));
        let mut empty = Box::new(TextGrid::<100>::new());
        empty.reset(0, 10, true);
        empty.write(b"nothing to see\n");
        assert_eq!(empty.flush(|_, _, _| {}), 0);
    }
}

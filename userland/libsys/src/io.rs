//! Formatting without allocation: [`StackBuf`] (a fixed buffer that cuts what does not fit) and
//! [`LineWriter`] (a buffer that hands full chunks to a sink, turning `\n` into `\r\n`), and the
//! console and log back ends of [`print!`](crate::print) and [`log!`](crate::log).

use core::fmt;

/// Longest kernel-log line [`log!`](crate::log) writes, in bytes.
pub const LOG_LINE_LEN: usize = 256;

/// Bytes [`Console`] gathers before a `CONSOLE_WRITE`.
pub const CONSOLE_BUF_LEN: usize = 256;

/// A fixed-size text buffer implementing [`fmt::Write`]. Text that does not fit is dropped (at a
/// character boundary) and [`StackBuf::truncated`] says so; writing never fails, so a long
/// message still yields its beginning.
pub struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> StackBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters of `&str`s are ever copied in (see `write_str`).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// True when some text did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The text, ending in `...` when some did not fit (the marker replaces the last characters).
    pub fn as_str_marked(&mut self) -> &str {
        if self.truncated && N >= 3 {
            let mut end = self.len.min(N - 3);
            while !self.as_str().is_char_boundary(end) {
                end -= 1;
            }
            self.buf[end..end + 3].copy_from_slice(b"...");
            self.len = end + 3;
        }
        self.as_str()
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

/// A [`fmt::Write`] that gathers bytes and hands them to `sink` in chunks of up to `N` bytes, when
/// the buffer is full and on [`LineWriter::flush`] (also called on drop). Every `\n` is written as
/// `\r\n`, as a serial terminal wants. The sink's errors are remembered, not returned, so one
/// failed write does not cut a formatted line short: [`LineWriter::flush`] reports them.
pub struct LineWriter<F: FnMut(&[u8]) -> bool, const N: usize> {
    buf: [u8; N],
    len: usize,
    sink: F,
    failed: bool,
}

impl<F: FnMut(&[u8]) -> bool, const N: usize> LineWriter<F, N> {
    /// A writer into `sink`, which returns false when it could not take the bytes.
    pub const fn new(sink: F) -> Self {
        Self {
            buf: [0; N],
            len: 0,
            sink,
            failed: false,
        }
    }

    fn push(&mut self, b: u8) {
        if self.len == N {
            self.drain();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn drain(&mut self) {
        if self.len > 0 && !(self.sink)(&self.buf[..self.len]) {
            self.failed = true;
        }
        self.len = 0;
    }

    /// Hands what is buffered to the sink; false when any write since the last flush failed.
    pub fn flush(&mut self) -> bool {
        self.drain();
        !core::mem::replace(&mut self.failed, false)
    }
}

impl<F: FnMut(&[u8]) -> bool, const N: usize> fmt::Write for LineWriter<F, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                self.push(b'\r');
            }
            self.push(b);
        }
        Ok(())
    }
}

impl<F: FnMut(&[u8]) -> bool, const N: usize> Drop for LineWriter<F, N> {
    fn drop(&mut self) {
        self.drain();
    }
}

/// The console as a buffered [`fmt::Write`]: `\n` becomes `\r\n`; call `flush` before waiting
/// for input (dropping it flushes too).
#[cfg(target_arch = "x86_64")]
pub type Console = LineWriter<fn(&[u8]) -> bool, CONSOLE_BUF_LEN>;

/// A fresh [`Console`] writer.
#[cfg(target_arch = "x86_64")]
pub fn console() -> Console {
    LineWriter::new(|bytes| crate::console_write_all(bytes).is_ok())
}

#[doc(hidden)]
#[cfg(target_arch = "x86_64")]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut con = console();
    let _ = fmt::Write::write_fmt(&mut con, args);
    con.flush();
}

#[doc(hidden)]
#[cfg(target_arch = "x86_64")]
pub fn _log(args: fmt::Arguments<'_>) {
    let mut line = StackBuf::<LOG_LINE_LEN>::new();
    let _ = fmt::Write::write_fmt(&mut line, args);
    let _ = crate::log(line.as_str_marked());
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::fmt::Write;
    use std::vec::Vec;

    #[test]
    fn stack_buf_keeps_what_fits() {
        let mut b = StackBuf::<8>::new();
        write!(b, "ab{}", 12).unwrap();
        assert_eq!(b.as_str(), "ab12");
        assert!(!b.truncated());
        write!(b, "3456789").unwrap();
        assert_eq!(b.as_str(), "ab123456");
        assert!(b.truncated());
        assert_eq!(b.as_str_marked(), "ab123...");
        b.clear();
        assert_eq!(b.as_str(), "");
    }

    #[test]
    fn stack_buf_cuts_at_char_boundaries() {
        let mut b = StackBuf::<5>::new();
        write!(b, "aé€").unwrap(); // 1 + 2 + 3 bytes
        assert_eq!(b.as_str(), "aé");
        assert!(b.truncated());
        let mut b = StackBuf::<7>::new();
        write!(b, "aaa€€").unwrap(); // "aaa€" = 6 bytes fits, marker must not split '€'
        assert_eq!(b.as_str_marked(), "aaa...");
    }

    #[test]
    fn line_writer_translates_newlines_and_chunks() {
        let mut out = Vec::new();
        {
            let mut w = LineWriter::<_, 4>::new(|b: &[u8]| {
                out.push(b.to_vec());
                true
            });
            write!(w, "ab\ncd\n").unwrap();
            assert!(w.flush());
        }
        let all: Vec<u8> = out.concat();
        assert_eq!(all, b"ab\r\ncd\r\n");
        assert!(out.iter().all(|c| c.len() <= 4));
    }

    #[test]
    fn line_writer_reports_sink_failures_once() {
        let mut w = LineWriter::<_, 4>::new(|_: &[u8]| false);
        write!(w, "hello").unwrap();
        assert!(!w.flush());
        assert!(w.flush());
    }
}

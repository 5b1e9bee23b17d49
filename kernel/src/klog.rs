//! The kernel log: `log` records formatted as `[cpuN] LEVEL message` on the serial console.

use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};
use klib::cmdline::LogLevel;
use log::{Level, LevelFilter, Metadata, Record};

struct KernelLog;

static LOGGER: KernelLog = KernelLog;
static LEVEL: AtomicUsize = AtomicUsize::new(LevelFilter::Info as usize);

pub fn init() {
    // A second call fails harmlessly; the kernel calls this once.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Trace);
}

pub fn set_level(level: LogLevel) {
    let filter = match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    };
    LEVEL.store(filter as usize, Ordering::Relaxed);
}

/// A fixed buffer so a line is formatted first and written to the console in one piece.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl log::Log for KernelLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() as usize <= LEVEL.load(Ordering::Relaxed)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Line {
            buf: [0; 512],
            len: 0,
        };
        let cpu = crate::percpu::try_current_index().unwrap_or(0);
        let _ = match record.level() {
            Level::Info => write!(line, "[cpu{cpu}] {}", record.args()),
            l => write!(line, "[cpu{cpu}] {l}: {}", record.args()),
        };
        if line.len == line.buf.len() {
            line.len -= 4;
            let _ = line.write_str("...");
        }
        let _ = line.write_str("\n");
        // The buffer holds only whole UTF-8 strings, except where a line was cut mid-character.
        let text = match core::str::from_utf8(&line.buf[..line.len]) {
            Ok(t) => t,
            Err(e) => core::str::from_utf8(&line.buf[..e.valid_up_to()]).unwrap_or(""),
        };
        crate::serial::write_str(text);
    }

    fn flush(&self) {}
}

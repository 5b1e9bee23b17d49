//! QEMU's machine protocol (QMP) over a unix socket: just enough to take a screendump.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Asks the QEMU listening for QMP on `socket` (`-qmp unix:SOCKET,server=on,wait=off`) to write
/// what its display shows to `file` as a PPM image, and waits until it has. `limit` bounds the
/// whole exchange, connecting included (QEMU creates the socket as it starts).
pub fn screendump(socket: &Path, file: &Path, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("cannot reach QMP at {}: {e}", socket.display()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let io = |e: std::io::Error| format!("QMP at {}: {e}", socket.display());
    stream
        .set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    let mut reader = BufReader::new(stream);
    // The greeting, then capabilities negotiation, then the command.
    reply(&mut reader, "greeting").map_err(|e| format!("QMP: {e}"))?;
    writer
        .write_all(b"{\"execute\": \"qmp_capabilities\"}\n")
        .map_err(io)?;
    reply(&mut reader, "qmp_capabilities")?;
    let name = file.to_str().ok_or("screendump path is not UTF-8")?;
    let escaped: String = name
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    writeln!(
        writer,
        "{{\"execute\": \"screendump\", \"arguments\": {{\"filename\": \"{escaped}\"}}}}"
    )
    .map_err(io)?;
    reply(&mut reader, "screendump")?;
    match std::fs::metadata(file) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!("QEMU wrote no screendump at {}", file.display())),
    }
}

/// Reads QMP lines up to the answer to the last command (or the greeting), skipping events.
fn reply(reader: &mut impl BufRead, what: &str) -> Result<String, String> {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("QEMU closed QMP before answering {what}")),
            Ok(_) => {}
            Err(e) => return Err(format!("no QMP answer to {what}: {e}")),
        }
        if line.contains("\"event\"") {
            continue;
        }
        if line.contains("\"error\"") {
            return Err(format!("QMP {what} failed: {}", line.trim()));
        }
        if line.contains("\"return\"") || line.contains("\"QMP\"") {
            return Ok(line);
        }
    }
}

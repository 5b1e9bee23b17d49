//! iperf3's text output: transfer sizes in binary units (`KBytes`, `MBytes`, ... of 1024),
//! bit rates in decimal ones (`Mbits/sec` of 10^6), and the interval and summary lines
//! (`[  5]   0.00-1.00   sec  1.10 GBytes  9.42 Gbits/sec`) laid out as its `report_bw_format`.

use alloc::format;
use alloc::string::String;

/// The separator before the summary.
pub const SEPARATOR: &str = "- - - - - - - - - - - - - - - - - - - - - - - - -";
/// The column header.
pub const HEADER: &str = "[ ID] Interval           Transfer     Bitrate";

/// `value` with an adaptive unit in four significant places, as iperf3's `unit_snprintf` with
/// format `A` (bytes, steps of 1024) or `a` (bits, steps of 1000): `"1.10 GByte"`,
/// `" 942 Mbit"`. The caller adds the plural `s`.
pub fn unit(value: f64, bits: bool) -> String {
    const BYTE_LABELS: [&str; 5] = ["Byte", "KByte", "MByte", "GByte", "TByte"];
    const BIT_LABELS: [&str; 5] = ["bit", "Kbit", "Mbit", "Gbit", "Tbit"];
    let (mut v, step, labels) = if bits {
        (value * 8.0, 1000.0, BIT_LABELS)
    } else {
        (value, 1024.0, BYTE_LABELS)
    };
    let mut i = 0;
    while v >= step && i < labels.len() - 1 {
        v /= step;
        i += 1;
    }
    let label = labels[i];
    if v < 9.995 {
        format!("{v:4.2} {label}")
    } else if v < 99.95 {
        format!("{v:4.1} {label}")
    } else {
        format!("{v:4.0} {label}")
    }
}

/// One line: `[  5]   0.00-1.00   sec  1.10 GBytes  9.42 Gbits/sec`, then `tag` (`sender`,
/// `receiver` or nothing) in iperf3's column. `id` is the label in brackets (`  5` or `SUM`).
pub fn line(id: &str, start_s: f64, end_s: f64, bytes: u64, tag: &str) -> String {
    let secs = end_s - start_s;
    let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
    let l = format!(
        "[{id:>3}] {start_s:6.2}-{end_s:<6.2} sec  {}s  {}s/sec                  {tag}",
        unit(bytes as f64, false),
        unit(rate, true),
    );
    String::from(l.trim_end())
}

/// The bracketed label of a stream: its number right-aligned in three columns.
pub fn label(n: u32) -> String {
    format!("{n:>3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_match_iperf3() {
        assert_eq!(unit(0.0, false), "0.00 Byte");
        assert_eq!(unit(1023.0, false), "1023 Byte");
        assert_eq!(unit(1024.0, false), "1.00 KByte");
        assert_eq!(unit(1.5 * 1024.0 * 1024.0, false), "1.50 MByte");
        assert_eq!(unit(45.25 * 1024.0 * 1024.0, false), "45.2 MByte");
        assert_eq!(unit(1.1 * 1024.0 * 1024.0 * 1024.0, false), "1.10 GByte");
        // 942 Mbit/s is 117.75e6 bytes/s.
        assert_eq!(unit(117.75e6, true), " 942 Mbit");
        assert_eq!(unit(1.25e9 / 8.0 * 30.0, true), "37.5 Gbit");
        assert_eq!(unit(1e30, false).split(' ').nth(1), Some("TByte"));
    }

    #[test]
    fn lines_match_iperf3_layout() {
        let l = line(&label(5), 0.0, 1.0, 1_181_116_006, "sender");
        assert_eq!(
            l,
            "[  5]   0.00-1.00   sec  1.10 GBytes  9.45 Gbits/sec                  sender"
        );
        let l = line("SUM", 1.0, 2.0, 10 * 1024 * 1024, "");
        assert_eq!(l, "[SUM]   1.00-2.00   sec  10.0 MBytes  83.9 Mbits/sec");
        // No duration: no division by zero.
        assert!(line(&label(5), 1.0, 1.0, 5, "").contains("0.00 bits/sec"));
    }
}

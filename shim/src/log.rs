//! logrus-style text logging (`time="…" level=info msg="…" k=v`), the format
//! containerd's own shims write, to stderr. In the daemon stderr is the
//! bundle's `log` FIFO opened non-blocking, so a reader that stops reading
//! (containerd restarting) costs dropped lines, never a hung shim.
//!
//! Runs in every process of the shim binary except container-side code, which
//! never logs.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `log` facade backend.
struct LogrusLogger {
    level: log::LevelFilter,
    /// Fields appended to every line, already formatted (` runtime=…`).
    fields: String,
}

impl log::Log for LogrusLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            SystemTime::now(),
            record.level(),
            &record.args().to_string(),
            &self.fields,
        );
        // One write per line: atomic on a pipe for lines under PIPE_BUF.
        // EAGAIN (full FIFO) and EPIPE (no reader) drop the line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger: debug level with `-debug`, info otherwise.
pub fn init(debug: bool, fields: &[(&str, &str)]) {
    let mut formatted = String::new();
    for (k, v) in fields {
        formatted.push(' ');
        formatted.push_str(k);
        formatted.push('=');
        formatted.push_str(&quote_if_needed(v));
    }
    let level = if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    let logger: &'static LogrusLogger = Box::leak(Box::new(LogrusLogger {
        level,
        fields: formatted,
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// One logrus text line, newline included.
pub fn format_line(now: SystemTime, level: log::Level, msg: &str, fields: &str) -> String {
    format!(
        "time={} level={} msg={}{}\n",
        quote(&rfc3339_nano(now)),
        level_name(level),
        quote(msg),
        fields
    )
}

/// logrus quotes a value unless it is made only of `[A-Za-z0-9-._/@^+]`.
fn quote_if_needed(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain {
        v.to_string()
    } else {
        quote(v)
    }
}

/// Go `strconv.Quote` for the characters that matter in a log line.
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// UTC time as Go's `time.RFC3339Nano` prints it (trailing zeros trimmed).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2024-02-29T23:59:59.12Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn logrus_line() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let line = format_line(
            t,
            log::Level::Warn,
            "exec \"sh\" failed\n",
            " runtime=io.containerd.wren.v2",
        );
        assert_eq!(
            line,
            "time=\"2023-11-14T22:13:20.000000005Z\" level=warning msg=\"exec \\\"sh\\\" failed\\n\" runtime=io.containerd.wren.v2\n"
        );
        assert_eq!(
            quote_if_needed("io.containerd.wren.v2"),
            "io.containerd.wren.v2"
        );
        assert_eq!(quote_if_needed("a b"), "\"a b\"");
        assert_eq!(quote_if_needed(""), "\"\"");
    }
}

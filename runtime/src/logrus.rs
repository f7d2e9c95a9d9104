//! logrus-style text logging (`time="…" level=info msg="…" k=v`), the format
//! containerd's own shims and runc write, to stderr: the `log` backend of the
//! shim and of wrend. In the shim daemon stderr is the bundle's `log` FIFO
//! opened non-blocking, so a reader that stops reading (containerd
//! restarting) costs dropped lines, never a hung shim.
//!
//! Runs in the caller's processes; container-side code never logs.

use std::io::Write;
use std::time::SystemTime;

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
        quote(&crate::timefmt::rfc3339_nano(now)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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

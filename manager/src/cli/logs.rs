//! `wren logs`: the tail of a container's log and, with `-f`, what follows
//! until the container stops, read straight from the rotated log files
//! wrend writes ([`crate::logfile`]); wrend is only asked where they are
//! and whether the container still runs. `-t`, `--since` and `--until` use
//! the times recorded beside the log, line by line (following too).
//!
//! Runs in `wren`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::args::Logs;
use super::client::Wrend;
use super::{CliError, Global};
use crate::logfile::{self, Follower};

/// `wren logs`.
pub fn logs(g: &Global, a: &Logs) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let c = w.inspect(&a.name)?;
    let path = PathBuf::from(&c.log_path);
    let tail = a.tail.unwrap_or(usize::MAX);
    if a.timestamps || a.since.is_some() || a.until.is_some() {
        return stamped(&mut w, a, &path, tail);
    }
    // Open the current file first and follow from where the tail ended, so
    // nothing written in between is skipped.
    let mut current = File::open(&path).ok();
    let data = logfile::tail_from(&path, logfile::READ_KEEP, tail, current.as_mut())
        .map_err(|e| CliError::failed(format!("read {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&data);
    let _ = out.flush();
    if !a.follow {
        return Ok(0);
    }
    let mut follower = Follower::new(&path, current);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        follower.pump(&mut out);
        let c = w.inspect(&a.name)?;
        if !matches!(
            c.status.as_str(),
            "running" | "created" | "paused" | "restarting"
        ) {
            follower.pump(&mut out);
            return Ok(0);
        }
    }
}

/// `wren logs` with `-t`, `--since` or `--until`: line by line, with the
/// time each was written.
fn stamped(w: &mut Wrend, a: &Logs, path: &Path, tail: usize) -> Result<i32, CliError> {
    let window = Window::parse(a.since.as_deref(), a.until.as_deref())?;
    let until = window.until;
    let keep = |t: i64| window.contains(t);
    let mut current = File::open(path).ok();
    let mut lines = logfile::read_stamped(path, logfile::READ_KEEP, current.as_mut())
        .map_err(|e| CliError::failed(format!("read {}: {e}", path.display())))?;
    // Following: an unfinished last line is printed once it is whole.
    let mut resume = None;
    if a.follow {
        if let Some(f) = current.as_mut() {
            let end = f.stream_position().unwrap_or(0);
            let partial = match lines.last() {
                Some((_, l)) if !l.ends_with(b"\n") => l.len() as u64,
                _ => 0,
            };
            if partial > 0 {
                lines.pop();
            }
            resume = Some(end - partial);
        }
    }
    let chosen: Vec<&(i64, Vec<u8>)> = lines.iter().filter(|(t, _)| keep(*t)).collect();
    let mut out = std::io::stdout().lock();
    for (t, l) in &chosen[chosen.len().saturating_sub(tail)..] {
        emit(&mut out, a.timestamps, *t, l);
    }
    let _ = out.flush();
    if !a.follow {
        return Ok(0);
    }
    let mut follower = StampedFollower::new(path, current, resume.unwrap_or(0));
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let done = if until.is_some_and(|u| now_nanos() >= u) {
            true
        } else {
            let c = w.inspect(&a.name)?;
            !matches!(
                c.status.as_str(),
                "running" | "created" | "paused" | "restarting"
            )
        };
        follower.pump(done, |t, l| {
            if keep(t) {
                emit(&mut out, a.timestamps, t, l);
            }
        });
        let _ = out.flush();
        if done {
            return Ok(0);
        }
    }
}

fn emit(out: &mut impl Write, timestamps: bool, t: i64, line: &[u8]) {
    if timestamps {
        let at = UNIX_EPOCH + Duration::from_nanos(t.max(0) as u64);
        let _ = write!(out, "{} ", wren_runtime::timefmt::rfc3339_nano(at));
    }
    let _ = out.write_all(line);
    if !line.ends_with(b"\n") {
        let _ = out.write_all(b"\n");
    }
}

pub(super) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Follows a log file and its `.times` records line by line, across
/// rotations: each whole line is handed over with the time of the write its
/// first byte came in.
struct StampedFollower {
    path: PathBuf,
    file: Option<File>,
    /// The file's offset of `partial`'s first byte.
    at: u64,
    partial: Vec<u8>,
    records: Vec<(u64, i64)>,
}

impl StampedFollower {
    /// Goes on from `offset` in `file` (the log at `path`).
    fn new(path: &Path, mut file: Option<File>, offset: u64) -> Self {
        if let Some(f) = file.as_mut() {
            let _ = f.seek(SeekFrom::Start(offset));
        }
        Self {
            path: path.to_owned(),
            file,
            at: offset,
            partial: Vec::new(),
            records: Vec::new(),
        }
    }

    /// The time of the write that put `offset` in the file (the records
    /// are read again when `offset` is past the last one known; a write's
    /// record goes down before its bytes).
    fn time_of(&mut self, offset: u64) -> i64 {
        if self.records.last().is_none_or(|(o, _)| *o < offset) {
            self.records = logfile::read_times(&logfile::times_path(&self.path));
        }
        self.records
            .iter()
            .rev()
            .find(|(o, _)| *o <= offset)
            .map_or_else(now_nanos, |&(_, t)| t)
    }

    /// Hands every new whole line to `emit`; with `finish`, a last
    /// unfinished line too.
    fn pump(&mut self, finish: bool, mut emit: impl FnMut(i64, &[u8])) {
        loop {
            if let Some(f) = self.file.as_mut() {
                let _ = f.read_to_end(&mut self.partial);
            }
            while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
                let t = self.time_of(self.at);
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                emit(t, &line);
                self.at += line.len() as u64;
            }
            if logfile::replaced(&self.path, self.file.as_ref()) {
                // Rotated: the old file is complete; go on in the new one.
                if !self.partial.is_empty() {
                    let t = self.time_of(self.at);
                    emit(t, &std::mem::take(&mut self.partial));
                }
                self.file = File::open(&self.path).ok();
                self.at = 0;
                self.records.clear();
                continue;
            }
            break;
        }
        if finish && !self.partial.is_empty() {
            let t = self.time_of(self.at);
            emit(t, &std::mem::take(&mut self.partial));
        }
    }
}

/// The `--since`/`--until` of `logs` and `events`, as nanoseconds since
/// the epoch.
pub(super) struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Window, CliError> {
        let now = now_nanos();
        Ok(Window {
            since: since.map(|s| parse_time("--since", s, now)).transpose()?,
            until: until.map(|s| parse_time("--until", s, now)).transpose()?,
        })
    }

    /// Whether time `t` is at or after `since` and before `until`.
    pub fn contains(&self, t: i64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// A `--since`/`--until` TIME as nanoseconds since the epoch: a duration
/// before `now` (`10m`), Unix seconds (`1700000000[.5]`), or an RFC 3339
/// date or time (`2026-12-06`, `2026-12-06T21:35[:13[.5]][Z|+01:00]`,
/// UTC when it names no zone).
fn parse_time(flag: &str, s: &str, now: i64) -> Result<i64, CliError> {
    let bad = || {
        CliError::usage(format!(
            "{flag} {s:?}: want a duration (10m, 1h30m), an RFC 3339 time (2026-12-06T21:35:00Z) or Unix seconds"
        ))
    };
    if let Ok(secs) = s.parse::<f64>() {
        if s.contains('.') || s.len() >= 9 {
            if !secs.is_finite() || secs < 0.0 {
                return Err(bad());
            }
            return Ok((secs * 1e9) as i64);
        }
    }
    if s.bytes().next().is_some_and(|b| b.is_ascii_digit()) && s.contains('-') {
        return rfc3339(s).ok_or_else(bad);
    }
    let ms = super::health::parse_duration(flag, s).map_err(|_| bad())?;
    Ok(now - (ms as i64) * 1_000_000)
}

/// `YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|±HH:MM]` as nanoseconds since the epoch.
fn rfc3339(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let (date, rest) = match s.split_once(['T', 't', ' ']) {
        Some((d, r)) => (d, r),
        None => (s, ""),
    };
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // The zone: Z, or a final ±HH:MM.
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (c, z) = rest.split_at(rest.len() - 6);
        let (h, mi) = z[1..].split_once(':')?;
        let off = (num(h)? * 60 + num(mi)?) * 60;
        (c, if z.starts_with('-') { -off } else { off })
    } else {
        (rest, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, f),
        None => (clock, ""),
    };
    let mut parts = if hms.is_empty() {
        Vec::new()
    } else {
        hms.split(':').map(num).collect::<Option<Vec<_>>>()?
    };
    if parts.len() == 1 || parts.len() > 3 || (!frac.is_empty() && parts.len() != 3) {
        return None;
    }
    parts.resize(3, 0);
    let (h, mi, sec) = (parts[0], parts[1], parts[2]);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        num(&digits)?
    };
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_docker_takes_them() {
        let now = 1_800_000_000_000_000_000;
        let p = |s: &str| parse_time("--since", s, now).unwrap();
        assert_eq!(p("10m"), now - 600 * 1_000_000_000);
        assert_eq!(p("1h30m"), now - 5400 * 1_000_000_000);
        assert_eq!(p("1700000000"), 1_700_000_000_000_000_000);
        assert_eq!(p("1700000000.5"), 1_700_000_000_500_000_000);
        assert_eq!(p("1970-01-02"), 86_400_000_000_000);
        assert_eq!(p("2026-12-06T21:35:13Z"), 1_796_592_913_000_000_000);
        assert_eq!(p("2026-12-06T21:35:13.25Z"), 1_796_592_913_250_000_000);
        assert_eq!(p("2026-12-06T22:35:13+01:00"), 1_796_592_913_000_000_000);
        assert_eq!(p("2026-12-06T21:35"), 1_796_592_900_000_000_000);
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-12-06T25:00",
            "-5m",
            "2026-12-06T21",
            "",
        ] {
            assert!(parse_time("--since", bad, now).is_err(), "{bad}");
        }
    }
}

//! Opt-in timing of container starts, for the "where the time goes"
//! breakdown of `make bench`.
//!
//! Off unless the environment variable `WREN_TIMING` names a file. Then every
//! wren process taking part in a start (the shim's `start` and daemon,
//! `wren-oci`) appends one JSON line per event to that file:
//!
//! ```text
//! {"t":<CLOCK_MONOTONIC ns>,"pid":<pid>,"id":"<container>","ev":"<event>"}
//! ```
//!
//! The container init has no environment of its own: when timing is on, its
//! caller passes the open file along with the init configuration, the init
//! keeps its marks in memory and writes them in one `write` just before
//! `execve` (the fd is close-on-exec, so the container never sees it). Every
//! process uses CLOCK_MONOTONIC, so events of different processes line up
//! (except inside a container with a time namespace that shifts it).
//!
//! Runs in any wren process. When off, a mark costs one load of a
//! `OnceLock` (callers) or one relaxed atomic load (the init).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the file to append events to.
pub const ENV: &str = "WREN_TIMING";

/// CLOCK_MONOTONIC in nanoseconds (Python's `time.monotonic_ns()`).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sink() -> Option<&'static File> {
    static SINK: OnceLock<Option<File>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
        // std opens with O_CLOEXEC: no child inherits the file by accident.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .ok()
    })
    .as_ref()
}

/// Is timing on in this process?
pub fn enabled() -> bool {
    sink().is_some()
}

/// The timing file, to pass to a container init (None when off).
pub fn sink_fd() -> Option<BorrowedFd<'static>> {
    sink().map(|f| f.as_fd())
}

fn line(t: u64, id: &str, ev: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"t\":{t},\"pid\":{},\"id\":{id},\"ev\":\"{ev}\"}}\n",
        std::process::id()
    )
}

/// Record that `ev` happened now for container `id` (no-op when off).
pub fn mark(id: &str, ev: &str) {
    if let Some(mut f) = sink() {
        // One write of one short line to an O_APPEND file: lines of
        // concurrent processes do not interleave.
        let _ = f.write_all(line(now_ns(), id, ev).as_bytes());
    }
}

/// Marks kept by the container init until just before `execve`.
struct InitMarks {
    file: File,
    id: String,
    marks: Vec<(&'static str, u64)>,
}

static INIT_ON: AtomicBool = AtomicBool::new(false);
static INIT_MARKS: Mutex<Option<InitMarks>> = Mutex::new(None);

/// In the init: start recording into `fd` (the file its caller passed), with
/// a first mark `init.stage1` at `t0`. Does nothing without an fd.
pub fn init_begin(fd: Option<OwnedFd>, id: &str, t0: u64) {
    let Some(fd) = fd else {
        return;
    };
    let mut marks = Vec::with_capacity(16);
    marks.push(("init.stage1", t0));
    *INIT_MARKS.lock().unwrap_or_else(|e| e.into_inner()) = Some(InitMarks {
        file: File::from(fd),
        id: id.to_string(),
        marks,
    });
    INIT_ON.store(true, Ordering::Relaxed);
}

/// In the init: record `ev` now (no-op when off).
pub fn init_mark(ev: &'static str) {
    if !INIT_ON.load(Ordering::Relaxed) {
        return;
    }
    let t = now_ns();
    if let Some(m) = INIT_MARKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        m.marks.push((ev, t));
    }
}

/// In the init, just before `execve`: write every mark, and a last one,
/// `init.execve`, in a single write.
pub fn init_flush() {
    if !INIT_ON.load(Ordering::Relaxed) {
        return;
    }
    let t = now_ns();
    let Some(mut m) = INIT_MARKS.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    m.marks.push(("init.execve", t));
    let text: String = m.marks.iter().map(|(ev, t)| line(*t, &m.id, ev)).collect();
    let _ = m.file.write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_escaped_ids() {
        let l = line(42, "a\"b", "init.mounts");
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["t"], 42);
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["ev"], "init.mounts");
        assert_eq!(v["pid"], std::process::id());
        assert!(l.ends_with('\n'));
    }

    #[test]
    fn init_marks_are_written_in_order_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let f = File::create(&path).unwrap();
        let t0 = now_ns();
        init_begin(Some(OwnedFd::from(f)), "c1", t0);
        init_mark("init.mounts");
        init_mark("init.pivot");
        init_flush();
        // A second flush writes nothing more.
        init_flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let evs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names: Vec<&str> = evs.iter().map(|v| v["ev"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["init.stage1", "init.mounts", "init.pivot", "init.execve"]
        );
        assert_eq!(evs[0]["t"], t0);
        let ts: Vec<u64> = evs.iter().map(|v| v["t"].as_u64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
        assert!(evs.iter().all(|v| v["id"] == "c1"));
    }
}

//! v2 freezer: write cgroup.freeze, then wait for `frozen` in cgroup.events
//! (poll(2) wakes on every change of that file; a short timeout re-checks
//! anyway).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

use crate::cgroups::{fs, CgroupError, FreezerState};

const TIMEOUT: Duration = Duration::from_secs(5);

fn events_frozen(f: &mut File, dir: &Path) -> Result<bool, CgroupError> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_string(&mut s))
        .map_err(|source| CgroupError::Read {
            path: dir.join("cgroup.events"),
            source,
        })?;
    Ok(fs::flat_keyed(&s).get("frozen").copied().unwrap_or(0) == 1)
}

fn set(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let events = dir.join("cgroup.events");
    let mut f = File::open(&events).map_err(|source| CgroupError::Open {
        path: events.clone(),
        source,
    })?;
    fs::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let start = Instant::now();
    loop {
        if events_frozen(&mut f, dir)? == frozen {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            if frozen {
                let _ = fs::write(dir, "cgroup.freeze", "0");
            }
            return Err(CgroupError::FreezeTimeout {
                op: if frozen { "freeze" } else { "thaw" },
                path: dir.to_owned(),
                state: if frozen { "freezing" } else { "frozen" }.into(),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
        let _ = poll(&mut fds, 10u8);
    }
}

pub(crate) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    set(dir, true)
}

pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    set(dir, false)
}

pub(crate) fn state(dir: &Path) -> Result<FreezerState, CgroupError> {
    let want = fs::read(dir, "cgroup.freeze")?.trim() == "1";
    let events = fs::flat_keyed(&fs::read(dir, "cgroup.events")?);
    let frozen = events.get("frozen").copied().unwrap_or(0) == 1;
    Ok(match (want, frozen) {
        (false, _) => FreezerState::Thawed,
        (true, false) => FreezerState::Freezing,
        (true, true) => FreezerState::Frozen,
    })
}

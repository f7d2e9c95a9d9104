//! v1 `freezer`: freezer.state THAWED / FREEZING / FROZEN.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cgroups::{fs, CgroupError, FreezerState};

const STATE: &str = "freezer.state";
/// How long a freeze may take before it is abandoned (and the cgroup thawed).
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn state(dir: &Path) -> Result<FreezerState, CgroupError> {
    let s = fs::read(dir, STATE)?;
    match s.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        other => Err(CgroupError::Parse {
            path: dir.join(STATE),
            content: other.to_owned(),
        }),
    }
}

/// Writes FROZEN and waits until the kernel reports FROZEN. A freeze that
/// stays in FREEZING (a task stuck in an uninterruptible sleep) is retried by
/// writing FROZEN again; after the timeout the cgroup is thawed and an error
/// returned, so a half-frozen container is never left behind.
pub(crate) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut round = 0u32;
    let mut next_write = 0u32;
    loop {
        if round == next_write {
            fs::write(dir, STATE, "FROZEN")?;
            next_write += 50;
        }
        if state(dir)? == FreezerState::Frozen {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            let _ = fs::write(dir, STATE, "THAWED");
            return Err(CgroupError::FreezeTimeout {
                op: "freeze",
                path: dir.to_owned(),
                state: "FREEZING".into(),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(if round < 10 { 1 } else { 10 }));
    }
}

pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        fs::write(dir, STATE, "THAWED")?;
        if state(dir)? == FreezerState::Thawed {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            return Err(CgroupError::FreezeTimeout {
                op: "thaw",
                path: dir.to_owned(),
                state: "FROZEN".into(),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

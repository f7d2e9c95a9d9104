//! Health checks: a container's check (`--health-cmd` and friends, or its
//! image's HEALTHCHECK) run as an exec through its shim, on wrend's own
//! timers. Between checks nothing runs: no thread, no process, only a
//! deadline in the loop ([`Registry::health_deadline`]). A check's output
//! goes to `health.out` in the container's state directory (the shim's
//! `file://` stdio); its exit arrives as any exec's does.
//!
//! Status follows Docker: `starting` until the first success (failures in
//! the start period do not count), `healthy` after any success,
//! `unhealthy` after `retries` consecutive failures; a check that overruns
//! its timeout is killed and fails. The last five results are kept. On
//! becoming unhealthy, `--health-on-failure` acts as in Podman: `none`,
//! `kill` (SIGKILL; the restart policy then applies), `stop` (as `wren
//! stop`: no restart follows), `restart` (killed and started again
//! whatever the policy).
//!
//! Runs in wrend's loop thread.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wren_protocol::manager as api;

use super::error::ManagerError;
use super::event_log::now_nanos;
use super::registry::{Registry, State};

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// Results kept.
const LOG_LEN: usize = 5;
/// Output kept per result.
const OUTPUT_MAX: usize = 4096;
/// How long a killed (timed out) check may take to report its exit.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A container's check, as configured (persisted in its record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD", args...]` or `["CMD-SHELL", "command"]`.
    pub test: Vec<String>,
    #[serde(default)]
    pub interval_ms: u64,
    #[serde(default)]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub start_period_ms: u64,
    #[serde(default)]
    pub on_failure: String,
}

/// One check's result (persisted, shown by inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: i64,
    pub end: i64,
    pub exit_code: i32,
    pub output: String,
}

/// The health a container has now (persisted in its record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub failing_streak: u32,
    #[serde(default)]
    pub log: Vec<HealthResult>,
}

impl HealthState {
    pub fn is_empty(&self) -> bool {
        self.status.is_empty() && self.log.is_empty()
    }
}

/// The loop's side of a container's checks (not persisted).
#[derive(Debug, Default)]
pub struct HealthTimers {
    /// When the next check starts (None: none scheduled).
    next_at: Option<Instant>,
    /// The check running now (boxed: a container without checks, or
    /// between them, pays one pointer).
    running: Option<Box<Running>>,
    /// When the container's init started (for the start period).
    started: Option<Instant>,
    seq: u64,
}

#[derive(Debug)]
struct Running {
    exec_id: String,
    deadline: Instant,
    start_ns: i64,
    timed_out: bool,
}

impl HealthConfig {
    /// The check a Create request asks for; None without one. Refuses an
    /// invalid test or action, naming the field.
    pub fn from_request(req: &api::CreateRequest) -> Result<Option<HealthConfig>, ManagerError> {
        let bad = |m: String| Err(ManagerError::InvalidArgument(m));
        match req.health_test.first().map(String::as_str) {
            None | Some("NONE") => {
                if !req.health_on_failure.is_empty() && req.health_on_failure != "none" {
                    return bad("--health-on-failure needs a health check".into());
                }
                return Ok(None);
            }
            Some("CMD") if req.health_test.len() >= 2 && !req.health_test[1].is_empty() => {}
            Some("CMD-SHELL") if req.health_test.len() == 2 && !req.health_test[1].trim().is_empty() => {}
            _ => {
                return bad(format!(
                    "health check test {:?}: want [\"CMD\", ARGS...] or [\"CMD-SHELL\", COMMAND] with a command",
                    req.health_test
                ))
            }
        }
        if !matches!(
            req.health_on_failure.as_str(),
            "" | "none" | "kill" | "restart" | "stop"
        ) {
            return bad(format!(
                "--health-on-failure {:?}: want none, kill, restart or stop",
                req.health_on_failure
            ));
        }
        Ok(Some(HealthConfig {
            test: req.health_test.clone(),
            interval_ms: req.health_interval_ms,
            timeout_ms: req.health_timeout_ms,
            retries: req.health_retries,
            start_period_ms: req.health_start_period_ms,
            on_failure: req.health_on_failure.clone(),
        }))
    }

    fn args(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1].clone()],
            _ => self.test[1..].to_vec(),
        }
    }

    fn interval(&self) -> Duration {
        ms_or(self.interval_ms, DEFAULT_INTERVAL)
    }

    fn timeout(&self) -> Duration {
        ms_or(self.timeout_ms, DEFAULT_TIMEOUT)
    }

    fn retries(&self) -> u32 {
        if self.retries == 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }
}

fn ms_or(ms: u64, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms)
    }
}

/// The next state after a result: (status, failing streak).
pub fn next_status(
    prev: &HealthState,
    ok: bool,
    in_start_period: bool,
    retries: u32,
) -> (String, u32) {
    if ok {
        return ("healthy".into(), 0);
    }
    if in_start_period && prev.status == "starting" {
        return (prev.status.clone(), prev.failing_streak);
    }
    let streak = prev.failing_streak + 1;
    let status = if streak >= retries {
        "unhealthy".to_string()
    } else if prev.status.is_empty() {
        "starting".to_string()
    } else {
        prev.status.clone()
    };
    (status, streak)
}

impl Registry {
    /// The init started: checks begin (first one after an interval).
    pub(super) fn health_started(&mut self, name: &str) {
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        let Some(cfg) = m.rec.health.clone() else {
            return;
        };
        m.rec.health_state.status = "starting".into();
        m.rec.health_state.failing_streak = 0;
        m.health.started = Some(Instant::now());
        // Exec ids unique across wrend restarts too (a check left in a
        // shim by a killed wrend keeps its id until deleted).
        m.health.seq = (now_nanos() as u64 / 1000) % 1_000_000_000;
        m.health.next_at = Some(Instant::now() + cfg.interval());
        m.health.running = None;
    }

    /// The init exited: no more checks.
    pub(super) fn health_stopped(&mut self, name: &str) {
        if let Some(m) = self.containers.get_mut(name) {
            m.health.next_at = None;
            m.health.running = None;
        }
    }

    /// The earliest health timer.
    pub(super) fn health_deadline(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|m| {
                [
                    m.health.next_at,
                    m.health.running.as_ref().map(|r| r.deadline),
                ]
            })
            .flatten()
            .min()
    }

    /// Starts due checks; kills overrunning ones.
    pub(super) fn fire_health(&mut self, now: Instant) {
        let due: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, m)| m.health.next_at.is_some_and(|t| t <= now))
            .map(|(n, _)| n.to_string())
            .collect();
        for name in due {
            self.run_check(&name);
        }
        let overdue: Vec<(String, String, bool)> = self
            .containers
            .iter()
            .filter_map(|(n, m)| {
                let r = m.health.running.as_ref()?;
                (r.deadline <= now).then(|| (n.to_string(), r.exec_id.clone(), r.timed_out))
            })
            .collect();
        for (name, exec_id, already_killed) in overdue {
            if already_killed {
                // Its exit never came: count it and go on.
                self.health_result(&name, 137, "the check timed out and did not exit".into());
                continue;
            }
            if let Err(e) = self.signal(&name, &exec_id, libc::SIGKILL as u32, false) {
                log::debug!("{name}: kill health check: {e}");
            }
            if let Some(r) = self
                .containers
                .get_mut(name.as_str())
                .and_then(|m| m.health.running.as_mut())
            {
                r.timed_out = true;
                r.deadline = now + KILL_GRACE;
            }
        }
    }

    fn run_check(&mut self, name: &str) {
        let out = self.cfg.container_state_dir(name).join("health.out");
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        m.health.next_at = None;
        let Some(cfg) = m.rec.health.clone() else {
            return;
        };
        if m.state != State::Running {
            // Paused: try again later.
            m.health.next_at = Some(Instant::now() + cfg.interval());
            return;
        }
        m.health.seq += 1;
        let exec_id = format!("health-{}", m.health.seq);
        let _ = std::fs::File::create(&out);
        let mut req = api::ExecRequest::new();
        req.name = name.to_string();
        req.exec_id = exec_id.clone();
        req.args = cfg.args();
        let uri = format!("file://{}", out.display());
        req.stdout = uri.clone();
        req.stderr = uri;
        let start_ns = now_nanos();
        match self.exec(&req) {
            Ok(_) => {
                if let Some(m) = self.containers.get_mut(name) {
                    m.health.running = Some(Box::new(Running {
                        exec_id,
                        deadline: Instant::now() + cfg.timeout(),
                        start_ns,
                        timed_out: false,
                    }));
                }
            }
            Err(e) => {
                // The check could not run at all (no such command, ...): a
                // failure whose output says why.
                let msg = wren_runtime::error::chain(&e);
                if let Some(m) = self.containers.get_mut(name) {
                    m.health.running = Some(Box::new(Running {
                        exec_id,
                        deadline: Instant::now(),
                        start_ns,
                        timed_out: false,
                    }));
                }
                self.health_result(name, 127, msg);
            }
        }
    }

    /// An exec of `name` exited: whether it was its health check (handled).
    pub(super) fn health_exec_exited(&mut self, name: &str, exec_id: &str, status: u32) -> bool {
        let ours = self
            .containers
            .get(name)
            .and_then(|m| m.health.running.as_ref())
            .is_some_and(|r| r.exec_id == exec_id);
        if !ours && !exec_id.starts_with("health-") {
            return false;
        }
        if ours {
            let out = self.cfg.container_state_dir(name).join("health.out");
            let mut text = std::fs::read(&out).unwrap_or_default();
            text.truncate(OUTPUT_MAX);
            let timed_out = self
                .containers
                .get(name)
                .and_then(|m| m.health.running.as_ref())
                .is_some_and(|r| r.timed_out);
            let mut output = String::from_utf8_lossy(&text).into_owned();
            if timed_out {
                output.push_str("(health check timed out)");
            }
            self.health_result(name, status as i32, output);
        }
        true
    }

    fn health_result(&mut self, name: &str, exit_code: i32, output: String) {
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        let Some(cfg) = m.rec.health.clone() else {
            return;
        };
        let Some(run) = m.health.running.take() else {
            return;
        };
        let ok = exit_code == 0 && !run.timed_out;
        log::debug!("{name}: health check {} exited {exit_code}", run.exec_id);
        let in_start = m
            .health
            .started
            .is_some_and(|t| t.elapsed() < Duration::from_millis(cfg.start_period_ms));
        let prev = m.rec.health_state.status.clone();
        let (status, streak) = next_status(&m.rec.health_state, ok, in_start, cfg.retries());
        let h = &mut m.rec.health_state;
        h.status = status.clone();
        h.failing_streak = streak;
        h.log.push(HealthResult {
            start: run.start_ns,
            end: now_nanos(),
            exit_code,
            output,
        });
        if h.log.len() > LOG_LEN {
            let extra = h.log.len() - LOG_LEN;
            h.log.drain(..extra);
        }
        if m.state == State::Running {
            m.health.next_at = Some(Instant::now() + cfg.interval());
        }
        self.save(name);
        if status != prev {
            self.events
                .emit("/container/health_status", name, status.clone());
        }
        if status == "unhealthy" && prev != "unhealthy" {
            self.health_action(name, &cfg.on_failure);
        }
        give_back_heap();
    }

    fn health_action(&mut self, name: &str, action: &str) {
        if matches!(action, "" | "none") {
            return;
        }
        self.events
            .emit("/container/health_action", name, action.to_string());
        let result = match action {
            "kill" => self.signal(name, "", libc::SIGKILL as u32, true),
            "restart" => self.kill_to_restart(name),
            _ => {
                // stop: as `wren stop` (no restart follows).
                let Some(m) = self.containers.get_mut(name) else {
                    return;
                };
                m.rec.stopped_by_user = true;
                m.restart_at = None;
                m.stopping = true;
                let grace = match m.rec.stop_timeout {
                    0 => super::api::lifecycle::DEFAULT_STOP_TIMEOUT,
                    s => Duration::from_secs(u64::from(s)),
                };
                m.kill_at = Some(Instant::now() + grace);
                let sig = wren_runtime::signal::parse(&m.rec.stop_signal)
                    .map_or(libc::SIGTERM as u32, |s| s as u32);
                self.save(name);
                self.signal(name, "", sig, false)
            }
        };
        if let Err(e) = result {
            log::warn!(
                "{name}: health action {action}: {}",
                wren_runtime::error::chain(&e)
            );
        }
    }
}

/// Returns free heap pages to the kernel: a check's transient allocations
/// (the exec spec, the record's JSON) must not raise wrend's resident set
/// between checks.
pub(super) fn give_back_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: &str, streak: u32) -> HealthState {
        HealthState {
            status: status.into(),
            failing_streak: streak,
            log: vec![],
        }
    }

    #[test]
    fn statuses_follow_docker() {
        assert_eq!(
            next_status(&st("starting", 0), true, true, 3),
            ("healthy".into(), 0)
        );
        // Failures in the start period do not count while starting.
        assert_eq!(
            next_status(&st("starting", 0), false, true, 1),
            ("starting".into(), 0)
        );
        assert_eq!(
            next_status(&st("starting", 0), false, false, 2),
            ("starting".into(), 1)
        );
        assert_eq!(
            next_status(&st("starting", 1), false, false, 2),
            ("unhealthy".into(), 2)
        );
        assert_eq!(
            next_status(&st("healthy", 0), false, true, 2),
            ("healthy".into(), 1)
        );
        assert_eq!(
            next_status(&st("unhealthy", 5), true, false, 2),
            ("healthy".into(), 0)
        );
    }

    #[test]
    fn requests_are_checked() {
        let mut r = api::CreateRequest::new();
        assert_eq!(HealthConfig::from_request(&r).unwrap(), None);
        r.health_on_failure = "kill".into();
        assert!(HealthConfig::from_request(&r).is_err());
        r.health_test = vec!["CMD-SHELL".into(), "true".into()];
        let c = HealthConfig::from_request(&r).unwrap().unwrap();
        assert_eq!(c.args(), ["/bin/sh", "-c", "true"]);
        assert_eq!((c.interval(), c.retries()), (DEFAULT_INTERVAL, 3));
        r.health_on_failure = "explode".into();
        assert!(HealthConfig::from_request(&r)
            .unwrap_err()
            .to_string()
            .contains("explode"));
        r.health_on_failure = String::new();
        r.health_test = vec!["CMD".into()];
        assert!(HealthConfig::from_request(&r).is_err());
        r.health_test = vec!["CMD-SHELL".into(), " ".into()];
        assert!(HealthConfig::from_request(&r).is_err());
    }
}

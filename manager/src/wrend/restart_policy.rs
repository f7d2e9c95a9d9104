//! Restart policies (`no`, `on-failure[:N]`, `always`, `unless-stopped`) and
//! the exponential backoff between restarts.
//!
//! Pure logic; runs in wrend's loop thread.

use std::fmt;
use std::time::Duration;

/// First delay before a restart.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest delay between restarts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// A container that ran this long before exiting starts over at the first delay.
pub const STABLE_PERIOD: Duration = Duration::from_secs(10);

/// When wrend restarts a container whose init exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never.
    #[default]
    No,
    /// After a non-zero exit, at most `max` times (0: no limit).
    OnFailure { max: u32 },
    /// After every exit, unless a user stopped it; and at wrend start.
    Always,
    /// Like `always`, but a container a user stopped stays stopped across
    /// wrend restarts.
    UnlessStopped,
}

/// A policy string that is none of the four.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid restart policy {0:?} (want no, on-failure[:N], always or unless-stopped)")]
pub struct PolicyError(pub String);

impl RestartPolicy {
    /// Parses `no`, `on-failure`, `on-failure:N`, `always`, `unless-stopped`
    /// (empty means `no`).
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError(s.to_string());
        Ok(match s {
            "" | "no" => Self::No,
            "always" => Self::Always,
            "unless-stopped" => Self::UnlessStopped,
            "on-failure" => Self::OnFailure { max: 0 },
            _ => {
                let n = s.strip_prefix("on-failure:").ok_or_else(bad)?;
                Self::OnFailure {
                    max: n.parse().map_err(|_| bad())?,
                }
            }
        })
    }

    /// Whether an exit with `status`, after `restarts` restarts so far,
    /// is followed by another start. A user's stop or kill always wins.
    pub fn should_restart(&self, status: u32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match *self {
            Self::No => false,
            Self::OnFailure { max } => status != 0 && (max == 0 || restarts < max),
            Self::Always | Self::UnlessStopped => true,
        }
    }

    /// Whether containers with this policy start when wrend starts by default.
    pub fn starts_at_boot(&self) -> bool {
        matches!(self, Self::Always | Self::UnlessStopped)
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::No => f.write_str("no"),
            Self::OnFailure { max: 0 } => f.write_str("on-failure"),
            Self::OnFailure { max } => write!(f, "on-failure:{max}"),
            Self::Always => f.write_str("always"),
            Self::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// The delay before the next restart: doubles after each quick failure up
/// to [`BACKOFF_CAP`], and starts over once a run lasted [`STABLE_PERIOD`].
pub fn next_backoff(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        Some(p) if ran_for < STABLE_PERIOD => (p * 2).min(BACKOFF_CAP),
        _ => BACKOFF_INITIAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "no",
            "on-failure",
            "on-failure:3",
            "always",
            "unless-stopped",
        ] {
            assert_eq!(RestartPolicy::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(RestartPolicy::parse("").unwrap(), RestartPolicy::No);
        for bad in [
            "sometimes",
            "on-failure:",
            "on-failure:-1",
            "on-failure:x",
            "always:2",
        ] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restart_decisions() {
        let of3 = RestartPolicy::OnFailure { max: 3 };
        assert!(of3.should_restart(1, 0, false));
        assert!(of3.should_restart(1, 2, false));
        assert!(!of3.should_restart(1, 3, false), "gives up after 3");
        assert!(!of3.should_restart(0, 0, false), "success is not a failure");
        assert!(RestartPolicy::OnFailure { max: 0 }.should_restart(2, 1000, false));
        assert!(RestartPolicy::Always.should_restart(0, 50, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(!RestartPolicy::UnlessStopped.should_restart(137, 0, true));
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        assert!(RestartPolicy::Always.starts_at_boot());
        assert!(!of3.starts_at_boot());
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let quick = Duration::from_millis(5);
        let b1 = next_backoff(None, quick);
        assert_eq!(b1, BACKOFF_INITIAL);
        let b2 = next_backoff(Some(b1), quick);
        assert_eq!(b2, BACKOFF_INITIAL * 2);
        let mut b = b2;
        for _ in 0..20 {
            b = next_backoff(Some(b), quick);
        }
        assert_eq!(b, BACKOFF_CAP);
        assert_eq!(next_backoff(Some(b), STABLE_PERIOD), BACKOFF_INITIAL);
    }
}

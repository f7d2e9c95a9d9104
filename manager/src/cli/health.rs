//! The health-check flags of `run` and `create` (`--health-cmd`,
//! `--health-interval`, `--health-timeout`, `--health-retries`,
//! `--health-start-period`, `--health-on-failure`, `--no-healthcheck`) and
//! the image's HEALTHCHECK they override, turned into the Create request's
//! `health_*` fields. wrend runs the checks ([`crate::wrend::health`]).
//!
//! Runs in `wren`.

use clap::Args;
use serde_json::Value;
use wren_protocol::manager as api;

use super::CliError;

#[derive(Debug, Args, Default, Clone, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Health checks")]
#[serde(default)]
pub struct HealthFlags {
    /// Command run in the container (by /bin/sh -c) to check its health
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub health_cmd: Option<String>,
    /// Time between checks (30s, 1m30s, 500ms) [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// A check running longer fails [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures that make it unhealthy [default: 3]
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Failures in this time after the start do not count [default: 0s]
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// What to do when it becomes unhealthy: none, kill, restart, stop
    #[arg(long, value_name = "ACTION")]
    pub health_on_failure: Option<String>,
    /// No health check, not even the image's
    #[arg(long)]
    pub no_healthcheck: bool,
}

/// `1h2m3s`, `500ms`, `1.5s`, or a plain number of seconds; milliseconds.
pub fn parse_duration(flag: &str, s: &str) -> Result<u64, CliError> {
    let bad = || {
        CliError::usage(format!(
            "{flag} {s:?}: want a duration like 30s, 1m30s or 500ms"
        ))
    };
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs * 1000);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as u64)
}

impl HealthFlags {
    fn given(&self) -> Option<&'static str> {
        if self.health_interval.is_some() {
            Some("--health-interval")
        } else if self.health_timeout.is_some() {
            Some("--health-timeout")
        } else if self.health_retries.is_some() {
            Some("--health-retries")
        } else if self.health_start_period.is_some() {
            Some("--health-start-period")
        } else if self.health_on_failure.is_some() {
            Some("--health-on-failure")
        } else {
            None
        }
    }

    /// Fills the request's health fields from the flags over `image`'s
    /// Healthcheck (the image config's JSON object, if any).
    pub fn apply(
        &self,
        req: &mut api::CreateRequest,
        image: Option<&Value>,
    ) -> Result<(), CliError> {
        if self.no_healthcheck {
            if self.health_cmd.is_some() {
                return Err(CliError::usage(
                    "--no-healthcheck conflicts with --health-cmd",
                ));
            }
            return Ok(());
        }
        let image_test: Vec<String> = image
            .and_then(|h| h["Test"].as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let test = match &self.health_cmd {
            Some(c) if c.trim().is_empty() => {
                return Err(CliError::usage("--health-cmd: the command is empty"))
            }
            Some(c) => vec!["CMD-SHELL".to_string(), c.clone()],
            None if !image_test.is_empty() && image_test[0] != "NONE" => image_test,
            None => {
                if let Some(flag) = self.given() {
                    return Err(CliError::usage(format!(
                        "{flag} needs a health check: give --health-cmd (the image has no HEALTHCHECK)"
                    )));
                }
                return Ok(());
            }
        };
        // The image's durations are in nanoseconds.
        let image_ms = |k: &str| {
            image
                .and_then(|h| h[k].as_u64())
                .map_or(0, |ns| ns / 1_000_000)
        };
        let dur = |flag: &str, v: &Option<String>, key: &str| match v {
            Some(s) => parse_duration(flag, s),
            None => Ok(image_ms(key)),
        };
        req.health_test = test;
        req.health_interval_ms = dur("--health-interval", &self.health_interval, "Interval")?;
        req.health_timeout_ms = dur("--health-timeout", &self.health_timeout, "Timeout")?;
        req.health_start_period_ms = dur(
            "--health-start-period",
            &self.health_start_period,
            "StartPeriod",
        )?;
        req.health_retries = self
            .health_retries
            .unwrap_or_else(|| image.and_then(|h| h["Retries"].as_u64()).unwrap_or(0) as u32);
        if let Some(a) = &self.health_on_failure {
            if !matches!(a.as_str(), "none" | "kill" | "restart" | "stop") {
                return Err(CliError::usage(format!(
                    "--health-on-failure {a:?}: want none, kill, restart or stop"
                )));
            }
            req.health_on_failure = a.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "30").unwrap(), 30_000);
        assert_eq!(parse_duration("x", "1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration("x", "500ms").unwrap(), 500);
        assert_eq!(parse_duration("x", "1.5s").unwrap(), 1500);
        for bad in ["", "s", "10x", "1m-3s"] {
            assert!(parse_duration("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_over_image() {
        let img = serde_json::json!({"Test": ["CMD", "true"], "Interval": 5_000_000_000u64, "Retries": 2});
        let mut r = api::CreateRequest::new();
        HealthFlags::default().apply(&mut r, Some(&img)).unwrap();
        assert_eq!(r.health_test, ["CMD", "true"]);
        assert_eq!((r.health_interval_ms, r.health_retries), (5000, 2));
        let f = HealthFlags {
            health_cmd: Some("wget -q localhost".into()),
            health_interval: Some("1s".into()),
            ..Default::default()
        };
        let mut r = api::CreateRequest::new();
        f.apply(&mut r, Some(&img)).unwrap();
        assert_eq!(r.health_test, ["CMD-SHELL", "wget -q localhost"]);
        assert_eq!(r.health_interval_ms, 1000);
        let f = HealthFlags {
            health_retries: Some(2),
            ..Default::default()
        };
        let e = f.apply(&mut api::CreateRequest::new(), None).unwrap_err();
        assert!(
            e.message.contains("--health-retries needs a health check"),
            "{}",
            e.message
        );
        let f = HealthFlags {
            health_cmd: Some(" ".into()),
            ..Default::default()
        };
        assert!(f.apply(&mut api::CreateRequest::new(), None).is_err());
    }
}

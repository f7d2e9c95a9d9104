//! `wren-net`, wrend's network helper: one container's CNI ADD or DEL
//! ([`super::attach`]) in a short-lived process, so wrend links no CNI
//! code and never waits for a plugin in its loop.
//!
//! ```text
//! wren-net attach|detach --records DIR --state DIR [--netns-made] CONTAINER
//! ```
//!
//! `--netns-made` (attach): wrend made the container's network namespace
//! already ([`attach::attach`]).
//!
//! It prints exactly one line on stdout, which is how wrend learns the
//! outcome (wrend reaps its children on SIGCHLD, so it does not rely on
//! the exit status, though that is 0 or 1 as well): `ok ADDRESS` (attach;
//! `ok` for detach) or `err MESSAGE` (the error chain, newlines folded).
//! A helper that dies without the line failed.
//!
//! A separate binary from the `wren` CLI on purpose: it links only this
//! module's code, so each exec maps and faults in far less than the
//! 10 MB CLI with its registry client (docs/BENCHMARKS.md).
//!
//! Runs in the `wren-net` process.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use super::attach;

/// The helper's usage line.
pub const USAGE: &str =
    "usage: wren-net attach|detach --records DIR --state DIR [--netns-made] CONTAINER";

/// Parsed command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    action: Action,
    records: PathBuf,
    state: PathBuf,
    netns_made: bool,
    container: String,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Action {
    Attach,
    Detach,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let mut it = args.into_iter().skip(1);
    let action = match it.next().as_ref().and_then(|a| a.to_str()) {
        Some("attach") => Action::Attach,
        Some("detach") => Action::Detach,
        Some(a) => return Err(format!("unknown action {a:?}")),
        None => return Err("no action".into()),
    };
    let (mut records, mut state, mut container) = (None, None, None);
    let mut netns_made = false;
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--records") => records = it.next().map(PathBuf::from),
            Some("--state") => state = it.next().map(PathBuf::from),
            Some("--netns-made") if action == Action::Attach => netns_made = true,
            Some(s) if !s.starts_with('-') && container.is_none() => {
                container = Some(s.to_string())
            }
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    Ok(Args {
        action,
        records: records.ok_or("--records DIR is missing")?,
        state: state.ok_or("--state DIR is missing")?,
        netns_made,
        container: container.ok_or("the container's name is missing")?,
    })
}

/// The `wren-net` process: runs the action, prints the result line;
/// the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wren-net: {e}\n{USAGE}");
            return 2;
        }
    };
    let what = match a.action {
        Action::Attach => "net.attach",
        Action::Detach => "net.detach",
    };
    wren_runtime::timing::mark(&a.container, what);
    let result = match a.action {
        Action::Attach => attach::attach(&a.records, &a.state, &a.container, a.netns_made),
        Action::Detach => {
            attach::detach(&a.records, &a.state, &a.container).map(|()| String::new())
        }
    };
    wren_runtime::timing::mark(&a.container, &format!("{what}.done"));
    let (line, code) = match result {
        Ok(ip) if ip.is_empty() => ("ok\n".to_string(), 0),
        Ok(ip) => (format!("ok {ip}\n"), 0),
        Err(e) => {
            let msg = wren_runtime::error::chain(&e).replace('\n', " ");
            (format!("err {msg}\n"), 1)
        }
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return 1;
    }
    code
}

/// The outcome a helper's stdout reports: its address (attach; empty for
/// detach) or the error message.
pub fn outcome(stdout: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().next().unwrap_or_default();
    if line == "ok" {
        return Ok(String::new());
    }
    if let Some(ip) = line.strip_prefix("ok ") {
        return Ok(ip.trim().to_string());
    }
    match line.strip_prefix("err ") {
        Some(msg) => Err(msg.trim().to_string()),
        None => Err("the network helper exited without a result".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_and_refuses() {
        let a = parse(os(&[
            "wren-net",
            "detach",
            "--records",
            "/r",
            "--state",
            "/s",
            "web",
        ]))
        .unwrap();
        assert_eq!((a.action, a.netns_made), (Action::Detach, false));
        assert_eq!(
            (a.records, a.state, a.container),
            ("/r".into(), "/s".into(), "web".into())
        );
        let a = parse(os(&[
            "wren-net",
            "attach",
            "--netns-made",
            "--records",
            "/r",
            "--state",
            "/s",
            "web",
        ]))
        .unwrap();
        assert_eq!((a.action, a.netns_made), (Action::Attach, true));
        for bad in [
            &["wren-net"][..],
            &["wren-net", "add"],
            &["wren-net", "attach", "--records", "/r", "web"],
            &["wren-net", "attach", "--records", "/r", "--state", "/s"],
            &[
                "wren-net",
                "attach",
                "--records",
                "/r",
                "--state",
                "/s",
                "a",
                "b",
            ],
            &[
                "wren-net",
                "detach",
                "--netns-made",
                "--records",
                "/r",
                "--state",
                "/s",
                "a",
            ],
        ] {
            assert!(parse(os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn outcome_lines() {
        assert_eq!(outcome(b"ok 10.89.0.2\n"), Ok("10.89.0.2".into()));
        assert_eq!(outcome(b"ok\n"), Ok(String::new()));
        assert_eq!(
            outcome(b"err network n not found\n"),
            Err("network n not found".into())
        );
        assert!(outcome(b"").unwrap_err().contains("without a result"));
    }
}

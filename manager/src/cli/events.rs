//! `wren events`: wrend's event stream, printed as it comes (one line per
//! event, or JSON with `--json`) until the reader goes away or `--until`
//! passes; `--since` first prints the events wrend still keeps from then
//! on, and `--filter` picks by container and event.
//!
//! Runs in `wren`.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use wren_protocol::manager as api;

use super::args::EventsArgs;
use super::client::{ClientError, Wrend};
use super::logs::{now_nanos, Window};
use super::{output, CliError, Global};

/// The `--filter`s of `wren events`: a key's values match any, all keys
/// must match.
#[derive(Debug, Default)]
struct Filters {
    containers: Vec<String>,
    events: Vec<String>,
}

impl Filters {
    fn parse(list: &[String]) -> Result<Filters, CliError> {
        let mut f = Filters::default();
        for s in list {
            match s.split_once('=') {
                Some(("container", v)) if !v.is_empty() => f.containers.push(v.to_string()),
                Some(("event", v)) if !v.is_empty() => f.events.push(v.to_string()),
                _ => {
                    return Err(CliError::usage(format!(
                        "--filter {s:?}: want container=NAME or event=WORD"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, e: &api::Event) -> bool {
        let word = e.topic.rsplit('/').next().unwrap_or_default();
        (self.containers.is_empty() || self.containers.contains(&e.container))
            && (self.events.is_empty() || self.events.iter().any(|w| w == word || *w == e.topic))
    }
}

/// `wren events`.
pub fn events(g: &Global, a: &EventsArgs) -> Result<i32, CliError> {
    let filters = Filters::parse(&a.filter)?;
    let window = Window::parse(a.since.as_deref(), a.until.as_deref())?;
    let (since, until) = (window.since, window.until);
    let mut w = Wrend::connect(&g.socket)?;
    let print = |e: &api::Event| -> bool {
        if !window.contains(e.timestamp) || !filters.matches(e) {
            return true;
        }
        let line = if g.json {
            output::event_json(e).to_string()
        } else {
            format!(
                "{} {} {} {}",
                output::time(e.timestamp),
                e.topic,
                e.container,
                e.detail
            )
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.trim_end()).is_ok() && out.flush().is_ok()
    };
    let mut after = 0;
    if since.is_some() {
        let mut r = api::EventsRequest::new();
        r.kept = true;
        let resp: api::EventsResponse = w.call("Events", &r, false)?;
        for e in &resp.events {
            if !print(e) {
                return Ok(0);
            }
        }
        // (0 when nothing happened yet: from now on.)
        after = resp.last;
    }
    if until.is_some_and(|u| u <= now_nanos()) {
        return Ok(0);
    }
    loop {
        let resp = match until {
            None => next(&mut w, after)?,
            Some(u) => {
                // Each wait ends when an event comes or --until passes.
                let left = u.saturating_sub(now_nanos()).max(0) as u64;
                let socket = g.socket.clone();
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    let r = Wrend::connect(&socket).and_then(|mut w| next(&mut w, after));
                    let _ = tx.send(r);
                });
                match rx.recv_timeout(Duration::from_nanos(left)) {
                    Ok(r) => r?,
                    Err(_) => return Ok(0),
                }
            }
        };
        for e in &resp.events {
            if !print(e) {
                return Ok(0);
            }
        }
        if until.is_some_and(|u| u <= now_nanos()) {
            return Ok(0);
        }
        after = resp.last;
    }
}

/// The events after `after` (0: from now on), waiting for one.
fn next(w: &mut Wrend, after: u64) -> Result<api::EventsResponse, ClientError> {
    let mut r = api::EventsRequest::new();
    r.after = after;
    w.call("Events", &r, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters() {
        let mut e = api::Event::new();
        e.topic = "/container/start".into();
        e.container = "web".into();
        let f = |l: &[&str]| Filters::parse(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(f(&[]).unwrap().matches(&e));
        assert!(f(&["container=web", "event=start"]).unwrap().matches(&e));
        assert!(f(&["container=db", "container=web"]).unwrap().matches(&e));
        assert!(!f(&["container=web", "event=exit"]).unwrap().matches(&e));
        assert!(f(&["event=/container/start"]).unwrap().matches(&e));
        assert!(!f(&["event=/tasks/start"]).unwrap().matches(&e));
        for bad in ["container", "image=x", "event="] {
            assert!(f(&[bad]).is_err(), "{bad}");
        }
    }
}

//! `wren events`: wrend's event stream, printed as it comes (one line per
//! event, or JSON with `--json`) until the reader goes away.
//!
//! Runs in `wren`.

use std::io::Write;

use wren_protocol::manager as api;

use super::client::Wrend;
use super::{output, CliError, Global};

/// `wren events`.
pub fn events(g: &Global) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let mut after = 0;
    loop {
        let mut r = api::EventsRequest::new();
        r.after = after;
        let resp: api::EventsResponse = w.call("Events", &r, true)?;
        let mut out = std::io::stdout().lock();
        for e in &resp.events {
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
            if writeln!(out, "{}", line.trim_end()).is_err() {
                return Ok(0);
            }
        }
        let _ = out.flush();
        after = resp.last;
    }
}

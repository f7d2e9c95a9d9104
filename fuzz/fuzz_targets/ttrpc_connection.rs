//! Bytes a client writes to a real server connection, then closes: every
//! complete request before the close is read and answered (through the
//! reply queue), whatever comes after, and nothing panics or blocks.
#![no_main]

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wren_protocol::ttrpc_wire::Code;
use wren_ttrpc::server;

fn listener() -> &'static (tempfile::TempDir, std::path::PathBuf, UnixListener) {
    static L: OnceLock<(tempfile::TempDir, std::path::PathBuf, UnixListener)> = OnceLock::new();
    L.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).expect("bind");
        (dir, path, l)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, path, l) = listener();
    let mut c = UnixStream::connect(path).expect("connect");
    let Ok(Some(mut conn)) = server::accept(l) else {
        return;
    };
    // What fits in the socket buffer without blocking.
    c.set_nonblocking(true).expect("nonblocking");
    let _ = c.write(data);
    let _ = c.shutdown(std::net::Shutdown::Write);
    loop {
        let outcome = conn.read();
        for (_, responder) in outcome.requests {
            responder.send(Err(server::status(Code::UNIMPLEMENTED, "fuzz")));
        }
        if outcome.closed {
            break;
        }
        conn.flush();
    }
    conn.close();
});

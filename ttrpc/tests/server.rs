//! The server half under the conditions CRI puts it in: containerd's own
//! Rust ttrpc client (the `ttrpc` crate) pipelining calls from several
//! threads, requests that arrive just before the peer closes, a peer that
//! does not read its replies (queued, never blocking, delivered whole and
//! in order; closed past the bound), and a reply the client must refuse to
//! allocate.
//!
//! Runs in the test process: a small loop here plays the daemon's epoll loop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use protobuf::Message;
use wren_protocol::ttrpc_wire::{
    Request, Response, MESSAGE_HEADER_LENGTH, MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};
use wren_ttrpc::frame::{self, Header};
use wren_ttrpc::server::{self, Connection, Responder};

const LISTENER: u64 = 1;

/// The daemon's loop in miniature: accept, read, flush on EPOLLOUT, drop
/// closed connections.
struct Loop {
    epoll: Epoll,
    listener: UnixListener,
    conns: HashMap<u64, Connection>,
}

impl Loop {
    fn new(listener: UnixListener) -> Loop {
        listener.set_nonblocking(true).unwrap();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        epoll
            .add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))
            .unwrap();
        Loop {
            epoll,
            listener,
            conns: HashMap::new(),
        }
    }

    /// One round of events: requests go to `handle` as they are read (before
    /// a connection that closed is dropped, as in the daemon). Returns the
    /// responders of the round, each after `handle` saw its request, and
    /// whether a connection closed.
    fn turn_with(&mut self, wait_ms: u16, handle: &mut dyn FnMut(Request, Responder)) -> bool {
        let mut events = [EpollEvent::empty(); 16];
        let n = self
            .epoll
            .wait(&mut events, EpollTimeout::from(wait_ms))
            .unwrap();
        let mut closed = false;
        for ev in &events[..n] {
            if ev.data() == LISTENER {
                while let Some(conn) = server::accept(&self.listener).unwrap() {
                    let token = conn.as_raw_fd() as u64 + 16;
                    // SAFETY: the fd stays open while `conn` is in `conns`.
                    let fd = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) };
                    self.epoll
                        .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                        .unwrap();
                    conn.set_poller(self.epoll.0.as_raw_fd(), token);
                    self.conns.insert(token, conn);
                }
                continue;
            }
            let Some(conn) = self.conns.get_mut(&ev.data()) else {
                continue;
            };
            if ev.events().contains(EpollFlags::EPOLLOUT) {
                conn.flush();
            }
            if !ev
                .events()
                .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            {
                continue;
            }
            let outcome = conn.read();
            for (req, responder) in outcome.requests {
                handle(req, responder);
            }
            if outcome.closed {
                let conn = self.conns.remove(&ev.data()).unwrap();
                conn.close();
                // SAFETY: the fd is open, owned by `conn`.
                let _ = self
                    .epoll
                    .delete(unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) });
                closed = true;
            }
        }
        closed
    }

    /// One round, collecting the requests (answered later by the caller).
    fn turn(&mut self, wait_ms: u16) -> (Vec<(Request, Responder)>, bool) {
        let mut out = Vec::new();
        let closed = self.turn_with(wait_ms, &mut |q, r| out.push((q, r)));
        (out, closed)
    }
}

fn listener() -> (tempfile::TempDir, std::path::PathBuf, UnixListener) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let l = UnixListener::bind(&path).unwrap();
    (dir, path, l)
}

fn request_frame(stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut r = Request::new();
    r.service = "test.Echo".into();
    r.method = "Echo".into();
    r.payload = payload.to_vec();
    frame::encode(stream, MESSAGE_TYPE_REQUEST, &r.write_to_bytes().unwrap())
}

/// Reads one response frame: (stream id, payload).
fn read_response(s: &mut UnixStream) -> Option<(u32, Vec<u8>)> {
    let mut raw = [0u8; MESSAGE_HEADER_LENGTH];
    s.read_exact(&mut raw).ok()?;
    let h = Header::decode(&raw);
    assert_eq!(h.kind, MESSAGE_TYPE_RESPONSE);
    let mut body = vec![0u8; h.length as usize];
    s.read_exact(&mut body).ok()?;
    Some((
        h.stream_id,
        Response::parse_from_bytes(&body).unwrap().payload,
    ))
}

#[test]
fn containerds_rust_client_pipelines_calls_from_threads() {
    let (_dir, path, l) = listener();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut lp = Loop::new(l);
        while stop_rx.try_recv().is_err() {
            let (reqs, _) = lp.turn(20);
            for (req, responder) in reqs {
                let mut p = req.payload.clone();
                p.reverse();
                responder.send(Ok(p));
            }
        }
    });
    let client = ttrpc::sync::Client::connect(&format!("unix://{}", path.display())).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    let payload = format!("{t}-{i}-{}", "x".repeat((i as usize * 997) % 5000));
                    let mut req = ttrpc::Request::new();
                    req.service = "test.Echo".into();
                    req.method = "Echo".into();
                    req.payload = payload.clone().into_bytes();
                    req.timeout_nano = Duration::from_secs(10).as_nanos() as i64;
                    let resp = client.request(req).expect("call");
                    let mut want = payload.into_bytes();
                    want.reverse();
                    assert_eq!(resp.payload, want);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    drop(client);
    stop_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn requests_that_arrive_just_before_the_peer_closes_are_served() {
    let (_dir, path, l) = listener();
    let mut lp = Loop::new(l);
    let mut c = UnixStream::connect(&path).unwrap();
    lp.turn(100); // accept
    let mut all = Vec::new();
    for i in 0..3 {
        all.extend(request_frame(2 * i + 1, format!("r{i}").as_bytes()));
    }
    c.write_all(&all).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut served = 0;
    let closed = lp.turn_with(1000, &mut |req, responder| {
        served += 1;
        responder.send(Ok(req.payload));
    });
    assert!(closed, "the close is seen");
    assert_eq!(served, 3, "every complete request before the close");
    // The answers were written before the connection was dropped.
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let got: Vec<_> = std::iter::from_fn(|| read_response(&mut c)).collect();
    assert_eq!(
        got,
        vec![
            (1, b"r0".to_vec()),
            (3, b"r1".to_vec()),
            (5, b"r2".to_vec())
        ]
    );
}

#[test]
fn replies_to_a_peer_that_does_not_read_are_queued_and_arrive_whole_in_order() {
    let (_dir, path, l) = listener();
    let mut c = UnixStream::connect(&path).unwrap();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut lp = Loop::new(l);
        let mut answered = 0;
        while answered < 32 {
            let (reqs, _) = lp.turn(50);
            for (req, responder) in reqs {
                // 256 KiB each: far more than the socket buffer holds. A
                // send that waited for the peer would stall here forever,
                // since the peer reads only after all 32 are sent.
                let n = req.payload[0] as usize;
                responder.send(Ok(vec![n as u8; 256 << 10]));
                answered += 1;
            }
        }
        sent_tx.send(()).unwrap();
        // Keep flushing on EPOLLOUT until the client has read everything.
        while done_rx.try_recv().is_err() {
            lp.turn(20);
        }
    });
    for i in 0..32u8 {
        c.write_all(&request_frame(2 * i as u32 + 1, &[i])).unwrap();
    }
    sent_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("all 32 replies sent without the peer reading");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..32u8 {
        let (stream, payload) = read_response(&mut c).expect("a whole reply");
        assert_eq!(stream, 2 * i as u32 + 1);
        assert_eq!(payload.len(), 256 << 10);
        assert!(payload.iter().all(|b| *b == i));
    }
    done_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn a_peer_that_never_reads_is_disconnected_past_the_bound() {
    let (_dir, path, l) = listener();
    let mut lp = Loop::new(l);
    let mut c = UnixStream::connect(&path).unwrap();
    lp.turn(100);
    c.write_all(&request_frame(1, b"big")).unwrap();
    let (mut reqs, _) = lp.turn(1000);
    let (_, first) = reqs.pop().unwrap();
    assert!(!first.is_closed());
    first.send(Ok(vec![0u8; 8 << 20]));
    for i in 0..3 {
        c.write_all(&request_frame(3 + 2 * i, b"big")).unwrap();
    }
    let mut last = None;
    while last.is_none() {
        let (reqs, _) = lp.turn(1000);
        for (_, r) in reqs {
            r.send(Ok(vec![0u8; 8 << 20]));
            last = Some(());
        }
    }
    // Past 16 MiB queued the connection is shut down: the peer reads what
    // the socket holds and then EOF, instead of waiting forever, and the
    // loop drops the connection.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    c.read_to_end(&mut sink)
        .expect("EOF, not a stalled connection");
    assert!(lp.turn(1000).1, "the loop drops the closed connection");
}

#[test]
fn the_client_refuses_a_reply_length_it_would_have_to_allocate() {
    let (_dir, path, l) = listener();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let h = Header {
            length: u32::MAX,
            stream_id: 1,
            kind: MESSAGE_TYPE_RESPONSE,
            flags: 0,
        };
        s.write_all(&h.encode()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    let mut c = wren_ttrpc::client::Client::connect(path.to_str().unwrap(), Duration::from_secs(5))
        .unwrap();
    let err = c
        .call("test.Echo", "Echo", vec![], &[], Duration::from_secs(5))
        .expect_err("a 4 GiB reply");
    match err {
        wren_ttrpc::client::CallError::Io(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}")
        }
        other => panic!("{other:?}"),
    }
    server.join().unwrap();
}

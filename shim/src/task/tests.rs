//! Unit tests of the Task service against the fake runtime (`fake.rs`):
//! requests go through [`TaskService::dispatch`] over a real ttrpc
//! connection, so each test checks the ttrpc code containerd would see.
//!
//! Runs in the unit-test process.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollTimeout};
use protobuf::well_known_types::any::Any;
use protobuf::Message;
use wren_protocol::task::*;
use wren_protocol::task_types::Status;
use wren_protocol::ttrpc_wire::{Code, Request, Response, MESSAGE_TYPE_REQUEST};
use wren_ttrpc::frame;
use wren_ttrpc::server::{self, Connection};

use super::fake::Fake;
use super::TaskService;
use crate::events::publisher::Publisher;

/// A service on the fake runtime, and a client connection to it.
struct Harness {
    svc: TaskService<Fake>,
    epoll: Epoll,
    client: UnixStream,
    conn: Connection,
    dir: tempfile::TempDir,
    stream: u32,
}

/// What a call got back: the response, or (code, message).
type Reply<R> = Result<R, (Code, String)>;

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("s");
        let listener = UnixListener::bind(&sock).expect("bind");
        let client = UnixStream::connect(&sock).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let conn = server::accept(&listener)
            .expect("accept")
            .expect("a connection");
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll");
        let svc = TaskService::new(
            Fake::default(),
            Publisher::start(None, "test"),
            dir.path().join("state"),
            "test",
            &epoll,
        )
        .expect("service");
        Self {
            svc,
            epoll,
            client,
            conn,
            dir,
            stream: 1,
        }
    }

    /// Sends one request and hands it to the service.
    fn send<Q: Message>(&mut self, method: &str, req: &Q) {
        let mut r = Request::new();
        r.service = wren_protocol::services::TASK_V2.into();
        r.method = method.into();
        r.payload = req.write_to_bytes().expect("encode");
        self.send_raw(r);
    }

    fn send_raw(&mut self, r: Request) {
        let body = r.write_to_bytes().expect("encode");
        self.client
            .write_all(&frame::encode(self.stream, MESSAGE_TYPE_REQUEST, &body))
            .expect("write");
        self.stream += 2;
        let outcome = self.conn.read();
        assert!(!outcome.closed, "connection closed");
        for (req, responder) in outcome.requests {
            self.svc.dispatch(&req.method, &req.payload, responder);
        }
    }

    /// The next response, if one arrives within `wait`.
    fn recv<R: Message>(&mut self, wait: Duration) -> Option<Reply<R>> {
        self.client.set_read_timeout(Some(wait)).expect("timeout");
        let mut header = [0u8; wren_protocol::ttrpc_wire::MESSAGE_HEADER_LENGTH];
        match self.client.read_exact(&mut header) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
        let h = frame::Header::decode(&header);
        let mut body = vec![0u8; h.length as usize];
        self.client.read_exact(&mut body).expect("read body");
        let resp = Response::parse_from_bytes(&body).expect("response");
        Some(match resp.status.as_ref() {
            Some(s) if s.code.enum_value_or(Code::UNKNOWN) != Code::OK => {
                Err((s.code.enum_value_or(Code::UNKNOWN), s.message.clone()))
            }
            _ => Ok(R::parse_from_bytes(&resp.payload).expect("payload")),
        })
    }

    fn call<Q: Message, R: Message>(&mut self, method: &str, req: &Q) -> Reply<R> {
        self.send(method, req);
        self.recv(Duration::from_secs(5)).expect("a response")
    }

    fn create(&mut self, id: &str) -> Reply<CreateTaskResponse> {
        let mut r = CreateTaskRequest::new();
        r.id = id.into();
        r.bundle = self.dir.path().display().to_string();
        self.call("Create", &r)
    }

    fn start(&mut self, id: &str, exec_id: &str) -> Reply<StartResponse> {
        let mut r = StartRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        self.call("Start", &r)
    }

    fn exec(&mut self, id: &str, exec_id: &str) -> Reply<protobuf::well_known_types::empty::Empty> {
        let mut r = ExecProcessRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        let mut spec = Any::new();
        spec.value = serde_json::to_vec(&oci_spec::runtime::Process::default()).expect("json");
        r.spec = protobuf::MessageField::some(spec);
        self.call("Exec", &r)
    }

    fn kill(
        &mut self,
        id: &str,
        exec_id: &str,
        signal: u32,
    ) -> Reply<protobuf::well_known_types::empty::Empty> {
        let mut r = KillRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        r.signal = signal;
        self.call("Kill", &r)
    }

    fn delete(&mut self, id: &str, exec_id: &str) -> Reply<DeleteResponse> {
        let mut r = DeleteRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        self.call("Delete", &r)
    }

    fn state(&mut self, id: &str, exec_id: &str) -> Reply<StateResponse> {
        let mut r = StateRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        self.call("State", &r)
    }

    fn status(&mut self, id: &str, exec_id: &str) -> Status {
        self.state(id, exec_id)
            .expect("state")
            .status
            .enum_value_or(Status::UNKNOWN)
    }

    /// Waits for a pidfd the service registered to turn readable and hands
    /// it back, as the daemon's loop does.
    fn pump_pidfd(&mut self) {
        let mut events = [EpollEvent::empty(); 4];
        let n = self
            .epoll
            .wait(&mut events, EpollTimeout::from(5000u16))
            .expect("epoll_wait");
        assert!(n > 0, "no pidfd turned readable");
        for ev in &events[..n] {
            self.svc.fd_ready(ev.data());
        }
    }
}

fn code<R>(r: Reply<R>) -> Code {
    match r {
        Ok(_) => Code::OK,
        Err((c, _)) => c,
    }
}

fn message<R>(r: Reply<R>) -> String {
    match r {
        Ok(_) => String::new(),
        Err((_, m)) => m,
    }
}

#[test]
fn create_start_kill_wait_delete() {
    let mut h = Harness::new();
    let pid = h.create("c").expect("create").pid;
    assert!(pid > 0);
    assert_eq!(h.status("c", ""), Status::CREATED);
    assert_eq!(h.start("c", "").expect("start").pid, pid);
    assert_eq!(h.status("c", ""), Status::RUNNING);

    // A Wait before the exit is parked, and answered by it.
    let mut w = WaitRequest::new();
    w.id = "c".into();
    h.send("Wait", &w);
    assert!(h.recv::<WaitResponse>(Duration::from_millis(100)).is_none());

    h.kill("c", "", 15).expect("kill");
    assert!(h.svc.ops.calls.contains(&"kill c 15 false".to_string()));
    h.svc.process_exited("c", "", 143);
    let waited = h
        .recv::<WaitResponse>(Duration::from_secs(5))
        .expect("the Wait answered")
        .expect("wait");
    assert_eq!(waited.exit_status, 143);
    assert_eq!(h.status("c", ""), Status::STOPPED);
    // A Wait after the exit is answered at once.
    let again: WaitResponse = h.call("Wait", &w).expect("wait");
    assert_eq!(again.exit_status, 143);

    let d = h.delete("c", "").expect("delete");
    assert_eq!((d.pid, d.exit_status), (pid, 143));
    assert_eq!(
        h.svc.ops.calls,
        ["create c", "start c", "kill c 15 false", "delete c"]
    );
    assert_eq!(code(h.state("c", "")), Code::NOT_FOUND);
}

#[test]
fn kill_after_exit_is_not_found() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    h.start("c", "").expect("start");
    h.svc.process_exited("c", "", 0);
    let r = h.kill("c", "", 9);
    assert_eq!(code(h.kill("c", "", 9)), Code::NOT_FOUND);
    assert!(message(r).contains("process already finished"));
    assert_eq!(code(h.kill("nope", "", 9)), Code::NOT_FOUND);
}

#[test]
fn duplicates_already_exist() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    assert_eq!(code(h.create("c")), Code::ALREADY_EXISTS);
    h.start("c", "").expect("start");
    h.exec("c", "e").expect("exec");
    assert_eq!(code(h.exec("c", "e")), Code::ALREADY_EXISTS);
}

#[test]
fn delete_of_running_is_unknown() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    h.start("c", "").expect("start");
    let r = h.delete("c", "");
    assert_eq!(code(h.delete("c", "")), Code::UNKNOWN);
    assert!(message(r).contains("cannot delete a running process"));
    h.exec("c", "e").expect("exec");
    h.start("c", "e").expect("start exec");
    assert_eq!(code(h.delete("c", "e")), Code::UNKNOWN);
    assert_eq!(h.status("c", ""), Status::RUNNING);
}

#[test]
fn exec_lifecycle_through_its_pidfd() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    h.start("c", "").expect("start");
    h.exec("c", "e").expect("exec");
    // Not started: FailedPrecondition, as containerd's runc shim answers.
    assert_eq!(code(h.kill("c", "e", 9)), Code::FAILED_PRECONDITION);
    let pid = h.start("c", "e").expect("start exec").pid;
    assert!(h.svc.owns_pid(pid as i32));
    assert_eq!(code(h.start("c", "e")), Code::UNKNOWN);
    // A real signal through the shim's pidfd; the exit comes back through
    // the pidfd's readiness on the loop's epoll set.
    h.kill("c", "e", 9).expect("kill exec");
    h.pump_pidfd();
    assert_eq!(h.status("c", "e"), Status::STOPPED);
    assert!(!h.svc.owns_pid(pid as i32));
    assert_eq!(code(h.kill("c", "e", 9)), Code::NOT_FOUND);
    let d = h.delete("c", "e").expect("delete exec");
    assert_eq!(d.exit_status, 137);
    assert_eq!(code(h.state("c", "e")), Code::NOT_FOUND);
}

#[test]
fn exec_after_init_exit_is_failed_precondition() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    h.start("c", "").expect("start");
    h.exec("c", "e").expect("exec");
    h.svc.process_exited("c", "", 0);
    assert_eq!(code(h.start("c", "e")), Code::FAILED_PRECONDITION);
    assert_eq!(code(h.exec("c", "f")), Code::FAILED_PRECONDITION);
}

#[test]
fn runtime_kinds_become_codes_and_create_leaves_nothing() {
    use wren_runtime::spec::SpecError;
    let cases = [
        (
            wren_runtime::Error::InvalidId("c".into()),
            Code::INVALID_ARGUMENT,
        ),
        (
            wren_runtime::Error::Spec(SpecError::Unsupported {
                field: "linux.intelRdt".into(),
            }),
            Code::UNIMPLEMENTED,
        ),
        (
            wren_runtime::Error::AlreadyExists("c".into()),
            Code::ALREADY_EXISTS,
        ),
    ];
    let mut h = Harness::new();
    for (e, want) in cases {
        h.svc.ops.fail_create = Some(e);
        let r = h.create("c");
        assert_eq!(r.as_ref().map(|_| ()).map_err(|e| e.0), Err(want));
        // The shim names the operation and the container once.
        let m = message(r);
        assert!(m.starts_with("create c: "), "{m}");
        assert_eq!(code(h.state("c", "")), Code::NOT_FOUND);
        // Nothing stays in the bundle.
        assert!(!h.dir.path().join("options.json").exists());
    }
    // Stats passes the runtime's NotFound on.
    h.create("c").expect("create");
    let mut r = StatsRequest::new();
    r.id = "c".into();
    assert_eq!(
        code(h.call::<_, StatsResponse>("Stats", &r)),
        Code::NOT_FOUND
    );
}

#[test]
fn service_refusals() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    h.start("c", "").expect("start");
    assert_eq!(code(h.start("c", "")), Code::UNKNOWN);
    // Checkpoint needs an image path; with one, the runtime is asked to
    // dump and (without `exit`) leave the task running.
    let mut r = CheckpointTaskRequest::new();
    r.id = "c".into();
    assert_eq!(
        code(h.call::<_, protobuf::well_known_types::empty::Empty>("Checkpoint", &r)),
        Code::INVALID_ARGUMENT
    );
    r.path = "/ck".into();
    h.call::<_, protobuf::well_known_types::empty::Empty>("Checkpoint", &r)
        .expect("checkpoint");
    assert!(h
        .svc
        .ops
        .calls
        .contains(&"checkpoint c /ck leave_running=true".to_string()));
    let mut r = StateRequest::new();
    r.id = "c".into();
    assert_eq!(
        code(h.call::<_, StateResponse>("Frobnicate", &r)),
        Code::UNIMPLEMENTED
    );
    let mut raw = Request::new();
    raw.service = wren_protocol::services::TASK_V2.into();
    raw.method = "State".into();
    raw.payload = vec![0xff, 0xff, 0xff];
    h.send_raw(raw);
    let r = h
        .recv::<StateResponse>(Duration::from_secs(5))
        .expect("a response");
    assert_eq!(code(r), Code::INVALID_ARGUMENT);
}

#[test]
fn a_parked_wait_is_dropped_when_its_connection_closes() {
    let mut h = Harness::new();
    h.create("c").expect("create");
    h.start("c", "").expect("start");
    let mut w = WaitRequest::new();
    w.id = "c".into();
    h.send("Wait", &w);
    let waiters = |h: &Harness| {
        h.svc
            .containers
            .get("c")
            .map_or(0, |c| c.init.waiters.len())
    };
    assert_eq!(waiters(&h), 1);
    // The caller goes away; the loop sees the close and tells the service.
    h.client
        .shutdown(std::net::Shutdown::Both)
        .expect("shutdown");
    let outcome = h.conn.read();
    assert!(outcome.closed && outcome.requests.is_empty());
    h.conn.close();
    h.svc.drop_closed_waiters();
    assert_eq!(waiters(&h), 0, "the Wait of a closed connection is dropped");
    // The exit is still recorded for a later Wait on a new connection.
    h.svc.process_exited("c", "", 0);
}

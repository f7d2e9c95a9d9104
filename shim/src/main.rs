//! `containerd-shim-wren-v2`: the containerd shim that is the runtime.
//!
//! One binary, several processes: `start` (spawn the daemon, print its
//! address), `delete` (clean up without a daemon), `-v`, `-info`, and, with
//! no action, the daemon that serves the Task API (see `serve.rs`).

use std::io::Write;

use wren_shim::flags::{Action, Flags};
use wren_shim::{delete, info, serve, start, task};

/// talc on musl for the short processes (`start`, each container init);
/// the daemon switches to musl's malloc, which gives memory back
/// (docs/ARCHITECTURE.md, "wren-oci and the shim on musl").
#[cfg(target_env = "musl")]
#[global_allocator]
static HEAP: wren_runtime::musl_heap::Heap = wren_runtime::musl_heap::Heap::new();

fn fail(what: &str, e: &dyn std::error::Error) -> ! {
    let _ = writeln!(
        std::io::stderr(),
        "{what}: {}",
        wren_runtime::error::chain(e)
    );
    std::process::exit(1);
}

fn main() {
    // The runtime re-executes this binary as a container init: become it
    // before anything else (no thread, no allocation-heavy setup) exists.
    wren_runtime::init::run_if_init();
    let argv0 = std::env::args()
        .next()
        .unwrap_or_else(|| "containerd-shim-wren-v2".into());
    let flags = match Flags::parse(std::env::args_os().skip(1)) {
        Ok(f) => f,
        Err(e) => fail("containerd-shim-wren-v2", &e),
    };
    let action = match flags.action() {
        Ok(a) => a,
        Err(e) => fail("containerd-shim-wren-v2", &e),
    };
    match action {
        Action::Version => print!("{}", info::version_text(&argv0)),
        Action::Info => {
            let out = info::runtime_info(&info::read_stdin());
            let _ = std::io::stdout().write_all(&out);
        }
        Action::Start => {
            wren_runtime::timing::mark(&flags.id, "shim.start");
            match start::run(&flags) {
                Ok(out) => {
                    if let Err(e) = start::print(&out) {
                        fail("start", &e);
                    }
                    wren_runtime::timing::mark(&flags.id, "shim.started");
                }
                Err(e) => fail("start", &e),
            }
        }
        Action::Delete => {
            let out = delete::run(&flags, &mut task::container_ops::Runtime);
            let _ = std::io::stdout().write_all(&out);
        }
        Action::Serve => {
            #[cfg(target_env = "musl")]
            wren_runtime::musl_heap::use_system_malloc();
            if let Err(e) = serve::run(&flags) {
                ::log::error!("{}", wren_runtime::error::chain(&e));
                fail("shim daemon", &e);
            }
        }
    }
}

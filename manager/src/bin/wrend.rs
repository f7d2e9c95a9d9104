//! `wrend`: the manager daemon for hosts without containerd (see
//! `wren_manager::wrend`; its flags are `wren_manager::wrend::flags`). The
//! `wrend` process's entry point.

use wren_manager::wrend::{event_loop, flags};

fn main() {
    // Exec'd again with glibc's tcache off: idle memory is wrend's figure
    // (wren_runtime::malloc_tunables). Before anything else, so nothing is
    // done twice.
    let retuned = wren_runtime::malloc_tunables::reexec_tuned();
    // No `wren_runtime::init::run_if_init()` here: wrend never creates a
    // container itself (its shims do), so the runtime never re-executes
    // this binary as an init, and leaving the init code out keeps wrend's
    // resident text (its idle RSS) small.
    let cfg = match flags::parse(std::env::args().skip(1)) {
        Ok(flags::Parsed::Run(f)) => f.config(),
        Ok(flags::Parsed::Help) => {
            print!("{}", flags::HELP);
            return;
        }
        Ok(flags::Parsed::Version) => {
            println!("wrend {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Err(e) => {
            eprintln!("wrend: {e}\nTry 'wrend --help'.");
            std::process::exit(2);
        }
    };
    wren_runtime::logrus::init(cfg.debug, &[]);
    if let Some(e) = retuned {
        log::warn!("re-exec with malloc tunables: {e}; running without them");
    }
    if let Err(e) = event_loop::run(cfg) {
        let msg = wren_runtime::error::chain(&e);
        log::error!("{msg}");
        eprintln!("wrend: {msg}");
        std::process::exit(1);
    }
}

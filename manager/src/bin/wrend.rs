//! `wrend`: the manager daemon for hosts without containerd (see
//! `wren_shim::manager`). Flags: `--root DIR` (state and records under one
//! directory), `--state-dir`, `--records-dir`, `--socket`, `--shim PATH`,
//! `--log-max-size BYTES`, `--log-keep N`, `--debug`.

use std::path::PathBuf;

use wren_manager::wrend::{config::Config, daemon};

const USAGE: &str =
    "usage: wrend [--root DIR] [--state-dir DIR] [--records-dir DIR] [--socket PATH]
             [--shim PATH] [--log-max-size BYTES] [--log-keep N] [--debug]";

fn fail(msg: &str) -> ! {
    eprintln!("wrend: {msg}");
    std::process::exit(2);
}

fn parse() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = Config::new();
    let mut socket: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        match flag {
            "--root" => {
                let v = value();
                let keep = (
                    cfg.shim_binary.clone(),
                    cfg.log_max_size,
                    cfg.log_keep,
                    cfg.debug,
                );
                cfg = Config::with_root(&PathBuf::from(v));
                (cfg.shim_binary, cfg.log_max_size, cfg.log_keep, cfg.debug) = keep;
            }
            "--state-dir" => {
                cfg.state_dir = PathBuf::from(value());
                cfg.socket = cfg.state_dir.join(wren_manager::wrend::config::SOCKET_NAME);
            }
            "--records-dir" => cfg.records_dir = PathBuf::from(value()),
            "--socket" => socket = Some(PathBuf::from(value())),
            "--shim" => cfg.shim_binary = PathBuf::from(value()),
            "--log-max-size" => {
                cfg.log_max_size = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--log-max-size wants a number of bytes"))
            }
            "--log-keep" => {
                cfg.log_keep = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--log-keep wants a number"))
            }
            "--debug" => cfg.debug = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-v" | "--version" => {
                println!("wrend {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            _ => fail(&format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    if let Some(s) = socket {
        cfg.socket = s;
    }
    cfg
}

fn main() {
    // No `wren_runtime::init::run_if_init()` here: wrend never creates a
    // container itself (its shims do), so the runtime never re-executes
    // this binary as an init, and leaving the init code out keeps wrend's
    // resident text (its idle RSS) small.
    let cfg = parse();
    wren_runtime::logrus::init(cfg.debug, &[]);
    if let Err(e) = daemon::run(cfg) {
        let msg = wren_runtime::error::chain(&e);
        log::error!("{msg}");
        eprintln!("wrend: {msg}");
        std::process::exit(1);
    }
}

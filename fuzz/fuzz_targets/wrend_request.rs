//! wrend's API requests and the events its shims forward, from raw bytes: the
//! first byte picks the message. A Create goes through the whole check that
//! runs before anything is made (`api::create::validate_create`: name,
//! restart policy, bundle or rootfs, spec built with the overrides), an Exec
//! through the process built from a real bundle's config.json, an event
//! through `shim_events::decode_event`. The socket is root-only, but a bad
//! request must still be a clear error, never a panic that takes every
//! container's supervisor down.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use protobuf::Message;
use wren_protocol::manager as api;
use wren_manager::wrend::api::create::validate_create;
use wren_manager::wrend::{shim_events, spec};

/// A rootfs directory and a bundle with a config.json, made once per run in
/// one fixed temp directory (reused by the next run, never multiplied).
fn fixture() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = std::env::temp_dir().join("wren-fuzz-wrend-request");
        let rootfs = base.join("rootfs");
        let bundle = base.join("bundle");
        std::fs::create_dir_all(&rootfs).expect("make rootfs");
        std::fs::create_dir_all(bundle.join("rootfs")).expect("make bundle");
        let o = spec::Overrides {
            args: vec!["sh".into()],
            ..spec::Overrides::default()
        };
        let config = spec::build(None, Some(&rootfs), &o).expect("default spec");
        std::fs::write(bundle.join("config.json"), config.to_string()).expect("write config");
        (rootfs, bundle)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let (rootfs, bundle) = fixture();
    match which % 3 {
        0 => {
            let Ok(mut req) = api::CreateRequest::parse_from_bytes(rest) else {
                return;
            };
            // Point whichever source is set at the fixture, so the spec is
            // really built; the fuzzer still chooses both, either or none.
            if !req.rootfs.is_empty() {
                req.rootfs = rootfs.display().to_string();
            }
            if !req.bundle.is_empty() {
                req.bundle = bundle.display().to_string();
            }
            if let Ok((_, built)) = validate_create(&req) {
                assert!(built["process"]["args"].is_array(), "spec without args");
            }
        }
        1 => {
            let Ok(req) = api::ExecRequest::parse_from_bytes(rest) else {
                return;
            };
            let o = spec::Overrides {
                args: req.args,
                env: req.env,
                cwd: req.cwd,
                terminal: req.terminal,
                ..spec::Overrides::default()
            };
            let _ = spec::exec_process(&bundle.join("config.json"), &o);
        }
        _ => {
            let _ = shim_events::decode_event(rest);
        }
    }
});

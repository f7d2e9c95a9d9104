//! containerd's stdio strings of a Create or Exec request (fifo paths,
//! `file://`, `binary://`, `binary-v2://`) through `stdio::uri::parse`.
//! Must never panic; a result names absolute paths only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_shim::stdio::uri::{self, Output};

fuzz_target!(|s: (&str, &str, &str)| {
    let Ok(parsed) = uri::parse(s.0, s.1, s.2) else {
        return;
    };
    let mut paths: Vec<std::path::PathBuf> = parsed.stdin.into_iter().collect();
    match parsed.output {
        Output::File(p) | Output::Binary { path: p, .. } => paths.push(p),
        Output::Fifos { stdout, stderr } => paths.extend(stdout.into_iter().chain(stderr)),
        Output::Null => {}
    }
    for p in paths {
        assert!(p.is_absolute(), "{p:?} from {s:?}");
        assert!(
            !p.as_os_str().as_encoded_bytes().contains(&0),
            "{p:?} from {s:?}"
        );
    }
});

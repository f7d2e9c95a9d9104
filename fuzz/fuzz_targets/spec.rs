//! config.json bytes → `spec::parse` → `spec::validate` and the derived
//! namespace list, as `wren-oci create` and the shim's Create run them on a
//! bundle they did not write. Must never panic, hang or allocate without
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wren_runtime::spec;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = spec::parse(data, Path::new("fuzz/config.json")) else {
        return;
    };
    if spec::validate(&s).is_ok() {
        let _ = spec::namespaces(&s);
    }
    if let Some(p) = s.process() {
        let _ = spec::validate_process(p, "process");
    }
});

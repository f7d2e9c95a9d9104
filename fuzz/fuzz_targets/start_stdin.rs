//! The shim's `start` stdin: nothing, a runtime-options `Any` (containerd
//! 1.6–2.2) or a `BootstrapParams` (2.3), told apart by
//! `StartInput::decode`, then the options it carries. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_shim::options::StartInput;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = StartInput::decode(data, "c1", "default") else {
        return;
    };
    let _ = input.options();
    let _ = input.socket_dir();
    let _ = input.debug();
});

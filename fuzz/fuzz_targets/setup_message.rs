//! The parent→child setup channel: one channel message (`sync::Msg`) or the
//! init configuration from the sealed memfd (`init::InitConfig`), selected
//! by the first byte. The init decodes both (CVE-2021-43784 was a length
//! overflow in runc's equivalent). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_runtime::init::InitConfig;
use wren_runtime::sync::Msg;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(msg) = Msg::decode(rest) {
            // What the other side would send back must decode the same.
            let again = serde_json::to_vec(&msg).expect("encode a decoded Msg");
            assert_eq!(Msg::decode(&again).expect("re-decode"), msg);
        }
    } else {
        let _ = InitConfig::decode(rest);
    }
});

//! `-v` (version text) and `-info` (a raw protobuf `containerd.types.RuntimeInfo`
//! on stdout, not wrapped in an `Any`, as containerd 2.x reads it).
//!
//! Runs in a short-lived process of the shim binary.

use std::io::Read;

use protobuf::well_known_types::any::Any;
use protobuf::{Message, MessageField};
use wren_protocol::introspection::{RuntimeInfo, RuntimeVersion};

/// The runtime name containerd knows us by.
pub const RUNTIME_NAME: &str = "io.containerd.wren.v2";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `-v` text, in the layout of containerd's shims.
pub fn version_text(argv0: &str) -> String {
    format!(
        "{argv0}:\n  Version:  {VERSION}\n  Revision: {}\n",
        option_env!("WREN_REVISION").unwrap_or("unknown")
    )
}

/// The `-info` answer. The options `Any` on stdin (if any) is echoed back.
pub fn runtime_info(stdin: &[u8]) -> Vec<u8> {
    let mut info = RuntimeInfo::new();
    info.name = RUNTIME_NAME.into();
    let mut v = RuntimeVersion::new();
    v.version = VERSION.into();
    v.revision = option_env!("WREN_REVISION").unwrap_or("unknown").into();
    info.version = MessageField::some(v);
    if let Ok(any) = Any::parse_from_bytes(stdin) {
        if !any.type_url.is_empty() {
            info.options = MessageField::some(any);
        }
    }
    // containerd 2.x reads these (as from `runc features`) before it makes
    // a user-namespaced or idmapped container.
    let mut features = Any::new();
    features.type_url = wren_protocol::type_urls::OCI_FEATURES.into();
    features.value = wren_runtime::features::json().to_string().into_bytes();
    info.features = MessageField::some(features);
    info.write_to_bytes().unwrap_or_default()
}

/// Reads stdin for `-info` (may be empty).
pub fn read_stdin() -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_raw_runtime_info() {
        let bytes = runtime_info(b"");
        let info = RuntimeInfo::parse_from_bytes(&bytes).unwrap();
        assert_eq!(info.name, RUNTIME_NAME);
        assert_eq!(info.version.version, VERSION);
        assert!(info.options.is_none());
        assert_eq!(
            info.features.type_url,
            wren_protocol::type_urls::OCI_FEATURES
        );
        let f: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        assert!(version_text("x").starts_with("x:\n  Version:"));
    }
}

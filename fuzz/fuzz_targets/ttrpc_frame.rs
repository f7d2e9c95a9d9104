//! Bytes a client writes to the shim's ttrpc socket: frames cut off the
//! stream by `frame::take_frame`, each request payload decoded as the
//! server does. Must never panic or allocate beyond the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protobuf::Message;
use wren_protocol::ttrpc_wire::Request;
use wren_ttrpc::frame;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    while let Ok(Some((_, payload))) = frame::take_frame(&mut buf) {
        let _ = Request::parse_from_bytes(&payload);
    }
});

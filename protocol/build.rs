//! Generates Rust code for the .proto files vendored under `proto/` (see the
//! header of each file for where it came from). containerd's own task, events,
//! bootstrap and metrics protos come generated from `containerd-shim-protos`.
//! `proto/wren/` is wren's own: wrend's manager API.
fn main() {
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .inputs([
            "proto/runtimeoptions/v1/api.proto",
            "proto/runctypes/runc.proto",
            "proto/wren/manager/v1/manager.proto",
        ])
        .cargo_out_dir("vendored")
        .run_from_script();
    println!("cargo:rerun-if-changed=proto");
}

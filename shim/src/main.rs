//! containerd-shim-wren-v2 entry point (placeholder until the shim issue lands).
fn main() {
    eprintln!("containerd-shim-wren-v2: not built yet");
    std::process::exit(1);
}

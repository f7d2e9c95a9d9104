//! `wren-net`: wrend's network helper, one container's CNI ADD or DEL per
//! run (see `wren_manager::network::helper`). The `wren-net` process's
//! entry point.

fn main() {
    std::process::exit(wren_manager::network::helper::main(std::env::args_os()));
}

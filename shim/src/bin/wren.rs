//! `wren`: the command-line client of `wrend` (see `wren_shim::cli`).

fn main() {
    // The runtime re-executes binaries as container inits; become it before
    // anything else exists.
    wren_runtime::init::run_if_init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(wren_shim::cli::main(argv));
}

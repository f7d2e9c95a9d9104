//! `wren`: the command-line client of `wrend` (see `wren_manager::cli`); the
//! `wren` process's entry point.

fn main() {
    // No `run_if_init()`: the CLI only talks to wrend and never creates a
    // container, so the runtime never re-executes it as an init.
    std::process::exit(wren_manager::cli::main(std::env::args_os()));
}

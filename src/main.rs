//! The `qfault` command line: a thin layer over the library.
//!
//! Errors print as one line on stderr (`qfault: error: …`) and map to the exit
//! codes documented in the README: 0 done, 1 error, 2 usage, 3 refused.

mod cli;

fn main() {
    std::process::exit(cli::main());
}

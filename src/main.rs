//! The `qfault` command line: a thin layer over the library.
//!
//! Errors print as one line on stderr (`qfault: error: …`) and map to the exit
//! codes documented in the README: 0 done, 1 error, 2 usage, 3 refused. A
//! closed standard output (a reader such as `head` that stopped early) ends
//! the process quietly with exit 0; SIGINT, SIGTERM and SIGHUP remove the
//! temporary file being written before the process dies of the signal.

mod cli;

fn main() {
    // SIGPIPE stays ignored (Rust's default): writes to a closed pipe fail
    // with EPIPE, which the CLI's output functions turn into a quiet exit
    // after removing any temporary file, rather than a death mid-write.
    // Before the signal thread starts: see reserve_fd_table.
    cli::common::raise_open_file_limit();
    cli::common::reserve_fd_table();
    if let Err(e) = qfault::output::install_signal_cleanup() {
        cli::common::print_error_line(&format!("{e}"));
        std::process::exit(cli::common::EXIT_ERROR);
    }
    std::process::exit(cli::main());
}

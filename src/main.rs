//! The `qfault` command line: a thin layer over the library.
//!
//! Errors print as one line on stderr (`qfault: error: …`) and map to the exit
//! codes documented in the README: 0 done, 1 error, 2 usage, 3 refused.

mod cli;

fn main() {
    // Like other command-line tools, end quietly when a reader such as
    // `head` closes the pipe, instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}

//! The `qfault` command line: a thin layer over the library.
//!
//! Errors print as one line on stderr (`qfault: error: …`) and map to the exit
//! codes documented in the README: 0 done, 1 error, 2 usage, 3 refused. A
//! closed standard output (a reader such as `head` that stopped early) ends
//! the process quietly with exit 0; SIGINT, SIGTERM and SIGHUP remove the
//! temporary file being written before the process dies of the signal.

mod cli;

fn main() {
    // Buffers up to 1 MiB (L2 tables, clusters, the NTFS upcase table)
    // come from the heap and are reused once freed, rather than from fresh
    // mappings whose every page faults in when first touched (glibc's
    // default threshold is 128 KiB, adjusted upwards only after a free):
    // a hundred page faults fewer per `inject`. Freed memory is kept, not
    // handed back (glibc trims the heap once 128 KiB at its top are free,
    // so a batch worker's per-entry buffers faulted in again for every
    // entry: a seventh of a re-run's time); the peak is unchanged.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    // SIGPIPE stays ignored (Rust's default): writes to a closed pipe fail
    // with EPIPE, which the CLI's output functions turn into a quiet exit
    // after removing any temporary file, rather than a death mid-write.
    // Before any thread starts: see reserve_fd_table.
    cli::common::raise_open_file_limit();
    cli::common::reserve_fd_table();
    if let Err(e) = qfault::output::install_signal_cleanup() {
        cli::common::print_error_line(&format!("{e}"));
        std::process::exit(cli::common::EXIT_ERROR);
    }
    std::process::exit(cli::main());
}

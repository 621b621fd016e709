//! Argument parsing and dispatch; each subcommand lives in its own file.

use clap::{CommandFactory, Parser, Subcommand};

#[macro_use]
pub mod common;

/// The exit-code table every `--help` ends with (as a literal, for
/// `footer!`).
macro_rules! exit_codes {
    () => {
        "\
Exit codes:
  0  done (also when a reader such as `head` closes the output early)
  1  error (I/O, malformed or unsupported image, ...)
  2  usage error (bad arguments, a range past the end of the disk, an ambiguous choice)
  3  refused: a check said no (e.g. the damage would not be repairable, or a backing
     file has no recorded format or lies outside --backing-root)
  128+N  killed by signal N (SIGINT, SIGTERM, SIGHUP remove the file being written first)"
    };
}

/// A command's help footer: what its `--json` prints, then the exit codes.
macro_rules! footer {
    ($json:literal) => {
        concat!(
            "JSON (--json): one object, ",
            $json,
            "\nA path that is not UTF-8 is shown with U+FFFD for bad bytes plus KEY_hex, \
             its exact bytes in hex. Full schema: docs/json.md in qfault's source.\n\n",
            exit_codes!()
        )
    };
}

mod batch;
mod chain;
mod export;
mod info;
mod inject;
mod inspect;
mod map;
mod recipes;
mod report;
mod verify;

/// The exit-code table alone (commands without `--json`).
pub const AFTER_HELP: &str = exit_codes!();

/// `qfault --version`: the package version and the git commit it was built
/// from (`unknown` outside a git work tree; see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("QFAULT_GIT_COMMIT"),
    ")"
);

/// Make disk images with precise, known, repairable damage.
///
/// qfault reads raw, qcow2, VMDK, VHDX, VHD and VDI images through their whole
/// backing chain (any other format is refused, never read as raw), finds
/// the partitions and filesystems inside, and writes new qcow2 overlays backed
/// by the untouched original. It needs no root and no external tools; the base
/// image is only ever opened read-only.
#[derive(Debug, Parser)]
#[command(name = "qfault", version = VERSION, after_help = concat!(
    "Byte counts (--offset, --length, --cluster-size, manifests) read as qemu-img reads sizes: \
     a number with an optional suffix K, M, G, T, P, E in either case (binary: 1K = 1024; \
     Ki/KiB, Mi/MiB, ... mean the same), B for bytes, and qfault's s for 512-byte sectors; \
     a fraction (1.5M) must come to whole bytes. KB, MB, ... are refused as ambiguous.\n\n",
    exit_codes!()
))]
pub struct Cli {
    /// Print nothing on stderr but errors: no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say on stderr what is read and written: every image opened (with its
    /// format), every temporary file written and renamed, with its size.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Info(info::Args),
    Export(export::Args),
    Inspect(inspect::Args),
    Map(map::Args),
    Inject(inject::Args),
    Recipes(recipes::Args),
    Verify(verify::Args),
    Chain(chain::Args),
    Batch(batch::Args),
    Completions(Completions),
    #[command(hide = true)]
    Man(Man),
}

/// Print a shell completion script on stdout.
///
/// bash: `qfault completions bash > /etc/bash_completion.d/qfault` (or
/// `source <(qfault completions bash)`); zsh: write it as `_qfault` in a
/// directory of `$fpath`; fish: `qfault completions fish >
/// ~/.config/fish/completions/qfault.fish`.
#[derive(Debug, clap::Args)]
struct Completions {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Write the man pages (qfault.1, qfault-inject.1, ...) into DIR (`make man`).
#[derive(Debug, clap::Args)]
struct Man {
    /// The directory (created if missing).
    dir: std::path::PathBuf,
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return common::clap_exit(e),
    };
    common::set_verbosity(if cli.quiet {
        common::Verbosity::Quiet
    } else if cli.verbose {
        common::Verbosity::Verbose
    } else {
        common::Verbosity::Normal
    });
    let result = match &cli.command {
        Command::Info(a) => info::run(a),
        Command::Export(a) => export::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Map(a) => map::run(a),
        Command::Inject(a) => inject::run(a),
        Command::Recipes(a) => recipes::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Chain(a) => chain::run(a),
        Command::Batch(a) => batch::run(a),
        Command::Completions(a) => {
            clap_complete::generate(
                a.shell,
                &mut Cli::command(),
                "qfault",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man(a) => write_man_pages(&a.dir),
    };
    match result {
        Ok(()) => {
            common::flush_stdout();
            common::EXIT_OK
        }
        Err(e) => {
            common::flush_stdout();
            common::print_error_line(&common::one_line(&e));
            common::exit_code(&e)
        }
    }
}

/// Writes one man page per command and subcommand into `dir`.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| qfault::Error::io(dir, e))?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(|e| qfault::Error::io(dir, e))?;
    common::verbose_line(&format!("wrote the man pages into {}", dir.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks over every command, recipe
    /// subcommands and global options included (a short option used twice,
    /// a conflict naming an unknown argument, ...).
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

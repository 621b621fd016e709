//! Argument parsing and dispatch; each subcommand lives in its own file.

use clap::{Parser, Subcommand};

#[macro_use]
pub mod common;
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

pub const AFTER_HELP: &str = "\
Exit codes:
  0  done
  1  error (I/O, malformed or unsupported image, ...)
  2  usage error (bad arguments, a range past the end of the disk, an ambiguous choice)
  3  refused: a check said no (e.g. the damage would not be repairable, or a backing
     file has no recorded format or lies outside --backing-root)";

/// Make disk images with precise, known, repairable damage.
///
/// qfault reads raw and qcow2 images through their whole backing chain, finds
/// the partitions and filesystems inside, and writes new qcow2 overlays backed
/// by the untouched original. It needs no root and no external tools; the base
/// image is only ever opened read-only.
#[derive(Debug, Parser)]
#[command(name = "qfault", version, after_help = AFTER_HELP)]
pub struct Cli {
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
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return common::clap_exit(e),
    };
    common::raise_open_file_limit();
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

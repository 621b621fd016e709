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

///
/// Each command's arguments are built only when clap needs them (`defer`):
/// the command named on the command line; building every command's took a
/// fraction of a millisecond per run. The `about` given here is what
/// `qfault --help` lists before the command is built: its doc comment's
/// first line (a test checks). Completions and man pages build them all at
/// once ([`eager_command`]).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    #[command(
        about = "Show an image's format, size and backing chain (like `qemu-img info --backing-chain`)"
    )]
    Info(info::Args),
    #[command(
        about = "Flatten the guest disk (or one partition) into a sparse raw file (holes where it reads zeros)"
    )]
    Export(export::Args),
    #[command(about = "Show the partition table and the filesystem in each partition")]
    Inspect(inspect::Args),
    #[command(
        about = "Show which image of the chain provides each guest range, and which ranges read as zeros, with the semantics of `qemu-img map --output=json`"
    )]
    Map(map::Args),
    #[command(about = "Write a new qcow2 overlay, backed by BASE, that holds a recipe's damage")]
    Inject(inject::Args),
    #[command(
        about = "List the recipes: what each damages, the predicted outcome per tool, the repair, the preconditions and the parameters"
    )]
    Recipes(recipes::Args),
    #[command(
        about = "Check an existing overlay against its backing: the guest ranges it changes and, for each partition it touches, what the tools will do"
    )]
    Verify(verify::Args),
    #[command(about = "Build a backing chain of DEPTH qcow2 overlays on BASE in DIR")]
    Chain(chain::Args),
    #[command(
        about = "Produce the images and chains a TOML manifest lists (format: `qfault batch --help`)"
    )]
    Batch(batch::Args),
    #[command(about = "Print a shell completion script on stdout")]
    Completions(Completions),
    #[command(
        hide = true,
        about = "Write the man pages (qfault.1, qfault-inject.1, ...) into DIR (`make man`)"
    )]
    Man(Man),
}

/// Adds a command's arguments to its (deferred) command.
type Augment = fn(clap::Command) -> clap::Command;

/// Each command's arguments, as [`Command`] defers them.
const COMMANDS: [(&str, Augment); 11] = [
    ("info", <info::Args as clap::Args>::augment_args),
    ("export", <export::Args as clap::Args>::augment_args),
    ("inspect", <inspect::Args as clap::Args>::augment_args),
    ("map", <map::Args as clap::Args>::augment_args),
    ("inject", <inject::Args as clap::Args>::augment_args),
    ("recipes", <recipes::Args as clap::Args>::augment_args),
    ("verify", <verify::Args as clap::Args>::augment_args),
    ("chain", <chain::Args as clap::Args>::augment_args),
    ("batch", <batch::Args as clap::Args>::augment_args),
    ("completions", <Completions as clap::Args>::augment_args),
    ("man", <Man as clap::Args>::augment_args),
];

/// The whole command line with every command and recipe built at once,
/// not deferred: what completions and man pages walk, so that the options
/// and `help` subcommands they list come out as they always did.
fn eager_command() -> clap::Command {
    fn built(cmd: clap::Command) -> clap::Command {
        cmd
    }
    inject::build_every_recipe();
    COMMANDS
        .iter()
        .fold(Cli::command(), |cmd, &(name, augment)| {
            cmd.mut_subcommand(name, |sub| augment(sub).defer(built))
        })
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
                &mut eager_command(),
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
    clap_mangen::generate_to(eager_command(), dir).map_err(|e| qfault::Error::io(dir, e))?;
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

    /// The `about` each deferred command shows in `qfault --help` before
    /// it is built is the one it has once built (its doc comment's), and
    /// [`eager_command`] knows every command.
    #[test]
    fn deferred_commands_list_their_own_about() {
        fn abouts(cmd: &clap::Command) -> Vec<(String, Option<String>)> {
            cmd.get_subcommands()
                .filter(|s| s.get_name() != "help")
                .map(|s| {
                    (
                        s.get_name().to_string(),
                        s.get_about().map(|a| a.to_string()),
                    )
                })
                .collect()
        }
        let stubs = abouts(&Cli::command());
        let mut built = Cli::command();
        built.build();
        assert_eq!(stubs, abouts(&built));
        let names: Vec<&str> = stubs.iter().map(|(n, _)| n.as_str()).collect();
        let known: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, known);
        let mut eager = eager_command();
        eager.build();
        assert_eq!(stubs, abouts(&eager));
        for (d, e) in built.get_subcommands().zip(eager.get_subcommands()) {
            let ids = |c: &clap::Command| {
                let mut v: Vec<String> =
                    c.get_arguments().map(|a| a.get_id().to_string()).collect();
                v.sort();
                v
            };
            assert_eq!(ids(d), ids(e), "{}", d.get_name());
        }
    }

    /// A recipe's subcommand holds the same whether it was deferred (the
    /// one named on the command line) or built with every other
    /// (completions, man pages). (Where clap lists the global -q and -v
    /// among the options may differ, as it always did between the two.)
    #[test]
    fn deferred_recipes_build_as_eager_ones() {
        let describe = |cmd: &mut clap::Command| {
            let inject = cmd.find_subcommand_mut("inject").expect("inject");
            let mut out = Vec::new();
            for r in qfault::recipe::RECIPES {
                let sub = inject.find_subcommand_mut(r.name()).expect("recipe");
                let mut args: Vec<String> = sub
                    .get_arguments()
                    .map(|a| a.get_id().to_string())
                    .collect();
                args.sort();
                out.push(format!(
                    "{:?} {:?} {:?} {}",
                    sub.get_about().map(|a| a.to_string()),
                    sub.get_long_about().map(|a| a.to_string()),
                    sub.get_after_help().map(|a| a.to_string()),
                    args.join(" ")
                ));
                out.push(sub.render_usage().to_string());
            }
            out
        };
        let mut deferred = Cli::command();
        deferred.build();
        inject::build_every_recipe();
        let mut eager = Cli::command();
        eager.build();
        let (d, e) = (describe(&mut deferred), describe(&mut eager));
        assert!(d[0].contains("No change"), "{}", d[0]);
        assert!(d[1].contains("qfault inject empty"), "{}", d[1]);
        assert_eq!(d, e);
    }
}

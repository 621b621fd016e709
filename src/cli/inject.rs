//! `qfault inject NAME`: one overlay (or, with `-O`, one standalone image)
//! holding one recipe's damage. The subcommands and their arguments are
//! generated from the recipe registry.

use super::common::{parse_bytes, print_chain, ImageOpts, Progress};
use super::report::{print_document, print_output};
use clap::{ArgMatches, FromArgMatches};
use qfault::apply::{apply_as, OutputFormat};
use qfault::image::qcow2::header::CompressionType;
use qfault::overlay::{BackingName, OverlayOptions};
use qfault::recipe::{Spec, RECIPES};
use std::path::PathBuf;

/// Write a new qcow2 overlay, backed by BASE, that holds a recipe's damage.
///
/// Before writing, the recipe checks its preconditions and predicts what the
/// real tools will do; after writing, qfault reopens the overlay through the
/// chain and checks that it changes exactly the planned bytes and behaves as
/// predicted, before moving it into place. BASE and every image of its chain
/// are opened read-only. `qfault recipes` lists the recipes.
///
/// For platforms that take no backing chains, `-O raw` writes the whole
/// damaged guest as a raw image (a reflink clone of a raw base where the
/// filesystem shares blocks, else a sparse copy) and `-O qcow2-standalone`
/// as a qcow2 image with no backing file (`--compress zlib|zstd`); they are
/// checked the same way, opened on their own.
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"command\": \"inject\", \"base_chain\": [Layer...] (as `info`), \"output\": Output, \"timings\"}; an Output is {\"path\", \"recipe\": {\"name\", \"params\"}, \"status\": written|unchanged|replaced, \"overlay\": {\"path\", \"virtual_size\", \"cluster_size\", \"backing_file\", \"backing_format\", \"data_clusters\", \"zero_clusters\", \"file_size\", \"allocated_size\"}, \"targets\": [{\"recipe\", \"partition\", \"changes\": [{\"offset\", \"length\"}], \"prediction\": {\"outcomes\": [{\"role\", \"tool\", \"command\", \"result\", \"exit_code\", \"message\", \"verified_with\"}], \"byte_identical_after_repair\", \"notes\"}}], \"skipped\"}."))]
pub struct Args {
    #[command(flatten)]
    pub recipe: Injection,
}

/// The recipe chosen on the command line, its parameters, and the overlay
/// arguments every recipe shares.
#[derive(Debug)]
pub struct Injection {
    spec: Spec,
    common: OverlayArgs,
}

/// Arguments shared by every recipe.
#[derive(Debug, clap::Args)]
pub struct OverlayArgs {
    /// The base image (raw, qcow2, VMDK, VHDX, VHD or VDI, with its backing chain); never written.
    pub base: PathBuf,
    /// The overlay (or standalone image, see -O) to create. An existing file
    /// with exactly the bytes it would get is left alone ("unchanged"); one
    /// with other bytes needs --overwrite.
    #[arg(short = 'o', long = "output", value_name = "OVERLAY", value_parser = super::common::OutputPath)]
    pub output: PathBuf,
    /// What to write: a qcow2 overlay backed by BASE (the default), a raw
    /// image of the whole damaged disk, or a qcow2 image of it with no
    /// backing file.
    #[arg(
        short = 'O',
        long,
        value_name = "FORMAT",
        value_enum,
        default_value = "overlay"
    )]
    pub output_format: FormatArg,
    /// Compress the data clusters of a qcow2-standalone output (zlib: raw
    /// deflate; zstd: sets the qcow2 compression type, which QEMU reads
    /// since 5.1).
    #[arg(long, value_name = "KIND", value_enum)]
    pub compress: Option<CompressArg>,
    /// Cluster size of the overlay or qcow2-standalone image, a power of
    /// two from 512 to 2M (a raw output has none).
    #[arg(long, value_parser = parse_bytes, default_value = "64K")]
    pub cluster_size: u64,
    /// Store the base's absolute path instead of a path relative to the
    /// overlay's directory (overlays only).
    #[arg(long)]
    pub absolute_backing: bool,
    /// Replace OVERLAY if it exists with other bytes.
    #[arg(long)]
    pub overwrite: bool,
    /// Do not flush the output to stable storage before reporting it done
    /// (like qemu-img's default output cache mode): faster, still complete or
    /// absent if qfault dies, but possibly lost or torn after a power loss.
    #[arg(long)]
    pub no_sync: bool,
    /// Print the report as JSON (schema: docs/json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

impl FromArgMatches for Injection {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = m
            .subcommand()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
        let entry = qfault::recipe::find(name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let spec = entry
            .spec_from_matches(sub)
            .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e))?;
        Ok(Injection {
            spec,
            common: OverlayArgs::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Injection {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = cmd.subcommand_required(true).arg_required_else_help(true);
        // Each recipe's arguments are built only when clap needs them (the
        // recipe named on the command line): building all of them took a
        // millisecond per run. The name and about are all `inject --help`
        // lists. Completions and man pages build every one at once, so that
        // `help inject RECIPE` and the options come out as they always did.
        let eager = EVERY_RECIPE.load(std::sync::atomic::Ordering::Relaxed);
        RECIPES.iter().fold(cmd, |cmd, r| {
            let stub = clap::Command::new(r.name())
                .about(r.about())
                .long_about(r.about());
            cmd.subcommand(if eager {
                recipe_command(stub)
            } else {
                stub.defer(recipe_command)
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Whether `inject`'s recipe subcommands are built at once rather than
/// deferred (see [`build_every_recipe`]).
static EVERY_RECIPE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the commands built from now on hold every recipe's subcommand in
/// full (for completions and man pages), not deferred until one is used.
pub fn build_every_recipe() {
    EVERY_RECIPE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The rest of a recipe's subcommand, deferred by [`Injection`]'s
/// `augment_args`: the recipe's parameters, then the arguments every recipe
/// shares, and the help footer.
fn recipe_command(cmd: clap::Command) -> clap::Command {
    let Some(r) = qfault::recipe::find(cmd.get_name()) else {
        return cmd;
    };
    <OverlayArgs as clap::Args>::augment_args(r.augment_args(cmd))
        .about(r.about())
        .long_about(r.about())
        .after_help(footer!("{\"schema\": 1, \"command\": \"inject\", \"base_chain\": [Layer...] (as `info`), \"output\": Output, \"timings\"}; an Output is {\"path\", \"recipe\": {\"name\", \"params\"}, \"status\": written|unchanged|replaced, \"overlay\": {\"path\", \"virtual_size\", \"cluster_size\", \"backing_file\", \"backing_format\", \"data_clusters\", \"zero_clusters\", \"file_size\", \"allocated_size\"}, \"targets\": [{\"recipe\", \"partition\", \"changes\": [{\"offset\", \"length\"}], \"prediction\": {\"outcomes\": [{\"role\", \"tool\", \"command\", \"result\", \"exit_code\", \"message\", \"verified_with\"}], \"byte_identical_after_repair\", \"notes\"}}], \"skipped\"}."))
}

/// `-O`/`--output-format` values (the names of [`OutputFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// A qcow2 overlay backed by BASE: only the damaged clusters.
    Overlay,
    /// A raw image of the whole damaged disk.
    Raw,
    /// A qcow2 image of the whole damaged disk, with no backing file.
    Qcow2Standalone,
}

/// `--compress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressArg {
    /// Raw deflate, qcow2's default compression type.
    Zlib,
    /// Zstandard (qcow2 compression type 1).
    Zstd,
}

impl OverlayArgs {
    /// The output format these arguments ask for (usage errors for
    /// options that do not apply to it).
    fn format(&self) -> qfault::Result<OutputFormat> {
        let name = match self.output_format {
            FormatArg::Overlay => "overlay",
            FormatArg::Raw => "raw",
            FormatArg::Qcow2Standalone => "qcow2-standalone",
        };
        let compression = self.compress.map(|c| match c {
            CompressArg::Zlib => CompressionType::Zlib,
            CompressArg::Zstd => CompressionType::Zstd,
        });
        let format = OutputFormat::parse(name, compression).map_err(|_| {
            qfault::Error::Usage(format!(
                "--compress applies to -O qcow2-standalone, not to -O {name}"
            ))
        })?;
        if self.absolute_backing && format != OutputFormat::Overlay {
            return Err(qfault::Error::Usage(format!(
                "--absolute-backing applies to overlays; -O {name} has no backing file"
            )));
        }
        Ok(format)
    }

    fn options(&self) -> OverlayOptions {
        OverlayOptions {
            cluster_size: self.cluster_size,
            backing_name: if self.absolute_backing {
                BackingName::Absolute
            } else {
                BackingName::Relative
            },
            overwrite: self.overwrite,
            sync: !self.no_sync,
        }
    }
}

/// Runs `qfault inject`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let Injection { spec, common } = &args.recipe;
    let format = common.format()?;
    let mut base = common.open.open(&common.base)?;
    let progress = Progress::spinner("inject", "planning, writing and checking the output");
    let out = apply_as(
        &mut base,
        spec,
        &common.output,
        &common.options(),
        format,
        &common.open.options(),
    )?;
    drop(progress);
    if common.json {
        let seconds = out.seconds;
        return print_document(
            serde_json::json!({
                "command": "inject",
                "base_chain": base.chain_info(),
                "output": out,
            }),
            Some(serde_json::json!({ "total_seconds": seconds })),
        );
    }
    outln!("base chain:");
    print_chain(&base.chain_info());
    outln!();
    outln!("recipe: {}", spec.describe());
    outln!();
    print_output(&out);
    Ok(())
}

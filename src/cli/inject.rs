//! `qfault inject`: write a qcow2 overlay holding one kind of damage.

use super::common::{human_size, parse_bytes, print_json, ImageOpts};
use qfault::overlay::{self, BackingName, OverlayOptions, OverlayReport, Patch};
use std::path::PathBuf;

/// Write a new qcow2 overlay, backed by BASE, that holds a change.
///
/// BASE and every image of its chain are opened read-only; only OVERLAY is
/// written (atomically: it is either absent or complete).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub recipe: Recipe,
}

/// The damage to inject.
#[derive(Debug, clap::Subcommand)]
pub enum Recipe {
    /// Zero a guest byte range.
    Zero {
        #[command(flatten)]
        common: OverlayArgs,
        /// First byte to zero (suffixes K, M, G, T, s=512 bytes).
        #[arg(long, value_parser = parse_bytes)]
        offset: u64,
        /// Number of bytes to zero (suffixes as for --offset).
        #[arg(long, value_parser = parse_bytes)]
        length: u64,
    },
    /// Write a file's bytes at a guest offset.
    Write {
        #[command(flatten)]
        common: OverlayArgs,
        /// Where to write (suffixes K, M, G, T, s=512 bytes).
        #[arg(long, value_parser = parse_bytes)]
        offset: u64,
        /// The file whose bytes are written.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

/// Arguments shared by every recipe.
#[derive(Debug, clap::Args)]
pub struct OverlayArgs {
    /// The base image (raw or qcow2, with its backing chain); never written.
    pub base: PathBuf,
    /// The overlay to create.
    #[arg(short = 'o', long = "output", value_name = "OVERLAY")]
    pub output: PathBuf,
    /// Overlay cluster size, a power of two from 512 to 2M.
    #[arg(long, value_parser = parse_bytes, default_value = "64K")]
    pub cluster_size: u64,
    /// Store the base's absolute path instead of a path relative to the overlay's directory.
    #[arg(long)]
    pub absolute_backing: bool,
    /// Replace OVERLAY if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

impl OverlayArgs {
    fn options(&self) -> OverlayOptions {
        OverlayOptions {
            cluster_size: self.cluster_size,
            backing_name: if self.absolute_backing {
                BackingName::Absolute
            } else {
                BackingName::Relative
            },
            overwrite: self.overwrite,
        }
    }
}

/// Runs `qfault inject`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.recipe {
        Recipe::Zero {
            common,
            offset,
            length,
        } => write(
            common,
            vec![Patch::Zero {
                offset: *offset,
                len: *length,
            }],
        ),
        Recipe::Write {
            common,
            offset,
            from,
        } => {
            let bytes = std::fs::read(from).map_err(|e| qfault::Error::io(from, e))?;
            write(
                common,
                vec![Patch::Data {
                    offset: *offset,
                    bytes,
                }],
            )
        }
    }
}

fn write(common: &OverlayArgs, patches: Vec<Patch>) -> anyhow::Result<()> {
    let mut base = common.open.open(&common.base)?;
    let report = overlay::write_overlay(
        &common.base,
        &mut base,
        &patches,
        &common.output,
        &common.options(),
    )?;
    if common.json {
        return print_json(&serde_json::json!({
            "overlay": report,
            "changes": patches.iter().map(|p| serde_json::json!({
                "offset": p.offset(),
                "length": p.len(),
                "kind": match p { Patch::Zero { .. } => "zero", Patch::Data { .. } => "data" },
            })).collect::<Vec<_>>(),
        }));
    }
    for p in &patches {
        println!(
            "changed guest bytes {}..{} ({})",
            p.offset(),
            p.offset() + p.len(),
            human_size(p.len())
        );
    }
    print_overlay(&report);
    Ok(())
}

/// Prints what an overlay holds, for humans.
pub fn print_overlay(r: &OverlayReport) {
    println!("wrote {}", r.path.display());
    println!(
        "  backing file: {} (format {})",
        r.backing_file, r.backing_format
    );
    println!(
        "  {} clusters of {}: {} with data, {} zero-flagged",
        r.data_clusters + r.zero_clusters,
        human_size(r.cluster_size),
        r.data_clusters,
        r.zero_clusters
    );
    println!(
        "  file size {} ({} allocated)",
        human_size(r.file_size),
        human_size(r.allocated_size)
    );
}

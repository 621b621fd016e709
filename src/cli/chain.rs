//! `qfault chain`: a backing chain of N overlays on a base, written by
//! qfault's own writer without reopening the chain per link.

use super::common::{human_size, parse_bytes, ImageOpts, Progress};
use super::report::{prediction_line, print_document};
use qfault::chain::{ChainBuilder, ChainReport, NamePattern};
use qfault::overlay::Status;
use qfault::recipe::Spec;
use std::path::PathBuf;

/// Build a backing chain of DEPTH qcow2 overlays on BASE in DIR.
///
/// Link 1 is backed by BASE, link i by link i-1; each is empty or applies the
/// --each recipe. Every link is planned on the links below it before the
/// first is written, and the chain is written all or nothing: links go to
/// temporary files, each is checked on top of the links below, and only then
/// are they renamed into place. Backing names are relative to DIR, so DIR can
/// move (with --absolute-base, link 1 names BASE by its absolute path). Links
/// that exist with the bytes they would get are left alone, so a re-run is a
/// no-op.
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"command\": \"chain\", \"chain\": {\"base\", \"dir\", \"top\", \"links\": [Output...]}, \"timings\"}; links bottom first, each an Output as `qfault inject --help` shows."))]
pub struct Args {
    /// The base image (raw, qcow2, VMDK, VHDX, VHD or VDI, with its backing chain); never written.
    pub base: PathBuf,
    /// Directory for the links (created if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR", value_parser = super::common::OutputPath)]
    pub dir: PathBuf,
    /// Number of links (at least 1).
    #[arg(long, value_name = "N", value_parser = super::common::at_least_one)]
    pub depth: usize,
    /// Recipe each link applies, written like `qfault inject NAME` without
    /// the overlay arguments: "zero --offset 1M --length 512",
    /// "write --offset 0 --from FILE", "ntfs-boot --partition 2" (see `qfault recipes`).
    #[arg(long, value_name = "RECIPE", default_value = "empty")]
    pub each: String,
    /// Link file names; {i} is the 1-based link number, {i:04} zero-pads it.
    #[arg(long, value_name = "PATTERN", default_value = qfault::chain::DEFAULT_NAME_PATTERN)]
    pub name_pattern: String,
    /// Links' cluster size, a power of two from 512 to 2M.
    #[arg(long, value_parser = parse_bytes, default_value = "64K")]
    pub cluster_size: u64,
    /// Store BASE's absolute path in link 1 (links still name each other relatively).
    #[arg(long)]
    pub absolute_base: bool,
    /// Replace links that exist with other bytes (by default that is an error).
    #[arg(long)]
    pub overwrite: bool,
    /// Do not flush the output to stable storage before reporting it done
    /// (like qemu-img's default output cache mode): faster, still complete or
    /// absent if qfault dies, but possibly lost or torn after a power loss.
    #[arg(long)]
    pub no_sync: bool,
    /// Print the report as JSON (every link).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// Runs `qfault chain`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let recipe =
        Spec::parse(&args.each).map_err(|e| qfault::Error::Usage(format!("--each {e}")))?;
    let builder = ChainBuilder::new(&args.base, &args.dir)
        .depth(args.depth, recipe.clone())
        .name_pattern(NamePattern::parse(&args.name_pattern)?)
        .cluster_size(args.cluster_size)
        .absolute_base(args.absolute_base)
        .overwrite(args.overwrite)
        .sync(!args.no_sync)
        .open_options(args.open.options());
    let progress = Progress::items("chain", args.depth as u64, "links");
    let report = builder.build_with_progress(&mut |i| progress.set(i as u64))?;
    drop(progress);
    if args.json {
        let links: Vec<f64> = report.links.iter().map(|l| l.seconds).collect();
        return print_document(
            serde_json::json!({ "command": "chain", "chain": report }),
            Some(serde_json::json!({ "total_seconds": report.seconds, "links": links })),
        );
    }
    print_summary(&report, &recipe);
    Ok(())
}

fn print_summary(r: &ChainReport, recipe: &Spec) {
    let n = r.links.len();
    outln!(
        "chain of {n} links on {} in {}",
        r.base.display(),
        r.dir.display()
    );
    if let Some(l) = r.links.first() {
        outln!("  each link: {}", recipe.describe());
        outln!("  link 1: {}", prediction_line(&l.targets));
        if let Some(b) = &l.overlay.backing_file {
            outln!("  link 1 backing file: {b}");
        }
    }
    if let Some(top) = &r.top {
        outln!("  top: {}", top.display());
    }
    let count = |s: Status| r.links.iter().filter(|l| l.status == s).count();
    outln!(
        "  {} written, {} unchanged, {} replaced; {} in files ({} allocated)",
        count(Status::Written),
        count(Status::Unchanged),
        count(Status::Replaced),
        human_size(r.file_size()),
        human_size(r.links.iter().map(|l| l.overlay.allocated_size).sum())
    );
    let per_link = if n > 0 {
        format!(" ({:.2} ms per link)", r.seconds * 1000.0 / n as f64)
    } else {
        String::new()
    };
    outln!("  {:.2} s{per_link}", r.seconds);
}

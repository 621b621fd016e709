//! `qfault inject`: write a qcow2 overlay holding one kind of damage.

use super::common::{human_size, parse_bytes, print_chain, print_json, ImageOpts};
use super::report::print_ntfs;
use qfault::overlay::{self, BackingName, OverlayOptions, OverlayReport, Patch};
use qfault::recipe::ntfs_boot::{self, NtfsBootOptions, NtfsBootReport};
use qfault::recipe::select::{partition_by_number, Selection};
use std::path::PathBuf;

/// Write a new qcow2 overlay, backed by BASE, that holds a change.
///
/// BASE and every image of its chain are opened read-only; only OVERLAY is
/// written (atomically: it is either absent or complete).
#[derive(Debug, clap::Args)]
#[command(after_help = super::AFTER_HELP)]
pub struct Args {
    #[command(subcommand)]
    pub recipe: Recipe,
}

/// The damage to inject.
#[derive(Debug, clap::Subcommand)]
pub enum Recipe {
    /// Zero a guest byte range.
    #[command(after_help = super::AFTER_HELP)]
    Zero {
        #[command(flatten)]
        common: OverlayArgs,
        #[command(flatten)]
        part: PartitionArg,
        /// First byte to zero (suffixes K, M, G, T, s=512 bytes).
        #[arg(long, value_parser = parse_bytes)]
        offset: u64,
        /// Number of bytes to zero (suffixes as for --offset).
        #[arg(long, value_parser = parse_bytes)]
        length: u64,
    },
    /// Zero an NTFS partition's primary boot sector: mount fails, ntfsfix repairs it.
    ///
    /// Before writing, qfault checks that ntfsfix will accept the backup boot
    /// sector at the partition's last sector (following ntfsfix's own rules)
    /// and that the repaired volume opens; otherwise it refuses (exit 3).
    /// After writing, it reopens the overlay and checks it changes exactly the
    /// damaged bytes and behaves as predicted, before moving it into place.
    #[command(name = "ntfs-boot", after_help = super::AFTER_HELP)]
    NtfsBoot {
        #[command(flatten)]
        common: OverlayArgs,
        /// The NTFS partition to damage (as `inspect` numbers them; 0 = whole disk).
        /// Default: the disk's only NTFS partition.
        #[arg(long, value_name = "N", conflicts_with = "all")]
        partition: Option<u32>,
        /// Damage every NTFS partition that ntfsfix can repair (others are skipped and listed).
        #[arg(long)]
        all: bool,
        /// Sectors to zero at the partition's start, in the volume's bytes per sector.
        #[arg(long, value_name = "K", default_value_t = 1)]
        sectors: u64,
        /// Write the damage even when ntfsfix will not repair it (the report says so).
        #[arg(long)]
        allow_unrepairable: bool,
    },
    /// Write a file's bytes at a guest offset.
    #[command(after_help = super::AFTER_HELP)]
    Write {
        #[command(flatten)]
        common: OverlayArgs,
        #[command(flatten)]
        part: PartitionArg,
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

/// For recipes that take a guest offset: address a partition instead.
#[derive(Debug, clap::Args)]
pub struct PartitionArg {
    /// Make --offset relative to this partition's start (as `inspect`
    /// numbers partitions) and keep the change inside it.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
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
            part,
            offset,
            length,
        } => write(
            common,
            part,
            |offset| Patch::Zero {
                offset,
                len: *length,
            },
            *offset,
        ),
        Recipe::NtfsBoot {
            common,
            partition,
            all,
            sectors,
            allow_unrepairable,
        } => {
            let selection = match (partition, all) {
                (Some(n), _) => Selection::Number(*n),
                (None, true) => Selection::All,
                (None, false) => Selection::Only,
            };
            let opts = NtfsBootOptions {
                selection,
                sectors: *sectors,
                allow_unrepairable: *allow_unrepairable,
            };
            let mut base = common.open.open(&common.base)?;
            let report = ntfs_boot::run(
                &common.base,
                &mut base,
                &opts,
                &common.output,
                &common.options(),
                &common.open.options(),
            )?;
            if common.json {
                return print_json(&report);
            }
            print_ntfs_boot(&report);
            Ok(())
        }
        Recipe::Write {
            common,
            part,
            offset,
            from,
        } => {
            let bytes = std::fs::read(from).map_err(|e| qfault::Error::io(from, e))?;
            write(
                common,
                part,
                |offset| Patch::Data { offset, bytes },
                *offset,
            )
        }
    }
}

/// Writes one patch at `offset` (relative to `--partition`'s start if given).
fn write(
    common: &OverlayArgs,
    part: &PartitionArg,
    make: impl FnOnce(u64) -> Patch,
    offset: u64,
) -> anyhow::Result<()> {
    let mut base = common.open.open(&common.base)?;
    let patch = match part.partition {
        None => make(offset),
        Some(n) => {
            let p = partition_by_number(&mut base, n)?;
            let patch = make(p.start.saturating_add(offset));
            // The change must stay inside the partition.
            if qfault::image::check_range(offset, patch.len(), p.size).is_err() {
                return Err(qfault::Error::Usage(format!(
                    "range {offset}+{} is past the end of partition {n} ({} bytes)",
                    patch.len(),
                    p.size
                ))
                .into());
            }
            patch
        }
    };
    let patches = vec![patch];
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
        "  {} cluster(s) of {}: {} with data, {} zero-flagged",
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

/// Prints the ntfs-boot report, for humans.
fn print_ntfs_boot(r: &NtfsBootReport) {
    println!("base chain:");
    print_chain(&r.base_chain);
    for t in &r.plan.targets {
        println!();
        println!("damaged {}", t.partition.describe());
        println!(
            "  zeroed guest bytes {}..{} ({} bytes: the primary boot sector{})",
            t.range.start,
            t.range.end,
            t.range.len(),
            if t.range.len() > 512 {
                " and what follows"
            } else {
                ""
            }
        );
        print_ntfs(&t.prediction, "  ");
    }
    for s in &r.plan.skipped {
        println!();
        println!("skipped {}: {}", s.partition.describe(), s.reason);
    }
    println!();
    print_overlay(&r.overlay);
}

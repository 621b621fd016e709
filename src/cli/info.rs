//! `qfault info`: what an image is and what its backing chain holds.

use super::common::{human_size, ImageOpts};
use super::report::print_document;
use std::path::PathBuf;

/// Show an image's format, size and backing chain (like `qemu-img info --backing-chain`).
#[derive(Debug, clap::Args)]
#[command(after_help = super::AFTER_HELP)]
pub struct Args {
    /// The image (raw or qcow2); its backing chain is followed.
    pub image: PathBuf,
    /// Print JSON: {"chain": [...]}, top image first.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// Runs `qfault info`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let image = args.open.open(&args.image)?;
    let chain = image.chain_info();
    if args.json {
        return print_document(serde_json::json!({ "chain": chain }), None);
    }
    for (i, l) in chain.iter().enumerate() {
        if i > 0 {
            outln!();
            outln!("backing file {i}:");
        }
        outln!("image: {}", l.path.display());
        outln!("file format: {}", l.format.name());
        outln!(
            "virtual size: {} ({} bytes)",
            human_size(l.virtual_size),
            l.virtual_size
        );
        outln!(
            "file size: {} ({} bytes)",
            human_size(l.file_size),
            l.file_size
        );
        if let Some(cs) = l.cluster_size {
            outln!("cluster size: {cs}");
        }
        if let Some(v) = l.version {
            outln!("qcow2 version: {v}");
        }
        if let Some(c) = l.compression_type {
            outln!(
                "compression type: {}",
                serde_json::to_value(c)?.as_str().unwrap_or("?")
            );
        }
        if l.extended_l2 {
            outln!("extended l2: true");
        }
        if l.snapshots > 0 {
            outln!(
                "internal snapshots: {} (the active state is read)",
                l.snapshots
            );
        }
        if let Some(b) = &l.backing_file {
            outln!("backing file: {b}");
            outln!(
                "backing file format: {}",
                l.backing_format
                    .as_deref()
                    .unwrap_or("(not recorded; probed)")
            );
        }
    }
    Ok(())
}

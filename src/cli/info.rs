//! `qfault info`: what an image is and what its backing chain holds.

use super::common::{human_size, ImageOpts};
use super::report::print_document;
use std::path::PathBuf;

/// Show an image's format, size and backing chain (like `qemu-img info --backing-chain`).
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"chain\": [Layer...]}, top image first; a Layer is {\"path\", \"format\", \"virtual_size\", \"file_size\", \"cluster_size\", \"version\", \"compression_type\", \"extended_l2\", \"snapshots\", \"backing_file\", \"backing_format\"}. When a backing file cannot be opened, the images read so far and \"error\": {\"message\", \"kind\", \"backing_file\", \"tried\"}; exit 1."))]
pub struct Args {
    /// The image (raw, qcow2, VMDK, VHDX, VHD or VDI); its backing chain is followed.
    pub image: PathBuf,
    /// Print JSON: {"chain": [...]}, top image first.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// Runs `qfault info`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let partial = qfault::image::open_partial(&args.image, &args.open.options());
    let chain = partial.layers;
    let broken = match partial.error {
        // Nothing opened: the error alone says it.
        Some(b) if chain.is_empty() => return Err(b.error.into()),
        other => other,
    };
    if args.json {
        let mut doc = serde_json::json!({ "chain": chain });
        if let Some(b) = &broken {
            doc["error"] = serde_json::to_value(BreakJson::new(b))?;
        }
        print_document(doc, None)?;
        return match broken {
            Some(b) => Err(b.error.into()),
            None => Ok(()),
        };
    }
    print_layers(&chain)?;
    if let Some(b) = broken {
        if let (Some(name), Some(tried)) = (&b.backing_file, &b.tried) {
            outln!();
            outln!("backing file {}: {name}", chain.len());
            outln!("tried: {}", tried.display());
        }
        return Err(b.error.into());
    }
    Ok(())
}

/// The `error` of `info --json` when the chain stops short.
#[derive(serde::Serialize)]
struct BreakJson<'a> {
    message: String,
    kind: qfault::error::ErrorKind,
    backing_file: Option<&'a str>,
    #[serde(flatten, serialize_with = "qfault::json_path::tried")]
    tried: Option<PathBuf>,
}

impl<'a> BreakJson<'a> {
    fn new(b: &'a qfault::image::ChainBreak) -> Self {
        BreakJson {
            message: b.error.to_string(),
            kind: b.error.kind(),
            backing_file: b.backing_file.as_deref(),
            tried: b.tried.clone(),
        }
    }
}

/// Prints each image as `qemu-img info --backing-chain` does.
fn print_layers(chain: &[qfault::image::LayerInfo]) -> anyhow::Result<()> {
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

//! `qfault verify`: what an existing overlay changes and what repair tools will do.

use super::common::{print_chain, print_json, ImageOpts};
use super::report::print_ntfs;
use std::path::PathBuf;

/// Check an existing overlay against its backing: the guest ranges it changes,
/// and for each NTFS partition it touches, what `mount` and `ntfsfix` will do.
#[derive(Debug, clap::Args)]
#[command(after_help = super::AFTER_HELP)]
pub struct Args {
    /// The overlay (a qcow2 with a backing file).
    pub overlay: PathBuf,
    /// Print JSON: {chain, changed: [{start,end}], partitions: [...]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// Runs `qfault verify`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let v = qfault::verify::verify_overlay(&args.overlay, &args.open.options())?;
    if args.json {
        return print_json(&v);
    }
    println!("chain:");
    print_chain(&v.chain);
    println!();
    if v.changed.is_empty() {
        println!("the overlay reads exactly like its backing");
        return Ok(());
    }
    println!("changed guest ranges (512-byte sectors; --json lists exact bytes):");
    for (start, end, differing) in sector_spans(&v.changed) {
        println!(
            "  {start}..{end} ({} bytes, {differing} of them differ)",
            end - start
        );
    }
    for p in &v.partitions {
        println!();
        println!(
            "{}: now identifies as {}",
            p.partition.describe(),
            p.filesystem_now.unwrap_or("nothing")
        );
        if let Some(n) = &p.ntfs {
            print_ntfs(n, "  ");
        }
    }
    Ok(())
}

/// Groups exact byte ranges into runs of whole 512-byte sectors:
/// (start, end, bytes that differ).
fn sector_spans(ranges: &[qfault::verify::ByteRange]) -> Vec<(u64, u64, u64)> {
    const SECTOR: u64 = 512;
    let mut spans: Vec<(u64, u64, u64)> = Vec::new();
    for r in ranges {
        let (s, e) = (r.start / SECTOR * SECTOR, r.end.div_ceil(SECTOR) * SECTOR);
        match spans.last_mut() {
            Some(last) if s <= last.1 => {
                last.1 = last.1.max(e);
                last.2 += r.len();
            }
            _ => spans.push((s, e, r.len())),
        }
    }
    spans
}

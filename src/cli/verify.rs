//! `qfault verify`: what an existing overlay changes and what the tools will
//! do, optionally gated with `--expect`.

use super::common::{print_chain, ImageOpts};
use super::report::{print_document, print_prediction};
use qfault::verify::Expectation;
use std::path::PathBuf;

/// Check an existing overlay against its backing: the guest ranges it
/// changes and, for each partition it touches, what the tools will do.
///
/// With --expect, exit 3 unless the overlay is what is expected, so a CI job
/// can gate on it: `unchanged` (it changes nothing), `repairable` (every
/// partition it touches has a repair predicted to bring it back) or
/// `unrepairable`.
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"chain\": [Layer...], \"changes\": [{\"offset\", \"length\"}], \"partitions\": [{\"partition\", \"changes\", \"filesystem_now\", \"prediction\"}], \"verdict\": unchanged|repairable|unrepairable}."))]
pub struct Args {
    /// The overlay (a qcow2 with a backing file).
    pub overlay: PathBuf,
    /// Exit 3 unless the overlay's verdict is this one.
    #[arg(long, value_enum, value_name = "VERDICT")]
    pub expect: Option<Expectation>,
    /// Print JSON (schema: docs/json.md): {schema, chain, changes, partitions, verdict}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// Runs `qfault verify`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let v = qfault::verify::verify_overlay(&args.overlay, &args.open.options())?;
    if args.json {
        print_document(serde_json::to_value(&v)?, None)?;
    } else {
        print_human(&v);
    }
    match args.expect {
        Some(e) if e != v.verdict => Err(qfault::Error::Refused(format!(
            "{}: expected {}, but the overlay is {}",
            args.overlay.display(),
            word(e),
            word(v.verdict)
        ))
        .into()),
        _ => Ok(()),
    }
}

fn word(e: Expectation) -> &'static str {
    match e {
        Expectation::Unchanged => "unchanged",
        Expectation::Repairable => "repairable",
        Expectation::Unrepairable => "unrepairable",
    }
}

fn print_human(v: &qfault::verify::OverlayVerification) {
    outln!("chain:");
    print_chain(&v.chain);
    outln!();
    if v.changes.is_empty() {
        outln!("the overlay reads exactly like its backing");
        outln!("verdict: {}", word(v.verdict));
        return;
    }
    outln!("changed guest ranges (512-byte sectors; --json lists exact bytes):");
    for (start, end, differing) in sector_spans(&v.changes) {
        outln!(
            "  {start}..{end} ({} bytes, {differing} of them differ)",
            end - start
        );
    }
    for p in &v.partitions {
        outln!();
        outln!(
            "{}: now identifies as {}",
            p.partition.describe(),
            p.filesystem_now.unwrap_or("nothing")
        );
        print_prediction(&p.prediction, "  ");
    }
    outln!();
    outln!("verdict: {}", word(v.verdict));
}

/// Groups exact byte ranges into runs of whole 512-byte sectors:
/// (start, end, bytes that differ).
fn sector_spans(ranges: &[qfault::recipe::Range]) -> Vec<(u64, u64, u64)> {
    const SECTOR: u64 = 512;
    let mut spans: Vec<(u64, u64, u64)> = Vec::new();
    for r in ranges {
        let (s, e) = (
            r.offset / SECTOR * SECTOR,
            r.end().div_ceil(SECTOR) * SECTOR,
        );
        match spans.last_mut() {
            Some(last) if s <= last.1 => {
                last.1 = last.1.max(e);
                last.2 += r.length;
            }
            _ => spans.push((s, e, r.length)),
        }
    }
    spans
}

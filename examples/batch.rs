//! Builds a small backing chain and a batch on testdata/sample.qcow2 in a
//! temporary directory with the library API, and prints the reports.
//!
//! Run from the repository root: `cargo run --example batch`.

use qfault::batch::{Batch, ImageJob};
use qfault::chain::ChainBuilder;
use qfault::recipe::zero::{Zero, ZeroParams};
use qfault::recipe::Spec;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.qcow2");
    let tmp = tempfile::tempdir()?;

    // A chain of five links: two empty, one zeroing partition 2's boot
    // sector (at 17 MiB), two more empty on top.
    // Recipes are written like `--each` takes them, or built from their
    // parameter struct.
    let empty = Spec::parse("empty")?;
    let zero = Spec::new::<Zero>(ZeroParams {
        offset: 17 << 20,
        length: 512,
        partition: None,
    });
    let chain = ChainBuilder::new(&sample, tmp.path().join("chain"))
        .link(empty.clone())
        .link(empty.clone())
        .link(zero)
        .link(empty.clone())
        .link(empty.clone());
    let report = chain.build()?;
    println!("chain in {}:", report.dir.display());
    for link in &report.links {
        println!(
            "  {} <- {} [{}] {} bytes, {:.1} ms, {} target(s)",
            link.path.file_name().unwrap_or_default().to_string_lossy(),
            link.overlay.backing_file.as_deref().unwrap_or("-"),
            link.recipe,
            link.overlay.file_size,
            link.seconds * 1e3,
            link.targets.len()
        );
    }

    // A batch: one overlay and a 20-deep chain of empty links, on two threads.
    let batch = Batch::new()
        .image(ImageJob::new(
            &sample,
            tmp.path().join("mbr-zeroed.qcow2"),
            Spec::parse("zero --offset 0 --length 512")?,
        ))
        .chain(ChainBuilder::new(&sample, tmp.path().join("deep")).depth(20, empty))
        .jobs(2);
    for run in ["first run", "second run (a no-op)"] {
        let report = batch.run()?;
        println!("{run}:");
        for e in &report.entries {
            println!(
                "  {}: {} ({} outputs, {:.1} ms)",
                e.entry,
                e.status.word(),
                e.outputs.len(),
                e.seconds * 1e3
            );
        }
    }
    Ok(())
}

//! Builds a small backing chain and a batch on testdata/sample.qcow2 in a
//! temporary directory with the library API, and prints the reports.
//!
//! Run from the repository root: `cargo run --example batch`.

use qfault::batch::{Batch, ChainBuilder, ImageJob, RecipeSpec};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.qcow2");
    let tmp = tempfile::tempdir()?;

    // A chain of five links: two empty, one zeroing partition 2's boot
    // sector (at 17 MiB), two more empty on top.
    let chain = ChainBuilder::new(&sample, tmp.path().join("chain"))
        .link(RecipeSpec::Empty)
        .link(RecipeSpec::Empty)
        .link(RecipeSpec::Zero {
            offset: 17 << 20,
            length: 512,
        })
        .link(RecipeSpec::Empty)
        .link(RecipeSpec::Empty);
    let report = chain.build()?;
    println!("chain in {}:", report.dir.display());
    for link in &report.links {
        println!(
            "  {} <- {} [{}] {} bytes, {:.1} ms: {}",
            link.path.file_name().unwrap_or_default().to_string_lossy(),
            link.backing_file,
            link.recipe,
            link.file_size,
            link.seconds * 1e3,
            link.prediction
        );
    }

    // A batch: one overlay and a 20-deep chain of empty links, on two threads.
    let batch = Batch::new()
        .image(ImageJob::new(
            &sample,
            tmp.path().join("mbr-zeroed.qcow2"),
            RecipeSpec::Zero {
                offset: 0,
                length: 512,
            },
        ))
        .chain(ChainBuilder::new(&sample, tmp.path().join("deep")).depth(20, RecipeSpec::Empty))
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

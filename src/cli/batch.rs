//! `qfault batch`: produce every image and chain a TOML manifest lists.

use super::common::human_size;
use super::report::{prediction_line, print_document};
use qfault::apply::Output;
use qfault::batch::{Batch, BatchReport, EntryReport, EntryStatus, Shard};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Produce the images and chains a manifest lists (format: README.md, "Chains and batches").
///
/// The whole manifest is validated first (syntax, bases, recipe parameters,
/// outputs); nothing is written if any entry is wrong. Outputs that exist
/// with the bytes they would get are left alone, so a re-run is a no-op.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest (TOML); relative paths in it resolve against its directory.
    pub manifest: PathBuf,
    /// Entries produced at a time, at least 1 (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N", value_parser = super::common::at_least_one)]
    pub jobs: Option<usize>,
    /// Produce only slice I of N (0-based): entry k when k % N == I, entries
    /// counted in manifest order, every [[image]] then every [[chain]].
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    pub shard: Shard,
    /// Replace outputs that exist with other bytes (by default that is an error).
    #[arg(long)]
    pub overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read bases even while another process writes them (like `qemu-img -U`).
    #[arg(short = 'U', long)]
    pub force_share: bool,
    #[command(flatten)]
    pub backing: super::common::BackingOpts,
}

/// Runs `qfault batch`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut batch = Batch::from_manifest(&args.manifest)?
        .shard(args.shard)
        .overwrite(args.overwrite)
        .open_options(qfault::image::OpenOptions {
            force_share: args.force_share,
            backing: args.backing.policy(),
            ..Default::default()
        });
    if let Some(j) = args.jobs {
        batch = batch.jobs(j);
    }
    let total = (0..batch.entries().len())
        .filter(|&k| args.shard.owns(k))
        .count();
    let progress = std::io::stderr().is_terminal() && !args.json;
    let done = AtomicUsize::new(0);
    let mut report = batch.run_with(&|_| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if progress {
            eprint!("\rbatch: {n} of {total} entries");
            if n == total {
                eprintln!();
            }
        }
    })?;
    if args.json {
        let entries: Vec<serde_json::Value> = report
            .entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "entry": e.entry,
                    "seconds": e.seconds,
                    "outputs": e.outputs.iter().map(|o| o.seconds).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_document(
            serde_json::json!({ "command": "batch", "batch": report }),
            Some(serde_json::json!({
                "total_seconds": report.seconds,
                "jobs": report.jobs,
                "entries": entries,
            })),
        )?;
    } else {
        print_table(&report);
    }
    let failed = report.failed();
    match report.take_first_error() {
        Some(e) if failed == 1 => Err(e.into()),
        Some(e) => {
            Err(anyhow::Error::new(e).context(format!("{failed} entries failed; the first")))
        }
        None => Ok(()),
    }
}

/// One table row: an output, or a run of chain links with the same recipe
/// and status.
struct Row {
    entry: String,
    status: &'static str,
    output: String,
    size: u64,
    seconds: f64,
    recipe: String,
    prediction: String,
}

fn rows(e: &EntryReport) -> Vec<Row> {
    if let Some(err) = &e.error {
        return vec![Row {
            entry: e.entry.clone(),
            status: EntryStatus::Failed.word(),
            output: "-".into(),
            size: 0,
            seconds: e.seconds,
            recipe: "-".into(),
            prediction: format!("error: {err}"),
        }];
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut group: Vec<&Output> = Vec::new();
    let flush = |group: &mut Vec<&Output>, rows: &mut Vec<Row>| {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return;
        };
        let output = if group.len() == 1 {
            first.path.display().to_string()
        } else {
            let name = last.path.file_name().unwrap_or_default().to_string_lossy();
            format!("{} .. {name} ({} links)", first.path.display(), group.len())
        };
        rows.push(Row {
            entry: if rows.is_empty() {
                e.entry.clone()
            } else {
                String::new()
            },
            status: first.status.word(),
            output,
            size: group.iter().map(|o| o.overlay.file_size).sum(),
            seconds: group.iter().map(|o| o.seconds).sum(),
            recipe: first.recipe.describe(),
            prediction: prediction_line(&first.targets),
        });
        group.clear();
    };
    for o in &e.outputs {
        if let Some(prev) = group.last() {
            if prev.recipe != o.recipe || prev.status != o.status {
                flush(&mut group, &mut rows);
            }
        }
        group.push(o);
    }
    flush(&mut group, &mut rows);
    rows
}

fn print_table(r: &BatchReport) {
    let rows: Vec<Row> = r.entries.iter().flat_map(rows).collect();
    let head = ["ENTRY", "STATUS", "OUTPUT", "SIZE", "TIME", "RECIPE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|x| {
            [
                x.entry.clone(),
                x.status.to_string(),
                x.output.clone(),
                human_size(x.size),
                format!("{:.2} s", x.seconds),
                x.recipe.clone(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |c: [&str; 6]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        )
    };
    outln!("{}", line(head).trim_end());
    for (c, x) in cells.iter().zip(&rows) {
        outln!(
            "{}",
            line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]).trim_end()
        );
        outln!("{:w$}  -> {}", "", x.prediction, w = w[0]);
    }
    let count = |s: EntryStatus| r.entries.iter().filter(|e| e.status == s).count();
    outln!(
        "{} entries (shard {}, {} jobs): {} written, {} unchanged, {} replaced, {} failed; {:.2} s",
        r.entries.len(),
        r.shard,
        r.jobs,
        count(EntryStatus::Written),
        count(EntryStatus::Unchanged),
        count(EntryStatus::Replaced),
        count(EntryStatus::Failed),
        r.seconds
    );
}

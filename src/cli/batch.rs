//! `qfault batch`: produce every image and chain a TOML manifest lists.

use super::common::{human_size, Progress};
use super::report::{prediction_line, print_document, SCHEMA};
use qfault::apply::Output;
use qfault::batch::{Batch, BatchReport, EntryReport, EntryStatus, Shard};
use std::io::Write;
use std::path::PathBuf;

/// `batch --help`: what the command does and the manifest format, for a
/// user who has the binary only (README.md, "Chains and batches", says the
/// same at more length).
const MANIFEST_HELP: &str = "\
Produce the images and chains a TOML manifest lists.

The whole manifest is validated first (syntax, bases, recipe parameters, outputs); nothing is \
written if any entry is wrong. Entries run in parallel (--jobs); outputs that exist with the bytes \
they would get are left alone, so a re-run is a no-op. A failed entry does not stop the others; the \
exit code is that of the first failure. [[image]] outputs are flushed together and moved into place \
once every entry is done (with --json-lines, each entry's as it finishes).

Manifest format (TOML). Relative paths resolve against the manifest's directory. Byte counts are \
integers or strings with a suffix (\"1M\", \"64K\", \"2048s\"). Unknown fields are errors.

[[image]]  one overlay:
  base = \"disk.qcow2\"         required; raw, qcow2, VMDK, VHDX, VHD or VDI, with its chain; never written
  output = \"out/b.qcow2\"      required; directories are created
  recipe = \"zero\"             required; a recipe of `qfault recipes`
  offset = \"1M\"               the recipe's parameters: the options of `qfault inject NAME` by
  length = 512                their snake_case names (`qfault recipes --json` lists them as
  partition = 2               fields); flags are booleans; `from` is relative to the manifest
  cluster_size = \"64K\"        optional, a power of two from 512 to 2M
  absolute_backing = false    optional; store base's absolute path

[[chain]]  a backing chain, link 1 on base, each link on the previous one:
  base = \"disk.qcow2\"         required
  dir = \"chains/c1\"           required; created
  depth = 3                   either depth (each link applies `each`) ...
  each = { recipe = \"zero\", offset = \"1M\", length = 512 }    default { recipe = \"empty\" }
  links = [ { recipe = \"empty\" }, { recipe = \"ntfs-boot\", partition = 2 } ]
                              ... or links: one inline table per link, bottom first
  name_pattern = \"link-{i:04}.qcow2\"   optional; {i} or {i:0W} is the link number
  cluster_size = \"64K\"        optional
  absolute_base = false       optional; link 1 stores base's absolute path

Entries are numbered in manifest order, every [[image]] then every [[chain]], from 0 (--shard). \
Errors name them image[K], chain[K], chain[K].links[J], chain[K].each, with the field: \
`m.toml: image[3].offset: range ... is past the end of the disk`.";

/// Produce the images and chains a TOML manifest lists (format: `qfault batch --help`).
#[derive(Debug, clap::Args)]
#[command(long_about = MANIFEST_HELP)]
#[command(after_help = footer!("{\"schema\": 1, \"command\": \"batch\", \"batch\": {\"manifest\", \"shard\", \"entries\": [{\"entry\", \"index\", \"outputs\": [Output...], \"status\", \"error\"}]}, \"timings\"}; Output as `qfault inject --help` shows."))]
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
    /// Do not flush the outputs to stable storage before reporting them done
    /// (like qemu-img's default output cache mode): faster, still complete or
    /// absent if qfault dies, but possibly lost or torn after a power loss.
    /// By default the outputs are flushed together, once per run (with
    /// --json-lines, each entry's as it finishes).
    #[arg(long)]
    pub no_sync: bool,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "json_lines")]
    pub json: bool,
    /// Stream JSON lines instead of a table: one object per entry as soon
    /// as it finishes, its outputs in place (in order of completion,
    /// flushed; each entry's outputs are flushed on their own), then one summary.
    /// Entry lines: {"schema":1, "event":"entry", "entry", "index", "outputs",
    /// "status", "error", "timings":{"seconds"}}; the last line:
    /// {"schema":1, "event":"summary", "manifest", "shard", "entries",
    /// "written", "unchanged", "replaced", "failed", "timings":{"total_seconds",
    /// "jobs"}} (docs/json.md).
    #[arg(long)]
    pub json_lines: bool,
    /// How every base of the manifest is opened: `-f`, `--max-depth`, `-U`
    /// (read bases even while another process writes them, like `qemu-img
    /// -U`), `--probe-backing`, `--backing-root`.
    #[command(flatten)]
    pub open: super::common::ImageOpts,
}

/// Runs `qfault batch`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut batch = Batch::from_manifest(&args.manifest)?
        .shard(args.shard)
        .overwrite(args.overwrite)
        .sync(!args.no_sync)
        .open_options(args.open.options());
    if let Some(j) = args.jobs {
        batch = batch.jobs(j);
    }
    let total = (0..batch.entries().len())
        .filter(|&k| args.shard.owns(k))
        .count();
    let progress = Progress::items("batch", total as u64, "entries");
    // The first error printing a JSON line; the batch itself goes on.
    let stream_error: std::sync::Mutex<Option<anyhow::Error>> = std::sync::Mutex::new(None);
    // Streaming JSON lines: each entry is placed (and flushed) as it
    // finishes, so its line means its outputs are there. Otherwise every
    // output is flushed once, together, at the end of the run.
    let mut report = if args.json_lines {
        batch.run_with(&|e| {
            progress.inc();
            if let Err(err) = entry_line(e).and_then(print_line) {
                stream_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(err);
            }
        })?
    } else {
        batch.run_with_progress(&|_| progress.inc())?
    };
    drop(progress);
    if let Some(e) = stream_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.context("printing the JSON lines"));
    }
    if args.json_lines {
        summary_line(&report).and_then(print_line)?;
    } else if args.json {
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

/// Prints one line on stdout and flushes it, so a reader sees it now.
fn print_line(line: String) -> anyhow::Result<()> {
    super::common::write_pending_out()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The `--json-lines` object for one finished entry (one line, no newline).
fn entry_line(e: &EntryReport) -> anyhow::Result<String> {
    let mut doc = serde_json::Map::new();
    doc.insert("schema".into(), SCHEMA.into());
    doc.insert("event".into(), "entry".into());
    if let serde_json::Value::Object(m) = serde_json::to_value(e)? {
        doc.extend(m);
    }
    doc.insert(
        "timings".into(),
        serde_json::json!({ "seconds": e.seconds }),
    );
    Ok(serde_json::Value::Object(doc).to_string())
}

/// The `--json-lines` summary, the last line.
fn summary_line(r: &BatchReport) -> anyhow::Result<String> {
    let count = |s: EntryStatus| r.entries.iter().filter(|e| e.status == s).count();
    Ok(serde_json::json!({
        "schema": SCHEMA,
        "event": "summary",
        "manifest": serde_json::to_value(&r.manifest)?,
        "shard": r.shard,
        "entries": r.entries.len(),
        "written": count(EntryStatus::Written),
        "unchanged": count(EntryStatus::Unchanged),
        "replaced": count(EntryStatus::Replaced),
        "failed": count(EntryStatus::Failed),
        "timings": { "total_seconds": r.seconds, "jobs": r.jobs },
    })
    .to_string())
}

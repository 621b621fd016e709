//! Human-readable renderings shared by `inject`, `chain`, `batch`,
//! `verify` and `recipes`, and the JSON envelope every `--json` uses.

use super::common::human_size;
use qfault::apply::{Output, OutputFormat};
use qfault::image::qcow2::header::CompressionType;
use qfault::recipe::{Outcome, Prediction, Target};
use qfault::standalone::RawCopy;

/// The version of the JSON schema (`docs/json.md`), the first key of every
/// JSON document qfault prints.
pub const SCHEMA: u32 = 1;

/// Prints `body` (a JSON object) with `"schema": 1` first and, when given,
/// `timings` last.
pub fn print_document(
    body: serde_json::Value,
    timings: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let mut doc = serde_json::Map::new();
    doc.insert("schema".into(), SCHEMA.into());
    match body {
        serde_json::Value::Object(m) => doc.extend(m),
        other => {
            doc.insert("result".into(), other);
        }
    }
    if let Some(t) = timings {
        doc.insert("timings".into(), t);
    }
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// One outcome in one line: `mount: ntfs-3g PART MNT -> refused (exit 12): "…"`.
pub fn outcome_line(o: &Outcome) -> String {
    let result = o.result.as_str().unwrap_or("nothing");
    let mut line = format!(
        "{:<13} {} -> {result} (exit {})",
        format!("{}:", o.role.as_str()),
        o.command,
        o.exit_code
    );
    if let Some(m) = &o.message {
        line += &format!(": \"{m}\"");
    }
    line
}

/// Prints a prediction, each line prefixed by `indent`.
pub fn print_prediction(p: &Prediction, indent: &str) {
    for o in &p.outcomes {
        outln!("{indent}{}", outcome_line(o));
    }
    if p.byte_identical_after_repair {
        outln!("{indent}the repair restores the base byte for byte");
    }
    let mut versions: Vec<&str> = Vec::new();
    for v in p.outcomes.iter().filter_map(|o| o.verified_with.as_deref()) {
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    if !versions.is_empty() {
        outln!("{indent}verified with {}", versions.join(", "));
    }
    for n in &p.notes {
        outln!("{indent}{n}");
    }
}

/// Prints one target: where, what changed, what the tools will do.
pub fn print_target(t: &Target) {
    match &t.partition {
        Some(p) => outln!("damaged {}", p.describe()),
        None => outln!("changed the disk"),
    }
    for c in &t.changes {
        outln!(
            "  guest bytes {}..{} ({})",
            c.offset,
            c.end(),
            human_size(c.length)
        );
    }
    print_prediction(&t.prediction, "  ");
}

/// Prints an output written by the one write path.
pub fn print_output(o: &Output) {
    for t in &o.targets {
        print_target(t);
        outln!();
    }
    for s in &o.skipped {
        outln!("skipped {}: {}", s.partition.describe(), s.reason);
        outln!();
    }
    let r = &o.overlay;
    // An overlay's line stays "written PATH"; a standalone file names its
    // format.
    match o.output_format {
        OutputFormat::Overlay => outln!("{} {}", o.status.word(), r.path.display()),
        f => outln!("{} {} ({})", o.status.word(), r.path.display(), f.name()),
    }
    if let (Some(file), Some(format)) = (&r.backing_file, &r.backing_format) {
        outln!("  backing file: {file} (format {format})");
    }
    if let (Some(cs), Some(data), Some(zero)) = (r.cluster_size, r.data_clusters, r.zero_clusters) {
        let mut line = format!(
            "  {} cluster(s) of {}: {data} with data",
            data + zero,
            human_size(cs)
        );
        if r.backing_file.is_some() {
            line += &format!(", {zero} zero-flagged");
        }
        if let (Some(kind), Some(n)) = (r.compression, r.compressed_clusters) {
            line += &format!(", {n} compressed ({})", kind_name(kind));
        }
        outln!("{line}");
    }
    match r.raw_copy {
        Some(RawCopy::Reflink) => {
            outln!("  a reflink clone of the base: unchanged blocks are shared with it")
        }
        Some(RawCopy::SparseCopy) => outln!("  a sparse copy of the guest (zeros left as holes)"),
        _ => {}
    }
    outln!(
        "  file size {} ({} allocated)",
        human_size(r.file_size),
        human_size(r.allocated_size)
    );
}

/// The compression's name as the options spell it.
fn kind_name(kind: CompressionType) -> &'static str {
    match kind {
        CompressionType::Zlib => "zlib",
        CompressionType::Zstd => "zstd",
    }
}

/// The targets' predictions in one line (for tables).
pub fn prediction_line(targets: &[Target]) -> String {
    let parts: Vec<String> = targets
        .iter()
        .map(|t| {
            let what = t
                .partition
                .as_ref()
                .map_or("disk".to_string(), |p| format!("partition {}", p.number));
            format!("{what}: {}", t.prediction.one_line())
        })
        .collect();
    parts.join("; ")
}

//! `qfault map`: which image of the chain provides each guest range.

use super::common::{human_size, ImageOpts};
use super::report::print_document;
use qfault::image::ReadAt;
use std::path::PathBuf;

/// Show which image of the chain provides each guest range, and which ranges
/// read as zeros (in the spirit of `qemu-img map --output=json`).
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"extents\": [{\"offset\", \"length\", \"depth\", \"present\", \"zero\", \"data\", \"compressed\", \"file\"}]}: consecutive guest ranges, each with the image that provides it."))]
pub struct Args {
    /// The image (raw or qcow2); its backing chain is followed.
    pub image: PathBuf,
    /// Print JSON (schema: docs/json.md): {schema, extents: [{offset, length, depth, present, zero, data, compressed, file}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// One merged run of the map.
#[derive(Debug, serde::Serialize)]
struct Row {
    #[serde(rename = "offset")]
    start: u64,
    length: u64,
    /// Index of the providing image (0 = top); the chain length when none does.
    depth: usize,
    present: bool,
    zero: bool,
    data: bool,
    compressed: bool,
    #[serde(flatten, serialize_with = "qfault::json_path::file")]
    file: Option<PathBuf>,
}

/// Runs `qfault map`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut image = args.open.open(&args.image)?;
    let chain = image.chain_info();
    let size = image.size();
    let mut rows: Vec<Row> = Vec::new();
    let mut pos = 0;
    while pos < size {
        let e = image.extent(pos, size - pos)?;
        let depth = e.depth.unwrap_or(chain.len());
        match rows.last_mut() {
            Some(r)
                if r.depth == depth
                    && r.zero == e.zero
                    && r.data == e.data
                    && r.compressed == e.compressed =>
            {
                r.length += e.length
            }
            _ => rows.push(Row {
                start: pos,
                length: e.length,
                depth,
                present: e.depth.is_some(),
                zero: e.zero,
                data: e.data,
                compressed: e.compressed,
                file: e.depth.map(|d| chain[d].path.clone()),
            }),
        }
        pos += e.length;
    }
    if args.json {
        return print_document(serde_json::json!({ "extents": rows }), None);
    }
    outln!(
        "{:>16} {:>16} {:>12}  {:<10} file",
        "start",
        "length",
        "size",
        "kind"
    );
    for r in &rows {
        let kind = match (r.present, r.zero, r.compressed) {
            (false, _, _) => "zero",
            (true, true, _) => "zero-flag",
            (true, false, true) => "compressed",
            (true, false, false) => "data",
        };
        let file = r.file.as_ref().map_or("-".to_string(), |f| {
            format!("{} (depth {})", f.display(), r.depth)
        });
        outln!(
            "{:>#16x} {:>#16x} {:>12}  {:<10} {file}",
            r.start,
            r.length,
            human_size(r.length),
            kind
        );
    }
    Ok(())
}

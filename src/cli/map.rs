//! `qfault map`: which image of the chain provides each guest range.

use super::common::{human_size, ImageOpts};
use super::report::print_document;
use qfault::image::ReadAt;
use std::path::PathBuf;

/// Show which image of the chain provides each guest range, and which ranges
/// read as zeros, with the semantics of `qemu-img map --output=json`.
///
/// Ranges are merged as qemu-img merges them: same depth and attributes,
/// and host offsets (where there are some) contiguous.
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"extents\": [{\"offset\", \"length\", \"depth\", \"present\", \"zero\", \"data\", \"compressed\", \"file\"}]}: consecutive guest ranges, each with the image that provides it."))]
pub struct Args {
    /// The image (raw, qcow2, VMDK, VHDX, VHD or VDI); its backing chain is followed.
    pub image: PathBuf,
    /// Print JSON (schema: docs/json.md): {schema, extents: [{start, length,
    /// depth, present, zero, data, compressed, offset?, file}]}, the keys and
    /// values of `qemu-img map --output=json` plus `file`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// One merged run of the map, as qemu-img prints it.
#[derive(Debug, serde::Serialize)]
struct Row {
    /// First guest byte.
    start: u64,
    length: u64,
    /// Index of the image that answered (0 = top): the one providing the
    /// bytes, else the deepest one consulted.
    depth: usize,
    /// Some image provides the bytes.
    present: bool,
    zero: bool,
    data: bool,
    compressed: bool,
    /// Offset of `start` in that image's file, where the bytes have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    /// The file of the image at `depth`.
    #[serde(flatten, serialize_with = "qfault::json_path::file")]
    file: PathBuf,
}

impl Row {
    /// qemu-img's `entry_mergeable`: `next` continues this row.
    fn continued_by(&self, next: &Row) -> bool {
        self.depth == next.depth
            && self.present == next.present
            && self.zero == next.zero
            && self.data == next.data
            && self.compressed == next.compressed
            && match (self.offset, next.offset) {
                (None, None) => true,
                (Some(a), Some(b)) => a + self.length == b,
                _ => false,
            }
    }
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
        let row = Row {
            start: pos,
            length: e.length,
            depth: e.layer,
            present: e.depth.is_some(),
            zero: e.zero,
            data: e.data,
            compressed: e.compressed,
            offset: e.host_offset,
            file: chain[e.layer].path.clone(),
        };
        match rows.last_mut() {
            Some(r) if r.continued_by(&row) => r.length += row.length,
            _ => rows.push(row),
        }
        pos += e.length;
    }
    if args.json {
        return print_document(serde_json::json!({ "extents": rows }), None);
    }
    outln!(
        "{:>16} {:>16} {:>12}  {:<10} {:>16}  file",
        "start",
        "length",
        "size",
        "kind",
        "offset"
    );
    for r in &rows {
        let kind = match (r.present, r.zero, r.compressed) {
            (false, _, _) => "zero",
            (true, true, _) => "zero-flag",
            (true, false, true) => "compressed",
            (true, false, false) => "data",
        };
        let offset = r.offset.map_or("-".to_string(), |o| format!("{o:#x}"));
        let file = if r.present {
            format!("{} (depth {})", r.file.display(), r.depth)
        } else {
            "-".to_string()
        };
        outln!(
            "{:>#16x} {:>#16x} {:>12}  {:<10} {offset:>16}  {file}",
            r.start,
            r.length,
            human_size(r.length),
            kind
        );
    }
    Ok(())
}

//! `qfault inspect`: the chain, the partition table and the filesystem in each partition.

use super::common::{human_size, print_chain, ImageOpts};
use super::report::print_document;
use qfault::fs::{NtfsGeometry, Signatures};
use qfault::image::{ReadAt, Window};
use qfault::layout::{read_layout_probed, DiskLayout, Partition, Probed};
use std::path::PathBuf;

/// Show the partition table and the filesystem in each partition.
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"chain\": [Layer...] (as `info`), \"table\": mbr|gpt|none, \"sector_size\", \"disk_size\", \"gpt\", \"disk_id\", \"warnings\", \"partitions\": [{\"number\", \"offset\", \"length\", \"type\", \"type_name\", \"bootable\", \"role\", \"name\", \"partuuid\", \"filesystem\", \"label\", \"uuid\", \"version\", \"ntfs\"}]}; byte offsets and lengths in the guest."))]
pub struct Args {
    /// The disk image (raw, qcow2, VMDK, VHDX, VHD or VDI; its backing chain is followed).
    pub image: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// One partition row of the JSON output.
#[derive(Debug, serde::Serialize)]
struct Row<'a> {
    number: u32,
    #[serde(rename = "offset")]
    start: u64,
    #[serde(rename = "length")]
    size: u64,
    #[serde(rename = "type")]
    ptype: Option<String>,
    type_name: Option<&'static str>,
    bootable: bool,
    role: Option<qfault::layout::MbrRole>,
    name: Option<&'a str>,
    partuuid: Option<String>,
    filesystem: Option<&'static str>,
    label: Option<&'a str>,
    uuid: Option<&'a str>,
    version: Option<&'a str>,
    ntfs: Option<&'a NtfsGeometry>,
    /// Every signature found when blkid's result is ambivalent (then
    /// `filesystem`, `label` and `uuid` are null, as blkid reports none).
    ambivalent: Vec<&'static str>,
}

impl<'a> Row<'a> {
    fn new(p: &'a Partition, sig: &'a Signatures) -> Self {
        let ambivalent = if sig.ambivalent() {
            sig.types()
        } else {
            Vec::new()
        };
        let fs = sig.found.first().filter(|_| ambivalent.is_empty());
        Row {
            number: p.number,
            start: p.start,
            size: p.size,
            ptype: p.ptype.code(),
            type_name: p.type_name,
            bootable: p.bootable,
            role: p.mbr_role,
            name: p.name.as_deref(),
            partuuid: p.uuid.map(|g| g.to_string()),
            filesystem: fs.map(|f| f.fstype),
            label: fs.and_then(|f| f.label.as_deref()),
            uuid: fs.and_then(|f| f.uuid.as_deref()),
            version: fs.and_then(|f| f.version.as_deref()),
            ntfs: fs.and_then(|f| f.ntfs.as_ref()),
            ambivalent,
        }
    }
}

/// Identifies the filesystem of every partition that lies on the disk;
/// extended partitions are containers and are not probed.
fn probe_all(
    disk: &mut dyn ReadAt,
    layout: &mut DiskLayout,
    probed: &Probed,
) -> anyhow::Result<Vec<Signatures>> {
    let mut out = Vec::with_capacity(layout.partitions.len());
    for p in &layout.partitions {
        if p.is_extended() {
            out.push(Signatures::default());
            continue;
        }
        match Window::new(&mut *disk, p.start, p.size) {
            Ok(mut w) => {
                // Probed already when the MBR's sector size was guessed.
                let sig = match probed.get(p.start, p.size) {
                    Some(sig) => sig.clone(),
                    None => qfault::fs::probe_all(&mut w)?,
                };
                if sig.ambivalent() {
                    layout.warnings.push(format!(
                        "partition {} holds several filesystem signatures ({}): blkid -p reports \"ambivalent result\" (exit 8) and no type; \
                         recipes act on it only when the filesystem is named with --fs",
                        p.number,
                        sig.types().join(", ")
                    ));
                }
                out.push(sig);
            }
            Err(_) => {
                layout.warnings.push(format!(
                    "partition {} is not probed: it does not lie within the disk",
                    p.number
                ));
                out.push(Signatures::default());
            }
        }
    }
    Ok(out)
}

/// Runs `qfault inspect`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut image = args.open.open(&args.image)?;
    let chain = image.chain_info();
    let mut probed = Probed::default();
    let mut layout = read_layout_probed(&mut image, &mut probed)?;
    let fs = probe_all(&mut image, &mut layout, &probed)?;
    // blkid's PTUUID: the MBR disk identifier, or the GPT disk GUID.
    let mbr_id = match layout.table {
        qfault::layout::TableKind::Dos => qfault::layout::mbr::disk_identifier(&mut image)?,
        _ => None,
    };
    let disk_id = match (&layout.gpt, mbr_id) {
        (Some(g), _) => Some(g.disk_guid.to_string()),
        (None, Some(id)) => Some(format!("{id:08x}")),
        _ => None,
    };
    let rows: Vec<Row> = layout
        .partitions
        .iter()
        .zip(&fs)
        .map(|(p, f)| {
            let mut r = Row::new(p, f);
            if let (None, Some(id), 1..) = (&r.partuuid, mbr_id, p.number) {
                r.partuuid = Some(qfault::layout::mbr::partuuid(id, p.number));
            }
            r
        })
        .collect();
    if args.json {
        return print_document(
            serde_json::json!({
                "chain": chain,
                "table": layout.table,
                "sector_size": layout.sector_size,
                "disk_size": layout.disk_size,
                "gpt": layout.gpt,
                "disk_id": disk_id,
                "warnings": layout.warnings,
                "partitions": rows,
            }),
            None,
        );
    }
    outln!("chain:");
    print_chain(&chain);
    let mut table = format!(
        "partition table: {} ({}-byte sectors)",
        layout.table.as_str(),
        layout.sector_size
    );
    if layout.gpt.as_ref().is_some_and(|g| g.used_backup) {
        table += ", read from the backup GPT header";
    }
    if let Some(id) = &disk_id {
        table += &format!(", disk identifier {id}");
    }
    outln!("{table}");
    for w in &layout.warnings {
        outln!("warning: {w}");
    }
    if rows.is_empty() {
        outln!("no partitions and no filesystem found");
        return Ok(());
    }
    outln!();
    print_rows(&rows);
    Ok(())
}

/// The TYPE cell: `0x07 HPFS/NTFS/exFAT` for MBR; the readable name, else
/// the GUID, for GPT (a GUID and a name side by side are too wide).
fn type_cell(r: &Row) -> String {
    match (&r.ptype, r.type_name) {
        (Some(c), Some(n)) if c.starts_with("0x") => format!("{c} {n}"),
        (_, Some(n)) => n.to_string(),
        (Some(c), None) => c.clone(),
        (None, None) => "-".to_string(),
    }
}

/// Prints the partitions as an aligned table; a NAME column appears when
/// any partition has a (GPT) name.
fn print_rows(rows: &[Row]) {
    let with_names = rows.iter().any(|r| r.name.is_some());
    let mut header = vec!["#", "START", "SIZE", "TYPE", "BOOT"];
    if with_names {
        header.push("NAME");
    }
    header.extend(["FILESYSTEM", "LABEL", "UUID"]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.number.to_string(),
                r.start.to_string(),
                format!("{} ({})", r.size, human_size(r.size)),
                type_cell(r),
                if r.bootable { "*" } else { "" }.to_string(),
            ];
            if with_names {
                c.push(r.name.unwrap_or("").to_string());
            }
            c.extend([
                if r.ambivalent.is_empty() {
                    r.filesystem.unwrap_or("-").to_string()
                } else {
                    format!("ambivalent: {}", r.ambivalent.join("+"))
                },
                r.label.unwrap_or("").to_string(),
                r.uuid.unwrap_or("").to_string(),
            ]);
            c
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut out = String::new();
        for (i, (s, &w)) in c.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            // Numbers right-aligned, text left-aligned.
            if i <= 1 {
                out.push_str(&format!("{s:>w$}"));
            } else {
                out.push_str(&format!("{s:<w$}"));
            }
        }
        outln!("{}", out.trim_end());
    };
    let header: Vec<String> = header.into_iter().map(String::from).collect();
    line(&header);
    for c in &cells {
        line(c);
    }
}

//! The `ntfs-boot` recipe: zero the primary boot sector of an NTFS partition,
//! so `mount` fails ("NTFS signature is missing"), while `ntfsfix` restores
//! it from the backup boot sector at the partition's last sector.
//!
//! [`plan`] chooses the partitions, checks before anything is written that
//! ntfsfix will accept the backup (following its real rules, see
//! [`crate::fs::ntfs::predict_ntfsfix`]) and that the repaired volume opens
//! with a pure-Rust NTFS reader. [`run`] writes the overlay and, before
//! moving it into place, reopens it through the chain and checks that it
//! changes exactly the planned bytes and behaves as predicted.

use super::predict::{predict_ntfs, NtfsPrediction};
use super::select::{self, Found, Selection};
use crate::error::{Error, Result};
use crate::image::{self, Image, LayerInfo, OpenOptions, ReadAt, Window};
use crate::overlay::{write_overlay_checked, OverlayOptions, OverlayReport, Patch, Preview};
use crate::verify::{verify_overlay, ByteRange};
use std::path::Path;

/// Options of the recipe.
#[derive(Debug, Clone)]
pub struct NtfsBootOptions {
    /// Which NTFS partition(s) to damage.
    pub selection: Selection,
    /// How many sectors to zero at the partition's start, in the volume's
    /// bytes per sector.
    pub sectors: u64,
    /// Write even when ntfsfix will not be able to repair the damage.
    pub allow_unrepairable: bool,
}

impl Default for NtfsBootOptions {
    fn default() -> Self {
        NtfsBootOptions {
            selection: Selection::Only,
            sectors: 1,
            allow_unrepairable: false,
        }
    }
}

/// One partition the recipe damages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// The partition and its (undamaged) filesystem.
    pub partition: Found,
    /// The guest bytes zeroed.
    pub range: ByteRange,
    /// What `mount` and `ntfsfix` will do afterwards.
    pub prediction: NtfsPrediction,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsBootPlan {
    /// The partitions to damage.
    pub targets: Vec<Target>,
    /// With `--all`: NTFS partitions left alone because ntfsfix could not
    /// repair them, with the reason.
    pub skipped: Vec<Skipped>,
}

/// An NTFS partition `--all` leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The partition.
    pub partition: Found,
    /// Why it is not damaged.
    pub reason: String,
}

impl NtfsBootPlan {
    /// The guest changes: one zeroed range per target.
    pub fn patches(&self) -> Vec<Patch> {
        self.targets
            .iter()
            .map(|t| Patch::Zero {
                offset: t.range.start,
                len: t.range.len(),
            })
            .collect()
    }
}

/// The report of [`run`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsBootReport {
    /// The base's chain, top first.
    pub base_chain: Vec<LayerInfo>,
    /// What was damaged and what will happen.
    pub plan: NtfsBootPlan,
    /// The overlay written.
    pub overlay: OverlayReport,
}

/// Chooses the partitions and checks, without writing, that the damage is
/// what `opts` allows.
pub fn plan(base: &mut Image, opts: &NtfsBootOptions) -> Result<NtfsBootPlan> {
    if opts.sectors == 0 {
        return Err(Error::Usage("--sectors must be at least 1".into()));
    }
    let found = select::partitions(base)?;
    let chosen = select::select(&found, "ntfs", opts.selection)?;
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for f in chosen {
        let bps = f
            .filesystem
            .as_ref()
            .and_then(|fs| fs.ntfs.as_ref())
            .map_or(512, |g| u64::from(g.bytes_per_sector));
        let p = &f.partition;
        let len = opts
            .sectors
            .checked_mul(bps)
            .filter(|&l| l <= p.size)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--sectors {} × {bps} bytes does not fit in {}",
                    opts.sectors,
                    f.describe()
                ))
            })?;
        let range = ByteRange {
            start: p.start,
            end: p.start + len,
        };
        let damaged = vec![Patch::Zero {
            offset: range.start,
            len,
        }];
        let original = base.read_vec(p.start, 512)?;
        let mut view = Window::new(Preview::new(&mut *base, damaged), p.start, p.size)?;
        let prediction = predict_ntfs(&mut view, Some(&original))?;
        if !prediction.repairable() && !opts.allow_unrepairable {
            let reason = unrepairable_reason(&prediction);
            if opts.selection == Selection::All {
                skipped.push(Skipped {
                    partition: f,
                    reason,
                });
                continue;
            }
            return Err(Error::Refused(format!(
                "{}: {reason} (pass --allow-unrepairable to write it anyway)",
                f.describe()
            )));
        }
        targets.push(Target {
            partition: f,
            range,
            prediction,
        });
    }
    if targets.is_empty() {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.partition.describe(), s.reason))
            .collect();
        return Err(Error::Refused(format!(
            "no NTFS partition can be damaged repairably: {}",
            reasons.join("; ")
        )));
    }
    Ok(NtfsBootPlan { targets, skipped })
}

/// Why a prediction says the damage is not repairable, in one line.
pub fn unrepairable_reason(p: &NtfsPrediction) -> String {
    if !p.ntfsfix.repairable() {
        p.ntfsfix.summary()
    } else {
        format!(
            "ntfsfix would rewrite the boot sector, but the repaired volume does not open: {}",
            p.after_repair_problem
                .as_deref()
                .unwrap_or("unknown problem")
        )
    }
}

/// Plans, writes the overlay at `out` backed by `base` (opened from
/// `base_path`), verifies it before moving it into place, and reports.
pub fn run(
    base_path: &Path,
    base: &mut Image,
    opts: &NtfsBootOptions,
    out: &Path,
    overlay_opts: &OverlayOptions,
    open_opts: &OpenOptions,
) -> Result<NtfsBootReport> {
    let plan = plan(base, opts)?;
    let patches = plan.patches();
    let overlay = write_overlay_checked(base_path, base, &patches, out, overlay_opts, |tmp| {
        check_written(tmp, &plan, open_opts)
    })?;
    Ok(NtfsBootReport {
        base_chain: base.chain_info(),
        plan,
        overlay,
    })
}

/// Reopens the written overlay through its chain and checks it against the plan.
fn check_written(path: &Path, plan: &NtfsBootPlan, open_opts: &OpenOptions) -> Result<()> {
    let fail =
        |why: String| Error::Guest(format!("verification of the written overlay failed: {why}"));
    let v = verify_overlay(path, open_opts)?;
    let planned: Vec<ByteRange> = plan.targets.iter().map(|t| t.range).collect();
    for r in &v.changed {
        if !planned.iter().any(|p| p.start <= r.start && r.end <= p.end) {
            return Err(fail(format!(
                "guest bytes {}..{} changed outside the damaged ranges",
                r.start, r.end
            )));
        }
    }
    let mut top = image::open(path, open_opts)?;
    for t in &plan.targets {
        if !reads_zeros(&mut top, t.range)? {
            return Err(fail(format!(
                "guest bytes {}..{} do not read as zeros",
                t.range.start, t.range.end
            )));
        }
        let Some(verdict) = v
            .partitions
            .iter()
            .find(|p| p.partition.partition.number == t.partition.partition.number)
        else {
            return Err(fail(format!(
                "{} reads the same as in the base",
                t.partition.describe()
            )));
        };
        if verdict.filesystem_now == Some("ntfs") {
            return Err(fail(format!(
                "{} still identifies as NTFS",
                t.partition.describe()
            )));
        }
        if verdict.ntfs.as_ref() != Some(&t.prediction) {
            return Err(fail(format!(
                "{}: the written overlay does not behave as predicted",
                t.partition.describe()
            )));
        }
    }
    Ok(())
}

/// Whether every byte of `range` reads as zero (read in bounded chunks).
fn reads_zeros(disk: &mut dyn ReadAt, range: ByteRange) -> Result<bool> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK.min(range.len()) as usize];
    let mut pos = range.start;
    while pos < range.end {
        let n = (range.end - pos).min(CHUNK) as usize;
        disk.read_at(pos, &mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

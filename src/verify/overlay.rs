//! Verifying an existing overlay against its backing chain: which guest
//! ranges it changes, which partitions those fall in, and what the tools
//! will do with each partition it touches (each recipe's model says what it
//! knows, see [`crate::recipe::Recipe::verify`]).

use super::diff::changed_ranges;
use crate::error::{Error, Result};
use crate::fs;
use crate::image::{self, LayerInfo, OpenOptions, ReadAt, Window};
use crate::overlay::{Patch, Preview};
use crate::recipe::select;
use crate::recipe::{exfat_boot_checksum, fat};
use crate::recipe::{Outcome, PartitionRef, Prediction, Range, Role, RECIPES};
use serde::Serialize;
use std::path::Path;

/// What an overlay does to one partition it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionVerdict {
    /// The partition as the backing chain has it (undamaged).
    pub partition: PartitionRef,
    /// The changed guest ranges inside it.
    pub changes: Vec<Range>,
    /// What the partition identifies as through the overlay (blkid TYPE).
    pub filesystem_now: Option<&'static str>,
    /// What the tools will do (at least what `blkid -p` reports).
    pub prediction: Prediction,
}

/// What an overlay is expected to be, for `verify --expect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// It changes nothing.
    Unchanged,
    /// It changes something, and every partition it touches has a repair
    /// predicted to bring it back.
    Repairable,
    /// It changes something no predicted repair brings back (a repair that
    /// fails, or bytes no recipe's model knows how to repair).
    Unrepairable,
}

/// The result of [`verify_overlay`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverlayVerification {
    /// The overlay's chain, top first.
    pub chain: Vec<LayerInfo>,
    /// Every guest range where the overlay differs from its backing.
    pub changes: Vec<Range>,
    /// The partitions those ranges fall in.
    pub partitions: Vec<PartitionVerdict>,
    /// What the overlay is: unchanged, repairable or unrepairable.
    pub verdict: Expectation,
}

/// Compares the overlay at `path` with its backing chain and predicts what
/// the tools do with the partitions it changes.
pub fn verify_overlay(path: &Path, opts: &OpenOptions) -> Result<OverlayVerification> {
    let mut top = image::open(path, opts)?;
    let chain = top.chain_info();
    if chain.len() < 2 {
        return Err(Error::Usage(format!(
            "{} has no backing file: there is nothing to compare it with",
            path.display()
        )));
    }
    let changes = changed_ranges(&mut top)?;
    let mut found_all = select::partitions(&mut top.below_top())?;
    if found_all.is_empty() {
        found_all.push(select::whole_disk(&mut top.below_top())?);
    }
    let table_parts: Vec<(u64, u64)> = found_all
        .iter()
        .filter(|f| f.partition.number != 0)
        .map(|f| (f.partition.start, f.partition.end()))
        .collect();
    let mut partitions = Vec::new();
    // Changes outside every partition (a partition table, an EBR) belong to
    // the whole disk; the partition-table recipes' models may know them.
    let outside: Vec<Range> = changes
        .iter()
        .filter(|r| {
            !found_all
                .iter()
                .any(|f| r.offset < f.partition.end() && f.partition.start < r.end())
        })
        .copied()
        .collect();
    for found in found_all {
        let p = &found.partition;
        // A whole-disk filesystem next to a table (a hybrid ISO) owns only
        // the changes that no partition of the table holds.
        let whole_beside_table = p.number == 0 && !table_parts.is_empty();
        let inside: Vec<Range> = changes
            .iter()
            .filter(|r| r.offset < p.end() && p.start < r.end())
            .filter(|r| {
                !whole_beside_table
                    || !table_parts
                        .iter()
                        .any(|&(s, e)| s <= r.offset && r.end() <= e)
            })
            .copied()
            .collect();
        if inside.is_empty() {
            continue;
        }
        let filesystem_now = match Window::new(&mut top, p.start, p.size) {
            Ok(mut now) => fs::probe(&mut now)?.map(|f| f.fstype),
            Err(_) => continue,
        };
        let mut prediction = None;
        for r in RECIPES {
            if let Some(pred) = r.verify(&found, &mut top)? {
                prediction = Some(pred);
                break;
            }
        }
        let mut prediction = prediction.unwrap_or_else(|| Prediction {
            outcomes: vec![Outcome::blkid(filesystem_now)],
            ..Prediction::default()
        });
        // The FAT32 and exFAT models know the repair's writes from the
        // damaged bytes; whether they bring the base back needs the base.
        let fat32 = fat::held_fat32(&found);
        if fat32 || found.fstype() == Some("exfat") {
            let writes = {
                let mut now = Window::new(&mut top, p.start, p.size)?;
                if fat32 {
                    fat::repair_writes(&mut now)?
                } else {
                    exfat_boot_checksum::repair_writes(&mut now)?
                }
            };
            let restores = match (writes, base_bytes(&mut top, p.start, p.end(), &inside)?) {
                (Some(writes), Some(base)) => {
                    let mut now = Window::new(&mut top, p.start, p.size)?;
                    writes_restore(&mut now, writes, &base)?
                }
                _ => false,
            };
            if prediction.byte_identical_after_repair && !restores {
                prediction.notes.push(fat::NOT_THE_BASE_NOTE.into());
            }
            prediction.byte_identical_after_repair = restores;
        }
        partitions.push(PartitionVerdict {
            partition: PartitionRef::from_found(&found),
            changes: inside,
            filesystem_now,
            prediction,
        });
    }
    if !outside.is_empty() {
        let disk = select::whole_disk(&mut top.below_top())?;
        let mut prediction = None;
        for r in RECIPES {
            if let Some(p) = r.verify(&disk, &mut top)? {
                prediction = Some(p);
                break;
            }
        }
        // Bytes no model claims: the whole disk is reported with what blkid
        // sees and no repair, so the overlay is not called repairable.
        let prediction = match prediction {
            Some(p) => p,
            None => Prediction {
                outcomes: vec![crate::recipe::ptable::identify_disk(&mut top)?],
                notes: vec![UNCLAIMED_NOTE.into()],
                ..Prediction::default()
            },
        };
        partitions.push(PartitionVerdict {
            partition: PartitionRef::from_found(&disk),
            changes: outside,
            filesystem_now: fs::probe(&mut top)?.map(|f| f.fstype),
            prediction,
        });
    }
    let verdict = if changes.is_empty() {
        Expectation::Unchanged
    } else if !partitions.is_empty()
        && partitions
            .iter()
            .all(|p| p.prediction.outcome(Role::Repair).is_some() && p.prediction.repairable())
    {
        Expectation::Repairable
    } else {
        Expectation::Unrepairable
    };
    Ok(OverlayVerification {
        chain,
        changes,
        partitions,
        verdict,
    })
}

/// The note of changes outside every partition that no model claims.
pub const UNCLAIMED_NOTE: &str = "changes outside every partition that no recipe's model      knows: no repair is predicted to bring them back";

/// Bytes of the backing chain: `(offset in a partition, bytes)`.
type BaseBytes = Vec<(u64, Vec<u8>)>;

/// Most bytes [`base_bytes`] reads to confirm a repair's byte identity.
const BASE_BYTES_LIMIT: u64 = 64 << 20;

/// The backing chain's bytes of `ranges` clipped to `start..end`, as
/// `(offset from start, bytes)`; `None` beyond [`BASE_BYTES_LIMIT`].
fn base_bytes(
    top: &mut image::Image,
    start: u64,
    end: u64,
    ranges: &[Range],
) -> Result<Option<BaseBytes>> {
    let clipped: Vec<(u64, u64)> = ranges
        .iter()
        .map(|r| (r.offset.max(start), r.end().min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    if clipped.iter().map(|(a, b)| b - a).sum::<u64>() > BASE_BYTES_LIMIT {
        return Ok(None);
    }
    let mut below = top.below_top();
    let mut out = Vec::with_capacity(clipped.len());
    for (a, b) in clipped {
        out.push((a - start, below.read_vec(a, (b - a) as usize)?));
    }
    Ok(Some(out))
}

/// Whether `writes` (a repair's, on the partition `part` as it reads now)
/// bring back `base`: the backing chain's bytes of every range the overlay
/// changed. Outside those ranges the partition is the base's, so a write
/// that changes a byte there leaves something the base did not hold.
fn writes_restore(part: &mut dyn ReadAt, writes: Vec<Patch>, base: &BaseBytes) -> Result<bool> {
    let changed = |at: u64| {
        base.iter()
            .any(|(o, b)| *o <= at && at < o + b.len() as u64)
    };
    for w in &writes {
        if let Patch::Data { offset, bytes } = w {
            let now = part.read_vec(*offset, bytes.len())?;
            let spreads =
                (0..bytes.len()).any(|i| bytes[i] != now[i] && !changed(offset + i as u64));
            if spreads {
                return Ok(false);
            }
        }
    }
    let mut repaired = Preview::new(part, writes);
    for (offset, bytes) in base {
        if repaired.read_vec(*offset, bytes.len())? != *bytes {
            return Ok(false);
        }
    }
    Ok(true)
}

//! Verifying an existing overlay against its backing chain: which guest
//! ranges it changes, which partitions those fall in, and what `mount` and
//! `ntfsfix` will do with each NTFS partition it touches.

use super::diff::{changed_ranges, ByteRange};
use crate::error::{Error, Result};
use crate::fs;
use crate::image::{self, LayerInfo, OpenOptions, ReadAt, Window};
use crate::recipe::predict::{predict_ntfs, NtfsPrediction};
use crate::recipe::select::{self, Found};
use std::path::Path;

/// What an overlay does to one partition it touches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionVerdict {
    /// The partition as the backing chain has it (undamaged).
    pub partition: Found,
    /// The changed guest ranges inside it.
    pub changed: Vec<ByteRange>,
    /// What the partition identifies as through the overlay (blkid TYPE).
    pub filesystem_now: Option<&'static str>,
    /// For a partition that holds NTFS in the backing chain: predictions.
    pub ntfs: Option<NtfsPrediction>,
}

/// The result of [`verify_overlay`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OverlayVerification {
    /// The overlay's chain, top first.
    pub chain: Vec<LayerInfo>,
    /// Every guest range where the overlay differs from its backing.
    pub changed: Vec<ByteRange>,
    /// The partitions those ranges fall in.
    pub partitions: Vec<PartitionVerdict>,
}

/// Compares the overlay at `path` with its backing chain and predicts what
/// repair tools do with the partitions it changes.
pub fn verify_overlay(path: &Path, opts: &OpenOptions) -> Result<OverlayVerification> {
    let mut top = image::open(path, opts)?;
    let chain = top.chain_info();
    let Some(backing) = chain.get(1) else {
        return Err(Error::Usage(format!(
            "{} has no backing file: there is nothing to compare it with",
            path.display()
        )));
    };
    let backing_opts = OpenOptions {
        format: Some(backing.format),
        ..opts.clone()
    };
    let mut base = image::open(&backing.path, &backing_opts)?;
    let changed = changed_ranges(&mut top, &mut base)?;
    let mut partitions = Vec::new();
    for found in select::partitions(&mut base)? {
        let p = &found.partition;
        let inside: Vec<ByteRange> = changed
            .iter()
            .filter(|r| r.start < p.end() && p.start < r.end)
            .copied()
            .collect();
        if inside.is_empty() {
            continue;
        }
        let filesystem_now = match Window::new(&mut top, p.start, p.size) {
            Ok(mut now) => fs::probe(&mut now)?.map(|f| f.fstype),
            Err(_) => continue,
        };
        let ntfs = if found.fstype() == Some("ntfs") {
            let original = base.read_vec(p.start, 512)?;
            let mut now = Window::new(&mut top, p.start, p.size)?;
            Some(predict_ntfs(&mut now, Some(&original))?)
        } else {
            None
        };
        partitions.push(PartitionVerdict {
            partition: found,
            changed: inside,
            filesystem_now,
            ntfs,
        });
    }
    Ok(OverlayVerification {
        chain,
        changed,
        partitions,
    })
}

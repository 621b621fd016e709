//! ntfsfix's boot-sector repair applied to a partition: what `mount` and
//! `ntfsfix` will do with a partition whose sector 0 may be broken, and what
//! the volume looks like after the repair.
//!
//! The rules are [`super::predict_ntfsfix_explained`]'s (see
//! `shared/ntfsfix-facts.md`); here they are applied to a partition view and
//! the repair is carried out in memory, so the repaired volume can be opened
//! with a pure-Rust NTFS reader.

use super::{
    predict_ntfsfix_explained, read_volume, NtfsBootSector, NtfsfixOutcome, NtfsfixPrediction,
    VolumeSummary, BOOT_SECTOR_SIZE, OEM_ID,
};
use crate::error::Result;
use crate::image::ReadAt;
use crate::overlay::{Patch, Preview};

/// Byte offset of `number_of_sectors` in the NTFS boot sector.
const NUMBER_OF_SECTORS_OFFSET: usize = 40;

/// Whether a mount of the partition gets past the boot sector.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountPrediction {
    /// True when sector 0 is a valid NTFS boot sector.
    pub mounts: bool,
    /// What `mount` / `ntfs-3g` will say, in one line.
    pub detail: String,
}

/// Everything predicted about one NTFS partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsPrediction {
    /// `mount` before any repair.
    pub mount: MountPrediction,
    /// What ntfsfix does with the boot sector.
    pub ntfsfix: NtfsfixPrediction,
    /// After ntfsfix's boot-sector repair (or without one, when none is
    /// needed): what a pure-Rust NTFS reader sees; `None` if unrepairable.
    pub after_repair: Option<VolumeSummary>,
    /// Why the repaired volume did not open, if it did not.
    pub after_repair_problem: Option<String>,
}

impl NtfsPrediction {
    /// ntfsfix repairs the boot sector and the result opens.
    pub fn repairable(&self) -> bool {
        self.ntfsfix.repairable() && self.after_repair.is_some()
    }
}

/// Predicts `mount` and `ntfsfix` on `part` (the partition as it reads).
///
/// `original` is the partition's undamaged sector 0, when known; it only
/// makes failure explanations more precise.
pub fn predict_ntfs(part: &mut dyn ReadAt, original: Option<&[u8]>) -> Result<NtfsPrediction> {
    let sector0 = part.read_vec(0, BOOT_SECTOR_SIZE)?;
    let mount = predict_mount(&sector0);
    let ntfsfix = predict_ntfsfix_explained(&sector0, part, original)?;
    let repaired_sector0 = match ntfsfix.outcome {
        NtfsfixOutcome::NoRepairNeeded => None,
        NtfsfixOutcome::Rewritten {
            lba,
            number_of_sectors,
            ..
        } => {
            let mut s = part.read_vec(lba * BOOT_SECTOR_SIZE as u64, BOOT_SECTOR_SIZE)?;
            s[NUMBER_OF_SECTORS_OFFSET..NUMBER_OF_SECTORS_OFFSET + 8]
                .copy_from_slice(&number_of_sectors.to_le_bytes());
            Some(s)
        }
        NtfsfixOutcome::Unrepairable => {
            return Ok(NtfsPrediction {
                mount,
                ntfsfix,
                after_repair: None,
                after_repair_problem: None,
            })
        }
    };
    let patches = repaired_sector0
        .map(|bytes| vec![Patch::Data { offset: 0, bytes }])
        .unwrap_or_default();
    let (after_repair, after_repair_problem) = match read_volume(Preview::new(part, patches)) {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(NtfsPrediction {
        mount,
        ntfsfix,
        after_repair,
        after_repair_problem,
    })
}

/// What mounting does with this sector 0: blkid and ntfs-3g recognise NTFS
/// by the OEM id, then ntfs-3g checks the boot sector.
pub fn predict_mount(sector0: &[u8]) -> MountPrediction {
    if sector0.len() < BOOT_SECTOR_SIZE || &sector0[3..11] != OEM_ID {
        return MountPrediction {
            mounts: false,
            detail: "fails: the NTFS signature is missing (ntfs-3g: \"NTFS signature is missing\", exit 12; util-linux 2.38 mount: \"wrong fs type, bad option, bad superblock\", exit 32)".into(),
        };
    }
    match NtfsBootSector::parse(sector0).map(|b| b.check()) {
        Ok(Ok(_)) => MountPrediction {
            mounts: true,
            detail: "succeeds as far as the boot sector goes".into(),
        },
        Ok(Err(defect)) => MountPrediction {
            mounts: false,
            detail: format!("fails: the boot sector is invalid ({defect})"),
        },
        Err(e) => MountPrediction {
            mounts: false,
            detail: format!("fails: {e}"),
        },
    }
}

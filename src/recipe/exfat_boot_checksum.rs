//! The `exfat-boot-checksum` recipe: change one byte of boot code in the
//! exFAT main boot sector, so the main boot region no longer matches its
//! checksum sector (sector 11). exfat-fuse refuses it ("invalid VBR
//! checksum", exit 1; it needs a block device), `fsck.exfat -n` and `-p`
//! exit 4 without fixing it, `fsck.exfat -y` restores the backup boot region
//! (sectors 12..23) over the main one (exit 1), byte for byte. Verified in
//! `shared/catalogue/exfat-boot-checksum.sh` and `tests/fat_recipes.rs`.

use super::select::{self, Found, Selection};
use super::{
    Catalogue, Outcome, PartitionRef, Plan, Prediction, Range, Recipe, Role, Target, Verdict,
};
use crate::error::{Error, Result};
use crate::fs::exfat::boot::{hash, BOOT_CODE, FILE_SYSTEM_NAME};
use crate::fs::exfat::BootRegions;
use crate::image::{ReadAt, Window};
use crate::overlay::{Patch, Preview};

/// `exfat-boot-checksum`: one boot-code byte of the main boot sector inverted.
pub struct ExfatBootChecksum;

/// Parameters of `exfat-boot-checksum`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct ExfatBootChecksumParams {
    /// The exFAT partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only exFAT partition.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

/// The byte changed: inside BootCode (exFAT specification section 3.1.19,
/// bytes 120..510 of the main boot sector), covered by the boot checksum.
pub const DAMAGED_BYTE: u64 = 0x100;
/// fsck.exfat's question when the main boot region is bad.
const CORRUPTED: &str = "boot region is corrupted. try to restore the region from backup";
/// fsck.exfat when the backup is bad too.
const BACKUP_CORRUPTED: &str = "backup boot region is also corrupted";
/// The note about exfat-fuse's device.
const BLOCK_DEVICE_NOTE: &str = "exfat-fuse needs a block device: attach PART to a loop device \
     (on a plain file it fails with \"Block device required\")";

const _: () = assert!(DAMAGED_BYTE >= BOOT_CODE as u64 && DAMAGED_BYTE < 510);

impl Recipe for ExfatBootChecksum {
    type Params = ExfatBootChecksumParams;
    const NAME: &'static str = "exfat-boot-checksum";
    const ABOUT: &'static str =
        "Break an exFAT main boot region's checksum: exfat-fuse refuses, fsck.exfat -y restores it byte-identical";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "exfat",
            damage: "boot-code byte 0x100 of the main boot sector inverted: the boot checksum (sector 11) no longer matches",
            outcomes: vec![
                Outcome::blkid(Some("exfat")),
                mount_refused("invalid VBR checksum"),
                check(),
                repair_yes(true),
                repair_preen(),
                after_check(),
                after_mount(),
            ],
            repair: Some("fsck.exfat -y PART"),
            preconditions: vec![
                "the partition holds exFAT whose main boot region fsck.exfat accepts",
                "the backup boot region equals the main boot region",
            ],
        }
    }

    fn plan(p: &ExfatBootChecksumParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let sel = p.partition.map_or(Selection::Only, Selection::Number);
        let f = select::choose(disk, "exfat", sel)
            .map_err(|e| match e {
                Error::Usage(_) => e.context("partition"),
                e => e,
            })?
            .remove(0);
        let part = &f.partition;
        let regions = {
            let mut view = Window::new(&mut *disk, part.start, part.size)?;
            BootRegions::read(&mut view)?
        };
        let Some(regions) = regions else {
            return Err(Error::Refused(format!(
                "{}: no exFAT boot region that fits in it",
                f.describe()
            )));
        };
        if let Some(problem) = regions.main.fsck_problem(part.size) {
            return Err(Error::Refused(format!(
                "{}: fsck.exfat already rejects the main boot region: {problem}",
                f.describe()
            )));
        }
        match &regions.backup {
            Some(b) if b.bytes == regions.main.bytes => {}
            Some(_) => {
                return Err(Error::Refused(format!(
                    "{}: the backup boot region (sectors 12..23) differs from the main one: \
                     fsck.exfat -y would not restore the volume as it is",
                    f.describe()
                )))
            }
            None => {
                return Err(Error::Refused(format!(
                    "{}: the backup boot region is past the end of the volume",
                    f.describe()
                )))
            }
        }
        let old = regions.main.bytes[DAMAGED_BYTE as usize];
        let patch = Patch::Data {
            offset: part.start + DAMAGED_BYTE,
            bytes: vec![!old],
        };
        let partition = Some(PartitionRef::from_found(&f));
        let mut plan = Plan::single(
            Self::NAME,
            partition,
            vec![patch.clone()],
            Prediction::default(),
        );
        let mut preview = Preview::new(&mut *disk, vec![patch]);
        let prediction = Self::predict(p, &plan.targets[0], &mut preview)?;
        if prediction.outcome(Role::Mount).map(|o| &o.result) != Some(&Verdict::Refused) {
            return Err(Error::Refused(format!(
                "{}: changing byte {DAMAGED_BYTE:#x} leaves the boot checksum valid",
                f.describe()
            )));
        }
        plan.targets[0].prediction = prediction;
        Ok(plan)
    }

    fn predict(
        _: &ExfatBootChecksumParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        let Some(p) = &target.partition else {
            return Err(Error::Usage(
                "exfat-boot-checksum targets a partition".into(),
            ));
        };
        let mut view = Window::new(damaged, p.offset, p.length)?;
        let changes: Vec<Range> = target
            .changes
            .iter()
            .map(|c| Range {
                offset: c.offset - p.offset,
                length: c.length,
            })
            .collect();
        exfat_prediction(&mut view, &changes)
    }

    /// For an exFAT partition whose main boot region no longer matches its
    /// checksum. Without the base's bytes, the repair is not claimed
    /// byte-identical here; `verify` confirms it with [`repair_writes`].
    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        if partition.fstype() != Some("exfat") {
            return Ok(None);
        }
        let p = &partition.partition;
        let mut view = Window::new(now, p.start, p.size)?;
        let broken =
            BootRegions::read(&mut view)?.is_some_and(|r| r.main.checksum_mismatch().is_some());
        if !broken {
            return Ok(None);
        }
        exfat_prediction(&mut view, &[]).map(Some)
    }
}

fn mount_refused(message: &str) -> Outcome {
    Outcome::new(
        Role::Mount,
        "exfat-fuse",
        "mount.exfat-fuse -o ro PART MNT",
        Verdict::Refused,
        1,
        message,
    )
}

fn check() -> Outcome {
    Outcome::new(
        Role::Check,
        "fsck.exfat",
        "fsck.exfat -n PART",
        Verdict::ReportsDamage,
        4,
        CORRUPTED,
    )
}

fn repair_yes(backup_usable: bool) -> Outcome {
    if backup_usable {
        Outcome::new(
            Role::Repair,
            "fsck.exfat",
            "fsck.exfat -y PART",
            Verdict::Repairs,
            1,
            "Fix (y/N)? y",
        )
    } else {
        Outcome::new(
            Role::Repair,
            "fsck.exfat",
            "fsck.exfat -y PART",
            Verdict::CannotRepair,
            4,
            BACKUP_CORRUPTED,
        )
    }
}

fn repair_preen() -> Outcome {
    Outcome::new(
        Role::Repair,
        "fsck.exfat",
        "fsck.exfat -p PART",
        Verdict::CannotRepair,
        4,
        "Fix (y/N)? n",
    )
}

fn after_check() -> Outcome {
    Outcome::new(
        Role::AfterRepair,
        "fsck.exfat",
        "fsck.exfat -n PART",
        Verdict::Clean,
        0,
        "clean",
    )
}

fn after_mount() -> Outcome {
    Outcome::new(
        Role::AfterRepair,
        "exfat-fuse",
        "mount.exfat-fuse PART MNT",
        Verdict::ReadWrite,
        0,
        "",
    )
}

/// The write of the repair predicted for the exFAT volume `part`:
/// `fsck.exfat -y` copying the backup boot region over the main one (with
/// VolumeDirty cleared). `None` when no repair works or the main region is
/// sound. `verify` applies it to confirm byte identity against the base.
pub fn repair_writes(part: &mut dyn ReadAt) -> Result<Option<Vec<Patch>>> {
    let Some(regions) = BootRegions::read(part)? else {
        return Ok(None);
    };
    if regions.main.checksum_mismatch().is_none() {
        return Ok(None);
    }
    Ok(regions
        .restored_main(part.size())
        .map(|bytes| vec![Patch::Data { offset: 0, bytes }]))
}

/// The tools' outcomes on an exFAT volume `part` whose main boot region was
/// changed at `changes` (relative to `part`).
pub fn exfat_prediction(part: &mut dyn ReadAt, changes: &[Range]) -> Result<Prediction> {
    let identified = crate::fs::probe(part)?;
    let size = part.size();
    let mut outcomes = vec![Outcome::blkid(identified.as_ref().map(|f| f.fstype))];
    let mut notes = Vec::new();
    let Some(regions) = BootRegions::read(part)? else {
        return Err(Error::Refused(
            "no exFAT boot region: the prediction models a boot-checksum mismatch only".into(),
        ));
    };
    let s0 = &regions.main.bytes[..512];
    if crate::layout::mbr::looks_like_mbr(s0) && &s0[3..11] == FILE_SYSTEM_NAME {
        notes.push(
            "blkid -p also reports PTTYPE=\"dos\" (the boot sector ends in 55AA with empty \
             partition entries), as on the undamaged volume"
                .into(),
        );
    }
    let Some((stored, computed)) = regions.main.checksum_mismatch() else {
        return Err(Error::Refused(
            "the main boot region's checksum matches: nothing this recipe predicts".into(),
        ));
    };
    outcomes.push(mount_refused(&format!(
        "invalid VBR checksum {stored:#x} (expected {computed:#x})"
    )));
    outcomes.push(check());
    let restored = regions.restored_main(size);
    outcomes.push(repair_yes(restored.is_some()));
    outcomes.push(repair_preen());
    notes.push(format!(
        "fsck.exfat: \"checksum of boot region is not correct. {}, but expected {}\"",
        hash(stored),
        hash(computed)
    ));
    let mut identical = false;
    if let Some(r) = &restored {
        outcomes.push(after_check());
        outcomes.push(after_mount());
        notes.push(
            "fsck.exfat -y copies the backup boot region (sectors 12..23) over sectors 0..11 \
             and clears VolumeDirty"
                .into(),
        );
        let outside = |i: usize| {
            !changes
                .iter()
                .any(|c| (c.offset..c.end()).contains(&(i as u64)))
        };
        identical = r
            .iter()
            .zip(&regions.main.bytes)
            .enumerate()
            .all(|(i, (a, b))| a == b || !outside(i));
    }
    notes.push(BLOCK_DEVICE_NOTE.into());
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: identical,
        notes,
    })
}

//! What the FAT32 recipes share: choosing the FAT32 volume, the "clean
//! base" precondition, and the tool outcomes predicted from dosfstools'
//! rules ([`crate::fs::fat::fsck`]) on the damaged volume.
//!
//! The reader predicted is mtools (`mdir`): the kernel the predictions were
//! verified on has no vfat driver, so no kernel mount is predicted.

use super::select::{self, Found, Selection};
use super::{Outcome, Prediction, Role, Verdict};
use crate::error::{Error, Result};
use crate::fs::fat::boot::{
    FatType, BOOT_SECTOR_SIZE, BPB_BYTS_PER_SEC, BPB_MEDIA, BS_RESERVED1_32, FAT_STATE_DIRTY,
};
use crate::fs::fat::fsck::{
    BackupBoot, FatsState, FsInfoState, FsckFat, MSG_NOT_FIXING, MSG_REMOVING_DIRTY,
    MSG_USING_FIRST,
};
use crate::fs::fat::{check_fat32, Fat32Boot};
use crate::image::{ReadAt, Window};
use crate::overlay::Patch;

/// The note every FAT prediction carries about mounting.
pub const NO_VFAT_NOTE: &str = "no kernel mount is predicted: the kernel these predictions were \
     verified on has no vfat driver; mtools (mdir) stands for the reader";
/// `fsck.fat -r` answers that copy the boot sector over its backup and write.
pub const BACKUP_ANSWERS_COMMAND: &str = "printf '1\\n1\\n' | fsck.fat -r PART";
/// `fsck.fat -r` answers that leave the backup alone, remove the dirty bit and write.
pub const DIRTY_ANSWERS_COMMAND: &str = "printf '3\\n1\\n1\\n' | fsck.fat -r PART";

/// The FAT32 volume `partition` names (0 = the whole disk), or the disk's
/// only FAT32 volume. Refuses FAT12/16 (exit 3) and a disk without FAT32.
pub fn choose_fat32(disk: &mut dyn ReadAt, partition: Option<u32>) -> Result<Found> {
    let mut found = select::partitions(disk)?;
    if partition == Some(0) && !found.iter().any(|f| f.partition.number == 0) {
        found.push(select::whole_disk(disk)?);
    }
    let is_fat32 = |f: &Found| {
        f.filesystem
            .as_ref()
            .is_some_and(|fs| fs.fstype == "vfat" && fs.version.as_deref() == Some("FAT32"))
    };
    let chosen = match partition {
        Some(n) => {
            let f = select::select(&found, "vfat", Selection::Number(n))
                .map_err(|e| match e {
                    Error::Usage(_) => e.context("partition"),
                    e => e,
                })?
                .remove(0);
            if !is_fat32(&f) {
                return Err(Error::Refused(format!(
                    "{} is {}, not FAT32 (the recipe models FAT32 only)",
                    f.describe(),
                    f.filesystem
                        .as_ref()
                        .and_then(|fs| fs.version.clone())
                        .unwrap_or_else(|| "FAT12/16".into())
                )));
            }
            f
        }
        None => {
            let fat32: Vec<Found> = found.iter().filter(|f| is_fat32(f)).cloned().collect();
            if fat32.is_empty() && found.iter().any(|f| f.fstype() == Some("vfat")) {
                return Err(Error::Refused(format!(
                    "no FAT32 partition on this disk (the recipe models FAT32 only); FAT12/16: {}",
                    found
                        .iter()
                        .filter(|f| f.fstype() == Some("vfat"))
                        .map(Found::describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            let mut v = select::select(&fat32, "vfat", Selection::Only).map_err(|e| match e {
                Error::Usage(_) => e.context("partition"),
                e => e,
            })?;
            if v.is_empty() {
                return Err(Error::Refused("no FAT32 partition on this disk".into()));
            }
            v.remove(0)
        }
    };
    Ok(chosen)
}

/// fsck.fat's view of the chosen volume before the damage; refuses unless
/// fsck.fat would find nothing to report there (otherwise its outcomes and
/// the byte-identical repair could not be predicted), nor a volume without
/// a backup boot sector.
pub fn clean_base(disk: &mut dyn ReadAt, f: &Found) -> Result<(FsckFat, Fat32Boot)> {
    let mut view = Window::new(&mut *disk, f.partition.start, f.partition.size)?;
    let base = check_fat32(&mut view)?;
    let boot = match (&base.fatal, &base.boot) {
        (Some(e), _) => {
            return Err(Error::Refused(format!(
                "{}: fsck.fat cannot read it: {e}",
                f.describe()
            )))
        }
        (None, Some(b)) if b.fat_type == FatType::Fat32 => b.clone(),
        _ => {
            return Err(Error::Refused(format!(
                "{}: not FAT32 as fsck.fat reads it",
                f.describe()
            )))
        }
    };
    if base.backup == BackupBoot::Missing {
        return Err(Error::Refused(format!(
            "{}: no backup boot sector (BPB_BkBootSec is 0): fsck.fat -a would create one",
            f.describe()
        )));
    }
    if !base.clean() {
        return Err(Error::Refused(format!(
            "{}: fsck.fat already reports: {} (the damage must be the only finding)",
            f.describe(),
            base.messages().join(" / ")
        )));
    }
    Ok((base, boot))
}

/// mtools' media check (`find_device`, mtools 4.0.32): the BPB's media
/// byte when it is at least 0xF0, else the first byte of the second
/// 512-byte sector (an old DOS disk's FAT) must be above 0xF0, and the
/// sector size must not be zero; otherwise `mdir` says "non DOS media".
pub fn mtools_non_dos_media(part: &mut dyn ReadAt) -> Result<bool> {
    if part.size() < 1024 {
        return Ok(true);
    }
    let s = part.read_vec(0, BOOT_SECTOR_SIZE)?;
    if s[BPB_BYTS_PER_SEC] == 0 && s[BPB_BYTS_PER_SEC + 1] == 0 {
        return Ok(true);
    }
    let media = s[BPB_MEDIA];
    if media >= 0xF0 {
        return Ok(false);
    }
    Ok(part.read_vec(512, 1)?[0] <= 0xF0)
}

/// The mtools reader's outcome: refused where its media check fails,
/// none where dosfstools dies on the boot sector but mtools' check passes
/// (mdir then fails in many ways, from "Error reading FAT" to a crash,
/// none modelled), else it reads the volume.
fn reader(part: &mut dyn ReadAt, f: &FsckFat, role: Role) -> Result<Option<Outcome>> {
    const MDIR: &str = "mdir -i PART ::";
    Ok(if mtools_non_dos_media(part)? {
        Some(Outcome::new(
            role,
            "mtools",
            MDIR,
            Verdict::Refused,
            1,
            "non DOS media",
        ))
    } else if f.fatal.is_some() {
        None
    } else {
        Some(Outcome::new(role, "mtools", MDIR, Verdict::Reads, 0, ""))
    })
}

/// `fsck.fat -n PART` on the volume as `f` describes it.
pub fn check_outcome(f: &FsckFat, role: Role) -> Outcome {
    let messages = f.messages();
    let key = key_message(f).or(messages.first().map(String::as_str));
    Outcome::new(
        role,
        "fsck.fat",
        "fsck.fat -n PART",
        if messages.is_empty() {
            Verdict::Clean
        } else {
            Verdict::ReportsDamage
        },
        f.exit_code(false),
        key.unwrap_or(""),
    )
}

/// The line that names the most significant finding.
fn key_message(f: &FsckFat) -> Option<&'static str> {
    use crate::fs::fat::fsck::{MSG_BACKUP_DIFFERS, MSG_DIRTY, MSG_FATS_DIFFER};
    if f.fatal.is_some() {
        return None;
    }
    if matches!(
        f.fats,
        FatsState::Differ {
            second_intact: true,
            ..
        }
    ) && f.first_fat_intact
    {
        return Some(MSG_FATS_DIFFER);
    }
    if f.dirty || f.unclean_fat {
        return Some(MSG_DIRTY);
    }
    if matches!(f.backup, BackupBoot::Differs(_)) {
        return Some(MSG_BACKUP_DIFFERS);
    }
    None
}

/// The findings that the repairs qfault predicts restore exactly: FATs
/// that differ (both intact), the boot sector's dirty flag (the backup
/// differing only there), a differing backup; everything else clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Clean,
    Fatal,
    FatsDiffer,
    Dirty,
    BackupDiffers,
    Other,
}

fn case(f: &FsckFat) -> Case {
    if f.fatal.is_some() {
        return Case::Fatal;
    }
    let rest_clean = f.first_fat_intact
        && !f.unclean_fat
        && f.fs_info == FsInfoState::Matches
        && f.boot
            .as_ref()
            .is_some_and(|b| b.fat_type == FatType::Fat32);
    if !rest_clean {
        return Case::Other;
    }
    let fats_ok = matches!(f.fats, FatsState::Single | FatsState::Same);
    let fats_differ = matches!(
        f.fats,
        FatsState::Differ {
            second_intact: true,
            ..
        }
    );
    let only_dirty_byte = |b: &BackupBoot| match b {
        BackupBoot::Same => true,
        BackupBoot::Differs(d) => d.iter().all(|(o, _, _)| *o == BS_RESERVED1_32),
        BackupBoot::Missing => false,
    };
    match (fats_ok, fats_differ, f.dirty, &f.backup) {
        (true, _, false, BackupBoot::Same) => Case::Clean,
        (false, true, false, BackupBoot::Same) => Case::FatsDiffer,
        (true, _, true, b) if only_dirty_byte(b) => Case::Dirty,
        (true, _, false, BackupBoot::Differs(_)) => Case::BackupDiffers,
        _ => Case::Other,
    }
}

/// Every tool outcome on the FAT32 volume `part` as it reads now.
pub fn fat32_prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identified = crate::fs::probe(part)?;
    let f = check_fat32(part)?;
    let mut outcomes = vec![Outcome::blkid(identified.as_ref().map(|i| i.fstype))];
    outcomes.extend(reader(part, &f, Role::Mount)?);
    outcomes.push(check_outcome(&f, Role::Check));
    let mut notes = Vec::new();
    let c = case(&f);
    let fsck_a = |verdict, message: &str| {
        Outcome::new(
            Role::Repair,
            "fsck.fat",
            "fsck.fat -a PART",
            verdict,
            f.exit_code(true),
            message,
        )
    };
    match c {
        Case::Fatal => outcomes.push(fsck_a(
            Verdict::CannotRepair,
            f.fatal.as_ref().map_or("", |e| e.0.as_str()),
        )),
        Case::Clean => outcomes.push(fsck_a(Verdict::NotNeeded, "")),
        Case::FatsDiffer => outcomes.push(fsck_a(Verdict::Repairs, MSG_USING_FIRST)),
        Case::Dirty => {
            outcomes.push(fsck_a(Verdict::Repairs, MSG_REMOVING_DIRTY));
            outcomes.push(Outcome::new(
                Role::Repair,
                "fsck.fat",
                DIRTY_ANSWERS_COMMAND,
                Verdict::Repairs,
                1,
                "Remove dirty bit",
            ));
            notes.push(
                "with fsck.fat -r, answer the backup question \"3) No action\": \"1) Copy original \
                 to backup\" copies the dirty bit into the backup boot sector"
                    .into(),
            );
        }
        Case::BackupDiffers => {
            outcomes.push(Outcome::new(
                Role::Repair,
                "fsck.fat",
                BACKUP_ANSWERS_COMMAND,
                Verdict::Repairs,
                1,
                "Copy original to backup",
            ));
            outcomes.push(fsck_a(Verdict::CannotRepair, MSG_NOT_FIXING));
            notes.push(
                "fsck.fat -n and -a exit 0 and leave the backup as it is; only the interactive \
                 -r (answers 1: copy original to backup, 1: write) repairs it"
                    .into(),
            );
        }
        Case::Other => outcomes.push(fsck_a(
            if f.queues_change(true) {
                Verdict::Repairs
            } else {
                Verdict::CannotRepair
            },
            "",
        )),
    }
    let repaired = matches!(c, Case::FatsDiffer | Case::Dirty | Case::BackupDiffers);
    if repaired || c == Case::Clean {
        outcomes.push(check_outcome(
            &FsckFat {
                fats: if f.fats == FatsState::Single {
                    FatsState::Single
                } else {
                    FatsState::Same
                },
                dirty: false,
                backup: BackupBoot::Same,
                ..f.clone()
            },
            Role::AfterRepair,
        ));
    } else if c == Case::Fatal {
        outcomes.push(Outcome {
            role: Role::AfterRepair,
            ..check_outcome(&f, Role::AfterRepair)
        });
    }
    if let Some(d) = f.backup_differences() {
        notes.push(format!(
            "fsck.fat lists the backup boot sector's differences (offset:original/backup): {d}"
        ));
    }
    if let FatsState::Differ { first_entry, .. } = f.fats {
        if let Some(b) = &f.boot {
            notes.push(format!(
                "the FATs first differ at the entry of cluster {first_entry}; fsck.fat copies {} \
                 bytes of the first FAT (byte {}) over the second (byte {})",
                b.fat32_compared_bytes(),
                b.fat_offset(0),
                b.fat_offset(1)
            ));
        }
    }
    if c == Case::Fatal {
        notes.push(
            "dosfstools 4.2 never reads the backup boot sector to recover the primary; copying \
             sector BPB_BkBootSec (normally 6) to sector 0 would restore it"
                .into(),
        );
    }
    if f.boot.as_ref().is_some_and(Fat32Boot::few_clusters) {
        notes.push(
            "fsck.fat also warns that this FAT32 volume has fewer than 65525 clusters".into(),
        );
    }
    notes.push(NO_VFAT_NOTE.into());
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: repaired,
        notes,
    })
}

/// The writes of the repair [`fat32_prediction`] predicts as restoring
/// the volume `part` (offsets in the volume): `fsck.fat -a` copying the
/// first FAT's compared bytes over the second (`read_fat`), clearing the
/// primary boot sector's dirty flag (`read_boot`), or `fsck.fat -r`'s
/// "Copy original to backup" writing the boot sector over its backup
/// (`check_backup_boot`). `None` when no such repair is predicted.
pub fn repair_writes(part: &mut dyn ReadAt) -> Result<Option<Vec<Patch>>> {
    let f = check_fat32(part)?;
    let Some(b) = f.boot.clone() else {
        return Ok(None);
    };
    let patches = match case(&f) {
        Case::FatsDiffer => vec![Patch::Data {
            offset: b.fat_offset(1),
            bytes: part.read_vec(b.fat_offset(0), to_usize(b.fat32_compared_bytes())?)?,
        }],
        Case::Dirty => {
            let flags = part.read_vec(BS_RESERVED1_32 as u64, 1)?[0];
            vec![Patch::Data {
                offset: BS_RESERVED1_32 as u64,
                bytes: vec![flags & !FAT_STATE_DIRTY],
            }]
        }
        Case::BackupDiffers => match b.backup_boot_offset() {
            Some(at) => vec![Patch::Data {
                offset: at,
                bytes: part.read_vec(0, BOOT_SECTOR_SIZE)?,
            }],
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(patches))
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Guest(format!("{n} bytes do not fit in memory")))
}

/// The note of a verified overlay whose predicted repair does not bring
/// the backing chain's bytes back.
pub const NOT_THE_BASE_NOTE: &str = "the predicted repair does not write back the backing      chain's bytes (it restores the volume's consistency from the damaged copy)";

/// The plan of a FAT32 recipe whose promise is a byte-identical repair:
/// one patch on `f`, the prediction on the damaged view, refused (with
/// `why` after the partition) unless the predicted repair gives the base
/// back.
pub fn identity_plan(
    name: &'static str,
    f: &Found,
    disk: &mut dyn ReadAt,
    patch: Patch,
    why: &str,
) -> Result<super::Plan> {
    let partition = Some(super::PartitionRef::from_found(f));
    let mut plan = super::Plan::single(name, partition, vec![patch.clone()], Prediction::default());
    let mut preview = crate::overlay::Preview::new(&mut *disk, vec![patch]);
    let prediction = predict_target(&plan.targets[0], &mut preview)?;
    if !prediction.byte_identical_after_repair {
        return Err(Error::Refused(format!("{}: {why}", f.describe())));
    }
    plan.targets[0].prediction = prediction;
    Ok(plan)
}

/// [`fat32_prediction`] for a target's partition on the damaged guest.
pub fn predict_target(target: &super::Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
    let Some(p) = &target.partition else {
        return Err(Error::Usage(format!(
            "{} targets a partition",
            target.recipe
        )));
    };
    let mut view = Window::new(damaged, p.offset, p.length)?;
    fat32_prediction(&mut view)
}

/// What `verify` predicts for a partition that held FAT32 in the backing
/// chain, as it reads now through the overlay; `None` for anything else.
/// Its byte identity is the damaged bytes' alone: `verify` confirms it with
/// [`repair_writes`] against the backing chain.
pub fn verify_fat32(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
    if !held_fat32(partition) {
        return Ok(None);
    }
    let p = &partition.partition;
    let mut view = Window::new(now, p.start, p.size)?;
    fat32_prediction(&mut view).map(Some)
}

/// Whether `partition` held FAT32 (as blkid reads it) in the backing chain.
pub fn held_fat32(partition: &Found) -> bool {
    partition
        .filesystem
        .as_ref()
        .is_some_and(|fs| fs.fstype == "vfat" && fs.version.as_deref() == Some("FAT32"))
}

//! The `fat32-backup-boot` recipe: change the volume serial number
//! (BS_VolID) in a FAT32 volume's backup boot sector (sector BPB_BkBootSec)
//! so it no longer equals the boot sector. The trap: `fsck.fat -n` and `-a`
//! list the differences but exit 0 and do not fix them ("Not automatically
//! fixing this."); only the interactive `fsck.fat -r` with the answers "1"
//! (copy original to backup) and "1" (write) restores the volume byte for
//! byte. Verified in `shared/catalogue/fat32-backup-boot.sh` and
//! `tests/fat_recipes.rs`.

use super::fat::{
    choose_fat32, clean_base, identity_plan, predict_target, verify_fat32, BACKUP_ANSWERS_COMMAND,
};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::fat::boot::BS_VOL_ID_32;
use crate::fs::fat::fsck::{MSG_BACKUP_DIFFERS, MSG_NOT_FIXING};
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `fat32-backup-boot`: the backup boot sector's volume serial inverted.
pub struct Fat32BackupBoot;

/// Parameters of `fat32-backup-boot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct Fat32BackupBootParams {
    /// The FAT32 partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only FAT32 partition.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

impl Recipe for Fat32BackupBoot {
    type Params = Fat32BackupBootParams;
    const NAME: &'static str = "fat32-backup-boot";
    const ABOUT: &'static str =
        "Change a FAT32 backup boot sector: fsck.fat -n/-a exit 0 without fixing it, -r restores it";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "vfat (FAT32)",
            damage: "the 4 bytes of BS_VolID (0x43) in the backup boot sector (sector BPB_BkBootSec) inverted",
            outcomes: vec![
                Outcome::blkid(Some("vfat")),
                Outcome::new(Role::Mount, "mtools", "mdir -i PART ::", Verdict::Reads, 0, ""),
                Outcome::new(
                    Role::Check,
                    "fsck.fat",
                    "fsck.fat -n PART",
                    Verdict::ReportsDamage,
                    0,
                    MSG_BACKUP_DIFFERS,
                ),
                Outcome::new(
                    Role::Repair,
                    "fsck.fat",
                    BACKUP_ANSWERS_COMMAND,
                    Verdict::Repairs,
                    1,
                    "Copy original to backup",
                ),
                Outcome::new(
                    Role::Repair,
                    "fsck.fat",
                    "fsck.fat -a PART",
                    Verdict::CannotRepair,
                    0,
                    MSG_NOT_FIXING,
                ),
                Outcome::new(
                    Role::AfterRepair,
                    "fsck.fat",
                    "fsck.fat -n PART",
                    Verdict::Clean,
                    0,
                    "",
                ),
            ],
            repair: Some(BACKUP_ANSWERS_COMMAND),
            preconditions: vec![
                "the partition holds FAT32 with a backup boot sector (BPB_BkBootSec is not 0)",
                "fsck.fat finds nothing else to report (boot sector, backup, FATs, dirty flags, FSInfo free count)",
            ],
        }
    }

    fn plan(p: &Fat32BackupBootParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let f = choose_fat32(disk, p.partition)?;
        let (_, boot) = clean_base(disk, &f)?;
        let Some(backup) = boot.backup_boot_offset() else {
            return Err(Error::Refused(format!(
                "{}: no backup boot sector (BPB_BkBootSec is 0)",
                f.describe()
            )));
        };
        let offset = f.partition.start + backup + BS_VOL_ID_32 as u64;
        let serial = disk.read_vec(offset, 4)?;
        let patch = Patch::Data {
            offset,
            bytes: serial.iter().map(|b| !b).collect(),
        };
        identity_plan(
            Self::NAME,
            &f,
            disk,
            patch,
            "after the damage fsck.fat -r would do more than copy the boot sector",
        )
    }

    fn predict(
        _: &Fat32BackupBootParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        predict_target(target, damaged)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        verify_fat32(partition, now)
    }
}

//! The `fat32-dirty` recipe: set the dirty bit (bit 0 of BS_Reserved1, byte
//! 0x41) in a FAT32 boot sector, as Linux does while the volume is mounted
//! (the backup boot sector keeps it clear). `fsck.fat -n` reports "Dirty bit
//! is set" (exit 1) and the one-byte difference from the backup; `fsck.fat
//! -a` clears it (exit 1), restoring the volume byte for byte. Verified in
//! `shared/catalogue/fat32-dirty.sh` and `tests/fat_recipes.rs`.

use super::fat::{
    choose_fat32, clean_base, identity_plan, predict_target, verify_fat32, DIRTY_ANSWERS_COMMAND,
};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::Result;
use crate::fs::fat::boot::{BS_RESERVED1_32, FAT_STATE_DIRTY};
use crate::fs::fat::fsck::{MSG_DIRTY, MSG_REMOVING_DIRTY};
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `fat32-dirty`: the FAT32 dirty bit set in the primary boot sector.
pub struct Fat32Dirty;

/// Parameters of `fat32-dirty`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct Fat32DirtyParams {
    /// The FAT32 partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only FAT32 partition.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

impl Recipe for Fat32Dirty {
    type Params = Fat32DirtyParams;
    const NAME: &'static str = "fat32-dirty";
    const ABOUT: &'static str =
        "Set the dirty bit of a FAT32 boot sector: fsck.fat reports it, -a clears it byte-identical";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "vfat (FAT32)",
            damage: "bit 0 of byte 0x41 (BS_Reserved1) of the boot sector set; the backup boot sector unchanged",
            outcomes: vec![
                Outcome::blkid(Some("vfat")),
                Outcome::new(Role::Mount, "mtools", "mdir -i PART ::", Verdict::Reads, 0, ""),
                Outcome::new(
                    Role::Check,
                    "fsck.fat",
                    "fsck.fat -n PART",
                    Verdict::ReportsDamage,
                    1,
                    MSG_DIRTY,
                ),
                Outcome::new(
                    Role::Repair,
                    "fsck.fat",
                    "fsck.fat -a PART",
                    Verdict::Repairs,
                    1,
                    MSG_REMOVING_DIRTY,
                ),
                Outcome::new(
                    Role::Repair,
                    "fsck.fat",
                    DIRTY_ANSWERS_COMMAND,
                    Verdict::Repairs,
                    1,
                    "Remove dirty bit",
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
            repair: Some("fsck.fat -a PART"),
            preconditions: vec![
                "the partition holds FAT32 with a backup boot sector",
                "fsck.fat finds nothing else to report (boot sector, backup, FATs, dirty flags, FSInfo free count)",
            ],
        }
    }

    fn plan(p: &Fat32DirtyParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let f = choose_fat32(disk, p.partition)?;
        let (_, boot) = clean_base(disk, &f)?;
        let offset = f.partition.start + BS_RESERVED1_32 as u64;
        let patch = Patch::Data {
            offset,
            bytes: vec![boot.boot_flags | FAT_STATE_DIRTY],
        };
        identity_plan(
            Self::NAME,
            &f,
            disk,
            patch,
            "after the damage fsck.fat would do more than clear the dirty bit",
        )
    }

    fn predict(
        _: &Fat32DirtyParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        predict_target(target, damaged)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        verify_fat32(partition, now)
    }
}

//! The `fat32-boot` recipe, a must-fail case: zero a FAT32 volume's boot
//! sector. blkid finds nothing, mtools refuses ("non DOS media") and
//! dosfstools 4.2 cannot repair it: `fsck.fat -a` dies with "Logical sector
//! size is zero." (exit 1) and never reads the intact backup boot sector.
//! Verified in `shared/catalogue/fat32-boot.sh` and `tests/fat_recipes.rs`.

use super::fat::{choose_fat32, clean_base, predict_target, verify_fat32};
use super::select::Found;
use super::{Catalogue, Outcome, PartitionRef, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::Result;
use crate::image::ReadAt;
use crate::overlay::{Patch, Preview};

/// `fat32-boot`: the FAT32 boot sector zeroed.
pub struct Fat32BootSector;

/// Parameters of `fat32-boot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct Fat32BootParams {
    /// The FAT32 partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only FAT32 partition.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

/// dosfstools' message on a zeroed boot sector.
const SECTOR_SIZE_ZERO: &str = "Logical sector size is zero.";

impl Recipe for Fat32BootSector {
    type Params = Fat32BootParams;
    const NAME: &'static str = "fat32-boot";
    const ABOUT: &'static str =
        "Zero a FAT32 boot sector: blkid finds nothing and fsck.fat cannot repair it (must-fail)";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "vfat (FAT32)",
            damage: "the boot sector (the volume's first logical sector) reads as zeros",
            outcomes: vec![
                Outcome::blkid(None),
                Outcome::new(
                    Role::Mount,
                    "mtools",
                    "mdir -i PART ::",
                    Verdict::Refused,
                    1,
                    "non DOS media",
                ),
                Outcome::new(
                    Role::Check,
                    "fsck.fat",
                    "fsck.fat -n PART",
                    Verdict::ReportsDamage,
                    1,
                    SECTOR_SIZE_ZERO,
                ),
                Outcome::new(
                    Role::Repair,
                    "fsck.fat",
                    "fsck.fat -a PART",
                    Verdict::CannotRepair,
                    1,
                    SECTOR_SIZE_ZERO,
                ),
                Outcome::new(
                    Role::AfterRepair,
                    "fsck.fat",
                    "fsck.fat -n PART",
                    Verdict::ReportsDamage,
                    1,
                    SECTOR_SIZE_ZERO,
                ),
            ],
            repair: None,
            preconditions: vec![
                "the partition holds FAT32 with a backup boot sector",
                "fsck.fat finds nothing else to report (boot sector, backup, FATs, dirty flags, FSInfo free count)",
            ],
        }
    }

    fn plan(p: &Fat32BootParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let f = choose_fat32(disk, p.partition)?;
        let (_, boot) = clean_base(disk, &f)?;
        let patch = Patch::Zero {
            offset: f.partition.start,
            len: boot.sector(),
        };
        let partition = Some(PartitionRef::from_found(&f));
        let mut plan = Plan::single(
            Self::NAME,
            partition,
            vec![patch.clone()],
            Prediction::default(),
        );
        let mut preview = Preview::new(&mut *disk, vec![patch]);
        plan.targets[0].prediction = predict_target(&plan.targets[0], &mut preview)?;
        Ok(plan)
    }

    fn predict(
        _: &Fat32BootParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        predict_target(target, damaged)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        verify_fat32(partition, now)
    }
}

//! The `fat32-fat-mismatch` recipe: the second FAT's entry for a cluster in
//! use says "free" while the first FAT still has the chain, so `fsck.fat -n`
//! reports "FATs differ but appear to be intact." (exit 1) and `fsck.fat -a`
//! copies the first FAT over the second (exit 1), restoring the volume byte
//! for byte. Verified in `shared/catalogue/fat32-fat-mismatch.sh` and
//! `tests/fat_recipes.rs`.

use super::fat::{choose_fat32, clean_base, identity_plan, predict_target, verify_fat32};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::bytes::le32;
use crate::fs::fat::boot::{FAT32_ENTRY_MASK, FAT32_ENTRY_SIZE, FIRST_DATA_CLUSTER};
use crate::fs::fat::fsck::{MSG_FATS_DIFFER, MSG_USING_FIRST};
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `fat32-fat-mismatch`: one in-use entry of the second FAT marked free.
pub struct Fat32FatMismatch;

/// Parameters of `fat32-fat-mismatch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct Fat32FatMismatchParams {
    /// The FAT32 partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only FAT32 partition.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    /// The cluster whose second-FAT entry is changed; it must be in use in
    /// the first FAT. Default: the root directory's first cluster.
    #[arg(long, value_name = "N")]
    pub cluster: Option<u32>,
}

impl Recipe for Fat32FatMismatch {
    type Params = Fat32FatMismatchParams;
    const NAME: &'static str = "fat32-fat-mismatch";
    const ABOUT: &'static str =
        "Mark an in-use cluster free in a FAT32 volume's second FAT: fsck.fat -a restores it byte-identical";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "vfat (FAT32)",
            damage: "the second FAT's 4-byte entry of an in-use cluster reads 0 (free)",
            outcomes: vec![
                Outcome::blkid(Some("vfat")),
                Outcome::new(Role::Mount, "mtools", "mdir -i PART ::", Verdict::Reads, 0, ""),
                Outcome::new(
                    Role::Check,
                    "fsck.fat",
                    "fsck.fat -n PART",
                    Verdict::ReportsDamage,
                    1,
                    MSG_FATS_DIFFER,
                ),
                Outcome::new(
                    Role::Repair,
                    "fsck.fat",
                    "fsck.fat -a PART",
                    Verdict::Repairs,
                    1,
                    MSG_USING_FIRST,
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
                "the partition holds FAT32 with two FATs and a backup boot sector",
                "fsck.fat finds nothing else to report (boot sector, backup, FATs, dirty flags, FSInfo free count)",
                "the chosen cluster is in use in the first FAT",
            ],
        }
    }

    fn plan(p: &Fat32FatMismatchParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let f = choose_fat32(disk, p.partition)?;
        let (_, boot) = clean_base(disk, &f)?;
        if boot.num_fats < 2 {
            return Err(Error::Refused(format!(
                "{}: one FAT only (BPB_NumFATs = 1): there is no second FAT to mismatch",
                f.describe()
            )));
        }
        let last = boot.data_clusters + u64::from(FIRST_DATA_CLUSTER);
        let cluster = u64::from(p.cluster.unwrap_or(boot.root_cluster));
        if !(u64::from(FIRST_DATA_CLUSTER)..last).contains(&cluster) {
            let e = format!(
                "cluster {cluster} is not a data cluster of {} (2..{})",
                f.describe(),
                last - 1
            );
            return Err(match p.cluster {
                Some(_) => Error::Usage(e).context("cluster"),
                None => Error::Refused(e),
            });
        }
        let part = &f.partition;
        let entry = cluster * FAT32_ENTRY_SIZE;
        let first = disk.read_vec(part.start + boot.fat_offset(0) + entry, 4)?;
        let value = le32(&first, 0);
        if value & FAT32_ENTRY_MASK == 0 {
            return Err(Error::Refused(format!(
                "cluster {cluster} is free in the first FAT of {}: marking it free in the second \
                 changes nothing (choose a cluster in use with --cluster)",
                f.describe()
            )));
        }
        let patch = Patch::Data {
            offset: part.start + boot.fat_offset(1) + entry,
            bytes: vec![0; FAT32_ENTRY_SIZE as usize],
        };
        identity_plan(
            Self::NAME,
            &f,
            disk,
            patch,
            "after the damage fsck.fat would not simply copy the first FAT back",
        )
    }

    fn predict(
        _: &Fat32FatMismatchParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        predict_target(target, damaged)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        verify_fat32(partition, now)
    }
}

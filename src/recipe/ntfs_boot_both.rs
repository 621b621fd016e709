//! The `ntfs-boot-both` recipe: zero both NTFS boot sectors: a must-fail case.
//!
//! Zeroes the primary boot sector and the backup in the partition's last
//! sector. Nothing identifies the volume, ntfs-3g refuses (exit 12) and
//! `ntfsfix` cannot repair it (exit 1). Failing is its purpose, so it is
//! written without `--allow-unrepairable`.
//! Verified in `shared/catalogue/ntfs-boot-both.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::Result;
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-boot-both`: no boot sector at all.
pub struct NtfsBootBoth;

/// Parameters of `ntfs-boot-both`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsBootBothParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsBootBoth {
    type Params = NtfsBootBothParams;
    const NAME: &'static str = "ntfs-boot-both";
    const ABOUT: &'static str =
        "Zero both NTFS boot sectors: mount fails and ntfsfix cannot repair (a must-fail case)";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage:
                "the primary boot sector and the backup (the partition's last sector) read as zeros",
            outcomes: vec![
                Outcome::new(
                    Role::Identify,
                    "blkid",
                    "blkid -p PART",
                    Verdict::Identifies(None),
                    2,
                    "",
                ),
                super::ntfs_boot::mount_refused(),
                super::ntfs_boot::util_linux_mount_refused(),
                Outcome::new(
                    Role::Repair,
                    "ntfsfix",
                    "ntfsfix PART",
                    Verdict::CannotRepair,
                    1,
                    tools::VOLUME_CORRUPT,
                ),
                Outcome {
                    role: Role::AfterRepair,
                    ..super::ntfs_boot::mount_refused()
                },
            ],
            repair: None,
            preconditions: vec!["the partition holds NTFS with 512-byte sectors"],
        }
    }

    fn plan(p: &NtfsBootBothParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsBootBothParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(_: &NtfsState, part: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    let last = (part.size() / 512).saturating_sub(1);
    Ok(vec![
        Patch::Zero {
            offset: 0,
            len: 512,
        },
        Patch::Zero {
            offset: last * 512,
            len: 512,
        },
    ])
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    if p.repairable() {
        return Err("ntfsfix would still find a usable boot sector".into());
    }
    Ok(())
}

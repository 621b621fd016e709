//! The `xfs-sb-primary` recipe: zero the primary XFS superblock sector
//! (`sb_sectsize` bytes at the start of AG 0). blkid finds nothing, the kernel
//! refuses to mount (exit 32), `xfs_repair -n` exits 1 ("bad primary
//! superblock - bad magic number !!!"), `xfs_repair` finds a secondary
//! superblock and rebuilds the primary (exit 0); then `xfs_repair -n` is
//! clean and the volume mounts read-write.
//!
//! Precondition: at least 2 AGs (a secondary superblock in AG 1 describing
//! the same filesystem; mkfs.xfs makes at least 2). The outcomes are the
//! same with 512- and 4096-byte sectors on image files. Verified in `shared/catalogue/xfs-sb-primary.sh`
//! and `tests/linux_recipes.rs`.

use super::linux::{self, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::xfs::{XfsSuperblock, XFS_SB_MAGIC};
use crate::image::{ReadAt, Window};
use crate::overlay::Patch;

/// `xfs-sb-primary`: zero the primary XFS superblock sector.
pub struct XfsSbPrimary;

/// xfs_repair's phase-1 line for the damage.
const BAD_PRIMARY: &str = "bad primary superblock - bad magic number !!!";
/// xfs_repair's line when it rewrites the primary from a secondary.
const WRITING: &str = "writing modified primary superblock";

impl Recipe for XfsSbPrimary {
    type Params = PartitionParams;
    const NAME: &'static str = "xfs-sb-primary";
    const ABOUT: &'static str =
        "Zero the primary XFS superblock: mount fails, xfs_repair rebuilds it from a secondary";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "xfs",
            damage: "the primary superblock sector (sb_sectsize bytes at byte 0) reads as zeros",
            outcomes: outcomes(None),
            repair: Some("xfs_repair PART"),
            preconditions: vec![
                "the partition holds XFS",
                "at least 2 allocation groups: a secondary superblock in AG 1 of the same filesystem",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "xfs")?;
        let (primary, ag1) = {
            let mut part = Window::new(&mut *disk, found.partition.start, found.partition.size)?;
            let primary = XfsSuperblock::read_at(&mut part, 0)?
                .ok_or_else(|| linux::refuse(&found, "no valid XFS superblock at byte 0"))?;
            let ag1 = if primary.ag_count() >= 2 {
                let at = primary.ag_offset(1).unwrap_or(u64::MAX);
                XfsSuperblock::read_at(&mut part, at)?
            } else {
                None
            };
            (primary, ag1)
        };
        if primary.ag_count() < 2 {
            return Err(linux::refuse(
                &found,
                "one allocation group: no secondary superblock for xfs_repair",
            ));
        }
        if ag1.as_ref().is_none_or(|s| s.uuid() != primary.uuid()) {
            return Err(linux::refuse(
                &found,
                "AG 1 holds no secondary superblock of this filesystem",
            ));
        }
        let patch = Patch::Zero {
            offset: 0,
            len: u64::from(primary.sector_size()),
        };
        linux::plan_one(Self::NAME, disk, &found, vec![patch], prediction).map_err(|e| match e {
            Error::Guest(why) => linux::refuse(&found, why),
            e => e,
        })
    }

    fn predict(
        _: &PartitionParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        linux::predict_target(Self::NAME, target, damaged, prediction)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        linux::verify_with("xfs", partition, now, prediction)
    }
}

fn outcomes(identified: Option<&str>) -> Vec<Outcome> {
    vec![
        Outcome::blkid(identified),
        linux::mount_unrecognised(false),
        Outcome::new(
            Role::Check,
            "xfs_repair",
            "xfs_repair -n PART",
            Verdict::ReportsDamage,
            1,
            BAD_PRIMARY,
        ),
        Outcome::new(
            Role::Repair,
            "xfs_repair",
            "xfs_repair PART",
            Verdict::Repairs,
            0,
            WRITING,
        ),
        Outcome::new(
            Role::AfterRepair,
            "xfs_repair",
            "xfs_repair -n PART",
            Verdict::Clean,
            0,
            "",
        ),
        linux::mount(Role::AfterRepair, false, Verdict::ReadWrite, 0, ""),
    ]
}

fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    // The outcomes (and "bad magic number") are those of a primary
    // without its magic; one that keeps "XFSB" but fails otherwise is not
    // modelled.
    if crate::fs::read_opt(part, 0, 4)?.is_none_or(|m| m == XFS_SB_MAGIC) {
        return Err(Error::Guest(
            "the primary XFS superblock still has its magic".into(),
        ));
    }
    let Some((at, _)) = XfsSuperblock::find_secondary(part)? else {
        return Err(Error::Guest(
            "no secondary XFS superblock for xfs_repair to find".into(),
        ));
    };
    let mut outcomes = outcomes(None);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![
            format!("xfs_repair finds the secondary superblock at byte {at} (\"found candidate secondary superblock...\", \"verified secondary superblock...\")"),
            "xfs_repair on an image file also warns \"Cannot get host filesystem geometry\" (about the host, not the damage)".into(),
            "xfs_repair rebuilds more than the superblock (counters, AG headers): not byte-identical to the base".into(),
        ],
    })
}

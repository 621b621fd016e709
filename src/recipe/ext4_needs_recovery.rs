//! The `ext4-needs-recovery` recipe: set `INCOMPAT_RECOVER` ("the journal
//! needs recovery") in the ext4 superblock and recompute its crc32c, as a
//! crash-consistent snapshot of a mounted filesystem reads.
//!
//! A read-only mount of a read-only device is refused (the kernel cannot
//! replay: "cannot mount … read-only", exit 32); a read-write mount replays
//! the (empty) journal, and so does `e2fsck -p` (exit 0). `e2fsck -n`
//! skips the recovery and calls the filesystem clean (exit 0). Verified in
//! `shared/catalogue/ext4-needs-recovery.sh` and `tests/linux_recipes.rs`.

use super::linux::{self, e2fsck, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ext4::{Superblock, INCOMPAT_RECOVER, SUPERBLOCK_OFFSET, S_FEATURE_INCOMPAT};
use crate::image::ReadAt;

/// `ext4-needs-recovery`: mark the journal as needing recovery.
pub struct Ext4NeedsRecovery;

/// `mount`'s line when the kernel refuses a read-only device.
const CANNOT_MOUNT_RO: &str = "read-only.";
/// e2fsck -n's warning.
const SKIPPING: &str = "skipping journal recovery";
/// e2fsck -p's line.
const RECOVERING: &str = "recovering journal";

impl Recipe for Ext4NeedsRecovery {
    type Params = PartitionParams;
    const NAME: &'static str = "ext4-needs-recovery";
    const ABOUT: &'static str =
        "Mark an ext4 journal as needing recovery: a read-only mount of a read-only device fails";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ext4",
            damage: "needs_recovery (s_feature_incompat 0x4) set, superblock crc32c recomputed",
            outcomes: outcomes(Some("ext4")),
            repair: Some(e2fsck::PREEN),
            preconditions: vec![
                linux::EXT4_CLEAN_BASE,
                "an internal journal, not already marked as needing recovery",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "ext4")?;
        let sb = linux::ext4_superblock(&found, disk)?;
        if !sb.has_internal_journal() {
            return Err(linux::refuse(
                &found,
                "the filesystem has no internal journal",
            ));
        }
        if sb.incompat() & INCOMPAT_RECOVER != 0 {
            return Err(linux::refuse(&found, "the journal already needs recovery"));
        }
        let damaged = sb.with_u32(S_FEATURE_INCOMPAT, sb.incompat() | INCOMPAT_RECOVER);
        let patches = super::ext4_unclean::changed_bytes(&sb, &damaged);
        linux::plan_one(Self::NAME, disk, &found, patches, prediction)
    }

    fn predict(
        _: &PartitionParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        linux::predict_target(Self::NAME, target, damaged, prediction)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        linux::ext4_verify(
            partition,
            now,
            |base, now| {
                let sb = &base.superblock;
                if !sb.has_internal_journal() {
                    return Ok(false);
                }
                let want = sb.with_u32(S_FEATURE_INCOMPAT, sb.incompat() | INCOMPAT_RECOVER);
                Ok(Superblock::read(now)?.is_some_and(|s| s == want))
            },
            prediction,
        )
    }
}

fn outcomes(identified: Option<&str>) -> Vec<Outcome> {
    vec![
        Outcome::blkid(identified),
        linux::mount(
            Role::Mount,
            true,
            Verdict::Refused,
            linux::MOUNT_FAILURE,
            CANNOT_MOUNT_RO,
        ),
        linux::mount(Role::Mount, false, Verdict::ReadWrite, 0, ""),
        Outcome::new(
            Role::Check,
            "e2fsck",
            e2fsck::CHECK,
            Verdict::Clean,
            e2fsck::OK,
            SKIPPING,
        ),
        Outcome::new(
            Role::Repair,
            "e2fsck",
            e2fsck::PREEN,
            Verdict::Repairs,
            e2fsck::OK,
            RECOVERING,
        ),
        Outcome::new(
            Role::AfterRepair,
            "e2fsck",
            e2fsck::CHECK,
            Verdict::Clean,
            e2fsck::OK,
            "clean",
        ),
        linux::mount(Role::AfterRepair, true, Verdict::ReadOnly, 0, ""),
    ]
}

fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    let sb = Superblock::read(part)?
        .ok_or_else(|| Error::Guest(format!("no ext4 superblock at byte {SUPERBLOCK_OFFSET}")))?;
    if sb.incompat() & INCOMPAT_RECOVER == 0 || !sb.checksum_ok() {
        return Err(Error::Guest(
            "the superblock does not mark the journal as needing recovery".into(),
        ));
    }
    let mut outcomes = outcomes(None);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![
            "the read-write mount is itself a repair: the kernel replays the journal (\"recovery complete\") and clears the flag".into(),
            "kernel on the read-only device: \"INFO: recovery required on readonly filesystem\", \"write access unavailable, cannot proceed (try mounting with noload)\"".into(),
            "e2fsck -p writes the journal superblock while replaying, so the volume is not byte-identical to the base afterwards".into(),
        ],
    })
}

//! The `ext4-unclean` recipe: clear `EXT2_VALID_FS` in the ext4
//! superblock's `s_state` and recompute its crc32c, as a filesystem that
//! was not cleanly unmounted reads.
//!
//! Latent: the kernel mounts it read-write (it only logs "warning: mounting
//! unchecked fs"); `e2fsck -n` forces a check and exits 0; `e2fsck -p`
//! forces a check, sets the state and exits 1; then it is clean. Verified
//! in `shared/catalogue/ext4-unclean.sh` and `tests/linux_recipes.rs`.

use super::linux::{self, e2fsck, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ext4::{
    Superblock, INCOMPAT_RECOVER, STATE_ERROR_FS, STATE_VALID_FS, SUPERBLOCK_OFFSET, S_STATE,
};
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ext4-unclean`: mark the filesystem as not cleanly unmounted.
pub struct Ext4Unclean;

/// e2fsck's line for a filesystem whose state is not clean.
const CHECK_FORCED: &str = "was not cleanly unmounted, check forced";

impl Recipe for Ext4Unclean {
    type Params = PartitionParams;
    const NAME: &'static str = "ext4-unclean";
    const ABOUT: &'static str =
        "Mark ext4 as not cleanly unmounted: it mounts, e2fsck -p forces a check (exit 1)";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ext4",
            damage: "the clean-unmount bit (s_state 0x1) cleared, superblock crc32c recomputed",
            outcomes: outcomes(Some("ext4")),
            repair: Some(e2fsck::PREEN),
            preconditions: vec![
                linux::EXT4_CLEAN_BASE,
                "its state is clean (no errors) and the journal needs no recovery",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "ext4")?;
        let sb = linux::ext4_superblock(&found, disk)?;
        if sb.state() & STATE_VALID_FS == 0 || sb.state() & STATE_ERROR_FS != 0 {
            return Err(linux::refuse(
                &found,
                format!(
                    "the filesystem is already marked unclean or with errors (s_state {:#x})",
                    sb.state()
                ),
            ));
        }
        if sb.incompat() & INCOMPAT_RECOVER != 0 {
            return Err(linux::refuse(&found, "the journal needs recovery"));
        }
        let damaged = sb.with_u16(S_STATE, sb.state() & !STATE_VALID_FS);
        let patches = changed_bytes(&sb, &damaged);
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
                let want = sb.with_u16(S_STATE, sb.state() & !STATE_VALID_FS);
                Ok(Superblock::read(now)?.is_some_and(|s| s == want))
            },
            prediction,
        )
    }
}

/// The patches (relative to the volume) turning superblock `before` into
/// `after`: one per run of changed bytes.
pub(crate) fn changed_bytes(before: &Superblock, after: &Superblock) -> Vec<Patch> {
    let (a, b) = (before.raw(), after.raw());
    let mut patches = Vec::new();
    let mut i = 0;
    while i < a.len() {
        if a[i] == b[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < a.len() && a[i] != b[i] {
            i += 1;
        }
        patches.push(Patch::Data {
            offset: SUPERBLOCK_OFFSET + start as u64,
            bytes: b[start..i].to_vec(),
        });
    }
    patches
}

fn outcomes(identified: Option<&str>) -> Vec<Outcome> {
    vec![
        Outcome::blkid(identified),
        linux::mount(Role::Mount, false, Verdict::ReadWrite, 0, ""),
        Outcome::new(
            Role::Check,
            "e2fsck",
            e2fsck::CHECK,
            Verdict::ReportsDamage,
            e2fsck::OK,
            CHECK_FORCED,
        ),
        Outcome::new(
            Role::Repair,
            "e2fsck",
            e2fsck::PREEN,
            Verdict::Repairs,
            e2fsck::NONDESTRUCT,
            CHECK_FORCED,
        ),
        Outcome::new(
            Role::AfterRepair,
            "e2fsck",
            e2fsck::CHECK,
            Verdict::Clean,
            e2fsck::OK,
            "clean",
        ),
        linux::mount(Role::AfterRepair, false, Verdict::ReadWrite, 0, ""),
    ]
}

fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    let sb = Superblock::read(part)?
        .ok_or_else(|| Error::Guest(format!("no ext4 superblock at byte {SUPERBLOCK_OFFSET}")))?;
    if sb.state() & STATE_VALID_FS != 0 || !sb.checksum_ok() {
        return Err(Error::Guest(
            "the superblock does not mark the filesystem as unclean".into(),
        ));
    }
    let mut outcomes = outcomes(None);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![
            "kernel: \"warning: mounting unchecked fs, running e2fsck is recommended\"; the flag survives mount and umount".into(),
            "e2fsck -n exits 0 although it reports the unclean state".into(),
            "e2fsck -p records the check time in the superblock: not byte-identical to the base".into(),
        ],
    })
}

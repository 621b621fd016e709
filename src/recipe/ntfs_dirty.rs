//! The `ntfs-dirty` recipe: set the volume's dirty flag.
//!
//! Sets `VOLUME_IS_DIRTY` in `$Volume`'s `$VOLUME_INFORMATION`, in `$MFT` and
//! in `$MFTMirr` (record 3 is mirrored; changing one copy would be
//! `ntfs-mftmirr`). ntfs-3g mounts read-write and `ntfsfix -n` is silent, yet
//! `ntfsresize` and `ntfsclone` refuse (exit 1, "scheduled for check");
//! `ntfsfix -d` clears it.
//! Verified in `shared/catalogue/ntfs-dirty.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-dirty`: a dirty volume.
pub struct NtfsDirty;

/// Parameters of `ntfs-dirty`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsDirtyParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsDirty {
    type Params = NtfsDirtyParams;
    const NAME: &'static str = "ntfs-dirty";
    const ABOUT: &'static str =
        "Set NTFS's dirty flag: mounts fine, but ntfsresize/ntfsclone refuse until ntfsfix -d";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "VOLUME_IS_DIRTY in $Volume's flags, in $MFT and in $MFTMirr",
            outcomes: vec![
                Outcome::new(
                    Role::Identify,
                    "blkid",
                    "blkid -p PART",
                    Verdict::Identifies(Some("ntfs".into())),
                    0,
                    "",
                ),
                Outcome::new(
                    Role::Mount,
                    "ntfs-3g",
                    "ntfs-3g PART MNT",
                    Verdict::ReadWrite,
                    0,
                    "",
                ),
                Outcome::new(
                    Role::Check,
                    "ntfsresize",
                    "ntfsresize -i PART",
                    Verdict::Refused,
                    1,
                    tools::SCHEDULED_FOR_CHECK,
                ),
                Outcome::new(
                    Role::Repair,
                    "ntfsfix",
                    "ntfsfix -d PART",
                    Verdict::Repairs,
                    0,
                    "",
                ),
            ]
            .into_iter()
            .chain(ntfs::after_repair(false))
            .collect(),
            repair: Some("ntfsfix -d PART"),
            preconditions: vec![
                "the partition holds NTFS with 512-byte sectors",
                "the dirty flag is not set already",
            ],
        }
    }

    fn plan(p: &NtfsDirtyParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsDirtyParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(state: &NtfsState, _: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    use crate::fs::ntfs::record::VOLUME_IS_DIRTY;
    if state.dirty {
        return Err(Error::Refused("the dirty flag is already set".into()));
    }
    let flags = (state.places.volume_flags | VOLUME_IS_DIRTY).to_le_bytes();
    let copies: Vec<u8> = flags.iter().chain(flags.iter()).copied().collect();
    ntfs::range_patches(&state.places.dirty_flag, &copies)
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    ntfs::repairable(p)?;
    match p.outcome(Role::Check) {
        Some(o) if o.tool == "ntfsresize" && o.result == Verdict::Refused => Ok(()),
        _ => Err("ntfsresize would not see the dirty flag".into()),
    }
}

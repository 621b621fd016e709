//! The `ntfs-mftmirr` recipe: make `$MFTMirr` differ from `$MFT`.
//!
//! Inverts the 8 bytes of the creation time in the mirror copy of record 0's
//! `$STANDARD_INFORMATION` (inverting, not zeroing: on some volumes those
//! bytes are already zero). ntfs-3g refuses even read-only (exit 13,
//! "$MFTMirr does not match $MFT (record 0)."); `ntfsfix` copies `$MFT` over
//! the mirror (exit 0).
//! Verified in `shared/catalogue/ntfs-mftmirr.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-mftmirr`: a mirror that does not match.
pub struct NtfsMftmirr;

/// Parameters of `ntfs-mftmirr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsMftmirrParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsMftmirr {
    type Params = NtfsMftmirrParams;
    const NAME: &'static str = "ntfs-mftmirr";
    const ABOUT: &'static str =
        "Make $MFTMirr record 0 differ from $MFT: ntfs-3g refuses even read-only; ntfsfix repairs";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "the creation time in $MFTMirr's copy of record 0, inverted",
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
                    Verdict::Refused,
                    13,
                    "$MFTMirr does not match $MFT (record 0).",
                ),
                Outcome::new(
                    Role::Check,
                    "ntfsfix",
                    "ntfsfix -n PART",
                    Verdict::ReportsDamage,
                    1,
                    "Correcting differences in $MFTMirr record 0...OK",
                ),
                Outcome::new(
                    Role::Repair,
                    "ntfsfix",
                    "ntfsfix PART",
                    Verdict::Repairs,
                    0,
                    "Correcting differences in $MFTMirr record 0...OK",
                ),
            ]
            .into_iter()
            .chain(ntfs::after_repair(true))
            .collect(),
            repair: Some("ntfsfix PART"),
            preconditions: vec![
                "the partition holds NTFS with 512-byte sectors and $MFTMirr matches $MFT",
            ],
        }
    }

    fn plan(p: &NtfsMftmirrParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsMftmirrParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(state: &NtfsState, part: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    if state.mirror_mismatch.is_some() {
        return Err(Error::Refused("$MFTMirr already differs from $MFT".into()));
    }
    let ranges = &state.places.mirror_si_time;
    if ranges.iter().map(|r| r.1).sum::<usize>() != 8 {
        return Err(Error::Refused(
            "record 0 has no $STANDARD_INFORMATION".into(),
        ));
    }
    let mut inverted = Vec::with_capacity(8);
    for &(at, n) in ranges {
        inverted.extend(part.read_vec(at, n)?.into_iter().map(|b| !b));
    }
    ntfs::range_patches(ranges, &inverted)
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    ntfs::repairable(p)?;
    match p.outcome(Role::Mount) {
        Some(o) if o.exit_code == 13 => Ok(()),
        _ => Err("ntfs-3g would not see the mismatch".into()),
    }
}

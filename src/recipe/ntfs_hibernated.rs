//! The `ntfs-hibernated` recipe: make `hiberfil.sys` say "Windows is hibernated".
//!
//! Writes `hibr` over the first bytes of `hiberfil.sys`'s data, found by name in
//! the root directory and through its record's data runs. A read-write
//! ntfs-3g mount falls back to read-only and exits 0 ("Windows is
//! hibernated, refused to mount."); `ntfsfix` cannot repair it (exit 1,
//! "Remount failed: Operation not permitted", after writing);
//! `ntfs-3g -o remove_hiberfile` mounts read-write and deletes the file.
//! Verified in `shared/catalogue/ntfs-hibernated.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-hibernated`: a hibernated Windows.
pub struct NtfsHibernated;

/// Parameters of `ntfs-hibernated`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsHibernatedParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsHibernated {
    type Params = NtfsHibernatedParams;
    const NAME: &'static str = "ntfs-hibernated";
    const ABOUT: &'static str = "Mark hiberfil.sys as hibernated: ntfs-3g silently mounts read-only; ntfsfix cannot repair it, remove_hiberfile can";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "the first 4 bytes of hiberfil.sys's data read `hibr`",
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
                    Verdict::ReadOnly,
                    0,
                    tools::HIBERNATED,
                ),
                Outcome::new(
                    Role::Repair,
                    "ntfsfix",
                    "ntfsfix PART",
                    Verdict::CannotRepair,
                    1,
                    tools::REMOUNT_FAILED,
                ),
                Outcome::new(
                    Role::Repair,
                    "ntfs-3g",
                    "ntfs-3g -o remove_hiberfile PART MNT",
                    Verdict::Repairs,
                    0,
                    "",
                ),
            ]
            .into_iter()
            .chain(ntfs::after_repair(false))
            .collect(),
            repair: Some("ntfs-3g -o remove_hiberfile PART MNT"),
            preconditions: vec![
                "the partition holds NTFS with 512-byte sectors",
                "/hiberfil.sys exists, is non-resident, uncompressed and at least 4096 bytes",
            ],
        }
    }

    fn plan(p: &NtfsHibernatedParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsHibernatedParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(state: &NtfsState, _: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    use crate::fs::ntfs::state::HIBERFILE_HEADER_SIZE;
    let (_, data) =
        state.places.hiberfile.as_ref().ok_or_else(|| {
            Error::Refused("there is no hiberfil.sys in the root directory".into())
        })?;
    if state.hiber == crate::fs::ntfs::HiberState::Hibernated {
        return Err(Error::Refused(
            "hiberfil.sys already says the volume is hibernated".into(),
        ));
    }
    if data.resident {
        return Err(Error::Refused(
            "hiberfil.sys's data is resident (inside its MFT record)".into(),
        ));
    }
    if !data.plain {
        return Err(Error::Refused(
            "hiberfil.sys is compressed, encrypted or sparse".into(),
        ));
    }
    if data.size < HIBERFILE_HEADER_SIZE || data.initialized < 4 {
        return Err(Error::Refused(format!(
            "hiberfil.sys holds {} bytes; ntfs-3g needs {HIBERFILE_HEADER_SIZE} to read it as hibernation",
            data.size.min(data.initialized)
        )));
    }
    ntfs::stream_patches(state, &data.runs, b"hibr")
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    ntfs::repairable(p)?;
    match p.outcome(Role::Mount) {
        Some(o)
            if o.result == Verdict::ReadOnly && o.message.as_deref() == Some(tools::HIBERNATED) =>
        {
            Ok(())
        }
        _ => Err("the mount would not see a hibernated Windows".into()),
    }
}

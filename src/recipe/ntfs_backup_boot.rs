//! The `ntfs-backup-boot` recipe: zero only the backup boot sector.
//!
//! Zeroes the partition's last sector, where ntfsfix checks the alternate
//! boot sector (it only checks it when the partition is larger than the
//! volume, as mkntfs and Windows make it). ntfs-3g mounts read-write;
//! `ntfsfix -n` reports it (exit 1, "Checking the alternate boot sector...
//! BAD"); `ntfsfix` rewrites it from sector 0.
//! Verified in `shared/catalogue/ntfs-backup-boot.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-backup-boot`: a missing backup boot sector.
pub struct NtfsBackupBoot;

/// Parameters of `ntfs-backup-boot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsBackupBootParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsBackupBoot {
    type Params = NtfsBackupBootParams;
    const NAME: &'static str = "ntfs-backup-boot";
    const ABOUT: &'static str =
        "Zero the NTFS backup boot sector: mounts fine, ntfsfix -n reports it, ntfsfix rewrites it";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "the backup boot sector (the partition's last sector) reads as zeros",
            outcomes: vec![
                Outcome::new(Role::Identify, "blkid", "blkid -p PART", Verdict::Identifies(Some("ntfs".into())), 0, ""),
                Outcome::new(Role::Mount, "ntfs-3g", "ntfs-3g PART MNT", Verdict::ReadWrite, 0, ""),
                Outcome::new(Role::Check, "ntfsfix", "ntfsfix -n PART", Verdict::ReportsDamage, 1, tools::ALT_BOOT_BAD),
                Outcome::new(Role::Repair, "ntfsfix", "ntfsfix PART", Verdict::Repairs, 0, tools::ALT_BOOT_FIXED),
            ]
            .into_iter()
            .chain(ntfs::after_repair(true))
            .collect(),
            repair: Some("ntfsfix PART"),
            preconditions: vec![
                "the partition holds NTFS with 512-byte sectors and is larger than the volume (the backup lies past it)",
            ],
        }
    }

    fn plan(p: &NtfsBackupBootParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsBackupBootParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(state: &NtfsState, part: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    if state.params.is_none() {
        return Err(Error::Refused("the boot sector does not load".into()));
    }
    let sectors = part.size() / 512;
    // ntfsfix compares the device's sectors with the boot sector's
    // number_of_sectors (offset 0x28).
    let boot = part.read_vec(0, 512)?;
    let volume_sectors = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap_or([0xFF; 8]));
    if sectors <= volume_sectors.max(1) {
        return Err(Error::Refused(
            "the partition ends with the volume: ntfsfix would not check a backup boot sector"
                .into(),
        ));
    }
    if part
        .read_vec((sectors - 1) * 512, 512)?
        .iter()
        .all(|&b| b == 0)
    {
        return Err(Error::Refused(
            "the backup boot sector already reads as zeros".into(),
        ));
    }
    Ok(vec![Patch::Zero {
        offset: (sectors - 1) * 512,
        len: 512,
    }])
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    ntfs::repairable(p)?;
    match p.outcome(Role::Check) {
        Some(o) if o.result == Verdict::ReportsDamage => Ok(()),
        _ => Err("ntfsfix -n would not notice".into()),
    }
}

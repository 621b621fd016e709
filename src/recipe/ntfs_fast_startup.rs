//! The `ntfs-fast-startup` recipe: make the journal say "Windows 8+ fast startup".
//!
//! `$LogFile`'s two restart pages become a version 2.0 page with a client
//! in use and no clean flag ([`crate::fs::ntfs::logfile::unclean_restart_page`]).
//! A read-write ntfs-3g mount falls back to read-only and exits 0 ("Metadata
//! kept in Windows cache, refused to mount."); `-o remove_hiberfile` is
//! refused (exit 14); `ntfsfix` empties the journal (exit 0).
//! Verified in `shared/catalogue/ntfs-fast-startup.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::Result;
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-fast-startup`: a fast-startup journal.
pub struct NtfsFastStartup;

/// Parameters of `ntfs-fast-startup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsFastStartupParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsFastStartup {
    type Params = NtfsFastStartupParams;
    const NAME: &'static str = "ntfs-fast-startup";
    const ABOUT: &'static str = "Make $LogFile say Windows fast startup: ntfs-3g silently mounts read-only; ntfsfix repairs";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "$LogFile's two restart pages: version 2.0, a client in use, not clean",
            outcomes: vec![
                Outcome::new(Role::Identify, "blkid", "blkid -p PART", Verdict::Identifies(Some("ntfs".into())), 0, ""),
                Outcome::new(Role::Mount, "ntfs-3g", "ntfs-3g PART MNT", Verdict::ReadOnly, 0, tools::WINDOWS_CACHE),
                Outcome::new(Role::Mount, "ntfs-3g", "ntfs-3g -o remove_hiberfile PART MNT", Verdict::Refused, 14, tools::WINDOWS_CACHE),
                Outcome::new(Role::Repair, "ntfsfix", "ntfsfix PART", Verdict::Repairs, 0, tools::EMPTY_JOURNAL),
            ]
            .into_iter()
            .chain(ntfs::after_repair(true))
            .collect(),
            repair: Some("ntfsfix PART"),
            preconditions: vec![
                "the partition holds NTFS with 512-byte sectors and a non-resident $LogFile of at least 200 KiB (as ntfs-3g requires)",
            ],
        }
    }

    fn plan(p: &NtfsFastStartupParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsFastStartupParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(state: &NtfsState, _: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    super::ntfs_unclean_journal::journal_patches(state, 2, 0)
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    ntfs::repairable(p)?;
    match p.outcome(Role::Mount) {
        Some(o)
            if o.result == Verdict::ReadOnly
                && o.message.as_deref() == Some(tools::WINDOWS_CACHE) =>
        {
            Ok(())
        }
        _ => Err("the mount would not fall back to read-only for the Windows cache".into()),
    }
}

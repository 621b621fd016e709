//! The `ntfs-unclean-journal` recipe: make the journal say "not cleanly shut down".
//!
//! `$LogFile`'s two restart pages become a version 1.1 page with a client
//! in use and no clean flag (a crash or power cut). A read-only mount is
//! silent; a read-write ntfs-3g mount resets the journal itself ("The file
//! system wasn't safely closed on Windows. Fixing."); `ntfsfix` empties it.
//! Verified in `shared/catalogue/ntfs-unclean-journal.sh` and by `tests/ntfs_recipes.rs`.

use super::ntfs::{self, NtfsTarget};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsState;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ntfs-unclean-journal`: an unclean journal.
pub struct NtfsUncleanJournal;

/// Parameters of `ntfs-unclean-journal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsUncleanJournalParams {
    /// Which NTFS partitions.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: NtfsTarget,
}

impl Recipe for NtfsUncleanJournal {
    type Params = NtfsUncleanJournalParams;
    const NAME: &'static str = "ntfs-unclean-journal";
    const ABOUT: &'static str =
        "Make $LogFile say unclean shutdown: a read-write mount or ntfsfix resets it";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "$LogFile's two restart pages: version 1.1, a client in use, not clean",
            outcomes: vec![
                Outcome::new(Role::Identify, "blkid", "blkid -p PART", Verdict::Identifies(Some("ntfs".into())), 0, ""),
                Outcome::new(Role::Mount, "ntfs-3g", "ntfs-3g PART MNT", Verdict::ReadWrite, 0, tools::FIXING_JOURNAL),
                Outcome::new(Role::Mount, "ntfs-3g", "ntfs-3g -o ro PART MNT", Verdict::ReadOnly, 0, ""),
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

    fn plan(p: &NtfsUncleanJournalParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ntfs::plan(Self::NAME, &p.target, disk, &damage, &expect)
    }

    fn predict(
        _: &NtfsUncleanJournalParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        ntfs::predict_target(target, damaged)
    }
}

fn damage(state: &NtfsState, _: &mut dyn ReadAt) -> Result<Vec<Patch>> {
    journal_patches(state, 1, 1)
}

/// The patches writing an unclean restart page of version `major.minor`
/// over both restart pages of `$LogFile` (its first 8 KiB), so ntfs-3g
/// reads it whatever LSNs Windows left in the other one (shared with
/// `ntfs-fast-startup`).
pub(crate) fn journal_patches(state: &NtfsState, major: i16, minor: i16) -> Result<Vec<Patch>> {
    use crate::fs::ntfs::logfile::{unclean_restart_page, MIN_LOGFILE_SIZE};
    let log = state
        .places
        .logfile
        .as_ref()
        .ok_or_else(|| Error::Refused("$LogFile was not found".into()))?;
    if log.resident || !log.plain || log.size < MIN_LOGFILE_SIZE {
        return Err(Error::Refused(format!(
            "$LogFile's data is resident, compressed or shorter than the {} KiB ntfs-3g requires",
            MIN_LOGFILE_SIZE >> 10
        )));
    }
    if !matches!(state.log, crate::fs::ntfs::logfile::LogState::Clean) {
        return Err(Error::Refused(format!(
            "the journal is already {}",
            state.log.describe()
        )));
    }
    let page = unclean_restart_page(log.size, major, minor);
    let both = [page.as_slice(), page.as_slice()].concat();
    ntfs::stream_patches(state, &log.runs, &both)
}

fn expect(p: &Prediction) -> std::result::Result<(), String> {
    ntfs::repairable(p)?;
    match p.outcome(Role::Mount) {
        Some(o)
            if o.result == Verdict::ReadWrite
                && o.message.as_deref() == Some(tools::FIXING_JOURNAL) =>
        {
            Ok(())
        }
        _ => Err("the read-write mount would not reset the journal".into()),
    }
}

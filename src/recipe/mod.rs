//! Recipes: damage with a known outcome. One file per recipe, one registry.
//!
//! A recipe is a type implementing [`Recipe`]: its name, a one-line
//! description, one parameter struct (clap derives the arguments of
//! `inject NAME` and `--each "NAME …"` from it; the manifest's fields are the
//! same arguments by their snake_case ids), its preconditions and plan
//! ([`Recipe::plan`]: targets, guest patches and the prediction, without
//! writing), its prediction on a damaged guest ([`Recipe::predict`], run again
//! on the written overlay before it is renamed into place), what `verify`
//! reports for a partition it damaged, and whether a chain may apply it on
//! top of itself. [`RECIPES`] lists them all; `inject`, `chain`, `batch`,
//! `verify`, `qfault recipes` and the JSON are generated from that list.
//!
//! Adding a recipe: a file here with a unit struct implementing [`Recipe`],
//! its filesystem model under [`crate::fs`], one line in [`RECIPES`], and its
//! tests (the registry conformance test in `tests/recipes.rs` covers it).
//!
//! - [`empty`], [`zero`], [`write`](mod@write): plain overlays.
//! - [`ntfs_boot`]: zero the NTFS primary boot sector; `ntfsfix` repairs it.
//! - The NTFS states, sharing [`ntfs`]'s selection and state prediction:
//!   [`ntfs_fast_startup`], [`ntfs_unclean_journal`], [`ntfs_hibernated`],
//!   [`ntfs_dirty`], [`ntfs_mftmirr`], [`ntfs_boot_both`] (must fail),
//!   [`ntfs_backup_boot`].
//! - [`ext4_sb_primary`], [`ext4_needs_recovery`], [`ext4_unclean`],
//!   [`ext4_gdt_csum`], [`xfs_sb_primary`], [`btrfs_sb_primary`],
//!   [`luks2_primary_header`]: the Linux recipes, sharing [`linux`].
//! - [`gpt_primary`], [`gpt_primary_crc`], [`gpt_backup`], [`gpt_no_pmbr`],
//!   [`mbr_no_signature`], [`mbr_overlap`], [`mbr_ebr_loop`]: partition-table damage (whole
//!   disk), sharing [`ptable`].
//! - [`fat32_fat_mismatch`], [`fat32_dirty`], [`fat32_backup_boot`],
//!   [`fat32_boot`] (FAT32, sharing [`fat`]) and [`exfat_boot_checksum`].
//! - [`select`]: finding the partitions a recipe acts on.
//! - [`prediction`]: the one prediction model ([`Prediction`], [`Outcome`]).

pub mod btrfs_sb_primary;
pub mod empty;
pub mod exfat_boot_checksum;
pub mod ext4_gdt_csum;
pub mod ext4_needs_recovery;
pub mod ext4_sb_primary;
pub mod ext4_unclean;
pub mod fat;
pub mod fat32_backup_boot;
pub mod fat32_boot;
pub mod fat32_dirty;
pub mod fat32_fat_mismatch;
pub mod gpt_backup;
pub mod gpt_no_pmbr;
pub mod gpt_primary;
pub mod gpt_primary_crc;
pub mod linux;
pub mod luks2_primary_header;
pub mod mbr_ebr_loop;
pub mod mbr_no_signature;
pub mod mbr_overlap;
pub mod ntfs;
pub mod ntfs_backup_boot;
pub mod ntfs_boot;
pub mod ntfs_boot_both;
pub mod ntfs_dirty;
pub mod ntfs_fast_startup;
pub mod ntfs_hibernated;
pub mod ntfs_mftmirr;
pub mod ntfs_unclean_journal;
pub mod prediction;
pub mod ptable;
pub mod select;
mod spec;
pub mod write;
pub mod xfs_sb_primary;
pub mod zero;

pub use prediction::{Outcome, Prediction, Role, Verdict};
pub use spec::{find, parse_words, split_words, DynRecipe, Field, Spec};

use crate::error::Result;
use crate::image::ReadAt;
use crate::overlay::Patch;
use select::Found;
use serde::Serialize;
use std::path::Path;

/// The parameters of a recipe: one struct, from which clap derives the
/// command-line arguments (and so the manifest fields), serialized as JSON in
/// reports.
pub trait Params:
    clap::Args
    + clap::FromArgMatches
    + Serialize
    + Clone
    + std::fmt::Debug
    + PartialEq
    + Send
    + Sync
    + 'static
{
}

impl<T> Params for T where
    T: clap::Args
        + clap::FromArgMatches
        + Serialize
        + Clone
        + std::fmt::Debug
        + PartialEq
        + Send
        + Sync
        + 'static
{
}

/// One recipe of the catalogue. Implemented by a unit struct per file.
pub trait Recipe: Send + Sync + 'static {
    /// The parameters (see [`Params`]).
    type Params: Params;
    /// Name in `inject NAME`, `--each "NAME …"` and manifests.
    const NAME: &'static str;
    /// One line for `--help` and `qfault recipes`.
    const ABOUT: &'static str;
    /// Whether a chain may apply it again on an image it already damaged.
    const REPEATABLE: bool = true;

    /// What `qfault recipes` says about it.
    fn catalogue() -> Catalogue;

    /// Resolves relative paths among the parameters against `dir` (a
    /// manifest's directory).
    fn resolve_paths(_params: &mut Self::Params, _dir: &Path) {}

    /// Checks the preconditions on `disk` (the guest as it reads before the
    /// damage), chooses the targets and plans the guest patches and the
    /// prediction. Reads only; refuses ([`crate::Error::Refused`]) damage that
    /// would not do what the recipe promises.
    fn plan(params: &Self::Params, disk: &mut dyn ReadAt) -> Result<Plan>;

    /// Predicts the tools' behaviour on `damaged` (the whole guest disk after
    /// the damage) for `target`, one of the plan's targets. Run on the
    /// written overlay before it is renamed into place: it must equal the
    /// plan's prediction.
    fn predict(
        params: &Self::Params,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction>;

    /// What `verify` reports for `partition` (as the backing chain has it),
    /// read through the overlay as `now`, when this recipe's model applies to
    /// it; `None` otherwise.
    fn verify(_partition: &Found, _now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        Ok(None)
    }
}

/// Every recipe, in catalogue order. Everything else is generated from it.
pub static RECIPES: &[&dyn DynRecipe] = &[
    &spec::Entry::<empty::Empty>::NEW,
    &spec::Entry::<zero::Zero>::NEW,
    &spec::Entry::<write::Write>::NEW,
    &spec::Entry::<ntfs_boot::NtfsBoot>::NEW,
    &spec::Entry::<ntfs_fast_startup::NtfsFastStartup>::NEW,
    &spec::Entry::<ntfs_unclean_journal::NtfsUncleanJournal>::NEW,
    &spec::Entry::<ntfs_hibernated::NtfsHibernated>::NEW,
    &spec::Entry::<ntfs_dirty::NtfsDirty>::NEW,
    &spec::Entry::<ntfs_mftmirr::NtfsMftmirr>::NEW,
    &spec::Entry::<ntfs_boot_both::NtfsBootBoth>::NEW,
    &spec::Entry::<ntfs_backup_boot::NtfsBackupBoot>::NEW,
    &spec::Entry::<ext4_sb_primary::Ext4SbPrimary>::NEW,
    &spec::Entry::<ext4_needs_recovery::Ext4NeedsRecovery>::NEW,
    &spec::Entry::<ext4_unclean::Ext4Unclean>::NEW,
    &spec::Entry::<ext4_gdt_csum::Ext4GdtCsum>::NEW,
    &spec::Entry::<xfs_sb_primary::XfsSbPrimary>::NEW,
    &spec::Entry::<btrfs_sb_primary::BtrfsSbPrimary>::NEW,
    &spec::Entry::<luks2_primary_header::Luks2PrimaryHeader>::NEW,
    &spec::Entry::<gpt_primary::GptPrimary>::NEW,
    &spec::Entry::<gpt_primary_crc::GptPrimaryCrc>::NEW,
    &spec::Entry::<gpt_backup::GptBackup>::NEW,
    &spec::Entry::<gpt_no_pmbr::GptNoPmbr>::NEW,
    &spec::Entry::<mbr_no_signature::MbrNoSignature>::NEW,
    &spec::Entry::<mbr_overlap::MbrOverlap>::NEW,
    &spec::Entry::<mbr_ebr_loop::MbrEbrLoop>::NEW,
    &spec::Entry::<fat32_fat_mismatch::Fat32FatMismatch>::NEW,
    &spec::Entry::<fat32_dirty::Fat32Dirty>::NEW,
    &spec::Entry::<fat32_backup_boot::Fat32BackupBoot>::NEW,
    &spec::Entry::<exfat_boot_checksum::ExfatBootChecksum>::NEW,
    &spec::Entry::<fat32_boot::Fat32BootSector>::NEW,
];

/// What `qfault recipes` lists about a recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    /// What it acts on: `disk`, `partition`, or a filesystem (`ntfs`, ...).
    pub targets: &'static str,
    /// What it damages, in one line.
    pub damage: &'static str,
    /// The predicted outcome per tool on a typical target.
    pub outcomes: Vec<Outcome>,
    /// The repair command, if one repairs it.
    pub repair: Option<&'static str>,
    /// What must hold before it writes (otherwise it refuses, exit 3).
    pub preconditions: Vec<&'static str>,
}

/// A guest byte range, `{"offset", "length"}` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Range {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

impl Range {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// A partition as reports name it: `{"number", "offset", "length", "type",
/// "label", "filesystem"}`; number 0 is the whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRef {
    /// As `inspect` numbers partitions (0: the whole disk).
    pub number: u32,
    /// First byte on the guest disk.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// The table's type (`0x07`, a GUID) or `null`.
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    /// The filesystem label before the damage.
    pub label: Option<String>,
    /// The filesystem (blkid TYPE) before the damage.
    pub filesystem: Option<&'static str>,
}

impl PartitionRef {
    /// The reference for a found partition.
    pub fn from_found(f: &Found) -> Self {
        PartitionRef {
            number: f.partition.number,
            offset: f.partition.start,
            length: f.partition.size,
            ptype: f.partition.ptype.code(),
            label: f.label().map(str::to_string),
            filesystem: f.fstype(),
        }
    }

    /// "partition 2 (49283072 bytes at 17825792, ntfs "C")".
    pub fn describe(&self) -> String {
        let mut s = format!(
            "partition {} ({} bytes at {}",
            self.number, self.length, self.offset
        );
        match (self.filesystem, &self.label) {
            (Some(t), Some(l)) => s += &format!(", {t} \"{l}\")"),
            (Some(t), None) => s += &format!(", {t})"),
            _ => s += ", no filesystem recognised)",
        }
        s
    }
}

/// One place a recipe damages and what will happen to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The recipe's name.
    pub recipe: &'static str,
    /// The partition (`None`: the change is addressed to the whole disk).
    pub partition: Option<PartitionRef>,
    /// The guest bytes changed.
    pub changes: Vec<Range>,
    /// What the tools will do.
    pub prediction: Prediction,
}

/// A candidate a recipe leaves alone (e.g. `--all` skipping a partition
/// ntfsfix could not repair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The partition.
    pub partition: PartitionRef,
    /// Why, in one line.
    pub reason: String,
}

/// What a recipe will do to one guest: the patches, the targets and their
/// predictions. Nothing is written to make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The places damaged.
    pub targets: Vec<Target>,
    /// Candidates left alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// The guest changes, in order.
    #[serde(skip)]
    pub patches: Vec<Patch>,
}

impl Plan {
    /// A plan of `patches` with one target (`changes` derived from the patches).
    pub fn single(
        recipe: &'static str,
        partition: Option<PartitionRef>,
        patches: Vec<Patch>,
        prediction: Prediction,
    ) -> Self {
        let changes = patches
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Range {
                offset: p.offset(),
                length: p.len(),
            })
            .collect();
        Plan {
            targets: vec![Target {
                recipe,
                partition,
                changes,
                prediction,
            }],
            skipped: Vec::new(),
            patches,
        }
    }
}

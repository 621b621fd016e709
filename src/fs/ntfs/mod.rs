//! NTFS: everything qfault knows about one filesystem, in one folder (the
//! template for future per-filesystem models such as `fs/ext4/`), one file
//! per concern, all re-exported here:
//!
//! - `boot.rs`, the on-disk structures: the boot-sector model
//!   ([`NtfsBootSector`], its [`NtfsBootDefect`]s, the [`NtfsVolumeParams`]
//!   ntfs-3g derives from it);
//! - `ntfsfix.rs`, the repair tool's rules: ntfsfix's boot-sector repair
//!   predicted ([`predict_ntfsfix`], [`NtfsfixPrediction`]);
//! - `probe.rs`, blkid's NTFS probe ([`probe`], [`NtfsGeometry`]);
//! - [`volume`], the volume opened with a pure-Rust reader ([`read_volume`]);
//! - [`bootfix`], ntfsfix's boot-sector repair applied to a partition and
//!   the repaired volume opened ([`bootfix::predict_ntfs`]);
//! - [`record`], MFT records read through the volume (fixups, attributes,
//!   data runs, attribute lists);
//! - [`logfile`], `$LogFile`'s restart pages (read, and the synthetic
//!   unclean page the journal recipes write);
//! - [`state`], the volume's state as the tools judge it ([`NtfsState`]);
//! - [`tools`], what ntfs-3g, ntfsfix and ntfsresize do with a state.
//!
//! Sources (read, not copied): ntfs-3g 2022.10.3 `include/ntfs-3g/layout.h`
//! (`NTFS_BOOT_SECTOR`), `libntfs-3g/bootsect.c` (`ntfs_boot_sector_is_ntfs`,
//! `ntfs_boot_sector_parse`), `ntfsprogs/ntfsfix.c` (`fix_startup`,
//! `try_alternate_boot`, `try_fix_boot`); util-linux 2.38
//! `libblkid/src/superblocks/ntfs.c`. `/work/shared/ntfsfix-facts.md`
//! summarises them; where it is silent the code above is followed (the
//! 2 MiB cluster limit, the "negative" sectors-per-cluster codes 240..=253,
//! and the $MFT/$MFTMirr location check of `ntfs_boot_sector_is_ntfs`).

mod boot;
pub mod bootfix;
pub mod logfile;
mod ntfsfix;
mod probe;
pub mod record;
pub mod state;
pub mod tools;
pub mod volume;

pub use boot::{
    NtfsBootDefect, NtfsBootSector, NtfsVolumeParams, BOOT_SECTOR_SIZE, END_OF_SECTOR_MARKER,
    MAX_CLUSTER_SIZE, OEM_ID,
};
pub use ntfsfix::{
    backup_boot_sector_problem, predict_ntfsfix, predict_ntfsfix_explained, NtfsfixAttempt,
    NtfsfixOutcome, NtfsfixPrediction, NtfsfixRule, NTFSFIX_DEVICE_SECTOR_SIZE,
};
pub use probe::{
    probe, NtfsGeometry, ATTR_END, ATTR_VOLUME_NAME, MAX_PROBE_RECORD_SIZE, MFT_RECORD_VOLUME,
};
pub use state::{AltBoot, HiberState, NtfsState};
pub use volume::{read_volume, VolumeSummary};

#[cfg(test)]
mod tests;

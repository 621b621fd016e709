//! The `mbr-ebr-loop` recipe: point the first extended boot record's link
//! back at itself (its relative start := 0), so the chain of logical
//! partitions never ends. libfdisk follows the loop, lists the first logical
//! partition again as #5..#60 and stops ("Omitting partitions after #60.",
//! which saving the table would make real); parted lists one logical
//! partition; blkid still says `dos`. The logical partitions after the first
//! are hidden from every tool, and no standard tool repairs it.

use super::ptable::{self, identify_disk, outcome, reads};
use super::select::Found;
use super::{Catalogue, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::layout::mbr::{MbrRecord, PARTITION_RECORDS_OFFSET, PARTITION_RECORD_SIZE};
use crate::layout::{self, is_mbr_extended, MbrRole, TableKind};
use crate::overlay::{Patch, Preview};

/// `mbr-ebr-loop`: loop the chain of extended boot records.
pub struct MbrEbrLoop;

/// `mbr-ebr-loop` takes no parameters: it addresses the whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, serde::Serialize)]
pub struct MbrEbrLoopParams {}

/// libfdisk's limit on the number of partitions of a DOS label
/// (`MAXIMUM_PARTS` in libfdisk/src/dos.c).
pub const LIBFDISK_MAX_PARTS: u64 = 60;
/// Linux numbers the first logical partition 5.
const FIRST_LOGICAL: u64 = 5;
/// Offset of the starting-LBA field in a partition record (UEFI table 5.2).
const START_FIELD: usize = 8;
/// What libfdisk says when it stops.
const OMITTING: &str = "Omitting partitions after #60.";

/// The first EBR of a disk's extended partition: its guest offset, the
/// slot of its link record and whether that record already points at it.
struct FirstEbr {
    offset: u64,
    link_slot: usize,
    link_start: u32,
    data_records: usize,
}

fn first_ebr(disk: &mut dyn ReadAt) -> Result<FirstEbr> {
    let table = ptable::layout_of(disk)?;
    let Some(l) = table.filter(|l| l.table == TableKind::Dos) else {
        return Err(Error::Refused(
            "the disk holds no MBR partition table".into(),
        ));
    };
    let ext = l
        .partitions
        .iter()
        .find(|p| p.mbr_role == Some(MbrRole::Extended))
        .ok_or_else(|| Error::Refused("the MBR has no extended partition".into()))?;
    let offset = ext.start;
    if offset.saturating_add(512) > disk.size() {
        return Err(Error::Refused(
            "the extended partition starts past the end of the disk".into(),
        ));
    }
    let ebr = disk.read_vec(offset, 512)?;
    if !layout::mbr::has_signature(&ebr) {
        return Err(Error::Refused(
            "the extended partition's first EBR has no 0x55AA signature".into(),
        ));
    }
    let records = MbrRecord::all(&ebr);
    let data_records = records
        .iter()
        .filter(|r| !r.is_empty() && !is_mbr_extended(r.ptype))
        .count();
    let (link_slot, link) = records
        .iter()
        .enumerate()
        .find(|(_, r)| !r.is_empty() && is_mbr_extended(r.ptype))
        .ok_or_else(|| {
            Error::Refused(
                "the first EBR links to no second one: the loop needs at least two logical partitions"
                    .into(),
            )
        })?;
    Ok(FirstEbr {
        offset,
        link_slot,
        link_start: link.start_lba,
        data_records,
    })
}

impl Recipe for MbrEbrLoop {
    type Params = MbrEbrLoopParams;
    const NAME: &'static str = "mbr-ebr-loop";
    const ABOUT: &'static str =
        "Point the first EBR's link at itself: libfdisk lists its logical partition as #5..#60, parted once";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk (dos)",
            damage: "the first extended boot record's link (its relative start) reads 0: the EBR chain loops on itself",
            outcomes: vec![
                ptable::blkid_table("dos"),
                reads("sfdisk", ptable::SFDISK_DUMP, OMITTING),
                reads("parted", ptable::PARTED_PRINT, ""),
                outcome(
                    Role::Check,
                    "sfdisk",
                    ptable::SFDISK_VERIFY,
                    Verdict::ReportsDamage,
                    0,
                    "1540 errors detected.",
                ),
            ],
            repair: None,
            preconditions: vec![
                "the disk holds an MBR partition table with an extended partition",
                "its first EBR holds one logical partition and links to a second EBR",
            ],
        }
    }

    fn plan(_: &MbrEbrLoopParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ptable::require_512_byte_mbr(disk)?;
        let ebr = first_ebr(disk)?;
        if ebr.link_start == 0 {
            return Err(Error::Refused(
                "the first EBR links to itself already".into(),
            ));
        }
        if ebr.data_records != 1 {
            return Err(Error::Refused(format!(
                "the first EBR holds {} logical partitions; the prediction covers one",
                ebr.data_records
            )));
        }
        let offset = ebr.offset
            + (PARTITION_RECORDS_OFFSET + ebr.link_slot * PARTITION_RECORD_SIZE + START_FIELD)
                as u64;
        let patches = vec![Patch::Zero { offset, len: 4 }];
        let prediction = {
            let mut view = Preview::new(&mut *disk, patches.clone());
            prediction(&mut view)?
        };
        Ok(Plan::single(Self::NAME, None, patches, prediction))
    }

    fn predict(_: &MbrEbrLoopParams, _: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        prediction(damaged)
    }

    /// The whole disk, when its first EBR links to itself.
    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        if partition.partition.number != 0 {
            return Ok(None);
        }
        match prediction(now) {
            Ok(p) => Ok(Some(p)),
            Err(Error::Guest(_) | Error::Refused(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The tools on a disk whose first EBR links to itself.
fn prediction(disk: &mut dyn ReadAt) -> Result<Prediction> {
    let identified = identify_disk(disk)?;
    let ebr = first_ebr(disk)?;
    if ebr.link_start != 0 || ebr.data_records != 1 {
        return Err(Error::Guest("the first EBR does not link to itself".into()));
    }
    // libfdisk lists the first logical again for every number up to its limit.
    let copies = LIBFDISK_MAX_PARTS - FIRST_LOGICAL + 1;
    let errors = copies * (copies - 1) / 2;
    Ok(Prediction {
        outcomes: vec![
            identified,
            reads("sfdisk", ptable::SFDISK_DUMP, OMITTING),
            reads("parted", ptable::PARTED_PRINT, ""),
            outcome(
                Role::Check,
                "sfdisk",
                ptable::SFDISK_VERIFY,
                Verdict::ReportsDamage,
                0,
                &format!("{errors} errors detected."),
            ),
        ],
        byte_identical_after_repair: false,
        notes: vec![
            format!(
                "libfdisk lists the first logical partition {copies} times (#5..#60) and would delete the rest if it saved the table; parted lists it once"
            ),
            "the logical partitions after the first are hidden from every tool; no standard tool repairs the link".into(),
        ],
    })
}

//! The `mbr-overlap` recipe: grow the first primary partition so it ends
//! inside the partition after it. A tool-disagreement case: libfdisk lists
//! both partitions and `sfdisk --verify` reports the overlap but exits 0,
//! while parted 3.5 refuses the whole disk ("Can't have overlapping
//! partitions.", exit 1). No standard tool repairs it.

use super::ptable::{self, blkid_table, identify_disk, outcome, reads};
use super::select::Found;
use super::{Catalogue, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::layout::mbr::{PARTITION_RECORDS_OFFSET, PARTITION_RECORD_SIZE};
use crate::layout::{self, MbrRole, TableKind};
use crate::overlay::{Patch, Preview};

/// `mbr-overlap`: make two MBR partitions overlap.
pub struct MbrOverlap;

/// Parameters of `mbr-overlap`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct MbrOverlapParams {
    /// How many sectors the first partition grows into the next one.
    #[arg(long, value_name = "SECTORS", default_value_t = 1024)]
    pub overlap: u64,
}

impl Default for MbrOverlapParams {
    fn default() -> Self {
        MbrOverlapParams { overlap: 1024 }
    }
}

/// Offset of the size field in a partition record (UEFI table 5.2).
const SIZE_FIELD: usize = 12;

impl Recipe for MbrOverlap {
    type Params = MbrOverlapParams;
    const NAME: &'static str = "mbr-overlap";
    const ABOUT: &'static str =
        "Grow the first MBR partition into the next: libfdisk lists both, parted refuses the disk";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk (dos)",
            damage: "the first primary partition's size grows so it ends --overlap sectors into the next one",
            outcomes: vec![
                blkid_table("dos"),
                reads("sfdisk", ptable::SFDISK_DUMP, ""),
                outcome(
                    Role::Mount,
                    "parted",
                    ptable::PARTED_PRINT,
                    Verdict::Refused,
                    1,
                    ptable::PARTED_OVERLAP,
                ),
                outcome(
                    Role::Check,
                    "sfdisk",
                    ptable::SFDISK_VERIFY,
                    Verdict::ReportsDamage,
                    0,
                    "Partition 1: overlaps partition 2.",
                ),
            ],
            repair: None,
            preconditions: vec![
                "the disk holds an MBR partition table with at least two primary partitions that do not overlap yet",
                "--overlap is at least 1 and at most the next partition's size",
            ],
        }
    }

    fn plan(p: &MbrOverlapParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ptable::require_512_byte_mbr(disk)?;
        match ptable::layout_of(disk)?.map(|l| l.table) {
            Some(TableKind::Dos) => {}
            Some(TableKind::Gpt) => {
                return Err(Error::Refused(
                    "the disk holds a GPT, not an MBR partition table".into(),
                ))
            }
            _ => {
                return Err(Error::Refused(
                    "the disk holds no MBR partition table".into(),
                ))
            }
        }
        let layout = layout::read_layout(disk)?;
        let ss = u64::from(layout.sector_size);
        let mut primaries: Vec<&layout::Partition> = layout
            .partitions
            .iter()
            .filter(|p| p.mbr_role == Some(MbrRole::Primary))
            .collect();
        primaries.sort_by_key(|p| (p.start, p.number));
        let [a, b, ..] = primaries[..] else {
            return Err(Error::Refused(format!(
                "an overlap needs two primary partitions; the MBR has {}",
                primaries.len()
            )));
        };
        if a.end() > b.start || a.start == b.start {
            return Err(Error::Refused(format!(
                "partitions {} and {} overlap already",
                a.number, b.number
            )));
        }
        let b_sectors = b.size / ss;
        if p.overlap == 0 || p.overlap > b_sectors {
            return Err(Error::Usage(format!(
                "must be 1..={b_sectors} (partition {}'s size in sectors)",
                b.number
            ))
            .context("overlap"));
        }
        let slot = a.number as usize - 1;
        let new_size = u32::try_from((b.start - a.start) / ss + p.overlap).map_err(|_| {
            Error::Refused("the grown size does not fit the record's 32-bit field".into())
        })?;
        let offset = (PARTITION_RECORDS_OFFSET + slot * PARTITION_RECORD_SIZE + SIZE_FIELD) as u64;
        let patches = vec![Patch::Data {
            offset,
            bytes: new_size.to_le_bytes().to_vec(),
        }];
        let prediction = {
            let mut view = Preview::new(&mut *disk, patches.clone());
            prediction(&mut view)?
        };
        Ok(Plan::single(Self::NAME, None, patches, prediction))
    }

    fn predict(_: &MbrOverlapParams, _: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        prediction(damaged)
    }

    /// The whole disk, when its MBR partitions overlap.
    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        if partition.partition.number != 0
            || ptable::layout_of(now)?.map(|l| l.table) != Some(TableKind::Dos)
        {
            return Ok(None);
        }
        match prediction(now) {
            Ok(p) => Ok(Some(p)),
            Err(Error::Guest(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// sfdisk --verify when libfdisk finds nothing wrong.
const NO_ERRORS: &str = "No errors detected.";

/// The tools on an MBR disk with overlapping partitions.
fn prediction(disk: &mut dyn ReadAt) -> Result<Prediction> {
    let identified = identify_disk(disk)?;
    let layout = layout::read_layout(disk)?;
    let mut data: Vec<&layout::Partition> = layout
        .partitions
        .iter()
        .filter(|p| !p.is_extended() && p.size > 0 && p.number != 0)
        .collect();
    data.sort_by_key(|p| p.number);
    // parted refuses any overlap (its geometry test).
    let overlapping = data.iter().enumerate().any(|(i, a)| {
        data[i + 1..]
            .iter()
            .any(|b| a.start < b.end() && b.start < a.end())
    });
    if !overlapping {
        return Err(Error::Guest("no partitions overlap".into()));
    }
    // libfdisk's dos_verify_disklabel (util-linux 2.38): for each partition
    // i and each earlier j, an overlap only when i's first or last sector
    // falls inside j; a later partition holding an earlier one goes unseen.
    let mut pairs = Vec::new();
    for (i, later) in data.iter().enumerate() {
        for earlier in &data[..i] {
            let inside = |x: u64| earlier.start <= x && x < earlier.end();
            if inside(later.start) || inside(later.end() - 1) {
                pairs.push((earlier.number, later.number));
            }
        }
    }
    let check = match pairs.first() {
        Some(&(a, b)) => outcome(
            Role::Check,
            "sfdisk",
            ptable::SFDISK_VERIFY,
            Verdict::ReportsDamage,
            0,
            &format!("Partition {a}: overlaps partition {b}."),
        ),
        None => outcome(
            Role::Check,
            "sfdisk",
            ptable::SFDISK_VERIFY,
            Verdict::Clean,
            0,
            NO_ERRORS,
        ),
    };
    let note = match pairs.first() {
        Some(&(a, _)) => format!(
            "sfdisk --verify says \"{}\" yet exits 0; no standard tool repairs the overlap (setting partition {a}'s size back restores the base)",
            if pairs.len() == 1 {
                "1 error detected.".to_string()
            } else {
                format!("{} errors detected.", pairs.len())
            }
        ),
        None => "sfdisk --verify misses the overlap (libfdisk only tests whether a later \
                 partition's first or last sector falls inside an earlier one, not whether it \
                 holds it); no standard tool repairs it"
            .into(),
    };
    Ok(Prediction {
        outcomes: vec![
            identified,
            reads("sfdisk", ptable::SFDISK_DUMP, ""),
            outcome(
                Role::Mount,
                "parted",
                ptable::PARTED_PRINT,
                Verdict::Refused,
                1,
                ptable::PARTED_OVERLAP,
            ),
            check,
        ],
        byte_identical_after_repair: false,
        notes: vec![note],
    })
}

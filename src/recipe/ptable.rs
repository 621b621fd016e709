//! Shared by the partition-table recipes (`gpt-*`, `mbr-*`): what blkid,
//! sfdisk, parted and sgdisk do with the disk's table as it reads now, the
//! repair per geometry (who made the table, see
//! [`crate::layout::gpt_tools`]), and the GPT recipes' common plan.
//!
//! Every outcome is computed from the disk's bytes; the messages and exit
//! codes are those of util-linux 2.38.1, parted 3.5 and gdisk 1.0.9 (shared
//! catalogue, `gpt-*.sh` and `mbr-*.sh`; `tests/partition_tables.rs`).
//! Partition-table recipes address the whole disk: `PART` in a command is
//! the disk image (or, for 4096-byte sectors, a block device with that
//! logical sector size).

use super::select::Found;
use super::{Outcome, Plan, Prediction, Role, Verdict};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::layout::gpt_tools::{self, GptImage, GptState, SgdiskE};
use crate::layout::{self, DiskLayout, TableKind, SECTOR_512};
use crate::overlay::{Patch, Preview};

/// libfdisk's listing of the table (what import pipelines read).
pub const SFDISK_DUMP: &str = "sfdisk -d PART";
/// parted's listing of the table.
pub const PARTED_PRINT: &str = "parted -s PART print";
/// gdisk's verification.
pub const SGDISK_VERIFY: &str = "sgdisk -v PART";
/// gdisk's rewrite of both GPT copies (and the protective MBR).
pub const SGDISK_E: &str = "sgdisk -e PART";
/// libfdisk's rewrite: the table dumped and written back.
pub const SFDISK_REWRITE: &str = "sfdisk -d PART | sfdisk PART";
/// libfdisk's consistency check.
pub const SFDISK_VERIFY: &str = "sfdisk --verify PART";

/// sfdisk -d, exit 1, on a disk without a table.
pub const NO_TABLE: &str = "does not contain a recognized partition table";
/// parted, exit 1, on a disk without a table it accepts.
pub const UNRECOGNISED: &str = "unrecognised disk label";
/// libfdisk and parted when they fall back to the backup GPT.
pub const PRIMARY_CORRUPT: &str =
    "The primary GPT table is corrupt, but the backup appears OK, so that will be used.";
/// libfdisk and parted when the backup GPT is bad.
pub const BACKUP_CORRUPT: &str =
    "The backup GPT table is corrupt, but the primary appears OK, so that will be used.";
/// sgdisk -v (exit 0) on a bad primary header.
pub const MAIN_HEADER_ERROR: &str = "Main header: ERROR";
/// sgdisk -v (exit 0) on a bad backup header.
pub const BACKUP_HEADER_ERROR: &str = "Backup header: ERROR";
/// sgdisk -v (exit 0) on a valid primary header whose entry array's CRC32 is wrong.
pub const MAIN_TABLE_ERROR: &str = "Main partition table: ERROR";
/// sgdisk -v (exit 0) on a valid backup header whose entry array's CRC32 is wrong.
pub const BACKUP_TABLE_ERROR: &str = "Backup partition table: ERROR";
/// sgdisk on a GPT whose protective MBR is gone.
pub const CORRUPT_MBR: &str = "Found valid GPT with corrupt MBR";
/// sgdisk -v on a sound GPT.
pub const NO_PROBLEMS: &str = "No problems found.";
/// sgdisk after writing.
pub const SGDISK_DONE: &str = "The operation has completed successfully.";
/// sgdisk -e, exit 4, when the backup array would land on the last partition.
pub const SGDISK_OVERLAPS: &str = "Secondary partition table overlaps the last partition";
/// parted, exit 1, on overlapping MBR partitions.
pub const PARTED_OVERLAP: &str = "Can't have overlapping partitions.";

/// An outcome of a partition-table tool (a shorthand).
pub fn outcome(
    role: Role,
    tool: &str,
    command: &str,
    result: Verdict,
    code: i32,
    msg: &str,
) -> Outcome {
    Outcome::new(role, tool, command, result, code, msg)
}

/// `blkid -p PART` on a disk that holds a `table` (`dos`, `gpt`).
pub fn blkid_table(table: &str) -> Outcome {
    outcome(
        Role::Identify,
        "blkid",
        "blkid -p PART",
        Verdict::Identifies(Some(table.to_string())),
        0,
        &format!("PTTYPE=\"{table}\""),
    )
}

/// The layout as sfdisk/blkid read it, or `None` when the table is unusable.
pub fn layout_of(disk: &mut dyn ReadAt) -> Result<Option<DiskLayout>> {
    match layout::read_layout(disk) {
        Ok(l) => Ok(Some(l)),
        Err(Error::Guest(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses (exit 3) an MBR that `read_layout` reads with sectors larger
/// than 512 bytes: sfdisk, parted and blkid on an image file assume 512,
/// so they would not see the partitions (nor the damage) as predicted. The
/// `mbr-*` recipes model 512-byte sectors only.
pub fn require_512_byte_mbr(disk: &mut dyn ReadAt) -> Result<()> {
    match layout_of(disk)? {
        Some(l) if l.table == TableKind::Dos && l.sector_size != SECTOR_512 => {
            Err(Error::Refused(format!(
                "the MBR's partitions hold filesystems only when read with {}-byte sectors: \
                 the mbr-* recipes model 512-byte sectors (the tools on an image file read 512)",
                l.sector_size
            )))
        }
        _ => Ok(()),
    }
}

/// What `blkid -p` reports for the whole disk: its table type, else the
/// filesystem at offset 0, else nothing (exit 2).
pub fn identify_disk(disk: &mut dyn ReadAt) -> Result<Outcome> {
    match layout_of(disk)?.map(|l| l.table) {
        Some(TableKind::Gpt) => Ok(blkid_table("gpt")),
        Some(TableKind::Dos) => Ok(blkid_table("dos")),
        _ => Ok(Outcome::blkid(crate::fs::probe(disk)?.map(|f| f.fstype))),
    }
}

/// `sfdisk -d PART` and `parted -s PART print` on a disk without a table.
pub fn no_table_readers() -> [Outcome; 2] {
    [
        outcome(
            Role::Mount,
            "sfdisk",
            SFDISK_DUMP,
            Verdict::Refused,
            1,
            NO_TABLE,
        ),
        outcome(
            Role::Mount,
            "parted",
            PARTED_PRINT,
            Verdict::Refused,
            1,
            UNRECOGNISED,
        ),
    ]
}

/// The tools' outcomes on a GPT disk as it reads now: blkid, sfdisk and
/// parted reading it, `sgdisk -v`, the repair that suits the table's
/// geometry, and the disk after it.
pub fn gpt_prediction(disk: &mut dyn ReadAt) -> Result<Prediction> {
    let state = GptState::read(disk)?.ok_or_else(|| {
        Error::Guest("neither GPT header is valid (512- or 4096-byte sectors)".into())
    })?;
    let base = rebuilt(&state)?;
    let pmbr = state.has_protective_mbr();
    let primary_ok = state.primary.is_ok();
    let backup_ok = state.backup.is_ok();
    let mut outcomes = vec![identify_disk(disk)?];
    let warning = if !primary_ok {
        PRIMARY_CORRUPT
    } else if !backup_ok {
        BACKUP_CORRUPT
    } else {
        ""
    };
    let read = |tool: &str, cmd: &str| outcome(Role::Mount, tool, cmd, Verdict::Reads, 0, warning);
    if !pmbr {
        outcomes.extend(no_table_readers());
    } else {
        outcomes.push(read("sfdisk", SFDISK_DUMP));
        // parted 3.5 accepts a bad primary header only while its signature is there.
        if !primary_ok && !state.primary_signature {
            outcomes.push(no_table_readers()[1].clone());
        } else {
            outcomes.push(read("parted", PARTED_PRINT));
        }
    }
    let (check, found) = if !pmbr {
        (Verdict::ReportsDamage, CORRUPT_MBR)
    } else if !primary_ok && state.primary_header_ok {
        (Verdict::ReportsDamage, MAIN_TABLE_ERROR)
    } else if !primary_ok {
        (Verdict::ReportsDamage, MAIN_HEADER_ERROR)
    } else if !backup_ok && state.backup_header_ok {
        (Verdict::ReportsDamage, BACKUP_TABLE_ERROR)
    } else if !backup_ok {
        (Verdict::ReportsDamage, BACKUP_HEADER_ERROR)
    } else {
        (Verdict::Clean, NO_PROBLEMS)
    };
    outcomes.push(outcome(
        Role::Check,
        "sgdisk",
        SGDISK_VERIFY,
        check,
        0,
        found,
    ));

    let e = base.sgdisk_e();
    let libfdisk = base.libfdisk_restores();
    let sgdisk_e = |e: &SgdiskE| {
        if e.exit_code == 0 {
            outcome(
                Role::Repair,
                "sgdisk",
                SGDISK_E,
                Verdict::Repairs,
                0,
                SGDISK_DONE,
            )
        } else {
            outcome(
                Role::Repair,
                "sgdisk",
                SGDISK_E,
                Verdict::CannotRepair,
                e.exit_code,
                SGDISK_OVERLAPS,
            )
        }
    };
    let sfdisk = outcome(
        Role::Repair,
        "sfdisk",
        SFDISK_REWRITE,
        Verdict::Repairs,
        0,
        "",
    );
    let mut notes = Vec::new();
    let geometry = format!(
        "{}-byte sectors, first usable LBA {} ({})",
        state.sector_size,
        base.primary.header.first_usable_lba,
        if base.made_by_sgdisk() {
            "laid out as sgdisk does"
        } else {
            "laid out as libfdisk does"
        }
    );
    let (repair, identical) = if !pmbr {
        // Only gdisk/sgdisk see the table; libfdisk would write a new empty DOS label.
        notes.push(
            "fdisk `w` would write an empty DOS label over it: only gdisk/sgdisk see the GPT"
                .into(),
        );
        (sgdisk_e(&e), e.identical)
    } else if e.exit_code == 0 && e.identical {
        (sgdisk_e(&e), true)
    } else if libfdisk {
        (sfdisk, true)
    } else if e.exit_code == 0 {
        (sgdisk_e(&e), false)
    } else {
        (sfdisk, false)
    };
    if pmbr && !(e.exit_code == 0 && e.identical) {
        notes.push(if e.exit_code != 0 {
            format!(
                "sgdisk -e would refuse (exit 4): its backup array would overlap the last partition by {} sectors",
                e.overlap
            )
        } else {
            "sgdisk -e would repair it but not byte for byte (on a layout not its own it moves the backup array to sectors − first usable LBA and writes its own protective MBR)".into()
        });
    }
    notes.push(format!(
        "{geometry}: `{}` {}",
        repair.command,
        match (repair.result == Verdict::Repairs, identical) {
            (true, true) => "restores the disk byte for byte",
            (true, false) => "repairs the table, not byte for byte",
            _ => "cannot repair it",
        }
    ));
    if state.sector_size != SECTOR_512 {
        notes.push(format!(
            "run the tools on a block device with {}-byte logical sectors (losetup -b {}): on an image file they assume 512",
            state.sector_size, state.sector_size
        ));
    }
    let repaired = repair.result == Verdict::Repairs;
    outcomes.push(repair);
    if repaired {
        outcomes.push(outcome(
            Role::AfterRepair,
            "sgdisk",
            SGDISK_VERIFY,
            Verdict::Clean,
            0,
            NO_PROBLEMS,
        ));
        outcomes.push(outcome(
            Role::AfterRepair,
            "parted",
            PARTED_PRINT,
            Verdict::Reads,
            0,
            "",
        ));
    } else {
        let mut after = identify_disk(disk)?;
        after.role = Role::AfterRepair;
        outcomes.push(after);
    }
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: repaired && identical,
        notes,
    })
}

/// What `verify` reports for the whole disk (`partition` number 0) when
/// its GPT is damaged (a copy invalid or the protective MBR gone):
/// [`gpt_prediction`]; `None` for a partition, a sound GPT or no GPT.
pub fn gpt_verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
    if partition.partition.number != 0 {
        return Ok(None);
    }
    let Some(state) = GptState::read(now)? else {
        return Ok(None);
    };
    let sound = state.has_protective_mbr() && state.primary.is_ok() && state.backup.is_ok();
    if sound || rebuilt(&state).is_err() {
        return Ok(None);
    }
    gpt_prediction(now).map(Some)
}

/// The complete table `state` implies (the protective MBR, if gone, is
/// the one the table's maker writes).
fn rebuilt(state: &GptState) -> Result<GptImage> {
    let ss = state.sector_size;
    state
        .rebuilt(|c| gpt_tools::maker_pmbr_of(c, ss))
        .ok_or_else(|| Error::Guest("the surviving GPT copy cannot be relocated".into()))
}

/// Names of [`GptImage::regions`], in order.
const REGION_NAMES: [&str; 5] = [
    "protective MBR",
    "primary GPT header",
    "primary entry array",
    "backup entry array",
    "backup GPT header",
];

/// The plan of a GPT recipe: checks that `disk` holds a sound GPT (a
/// protective MBR, both copies valid), applies `damage`'s patches to a
/// preview, predicts, and checks that the table the damaged disk still
/// implies is exactly the base's, so the predicted repair result is known.
pub fn gpt_plan(
    name: &'static str,
    disk: &mut dyn ReadAt,
    damage: impl FnOnce(&GptState) -> Result<Vec<Patch>>,
) -> Result<Plan> {
    let state = GptState::read(disk)?.ok_or_else(|| {
        Error::Refused(
            "the disk holds no GPT: no valid header at LBA 1 or at the last LBA (512- or 4096-byte sectors)"
                .into(),
        )
    })?;
    if !state.has_protective_mbr() {
        return Err(Error::Refused(
            "sector 0 holds no protective MBR: blkid, sfdisk and parted already see no GPT".into(),
        ));
    }
    if let Err(e) = &state.primary {
        return Err(Error::Refused(format!(
            "the primary GPT is already invalid ({e})"
        )));
    }
    if let Err(e) = &state.backup {
        return Err(Error::Refused(format!(
            "the backup GPT at the last LBA is already invalid ({e})"
        )));
    }
    let patches = damage(&state)?;
    let (prediction, implied) = {
        let mut view = Preview::new(&mut *disk, patches.clone());
        let prediction = gpt_prediction(&mut view)?;
        let after = GptState::read(&mut view)?
            .ok_or_else(|| Error::Refused("the damage would leave no valid GPT header".into()))?;
        (prediction, rebuilt(&after)?)
    };
    for ((offset, bytes), what) in implied.regions().into_iter().zip(REGION_NAMES) {
        if disk.read_vec(offset, bytes.len())? != bytes {
            return Err(Error::Refused(format!(
                "the base's {what} (bytes {offset}..{}) is not what the surviving copy implies \
                 (the two GPT copies disagree, or the protective MBR to be rebuilt is not the plain one the table's maker writes): \
                 what the repair restores cannot be predicted",
                offset + bytes.len() as u64
            )));
        }
    }
    Ok(Plan::single(name, None, patches, prediction))
}

/// The typical outcomes of a GPT recipe on a table sgdisk made, for
/// `qfault recipes`: `readers` (sfdisk, parted) and `check` (sgdisk -v's line).
pub fn typical_gpt(readers: [Outcome; 2], check: &str) -> Vec<Outcome> {
    let mut v = vec![blkid_table("gpt")];
    v.extend(readers);
    v.extend([
        outcome(
            Role::Check,
            "sgdisk",
            SGDISK_VERIFY,
            Verdict::ReportsDamage,
            0,
            check,
        ),
        outcome(
            Role::Repair,
            "sgdisk",
            SGDISK_E,
            Verdict::Repairs,
            0,
            SGDISK_DONE,
        ),
        outcome(
            Role::AfterRepair,
            "sgdisk",
            SGDISK_VERIFY,
            Verdict::Clean,
            0,
            NO_PROBLEMS,
        ),
        outcome(
            Role::AfterRepair,
            "parted",
            PARTED_PRINT,
            Verdict::Reads,
            0,
            "",
        ),
    ]);
    v
}

/// A table reader that reads the table (exit 0) with `msg`.
pub fn reads(tool: &str, command: &str, msg: &str) -> Outcome {
    outcome(Role::Mount, tool, command, Verdict::Reads, 0, msg)
}

/// The preconditions every GPT recipe shares.
pub const GPT_PRECONDITIONS: [&str; 3] = [
    "the disk holds a GPT (512- or 4096-byte sectors) with a protective MBR and both copies valid",
    "the two copies agree, so the repair's result is known",
    "the table is addressed as the whole disk (no --partition)",
];

/// The repair, as `qfault recipes` names it for GPT recipes.
pub const GPT_REPAIR: &str =
    "sgdisk -e PART on tables sgdisk made; sfdisk -d PART | sfdisk PART on libfdisk's layout";

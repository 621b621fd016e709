//! The MBR ("DOS") partition table: four primary slots in sector 0 and the
//! chain of extended boot records (EBRs) that holds logical partitions.
//!
//! Layout from UEFI spec 2.10 section 5.2.1 (legacy MBR, table 5.1 and 5.2);
//! the extended-partition walk follows Linux `block/partitions/msdos.c` as
//! libblkid's `partitions/dos.c` does, so numbering matches sfdisk and blkid.
//! The walk is bounded: it stops at [`MAX_LOGICAL`] EBRs and at the first EBR
//! it has already visited, with a warning either way.

use super::types::{is_mbr_extended, MBR_GPT_PROTECTIVE};
use super::{MbrRole, Partition, PartitionType, MBR_SIGNATURE, MBR_SIGNATURE_OFFSET, SECTOR_512};
use crate::error::Result;
use crate::image::ReadAt;
use std::collections::HashSet;

/// Offset of the four 16-byte partition records in an MBR or EBR (UEFI table 5.1).
pub const PARTITION_RECORDS_OFFSET: usize = 446;
/// The disk identifier ("unique MBR disk signature", UEFI spec 5.2.1,
/// table 5-1): 4 bytes, little-endian, at this offset of sector 0.
pub const DISK_SIGNATURE_OFFSET: u64 = 440;
/// Size of one partition record (UEFI table 5.2).
pub const PARTITION_RECORD_SIZE: usize = 16;
/// Boot indicator value of a bootable ("active") partition (UEFI table 5.2).
pub const BOOT_INDICATOR_ACTIVE: u8 = 0x80;
/// At most this many EBRs are followed; more is treated as a loop.
pub const MAX_LOGICAL: usize = 256;
/// Linux numbers the first logical partition 5.
pub const FIRST_LOGICAL_NUMBER: u32 = 5;

/// One of the four 16-byte partition records of an MBR or EBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MbrRecord {
    /// 0x80 for bootable, 0x00 otherwise (anything else is invalid).
    pub boot_indicator: u8,
    /// The system-indicator (type) byte.
    pub ptype: u8,
    /// First sector (relative to the MBR, or to the extended partition / EBR).
    pub start_lba: u32,
    /// Number of sectors.
    pub sectors: u32,
}

impl MbrRecord {
    /// Decodes the four records of a 512-byte MBR/EBR sector (fewer bytes: all empty).
    pub fn all(sector: &[u8]) -> [MbrRecord; 4] {
        let mut out = [MbrRecord::default(); 4];
        for (i, rec) in out.iter_mut().enumerate() {
            let off = PARTITION_RECORDS_OFFSET + i * PARTITION_RECORD_SIZE;
            if let Some(b) = sector.get(off..off + PARTITION_RECORD_SIZE) {
                *rec = MbrRecord {
                    boot_indicator: b[0],
                    ptype: b[4],
                    start_lba: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
                    sectors: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
                };
            }
        }
        out
    }

    /// True when the record describes nothing (zero size, as Linux treats it).
    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }
}

/// True when `sector` ends with the 0x55AA signature.
pub fn has_signature(sector: &[u8]) -> bool {
    sector.get(MBR_SIGNATURE_OFFSET..MBR_SIGNATURE_OFFSET + 2) == Some(&MBR_SIGNATURE[..])
}

/// True when sector 0 holds a protective (or hybrid) MBR for a GPT disk:
/// the signature plus a record of type 0xEE (UEFI spec 5.2.3).
pub fn is_protective(sector0: &[u8]) -> bool {
    has_signature(sector0)
        && MbrRecord::all(sector0)
            .iter()
            .any(|r| r.ptype == MBR_GPT_PROTECTIVE)
}

/// True when sector 0 could be an MBR: the signature and every boot
/// indicator 0x00 or 0x80 (libblkid's first test). A FAT or NTFS boot
/// sector can pass this; the caller rules those out.
pub fn looks_like_mbr(sector0: &[u8]) -> bool {
    has_signature(sector0)
        && MbrRecord::all(sector0)
            .iter()
            .all(|r| r.boot_indicator == 0 || r.boot_indicator == BOOT_INDICATOR_ACTIVE)
}

fn mbr_partition(
    number: u32,
    rec: &MbrRecord,
    start_lba: u64,
    role: MbrRole,
    ss: u64,
) -> Partition {
    Partition {
        number,
        start: start_lba * ss,
        size: u64::from(rec.sectors) * ss,
        ptype: PartitionType::Mbr(rec.ptype),
        type_name: super::mbr_type_name(rec.ptype),
        bootable: rec.boot_indicator == BOOT_INDICATOR_ACTIVE,
        mbr_role: Some(role),
        name: None,
        uuid: None,
    }
}

/// Reads the primary records of `sector0` and the logical partitions of
/// every extended partition, warning about entries past the end of the disk
/// (512-byte sectors; see [`read_mbr_with`]).
pub fn read_mbr(
    disk: &mut dyn ReadAt,
    sector0: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Vec<Partition>> {
    read_mbr_with(disk, sector0, SECTOR_512, warnings)
}

/// The logical sector sizes an MBR may have been written for: the table
/// does not record it, the disk it was made on did.
pub const MBR_SECTOR_SIZES: [u32; 4] = [512, 1024, 2048, 4096];

/// The logical sector size `sector0`'s table was written for, judged as a
/// reader of an image file must (the table does not record it): for each of
/// [`MBR_SECTOR_SIZES`], how many primary partitions lie inside the disk and
/// hold a filesystem blkid recognises, or are extended partitions whose
/// first EBR carries the 0x55AA signature. The size with the most wins;
/// 512 on a tie (what sfdisk and blkid assume for a file).
pub fn guess_sector_size(disk: &mut dyn ReadAt, sector0: &[u8]) -> Result<u32> {
    guess_sector_size_probed(disk, sector0, &mut super::Probed::default())
}

/// [`guess_sector_size`], keeping in `probed` the partition probes it made.
pub fn guess_sector_size_probed(
    disk: &mut dyn ReadAt,
    sector0: &[u8],
    probed: &mut super::Probed,
) -> Result<u32> {
    let records = MbrRecord::all(sector0);
    // No size can score more than one per record that names a start.
    let most = records
        .iter()
        .filter(|r| !r.is_empty() && r.start_lba != 0)
        .count();
    let mut best = (0usize, SECTOR_512);
    for ss in MBR_SECTOR_SIZES {
        if best.0 == most && most > 0 {
            // A size tried earlier found every partition: later sizes can
            // only tie, and a tie keeps the earlier (smaller) size. Not
            // probing them saves three probes of every partition.
            break;
        }
        let ss64 = u64::from(ss);
        let mut score = 0;
        for rec in records.iter().filter(|r| !r.is_empty()) {
            let start = u64::from(rec.start_lba) * ss64;
            let size = u64::from(rec.sectors) * ss64;
            if rec.start_lba == 0 || start.saturating_add(size) > disk.size() {
                continue;
            }
            let found = if is_mbr_extended(rec.ptype) {
                has_signature(&disk.read_vec(start, SECTOR_512 as usize)?)
            } else {
                !probed.window(disk, start, size)?.found.is_empty()
            };
            score += usize::from(found);
        }
        if score > best.0 {
            best = (score, ss);
        }
    }
    Ok(best.1)
}

/// [`read_mbr`] for a table written for `ss`-byte logical sectors: record
/// LBAs and sizes count `ss`-byte sectors, and each EBR is the first 512
/// bytes of its sector.
pub fn read_mbr_with(
    disk: &mut dyn ReadAt,
    sector0: &[u8],
    ss: u32,
    warnings: &mut Vec<String>,
) -> Result<Vec<Partition>> {
    let disk_sectors = disk.size() / u64::from(ss);
    let records = MbrRecord::all(sector0);
    let mut parts = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        if rec.is_empty() {
            continue;
        }
        let role = if is_mbr_extended(rec.ptype) {
            MbrRole::Extended
        } else {
            MbrRole::Primary
        };
        parts.push(mbr_partition(
            i as u32 + 1,
            rec,
            rec.start_lba.into(),
            role,
            ss.into(),
        ));
    }
    let mut next_number = FIRST_LOGICAL_NUMBER;
    let mut extended_seen = 0;
    for rec in records
        .iter()
        .filter(|r| !r.is_empty() && is_mbr_extended(r.ptype))
    {
        extended_seen += 1;
        if extended_seen > 1 {
            warnings.push(format!(
                "more than one extended partition; logical partitions of the one at sector {} are numbered after the others",
                rec.start_lba
            ));
        }
        read_logical(disk, rec, ss, &mut next_number, &mut parts, warnings)?;
    }
    for p in &parts {
        let ss = u64::from(ss);
        if p.end() > disk_sectors * ss {
            warnings.push(format!(
                "partition {} (sectors {}..{}) extends past the end of the disk ({} sectors)",
                p.number,
                p.start / ss,
                p.end() / ss,
                disk_sectors
            ));
        }
    }
    Ok(parts)
}

/// Follows the EBR chain of one extended partition.
///
/// As Linux does: in each EBR the non-extended, non-empty records are data
/// partitions (starts relative to that EBR; the 3rd and 4th only when they
/// lie inside the extended partition), and the first extended record is the
/// link to the next EBR (relative to the extended partition's start).
fn read_logical(
    disk: &mut dyn ReadAt,
    ext: &MbrRecord,
    sector_size: u32,
    next_number: &mut u32,
    parts: &mut Vec<Partition>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let ss = u64::from(sector_size);
    let ext_start = u64::from(ext.start_lba);
    let ext_end = ext_start + u64::from(ext.sectors);
    if ext_start == 0 {
        warnings.push("extended partition starts at sector 0; ignored".to_string());
        return Ok(());
    }
    let mut ebr_lba = ext_start;
    let mut ebr_sectors = u64::from(ext.sectors);
    let mut visited = HashSet::new();
    loop {
        if !visited.insert(ebr_lba) {
            warnings.push(format!(
                "the chain of extended boot records loops back to sector {ebr_lba}; stopped there"
            ));
            return Ok(());
        }
        if visited.len() > MAX_LOGICAL {
            warnings.push(format!(
                "more than {MAX_LOGICAL} extended boot records; stopped at sector {ebr_lba}"
            ));
            return Ok(());
        }
        let Some(offset) = ebr_lba.checked_mul(ss) else {
            return Ok(());
        };
        if offset.checked_add(ss).is_none_or(|end| end > disk.size()) {
            warnings.push(format!(
                "extended boot record at sector {ebr_lba} is past the end of the disk"
            ));
            return Ok(());
        }
        let ebr = disk.read_vec(offset, SECTOR_512 as usize)?;
        if !has_signature(&ebr) {
            warnings.push(format!(
                "extended boot record at sector {ebr_lba} has no 0x55AA signature; chain ends there"
            ));
            return Ok(());
        }
        let records = MbrRecord::all(&ebr);
        for (i, rec) in records.iter().enumerate() {
            if rec.is_empty() || is_mbr_extended(rec.ptype) {
                continue;
            }
            let rel = u64::from(rec.start_lba);
            let abs = ebr_lba + rel;
            let size = u64::from(rec.sectors);
            if i >= 2 && (rel + size > ebr_sectors || abs < ext_start || abs + size > ext_end) {
                continue;
            }
            if parts.iter().any(|p| p.start == abs * ss) {
                warnings.push(format!(
                    "extended boot record at sector {ebr_lba} repeats the partition at sector {abs}; ignored"
                ));
                continue;
            }
            if abs < ext_start || abs + size > ext_end {
                warnings.push(format!(
                    "logical partition {} (sectors {}..{}) lies outside its extended partition (sectors {}..{})",
                    next_number,
                    abs,
                    abs + size,
                    ext_start,
                    ext_end
                ));
            }
            parts.push(mbr_partition(*next_number, rec, abs, MbrRole::Logical, ss));
            *next_number += 1;
        }
        let link = records
            .iter()
            .find(|r| !r.is_empty() && is_mbr_extended(r.ptype) && r.start_lba != 0);
        match link {
            Some(l) => {
                ebr_lba = ext_start + u64::from(l.start_lba);
                ebr_sectors = u64::from(l.sectors);
            }
            None => return Ok(()),
        }
    }
}

/// The MBR disk identifier, as blkid reports it (`PTUUID=51a7fa17`, and
/// `PARTUUID=51a7fa17-02` for partition 2, see [`partuuid`]): `None` when it
/// is 0, which blkid does not report either.
pub fn disk_identifier(disk: &mut dyn ReadAt) -> Result<Option<u32>> {
    let mut b = [0u8; 4];
    disk.read_at(DISK_SIGNATURE_OFFSET, &mut b)?;
    let id = u32::from_le_bytes(b);
    Ok((id != 0).then_some(id))
}

/// The PARTUUID blkid gives partition `number` of an MBR disk with
/// identifier `id`: `%08x-%02x` (`51a7fa17-02`; logical partitions from 5).
pub fn partuuid(id: u32, number: u32) -> String {
    format!("{id:08x}-{number:02x}")
}

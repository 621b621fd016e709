//! blkid's NTFS probe (util-linux `libblkid/src/superblocks/ntfs.c`): the
//! signature, the label from `$Volume`, and the geometry recipes need.

use super::boot::{record_code_ok, NtfsBootSector, BOOT_SECTOR_SIZE, MAX_CLUSTER_SIZE, OEM_ID};
use super::ntfsfix::backup_boot_sector_problem;
use crate::error::Result;
use crate::fs::bytes::{le16, le32};
use crate::fs::text::{label_utf16, Utf16};
use crate::fs::{read_opt, FsInfo};
use crate::image::ReadAt;

/// MFT record number of `$Volume`, which holds the label (blkid).
pub const MFT_RECORD_VOLUME: u64 = 3;
/// Attribute type `$VOLUME_NAME` (layout.h `AT_VOLUME_NAME`).
pub const ATTR_VOLUME_NAME: u32 = 0x60;
/// Attribute list terminator (layout.h `AT_END`).
pub const ATTR_END: u32 = 0xFFFF_FFFF;
/// Largest MFT record qfault reads when probing (real volumes use 1 or 4 KiB).
pub const MAX_PROBE_RECORD_SIZE: u32 = 1 << 20;

/// NTFS geometry for later recipes, from the boot sector at sector 0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsGeometry {
    /// Bytes per sector.
    pub bytes_per_sector: u16,
    /// Sectors per cluster (decoded).
    pub sectors_per_cluster: u32,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Sectors in the volume (as the boot sector records it).
    pub number_of_sectors: i64,
    /// `$MFT` cluster number.
    pub mft_lcn: i64,
    /// `$MFTMirr` cluster number.
    pub mftmirr_lcn: i64,
    /// MFT record size in bytes.
    pub mft_record_size: u32,
    /// Volume serial number as blkid shows it (16 uppercase hex digits).
    pub serial: String,
    /// True when the partition's last 512-byte sector is a boot sector
    /// ntfsfix would accept (rule 3a).
    pub backup_boot_sector_ok: bool,
    /// Why it is not, when it is not.
    pub backup_boot_sector_problem: Option<String>,
}

/// blkid's NTFS probe (util-linux `superblocks/ntfs.c`), plus [`NtfsGeometry`].
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sector) = read_opt(part, 0, BOOT_SECTOR_SIZE)? else {
        return Ok(None);
    };
    if &sector[3..11] != OEM_ID {
        return Ok(None);
    }
    let bs = NtfsBootSector::parse(&sector)?;
    let ss = u32::from(bs.bytes_per_sector);
    if !(256..=4096).contains(&ss) {
        return Ok(None);
    }
    // blkid accepts the "negative" codes 240..=249 only, without wrapping.
    let raw = bs.sectors_per_cluster_raw;
    let spc: u32 = match raw {
        1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 => u32::from(raw),
        240..=249 => 1 << (256 - u32::from(raw)),
        _ => return Ok(None),
    };
    if ss * spc > MAX_CLUSTER_SIZE
        || bs.reserved_sectors != 0
        || bs.root_entries != 0
        || bs.sectors != 0
        || bs.sectors_per_fat != 0
        || bs.large_sectors != 0
        || bs.fats != 0
        || !record_code_ok(bs.clusters_per_mft_record)
    {
        return Ok(None);
    }
    let c = bs.clusters_per_mft_record;
    let record_size: u64 = if c > 0 {
        u64::from(c as u8) * u64::from(spc) * u64::from(ss)
    } else {
        1u64 << u32::from(c.unsigned_abs())
    };
    let nr_clusters = (bs.number_of_sectors as u64) / u64::from(spc);
    let (mft, mirr) = (bs.mft_lcn as u64, bs.mftmirr_lcn as u64);
    if mft > nr_clusters || mirr > nr_clusters || record_size < 4 {
        return Ok(None);
    }
    if record_size > u64::from(MAX_PROBE_RECORD_SIZE) {
        return Ok(None);
    }
    let Some(mft_off) = mft.checked_mul(u64::from(ss) * u64::from(spc)) else {
        return Ok(None);
    };
    let rs = record_size as usize;
    match read_opt(part, mft_off, rs)? {
        Some(r) if &r[..4] == b"FILE" => {}
        _ => return Ok(None),
    }
    let Some(vol_off) = mft_off.checked_add(MFT_RECORD_VOLUME * record_size) else {
        return Ok(None);
    };
    let record = match read_opt(part, vol_off, rs)? {
        Some(r) if &r[..4] == b"FILE" => r,
        _ => return Ok(None),
    };
    let mut info = FsInfo::new("ntfs");
    info.label = volume_name(&record);
    let serial = format!("{:016X}", bs.volume_serial_number);
    if bs.volume_serial_number != 0 {
        info.uuid = Some(serial.clone());
    }
    let backup_problem = backup_boot_sector_problem(part)?;
    info.ntfs = Some(NtfsGeometry {
        bytes_per_sector: bs.bytes_per_sector,
        sectors_per_cluster: spc,
        cluster_size: ss * spc,
        number_of_sectors: bs.number_of_sectors,
        mft_lcn: bs.mft_lcn,
        mftmirr_lcn: bs.mftmirr_lcn,
        mft_record_size: record_size as u32,
        serial,
        backup_boot_sector_ok: backup_problem.is_none(),
        backup_boot_sector_problem: backup_problem,
    });
    Ok(Some(info))
}

/// The `$VOLUME_NAME` attribute of the `$Volume` MFT record, walked the way
/// blkid walks it (no update-sequence fixups; bounded by the record size).
fn volume_name(rec: &[u8]) -> Option<String> {
    const ATTR_HEADER: usize = 22; // type, len, non_resident, name_len, name_offset, flags, instance, value_len, value_offset
    let rs = rec.len();
    if rs < 0x20 {
        return None;
    }
    let bytes_allocated = le32(rec, 0x1C) as usize;
    let mut off = usize::from(le16(rec, 0x14));
    // Each step advances by a non-zero length, so this ends within rs / 1 steps.
    while off + ATTR_HEADER <= rs && off <= bytes_allocated {
        let atype = le32(rec, off);
        let alen = le32(rec, off + 4) as usize;
        if alen == 0 || atype == ATTR_END {
            return None;
        }
        if atype == ATTR_VOLUME_NAME {
            let val_len = le32(rec, off + 16) as usize;
            let val_off = usize::from(le16(rec, off + 20));
            let start = off + val_off;
            let end = start.checked_add(val_len)?;
            return if end <= rs {
                label_utf16(&rec[start..end], Utf16::Le)
            } else {
                None
            };
        }
        off = off.checked_add(alen)?;
    }
    None
}

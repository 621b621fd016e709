//! The GUID partition table: header, partition-entry array, CRC32s, backup.
//!
//! Layout and validity rules from UEFI spec 2.10 chapter 5.3: the header
//! (table 5.5) at LBA 1 and its backup at the last LBA, the entry array
//! (table 5.6) with its own CRC32, and the checks of section 5.3.2 ("Checking
//! validity"). Both 512- and 4096-byte logical sectors are tried, so a GPT
//! written for a 4Kn disk is read correctly from an image file.
//!
//! Untrusted input: the header size, entry size and entry count are bounded
//! before anything is allocated ([`MAX_ARRAY_BYTES`]).

use super::{GptInfo, Guid, Partition, PartitionType, SECTOR_4096, SECTOR_512};
use crate::error::{Error, Result};
use crate::image::ReadAt;

/// "EFI PART", the header signature (UEFI table 5.5).
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// LBA of the primary header (UEFI 5.3.1).
pub const PRIMARY_HEADER_LBA: u64 = 1;
/// Minimum header size: the fields defined by UEFI table 5.5 take 92 bytes.
pub const MIN_HEADER_SIZE: u32 = 92;
/// Minimum entry size; larger sizes must be 128 × 2^n (UEFI table 5.5).
pub const MIN_ENTRY_SIZE: u32 = 128;
/// Largest entry array qfault reads (the UEFI minimum is 16 KiB; sgdisk's
/// default is 16 KiB; 4 MiB leaves room for unusual tools but not for abuse).
pub const MAX_ARRAY_BYTES: u64 = 4 << 20;
/// Largest number of entries accepted (`MAX_ARRAY_BYTES` / `MIN_ENTRY_SIZE`).
pub const MAX_ENTRIES: u32 = (MAX_ARRAY_BYTES / MIN_ENTRY_SIZE as u64) as u32;
/// Size of the partition-name field in an entry: 36 UTF-16LE code units (UEFI table 5.6).
pub const NAME_BYTES: usize = 72;
/// Entry attribute bit 2, "Legacy BIOS bootable" (UEFI table 5.7).
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// A decoded GPT header (UEFI table 5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    /// Revision (0x00010000 for 1.0).
    pub revision: u32,
    /// Header size in bytes (covered by the header CRC).
    pub header_size: u32,
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other header.
    pub alternate_lba: u64,
    /// First LBA usable by partitions.
    pub first_usable_lba: u64,
    /// Last LBA usable by partitions.
    pub last_usable_lba: u64,
    /// The disk GUID.
    pub disk_guid: Guid,
    /// First LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub num_entries: u32,
    /// Size of one entry in bytes.
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc32: u32,
}

/// A GPT read from one header and its array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptTable {
    /// The logical sector size the table was written for.
    pub sector_size: u32,
    /// Which header was used, and the disk GUID.
    pub info: GptInfo,
    /// The used entries, numbered by array index + 1.
    pub partitions: Vec<Partition>,
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The CRC32 of a header (UEFI table 5.5, HeaderCRC32): over its first
/// `header_size` bytes with the CRC field (bytes 16..20) taken as zero.
/// `header_size` must be at least 20 and at most `sector.len()`.
pub fn header_crc32(sector: &[u8], header_size: u32) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sector[..16]);
    hasher.update(&[0; 4]);
    hasher.update(&sector[20..header_size as usize]);
    hasher.finalize()
}

/// Decodes and checks a header sector read from `lba` (UEFI 5.3.2): the
/// signature, the header size, the header CRC32, and that MyLBA is `lba`.
/// `Err` holds the reason in one line.
pub fn parse_header(sector: &[u8], lba: u64) -> std::result::Result<GptHeader, String> {
    if sector.len() < MIN_HEADER_SIZE as usize || &sector[..8] != SIGNATURE {
        return Err("no \"EFI PART\" signature".to_string());
    }
    let header_size = le32(sector, 12);
    if header_size < MIN_HEADER_SIZE || header_size as usize > sector.len() {
        return Err(format!("header size {header_size} is out of range"));
    }
    let stored_crc = le32(sector, 16);
    let crc = header_crc32(sector, header_size);
    if crc != stored_crc {
        return Err(format!(
            "header CRC32 mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
        ));
    }
    let h = GptHeader {
        revision: le32(sector, 8),
        header_size,
        my_lba: le64(sector, 24),
        alternate_lba: le64(sector, 32),
        first_usable_lba: le64(sector, 40),
        last_usable_lba: le64(sector, 48),
        disk_guid: Guid::from_disk(&sector[56..72]).unwrap_or_default(),
        entries_lba: le64(sector, 72),
        num_entries: le32(sector, 80),
        entry_size: le32(sector, 84),
        entries_crc32: le32(sector, 88),
    };
    if h.my_lba != lba {
        return Err(format!(
            "MyLBA is {} but the header is at LBA {lba}",
            h.my_lba
        ));
    }
    if h.first_usable_lba > h.last_usable_lba {
        return Err(format!(
            "first usable LBA {} is after last usable LBA {}",
            h.first_usable_lba, h.last_usable_lba
        ));
    }
    if h.entry_size < MIN_ENTRY_SIZE || !h.entry_size.is_power_of_two() {
        return Err(format!(
            "entry size {} is not 128 × 2^n (UEFI table 5.5)",
            h.entry_size
        ));
    }
    let array = u64::from(h.num_entries) * u64::from(h.entry_size);
    if h.num_entries == 0 || array > MAX_ARRAY_BYTES {
        return Err(format!(
            "{} entries of {} bytes is an absurd entry array (limit {} bytes)",
            h.num_entries, h.entry_size, MAX_ARRAY_BYTES
        ));
    }
    Ok(h)
}

/// One copy of the GPT as it is on the disk: the checked header, its raw
/// sector and its raw entry array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptCopy {
    /// The decoded header.
    pub header: GptHeader,
    /// The header's whole logical sector, as read.
    pub sector: Vec<u8>,
    /// The entry array (`num_entries × entry_size` bytes), as read.
    pub array: Vec<u8>,
}

/// Reads and checks the header at `lba` (for `ss`-byte sectors) and its
/// entry array; `Ok(Err(reason))` when they are unusable.
pub fn read_copy(
    disk: &mut dyn ReadAt,
    lba: u64,
    ss: u32,
) -> Result<std::result::Result<GptCopy, String>> {
    Ok(
        read_header_and_array(disk, lba, ss)?.map(|(header, array, sector)| GptCopy {
            header,
            sector,
            array,
        }),
    )
}

/// Reads and checks the header at `lba` and its entry array; returns the
/// header, the raw array and the header sector, or the reason they are unusable.
#[allow(clippy::type_complexity)]
fn read_header_and_array(
    disk: &mut dyn ReadAt,
    lba: u64,
    ss: u32,
) -> Result<std::result::Result<(GptHeader, Vec<u8>, Vec<u8>), String>> {
    let ss64 = u64::from(ss);
    let disk_sectors = disk.size() / ss64;
    if lba >= disk_sectors {
        return Ok(Err(format!("LBA {lba} is past the end of the disk")));
    }
    let sector = disk.read_vec(lba * ss64, ss as usize)?;
    let h = match parse_header(&sector, lba) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    if h.last_usable_lba >= disk_sectors {
        return Ok(Err(format!(
            "last usable LBA {} is past the end of the disk ({} sectors of {ss} bytes)",
            h.last_usable_lba, disk_sectors
        )));
    }
    let len = u64::from(h.num_entries) * u64::from(h.entry_size);
    let array_end = h
        .entries_lba
        .checked_mul(ss64)
        .and_then(|o| o.checked_add(len));
    if h.entries_lba < 2 || array_end.is_none_or(|end| end > disk.size()) {
        return Ok(Err(format!(
            "entry array at LBA {} ({len} bytes) does not fit on the disk",
            h.entries_lba
        )));
    }
    // Bounded by MAX_ARRAY_BYTES in parse_header.
    let array = disk.read_vec(h.entries_lba * ss64, len as usize)?;
    let crc = crc32fast::hash(&array);
    if crc != h.entries_crc32 {
        return Ok(Err(format!(
            "entry array CRC32 mismatch (stored {:#010x}, computed {crc:#010x})",
            h.entries_crc32
        )));
    }
    Ok(Ok((h, array, sector)))
}

/// Reads the GPT of a disk whose sector 0 is a protective MBR.
///
/// Tries the primary header at LBA 1 for 512- and then 4096-byte sectors;
/// if neither is valid, the backup header at the last LBA (again both sizes),
/// with a warning naming what was wrong with the primary. Also warns when
/// the primary is used but the backup is invalid, and about entries outside
/// the usable range or the disk.
pub fn read_gpt(disk: &mut dyn ReadAt, warnings: &mut Vec<String>) -> Result<GptTable> {
    let sizes = [SECTOR_512, SECTOR_4096];
    let mut primary_errors = Vec::new();
    for ss in sizes {
        match read_header_and_array(disk, PRIMARY_HEADER_LBA, ss)? {
            Ok((h, array, _)) => {
                let backup_lba = disk.size() / u64::from(ss) - 1;
                if let Err(e) = read_header_and_array(disk, backup_lba, ss)? {
                    warnings.push(format!(
                        "backup GPT header at LBA {backup_lba} is invalid: {e}"
                    ));
                } else if h.alternate_lba != backup_lba {
                    warnings.push(format!(
                        "primary GPT header names LBA {} as its backup, not the last LBA {backup_lba}",
                        h.alternate_lba
                    ));
                }
                return Ok(build(ss, &h, &array, false, disk.size(), warnings));
            }
            Err(e) => primary_errors.push(format!("{ss}-byte sectors: {e}")),
        }
    }
    let mut backup_errors = Vec::new();
    for ss in sizes {
        let sectors = disk.size() / u64::from(ss);
        if sectors < 2 {
            continue;
        }
        let lba = sectors - 1;
        match read_header_and_array(disk, lba, ss)? {
            Ok((h, array, _)) => {
                let why = primary_errors
                    .iter()
                    .find(|e| e.starts_with(&format!("{ss}-byte")))
                    .cloned()
                    .unwrap_or_default();
                warnings.push(format!(
                    "primary GPT header at LBA 1 is invalid ({why}); using the backup at LBA {lba}"
                ));
                return Ok(build(ss, &h, &array, true, disk.size(), warnings));
            }
            Err(e) => backup_errors.push(format!("{ss}-byte sectors, LBA {lba}: {e}")),
        }
    }
    Err(Error::Guest(format!(
        "protective MBR found but no valid GPT header: primary ({}); backup ({})",
        primary_errors.join("; "),
        backup_errors.join("; ")
    )))
}

/// The sector size at which LBA 1 starts with "EFI PART", if any; used to
/// warn about a GPT whose protective MBR is gone.
pub fn signature_without_protective_mbr(disk: &mut dyn ReadAt) -> Result<Option<u32>> {
    for ss in [SECTOR_512, SECTOR_4096] {
        let off = u64::from(ss) * PRIMARY_HEADER_LBA;
        if off + 8 <= disk.size() && disk.read_vec(off, 8)? == SIGNATURE {
            return Ok(Some(ss));
        }
    }
    Ok(None)
}

/// Decodes the used entries of a checked array into partitions.
fn build(
    ss: u32,
    h: &GptHeader,
    array: &[u8],
    used_backup: bool,
    disk_size: u64,
    warnings: &mut Vec<String>,
) -> GptTable {
    let ss64 = u64::from(ss);
    let disk_sectors = disk_size / ss64;
    let mut partitions = Vec::new();
    for (i, e) in array.chunks_exact(h.entry_size as usize).enumerate() {
        let type_guid = Guid::from_disk(&e[0..16]).unwrap_or_default();
        if type_guid.is_zero() {
            continue;
        }
        let number = i as u32 + 1;
        let first = le64(e, 32);
        let last = le64(e, 40);
        let attrs = le64(e, 48);
        if last < first {
            warnings.push(format!(
                "GPT entry {number} ends (LBA {last}) before it starts (LBA {first}); ignored"
            ));
            continue;
        }
        if first < h.first_usable_lba || last > h.last_usable_lba {
            warnings.push(format!(
                "partition {number} (LBA {first}..={last}) is outside the usable LBAs {}..={}",
                h.first_usable_lba, h.last_usable_lba
            ));
        }
        if last >= disk_sectors {
            warnings.push(format!(
                "partition {number} (LBA {first}..={last}) extends past the end of the disk ({disk_sectors} sectors)"
            ));
        }
        let sectors = last - first + 1;
        let (Some(start), Some(size)) = (first.checked_mul(ss64), sectors.checked_mul(ss64)) else {
            warnings.push(format!(
                "partition {number}: byte offsets overflow; ignored"
            ));
            continue;
        };
        partitions.push(Partition {
            number,
            start,
            size,
            ptype: PartitionType::Gpt(type_guid),
            type_name: super::gpt_type_name(&type_guid),
            bootable: attrs & ATTR_LEGACY_BIOS_BOOTABLE != 0,
            mbr_role: None,
            name: Some(decode_name(&e[56..56 + NAME_BYTES])).filter(|n| !n.is_empty()),
            uuid: Guid::from_disk(&e[16..32]),
        });
    }
    GptTable {
        sector_size: ss,
        info: GptInfo {
            disk_guid: h.disk_guid,
            used_backup,
            header_lba: h.my_lba,
            first_usable_lba: h.first_usable_lba,
            last_usable_lba: h.last_usable_lba,
        },
        partitions,
    }
}

/// Decodes a UTF-16LE name up to the first NUL; unpaired surrogates become U+FFFD.
pub fn decode_name(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

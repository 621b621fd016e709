//! The VHDX header section, region table, metadata region and log check,
//! parsed and validated.
//!
//! Section numbers are those of Microsoft's "[MS-VHDX]: Virtual Hard Disk
//! v2 (VHDX) File Format". Where the spec leaves room, qfault decides as
//! QEMU's `block/vhdx.c` does (which header is current, which region table
//! copy is read, when the log must be replayed), so an image qfault reads is
//! one QEMU reads the same way through an overlay. Every offset, length and
//! count is checked before it is used; nothing is allocated from a header
//! field without a bound.

use crate::error::{Error, Result};
use crate::image::storage::Storage;
use std::path::Path;

/// 2.2.1 File Type Identifier: the signature at offset 0.
pub const FILE_SIGNATURE: [u8; 8] = *b"vhdxfile";
/// 2.1 Header section: offset of header 1.
pub const HEADER1_OFFSET: u64 = 64 << 10;
/// 2.1 Header section: offset of header 2.
pub const HEADER2_OFFSET: u64 = 128 << 10;
/// 2.1 Header section: offset of region table 1 (the copy QEMU reads).
pub const REGION_TABLE1_OFFSET: u64 = 192 << 10;
/// 2.1 Header section: its total size (file identifier, headers, region tables).
pub const HEADER_SECTION_SIZE: u64 = 1 << 20;
/// 2.2.2 Headers: the bytes a header's checksum covers.
pub const HEADER_SIZE: usize = 4096;
/// 2.2.2 Headers: `Signature`, "head".
pub const HEADER_SIGNATURE: [u8; 4] = *b"head";
/// 2.2.2 Headers: the only defined `Version`.
pub const HEADER_VERSION: u16 = 1;
/// 2.2.2 Headers: the only defined `LogVersion`.
pub const LOG_VERSION: u16 = 0;
/// 2.2.3 Region Table: size of a region table (the checksum covers all of it).
pub const REGION_TABLE_SIZE: usize = 64 << 10;
/// 2.2.3.1 Region Table Header: `Signature`, "regi".
pub const REGION_SIGNATURE: [u8; 4] = *b"regi";
/// 2.2.3.1 Region Table Header: most entries (`EntryCount` <= 2047).
pub const MAX_REGION_ENTRIES: u32 = 2047;
/// 2.2.3.2 Region Table Entry: `Required` bit.
pub const REGION_REQUIRED: u32 = 1;
/// 2.2.3.2 Known regions: the BAT.
pub const BAT_GUID: [u8; 16] = guid(
    0x2dc2_7766,
    0xf623,
    0x4200,
    [0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08],
);
/// 2.2.3.2 Known regions: the metadata region.
pub const METADATA_GUID: [u8; 16] = guid(
    0x8b7c_a206,
    0x4790,
    0x4b9a,
    [0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e],
);
/// 2.3 Log: log sectors are 4 KiB.
pub const LOG_SECTOR_SIZE: u64 = 4096;
/// 2.3.1.1 Entry Header: `Signature`, "loge".
pub const LOG_ENTRY_SIGNATURE: [u8; 4] = *b"loge";
/// 2.3.1.1 Entry Header: its length in bytes.
const LOG_ENTRY_HEADER_LEN: usize = 64;
/// 2.3.1.2/2.3.1.3 Descriptors: 32 bytes each.
const LOG_DESCRIPTOR_LEN: u64 = 32;
/// 2.3 Log: the log's offset and length are multiples of 1 MiB.
pub const LOG_ALIGN: u64 = 1 << 20;
/// 2.6.1.1 Metadata Table Header: `Signature`, "metadata".
pub const METADATA_SIGNATURE: [u8; 8] = *b"metadata";
/// 2.6.1 Metadata Table: its size (header and up to 2047 entries).
pub const METADATA_TABLE_SIZE: usize = 64 << 10;
/// 2.6.1.1 Metadata Table Header: most entries (`EntryCount` <= 2047).
pub const MAX_METADATA_ENTRIES: u16 = 2047;
/// 2.6.1.2 Metadata Table Entry: `IsRequired` flag.
pub const METADATA_IS_REQUIRED: u32 = 1 << 2;
/// 2.6.1.2 Metadata Table Entry: an item is at most 1 MiB long.
pub const MAX_METADATA_ITEM_LEN: u32 = 1 << 20;
/// 2.6.2.1 File Parameters item.
pub const FILE_PARAMETERS_GUID: [u8; 16] = guid(
    0xcaa1_6737,
    0xfa36,
    0x4d43,
    [0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b],
);
/// 2.6.2.2 Virtual Disk Size item.
pub const VIRTUAL_DISK_SIZE_GUID: [u8; 16] = guid(
    0x2fa5_4224,
    0xcd1b,
    0x4876,
    [0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8],
);
/// 2.6.2.3 Virtual Disk ID item (the SCSI page 83 identifier).
pub const VIRTUAL_DISK_ID_GUID: [u8; 16] = guid(
    0xbeca_12ab,
    0xb2e6,
    0x4523,
    [0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46],
);
/// 2.6.2.4 Logical Sector Size item.
pub const LOGICAL_SECTOR_SIZE_GUID: [u8; 16] = guid(
    0x8141_bf1d,
    0xa96f,
    0x4709,
    [0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f],
);
/// 2.6.2.5 Physical Sector Size item.
pub const PHYSICAL_SECTOR_SIZE_GUID: [u8; 16] = guid(
    0xcda3_48c7,
    0x445d,
    0x4471,
    [0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56],
);
/// 2.6.2.6 Parent Locator item.
pub const PARENT_LOCATOR_GUID: [u8; 16] = guid(
    0xa8d3_5f2d,
    0xb30b,
    0x454d,
    [0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c],
);
/// 2.6.2.6.1 VHDX Parent Locator: `LocatorType` of a VHDX parent.
pub const VHDX_PARENT_LOCATOR_TYPE: [u8; 16] = guid(
    0xb04a_efb7,
    0xd19e,
    0x4a81,
    [0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13],
);
/// 2.6.2.1 File Parameters: `LeaveBlocksAllocated` (a fixed VHDX).
pub const PARAMS_LEAVE_BLOCKS_ALLOCATED: u32 = 1;
/// 2.6.2.1 File Parameters: `HasParent` (a differencing VHDX).
pub const PARAMS_HAS_PARENT: u32 = 2;
/// 2.6.2.1 File Parameters: smallest `BlockSize` (1 MiB).
pub const MIN_BLOCK_SIZE: u32 = 1 << 20;
/// 2.6.2.1 File Parameters: largest `BlockSize` (256 MiB).
pub const MAX_BLOCK_SIZE: u32 = 256 << 20;
/// 2.6.2.2 Virtual Disk Size: at most 64 TiB.
pub const MAX_VIRTUAL_DISK_SIZE: u64 = 64 << 40;
/// 2.5 BAT: sectors described by one sector bitmap block (2^23).
pub const SECTORS_PER_BITMAP_BLOCK: u64 = 1 << 23;
/// 2.5 BAT: a sector bitmap block is 1 MiB.
pub const BITMAP_BLOCK_SIZE: u64 = 1 << 20;

/// An MS GUID as stored: `Data1`, `Data2`, `Data3` little-endian, then `Data4`.
pub const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

/// The current header (2.2.2), as far as a reader needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `SequenceNumber`.
    pub sequence_number: u64,
    /// `LogGuid`: all zeros when the log is empty.
    pub log_guid: [u8; 16],
    /// `LogLength` in bytes.
    pub log_length: u32,
    /// `LogOffset` in bytes.
    pub log_offset: u64,
}

/// A region of the file (2.2.3.2): where the BAT or the metadata lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// `FileOffset`.
    pub offset: u64,
    /// `Length`.
    pub length: u64,
}

impl Region {
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }

    /// Whether `[start, start + len)` overlaps this region.
    pub fn overlaps(&self, start: u64, len: u64) -> bool {
        len != 0
            && self.length != 0
            && start < self.end()
            && self.offset < start.saturating_add(len)
    }
}

/// What the metadata region (2.6) says about the virtual disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// 2.6.2.1 `BlockSize` in bytes.
    pub block_size: u32,
    /// 2.6.2.1 `LeaveBlocksAllocated`: a fixed VHDX.
    pub leave_blocks_allocated: bool,
    /// 2.6.2.1 `HasParent`: a differencing VHDX.
    pub has_parent: bool,
    /// 2.6.2.2 `VirtualDiskSize` in bytes.
    pub virtual_disk_size: u64,
    /// 2.6.2.4 `LogicalSectorSize` (512 or 4096).
    pub logical_sector_size: u32,
    /// 2.6.2.5 `PhysicalSectorSize` (512 or 4096).
    pub physical_sector_size: u32,
    /// 2.6.2.6 the parent locator's key/value pairs (differencing only).
    pub parent_locator: Vec<(String, String)>,
}

impl Metadata {
    /// 2.5 BAT: payload blocks per sector bitmap block,
    /// (2^23 * LogicalSectorSize) / BlockSize.
    pub fn chunk_ratio(&self) -> u64 {
        SECTORS_PER_BITMAP_BLOCK * u64::from(self.logical_sector_size) / u64::from(self.block_size)
    }

    /// 2.5 BAT: payload blocks, ceil(VirtualDiskSize / BlockSize).
    pub fn payload_blocks(&self) -> u64 {
        self.virtual_disk_size.div_ceil(u64::from(self.block_size))
    }

    /// 2.5 BAT: entries the BAT must hold. Fixed and dynamic: up to the last
    /// payload block; differencing: up to the last chunk's sector bitmap
    /// block.
    pub fn bat_entries(&self) -> u64 {
        let blocks = self.payload_blocks();
        let ratio = self.chunk_ratio();
        if self.has_parent {
            blocks.div_ceil(ratio) * (ratio + 1)
        } else if blocks == 0 {
            0
        } else {
            blocks + (blocks - 1) / ratio
        }
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn guid_at(b: &[u8], at: usize) -> [u8; 16] {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[at..at + 16]);
    g
}

/// CRC-32C of `buf` with the 4-byte checksum field at `at` taken as zero
/// (2.2.2 "Checksum", 2.2.3.1, 2.3.1.1), compared with the stored value.
pub fn checksum_ok(buf: &[u8], at: usize) -> bool {
    let stored = le32(buf, at);
    let crc = crc32c::crc32c(&buf[..at]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &buf[at + 4..]) == stored
}

/// Reads both headers and picks the current one as QEMU does: the valid
/// one (checksum, signature, version 1) with the higher sequence number; two
/// valid headers with the same number must be identical.
pub fn read_header(storage: &dyn Storage, path: &Path) -> Result<Header> {
    let mut parsed = Vec::with_capacity(2);
    for at in [HEADER1_OFFSET, HEADER2_OFFSET] {
        let mut buf = vec![0u8; HEADER_SIZE];
        storage.read_at(at, &mut buf)?;
        let valid = checksum_ok(&buf, 4)
            && buf[0..4] == HEADER_SIGNATURE
            && le16(&buf, 66) == HEADER_VERSION;
        parsed.push(valid.then(|| {
            (
                Header {
                    sequence_number: le64(&buf, 8),
                    log_guid: guid_at(&buf, 48),
                    log_length: le32(&buf, 68),
                    log_offset: le64(&buf, 72),
                },
                le16(&buf, 64),
                buf[..80].to_vec(),
            )
        }));
    }
    let (current, log_version) = match (parsed[0].take(), parsed[1].take()) {
        (None, None) => {
            return Err(Error::malformed(
                path,
                "no valid VHDX header: both headers (at 64 KiB and 128 KiB) fail their \
                 CRC-32C checksum, signature or version check",
            ))
        }
        (Some((h, v, _)), None) | (None, Some((h, v, _))) => (h, v),
        (Some((h1, v1, raw1)), Some((h2, v2, raw2))) => {
            if h1.sequence_number > h2.sequence_number {
                (h1, v1)
            } else if h2.sequence_number > h1.sequence_number {
                (h2, v2)
            } else if raw1 == raw2 {
                (h1, v1)
            } else {
                return Err(Error::malformed(
                    path,
                    "both VHDX headers are valid with the same sequence number but differ",
                ));
            }
        }
    };
    if current.log_offset < LOG_ALIGN || current.log_offset % LOG_ALIGN != 0 {
        return Err(Error::malformed(
            path,
            format!(
                "the log offset {} is not a multiple of 1 MiB past the header section",
                current.log_offset
            ),
        ));
    }
    if log_version != LOG_VERSION {
        return Err(Error::unsupported(
            path,
            format!("log version {log_version} (only version 0 is defined)"),
        ));
    }
    Ok(current)
}

/// Reads region table 1 (QEMU reads only this copy) and returns the BAT
/// and metadata regions, checked against each other and the log.
pub fn read_regions(storage: &dyn Storage, path: &Path, log: Region) -> Result<(Region, Region)> {
    let mut buf = vec![0u8; REGION_TABLE_SIZE];
    storage.read_at(REGION_TABLE1_OFFSET, &mut buf)?;
    if buf[0..4] != REGION_SIGNATURE || !checksum_ok(&buf, 4) {
        return Err(Error::malformed(
            path,
            "region table 1 (at 192 KiB) has a bad signature or CRC-32C checksum \
             (QEMU reads only this copy)",
        ));
    }
    let count = le32(&buf, 8);
    if count > MAX_REGION_ENTRIES {
        return Err(Error::malformed(
            path,
            format!("the region table claims {count} entries (at most {MAX_REGION_ENTRIES})"),
        ));
    }
    let mut seen = vec![log];
    let (mut bat, mut meta) = (None, None);
    for i in 0..count as usize {
        let e = &buf[16 + i * 32..16 + (i + 1) * 32];
        let id = guid_at(e, 0);
        let region = Region {
            offset: le64(e, 16),
            length: u64::from(le32(e, 24)),
        };
        let required = le32(e, 28) & REGION_REQUIRED != 0;
        if seen
            .iter()
            .any(|r| r.overlaps(region.offset, region.length))
        {
            return Err(Error::malformed(
                path,
                format!(
                    "region table entry {i} ({} bytes at {}) overlaps another region or the log",
                    region.length, region.offset
                ),
            ));
        }
        seen.push(region);
        let slot = if id == BAT_GUID {
            &mut bat
        } else if id == METADATA_GUID {
            &mut meta
        } else if required {
            return Err(Error::unsupported(
                path,
                format!("region table entry {i} is a required region of an unknown kind"),
            ));
        } else {
            continue;
        };
        if slot.replace(region).is_some() {
            return Err(Error::malformed(
                path,
                "the region table names the BAT or the metadata region twice",
            ));
        }
    }
    match (bat, meta) {
        (Some(b), Some(m)) => Ok((b, m)),
        _ => Err(Error::malformed(
            path,
            "the region table lacks the BAT or the metadata region",
        )),
    }
}

/// One metadata table entry (2.6.1.2): where its item lies, relative to
/// the metadata region.
#[derive(Debug, Clone, Copy)]
struct Item {
    offset: u32,
    length: u32,
}

/// Reads the metadata table and the items a reader needs (2.6.2).
pub fn read_metadata(storage: &dyn Storage, path: &Path, region: Region) -> Result<Metadata> {
    let bad = |reason: String| Error::malformed(path, reason);
    let mut table = vec![0u8; METADATA_TABLE_SIZE];
    storage.read_at(region.offset, &mut table)?;
    if table[0..8] != METADATA_SIGNATURE {
        return Err(bad("the metadata region has a bad signature".into()));
    }
    let count = le16(&table, 10);
    if count > MAX_METADATA_ENTRIES {
        return Err(bad(format!(
            "the metadata table claims {count} entries (at most {MAX_METADATA_ENTRIES})"
        )));
    }
    let known: [(&[u8; 16], &str); 6] = [
        (&FILE_PARAMETERS_GUID, "file parameters"),
        (&VIRTUAL_DISK_SIZE_GUID, "virtual disk size"),
        (&VIRTUAL_DISK_ID_GUID, "virtual disk ID"),
        (&LOGICAL_SECTOR_SIZE_GUID, "logical sector size"),
        (&PHYSICAL_SECTOR_SIZE_GUID, "physical sector size"),
        (&PARENT_LOCATOR_GUID, "parent locator"),
    ];
    let mut items: [Option<Item>; 6] = [None; 6];
    for i in 0..usize::from(count) {
        let e = &table[32 + i * 32..32 + (i + 1) * 32];
        let id = guid_at(e, 0);
        let item = Item {
            offset: le32(e, 16),
            length: le32(e, 20),
        };
        let Some(k) = known.iter().position(|(g, _)| **g == id) else {
            if le32(e, 24) & METADATA_IS_REQUIRED != 0 {
                return Err(Error::unsupported(
                    path,
                    format!("metadata entry {i} is a required item of an unknown kind"),
                ));
            }
            continue;
        };
        if items[k].replace(item).is_some() {
            return Err(bad(format!(
                "the metadata table holds the {} item twice",
                known[k].1
            )));
        }
    }
    for (k, (_, name)) in known.iter().enumerate().take(5) {
        if items[k].is_none() {
            return Err(bad(format!("the metadata table lacks the {name} item")));
        }
    }
    // Reads item `k` (at least `min` bytes of it) from the metadata region.
    let read_item = |k: usize, min: u32| -> Result<Vec<u8>> {
        let Some(item) = items[k] else {
            return Err(bad(format!(
                "the metadata table lacks the {} item",
                known[k].1
            )));
        };
        let name = known[k].1;
        if item.length < min || item.length > MAX_METADATA_ITEM_LEN {
            return Err(bad(format!(
                "the {name} item is {} bytes long (expected {min} to {MAX_METADATA_ITEM_LEN})",
                item.length
            )));
        }
        let end = u64::from(item.offset) + u64::from(item.length);
        if u64::from(item.offset) < METADATA_TABLE_SIZE as u64 || end > region.length {
            return Err(bad(format!(
                "the {name} item ({} bytes at {}) lies outside the metadata region's items \
                 ({} bytes)",
                item.length, item.offset, region.length
            )));
        }
        let mut buf = vec![0u8; item.length as usize];
        storage.read_at(region.offset + u64::from(item.offset), &mut buf)?;
        Ok(buf)
    };
    let params = read_item(0, 8)?;
    let block_size = le32(&params, 0);
    let bits = le32(&params, 4);
    let size = le64(&read_item(1, 8)?, 0);
    let logical = le32(&read_item(3, 4)?, 0);
    let physical = le32(&read_item(4, 4)?, 0);
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(bad(format!(
            "block size {block_size} is not a power of two from 1 MiB to 256 MiB"
        )));
    }
    if logical != 512 && logical != 4096 {
        return Err(bad(format!(
            "logical sector size {logical} (must be 512 or 4096)"
        )));
    }
    if physical != 512 && physical != 4096 {
        return Err(bad(format!(
            "physical sector size {physical} (must be 512 or 4096)"
        )));
    }
    if size > MAX_VIRTUAL_DISK_SIZE {
        return Err(bad(format!(
            "virtual disk size {size} is over the format's 64 TiB limit"
        )));
    }
    let has_parent = bits & PARAMS_HAS_PARENT != 0;
    let parent_locator = if has_parent {
        if items[5].is_none() {
            return Err(bad(
                "a differencing image (HasParent) without a parent locator".into(),
            ));
        }
        parse_parent_locator(path, &read_item(5, 20)?)?
    } else {
        Vec::new()
    };
    Ok(Metadata {
        block_size,
        leave_blocks_allocated: bits & PARAMS_LEAVE_BLOCKS_ALLOCATED != 0,
        has_parent,
        virtual_disk_size: size,
        logical_sector_size: logical,
        physical_sector_size: physical,
        parent_locator,
    })
}

/// Parses a parent locator item (2.6.2.6): a VHDX locator type and its
/// UTF-16LE key/value pairs (offsets relative to the item).
pub fn parse_parent_locator(path: &Path, item: &[u8]) -> Result<Vec<(String, String)>> {
    let bad = |reason: String| Error::malformed(path, reason);
    if item.len() < 20 {
        return Err(bad("the parent locator is shorter than its header".into()));
    }
    if guid_at(item, 0) != VHDX_PARENT_LOCATOR_TYPE {
        return Err(Error::unsupported(
            path,
            "the parent locator is not of the VHDX type (the parent is not a VHDX file)",
        ));
    }
    let count = usize::from(le16(item, 18));
    if 20 + count * 12 > item.len() {
        return Err(bad(format!(
            "the parent locator claims {count} entries, more than its {} bytes hold",
            item.len()
        )));
    }
    let string = |offset: u32, len: u16| -> Result<String> {
        let (start, len) = (offset as usize, usize::from(len));
        let bytes = item
            .get(start..start.saturating_add(len))
            .filter(|_| len % 2 == 0 && start >= 20)
            .ok_or_else(|| {
                bad(format!(
                    "a parent locator string ({len} bytes at {start}) lies outside the item"
                ))
            })?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units)
            .map_err(|_| bad("a parent locator string is not valid UTF-16".into()))
    };
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let e = &item[20 + i * 12..20 + (i + 1) * 12];
        let key = string(le32(e, 0), le16(e, 8))?;
        let value = string(le32(e, 4), le16(e, 10))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Most log bytes [`check_log`] checksums before giving up (the log may be
/// up to 4 GiB and hold overlapping candidate entries).
const LOG_SCAN_BUDGET: u64 = 64 << 20;

/// Whether the log (2.3) holds entries that must be replayed before the
/// image is read, decided as QEMU decides: an empty log GUID or length means
/// no log; otherwise any entry carrying the header's log GUID with a valid
/// header, descriptors and checksum is an active log, which QEMU replays
/// when opening read-write and refuses read-only. qfault never writes, so
/// it refuses too.
pub fn check_log(storage: &dyn Storage, path: &Path, header: &Header) -> Result<()> {
    if header.log_guid == [0; 16] || header.log_length == 0 {
        return Ok(());
    }
    let len = u64::from(header.log_length);
    if len % LOG_ALIGN != 0 {
        return Err(Error::malformed(
            path,
            format!("the log length {len} is not a multiple of 1 MiB"),
        ));
    }
    let replay = || {
        Error::unsupported(
            path,
            "the log holds entries that were never replayed (the image was not closed \
             cleanly); QEMU refuses to read it too: replay the log with \
             `qemu-img check -r all` on the image (or open it once in Hyper-V), then retry",
        )
    };
    let file_len = storage.len();
    let mut budget = LOG_SCAN_BUDGET;
    let mut sector = vec![0u8; LOG_SECTOR_SIZE as usize];
    let mut at = 0u64;
    while at < len {
        let abs = header.log_offset.saturating_add(at);
        if abs >= file_len {
            break;
        }
        storage.read_at(abs, &mut sector)?;
        if let Some(entry_len) = log_entry_candidate(&sector, header, len) {
            if entry_len > budget {
                return Err(Error::unsupported(
                    path,
                    "the log is too large to check for unreplayed entries; replay it with \
                     `qemu-img check -r all` on the image, then retry",
                ));
            }
            budget -= entry_len;
            if log_entry_valid(storage, header, at, entry_len)? {
                return Err(replay());
            }
        }
        at += LOG_SECTOR_SIZE;
    }
    Ok(())
}

/// The entry length when the log sector `s` starts a log entry header that
/// passes QEMU's header checks (2.3.1.1) for this header's log.
fn log_entry_candidate(s: &[u8], header: &Header, log_len: u64) -> Option<u64> {
    let entry_len = u64::from(le32(s, 8));
    let descriptors = u64::from(le32(s, 24));
    let ok = s[0..4] == LOG_ENTRY_SIGNATURE
        && entry_len != 0
        && entry_len <= log_len
        && entry_len % LOG_SECTOR_SIZE == 0
        && le64(s, 16) != 0
        && guid_at(s, 32) == header.log_guid
        && descriptors * LOG_DESCRIPTOR_LEN <= entry_len;
    ok.then_some(entry_len)
}

/// Whether the log entry at `at` (within the circular log) has valid
/// descriptors and a valid checksum over its `entry_len` bytes.
fn log_entry_valid(
    storage: &dyn Storage,
    header: &Header,
    at: u64,
    entry_len: u64,
) -> Result<bool> {
    let log_len = u64::from(header.log_length);
    let mut entry = vec![0u8; entry_len as usize];
    // The log is circular: the entry may wrap to the log's start.
    let first = entry_len.min(log_len - at);
    storage.read_at(header.log_offset + at, &mut entry[..first as usize])?;
    if first < entry_len {
        storage.read_at(header.log_offset, &mut entry[first as usize..])?;
    }
    let seq = le64(&entry, 16);
    let descriptors = u64::from(le32(&entry, 24));
    // Descriptor sectors: the header and descriptors, 4 KiB each.
    let desc_sectors = (descriptors + 2).div_ceil(LOG_SECTOR_SIZE / LOG_DESCRIPTOR_LEN);
    if desc_sectors * LOG_SECTOR_SIZE > entry_len {
        return Ok(false);
    }
    for d in 0..descriptors as usize {
        let o = LOG_ENTRY_HEADER_LEN + d * LOG_DESCRIPTOR_LEN as usize;
        let desc = &entry[o..o + LOG_DESCRIPTOR_LEN as usize];
        let sig_ok = match &desc[0..4] {
            b"zero" => le64(desc, 8) % LOG_SECTOR_SIZE == 0,
            b"desc" => true,
            _ => false,
        };
        if !sig_ok || le64(desc, 24) != seq || le64(desc, 16) % LOG_SECTOR_SIZE != 0 {
            return Ok(false);
        }
    }
    Ok(checksum_ok(&entry, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_stored_little_endian_in_the_first_three_fields() {
        assert_eq!(
            BAT_GUID,
            [
                0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd,
                0x4a, 0x08
            ]
        );
    }

    #[test]
    fn chunk_ratio_and_bat_entries_follow_the_spec() {
        let mut m = Metadata {
            block_size: 32 << 20,
            leave_blocks_allocated: false,
            has_parent: false,
            virtual_disk_size: 64 << 20,
            logical_sector_size: 512,
            physical_sector_size: 4096,
            parent_locator: Vec::new(),
        };
        assert_eq!(m.chunk_ratio(), 128);
        assert_eq!(m.bat_entries(), 2);
        m.has_parent = true;
        assert_eq!(m.bat_entries(), 129);
        m.has_parent = false;
        m.block_size = 1 << 20;
        m.virtual_disk_size = 5 << 30; // 5120 blocks, chunk ratio 4096
        assert_eq!(m.chunk_ratio(), 4096);
        assert_eq!(m.bat_entries(), 5120 + 1);
    }

    #[test]
    fn parent_locator_strings_are_bounded() {
        let p = Path::new("t.vhdx");
        let mut item = VHDX_PARENT_LOCATOR_TYPE.to_vec();
        item.extend_from_slice(&[0, 0, 1, 0]);
        // key at 32 (2 bytes), value at 1000 (past the end).
        item.extend_from_slice(&32u32.to_le_bytes());
        item.extend_from_slice(&1000u32.to_le_bytes());
        item.extend_from_slice(&2u16.to_le_bytes());
        item.extend_from_slice(&2u16.to_le_bytes());
        item.extend_from_slice(&[b'k', 0]);
        assert!(parse_parent_locator(p, &item).is_err());
        // A count larger than the item holds.
        item[18] = 0xff;
        assert!(parse_parent_locator(p, &item).is_err());
    }
}

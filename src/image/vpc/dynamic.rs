//! The dynamic disk header of a dynamic or differencing VHD: the block
//! allocation table (BAT) and, for differencing disks, the parent's name.
//!
//! Spec: "Virtual Hard Disk Image Format Specification", "Dynamic Disk
//! Header Format" and "Block Allocation Table and Data Blocks". Fields are
//! big-endian; the parent's Unicode name is UTF-16 big-endian, the Windows
//! parent locators UTF-16 little-endian, the `MacX` locator a UTF-8 file URL.

use super::footer::{be32, be64};
use crate::error::{Error, Result};
use crate::image::storage::Storage;
use std::path::Path;

/// Size of the dynamic disk header ("Dynamic Disk Header Format": 1024 bytes).
pub const HEADER_SIZE: usize = 1024;
/// The header's cookie ("Cookie": "cxsparse").
pub const COOKIE: &[u8; 8] = b"cxsparse";
/// A BAT entry of a block not allocated in this image ("Block Allocation
/// Table": 0xFFFFFFFF).
pub const UNALLOCATED: u32 = 0xffff_ffff;
/// Sector size the BAT counts in.
pub const SECTOR: u64 = 512;
/// Most BAT entries qfault keeps in memory (32 MiB of table: 16 TiB of
/// guest with the default 2 MiB blocks, far past the 2040 GiB VHD limit).
pub const MAX_KEPT_ENTRIES: u64 = 8 << 20;
/// Most entries QEMU accepts in "Max Table Entries" (`INT_MAX / 4`).
pub const MAX_TABLE_ENTRIES: u32 = i32::MAX as u32 / 4;
/// Most bytes of a parent locator's data read (a path).
pub const MAX_LOCATOR_BYTES: u32 = 64 << 10;
/// "Platform Code": relative Windows path, UTF-16 little-endian.
pub const PLATFORM_W2RU: &[u8; 4] = b"W2ru";
/// "Platform Code": absolute Windows path, UTF-16 little-endian.
pub const PLATFORM_W2KU: &[u8; 4] = b"W2ku";
/// "Platform Code": a Mac OS X file URL, UTF-8.
pub const PLATFORM_MACX: &[u8; 4] = b"MacX";

mod off {
    pub const TABLE_OFFSET: usize = 16;
    pub const MAX_TABLE_ENTRIES: usize = 28;
    pub const BLOCK_SIZE: usize = 32;
    pub const PARENT_NAME: usize = 64;
    pub const PARENT_NAME_LEN: usize = 512;
    pub const LOCATORS: usize = 576;
    pub const LOCATOR_SIZE: usize = 24;
    pub const LOCATOR_COUNT: usize = 8;
}

/// What a dynamic or differencing VHD's header and BAT say.
#[derive(Debug, Clone)]
pub struct Dynamic {
    /// "Block Size": guest bytes per block (a power of two, at least 512).
    pub block_size: u64,
    /// Bytes of the sector bitmap in front of each block's data.
    pub bitmap_size: u64,
    /// The BAT entries covering the guest (sector numbers of each block's
    /// bitmap, or [`UNALLOCATED`]).
    pub bat: Vec<u32>,
    /// The parent's name for a differencing disk (a relative locator, else
    /// the "Parent Unicode Name").
    pub parent: Option<String>,
}

/// Reads the dynamic disk header at `header_offset` and the BAT, with QEMU's
/// checks (`vpc_open`) and qfault's memory bound. `size` is the guest size.
pub fn read(
    storage: &dyn Storage,
    path: &Path,
    header_offset: u64,
    size: u64,
    differencing: bool,
) -> Result<Dynamic> {
    let file_len = storage.len();
    let mut h = [0u8; HEADER_SIZE];
    storage.read_at(header_offset, &mut h)?;
    if &h[..8] != COOKIE {
        return Err(Error::malformed(
            path,
            format!("no dynamic disk header (cookie 'cxsparse') at offset {header_offset}"),
        ));
    }
    let block_size = u64::from(be32(&h, off::BLOCK_SIZE));
    if !block_size.is_power_of_two() || block_size < SECTOR {
        return Err(Error::malformed(
            path,
            format!("VHD block size {block_size} is not a power of two of at least 512"),
        ));
    }
    // One bit per sector, rounded up to whole sectors.
    let bitmap_size = (block_size / (8 * SECTOR)).div_ceil(SECTOR) * SECTOR;
    let entries = be32(&h, off::MAX_TABLE_ENTRIES);
    if size / block_size > u64::from(u32::MAX) {
        return Err(Error::malformed(
            path,
            "too many VHD blocks for the guest size",
        ));
    }
    if u64::from(entries) * block_size < size {
        return Err(Error::malformed(
            path,
            format!(
                "the VHD block table has {entries} entries of {block_size} bytes, \
                 too few for the guest size {size}"
            ),
        ));
    }
    if entries > MAX_TABLE_ENTRIES {
        return Err(Error::malformed(
            path,
            format!("the VHD block table's {entries} entries are more than QEMU reads"),
        ));
    }
    let needed = size.div_ceil(block_size);
    if needed > MAX_KEPT_ENTRIES {
        return Err(Error::unsupported(
            path,
            format!("the VHD block table needs {needed} entries, more than qfault keeps ({MAX_KEPT_ENTRIES})"),
        ));
    }
    let table = be64(&h, off::TABLE_OFFSET);
    let table_bytes = u64::from(entries) * 4;
    table
        .checked_add(table_bytes)
        .and_then(|e| e.checked_next_multiple_of(SECTOR))
        .filter(|&e| e <= file_len)
        .ok_or_else(|| {
            Error::malformed(
                path,
                format!(
                    "the VHD block table ({entries} entries at offset {table}) lies past the end \
                     of the file ({file_len} bytes)"
                ),
            )
        })?;
    // QEMU checks every entry, not only those of the guest: a block whose end
    // lies past the end of the file means a truncated image.
    let mut bat = Vec::with_capacity(needed as usize);
    let mut chunk = vec![0u8; 64 << 10];
    let mut index = 0u64;
    while index < u64::from(entries) {
        let n = (u64::from(entries) - index).min(chunk.len() as u64 / 4) as usize;
        let buf = &mut chunk[..n * 4];
        storage.read_at(table + index * 4, buf)?;
        for (i, e) in buf.chunks_exact(4).enumerate() {
            let e = be32(e, 0);
            let block = index + i as u64;
            if e != UNALLOCATED {
                let end = u64::from(e) * SECTOR + bitmap_size + block_size;
                if end > file_len {
                    return Err(Error::malformed(
                        path,
                        format!(
                            "VHD block {block} (sector {e}) ends at {end}, past the end of the \
                             file ({file_len} bytes): the image is truncated"
                        ),
                    ));
                }
            }
            if block < needed {
                bat.push(e);
            }
        }
        index += n as u64;
    }
    let parent = if differencing {
        Some(parent_name(storage, path, &h)?)
    } else {
        None
    };
    Ok(Dynamic {
        block_size,
        bitmap_size,
        bat,
        parent,
    })
}

/// The parent a differencing disk names: the first usable locator
/// (`W2ru`, or a `MacX` file URL), else the "Parent Unicode Name"
/// (a file name, resolved beside the child). Absolute Windows paths
/// (`W2ku`) name nothing on this host and are skipped.
fn parent_name(storage: &dyn Storage, path: &Path, h: &[u8; HEADER_SIZE]) -> Result<String> {
    let file_len = storage.len();
    for i in 0..off::LOCATOR_COUNT {
        let at = off::LOCATORS + i * off::LOCATOR_SIZE;
        let code: [u8; 4] = h[at..at + 4].try_into().unwrap_or([0; 4]);
        let len = be32(h, at + 8);
        let data = be64(h, at + 16);
        if len == 0
            || len > MAX_LOCATOR_BYTES
            || data
                .checked_add(u64::from(len))
                .is_none_or(|e| e > file_len)
        {
            continue;
        }
        let mut buf = vec![0u8; len as usize];
        storage.read_at(data, &mut buf)?;
        let name = match &code {
            c if c == PLATFORM_W2RU => utf16(&buf, false).map(|s| windows_relative(&s)),
            c if c == PLATFORM_MACX => String::from_utf8(buf)
                .ok()
                .and_then(|s| mac_url(s.trim_end_matches('\0'))),
            _ => None,
        };
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            return Ok(name);
        }
    }
    let name = utf16(
        &h[off::PARENT_NAME..off::PARENT_NAME + off::PARENT_NAME_LEN],
        true,
    )
    .unwrap_or_default();
    if name.is_empty() {
        return Err(Error::malformed(
            path,
            "the differencing VHD names no parent (no relative locator, empty parent name)",
        ));
    }
    Ok(name)
}

/// Decodes UTF-16 (big- or little-endian) up to the first NUL.
fn utf16(bytes: &[u8], big_endian: bool) -> Option<String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        })
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

/// A relative Windows path (`.\dir\parent.vhd`) as a relative Unix name.
fn windows_relative(s: &str) -> String {
    let s = s.replace('\\', "/");
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

/// A `MacX` file URL's path: relative (`file://./parent.vhd`) or absolute
/// (`file:///dir/parent.vhd`).
fn mac_url(s: &str) -> Option<String> {
    let rest = s.strip_prefix("file://")?;
    match rest.strip_prefix("./") {
        Some(relative) => Some(relative.to_string()),
        None => rest.starts_with('/').then(|| rest.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_names() {
        assert_eq!(windows_relative(".\\dir\\p.vhd"), "dir/p.vhd");
        assert_eq!(mac_url("file://./p.vhd").as_deref(), Some("p.vhd"));
        assert_eq!(mac_url("file:///abs/p.vhd").as_deref(), Some("/abs/p.vhd"));
        assert_eq!(mac_url("file://host/p.vhd"), None);
        let be: Vec<u8> = "p.vhd".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(utf16(&be, true).as_deref(), Some("p.vhd"));
        assert_eq!(utf16(&[0xd8, 0x00, 0, 0x41], true), None);
    }
}

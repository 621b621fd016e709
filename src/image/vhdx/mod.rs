//! VHDX images (Hyper-V): fixed, dynamic and differencing.
//!
//! A [`VhdxImage`] maps guest bytes through the BAT (MS-VHDX 2.5): each
//! payload block is present in the file, reads as zeros, or (in a
//! differencing image) comes from the parent, sector by sector where the
//! chunk's sector bitmap says so. The header section, region table,
//! metadata and log are parsed in [`header`]. The BAT is read on demand (one
//! page cached), so memory does not grow with the disk size; at open every
//! present block is checked against the file's end and the metadata regions
//! as QEMU checks them.
//!
//! Block states a reader may choose how to read (2.5.1.1) are read as QEMU
//! reads them: NOT_PRESENT, UNDEFINED, ZERO and UNMAPPED as zeros (in a
//! differencing image NOT_PRESENT reads the parent). QEMU does not open
//! differencing VHDX images at all; qfault reads them, following the parent
//! locator's `relative_path`.

pub mod header;

use crate::error::{Error, Result};
use crate::image::chain::{Format, LayerInfo};
use crate::image::driver::{BackingRef, Driver, Files};
use crate::image::qcow2::{Extent, Mapping};
use crate::image::storage::Storage;
use header::{Metadata, Region};
use std::path::{Path, PathBuf};

/// 2.5 BAT: bits 0-2 of an entry, the block state.
pub const BAT_STATE_MASK: u64 = 0x7;
/// 2.5 BAT: bits 20-63 of an entry, `FileOffsetMB` (the offset in bytes
/// when masked).
pub const BAT_OFFSET_MASK: u64 = !((1 << 20) - 1);
/// 2.5.1.1 `PAYLOAD_BLOCK_NOT_PRESENT`.
pub const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
/// 2.5.1.1 `PAYLOAD_BLOCK_UNDEFINED`.
pub const PAYLOAD_BLOCK_UNDEFINED: u64 = 1;
/// 2.5.1.1 `PAYLOAD_BLOCK_ZERO`.
pub const PAYLOAD_BLOCK_ZERO: u64 = 2;
/// 2.5.1.1 `PAYLOAD_BLOCK_UNMAPPED`.
pub const PAYLOAD_BLOCK_UNMAPPED: u64 = 3;
/// `PAYLOAD_BLOCK_UNMAPPED` of the 0.95 draft (QEMU reads it as zeros too).
pub const PAYLOAD_BLOCK_UNMAPPED_V095: u64 = 5;
/// 2.5.1.1 `PAYLOAD_BLOCK_FULLY_PRESENT`.
pub const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
/// 2.5.1.1 `PAYLOAD_BLOCK_PARTIALLY_PRESENT` (differencing only).
pub const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u64 = 7;
/// 2.5.1.2 `SB_BLOCK_PRESENT`.
pub const SB_BLOCK_PRESENT: u64 = 6;

/// BAT entries read and cached at a time (64 KiB).
const BAT_PAGE_ENTRIES: u64 = 8192;
/// BAT bytes checked per read at open.
const BAT_SCAN_BYTES: u64 = 1 << 20;

/// An open VHDX image (read-only).
#[derive(Debug)]
pub struct VhdxImage {
    storage: Box<dyn Storage>,
    path: PathBuf,
    file_len: u64,
    meta: Metadata,
    bat: Region,
    bat_entries: u64,
    /// The cached BAT page: (first entry index, entries).
    bat_page: Option<(u64, Vec<u64>)>,
    /// The cached sector bitmap of one payload block: (BAT index, bits).
    bitmap: Option<(u64, Vec<u8>)>,
    parent: Option<BackingRef>,
}

/// Opens the image in `storage` (the driver seam's entry point).
pub fn open(storage: Box<dyn Storage>, _files: &mut dyn Files) -> Result<Box<dyn Driver>> {
    Ok(Box::new(VhdxImage::open(storage)?))
}

impl VhdxImage {
    /// Parses the headers, region table and metadata of the image in
    /// `storage`, refuses an active log, and checks the BAT.
    pub fn open(storage: Box<dyn Storage>) -> Result<Self> {
        let path = storage.path().to_path_buf();
        let file_len = storage.len();
        let mut sig = [0u8; 8];
        storage.read_at(0, &mut sig)?;
        if sig != header::FILE_SIGNATURE {
            return Err(Error::malformed(
                &path,
                "not a VHDX image (no \"vhdxfile\" signature)",
            ));
        }
        let h = header::read_header(storage.as_ref(), &path)?;
        header::check_log(storage.as_ref(), &path, &h)?;
        let log = Region {
            offset: h.log_offset,
            length: u64::from(h.log_length),
        };
        let (bat, meta_region) = header::read_regions(storage.as_ref(), &path, log)?;
        let meta = header::read_metadata(storage.as_ref(), &path, meta_region)?;
        let bat_entries = meta.bat_entries();
        if bat_entries > bat.length / 8 {
            return Err(Error::malformed(
                &path,
                format!(
                    "the BAT region ({} bytes) is too small for the {bat_entries} entries a \
                     {}-byte disk with {}-byte blocks needs",
                    bat.length, meta.virtual_disk_size, meta.block_size
                ),
            ));
        }
        let parent = if meta.has_parent {
            Some(parent_ref(&path, &meta.parent_locator)?)
        } else {
            None
        };
        let mut image = VhdxImage {
            storage,
            path,
            file_len,
            meta,
            bat,
            bat_entries,
            bat_page: None,
            bitmap: None,
            parent,
        };
        image.check_bat(&[log, bat, meta_region])?;
        Ok(image)
    }

    /// The parsed metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Checks every allocated BAT entry at open, as QEMU's
    /// `vhdx_check_bat_entries` does: a present payload block must lie in
    /// the file (the last block may end early) past the header section and
    /// overlap no region; a present sector bitmap block must lie in the file.
    /// Entries past the file's end read as zeros (not present) and are not
    /// scanned.
    fn check_bat(&mut self, regions: &[Region]) -> Result<()> {
        let ratio = self.meta.chunk_ratio();
        let bs = u64::from(self.meta.block_size);
        let in_file = self.file_len.saturating_sub(self.bat.offset) / 8;
        let n = self.bat_entries.min(in_file);
        let mut buf = vec![0u8; BAT_SCAN_BYTES.min(n * 8) as usize];
        let mut i = 0u64;
        while i < n {
            let count = (n - i).min(BAT_SCAN_BYTES / 8);
            let chunk = &mut buf[..(count * 8) as usize];
            self.storage.read_at(self.bat.offset + i * 8, chunk)?;
            for (k, e) in chunk.chunks_exact(8).enumerate() {
                let idx = i + k as u64;
                let entry = u64::from_le_bytes(e.try_into().unwrap_or([0; 8]));
                let state = entry & BAT_STATE_MASK;
                let offset = entry & BAT_OFFSET_MASK;
                if idx % (ratio + 1) == ratio {
                    // A sector bitmap entry.
                    if state == SB_BLOCK_PRESENT
                        && offset.saturating_add(header::BITMAP_BLOCK_SIZE) > self.file_len
                    {
                        return Err(self.bad(format!(
                            "BAT entry {idx}: the sector bitmap block at {offset} lies past \
                             the end of the file ({} bytes)",
                            self.file_len
                        )));
                    }
                    continue;
                }
                if state != PAYLOAD_BLOCK_FULLY_PRESENT && state != PAYLOAD_BLOCK_PARTIALLY_PRESENT
                {
                    continue;
                }
                let block = idx - idx / (ratio + 1);
                let len = bs.min(self.meta.virtual_disk_size.saturating_sub(block * bs));
                if offset < header::HEADER_SECTION_SIZE {
                    return Err(self.bad(format!(
                        "BAT entry {idx}: payload block {block} lies in the header section \
                         (offset {offset})"
                    )));
                }
                if offset.saturating_add(len) > self.file_len {
                    return Err(self.bad(format!(
                        "BAT entry {idx}: payload block {block} ({len} bytes at {offset}) lies \
                         past the end of the file ({} bytes); the image has probably been \
                         truncated",
                        self.file_len
                    )));
                }
                if regions.iter().any(|r| r.overlaps(offset, bs)) {
                    return Err(self.bad(format!(
                        "BAT entry {idx}: payload block {block} at {offset} overlaps the log, \
                         the BAT or the metadata region"
                    )));
                }
            }
            i += count;
        }
        Ok(())
    }

    fn bad(&self, reason: String) -> Error {
        Error::malformed(&self.path, reason)
    }

    /// BAT entry `idx` (below the entry count), through the page cache.
    fn bat_entry(&mut self, idx: u64) -> Result<u64> {
        let page = idx / BAT_PAGE_ENTRIES * BAT_PAGE_ENTRIES;
        if self.bat_page.as_ref().map(|(p, _)| *p) != Some(page) {
            let count = (self.bat_entries - page).min(BAT_PAGE_ENTRIES);
            let mut raw = vec![0u8; (count * 8) as usize];
            self.storage.read_at(self.bat.offset + page * 8, &mut raw)?;
            let entries = raw
                .chunks_exact(8)
                .map(|e| u64::from_le_bytes(e.try_into().unwrap_or([0; 8])))
                .collect();
            self.bat_page = Some((page, entries));
        }
        let entries = self.bat_page.as_ref().map(|(_, e)| e);
        entries
            .and_then(|e| e.get((idx - page) as usize).copied())
            .ok_or_else(|| self.bad(format!("BAT entry {idx} is beyond the BAT")))
    }

    /// The mapping of the unit containing `offset` (a payload block, or a
    /// run of sectors with the same bitmap bit), from `offset` to its end.
    fn map_unit(&mut self, offset: u64) -> Result<Extent> {
        let bs = u64::from(self.meta.block_size);
        let ratio = self.meta.chunk_ratio();
        let block = offset / bs;
        let in_block = offset % bs;
        let idx = block + block / ratio;
        if self.bat.offset.saturating_add(idx * 8) >= self.file_len {
            // The rest of the BAT lies past the file's end and reads as
            // zeros: every later block is NOT_PRESENT.
            return Ok(Extent {
                len: self.size().saturating_sub(offset).max(1),
                mapping: Mapping::Unallocated,
            });
        }
        let entry = self.bat_entry(idx)?;
        let host = (entry & BAT_OFFSET_MASK) + in_block;
        let to_end = bs - in_block;
        let mapping = match entry & BAT_STATE_MASK {
            PAYLOAD_BLOCK_FULLY_PRESENT => Mapping::Data { host },
            PAYLOAD_BLOCK_NOT_PRESENT => Mapping::Unallocated,
            PAYLOAD_BLOCK_UNDEFINED
            | PAYLOAD_BLOCK_ZERO
            | PAYLOAD_BLOCK_UNMAPPED
            | PAYLOAD_BLOCK_UNMAPPED_V095 => Mapping::Zero { host: None },
            PAYLOAD_BLOCK_PARTIALLY_PRESENT if self.meta.has_parent => {
                let (present, len) = self.bitmap_run(block, idx, in_block)?;
                return Ok(Extent {
                    len,
                    mapping: if present {
                        Mapping::Data { host }
                    } else {
                        Mapping::Unallocated
                    },
                });
            }
            state => {
                return Err(self.bad(format!(
                    "BAT entry {idx} (payload block {block}) has state {state}, which is not \
                     valid for a {} image",
                    if self.meta.has_parent {
                        "differencing"
                    } else {
                        "fixed or dynamic"
                    }
                )))
            }
        };
        Ok(Extent {
            len: to_end,
            mapping,
        })
    }

    /// For a partially present payload block: whether the sector at
    /// `in_block` is present in this file, and how many bytes from there
    /// (to the block's end) share that answer.
    fn bitmap_run(&mut self, block: u64, idx: u64, in_block: u64) -> Result<(bool, u64)> {
        let ratio = self.meta.chunk_ratio();
        let lss = u64::from(self.meta.logical_sector_size);
        let bs = u64::from(self.meta.block_size);
        if self.bitmap.as_ref().map(|(i, _)| *i) != Some(idx) {
            let chunk = block / ratio;
            let sb_idx = chunk * (ratio + 1) + ratio;
            let sb = if sb_idx < self.bat_entries {
                self.bat_entry(sb_idx)?
            } else {
                0
            };
            if sb & BAT_STATE_MASK != SB_BLOCK_PRESENT {
                return Err(self.bad(format!(
                    "payload block {block} is partially present but its chunk's sector bitmap \
                     block (BAT entry {sb_idx}) is not present"
                )));
            }
            // This block's bits: sectors_per_block bits, byte aligned.
            let spb = bs / lss;
            let at = (sb & BAT_OFFSET_MASK) + (block % ratio) * spb / 8;
            let mut bits = vec![0u8; (spb / 8) as usize];
            self.storage.read_at(at, &mut bits)?;
            self.bitmap = Some((idx, bits));
        }
        let bits = self
            .bitmap
            .as_ref()
            .map(|(_, b)| b.as_slice())
            .unwrap_or(&[]);
        let bit = |s: u64| {
            bits.get((s / 8) as usize)
                .is_some_and(|b| b >> (s % 8) & 1 != 0)
        };
        let first = in_block / lss;
        let present = bit(first);
        let mut s = first + 1;
        let spb = bs / lss;
        while s < spb && bit(s) == present {
            s += 1;
        }
        Ok((present, s * lss - in_block))
    }
}

/// The parent a differencing image's locator names: `relative_path` with
/// Windows separators turned into `/` and a leading `./` dropped. The
/// absolute and volume paths are Windows paths qfault cannot follow.
fn parent_ref(path: &Path, locator: &[(String, String)]) -> Result<BackingRef> {
    let get = |key: &str| {
        locator
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let Some(rel) = get("relative_path") else {
        let other = get("absolute_win32_path").or_else(|| get("volume_path"));
        return Err(Error::unsupported(
            path,
            match other {
                Some(p) => format!(
                    "the differencing image names its parent only by the Windows path '{}' \
                     (no relative_path); convert it with `qemu-img convert` on a host that \
                     sees the parent, or rebase it",
                    p.escape_debug()
                ),
                None => "the differencing image's parent locator has no path".into(),
            },
        ));
    };
    let mut name = rel.replace('\\', "/");
    while let Some(rest) = name.strip_prefix("./") {
        name = rest.to_string();
    }
    if name.is_empty() {
        return Err(Error::malformed(
            path,
            "the parent locator's relative_path is empty",
        ));
    }
    Ok(BackingRef {
        name,
        format: Some(Format::Vhdx.name().to_string()),
    })
}

impl Driver for VhdxImage {
    fn format(&self) -> Format {
        Format::Vhdx
    }

    fn size(&self) -> u64 {
        self.meta.virtual_disk_size / crate::image::raw::SECTOR * crate::image::raw::SECTOR
    }

    fn map(&mut self, offset: u64, max_len: u64) -> Result<Extent> {
        let size = self.size();
        if offset >= size || max_len == 0 {
            return Err(self.bad(format!("map at {offset} beyond the disk ({size} bytes)")));
        }
        let first = self.map_unit(offset)?;
        let mut ext = Extent {
            len: first.len.min(max_len),
            mapping: first.mapping,
        };
        while ext.len < max_len && offset + ext.len < size {
            let next = self.map_unit(offset + ext.len)?;
            let joins = match (ext.mapping, next.mapping) {
                (Mapping::Data { host: a }, Mapping::Data { host: b }) => a + ext.len == b,
                (Mapping::Zero { .. }, Mapping::Zero { .. })
                | (Mapping::Unallocated, Mapping::Unallocated) => true,
                _ => false,
            };
            if !joins {
                break;
            }
            ext.len = ext.len.saturating_add(next.len).min(max_len);
        }
        ext.len = ext.len.min(size - offset);
        Ok(ext)
    }

    fn read_mapped(&mut self, mapping: Mapping, _guest: u64, buf: &mut [u8]) -> Result<()> {
        match mapping {
            Mapping::Data { host } => self.storage.read_at(host, buf),
            _ => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn info(&self) -> LayerInfo {
        LayerInfo {
            path: self.path.clone(),
            format: Format::Vhdx,
            virtual_size: self.size(),
            file_size: self.file_len,
            cluster_size: Some(u64::from(self.meta.block_size)),
            version: None,
            compression_type: None,
            extended_l2: false,
            snapshots: 0,
            backing_file: self.parent.as_ref().map(|p| p.name.clone()),
            backing_format: self.parent.as_ref().and_then(|p| p.format.clone()),
        }
    }

    fn backing(&self) -> Option<BackingRef> {
        self.parent.clone()
    }
}

//! A sparse extent's grain lookup: grain directory, grain tables, zeroed
//! grains, and compressed grains with their markers.
//!
//! Spec: VMware "Virtual Disk Format 5.0", "Grain Directories and Grain
//! Tables" and "Stream-Optimized Compressed Sparse Extents". A guest sector
//! of the extent is found through its grain directory entry (the sector of
//! a grain table, 0 = none) and its grain table entry (the sector of the
//! grain, 0 = none, 1 = zeroed when the header allows zeroed grains). A
//! compressed grain's entry points at its marker: the grain's LBA (u64),
//! the compressed size (u32), then a zlib stream of one grain.

use super::header::{SparseHeader, GRAIN_MARKER_LEN, GTE_ZEROED, SECTOR};
use crate::error::{Error, Result};
use crate::image::qcow2::compressed::CompressedDescriptor;
use crate::image::qcow2::Mapping;
use crate::image::storage::Storage;
use std::collections::HashMap;
use std::rc::Rc;

/// Grain tables kept in memory per extent (a hosted grain table is 2 KiB,
/// an ESX Server one 16 KiB).
const GT_CACHE_TABLES: usize = 64;
/// Largest compressed grain qfault inflates (a grain must fit in memory
/// twice; VMware writes 64 KiB grains). Larger ones are refused.
pub const MAX_COMPRESSED_GRAIN: u64 = 2 << 20;

/// One sparse extent file, read-only.
#[derive(Debug)]
pub struct SparseExtent {
    storage: Box<dyn Storage>,
    header: SparseHeader,
    file_len: u64,
    gd: Vec<u32>,
    gt_cache: HashMap<u64, Rc<[u32]>>,
    /// The last inflated grain: its file offset and bytes.
    inflated: Option<(u64, Vec<u8>)>,
}

/// What backs a run of bytes in one extent, relative to the extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Bytes (at least 1).
    pub len: u64,
    /// What backs them; `Data`'s host is the offset in the extent file.
    pub mapping: Mapping,
}

impl SparseExtent {
    /// Loads the grain directory of the extent in `storage` described by `header`.
    pub fn open(storage: Box<dyn Storage>, header: SparseHeader) -> Result<Self> {
        let path = storage.path().to_path_buf();
        let file_len = storage.len();
        if header.compressed() && header.grain_bytes() > MAX_COMPRESSED_GRAIN {
            return Err(Error::unsupported(
                &path,
                format!(
                    "compressed grains of {} bytes (qfault inflates grains of up to {MAX_COMPRESSED_GRAIN} bytes)",
                    header.grain_bytes()
                ),
            ));
        }
        let gd_bytes = header.gd_entries * 4;
        if header
            .gd_offset
            .checked_add(gd_bytes)
            .is_none_or(|end| end > file_len)
        {
            return Err(Error::malformed(
                &path,
                format!(
                    "the grain directory ({} entries at byte 0x{:x}) lies past the end of the {file_len}-byte file",
                    header.gd_entries, header.gd_offset
                ),
            ));
        }
        // Bounded by the file's length just above.
        let mut raw = vec![0u8; gd_bytes as usize];
        storage.read_at(header.gd_offset, &mut raw)?;
        let gd = le_words(&raw);
        Ok(SparseExtent {
            storage,
            header,
            file_len,
            gd,
            gt_cache: HashMap::new(),
            inflated: None,
        })
    }

    /// The header.
    pub fn header(&self) -> &SparseHeader {
        &self.header
    }

    /// The extent file.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// What backs the extent's bytes from `offset` (below its capacity): a
    /// run to the end of that grain and of the following grains of its
    /// grain table read the same way, or to the end of the grain table's
    /// span when it has none. A compressed grain is a run of its own.
    pub fn map_grain(&mut self, offset: u64) -> Result<Run> {
        let path = self.storage.path().to_path_buf();
        let grain = self.header.grain_bytes();
        let gt_span = grain * u64::from(self.header.gtes_per_gt);
        let gd_index = offset / gt_span;
        let in_grain = offset % grain;
        let gt_sector = *self.gd.get(gd_index as usize).ok_or_else(|| {
            Error::malformed(
                &path,
                format!("extent offset {offset} is beyond the grain directory"),
            )
        })?;
        if gt_sector == 0 {
            return Ok(Run {
                len: gt_span - offset % gt_span,
                mapping: Mapping::Unallocated,
            });
        }
        let table = self.grain_table(u64::from(gt_sector), gd_index)?;
        let index = ((offset / grain) % u64::from(self.header.gtes_per_gt)) as usize;
        let gte = table[index];
        let zero_grains = self.header.zero_grains();
        let compressed = self.header.compressed();
        // Following entries of the same table with the same meaning (and,
        // for data, the next grains of the file) join the run, so a long
        // run costs one step per table, not one per grain.
        let host_of = |e: u32| u64::from(e) * SECTOR;
        let joins = |n: usize| -> bool {
            let e = table[index + n];
            match gte {
                0 => e == 0,
                GTE_ZEROED if zero_grains => e == GTE_ZEROED,
                _ => {
                    !compressed
                        && u64::from(e) == u64::from(gte) + n as u64 * self.header.grain_sectors
                        && host_of(e) < self.file_len
                }
            }
        };
        let mut n = 1;
        while index + n < table.len() && joins(n) {
            n += 1;
        }
        let len = n as u64 * grain - in_grain;
        let mapping = if gte == 0 {
            Mapping::Unallocated
        } else if gte == GTE_ZEROED && zero_grains {
            Mapping::Zero { host: None }
        } else {
            let host = host_of(gte);
            if host >= self.file_len {
                return Err(Error::malformed(
                    &path,
                    format!(
                        "the grain of extent offset {} is at byte 0x{host:x}, past the end of the {}-byte file",
                        offset - in_grain,
                        self.file_len
                    ),
                ));
            }
            if compressed {
                Mapping::Compressed {
                    descriptor: CompressedDescriptor {
                        offset: host,
                        len: 2 * grain,
                    },
                    in_cluster: in_grain,
                }
            } else {
                Mapping::Data {
                    host: host + in_grain,
                }
            }
        };
        Ok(Run { len, mapping })
    }

    /// The grain table at sector `gt_sector`, from the cache or the file.
    fn grain_table(&mut self, gt_sector: u64, gd_index: u64) -> Result<Rc<[u32]>> {
        if let Some(t) = self.gt_cache.get(&gt_sector) {
            return Ok(Rc::clone(t));
        }
        let at = gt_sector * SECTOR;
        let bytes = self.header.gt_bytes();
        if at.checked_add(bytes).is_none_or(|end| end > self.file_len) {
            return Err(Error::malformed(
                self.storage.path(),
                format!(
                    "grain table {gd_index} at byte 0x{at:x} lies past the end of the {}-byte file",
                    self.file_len
                ),
            ));
        }
        let mut raw = vec![0u8; bytes as usize];
        self.storage.read_at(at, &mut raw)?;
        let table: Rc<[u32]> = le_words(&raw).into();
        if self.gt_cache.len() >= GT_CACHE_TABLES {
            self.gt_cache.clear();
        }
        self.gt_cache.insert(gt_sector, Rc::clone(&table));
        Ok(table)
    }

    /// Reads `buf.len()` bytes from `in_grain` of the compressed grain at
    /// `host` (its marker, or the stream itself without markers);
    /// `grain_start` is the grain's extent offset, for messages.
    pub fn read_compressed(
        &mut self,
        host: u64,
        in_grain: u64,
        grain_start: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let cached = matches!(&self.inflated, Some((at, _)) if *at == host);
        if !cached {
            let out = self.inflate(host, grain_start)?;
            self.inflated = Some((host, out));
        }
        let (_, data) = self.inflated.as_ref().expect("just inflated");
        let start = in_grain as usize;
        let end = start + buf.len();
        if end > data.len() {
            return Err(Error::malformed(
                self.storage.path(),
                format!(
                    "the compressed grain of extent offset {grain_start} inflates to {} bytes; the read needs {end}",
                    data.len()
                ),
            ));
        }
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    /// Inflates the grain at `host`.
    fn inflate(&self, host: u64, grain_start: u64) -> Result<Vec<u8>> {
        let path = self.storage.path();
        let grain = self.header.grain_bytes();
        let bad = |why: String| {
            Error::malformed(
                path,
                format!(
                    "the compressed grain of extent offset {grain_start} at byte 0x{host:x}: {why}"
                ),
            )
        };
        let (data_at, data_len) = if self.header.markers() {
            let mut marker = [0u8; GRAIN_MARKER_LEN as usize];
            self.storage.read_at(host, &mut marker)?;
            let size = u64::from(u32::from_le_bytes(
                marker[8..12].try_into().expect("4 bytes"),
            ));
            // QEMU reads two grains from the marker, so the data may not
            // run past them.
            if size == 0 || size > 2 * grain - GRAIN_MARKER_LEN {
                return Err(bad(format!(
                    "its marker claims {size} compressed bytes (1 to {} for {grain}-byte grains)",
                    2 * grain - GRAIN_MARKER_LEN
                )));
            }
            (host + GRAIN_MARKER_LEN, size)
        } else {
            (host, grain)
        };
        let avail = self.file_len.saturating_sub(data_at);
        if self.header.markers() && data_len > avail {
            return Err(bad(format!(
                "its marker claims {data_len} compressed bytes and the file ends {avail} bytes after it"
            )));
        }
        let mut input = vec![0u8; data_len.min(avail) as usize];
        self.storage.read_at(data_at, &mut input)?;
        let mut out = vec![0u8; grain as usize + 1];
        let mut z = flate2::Decompress::new(true);
        let status = z
            .decompress(&input, &mut out, flate2::FlushDecompress::Finish)
            .map_err(|e| bad(format!("the zlib stream is invalid: {e}")))?;
        let produced = z.total_out() as usize;
        if produced > grain as usize {
            return Err(bad(format!(
                "it inflates to more than one grain ({grain} bytes)"
            )));
        }
        if status != flate2::Status::StreamEnd {
            return Err(bad("the zlib stream is truncated".into()));
        }
        out.truncate(produced);
        Ok(out)
    }
}

/// Little-endian 32-bit table entries decoded from raw bytes.
fn le_words(raw: &[u8]) -> Vec<u32> {
    raw.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("chunks_exact gives 4 bytes")))
        .collect()
}

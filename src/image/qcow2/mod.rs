//! qcow2 images: guest offsets translated through the L1 and L2 tables.
//!
//! A [`Qcow2Image`] answers one question, [`Qcow2Image::map`]: what backs the
//! guest bytes at an offset (host data, a compressed cluster, zeros, or
//! nothing, meaning the backing image). The chain in [`crate::image::Image`]
//! turns those answers into reads. Spec: `docs/interop/qcow2.txt`, "Cluster
//! mapping" and "Extended L2 Entries".

pub mod compressed;
pub mod header;
pub mod l2_cache;

use crate::error::{Error, Result};
use crate::image::raw::SECTOR;
use crate::image::storage::Storage;
use compressed::CompressedDescriptor;
pub use header::{CompressionType, Header};
use l2_cache::L2Cache;
use std::path::{Path, PathBuf};

/// Bits 9-55 of an L1 or standard L2 entry: a host offset (spec: "L1 table entry").
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: the cluster is compressed.
pub const L2_COMPRESSED: u64 = 1 << 62;
/// L1/L2 entry bit 63: refcount is exactly one ("copied").
pub const ENTRY_COPIED: u64 = 1 << 63;
/// Standard cluster descriptor bit 0: the cluster reads as zeros (v3 only).
pub const L2_ZERO: u64 = 1;
/// Sub-clusters per cluster with extended L2 entries.
pub const SUBCLUSTERS: u64 = 32;

/// What backs a run of guest bytes in one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Stored uncompressed at this host file offset.
    Data {
        /// File offset of the run's first byte.
        host: u64,
    },
    /// Inside a compressed cluster.
    Compressed {
        /// Where the compressed stream lies.
        descriptor: CompressedDescriptor,
        /// Offset of the run's first byte inside the (inflated) cluster.
        in_cluster: u64,
    },
    /// Reads as zeros without consulting the backing image.
    Zero {
        /// The host offset of the run's first byte when the zero cluster
        /// keeps its allocation (QEMU's `ZERO_ALLOC`; qemu-img map prints
        /// it); `None` for a plain zero cluster. For a raw file's hole, the
        /// offset in the file.
        host: Option<u64>,
    },
    /// Not allocated here: read from the backing image.
    Unallocated,
}

/// A run of guest bytes with one [`Mapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Length in bytes (never 0).
    pub len: u64,
    /// What backs it.
    pub mapping: Mapping,
}

/// An open qcow2 image (read-only).
#[derive(Debug)]
pub struct Qcow2Image {
    storage: Box<dyn Storage>,
    path: PathBuf,
    file_len: u64,
    header: Header,
    l1: Vec<u64>,
    l2_cache: L2Cache,
    metadata: Vec<(u64, u64, &'static str)>,
    /// The clusters inflated last, by descriptor offset, most recent last
    /// (at most [`INFLATED_BYTES`] of them, and at least one).
    inflated: Vec<(u64, Vec<u8>)>,
}

/// Bytes of inflated clusters an image keeps: planning and checking read
/// the same few metadata clusters (an NTFS boot sector, `$MFT`, the root
/// index) again and again, and each would otherwise be read and inflated
/// every time.
pub const INFLATED_BYTES: usize = 256 << 10;

impl Qcow2Image {
    /// Parses the header of the image in `storage` and loads the active L1 table.
    pub fn open(storage: Box<dyn Storage>) -> Result<Self> {
        let path = storage.path().to_path_buf();
        let path = path.as_path();
        let file_len = storage.len();
        let probe_len = file_len.min(4096) as usize;
        let mut prefix = vec![0u8; probe_len];
        storage.read_at(0, &mut prefix)?;
        let want = Header::needed_len(&prefix).unwrap_or(probe_len);
        let mut first = if want > probe_len {
            let mut b = vec![0u8; (want as u64).min(file_len) as usize];
            storage.read_at(0, &mut b)?;
            b
        } else {
            prefix
        };
        first.truncate(want.min(first.len()));
        let header = Header::parse(path, &first, file_len)?;

        // check_tables() bounded l1_size by QEMU's 32 MiB limit and the file size.
        let mut raw_l1 = vec![0u8; header.l1_size as usize * 8];
        storage.read_at(header.l1_table_offset, &mut raw_l1)?;
        let l1 = be_words(&raw_l1);
        Ok(Qcow2Image {
            storage,
            path: path.to_path_buf(),
            file_len,
            l2_cache: L2Cache::new(header.cluster_size(), l2_cache::L2_CACHE_BYTES),
            metadata: header.metadata_ranges(),
            header,
            l1,
            inflated: Vec::new(),
        })
    }

    /// Limits this image's L2 cache to `budget` bytes (at least one slice).
    pub fn set_l2_cache_budget(&mut self, budget: u64) {
        let cs = self.header.cluster_size();
        self.l2_cache.set_budget(cs, budget);
    }

    /// Bytes of the active L1 table held in memory.
    pub fn l1_bytes(&self) -> u64 {
        self.l1.len() as u64 * 8
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The image file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Virtual disk size in bytes: the header's size rounded down to whole
    /// 512-byte sectors, as QEMU's block layer sees it.
    pub fn size(&self) -> u64 {
        self.header.size / SECTOR * SECTOR
    }

    /// What backs the guest bytes at `offset`, for at most `max_len` bytes.
    ///
    /// Adjacent units with the same kind of mapping (and, for data, contiguous
    /// host offsets) are merged, so a large allocated run is one extent.
    /// `offset` must be below the virtual size and `max_len` non-zero.
    pub fn map(&mut self, offset: u64, max_len: u64) -> Result<Extent> {
        let first = self.map_unit(offset)?;
        let mut ext = Extent {
            len: first.len.min(max_len),
            mapping: first.mapping,
        };
        let size = self.size();
        if matches!(ext.mapping, Mapping::Compressed { .. }) {
            ext.len = ext.len.min(size - offset);
            return Ok(ext);
        }
        while ext.len < max_len && offset + ext.len < size {
            // Runs inside one L2 slice, scanned in place: one call per slice,
            // not per cluster (a mostly empty L2 table is 8192 entries).
            let scanned = self.scan_run(offset, &mut ext, max_len);
            if scanned && (ext.len >= max_len || offset + ext.len >= size) {
                break;
            }
            let next = self.map_unit(offset + ext.len)?;
            let joins = match (ext.mapping, next.mapping) {
                (Mapping::Data { host: a }, Mapping::Data { host: b }) => a + ext.len == b,
                (Mapping::Zero { host: None }, Mapping::Zero { host: None })
                | (Mapping::Unallocated, Mapping::Unallocated) => true,
                (Mapping::Zero { host: Some(a) }, Mapping::Zero { host: Some(b) }) => {
                    a + ext.len == b
                }
                _ => false,
            };
            if !joins {
                break;
            }
            ext.len = (ext.len + next.len).min(max_len);
        }
        ext.len = ext.len.min(size - offset);
        Ok(ext)
    }

    /// Extends `ext` (the run from `offset`, ending on a cluster boundary)
    /// over the following clusters of the same cached L2 slice whose
    /// standard entries join it, exactly as [`Self::map_unit`] would answer
    /// them, without the per-cluster lookups. Stops at the first entry it
    /// does not take (a different kind, an error to report, the slice's
    /// end), leaving that one to `map_unit`. Returns whether it took any.
    fn scan_run(&mut self, offset: u64, ext: &mut Extent, max_len: u64) -> bool {
        let bits = self.header.cluster_bits;
        let cs = 1u64 << bits;
        if self.header.extended_l2() {
            return false;
        }
        let at = offset + ext.len;
        if at & (cs - 1) != 0 {
            return false;
        }
        let l2_entries = cs / 8;
        let cluster = at >> bits;
        let l1_index = cluster / l2_entries;
        let l2_index = cluster % l2_entries;
        let Some(&l1_entry) = self.l1.get(l1_index as usize) else {
            return false;
        };
        let l2_offset = l1_entry & OFFSET_MASK;
        if l2_offset == 0 {
            return false;
        }
        let slice_words = l2_cache::slice_bytes(cs) / 8;
        let slice_offset = l2_offset + l2_index / slice_words * slice_words * 8;
        let first = (l2_index % slice_words) as usize;
        let v3 = self.header.version >= 3;
        let Some(slice) = self.l2_cache.slice(slice_offset) else {
            return false;
        };
        let want = max_len.min(self.header.size / SECTOR * SECTOR - offset);
        let mut taken = 0usize;
        for &entry in &slice[first..] {
            if ext.len >= want {
                break;
            }
            if entry & L2_COMPRESSED != 0 {
                break;
            }
            let host = entry & OFFSET_MASK;
            let zero = entry & L2_ZERO != 0;
            let joins = match ext.mapping {
                Mapping::Unallocated => !zero && host == 0 && entry & ENTRY_COPIED == 0,
                Mapping::Zero { host: None } => v3 && zero && host == 0,
                Mapping::Zero { host: Some(a) } => v3 && zero && host != 0 && a + ext.len == host,
                Mapping::Data { host: a } => {
                    !zero
                        && host != 0
                        && a + ext.len == host
                        && host % cs == 0
                        && host < self.file_len
                        && !self.metadata.iter().any(|&(m_start, m_len, _)| {
                            host < m_start.saturating_add(m_len)
                                && m_start < host.saturating_add(cs)
                        })
                }
                Mapping::Compressed { .. } => false,
            };
            if !joins {
                break;
            }
            ext.len = (ext.len + cs).min(max_len);
            taken += 1;
        }
        taken > 0
    }

    /// The mapping of the unit (cluster, or sub-cluster with extended L2
    /// entries) containing `offset`, from `offset` to the unit's end.
    fn map_unit(&mut self, offset: u64) -> Result<Extent> {
        let bits = self.header.cluster_bits;
        let cs = 1u64 << bits;
        let ext_l2 = self.header.extended_l2();
        let words_per_entry: u64 = if ext_l2 { 2 } else { 1 };
        let l2_entries = cs / 8 / words_per_entry;
        let cluster = offset >> bits;
        let in_cluster = offset & (cs - 1);
        let l1_index = cluster / l2_entries;
        let l2_index = cluster % l2_entries;
        let to_cluster_end = cs - in_cluster;

        let l1_entry = *self.l1.get(l1_index as usize).ok_or_else(|| {
            Error::malformed(
                &self.path,
                format!("guest offset {offset} is beyond the L1 table"),
            )
        })?;
        let l2_offset = l1_entry & OFFSET_MASK;
        if l2_offset == 0 {
            // No L2 table: the whole range it would map is unallocated.
            return Ok(Extent {
                len: (l2_entries - l2_index) * cs - in_cluster,
                mapping: Mapping::Unallocated,
            });
        }
        let (entry, bitmap) = self.l2_entry(l2_offset, l1_index, l2_index * words_per_entry)?;

        if entry & L2_COMPRESSED != 0 {
            let descriptor = CompressedDescriptor::decode(entry, bits);
            if descriptor.offset >= self.file_len || descriptor.offset < cs {
                return Err(Error::malformed(
                    &self.path,
                    format!(
                        "compressed cluster descriptor for guest offset {} points to 0x{:x}, outside the data area of the {}-byte file",
                        offset - in_cluster,
                        descriptor.offset,
                        self.file_len
                    ),
                ));
            }
            return Ok(Extent {
                len: to_cluster_end,
                mapping: Mapping::Compressed {
                    descriptor,
                    in_cluster,
                },
            });
        }

        let host = entry & OFFSET_MASK;
        if ext_l2 {
            let sc_size = cs / SUBCLUSTERS;
            let sc = in_cluster / sc_size;
            // The run of following sub-clusters in the same state, taken in
            // one answer: walking them one by one made long runs slow.
            let state = |i: u64| (bitmap >> i & 1, bitmap >> (32 + i) & 1);
            let mut end = sc + 1;
            while end < SUBCLUSTERS && state(end) == state(sc) {
                end += 1;
            }
            let len = end * sc_size - in_cluster;
            let allocated = bitmap & (1 << sc) != 0;
            let zero = bitmap & (1 << (32 + sc)) != 0;
            let mapping = match (allocated, zero) {
                (true, true) => {
                    return Err(Error::malformed(
                        &self.path,
                        format!(
                            "sub-cluster {sc} of guest offset {} is both allocated and zero",
                            offset - in_cluster
                        ),
                    ))
                }
                (true, false) => Mapping::Data {
                    host: self.check_data(host, offset - in_cluster)? + in_cluster,
                },
                (false, true) => Mapping::Zero {
                    host: (host != 0).then_some(host + in_cluster),
                },
                (false, false) => Mapping::Unallocated,
            };
            return Ok(Extent { len, mapping });
        }

        if self.header.version < 3 && entry & L2_ZERO != 0 {
            // QEMU refuses these too ("Zero cluster entry found in pre-v3 image").
            return Err(Error::malformed(
                &self.path,
                format!(
                    "L2 entry for guest offset {} has the zero flag, which version 2 images do not have",
                    offset - in_cluster
                ),
            ));
        }
        let mapping = if entry & L2_ZERO != 0 {
            Mapping::Zero {
                host: (host != 0).then_some(host + in_cluster),
            }
        } else if host == 0 {
            if entry & ENTRY_COPIED != 0 {
                return Err(Error::malformed(
                    &self.path,
                    format!(
                        "L2 entry for guest offset {} maps host offset 0",
                        offset - in_cluster
                    ),
                ));
            }
            Mapping::Unallocated
        } else {
            Mapping::Data {
                host: self.check_data(host, offset - in_cluster)? + in_cluster,
            }
        };
        Ok(Extent {
            len: to_cluster_end,
            mapping,
        })
    }

    /// Validates a data cluster's host offset and returns it.
    fn check_data(&self, host: u64, guest: u64) -> Result<u64> {
        let cs = self.header.cluster_size();
        if host == 0 {
            return Err(Error::malformed(
                &self.path,
                format!("allocated cluster at guest offset {guest} has no host offset"),
            ));
        }
        if host % cs != 0 {
            return Err(Error::malformed(
                &self.path,
                format!("data cluster for guest offset {guest} at host offset 0x{host:x} is not cluster-aligned"),
            ));
        }
        if host >= self.file_len {
            return Err(Error::malformed(
                &self.path,
                format!(
                    "data cluster for guest offset {guest} at host offset 0x{host:x} lies past the end of the file ({} bytes)",
                    self.file_len
                ),
            ));
        }
        self.check_no_overlap(host, cs, || {
            format!("data cluster for guest offset {guest}")
        })?;
        Ok(host)
    }

    /// Refuses a cluster that overlaps the header, the L1 table or the
    /// refcount table; `what` names it (made only for the error).
    fn check_no_overlap(&self, start: u64, len: u64, what: impl Fn() -> String) -> Result<()> {
        for &(m_start, m_len, name) in &self.metadata {
            if start < m_start.saturating_add(m_len) && m_start < start.saturating_add(len) {
                return Err(Error::malformed(
                    &self.path,
                    format!("{} at host offset 0x{start:x} points into {name}", what()),
                ));
            }
        }
        Ok(())
    }

    /// Words `word` and `word + 1` of the L2 table at `l2_offset` (an entry,
    /// and with extended L2 entries its sub-cluster bitmap): the slice
    /// holding them is taken from the cache or read (only that slice).
    fn l2_entry(&mut self, l2_offset: u64, l1_index: u64, word: u64) -> Result<(u64, u64)> {
        let cs = self.header.cluster_size();
        let slice_bytes = l2_cache::slice_bytes(cs);
        let slice_words = slice_bytes / 8;
        let slice_offset = l2_offset + word / slice_words * slice_bytes;
        let at = (word % slice_words) as usize;
        if let Some(found) = self.l2_cache.get(slice_offset, at) {
            return Ok(found);
        }
        let what = || format!("L2 table of L1 entry {l1_index}");
        if l2_offset % cs != 0 {
            return Err(Error::malformed(
                &self.path,
                format!("{} at 0x{l2_offset:x} is not cluster-aligned", what()),
            ));
        }
        if !header::fits(l2_offset, cs, self.file_len) {
            return Err(Error::malformed(
                &self.path,
                format!(
                    "{} at 0x{l2_offset:x} lies past the end of the file ({} bytes)",
                    what(),
                    self.file_len
                ),
            ));
        }
        self.check_no_overlap(l2_offset, cs, what)?;
        let mut raw = vec![0u8; slice_bytes as usize];
        self.storage.read_at(slice_offset, &mut raw)?;
        let slice = be_words(&raw).into_boxed_slice();
        Ok(self.l2_cache.insert(slice_offset, slice, at))
    }

    /// The image file, when it is one (not memory): [`Mapping::Data`] and
    /// compressed descriptor offsets are offsets in it.
    pub fn file(&self) -> Option<&std::fs::File> {
        self.storage.file()
    }

    /// Reads stored data at `host` (a [`Mapping::Data`] offset).
    ///
    /// Bytes past the end of the file read as zeros, as QEMU's file driver does.
    pub fn read_data(&self, host: u64, buf: &mut [u8]) -> Result<()> {
        self.storage.read_at(host, buf)
    }

    /// Reads from a compressed cluster: `buf.len()` bytes from `in_cluster`.
    pub fn read_compressed(
        &mut self,
        descriptor: CompressedDescriptor,
        in_cluster: u64,
        guest_offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let cs = self.header.cluster_size() as usize;
        match self
            .inflated
            .iter()
            .position(|(off, _)| *off == descriptor.offset)
        {
            Some(i) => {
                let hit = self.inflated.remove(i);
                self.inflated.push(hit);
            }
            None => {
                let avail = self.file_len - descriptor.offset;
                let mut input = vec![0u8; descriptor.len.min(avail) as usize];
                self.storage.read_at(descriptor.offset, &mut input)?;
                let keep = (INFLATED_BYTES / cs).max(1);
                let mut out = if self.inflated.len() >= keep {
                    self.inflated.remove(0).1
                } else {
                    Vec::new()
                };
                compressed::decompress(
                    &self.path,
                    self.header.compression_type,
                    &input,
                    cs,
                    &mut out,
                    guest_offset - in_cluster,
                )?;
                self.inflated.push((descriptor.offset, out));
            }
        }
        let (_, data) = self.inflated.last().expect("just inflated");
        let start = in_cluster as usize;
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }
}

/// Big-endian 64-bit table entries (L1, L2) decoded from raw bytes.
fn be_words(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("chunks_exact gives 8 bytes")))
        .collect()
}

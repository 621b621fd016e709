//! Where each structure of a new overlay lies in the file, and writing them.
//!
//! Clusters, in file order: the header (0), the refcount table, the L1 table,
//! one L2 table per L1 entry that a touched cluster needs, the data clusters
//! in guest order, then the refcount blocks. Sizes are fixed before the first
//! data cluster is written, except the count of data clusters (touched
//! clusters that end up all zeros store none), which is why the refcount
//! blocks come last. The refcount table is sized for the largest count.
//!
//! A standalone image ([`OverlayLayout::standalone`]: no backing file, the
//! whole guest) differs in three ways: clusters that read as zeros are left
//! unallocated (nothing below them can show through); each L2 table is
//! written in line, after the data clusters it maps, only once one of them
//! stores data (so the file depends on the guest's bytes alone, not on which
//! ranges the base happened to allocate); and data clusters may be stored
//! compressed (raw deflate or zstd), packed byte by byte, each host cluster
//! counted once per compressed cluster that touches it.
//! Spec: `docs/interop/qcow2.txt`, "Header", "Host cluster management",
//! "Cluster mapping", "Compressed Clusters Descriptor".

use crate::error::{Error, Result};
use crate::image::qcow2::compressed::COMPRESSED_SECTOR;
use crate::image::qcow2::header::{
    CompressionType, EXT_BACKING_FORMAT, INCOMPAT_COMPRESSION, MAGIC,
};
use crate::image::qcow2::{ENTRY_COPIED, L2_COMPRESSED, L2_ZERO};
use crate::output::write_nonzero;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The header length qfault writes: the v3 fields through compression_type, padded to 8.
const HEADER_LEN: usize = 112;
/// refcount_order 4: 16-bit refcounts, QEMU's default.
const REFCOUNT_ORDER: u32 = 4;
/// Bytes per refcount entry at [`REFCOUNT_ORDER`].
const REFCOUNT_BYTES: u64 = 2;
/// The largest refcount a [`REFCOUNT_ORDER`] entry holds.
const MAX_REFCOUNT: u16 = u16::MAX;
/// Header offset of `incompatible_features` (spec: "Header", bytes 72-79).
const INCOMPATIBLE_FEATURES_AT: usize = 72;
/// Header offset of `compression_type` (spec: "Header", byte 104).
const COMPRESSION_TYPE_AT: usize = 104;
/// `compression_type` value for zstd (spec: "1: zstd").
const COMPRESSION_TYPE_ZSTD: u8 = 1;

/// The content of one touched guest cluster.
#[derive(Debug, Clone, Copy)]
pub enum ClusterContent<'a> {
    /// Reads as zeros: the zero flag, no data.
    Zero,
    /// Stored data (exactly one cluster).
    Data(&'a [u8]),
}

/// Positional writes into the overlay's file, or, in compare mode, checks
/// that an existing file already holds exactly those bytes (so an identical
/// output is detected without writing a temporary file).
pub struct Writer<'f> {
    file: &'f File,
    path: PathBuf,
    compare: Option<Compare>,
}

/// Compare mode's state.
struct Compare {
    differs: bool,
    /// File ranges written so far; the rest of the file must read as zeros.
    covered: Vec<(u64, u64)>,
    /// The file's data extents, sorted: bytes outside them are holes and
    /// read as zeros without reading them.
    extents: Vec<(u64, u64)>,
}

/// Most data extents [`data_extents`] lists before giving up on holes (an
/// overlay has a handful).
const MAX_EXTENTS: usize = 4096;

/// The data extents of `file` (`SEEK_DATA`/`SEEK_HOLE`), sorted, or the
/// whole file where the filesystem cannot tell (every byte is then read).
fn data_extents(file: &File) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let whole = vec![(0, u64::MAX)];
    let fd = file.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: libc::off_t = 0;
    loop {
        // SAFETY: lseek on a descriptor `file` owns; no memory is passed.
        // Reads are positional (pread), so moving the offset is harmless.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ENXIO) => out, // no data at or past `pos`
                _ => whole,
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole <= data || out.len() >= MAX_EXTENTS {
            return whole;
        }
        out.push((data as u64, hole as u64));
        pos = hole;
    }
}

impl<'f> Writer<'f> {
    /// Writes into `file` (named `path` in errors).
    pub fn new(file: &'f File, path: &Path) -> Self {
        Writer {
            file,
            path: path.to_path_buf(),
            compare: None,
        }
    }

    /// Compares with `file` instead of writing: see [`Writer::differs`].
    pub fn comparing(file: &'f File, path: &Path) -> Self {
        Writer {
            compare: Some(Compare {
                differs: false,
                covered: Vec::new(),
                extents: data_extents(file),
            }),
            ..Writer::new(file, path)
        }
    }

    /// In compare mode: whether the file differs from what was written.
    pub fn differs(&self) -> bool {
        self.compare.as_ref().is_some_and(|c| c.differs)
    }

    /// Writes `data` at `offset`, leaving its all-zero 4 KiB blocks as holes.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let Some(c) = &mut self.compare else {
            return write_nonzero(self.file, &self.path, offset, data);
        };
        c.covered.push((offset, offset + data.len() as u64));
        if !c.differs && !holds(self.file, &self.path, &c.extents, offset, data)? {
            c.differs = true;
        }
        Ok(())
    }

    /// Sets the file's length (in compare mode: checks it, and that every
    /// byte not written reads as zero).
    fn set_len(&mut self, len: u64) -> Result<()> {
        let Some(c) = &mut self.compare else {
            return self.file.set_len(len).map_err(|e| Error::io(&self.path, e));
        };
        let actual = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, e))?
            .len();
        if actual != len {
            c.differs = true;
        }
        if c.differs {
            return Ok(());
        }
        c.covered.sort_unstable();
        let mut pos = 0;
        let mut gaps = Vec::new();
        for &(s, e) in &c.covered {
            if s > pos {
                gaps.push((pos, s));
            }
            pos = pos.max(e);
        }
        if pos < len {
            gaps.push((pos, len));
        }
        let zeros = vec![0u8; 1 << 16];
        for (mut s, e) in gaps {
            while s < e {
                let n = (e - s).min(zeros.len() as u64) as usize;
                if !holds(self.file, &self.path, &c.extents, s, &zeros[..n])? {
                    c.differs = true;
                    return Ok(());
                }
                s += n as u64;
            }
        }
        Ok(())
    }
}

/// Whether `file`, whose data extents are `extents`, holds exactly `data`
/// at `offset`: where the range lies in a hole, `data` must be zeros (a
/// hole past the end also passes: the file's length is checked on its
/// own); where it lies in data, the file is read and compared.
fn holds(
    file: &File,
    path: &Path,
    extents: &[(u64, u64)],
    offset: u64,
    data: &[u8],
) -> Result<bool> {
    let end = offset + data.len() as u64;
    let part = |from: u64, to: u64| &data[(from - offset) as usize..(to - offset) as usize];
    let mut pos = offset;
    // The first extent that ends past `offset`.
    let first = extents.partition_point(|&(_, e)| e <= offset);
    for &(s, e) in &extents[first..] {
        if s >= end {
            break;
        }
        let data_start = s.max(pos);
        if !crate::output::is_zero(part(pos, data_start)) {
            return Ok(false);
        }
        let data_end = e.min(end);
        if !file_holds(file, path, data_start, part(data_start, data_end))? {
            return Ok(false);
        }
        pos = data_end;
    }
    Ok(crate::output::is_zero(part(pos, end)))
}

/// Whether `file` holds exactly `data` at `offset` (false past its end).
fn file_holds(file: &File, path: &Path, offset: u64, data: &[u8]) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; data.len()];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(buf == data)
}

/// The plan of one overlay file, filled in as clusters are added.
#[derive(Debug)]
pub struct OverlayLayout {
    cs: u64,
    size: u64,
    header: Vec<u8>,
    l1_size: u64,
    rt_clusters: u64,
    l1_clusters: u64,
    /// The L1 indices that get an L2 table, sorted; the i-th table lies at
    /// cluster `1 + rt_clusters + l1_clusters + i`.
    l1_indices: Vec<u64>,
    /// The L2 table being filled: (position in `l1_indices`, entries).
    /// Clusters arrive in order, so each table is written once complete and
    /// only one is in memory.
    current: Option<(usize, Vec<u64>)>,
    /// Touched guest clusters in all (the worst case for data clusters).
    touched: u64,
    /// Clusters before the first data cluster.
    data_start: u64,
    data_clusters: u64,
    zero_clusters: u64,
    /// Data clusters stored compressed (standalone only).
    compressed_clusters: u64,
    /// The next free file byte in the data area (past `data_start`).
    cursor: u64,
    /// Refcount of each cluster from `data_start` on, up to `cursor`.
    refs: Vec<u16>,
    /// A standalone image: zeros unallocated, L2 tables in line, maybe
    /// compressed.
    standalone: bool,
    /// Compress data clusters with this (standalone only).
    compression: Option<CompressionType>,
    /// In-line L2 tables written so far (standalone): (L1 index, file offset).
    inline_l2: Vec<(u64, u64)>,
}

impl OverlayLayout {
    /// Plans an overlay of `size` guest bytes with `cs`-byte clusters whose
    /// touched guest clusters are the inclusive, sorted, disjoint ranges
    /// `touched`.
    pub fn new(
        size: u64,
        cs: u64,
        backing: &str,
        backing_format: &str,
        touched: &[(u64, u64)],
    ) -> Result<Self> {
        let mut layout = Self::plan(size, cs, touched, false, None)?;
        layout.header = layout.header_bytes(Some((backing, backing_format)))?;
        Ok(layout)
    }

    /// Plans a standalone image (no backing file) of `size` guest bytes
    /// with `cs`-byte clusters; `touched` (as for [`OverlayLayout::new`])
    /// holds every cluster that may store data. Clusters added as
    /// [`ClusterContent::Zero`] stay unallocated; data is compressed with
    /// `compression` where that saves space.
    pub fn standalone(
        size: u64,
        cs: u64,
        touched: &[(u64, u64)],
        compression: Option<CompressionType>,
    ) -> Result<Self> {
        let mut layout = Self::plan(size, cs, touched, true, compression)?;
        layout.header = layout.header_bytes(None)?;
        Ok(layout)
    }

    fn plan(
        size: u64,
        cs: u64,
        touched: &[(u64, u64)],
        standalone: bool,
        compression: Option<CompressionType>,
    ) -> Result<Self> {
        let l2_entries = cs / 8;
        let l1_size = size.div_ceil(cs).div_ceil(l2_entries);
        if l1_size * 8 > crate::image::qcow2::header::MAX_L1_BYTES {
            return Err(Error::Usage(format!(
                "a {size}-byte disk needs an L1 table larger than QEMU's 32 MiB limit at {cs}-byte clusters; choose a larger --cluster-size"
            )));
        }
        let l1_clusters = (l1_size * 8).div_ceil(cs);
        // At most l1_size distinct indices: bounded by the 32 MiB L1 limit.
        let mut l1_indices: Vec<u64> = Vec::new();
        for &(first, last) in touched {
            for i in first / l2_entries..=last / l2_entries {
                if l1_indices.last() != Some(&i) {
                    l1_indices.push(i);
                }
            }
        }
        let touched_count: u64 = touched.iter().map(|(a, b)| b - a + 1).sum();
        let header_and_tables = |rt: u64| 1 + rt + l1_clusters + l1_indices.len() as u64;
        // Size the refcount table for the worst case: every touched cluster stores data.
        let mut rt_clusters = 1;
        loop {
            let before_blocks = header_and_tables(rt_clusters) + touched_count;
            let blocks = refcount_blocks(before_blocks, cs);
            let need = (blocks * 8).div_ceil(cs);
            if need <= rt_clusters {
                break;
            }
            rt_clusters = need;
        }
        // A standalone image's L2 tables lie among the data clusters (the
        // count above already holds them).
        let data_start = if standalone {
            1 + rt_clusters + l1_clusters
        } else {
            header_and_tables(rt_clusters)
        };
        Ok(OverlayLayout {
            cs,
            size,
            header: Vec::new(),
            l1_size,
            rt_clusters,
            l1_clusters,
            data_start,
            l1_indices,
            current: None,
            touched: touched_count,
            data_clusters: 0,
            zero_clusters: 0,
            compressed_clusters: 0,
            cursor: data_start * cs,
            refs: Vec::new(),
            standalone,
            compression: if standalone { compression } else { None },
            inline_l2: Vec::new(),
        })
    }

    /// The cluster size.
    pub fn cluster_size(&self) -> u64 {
        self.cs
    }

    /// File offset of the `i`-th L2 table.
    fn l2_offset(&self, i: usize) -> u64 {
        (1 + self.rt_clusters + self.l1_clusters + i as u64) * self.cs
    }

    /// Writes the L2 table being filled, if any: in its planned place, or,
    /// in a standalone image, at the next free cluster when it maps data.
    fn flush_l2(&mut self, w: &mut Writer) -> Result<()> {
        if let Some((i, table)) = self.current.take() {
            if !self.standalone {
                return w.write(self.l2_offset(i), &be_words(&table));
            }
            if table.iter().all(|&e| e == 0) {
                return Ok(());
            }
            let at = self.take_cluster();
            w.write(at, &be_words(&table))?;
            self.inline_l2.push((self.l1_indices[i], at));
        }
        Ok(())
    }

    /// Allocates the next whole cluster of the data area (refcount 1).
    fn take_cluster(&mut self) -> u64 {
        let at = self.cursor.next_multiple_of(self.cs);
        self.cursor = at + self.cs;
        self.refs.push(1);
        at
    }

    /// Allocates `len` bytes (less than a cluster) for a compressed
    /// cluster, right after the previous one, counting one reference in
    /// each host cluster they touch (rounded out to 512-byte sectors, as
    /// QEMU counts them).
    fn take_compressed(&mut self, len: u64) -> u64 {
        let cs = self.cs;
        let base = self.data_start * cs;
        let mut at = self.cursor;
        // A cluster whose refcount is full starts no more compressed data.
        if at % cs != 0 && self.refs.last() == Some(&MAX_REFCOUNT) {
            at = at.next_multiple_of(cs);
        }
        let first = (at - base) / cs;
        let end_sector = (at + len).next_multiple_of(COMPRESSED_SECTOR);
        let last = (end_sector - 1 - base) / cs;
        for c in first..=last {
            match self.refs.get_mut(c as usize) {
                Some(r) => *r += 1,
                None => self.refs.push(1),
            }
        }
        self.cursor = at + len;
        at
    }

    /// Records guest cluster `cluster` (added in increasing order) and writes
    /// its data, if any.
    pub fn add_cluster(
        &mut self,
        w: &mut Writer,
        cluster: u64,
        content: ClusterContent,
    ) -> Result<()> {
        let l2_entries = self.cs / 8;
        let l1_index = cluster / l2_entries;
        if self.current.as_ref().map(|(i, _)| self.l1_indices[*i]) != Some(l1_index) {
            self.flush_l2(w)?;
            let i = self
                .l1_indices
                .binary_search(&l1_index)
                .expect("the layout planned an L2 table for every touched cluster");
            self.current = Some((i, vec![0u64; l2_entries as usize]));
        }
        let entry = match content {
            ClusterContent::Zero if self.standalone => 0,
            ClusterContent::Zero => {
                self.zero_clusters += 1;
                L2_ZERO
            }
            ClusterContent::Data(bytes) => {
                debug_assert!(self.data_clusters < self.touched);
                self.data_clusters += 1;
                let packed = self
                    .compression
                    .and_then(|kind| super::compress::compress(kind, bytes, self.cs));
                match packed {
                    Some(z) => {
                        self.compressed_clusters += 1;
                        let host = self.take_compressed(z.len() as u64);
                        w.write(host, &z)?;
                        compressed_descriptor(host, z.len() as u64, self.cs)
                    }
                    None => {
                        let host = self.take_cluster();
                        w.write(host, bytes)?;
                        host | ENTRY_COPIED
                    }
                }
            }
        };
        let (_, table) = self.current.as_mut().expect("set above");
        table[(cluster % l2_entries) as usize] = entry;
        Ok(())
    }

    /// Number of clusters stored with data so far.
    pub fn data_clusters(&self) -> u64 {
        self.data_clusters
    }

    /// Number of clusters recorded as zeros so far.
    pub fn zero_clusters(&self) -> u64 {
        self.zero_clusters
    }

    /// Number of data clusters stored compressed so far.
    pub fn compressed_clusters(&self) -> u64 {
        self.compressed_clusters
    }

    /// Writes the header, tables and refcounts; returns the file size.
    pub fn finish(&mut self, w: &mut Writer) -> Result<u64> {
        self.flush_l2(w)?;
        let cs = self.cs;
        let rt_offset = cs;
        let l1_offset = rt_offset + self.rt_clusters * cs;
        let before_blocks = self.cursor.div_ceil(cs);
        debug_assert_eq!(before_blocks, self.data_start + self.refs.len() as u64);
        let blocks = refcount_blocks(before_blocks, cs);
        let total = before_blocks + blocks;
        let blocks_offset = before_blocks * cs;

        w.write(0, &self.header)?;

        let rt: Vec<u64> = (0..blocks).map(|i| blocks_offset + i * cs).collect();
        w.write(rt_offset, &be_words(&rt))?;

        let mut l1 = vec![0u64; self.l1_size as usize];
        if self.standalone {
            for &(l1_index, at) in &self.inline_l2 {
                l1[l1_index as usize] = at | ENTRY_COPIED;
            }
        } else {
            for (i, &l1_index) in self.l1_indices.iter().enumerate() {
                l1[l1_index as usize] = self.l2_offset(i) | ENTRY_COPIED;
            }
        }
        w.write(l1_offset, &be_words(&l1))?;

        // Every cluster is referenced once, except host clusters shared by
        // compressed clusters: once per compressed cluster touching them.
        let refcounts: Vec<u8> = (0..self.data_start)
            .map(|_| 1u16)
            .chain(self.refs.iter().copied())
            .chain((0..blocks).map(|_| 1u16))
            .flat_map(u16::to_be_bytes)
            .collect();
        debug_assert_eq!(refcounts.len() as u64, total * REFCOUNT_BYTES);
        w.write(blocks_offset, &refcounts)?;

        let file_size = total * cs;
        w.set_len(file_size)?;
        Ok(file_size)
    }

    /// The header cluster's used bytes: header, backing format extension,
    /// end marker, backing file name (for an overlay: `backing` is the
    /// backing file's name and format); the compression type of a
    /// standalone image compressed with zstd.
    fn header_bytes(&self, backing: Option<(&str, &str)>) -> Result<Vec<u8>> {
        let cs = self.cs;
        let mut h = vec![0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        put32(&mut h, 4, 3);
        put32(&mut h, 20, cs.trailing_zeros());
        put64(&mut h, 24, self.size);
        put32(&mut h, 36, self.l1_size as u32);
        put64(&mut h, 40, cs * (1 + self.rt_clusters));
        put64(&mut h, 48, cs);
        put32(&mut h, 56, self.rt_clusters as u32);
        put32(&mut h, 96, REFCOUNT_ORDER);
        put32(&mut h, 100, HEADER_LEN as u32);
        if self.compression == Some(CompressionType::Zstd) {
            put64(&mut h, INCOMPATIBLE_FEATURES_AT, INCOMPAT_COMPRESSION);
            h[COMPRESSION_TYPE_AT] = COMPRESSION_TYPE_ZSTD;
        }
        let Some((backing, backing_format)) = backing else {
            // No extensions: only the end of the extension area.
            h.extend_from_slice(&[0u8; 8]);
            return Ok(h);
        };
        // Header extension: backing file format (spec: "Header extensions").
        let fmt = backing_format.as_bytes();
        h.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
        h.extend_from_slice(&(fmt.len() as u32).to_be_bytes());
        h.extend_from_slice(fmt);
        h.resize(h.len().next_multiple_of(8), 0);
        // End of the header extension area.
        h.extend_from_slice(&[0u8; 8]);
        let name_offset = h.len();
        h.extend_from_slice(backing.as_bytes());
        if h.len() as u64 > cs {
            return Err(Error::Usage(format!(
                "the backing file name ({} bytes) does not fit in a {cs}-byte header cluster; use a larger --cluster-size or a shorter path",
                backing.len()
            )));
        }
        put64(&mut h, 8, name_offset as u64);
        put32(&mut h, 16, backing.len() as u32);
        Ok(h)
    }
}

/// The L2 entry of a compressed cluster whose `len` bytes start at file
/// offset `host`, for `cs`-byte clusters (spec: "Compressed Clusters
/// Descriptor": the offset in bits 0..x-1, x = 62 - (cluster_bits - 8), the
/// number of 512-byte sectors after the first one above it; never "copied").
fn compressed_descriptor(host: u64, len: u64, cs: u64) -> u64 {
    let x = 62 - (cs.trailing_zeros() - 8);
    let first = host / COMPRESSED_SECTOR;
    let last = (host + len - 1) / COMPRESSED_SECTOR;
    L2_COMPRESSED | ((last - first) << x) | host
}

/// Refcount blocks needed to cover `other` clusters plus the blocks themselves.
fn refcount_blocks(other: u64, cs: u64) -> u64 {
    let per_block = cs / REFCOUNT_BYTES;
    let mut blocks = other.div_ceil(per_block).max(1);
    while (other + blocks).div_ceil(per_block) > blocks {
        blocks += 1;
    }
    blocks
}

fn be_words(words: &[u64]) -> Vec<u8> {
    let mut out = vec![0u8; words.len() * 8];
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    out
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_blocks_cover_themselves() {
        // 512-byte clusters: 256 refcounts per block.
        assert_eq!(refcount_blocks(1, 512), 1);
        assert_eq!(refcount_blocks(255, 512), 1);
        assert_eq!(refcount_blocks(256, 512), 2);
        assert_eq!(refcount_blocks(510, 512), 2);
        assert_eq!(refcount_blocks(511, 512), 3);
    }
}

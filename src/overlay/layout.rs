//! Where each structure of a new overlay lies in the file, and writing them.
//!
//! Clusters, in file order: the header (0), the refcount table, the L1 table,
//! one L2 table per L1 entry that a touched cluster needs, the data clusters
//! in guest order, then the refcount blocks. Sizes are fixed before the first
//! data cluster is written, except the count of data clusters (touched
//! clusters that end up all zeros store none), which is why the refcount
//! blocks come last. The refcount table is sized for the largest count.
//! Spec: `docs/interop/qcow2.txt`, "Header", "Host cluster management",
//! "Cluster mapping".

use crate::error::{Error, Result};
use crate::image::qcow2::header::{EXT_BACKING_FORMAT, MAGIC};
use crate::image::qcow2::{ENTRY_COPIED, L2_ZERO};
use crate::output::write_nonzero;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The header length qfault writes: the v3 fields through compression_type, padded to 8.
const HEADER_LEN: usize = 112;
/// refcount_order 4: 16-bit refcounts, QEMU's default.
const REFCOUNT_ORDER: u32 = 4;
/// Bytes per refcount entry at [`REFCOUNT_ORDER`].
const REFCOUNT_BYTES: u64 = 2;

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
        if !c.differs && !file_holds(self.file, &self.path, offset, data)? {
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
                if !file_holds(self.file, &self.path, s, &zeros[..n])? {
                    c.differs = true;
                    return Ok(());
                }
                s += n as u64;
            }
        }
        Ok(())
    }
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
        let mut layout = OverlayLayout {
            cs,
            size,
            header: Vec::new(),
            l1_size,
            rt_clusters,
            l1_clusters,
            data_start: header_and_tables(rt_clusters),
            l1_indices,
            current: None,
            touched: touched_count,
            data_clusters: 0,
            zero_clusters: 0,
        };
        layout.header = layout.header_bytes(backing, backing_format)?;
        Ok(layout)
    }

    /// The cluster size.
    pub fn cluster_size(&self) -> u64 {
        self.cs
    }

    /// File offset of the `i`-th L2 table.
    fn l2_offset(&self, i: usize) -> u64 {
        (1 + self.rt_clusters + self.l1_clusters + i as u64) * self.cs
    }

    /// Writes the L2 table being filled, if any.
    fn flush_l2(&mut self, w: &mut Writer) -> Result<()> {
        if let Some((i, table)) = self.current.take() {
            w.write(self.l2_offset(i), &be_words(&table))?;
        }
        Ok(())
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
            ClusterContent::Zero => {
                self.zero_clusters += 1;
                L2_ZERO
            }
            ClusterContent::Data(bytes) => {
                debug_assert!(self.data_clusters < self.touched);
                let host = (self.data_start + self.data_clusters) * self.cs;
                w.write(host, bytes)?;
                self.data_clusters += 1;
                host | ENTRY_COPIED
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

    /// Writes the header, tables and refcounts; returns the file size.
    pub fn finish(&mut self, w: &mut Writer) -> Result<u64> {
        self.flush_l2(w)?;
        let cs = self.cs;
        let rt_offset = cs;
        let l1_offset = rt_offset + self.rt_clusters * cs;
        let before_blocks = self.data_start + self.data_clusters;
        let blocks = refcount_blocks(before_blocks, cs);
        let total = before_blocks + blocks;
        let blocks_offset = before_blocks * cs;

        w.write(0, &self.header)?;

        let rt: Vec<u64> = (0..blocks).map(|i| blocks_offset + i * cs).collect();
        w.write(rt_offset, &be_words(&rt))?;

        let mut l1 = vec![0u64; self.l1_size as usize];
        for (i, &l1_index) in self.l1_indices.iter().enumerate() {
            l1[l1_index as usize] = self.l2_offset(i) | ENTRY_COPIED;
        }
        w.write(l1_offset, &be_words(&l1))?;

        // Every cluster of the file is referenced exactly once.
        let refcounts: Vec<u8> = (0..total).flat_map(|_| 1u16.to_be_bytes()).collect();
        w.write(blocks_offset, &refcounts)?;

        let file_size = total * cs;
        w.set_len(file_size)?;
        Ok(file_size)
    }

    /// The header cluster's used bytes: header, backing format extension,
    /// end marker, backing file name.
    fn header_bytes(&self, backing: &str, backing_format: &str) -> Result<Vec<u8>> {
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
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
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

//! The guest-byte interface every later stage reads through.
//!
//! [`ReadAt`] is deliberately tiny: a size and a positional, exact read.
//! Partition and filesystem code take `&mut dyn ReadAt` and never learn which
//! image format, or how deep a backing chain, sits underneath.

use crate::error::{Error, Result};

/// Positional, exact reads of a guest disk (or a window of it).
pub trait ReadAt {
    /// Size of the readable space in bytes.
    fn size(&self) -> u64;

    /// Fills `buf` with the bytes at `offset`.
    ///
    /// The whole range must lie within [`ReadAt::size`]; otherwise this
    /// returns [`Error::OutOfRange`] and `buf` is left unspecified.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Reads `len` bytes at `offset` into a new vector.
    ///
    /// Intended for small structures (sectors, headers); the range is checked
    /// against [`ReadAt::size`] before anything is allocated.
    fn read_vec(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        check_range(offset, len as u64, self.size())?;
        let mut buf = vec![0u8; len];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }
}

/// Returns [`Error::OutOfRange`] unless `offset..offset+length` lies within `size`.
pub fn check_range(offset: u64, length: u64, size: u64) -> Result<()> {
    match offset.checked_add(length) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfRange {
            offset,
            length,
            size,
        }),
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &mut T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
}

/// An in-memory disk; handy for tests and for small synthetic images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemDisk(pub Vec<u8>);

impl ReadAt for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }
}

/// A window `[start, start + len)` of another [`ReadAt`], e.g. one partition.
///
/// Offsets given to the window are relative to its start.
#[derive(Debug)]
pub struct Window<R> {
    inner: R,
    start: u64,
    len: u64,
}

impl<R: ReadAt> Window<R> {
    /// A window of `len` bytes at `start`; fails if it does not fit in `inner`.
    pub fn new(inner: R, start: u64, len: u64) -> Result<Self> {
        check_range(start, len, inner.size())?;
        Ok(Window { inner, start, len })
    }

    /// Offset of the window's first byte in the underlying reader.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: ReadAt> ReadAt for Window<R> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.len)?;
        self.inner.read_at(self.start + offset, buf)
    }
}

/// A read-through cache of a few aligned blocks over another [`ReadAt`], for
/// readers that issue many tiny reads (the `ntfs` crate parses structures
/// field by field through `Read`).
#[derive(Debug)]
pub struct BlockCache<R> {
    inner: R,
    /// (block index, bytes), most recently used last.
    blocks: Vec<(u64, Vec<u8>)>,
}

impl<R: ReadAt> BlockCache<R> {
    /// Block size in bytes.
    pub const BLOCK: u64 = 4096;
    /// Blocks kept.
    pub const BLOCKS: usize = 16;

    /// Caches reads of `inner`.
    pub fn new(inner: R) -> Self {
        BlockCache {
            inner,
            blocks: Vec::with_capacity(Self::BLOCKS),
        }
    }

    /// The cached block `index` (loaded on a miss).
    fn block(&mut self, index: u64) -> Result<&[u8]> {
        if let Some(at) = self.blocks.iter().position(|(i, _)| *i == index) {
            let entry = self.blocks.remove(at);
            self.blocks.push(entry);
        } else {
            let start = index * Self::BLOCK;
            let len = Self::BLOCK.min(self.inner.size() - start) as usize;
            let mut buf = if self.blocks.len() >= Self::BLOCKS {
                self.blocks.remove(0).1
            } else {
                Vec::new()
            };
            buf.resize(len, 0);
            self.inner.read_at(start, &mut buf)?;
            self.blocks.push((index, buf));
        }
        Ok(&self.blocks.last().expect("just pushed").1)
    }
}

impl<R: ReadAt> ReadAt for BlockCache<R> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        // Large reads gain nothing from the cache.
        if buf.len() as u64 > Self::BLOCK {
            return self.inner.read_at(offset, buf);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let in_block = (pos % Self::BLOCK) as usize;
            let block = self.block(pos / Self::BLOCK)?;
            let n = (block.len() - in_block).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&block[in_block..in_block + n]);
            done += n;
        }
        Ok(())
    }
}

/// Guest blocks of one disk kept for the length of one job, so that what
/// one stage reads serves the next without reading the file again: the
/// plan's probes read the same superblocks several times, and the
/// post-write check reads the base's bytes the plan already read
/// ([`crate::apply`]). The store is keyed by guest offset: every reader
/// given the same store must read the same, unchanging guest (the base
/// chain, opened read-only and locked).
///
/// Reads are served in aligned blocks of [`BlockStore::BLOCK`] bytes; a
/// miss reads the whole run of missing blocks in one read of the inner
/// reader. Reads longer than [`BlockStore::MAX_READ`] go straight through
/// (keeping them cost more in fresh memory, a page fault per 4 KiB, than
/// reading them again), and at most [`BlockStore::MAX_BLOCKS`] blocks are
/// kept (later misses are read without being kept): at most 4 MiB, or
/// fewer ([`BlockStore::with_limit`]).
#[derive(Debug)]
pub struct BlockStore {
    blocks: std::collections::HashMap<u64, Box<[u8]>>,
    limit: usize,
}

impl Default for BlockStore {
    fn default() -> Self {
        BlockStore::with_limit(Self::MAX_BLOCKS)
    }
}

impl BlockStore {
    /// Block size in bytes.
    pub const BLOCK: u64 = 512;
    /// Most blocks kept.
    pub const MAX_BLOCKS: usize = 8192;
    /// Longest read served through the store.
    pub const MAX_READ: usize = 16 << 10;

    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping at most `blocks` blocks (at most
    /// [`BlockStore::MAX_BLOCKS`]): for stores kept across many jobs on the
    /// same base (a batch keeps one per open base).
    pub fn with_limit(blocks: usize) -> Self {
        BlockStore {
            blocks: std::collections::HashMap::new(),
            limit: blocks.min(Self::MAX_BLOCKS),
        }
    }

    /// Fills `buf` with the bytes of `inner` at `offset`, from the blocks
    /// kept where they are, else from `inner` (keeping what it read).
    pub fn read(&mut self, inner: &mut dyn ReadAt, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = inner.size();
        check_range(offset, buf.len() as u64, size)?;
        if buf.len() > Self::MAX_READ {
            return inner.read_at(offset, buf);
        }
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let index = pos / Self::BLOCK;
            let block_start = index * Self::BLOCK;
            if let Some(b) = self.blocks.get(&index) {
                let stop = end.min(block_start + b.len() as u64);
                buf[(pos - offset) as usize..(stop - offset) as usize].copy_from_slice(
                    &b[(pos - block_start) as usize..(stop - block_start) as usize],
                );
                pos = stop;
                continue;
            }
            // The run of missing blocks from here to the end of the read.
            let mut last = index;
            while (last + 1) * Self::BLOCK < end && !self.blocks.contains_key(&(last + 1)) {
                last += 1;
            }
            let run_end = size.min((last + 1) * Self::BLOCK);
            let mut run = vec![0u8; (run_end - block_start) as usize];
            inner.read_at(block_start, &mut run)?;
            let stop = end.min(run_end);
            buf[(pos - offset) as usize..(stop - offset) as usize]
                .copy_from_slice(&run[(pos - block_start) as usize..(stop - block_start) as usize]);
            for (i, chunk) in run.chunks(Self::BLOCK as usize).enumerate() {
                if self.blocks.len() >= self.limit {
                    break;
                }
                self.blocks.insert(index + i as u64, chunk.into());
            }
            pos = stop;
        }
        Ok(())
    }
}

/// A reader whose reads go through a [`BlockStore`] it borrows.
#[derive(Debug)]
pub struct Stored<'s, R> {
    inner: R,
    store: &'s mut BlockStore,
}

impl<'s, R: ReadAt> Stored<'s, R> {
    /// Reads of `inner` served through `store`.
    pub fn new(inner: R, store: &'s mut BlockStore) -> Self {
        Stored { inner, store }
    }
}

impl<R: ReadAt> ReadAt for Stored<'_, R> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.store.read(&mut self.inner, offset, buf)
    }
}

/// Adapts any [`ReadAt`] to [`std::io::Read`] + [`std::io::Seek`].
///
/// Reads stop at the end of the disk (a short read, then `Ok(0)`).
#[derive(Debug)]
pub struct Cursor<R> {
    inner: R,
    pos: u64,
}

impl<R: ReadAt> Cursor<R> {
    /// A cursor at offset 0.
    pub fn new(inner: R) -> Self {
        Cursor { inner, pos: 0 }
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: ReadAt> std::io::Read for Cursor<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.inner.size();
        if self.pos >= size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - self.pos) as usize;
        self.inner
            .read_at(self.pos, &mut buf[..n])
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: ReadAt> std::io::Seek for Cursor<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.inner.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn window_bounds_and_offsets() {
        let disk = MemDisk((0u8..=255).collect());
        let mut w = Window::new(disk, 16, 32).unwrap();
        let mut b = [0u8; 4];
        w.read_at(0, &mut b).unwrap();
        assert_eq!(b, [16, 17, 18, 19]);
        assert!(matches!(
            w.read_at(30, &mut b),
            Err(Error::OutOfRange { .. })
        ));
        assert!(Window::new(MemDisk(vec![0; 10]), 8, 4).is_err());
    }

    #[test]
    fn cursor_reads_to_end_and_seeks() {
        let mut c = Cursor::new(MemDisk(vec![7u8; 10]));
        c.seek(SeekFrom::End(-3)).unwrap();
        let mut v = Vec::new();
        c.read_to_end(&mut v).unwrap();
        assert_eq!(v, vec![7, 7, 7]);
        assert!(c.seek(SeekFrom::Current(-100)).is_err());
    }

    #[test]
    fn block_cache_reads_like_its_inner_reader() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = BlockCache::new(MemDisk(data.clone()));
        for (off, len) in [(0, 1), (4095, 2), (8190, 5000), (19_999, 1), (100, 4096)] {
            let mut b = vec![0u8; len];
            c.read_at(off as u64, &mut b).unwrap();
            assert_eq!(b, data[off..off + len], "{off}+{len}");
        }
        let mut b = [0u8; 2];
        assert!(c.read_at(19_999, &mut b).is_err());
    }

    /// Counts the reads reaching it.
    struct Counting(MemDisk, usize);

    impl ReadAt for Counting {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
            self.1 += 1;
            self.0.read_at(offset, buf)
        }
    }

    #[test]
    fn block_store_reads_like_its_inner_reader_and_reads_once() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut inner = Counting(MemDisk(data.clone()), 0);
        let mut store = BlockStore::new();
        let cases = [
            (0, 1),
            (4095, 2),
            (8190, 5000),
            (19_999, 1),
            (100, 4096),
            (0, 16_384),
            (16_000, 4000),
        ];
        for (off, len) in cases {
            let mut b = vec![0u8; len];
            store.read(&mut inner, off as u64, &mut b).unwrap();
            assert_eq!(b, data[off..off + len], "{off}+{len}");
        }
        // Every block (the last one short) read once.
        let reads = inner.1;
        for (off, len) in cases {
            let mut b = vec![0u8; len];
            Stored::new(&mut inner, &mut store)
                .read_at(off as u64, &mut b)
                .unwrap();
            assert_eq!(b, data[off..off + len], "{off}+{len}");
        }
        assert_eq!(inner.1, reads, "the second pass is served from the store");
        let mut b = [0u8; 2];
        assert!(store.read(&mut inner, 19_999, &mut b).is_err());
        // Past MAX_READ: straight through, nothing kept.
        let big = BlockStore::MAX_READ + 1;
        let mut inner = Counting(MemDisk(vec![3u8; big]), 0);
        let mut store = BlockStore::new();
        let mut b = vec![0u8; big];
        store.read(&mut inner, 0, &mut b).unwrap();
        store.read(&mut inner, 0, &mut b).unwrap();
        assert_eq!(inner.1, 2);
        assert!(store.blocks.is_empty());
    }

    #[test]
    fn check_range_overflow() {
        assert!(check_range(u64::MAX, 2, u64::MAX).is_err());
        assert!(check_range(0, 0, 0).is_ok());
    }
}

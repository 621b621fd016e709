//! Opening an NTFS volume with a pure-Rust reader (the `ntfs` crate): the
//! proof that a (repaired) volume is readable, without mounting anything.

use super::record::FILE_FIRST_USER;
use crate::error::{Error, Result};
use crate::image::{BlockCache, Cursor, ReadAt};
use crate::overlay::{Patch, Preview};
use ::ntfs::structured_values::NtfsFileNamespace;
use ::ntfs::Ntfs;

/// How many bytes the `ntfs` crate may read for one question about a
/// volume. Its index walk follows subnode pointers without remembering
/// where it has been, so a directory index that points to itself would
/// otherwise make it loop (and allocate) forever; a sane root directory or
/// label needs a small fraction of this.
pub const READ_BUDGET: u64 = 256 << 20;

/// A reader that fails once [`READ_BUDGET`] bytes have been read through it
/// (reads are counted as the `ntfs` crate asks for them, above any cache).
pub struct Budget<R> {
    inner: R,
    left: u64,
}

impl<R> Budget<R> {
    /// `inner` with the full budget.
    pub fn new(inner: R) -> Self {
        Budget {
            inner,
            left: READ_BUDGET,
        }
    }
}

impl<R: ReadAt> ReadAt for Budget<R> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.left = self.left.checked_sub(buf.len() as u64).ok_or_else(|| {
            Error::Guest(format!(
                "the NTFS structures need more than {} MiB of reads (a loop in an index?)",
                READ_BUDGET >> 20
            ))
        })?;
        self.inner.read_at(offset, buf)
    }
}

/// The boot sector's end marker, where the `ntfs` crate requires it.
const END_MARKER_AT: u64 = 510;

/// `part` as the `ntfs` crate should see it: with the 0x55AA end marker in
/// sector 0, which ntfs-3g and ntfsfix do not require (bootsect.c only logs
/// its absence) but the crate does.
pub fn crate_view<R: ReadAt>(part: R) -> Preview<'static, R> {
    Preview::new(
        part,
        vec![Patch::Data {
            offset: END_MARKER_AT,
            bytes: vec![0x55, 0xAA],
        }],
    )
}

/// What a pure-Rust NTFS reader sees in a volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VolumeSummary {
    /// The volume label ($Volume's name), if any.
    pub label: Option<String>,
    /// Root directory entries a mount would show, sorted: ntfs-3g hides the
    /// system files (MFT records below 16, `$MFT` … `$Extend`) and DOS 8.3
    /// aliases, but shows other names starting with `$` (`$RECYCLE.BIN`).
    pub root_entries: Vec<String>,
}

/// Opens the NTFS volume in `part` (a partition-sized reader), reads its
/// label and lists its root directory.
pub fn read_volume<R: ReadAt>(part: R) -> Result<VolumeSummary> {
    // The crate reads structures field by field: cache blocks, not bytes.
    let mut fs = Cursor::new(Budget::new(BlockCache::new(crate_view(part))));
    // The ntfs crate is not hardened against every malformed structure; a
    // panic in it must not take the caller down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| summarize(&mut fs)))
        .unwrap_or_else(|_| Err("the NTFS reader panicked on this volume".to_string()))
        .map_err(|e| Error::Guest(format!("pure-Rust NTFS reader: {e}")))
}

fn summarize<T: std::io::Read + std::io::Seek>(
    fs: &mut T,
) -> std::result::Result<VolumeSummary, String> {
    let s = |e: ::ntfs::NtfsError| e.to_string();
    let mut ntfs = Ntfs::new(fs).map_err(s)?;
    ntfs.read_upcase_table(fs).map_err(s)?;
    let label = match ntfs.volume_name(fs) {
        Some(Ok(name)) => Some(name.name().to_string_lossy()),
        Some(Err(e)) => return Err(e.to_string()),
        None => None,
    };
    let root = ntfs.root_directory(fs).map_err(s)?;
    let index = root.directory_index(fs).map_err(s)?;
    let mut entries = index.entries();
    let mut names = Vec::new();
    // A directory index of a sane volume is finite; bound it anyway.
    for _ in 0..1_000_000 {
        let Some(entry) = entries.next(fs) else { break };
        let entry = entry.map_err(s)?;
        let Some(key) = entry.key() else { continue };
        let key = key.map_err(s)?;
        if key.namespace() == NtfsFileNamespace::Dos {
            continue;
        }
        let name = key.name().to_string_lossy();
        if entry.file_reference().file_record_number() < FILE_FIRST_USER || name == "." {
            continue;
        }
        names.push(name);
    }
    names.sort();
    names.dedup();
    Ok(VolumeSummary {
        label,
        root_entries: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    #[test]
    fn the_budget_ends_an_endless_walk() {
        let mut b = Budget::new(MemDisk(vec![0u8; 4096]));
        let mut buf = [0u8; 4096];
        let mut reads = 0u64;
        let err = loop {
            match b.read_at(0, &mut buf) {
                Ok(()) => reads += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(reads, READ_BUDGET / 4096);
        assert!(err.to_string().contains("a loop in an index?"), "{err}");
    }
}

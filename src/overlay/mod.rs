//! The qcow2 overlay writer: a new image backed by the untouched base that
//! holds only the clusters a change touches.
//!
//! [`write_overlay`] takes a list of [`Patch`]es (guest byte ranges to zero or
//! to overwrite), reads the touched clusters through the base's chain, applies
//! the patches, and writes a version 3 qcow2 whose backing file is the base.
//! A touched cluster that ends up all zeros is recorded with the zero flag and
//! stores no data. The file is written atomically (see [`crate::output`]) and
//! is byte-for-byte deterministic for the same inputs.

mod backing_name;
mod compress;
pub(crate) mod layout;
mod preview;

pub use backing_name::{backing_name, BackingName};
pub use preview::Preview;

use crate::error::{Error, Result};
use crate::image::qcow2::header::CompressionType;
use crate::image::{check_range, Image, ReadAt};
use crate::output::AtomicFile;
use layout::ClusterContent;
pub(crate) use layout::OverlayLayout;
use std::path::{Path, PathBuf};

/// Default overlay cluster size, as `qemu-img create` uses.
pub const DEFAULT_CLUSTER_SIZE: u64 = 64 << 10;

/// One change to the guest disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// Zero `len` bytes at `offset`.
    Zero {
        /// First guest byte.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
    /// Write `bytes` at `offset`.
    Data {
        /// First guest byte.
        offset: u64,
        /// The new content.
        bytes: Vec<u8>,
    },
}

impl Patch {
    /// First guest byte.
    pub fn offset(&self) -> u64 {
        match self {
            Patch::Zero { offset, .. } | Patch::Data { offset, .. } => *offset,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Patch::Zero { len, .. } => *len,
            Patch::Data { bytes, .. } => bytes.len() as u64,
        }
    }

    /// Whether the patch changes no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the part of this patch that falls in `[start, start + buf.len())`.
    pub fn apply(&self, start: u64, buf: &mut [u8]) {
        let end = start + buf.len() as u64;
        let (p_start, p_end) = (self.offset(), self.offset() + self.len());
        let (s, e) = (p_start.max(start), p_end.min(end));
        if s >= e {
            return;
        }
        let dst = &mut buf[(s - start) as usize..(e - start) as usize];
        match self {
            Patch::Zero { .. } => dst.fill(0),
            Patch::Data { bytes, .. } => {
                dst.copy_from_slice(&bytes[(s - p_start) as usize..(e - p_start) as usize])
            }
        }
    }
}

/// How to write an overlay.
#[derive(Debug, Clone)]
pub struct OverlayOptions {
    /// Cluster size in bytes: a power of two from 512 B to 2 MiB.
    pub cluster_size: u64,
    /// How the backing file is named in the overlay.
    pub backing_name: BackingName,
    /// Replace an existing output file whose bytes differ from the planned
    /// ones (an identical one is always left alone).
    pub overwrite: bool,
    /// Flush the overlay and its directory to stable storage before
    /// reporting it written (the default); `false` is `--no-sync`.
    pub sync: bool,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions {
            cluster_size: DEFAULT_CLUSTER_SIZE,
            backing_name: BackingName::Relative,
            overwrite: false,
            sync: true,
        }
    }
}

/// What happened to an output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It did not exist and was written.
    Written,
    /// It existed with exactly the planned bytes: left alone.
    Unchanged,
    /// It existed with other bytes and was replaced (`overwrite`).
    Replaced,
}

impl Status {
    /// The status as one lowercase word.
    pub fn word(self) -> &'static str {
        match self {
            Status::Written => "written",
            Status::Unchanged => "unchanged",
            Status::Replaced => "replaced",
        }
    }
}

/// What [`write_overlay`] wrote (or a standalone writer of
/// [`crate::standalone`]: the same shape, `None` where a field does not
/// apply to that kind of file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OverlayReport {
    /// The file's path.
    #[serde(flatten, serialize_with = "crate::json_path::path")]
    pub path: PathBuf,
    /// Virtual size (the base's).
    pub virtual_size: u64,
    /// Cluster size (`None` for a raw file).
    pub cluster_size: Option<u64>,
    /// Backing file name as stored in the header (`None` for a standalone
    /// file).
    pub backing_file: Option<String>,
    /// Backing format as stored in the header extension (`None` for a
    /// standalone file).
    pub backing_format: Option<String>,
    /// How data clusters are compressed (a standalone qcow2 written with
    /// compression; `None` otherwise).
    pub compression: Option<CompressionType>,
    /// How a raw output got the base's bytes (`None` for qcow2 files).
    pub raw_copy: Option<crate::standalone::RawCopy>,
    /// Clusters stored with data, compressed or not (`None` for a raw file).
    pub data_clusters: Option<u64>,
    /// Clusters recorded as zeros, no data stored (`None` for a raw file; 0
    /// for a standalone qcow2, which leaves zeros unallocated).
    pub zero_clusters: Option<u64>,
    /// Of the data clusters, those stored compressed (a standalone qcow2
    /// only).
    pub compressed_clusters: Option<u64>,
    /// Apparent file size in bytes.
    pub file_size: u64,
    /// Bytes the file occupies on disk (`st_blocks` × 512).
    pub allocated_size: u64,
}

/// An overlay ready to be placed: written to a temporary file beside its
/// target, or found already there with exactly the planned bytes.
/// [`Staged::path`] is the file to check before [`Staged::commit`]; dropping
/// it uncommitted removes the temporary file and leaves the target alone.
#[derive(Debug)]
pub struct Staged {
    file: Option<AtomicFile>,
    report: OverlayReport,
    status: Status,
}

impl Staged {
    /// A file staged by a writer: `file` the temporary file, `None` when
    /// the target is unchanged.
    pub(crate) fn new(file: Option<AtomicFile>, report: OverlayReport, status: Status) -> Self {
        Staged {
            file,
            report,
            status,
        }
    }

    /// The file that holds the overlay's bytes now: the temporary file, or
    /// the target when it is unchanged.
    pub fn path(&self) -> &Path {
        match &self.file {
            Some(f) => f.tmp_path(),
            None => &self.report.path,
        }
    }

    /// Whether [`Staged::commit`] flushes the file to stable storage (see
    /// [`OverlayOptions::sync`]).
    pub fn set_sync(&mut self, sync: bool) {
        if let Some(f) = &mut self.file {
            f.set_sync(sync);
        }
    }

    /// What will happen to the target on commit.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Releases the temporary file's descriptor once it is written and
    /// checked (see [`crate::output::AtomicFile::close`]): a batch stages
    /// many files before committing them together.
    pub fn close(&mut self) {
        if let Some(f) = &mut self.file {
            f.close();
        }
    }

    /// Commits files staged together (a batch's outputs) with one flush for
    /// all of them, each on its own terms ([`crate::output::commit_each`]):
    /// one result per file, in order; a failure leaves the others placed.
    pub fn commit_each(staged: Vec<Staged>) -> Vec<Result<(OverlayReport, Status)>> {
        let mut files = Vec::new();
        let mut done = Vec::with_capacity(staged.len());
        for s in staged {
            let slot = s.file.as_ref().map(|_| files.len());
            files.extend(s.file);
            done.push((s.report, s.status, slot));
        }
        let mut results: Vec<Option<Result<()>>> = crate::output::commit_each(files)
            .into_iter()
            .map(Some)
            .collect();
        done.into_iter()
            .map(|(mut report, status, slot)| {
                if let Some(r) = slot.and_then(|i| results[i].take()) {
                    r?;
                }
                // Stat after the sync, as commit_all does.
                use std::os::unix::fs::MetadataExt;
                report.allocated_size =
                    std::fs::metadata(&report.path).map_or(0, |m| m.blocks() * 512);
                Ok((report, status))
            })
            .collect()
    }

    /// Fsyncs the overlay and moves it into place (nothing to do when
    /// unchanged), and reports it.
    pub fn commit(self) -> Result<(OverlayReport, Status)> {
        let mut all = Staged::commit_all(vec![self])?;
        Ok(all.remove(0))
    }

    /// Commits overlays written together (a chain's links) with one flush
    /// for all of them ([`crate::output::commit_all`]) and reports each, in
    /// order.
    pub fn commit_all(staged: Vec<Staged>) -> Result<Vec<(OverlayReport, Status)>> {
        let mut files = Vec::new();
        let mut done = Vec::with_capacity(staged.len());
        for s in staged {
            files.extend(s.file);
            done.push((s.report, s.status));
        }
        crate::output::commit_all(files)?;
        // Stat after the sync: some filesystems allocate extent-tree blocks
        // only at writeback. The overlays are in place: a failing stat must
        // not turn that into an error.
        for (report, _) in &mut done {
            report.allocated_size = {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(&report.path).map_or(0, |m| m.blocks() * 512)
            };
        }
        Ok(done)
    }
}

/// Writes a qcow2 overlay at `out` holding `patches`, backed by the image
/// `base` (opened with its chain; the overlay names [`Image::path`]).
/// An existing `out` with exactly these bytes is left alone; with other
/// bytes it is a usage error unless `opts.overwrite`.
pub fn write_overlay(
    base: &mut Image,
    patches: &[Patch],
    out: &Path,
    opts: &OverlayOptions,
) -> Result<OverlayReport> {
    Ok(stage_overlay(base, patches, out, opts)?.commit()?.0)
}

/// Plans the overlay of `patches` on `base` at `out` and either finds `out`
/// already holding exactly its bytes (compared without writing anything) or
/// writes it to a temporary file beside `out` (see [`Staged`]).
pub fn stage_overlay(
    base: &mut Image,
    patches: &[Patch],
    out: &Path,
    opts: &OverlayOptions,
) -> Result<Staged> {
    let cs = opts.cluster_size;
    check_cluster_size(cs)?;
    let size = base.size();
    for p in patches {
        check_range(p.offset(), p.len(), size)?;
    }
    base.refuse_as_output(out)?;
    base.refuse_as_qemu_backing()?;
    let backing =
        backing_name::backing_name_canonical(base.canonical_path()?, out, opts.backing_name)?;
    let backing_format = base.format().name().to_string();

    // Every guest cluster a patch touches, as sorted, merged inclusive ranges.
    let touched = merge_spans(patched_clusters(patches, cs));
    let report = |data_clusters, zero_clusters, file_size| OverlayReport {
        path: out.to_path_buf(),
        virtual_size: size,
        cluster_size: Some(cs),
        backing_file: Some(backing.clone()),
        backing_format: Some(backing_format.clone()),
        compression: None,
        raw_copy: None,
        data_clusters: Some(data_clusters),
        zero_clusters: Some(zero_clusters),
        compressed_clusters: None,
        file_size,
        allocated_size: 0,
    };

    crate::output::check_target(out)?;
    let mut status = Status::Written;
    if out.symlink_metadata().is_ok() {
        // Compare what would be written with the file, writing nothing. A
        // path that cannot be read (a dangling symlink) differs.
        if let Ok(existing) = std::fs::File::open(out) {
            let mut layout = OverlayLayout::new(size, cs, &backing, &backing_format, &touched)?;
            let mut w = layout::Writer::comparing(&existing, out);
            let file_size = emit(base, patches, &touched, &mut layout, &mut w, false)?;
            if !w.differs() {
                log::info!("{} already holds these bytes: left alone", out.display());
                return Ok(Staged {
                    file: None,
                    report: report(layout.data_clusters(), layout.zero_clusters(), file_size),
                    status: Status::Unchanged,
                });
            }
        }
        if !opts.overwrite {
            return Err(Error::Usage(format!(
                "{} exists and differs from what would be written; pass --overwrite to replace it",
                out.display()
            )));
        }
        status = Status::Replaced;
    }
    let mut layout = OverlayLayout::new(size, cs, &backing, &backing_format, &touched)?;
    let mut target = AtomicFile::create(out, status == Status::Replaced)?;
    target.set_sync(opts.sync);
    let mut writer = layout::Writer::new(target.file(), target.target());
    let file_size = emit(base, patches, &touched, &mut layout, &mut writer, false)?;
    Ok(Staged {
        report: report(layout.data_clusters(), layout.zero_clusters(), file_size),
        file: Some(target),
        status,
    })
}

/// A usage error unless `cs` is a cluster size qcow2 allows (a power of two
/// from 512 bytes to 2 MiB).
pub(crate) fn check_cluster_size(cs: u64) -> Result<()> {
    if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
        return Err(Error::Usage(format!(
            "cluster size {cs} must be a power of two from 512 to 2097152 bytes"
        )));
    }
    Ok(())
}

/// The guest clusters each patch touches, as inclusive ranges (unsorted).
pub(crate) fn patched_clusters(patches: &[Patch], cs: u64) -> Vec<(u64, u64)> {
    patches
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| (p.offset() / cs, (p.offset() + p.len() - 1) / cs))
        .collect()
}

/// Sorts and merges inclusive ranges that overlap or touch.
pub(crate) fn merge_spans(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (first, last) in spans {
        match out.last_mut() {
            Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// Reads the `touched` clusters through `base`, applies `patches` and feeds
/// them to `layout`; returns the file size. Clusters that end up all zeros
/// are recorded as zero clusters, or left out with `skip_zeros` (a
/// standalone image, where an unallocated cluster reads as zeros).
pub(crate) fn emit(
    base: &mut Image,
    patches: &[Patch],
    touched: &[(u64, u64)],
    layout: &mut OverlayLayout,
    writer: &mut layout::Writer,
    skip_zeros: bool,
) -> Result<u64> {
    let size = base.size();
    let cs = layout.cluster_size();
    let mut buf = vec![0u8; cs as usize];
    for cluster in touched.iter().flat_map(|&(first, last)| first..=last) {
        let start = cluster * cs;
        let valid = (size - start).min(cs) as usize;
        let content = if fully_zeroed(patches, start, valid as u64) {
            ClusterContent::Zero
        } else {
            buf.fill(0);
            base.read_at(start, &mut buf[..valid])?;
            for p in patches {
                p.apply(start, &mut buf[..valid]);
            }
            if crate::output::is_zero(&buf) {
                ClusterContent::Zero
            } else {
                ClusterContent::Data(&buf)
            }
        };
        if skip_zeros && matches!(content, ClusterContent::Zero) {
            continue;
        }
        layout.add_cluster(writer, cluster, content)?;
    }
    layout.finish(writer)
}

/// Whether the last patch covering each byte of `[start, start+len)` is a
/// zero patch (so the cluster's content is known without reading the base).
fn fully_zeroed(patches: &[Patch], start: u64, len: u64) -> bool {
    patches.iter().any(|p| {
        matches!(p, Patch::Zero { .. })
            && p.offset() <= start
            && p.offset() + p.len() >= start + len
    }) && !patches.iter().any(|p| {
        matches!(p, Patch::Data { .. }) && p.offset() < start + len && p.offset() + p.len() > start
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_apply_in_order_and_clip() {
        let mut buf = vec![1u8; 8];
        let ps = [
            Patch::Zero {
                offset: 2,
                len: 100,
            },
            Patch::Data {
                offset: 6,
                bytes: vec![9, 9, 9, 9],
            },
        ];
        for p in &ps {
            p.apply(0, &mut buf);
        }
        assert_eq!(buf, [1, 1, 0, 0, 0, 0, 9, 9]);
        let mut b2 = vec![1u8; 4];
        ps[1].apply(8, &mut b2);
        assert_eq!(b2, [9, 9, 1, 1]);
        assert!(!fully_zeroed(&ps, 0, 8));
        assert!(fully_zeroed(&ps, 16, 8));
    }
}

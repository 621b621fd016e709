//! Standalone outputs: the whole damaged guest in one file that needs no
//! backing chain, for platforms that take none.
//!
//! [`stage_raw`] writes a raw image: a reflink clone of the base when the
//! base is one raw file on the output's filesystem (`FICLONE`: the copy
//! shares every block with the base and costs no space until written),
//! otherwise a sparse copy of the guest (runs a raw image of the chain
//! stores are copied with `copy_file_range`, other data is read through the
//! chain, zeros and holes are skipped); then the patches are written on top
//! (a zeroed range is punched out where the filesystem can). [`stage_qcow2`]
//! writes a self-contained qcow2 image with qfault's own writer
//! ([`crate::overlay`]'s layout): only the clusters holding non-zero bytes
//! are stored, optionally compressed. Both go to a temporary file beside the
//! target (see [`crate::output`]) and hold the same guest bytes for the same
//! inputs; an existing target that already holds exactly those guest bytes
//! (raw) or file bytes (qcow2) is left alone.

use crate::error::{Error, Result};
use crate::image::qcow2::{header::CompressionType, Qcow2Image};
use crate::image::raw::RawImage;
use crate::image::storage::FileStorage;
use crate::image::{check_range, Image, Layer, ReadAt};
use crate::output::{write_nonzero, AtomicFile};
use crate::overlay::{
    emit, layout, merge_spans, patched_clusters, OverlayLayout, OverlayReport, Patch, Staged,
    Status,
};
use crate::verify::first_difference;
use serde::Serialize;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Guest bytes asked of the chain per extent and read per request.
const CHUNK: u64 = 4 << 20;

/// How a raw output got the base's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawCopy {
    /// A reflink clone of the raw base (`FICLONE`): every unchanged block
    /// is shared with the base.
    Reflink,
    /// A sparse copy of the guest (`copy_file_range` from raw images,
    /// reads through the chain otherwise; zeros left as holes).
    SparseCopy,
    /// An existing output found to hold exactly these bytes: nothing copied.
    None,
}

/// Opens the raw file `file` (named `name` in messages) as a one-image
/// chain.
pub fn open_raw(file: &Path, name: &Path) -> Result<Image> {
    let f = File::open(file).map_err(|e| Error::io(name, e))?;
    Ok(Image::from_layer(Layer::Raw(RawImage::from_file(f, name)?)))
}

/// Opens the standalone qcow2 file `file` (named `name` in messages) as a
/// one-image chain; a backing file it names is an error.
pub fn open_qcow2(file: &Path, name: &Path) -> Result<Image> {
    let f = File::open(file).map_err(|e| Error::io(name, e))?;
    let q = Qcow2Image::open(Box::new(FileStorage::new(f, name)?))?;
    if q.header().backing_file.is_some() {
        return Err(Error::malformed(
            name,
            "a standalone image names a backing file",
        ));
    }
    Ok(Image::from_layer(Layer::Qcow2(Box::new(q))))
}

/// The report of a standalone output before its file is placed.
fn report(out: &Path, size: u64) -> OverlayReport {
    OverlayReport {
        path: out.to_path_buf(),
        virtual_size: size,
        cluster_size: None,
        backing_file: None,
        backing_format: None,
        compression: None,
        raw_copy: None,
        data_clusters: None,
        zero_clusters: None,
        compressed_clusters: None,
        file_size: 0,
        allocated_size: 0,
    }
}

/// Checks the patches and the output path; `Some(status)` of an existing
/// target: `Unchanged` when `same` says it already holds the output.
fn existing(
    base: &mut Image,
    patches: &[Patch],
    out: &Path,
    overwrite: bool,
    same: &mut dyn FnMut(&File, &mut Image) -> Result<bool>,
) -> Result<Status> {
    for p in patches {
        check_range(p.offset(), p.len(), base.size())?;
    }
    base.refuse_as_output(out)?;
    if out.symlink_metadata().is_err() {
        return Ok(Status::Written);
    }
    // A path that cannot be read (a dangling symlink) differs.
    if let Ok(f) = File::open(out) {
        if f.metadata().is_ok_and(|m| m.is_file()) && same(&f, base)? {
            return Ok(Status::Unchanged);
        }
    }
    if !overwrite {
        return Err(Error::Usage(format!(
            "{} exists and differs from what would be written; pass --overwrite to replace it",
            out.display()
        )));
    }
    Ok(Status::Replaced)
}

/// Writes the guest of `base` with `patches` applied as a raw file for
/// `out` (see the module documentation), or finds `out` already holding
/// exactly those bytes.
pub fn stage_raw(
    base: &mut Image,
    patches: &[Patch],
    out: &Path,
    overwrite: bool,
) -> Result<Staged> {
    let size = base.size();
    let status = existing(base, patches, out, overwrite, &mut |f, base| {
        let len = f.metadata().map_err(|e| Error::io(out, e))?.len();
        if len != size {
            return Ok(false);
        }
        let f = f.try_clone().map_err(|e| Error::io(out, e))?;
        let mut old = Image::from_layer(Layer::Raw(RawImage::from_file(f, out)?));
        Ok(first_difference(&mut old, base, patches)?.is_none())
    })?;
    let mut r = report(out, size);
    if status == Status::Unchanged {
        r.raw_copy = Some(RawCopy::None);
        r.file_size = size;
        return Ok(Staged::new(None, r, status));
    }
    let target = AtomicFile::create(out, status == Status::Replaced)?;
    let file = target.file();
    let copy = if reflink(base, file) {
        RawCopy::Reflink
    } else {
        file.set_len(0).map_err(|e| Error::io(out, e))?;
        sparse_copy(base, file, out)?;
        RawCopy::SparseCopy
    };
    file.set_len(size).map_err(|e| Error::io(out, e))?;
    for p in patches {
        match p {
            Patch::Zero { offset, len } => zero_range(file, out, *offset, *len)?,
            Patch::Data { offset, bytes } => {
                use std::os::unix::fs::FileExt;
                file.write_all_at(bytes, *offset)
                    .map_err(|e| Error::io(out, e))?;
            }
        }
    }
    r.raw_copy = Some(copy);
    r.file_size = size;
    Ok(Staged::new(Some(target), r, status))
}

/// Clones the base into `dst` when the base is one raw file and the
/// filesystem shares blocks between files (`FICLONE`); false otherwise
/// (another filesystem, no reflink support, a chain), with `dst` to be
/// written from scratch.
fn reflink(base: &Image, dst: &File) -> bool {
    let [Layer::Raw(r)] = base.layers() else {
        return false;
    };
    // SAFETY: FICLONE takes the source descriptor as its argument and
    // reads no memory of ours; both descriptors are open.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, r.file().as_raw_fd()) };
    rc == 0
}

/// Copies every guest range of `base` that does not read as zeros into
/// the empty file `dst` at the same offset.
fn sparse_copy(base: &mut Image, dst: &File, out: &Path) -> Result<()> {
    let size = base.size();
    let mut buf = Vec::new();
    let mut pos = 0;
    while pos < size {
        let e = base.extent(pos, CHUNK)?;
        if !e.zero {
            let from_raw = match (e.depth, e.compressed) {
                (Some(d), false) => match &base.layers()[d] {
                    Layer::Raw(r) => copy_range(r.file(), dst, pos, e.length),
                    _ => false,
                },
                _ => false,
            };
            if !from_raw {
                buf.resize(e.length as usize, 0);
                base.read_at(pos, &mut buf)?;
                write_nonzero(dst, out, pos, &buf)?;
            }
        }
        pos += e.length;
    }
    Ok(())
}

/// `copy_file_range` of `[pos, pos + len)` from `src` to the same offset
/// of `dst`; bytes past the end of `src` stay zeros. False when the kernel
/// cannot copy between these files (the caller reads and writes instead).
fn copy_range(src: &File, dst: &File, pos: u64, len: u64) -> bool {
    let (Ok(mut off_in), Ok(mut off_out)) = (i64::try_from(pos), i64::try_from(pos)) else {
        return false;
    };
    let mut left = len;
    while left > 0 {
        let n = left.min(1 << 30) as usize;
        // SAFETY: both descriptors are open; the offsets are ours and
        // updated by the kernel.
        let r = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                n,
                0,
            )
        };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        if r == 0 {
            // The source ends here (a raw file's last partial sector).
            return true;
        }
        left -= r as u64;
    }
    true
}

/// Makes `[offset, offset + len)` of `file` read as zeros: punched out
/// (the filesystem frees the blocks) or, where it cannot, written.
fn zero_range(file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    if let (Ok(o), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) {
        // SAFETY: fallocate on an open descriptor; no memory is passed.
        let r = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                o,
                l,
            )
        };
        if r == 0 {
            return Ok(());
        }
    }
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; (len.min(CHUNK)) as usize];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(CHUNK) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| Error::io(path, e))?;
        at += n as u64;
    }
    Ok(())
}

/// Writes the guest of `base` with `patches` applied as a self-contained
/// qcow2 image for `out` with `cs`-byte clusters, compressed with
/// `compression` when given, or finds `out` already holding exactly those
/// bytes.
pub fn stage_qcow2(
    base: &mut Image,
    patches: &[Patch],
    out: &Path,
    cs: u64,
    compression: Option<CompressionType>,
    overwrite: bool,
) -> Result<Staged> {
    crate::overlay::check_cluster_size(cs)?;
    let size = base.size();
    let touched = stored_candidates(base, patches, cs)?;
    // (data clusters, compressed ones, file size) of an existing file found
    // identical.
    let mut found = None;
    let status = existing(base, patches, out, overwrite, &mut |f, base| {
        let mut layout = OverlayLayout::standalone(size, cs, &touched, compression)?;
        let mut w = layout::Writer::comparing(f, out);
        let file_size = emit(base, patches, &touched, &mut layout, &mut w, true)?;
        found = Some((
            layout.data_clusters(),
            layout.compressed_clusters(),
            file_size,
        ));
        Ok(!w.differs())
    })?;
    let (target, (data_clusters, compressed_clusters, file_size)) = match (status, found) {
        (Status::Unchanged, Some(counts)) => (None, counts),
        _ => {
            let t = AtomicFile::create(out, status == Status::Replaced)?;
            let mut layout = OverlayLayout::standalone(size, cs, &touched, compression)?;
            let mut w = layout::Writer::new(t.file(), t.target());
            let file_size = emit(base, patches, &touched, &mut layout, &mut w, true)?;
            let counts = (
                layout.data_clusters(),
                layout.compressed_clusters(),
                file_size,
            );
            (Some(t), counts)
        }
    };
    let mut r = report(out, size);
    r.cluster_size = Some(cs);
    r.compression = compression;
    r.data_clusters = Some(data_clusters);
    r.zero_clusters = Some(0);
    r.compressed_clusters = compression.map(|_| compressed_clusters);
    r.file_size = file_size;
    Ok(Staged::new(target, r, status))
}

/// The guest clusters that may hold non-zero bytes: those a range of the
/// chain that does not read as zeros touches, and those a patch touches;
/// as sorted, merged inclusive ranges.
fn stored_candidates(base: &mut Image, patches: &[Patch], cs: u64) -> Result<Vec<(u64, u64)>> {
    let size = base.size();
    let mut spans = patched_clusters(patches, cs);
    let mut pos = 0;
    while pos < size {
        let e = base.extent(pos, size - pos)?;
        if !e.zero {
            spans.push((pos / cs, (pos + e.length - 1) / cs));
        }
        pos += e.length;
    }
    Ok(merge_spans(spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_ranges_merge() {
        assert_eq!(
            merge_spans(vec![(5, 6), (0, 1), (2, 2), (8, 9), (9, 12)]),
            vec![(0, 2), (5, 6), (8, 12)]
        );
    }
}

//! Writing one overlay idempotently: a missing output is written; an
//! existing one is compared with what would be written (overlays are
//! byte-for-byte deterministic) and left alone when equal, replaced only
//! when asked.

use super::report::Status;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::output::{parent_dir, TMP_MARKER};
use crate::overlay::{write_overlay, OverlayOptions, OverlayReport, Patch};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Writes the overlay of `patches` on `base` at `out`, or finds it there.
/// `opts.overwrite` is ignored: `overwrite` decides what happens to an
/// existing output whose bytes differ (replaced, or a usage error).
pub(crate) fn place_overlay(
    base_path: &Path,
    base: &mut Image,
    patches: &[Patch],
    out: &Path,
    opts: &OverlayOptions,
    overwrite: bool,
) -> Result<(OverlayReport, Status)> {
    let opts = OverlayOptions {
        overwrite: false,
        ..opts.clone()
    };
    if out.symlink_metadata().is_err() {
        return Ok((
            write_overlay(base_path, base, patches, out, &opts)?,
            Status::Written,
        ));
    }
    // Written beside the target, so the relative backing name is the same,
    // and named like qfault's temporaries so a killed run's copy is cleaned up.
    let candidate = candidate_path(out)?;
    let _ = std::fs::remove_file(&candidate);
    let guard = RemoveOnDrop(candidate.clone());
    let mut report = write_overlay(base_path, base, patches, &candidate, &opts)?;
    report.path = out.to_path_buf();
    if same_content(&candidate, out)? {
        return Ok((report, Status::Unchanged));
    }
    if !overwrite {
        return Err(Error::Usage(format!(
            "{} exists and differs from what would be written; pass --overwrite to replace it",
            out.display()
        )));
    }
    std::fs::rename(&candidate, out).map_err(|e| Error::io(out, e))?;
    std::mem::forget(guard);
    let dir = parent_dir(out);
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(&dir, e))?;
    Ok((report, Status::Replaced))
}

/// `.NAME.qfault-tmp.PID` beside `out`.
fn candidate_path(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} does not name a file", out.display())))?;
    Ok(parent_dir(out).join(format!(
        ".{}{TMP_MARKER}{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Whether two files hold the same bytes.
fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| Error::io(p, e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let len =
        |f: &std::fs::File, p: &Path| f.metadata().map(|m| m.len()).map_err(|e| Error::io(p, e));
    if len(&fa, a)? != len(&fb, b)? {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, a, &mut ba)?;
        let m = read_full(&mut fb, b, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &mut std::fs::File, path: &Path, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(done)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

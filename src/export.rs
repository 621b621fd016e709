//! Flattening a guest disk (or a range of it) into a sparse raw file.
//!
//! Ranges the chain reports as zeros are never read; data that reads as
//! zeros is not written either, so the output keeps holes wherever the guest
//! reads zeros.

use crate::error::{Error, Result};
use crate::image::{check_range, Image, ReadAt};
use crate::output::{write_nonzero, AtomicFile};
use std::path::Path;

/// Bytes read per request.
const CHUNK: u64 = 4 << 20;

/// Writes guest bytes `[start, start + len)` of `image` to `out` as a sparse
/// raw file, atomically. `progress(done, total)` is called as bytes are done.
pub fn export_raw(
    image: &mut Image,
    start: u64,
    len: u64,
    out: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    check_range(start, len, image.size())?;
    image.refuse_as_output(out)?;
    let target = AtomicFile::create(out, overwrite)?;
    let file = target.file();
    let tmp = target.tmp_path().to_path_buf();
    file.set_len(len).map_err(|e| Error::io(&tmp, e))?;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut pos = 0u64;
    while pos < len {
        let ext = image.extent(start + pos, (len - pos).min(CHUNK))?;
        if !ext.zero {
            let n = ext.length as usize;
            let chunk = &mut buf[..n];
            image.read_at(start + pos, chunk)?;
            write_nonzero(file, &tmp, pos, chunk)?;
        }
        pos += ext.length;
        progress(pos, len);
    }
    target.commit()
}

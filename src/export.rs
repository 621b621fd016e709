//! Flattening a guest disk (or a range of it) into a sparse raw file.
//!
//! Ranges the chain reports as zeros are never read; data that reads as
//! zeros is not written either, so the output keeps holes wherever the guest
//! reads zeros. Reading and writing overlap (a writer thread, a few chunks in
//! flight), and the output is fsynced once, at the end (unless the caller
//! asks for no sync, like qemu-img's default output cache mode).

use crate::error::{Error, Result};
use crate::image::{check_range, Image, ReadAt};
use crate::output::{write_nonzero, AtomicFile};
use std::path::Path;
use std::sync::mpsc;

/// Bytes read per request.
const CHUNK: u64 = 4 << 20;
/// Chunks in flight between the reader and the writer thread (memory bound:
/// BUFFERS × CHUNK).
const BUFFERS: usize = 3;

/// Writes guest bytes `[start, start + len)` of `image` to `out` as a sparse
/// raw file, atomically; with `sync`, flushed to stable storage before this
/// returns. `progress(done, total)` is called as bytes are done.
pub fn export_raw(
    image: &mut Image,
    start: u64,
    len: u64,
    out: &Path,
    overwrite: bool,
    sync: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    check_range(start, len, image.size())?;
    image.refuse_as_output(out)?;
    let mut target = AtomicFile::create(out, overwrite)?;
    target.set_sync(sync);
    let file = target.file();
    // Errors name the target: the temporary file's name means nothing to
    // the user.
    file.set_len(len).map_err(|e| Error::io(out, e))?;
    // Read in this thread (the image is not Send) while a writer thread
    // writes the previous chunks: BUFFERS chunks in flight at most.
    std::thread::scope(|scope| -> Result<()> {
        let (full_tx, full_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(BUFFERS);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..BUFFERS {
            free_tx
                .send(Vec::with_capacity(CHUNK as usize))
                .expect("receiver alive");
        }
        let writer = scope.spawn(move || -> Result<()> {
            for (pos, buf) in full_rx {
                write_nonzero(file, out, pos, &buf)?;
                // The reader may have stopped already; then the buffer is dropped.
                let _ = free_tx.send(buf);
            }
            Ok(())
        });
        let read = (|| -> Result<()> {
            let mut pos = 0u64;
            while pos < len {
                let ext = image.extent(start + pos, (len - pos).min(CHUNK))?;
                if !ext.zero {
                    // No free buffer means the writer stopped: its error wins.
                    let Ok(mut buf) = free_rx.recv() else {
                        return Ok(());
                    };
                    buf.resize(ext.length as usize, 0);
                    image.read_at(start + pos, &mut buf)?;
                    if full_tx.send((pos, buf)).is_err() {
                        return Ok(());
                    }
                }
                pos += ext.length;
                progress(pos, len);
            }
            Ok(())
        })();
        drop(full_tx);
        let written = writer.join().expect("the writer thread does not panic");
        read.and(written)
    })?;
    target.commit()
}

//! Flattening a guest disk (or a range of it) into a sparse raw file.
//!
//! Ranges the chain reports as zeros are never read and stay holes. The
//! rest is done by a few worker threads while this thread walks the chain's
//! mapping ([`Image::extent`]):
//! - uncompressed data stored in a raw file or a qcow2 file is copied by the
//!   kernel from that file to the output (`copy_file_range`), without
//!   passing through this process; holes of that file stay holes. These
//!   bytes are not looked at, so a stored run of zeros is written (it reads
//!   the same; `qemu-img convert` would leave a hole there);
//! - compressed qcow2 clusters are read and inflated by the workers, several
//!   clusters per request, on as many cores as there are workers;
//! - anything else (other formats, images in memory) is read through
//!   [`Image::read_at`] here and written by a worker.
//!
//! Data that was read or inflated is written without its all-zero 4 KiB
//! blocks, which stay holes. The output is fsynced once, at the end (unless
//! the caller asks for no sync, like qemu-img's default output cache mode);
//! when it will be, write-back of each piece is started as soon as it is
//! written, so the final flush has little left to do.

use crate::error::{Error, Result};
use crate::image::qcow2::compressed::decompress_into;
use crate::image::qcow2::{CompressionType, Mapping};
use crate::image::raw::read_exact_at;
use crate::image::{check_range, ChainExtent, Image, Layer, ReadAt};
use crate::output::{write_nonzero, AtomicFile};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// Most guest bytes asked of the chain at once, and most bytes one copy
/// request covers.
const COPY_CHUNK: u64 = 8 << 20;
/// Most bytes one read or inflate request covers (each holds a buffer of
/// this size).
const BUF_CHUNK: u64 = 4 << 20;
/// Most worker threads.
const MAX_WORKERS: usize = 4;
/// Requests queued beyond those the workers are doing.
const QUEUE: usize = 4;

/// A source file of the chain, shared with the workers.
struct Source {
    file: File,
    path: PathBuf,
}

/// One compressed cluster (or part of one) of an inflate request.
struct Piece {
    /// Where the compressed stream lies in the source file, and its length
    /// (bounded by the file's end).
    offset: u64,
    len: u64,
    /// The first byte wanted inside the inflated cluster, and how many.
    in_cluster: usize,
    n: usize,
    /// Guest offset of the cluster (for messages).
    guest: u64,
}

/// Work for the worker threads; `pos` is the offset in the output.
enum Job {
    /// Copy `len` bytes at `host` in `src` (holes stay holes).
    Copy {
        src: Arc<Source>,
        host: u64,
        pos: u64,
        len: u64,
    },
    /// Write the non-zero blocks of `buf`.
    Write { pos: u64, buf: Vec<u8> },
    /// Inflate `pieces` (consecutive in the guest) from `src` and write them.
    Inflate {
        src: Arc<Source>,
        kind: CompressionType,
        cluster: usize,
        pieces: Vec<Piece>,
        pos: u64,
        buf: Vec<u8>,
    },
}

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
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS);
    let buffers = workers + QUEUE;
    let failed = AtomicBool::new(false);
    let mut done = Done::default();
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(QUEUE);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| -> Result<()> {
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..buffers {
            free_tx.send(Vec::new()).expect("receiver alive");
        }
        for _ in 0..workers {
            let free_tx = free_tx.clone();
            let (job_rx, failed, first_error) = (&job_rx, &failed, &first_error);
            scope.spawn(move || {
                let mut w = Worker {
                    out: file,
                    out_path: out,
                    writeback: sync,
                    input: Vec::new(),
                    scratch: Vec::new(),
                    bounce: Vec::new(),
                };
                loop {
                    let job = match job_rx.lock().expect("no worker panics").recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    match w.run(job) {
                        Ok(Some(buf)) => {
                            // The reader may have stopped: then it is dropped.
                            let _ = free_tx.send(buf);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            first_error
                                .lock()
                                .expect("no worker panics")
                                .get_or_insert(e);
                            failed.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            });
        }
        drop(free_tx);
        let read = plan(
            image, start, len, &job_tx, &free_rx, &failed, progress, &mut done,
        );
        // Closing the queue ends the workers once it is drained; the scope
        // waits for them.
        drop(job_tx);
        read
    })?;
    if let Some(e) = first_error.into_inner().expect("no worker panics") {
        return Err(e);
    }
    log::info!(
        "export: {} bytes copied by the kernel (copy_file_range), {} inflated, {} read, {} workers",
        done.copied,
        done.inflated,
        done.read,
        workers
    );
    target.commit()
}

/// Guest bytes queued per way of doing them (logged with `-v`).
#[derive(Debug, Default)]
struct Done {
    copied: u64,
    inflated: u64,
    read: u64,
}

/// Walks the chain's mapping over `[start, start + len)` and queues the
/// work; stops early (without an error of its own) when a worker failed.
#[allow(clippy::too_many_arguments)]
fn plan(
    image: &mut Image,
    start: u64,
    len: u64,
    jobs: &mpsc::SyncSender<Job>,
    free: &mpsc::Receiver<Vec<u8>>,
    failed: &AtomicBool,
    progress: &mut dyn FnMut(u64, u64),
    done: &mut Done,
) -> Result<()> {
    let mut sources: HashMap<usize, Option<Arc<Source>>> = HashMap::new();
    let mut pos = 0u64;
    let mut next: Option<ChainExtent> = None;
    // A free buffer, or None when the workers are gone (one failed).
    let take_buf = || free.recv().ok();
    while pos < len {
        if failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let ext = match next.take() {
            Some(e) => e,
            None => image.extent(start + pos, (len - pos).min(COPY_CHUNK))?,
        };
        let mut n = ext.length;
        let source = if ext.zero {
            None
        } else {
            source_of(image, &mut sources, ext.layer)
        };
        let job = if ext.zero {
            None
        } else if let (Some(src), Some(host), false) = (&source, ext.host_offset, ext.compressed) {
            done.copied += n;
            Some(Job::Copy {
                src: Arc::clone(src),
                host,
                pos,
                len: n,
            })
        } else if let (Some(src), true, Some((kind, cluster, file_len))) =
            (&source, ext.compressed, qcow2_geometry(image, ext.layer))
        {
            let Some(mut buf) = take_buf() else {
                return Ok(());
            };
            let mut pieces = Vec::new();
            let mut total = 0u64;
            let mut e = ext;
            // Consecutive compressed clusters of the same image, one request.
            loop {
                let Mapping::Compressed {
                    descriptor,
                    in_cluster,
                } = image.layer_map(e.layer, e.start, e.length)?.mapping
                else {
                    return Err(Error::Chain {
                        reason: format!(
                            "{}: the mapping at guest offset {} changed while exporting",
                            image.layers()[e.layer].path().display(),
                            e.start
                        ),
                    });
                };
                let in_cluster = in_cluster.min(cluster as u64);
                let m = e.length.min(cluster as u64 - in_cluster);
                if m == 0 {
                    return Err(Error::Chain {
                        reason: format!(
                            "{}: compressed extent at guest offset {} lies outside its cluster",
                            image.layers()[e.layer].path().display(),
                            e.start
                        ),
                    });
                }
                pieces.push(Piece {
                    offset: descriptor.offset,
                    len: descriptor
                        .len
                        .min(file_len.saturating_sub(descriptor.offset)),
                    in_cluster: in_cluster as usize,
                    n: m as usize,
                    guest: e.start - in_cluster,
                });
                total += m;
                if m < e.length {
                    // Only part of the extent taken: the rest is asked again.
                    break;
                }
                let at = pos + total;
                if at >= len || total + cluster as u64 > BUF_CHUNK {
                    break;
                }
                let following = image.extent(start + at, (len - at).min(COPY_CHUNK))?;
                if following.compressed && following.layer == ext.layer {
                    e = following;
                } else {
                    next = Some(following);
                    break;
                }
            }
            n = total;
            done.inflated += n;
            // One byte more: the inflater's overflow check (decompress_into).
            // Every byte is overwritten: what the buffer held stays (no
            // memset of megabytes per request).
            buf.resize(n as usize + 1, 0);
            Some(Job::Inflate {
                src: Arc::clone(src),
                kind,
                cluster,
                pieces,
                pos,
                buf,
            })
        } else {
            n = n.min(BUF_CHUNK);
            let Some(mut buf) = take_buf() else {
                return Ok(());
            };
            buf.resize(n as usize, 0);
            image.read_at(start + pos, &mut buf)?;
            done.read += n;
            Some(Job::Write { pos, buf })
        };
        if let Some(job) = job {
            if jobs.send(job).is_err() {
                return Ok(());
            }
        }
        pos += n;
        progress(pos, len);
    }
    Ok(())
}

/// A qcow2 image's compression type, cluster size and file length.
fn qcow2_geometry(image: &Image, layer: usize) -> Option<(CompressionType, usize, u64)> {
    match image.layers().get(layer)? {
        Layer::Qcow2(q) => Some((
            q.header().compression_type,
            q.header().cluster_size() as usize,
            q.file_len(),
        )),
        _ => None,
    }
}

/// The file of chain image `layer` for the workers (a duplicate
/// descriptor), when its data can be read from it directly; found once.
fn source_of(
    image: &Image,
    sources: &mut HashMap<usize, Option<Arc<Source>>>,
    layer: usize,
) -> Option<Arc<Source>> {
    sources
        .entry(layer)
        .or_insert_with(|| {
            let l = image.layers().get(layer)?;
            // A duplicate fails at the open-file limit: then this image's
            // data is read through the chain like any other.
            let file = l.data_file()?.try_clone().ok()?;
            Some(Arc::new(Source {
                file,
                path: l.path().to_path_buf(),
            }))
        })
        .clone()
}

/// One worker thread's state: the output and reusable buffers.
struct Worker<'a> {
    out: &'a File,
    out_path: &'a Path,
    /// Start write-back of each piece once written (the output will be
    /// fsynced at the end).
    writeback: bool,
    input: Vec<u8>,
    scratch: Vec<u8>,
    bounce: Vec<u8>,
}

impl Worker<'_> {
    /// Does `job`; returns its buffer, if it had one, for reuse.
    fn run(&mut self, job: Job) -> Result<Option<Vec<u8>>> {
        match job {
            Job::Copy {
                src,
                host,
                pos,
                len,
            } => {
                self.copy(&src, host, pos, len)?;
                self.start_writeback(pos, len);
                Ok(None)
            }
            Job::Write { pos, buf } => {
                write_nonzero(self.out, self.out_path, pos, &buf)?;
                self.start_writeback(pos, buf.len() as u64);
                Ok(Some(buf))
            }
            Job::Inflate {
                src,
                kind,
                cluster,
                pieces,
                pos,
                mut buf,
            } => {
                let n = buf.len() - 1;
                self.inflate(&src, kind, cluster, &pieces, &mut buf)?;
                write_nonzero(self.out, self.out_path, pos, &buf[..n])?;
                self.start_writeback(pos, n as u64);
                Ok(Some(buf))
            }
        }
    }

    /// Copies `len` bytes at `host` in `src` to `pos` in the output; holes
    /// of `src` (and whatever lies past its end) are left as holes.
    fn copy(&mut self, src: &Source, host: u64, pos: u64, len: u64) -> Result<()> {
        let end = host + len;
        let mut at = host;
        while at < end {
            let Some((data, data_end)) = next_data(&src.file, at, end) else {
                return Ok(());
            };
            self.copy_range(src, data, pos + (data - host), data_end - data)?;
            at = data_end;
        }
        Ok(())
    }

    /// `copy_file_range`, falling back to reading and writing where the
    /// kernel cannot copy between these files.
    fn copy_range(&mut self, src: &Source, mut from: u64, mut to: u64, mut len: u64) -> Result<()> {
        while len > 0 {
            let mut off_in = from as libc::loff_t;
            let mut off_out = to as libc::loff_t;
            let want = len.min(1 << 30) as usize;
            // SAFETY: both descriptors are open for the whole call (owned by
            // `src` and the output file); the offsets are our own locals.
            let r = unsafe {
                libc::copy_file_range(
                    src.file.as_raw_fd(),
                    &mut off_in,
                    self.out.as_raw_fd(),
                    &mut off_out,
                    want,
                    0,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(
                        libc::EXDEV
                        | libc::EINVAL
                        | libc::EOPNOTSUPP
                        | libc::ENOSYS
                        | libc::EBADF
                        | libc::EPERM
                        | libc::ETXTBSY,
                    ) => return self.read_write(src, from, to, len),
                    _ => return Err(Error::io(self.out_path, e)),
                }
            }
            if r == 0 {
                // The end of the source file: the rest reads as zeros.
                return Ok(());
            }
            let r = r as u64;
            from += r;
            to += r;
            len -= r;
        }
        Ok(())
    }

    /// Copies through memory (zero blocks stay holes).
    fn read_write(&mut self, src: &Source, from: u64, to: u64, len: u64) -> Result<()> {
        let step = BUF_CHUNK.min(len) as usize;
        self.bounce.resize(step, 0);
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(step as u64) as usize;
            let buf = &mut self.bounce[..n];
            read_exact_at(&src.file, &src.path, from + done, buf)?;
            write_nonzero(self.out, self.out_path, to + done, buf)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Inflates `pieces` into `buf` (one byte longer than their total).
    fn inflate(
        &mut self,
        src: &Source,
        kind: CompressionType,
        cluster: usize,
        pieces: &[Piece],
        buf: &mut [u8],
    ) -> Result<()> {
        // The compressed streams usually follow each other in the file: read
        // them with one request when they do.
        let lo = pieces.iter().map(|p| p.offset).min().unwrap_or(0);
        let hi = pieces.iter().map(|p| p.offset + p.len).max().unwrap_or(0);
        let sum: u64 = pieces.iter().map(|p| p.len).sum();
        let together = hi - lo <= 2 * sum + (64 << 10);
        if together {
            self.input.resize((hi - lo) as usize, 0);
            read_exact_at(&src.file, &src.path, lo, &mut self.input)?;
        }
        let mut at = 0usize;
        for p in pieces {
            let input: &[u8] = if together {
                let s = (p.offset - lo) as usize;
                &self.input[s..s + p.len as usize]
            } else {
                self.scratch.resize(p.len as usize, 0);
                read_exact_at(&src.file, &src.path, p.offset, &mut self.scratch)?;
                &self.scratch
            };
            if p.in_cluster == 0 && p.n == cluster {
                // Straight into place; the byte after it is overwritten by
                // the next piece (or is the buffer's spare byte).
                decompress_into(
                    &src.path,
                    kind,
                    input,
                    &mut buf[at..at + cluster + 1],
                    p.guest,
                )?;
            } else {
                let mut whole = vec![0u8; cluster + 1];
                decompress_into(&src.path, kind, input, &mut whole, p.guest)?;
                buf[at..at + p.n].copy_from_slice(&whole[p.in_cluster..p.in_cluster + p.n]);
            }
            at += p.n;
        }
        Ok(())
    }

    /// Starts writing `[pos, pos + len)` of the output back to the disk, if
    /// it will be flushed anyway: the final fsync then waits for less.
    fn start_writeback(&self, pos: u64, len: u64) {
        if !self.writeback || len == 0 {
            return;
        }
        // SAFETY: sync_file_range on the output's descriptor; no memory is
        // passed. It is a hint: an error only means the fsync does it all.
        unsafe {
            libc::sync_file_range(
                self.out.as_raw_fd(),
                pos as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
}

/// The first run of data in `file` within `[from, end)`: `(start, end)`,
/// skipping holes (SEEK_DATA/SEEK_HOLE); `None` when the rest is a hole.
/// Where the filesystem cannot tell, everything is data.
fn next_data(file: &File, from: u64, end: u64) -> Option<(u64, u64)> {
    let fd = file.as_raw_fd();
    let Ok(off) = libc::off_t::try_from(from) else {
        return Some((from, end));
    };
    // SAFETY: lseek on a descriptor we own; it has no memory effects (and
    // every read of this file is positional, so moving its offset is moot).
    let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
    if data < 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => None,
            _ => Some((from, end)),
        };
    }
    let data = data as u64;
    if data >= end {
        return None;
    }
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
    let hole = if hole < 0 {
        end
    } else {
        (hole as u64).min(end)
    };
    Some((data, hole.max(data + 1).min(end)))
}

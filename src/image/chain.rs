//! A backing chain opened as one guest disk.
//!
//! [`open`] opens the top image and every backing file it names (read-only),
//! detecting loops and bounding the depth. [`Image`] then serves reads by
//! asking each layer in turn what backs a range: data and zeros are answered
//! where they are found, unallocated ranges fall through to the next layer,
//! and ranges past a layer's end read as zeros.

use crate::error::{Error, Result};
use crate::image::backing::{self, BackingPolicy};
use crate::image::driver::{self, Driver};
use crate::image::qcow2::{header::MAGIC, Extent, Mapping, Qcow2Image};
use crate::image::raw::{read_exact_at, RawImage};
use crate::image::storage::{FileStorage, Storage};
use crate::image::{check_range, lock, ReadAt};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Default limit on the number of images in a chain: covers the chains
/// `qfault chain` builds (QEMU itself fails near 870 images). Memory stays
/// bounded whatever the depth: L1 tables by `MAX_CHAIN_L1_BYTES`, L2
/// caches by a chain-wide budget (see `qcow2::l2_cache`), and the open
/// files by the open-file limit, checked before opening.
pub const DEFAULT_MAX_DEPTH: usize = 1024;
/// Most bytes of L1 tables a whole chain may hold in memory (each image's is
/// bounded by QEMU's 32 MiB limit; this bounds their sum).
pub const MAX_CHAIN_L1_BYTES: u64 = 256 << 20;

/// An image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The file is the guest disk.
    Raw,
    /// QEMU copy-on-write version 2 or 3.
    Qcow2,
    /// VMware's virtual disk (sparse, streamOptimized, flat, split).
    Vmdk,
    /// Hyper-V's virtual hard disk v2.
    Vhdx,
    /// Virtual PC / Azure VHD (QEMU calls it `vpc`).
    #[value(alias = "vhd")]
    Vpc,
    /// VirtualBox's disk image.
    Vdi,
}

impl Format {
    /// The name QEMU uses for the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhdx => "vhdx",
            Format::Vpc => "vpc",
            Format::Vdi => "vdi",
        }
    }

    /// Parses a format name as recorded in a backing-format header extension.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
            "vmdk" => Some(Format::Vmdk),
            "vhdx" => Some(Format::Vhdx),
            "vpc" => Some(Format::Vpc),
            "vdi" => Some(Format::Vdi),
            _ => None,
        }
    }
}

/// How to open an image and its chain.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Format of the top image; probed (qcow2 magic, else raw) when `None`.
    pub format: Option<Format>,
    /// Most backing links to follow before giving up.
    pub max_depth: usize,
    /// Skip QEMU's image locks (like `qemu-img -U`): read even while
    /// another process writes the image.
    pub force_share: bool,
    /// What may be opened because an image names it: by default a backing
    /// file must have a recorded format and may be anywhere (see
    /// [`BackingPolicy`]).
    pub backing: BackingPolicy,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            format: None,
            max_depth: DEFAULT_MAX_DEPTH,
            force_share: false,
            backing: BackingPolicy::default(),
        }
    }
}

/// What one image of a chain is, as `qemu-img info` would say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerInfo {
    /// Path the image was opened at.
    #[serde(flatten, serialize_with = "crate::json_path::path")]
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Guest size in bytes.
    pub virtual_size: u64,
    /// Size of the image file in bytes.
    pub file_size: u64,
    /// Cluster size (qcow2), block size (dynamic VHD, VDI).
    pub cluster_size: Option<u64>,
    /// qcow2 version (qcow2 only).
    pub version: Option<u32>,
    /// Compression type of compressed clusters (qcow2 only).
    pub compression_type: Option<crate::image::qcow2::CompressionType>,
    /// Whether L2 entries are extended (sub-clusters).
    pub extended_l2: bool,
    /// Number of internal snapshots (qcow2 only; the active L1 is read).
    pub snapshots: u32,
    /// Backing file name exactly as stored in the header.
    pub backing_file: Option<String>,
    /// Backing format as stored in the header extension.
    pub backing_format: Option<String>,
}

/// One image of a chain.
#[derive(Debug)]
pub enum Layer {
    /// A raw file.
    Raw(RawImage),
    /// A qcow2 file.
    Qcow2(Box<Qcow2Image>),
    /// A file of another format, read by its driver.
    Driver(Box<dyn Driver>),
}

impl Layer {
    /// Guest size of this layer.
    pub fn size(&self) -> u64 {
        match self {
            Layer::Raw(r) => r.size(),
            Layer::Qcow2(q) => q.size(),
            Layer::Driver(d) => d.size(),
        }
    }

    /// The layer's format.
    pub fn format(&self) -> Format {
        match self {
            Layer::Raw(_) => Format::Raw,
            Layer::Qcow2(_) => Format::Qcow2,
            Layer::Driver(d) => d.format(),
        }
    }

    /// The path the layer was opened at.
    pub fn path(&self) -> &Path {
        match self {
            Layer::Raw(r) => r.path(),
            Layer::Qcow2(q) => q.path(),
            Layer::Driver(d) => d.path(),
        }
    }

    /// The file holding this layer's data at the host offsets its
    /// [`Layer::map`] reports: a raw file, or a qcow2 file opened from disk.
    /// `None` for other formats (their data may lie in other files) and
    /// for images in memory.
    pub fn data_file(&self) -> Option<&File> {
        match self {
            Layer::Raw(r) => Some(r.file()),
            Layer::Qcow2(q) => q.file(),
            Layer::Driver(_) => None,
        }
    }

    /// The backing file this layer names: (name as stored, recorded format).
    fn backing(&self) -> Option<(String, Option<String>)> {
        match self {
            Layer::Raw(_) => None,
            Layer::Qcow2(q) => {
                let h = q.header();
                Some((h.backing_file.clone()?, h.backing_format.clone()))
            }
            Layer::Driver(d) => d.backing().map(|b| (b.name, b.format)),
        }
    }

    /// What backs `offset` in this layer, for at most `max_len` bytes
    /// (`offset` below [`Layer::size`]). With `holes`, a raw layer reports
    /// file holes as [`Mapping::Zero`]; otherwise all of it is data.
    pub fn map(&mut self, offset: u64, max_len: u64, holes: bool) -> Result<Extent> {
        match self {
            Layer::Qcow2(q) => q.map(offset, max_len),
            Layer::Driver(d) => d.map(offset, max_len),
            Layer::Raw(r) => {
                let len = max_len.min(r.size() - offset);
                if holes {
                    if let Some(e) = raw_hole_extent(r, offset, len) {
                        return Ok(e);
                    }
                }
                Ok(Extent {
                    len,
                    mapping: Mapping::Data { host: offset },
                })
            }
        }
    }

    /// Reads bytes this layer stores (data or compressed) into `buf`.
    fn read_mapped(&mut self, mapping: Mapping, guest: u64, buf: &mut [u8]) -> Result<()> {
        match (self, mapping) {
            (Layer::Raw(r), Mapping::Data { host }) => read_exact_at(r.file(), r.path(), host, buf),
            (Layer::Qcow2(q), Mapping::Data { host }) => q.read_data(host, buf),
            (
                Layer::Qcow2(q),
                Mapping::Compressed {
                    descriptor,
                    in_cluster,
                },
            ) => q.read_compressed(descriptor, in_cluster, guest, buf),
            (Layer::Driver(d), m @ (Mapping::Data { .. } | Mapping::Compressed { .. })) => {
                d.read_mapped(m, guest, buf)
            }
            _ => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    fn info(&self) -> LayerInfo {
        match self {
            Layer::Raw(r) => LayerInfo {
                path: r.path().to_path_buf(),
                format: Format::Raw,
                virtual_size: r.size(),
                file_size: r.file_len(),
                cluster_size: None,
                version: None,
                compression_type: None,
                extended_l2: false,
                snapshots: 0,
                backing_file: None,
                backing_format: None,
            },
            Layer::Qcow2(q) => {
                let h = q.header();
                LayerInfo {
                    path: q.path().to_path_buf(),
                    format: Format::Qcow2,
                    virtual_size: q.size(),
                    file_size: q.file_len(),
                    cluster_size: Some(h.cluster_size()),
                    version: Some(h.version),
                    compression_type: Some(h.compression_type),
                    extended_l2: h.extended_l2(),
                    snapshots: h.nb_snapshots,
                    backing_file: h.backing_file.clone(),
                    backing_format: h.backing_format.clone(),
                }
            }
            Layer::Driver(d) => d.info(),
        }
    }
}

/// A hole in a raw file at `offset` (SEEK_DATA/SEEK_HOLE), as a zero extent;
/// `None` when `offset` is in data or the filesystem cannot tell.
fn raw_hole_extent(r: &RawImage, offset: u64, len: u64) -> Option<Extent> {
    use std::os::fd::AsRawFd;
    let fd = r.file().as_raw_fd();
    let off = libc::off_t::try_from(offset).ok()?;
    // SAFETY: lseek on a file descriptor we own; it has no memory effects.
    let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
    let hole_end = if data < 0 {
        // ENXIO: no data at or after offset.
        (std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO)).then_some(u64::MAX)?
    } else {
        data as u64
    };
    if hole_end > offset {
        return Some(Extent {
            len: len.min(hole_end - offset),
            mapping: Mapping::Zero { host: Some(offset) },
        });
    }
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd, off, libc::SEEK_HOLE) };
    if hole > off {
        return Some(Extent {
            len: len.min(hole as u64 - offset),
            mapping: Mapping::Data { host: offset },
        });
    }
    None
}

/// A run of guest bytes and which image of the chain provides it.
///
/// The fields follow `qemu-img map --output=json` (docs/json.md, `map`):
/// [`ChainExtent::layer`] is its `depth`, `depth.is_some()` its `present`,
/// [`ChainExtent::host_offset`] its `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChainExtent {
    /// First guest byte.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// Index in the chain (0 = top) of the image that provides these bytes;
    /// `None` when no image does (they read as zeros).
    pub depth: Option<usize>,
    /// Index of the image that answered: the one that provides the bytes,
    /// or, when none does, the deepest one consulted: the bottom of the
    /// chain, or the image whose backing file ends before `start`. This is
    /// qemu-img map's `depth`.
    pub layer: usize,
    /// The bytes read as zeros without reading data.
    pub zero: bool,
    /// The bytes are stored as data (possibly compressed) in that image.
    pub data: bool,
    /// Whether that image stores them compressed.
    pub compressed: bool,
    /// Where `start` lies in that image's file, when the bytes have a place
    /// there: data in a raw file (holes too: the offset is the guest
    /// offset) or an uncompressed qcow2 cluster, and qcow2 zero clusters
    /// that keep their allocation. `None` for compressed clusters, plain
    /// zero clusters and bytes no image provides (qemu-img map omits its
    /// `offset` there too).
    pub host_offset: Option<u64>,
}

/// A guest disk: the top image and its backing chain.
#[derive(Debug)]
pub struct Image {
    layers: Vec<Layer>,
    /// Per layer, the last run `[start, end)` found unallocated in it by
    /// [`Image::extent`]: a layer above the one holding the data is asked
    /// about the same run once, not once per extent below it (which made
    /// `map` quadratic on fragmented chains).
    unallocated: Vec<Option<(u64, u64)>>,
    /// (device, inode) of every file of the chain, to refuse writing over one.
    files: HashSet<(u64, u64)>,
    /// The top image's path and its canonical form, once asked for
    /// ([`Image::canonical_path`]).
    canonical: Option<(PathBuf, PathBuf)>,
}

/// Opens `path` and its whole backing chain, read-only.
///
/// Every backing file passes the gate of [`OpenOptions::backing`] before it
/// is opened; `path` itself, named by the caller, does not.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Image> {
    let mut layers = Vec::new();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut pending = None;
    open_layers(path, opts, &mut layers, &mut seen, &mut pending)?;
    let mut image = Image {
        unallocated: Vec::new(),
        layers,
        files: seen,
        canonical: None,
    };
    image.share_l2_budget();
    Ok(image)
}

/// `path` made absolute and canonical. A file not there yet (a chain link
/// staged under a temporary name) is named through its canonical directory.
pub fn canonical_file(path: &Path) -> Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = crate::output::parent_dir(path);
            let name = path.file_name().ok_or_else(|| Error::io(path, e))?;
            let dir_abs = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
            Ok(dir_abs.join(name))
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// What [`open_partial`] read: the images opened, top first, and why the
/// chain stops short, if it does.
#[derive(Debug)]
pub struct PartialChain {
    /// The images that opened, top first (empty when the top itself failed).
    pub layers: Vec<LayerInfo>,
    /// Why the chain could not be opened whole, if it could not.
    pub error: Option<ChainBreak>,
}

/// Where and why a chain stops short (see [`open_partial`]).
#[derive(Debug)]
pub struct ChainBreak {
    /// The error [`open`] returns for this chain.
    pub error: Error,
    /// The backing file name as stored in the last image that opened, when
    /// the failure is on the file it names.
    pub backing_file: Option<String>,
    /// The path that name resolved to (what was tried), likewise.
    pub tried: Option<PathBuf>,
}

/// Opens `path` and its backing chain as far as it goes, for reports such
/// as `qfault info` on an overlay whose backing file is missing: the
/// images that opened and, when the chain is incomplete, the error with
/// the backing name and the path tried. The same checks as [`open`].
pub fn open_partial(path: &Path, opts: &OpenOptions) -> PartialChain {
    let mut layers = Vec::new();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut pending = None;
    let result = open_layers(path, opts, &mut layers, &mut seen, &mut pending);
    let layers: Vec<LayerInfo> = layers.iter().map(Layer::info).collect();
    let error = result.err().map(|error| {
        let (backing_file, tried) = match pending {
            Some((name, path)) => (Some(name), Some(path)),
            None => (None, None),
        };
        ChainBreak {
            error,
            backing_file,
            tried,
        }
    });
    PartialChain { layers, error }
}

/// The loop of [`open`]: pushes each image that opens onto `layers`; on
/// failure `pending` holds the backing name and resolved path being opened
/// when the failure concerns a backing file.
fn open_layers(
    path: &Path,
    opts: &OpenOptions,
    layers: &mut Vec<Layer>,
    seen: &mut HashSet<(u64, u64)>,
    pending: &mut Option<(String, PathBuf)>,
) -> Result<()> {
    let root = opts.backing.resolved_root()?;
    // (path as named and shown, path to open, format).
    let mut next: Option<(PathBuf, PathBuf, Option<Format>)> =
        Some((path.to_path_buf(), path.to_path_buf(), opts.format));
    let mut l1_bytes = 0u64;
    while let Some((p, open_at, format)) = next.take() {
        let nofollow = root.is_some() && !layers.is_empty();
        let (file, file_len) = open_image_file(&p, &open_at, nofollow, opts.force_share, seen)
            .map_err(|e| match e {
                Error::Io { .. } if !layers.is_empty() => Error::Chain {
                    reason: format!(
                        "cannot open backing file {}: {}",
                        p.display(),
                        io_reason(&e)
                    ),
                },
                e => e,
            })?;
        let format = match format {
            Some(f) => f,
            None => probe(&file, &p, file_len)?,
        };
        log::info!(
            "open {} read-only as {} ({file_len} bytes)",
            p.display(),
            format.name(),
        );
        let layer = match format {
            Format::Raw => Layer::Raw(RawImage::from_file(file, &p)?),
            Format::Qcow2 => Layer::Qcow2(Box::new(Qcow2Image::open(Box::new(
                FileStorage::with_len(file, &p, file_len),
            ))?)),
            other => {
                let mut files = ChainFiles {
                    root: root.as_deref(),
                    force_share: opts.force_share,
                    seen,
                };
                Layer::Driver(driver::open(
                    other,
                    Box::new(FileStorage::new(file, &p)?),
                    &mut files,
                )?)
            }
        };
        // This file opened: errors from here on are about its own header,
        // until the file it names is the one being tried.
        *pending = None;
        if let Layer::Qcow2(q) = &layer {
            l1_bytes += q.l1_bytes();
            if l1_bytes > MAX_CHAIN_L1_BYTES {
                return Err(Error::Chain {
                    reason: format!(
                        "the chain's L1 tables exceed {MAX_CHAIN_L1_BYTES} bytes in all (at {})",
                        p.display()
                    ),
                });
            }
        }
        if let Some((name, recorded)) = layer.backing() {
            let name = &name;
            {
                if layers.len() >= opts.max_depth {
                    return Err(Error::Chain {
                        reason: format!(
                            "the chain is deeper than the limit of {} backing files (at {}); \
                             raise it with --max-depth (OpenOptions::max_depth)",
                            opts.max_depth,
                            p.display()
                        ),
                    });
                }
                *pending = Some((
                    name.clone(),
                    p.parent()
                        .map_or_else(|| PathBuf::from(name), |d| d.join(name)),
                ));
                let backing_path = backing::resolve(name, &p)?;
                *pending = Some((name.clone(), backing_path.clone()));
                let backing_format = opts.backing.format(name, &p, recorded.as_deref())?;
                let open_at = BackingPolicy::confine(root.as_deref(), name, &backing_path, &p)?;
                next = Some((backing_path, open_at, backing_format));
            }
        }
        layers.push(layer);
    }
    Ok(())
}

/// Opens one file of a chain read-only: `p` is the name shown, `open_at`
/// the path to open (canonical under a backing root, then opened without
/// following a symlink swapped in after the check). Refuses loops (a file
/// already in `seen`), directories, non-regular and empty files, and files
/// another process writes (unless `force_share`). Returns the file and
/// its length.
fn open_image_file(
    p: &Path,
    open_at: &Path,
    nofollow: bool,
    force_share: bool,
    seen: &mut HashSet<(u64, u64)>,
) -> Result<(File, u64)> {
    // O_NONBLOCK: a FIFO named by an image must not hang the open.
    let flags = libc::O_NONBLOCK | if nofollow { libc::O_NOFOLLOW } else { 0 };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(open_at)
        .map_err(|e| Error::io(p, e))?;
    let meta = file.metadata().map_err(|e| Error::io(p, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            p,
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        ));
    }
    if !seen.insert((meta.dev(), meta.ino())) {
        return Err(Error::Chain {
            reason: format!(
                "loop: {} is its own backing file (directly or through other images)",
                p.display()
            ),
        });
    }
    if !meta.is_file() {
        return Err(Error::unsupported(
            p,
            "not a regular file (qfault reads image files, not devices, FIFOs or sockets)",
        ));
    }
    if meta.len() == 0 {
        return Err(Error::malformed(
            p,
            "the file is empty (0 bytes): not a disk image",
        ));
    }
    if !force_share {
        lock::lock_for_reading(&file, p)?;
    }
    Ok((file, meta.len()))
}

/// The I/O error's own text, without the path [`Error::Io`] adds.
fn io_reason(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => source.to_string(),
        e => e.to_string(),
    }
}

/// The files a chain's format drivers open by name (VMDK extents), under
/// the same policy as backing files.
struct ChainFiles<'a> {
    root: Option<&'a Path>,
    force_share: bool,
    seen: &'a mut HashSet<(u64, u64)>,
}

impl driver::Files for ChainFiles<'_> {
    fn open_named(&mut self, name: &str, referrer: &Path) -> Result<Box<dyn Storage>> {
        let path = backing::resolve(name, referrer)?;
        let open_at = BackingPolicy::confine(self.root, name, &path, referrer)?;
        let (file, len) = open_image_file(
            &path,
            &open_at,
            self.root.is_some(),
            self.force_share,
            self.seen,
        )
        .map_err(|e| match e {
            Error::Io { .. } => Error::Chain {
                reason: format!(
                    "cannot open {} (named by {}): {}",
                    path.display(),
                    referrer.display(),
                    io_reason(&e)
                ),
            },
            e => e,
        })?;
        Ok(Box::new(FileStorage::with_len(file, &path, len)))
    }
}

/// The format of an image file of `len` bytes, from its first and last bytes, as QEMU's
/// probes tell them; raw when no known format's magic is there. A format
/// qfault recognises but cannot read is refused with the conversion that
/// makes it readable: treating it as raw would damage its metadata, not the
/// guest's disk.
fn probe(file: &File, path: &Path, len: u64) -> Result<Format> {
    let mut head = vec![0u8; len.min(PROBE_BYTES) as usize];
    read_exact_at(file, path, 0, &mut head)?;
    let mut tail = [0u8; 512];
    if len >= 1024 {
        read_exact_at(file, path, len - 512, &mut tail)?;
    }
    match probe_bytes(&head, if len >= 1024 { Some(&tail) } else { None }) {
        Probed::Readable(f) => Ok(f),
        Probed::NotReadable(what) => Err(driver::not_readable(path, what)),
    }
}

/// How many bytes from the start of a file [`probe`] looks at.
const PROBE_BYTES: u64 = 4096;

/// What [`probe_bytes`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probed {
    /// A format qfault reads (raw when nothing else matched).
    Readable(Format),
    /// A format qfault recognises but does not read (a phrase for messages).
    NotReadable(&'static str),
}

/// [`probe`] on bytes: `head` the file's first bytes (up to
/// [`PROBE_BYTES`]), `tail` its last 512 when the file holds at least 1 KiB.
fn probe_bytes(head: &[u8], tail: Option<&[u8; 512]>) -> Probed {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, &MAGIC) {
        // The version follows the magic (big-endian): 1 is the old qcow.
        return match head
            .get(4..8)
            .map(|v| u32::from_be_bytes(v.try_into().unwrap_or([0; 4])))
        {
            Some(1) => Probed::NotReadable("a qcow (version 1) image"),
            _ => Probed::Readable(Format::Qcow2),
        };
    }
    // VMDK: sparse extents ("KDMV", VMDK4_MAGIC; "COWD", VMDK3_MAGIC) and
    // text descriptors (QEMU's vmdk_probe looks for a descriptor line).
    if at(0, b"KDMV") || at(0, b"COWD") || is_vmdk_descriptor(head) {
        return Probed::Readable(Format::Vmdk);
    }
    if at(0, b"vhdxfile") {
        return Probed::Readable(Format::Vhdx);
    }
    // A dynamic VHD starts with a copy of its footer; a fixed VHD has the
    // footer only at the end (QEMU's probe misses those and reads them as
    // raw, footer included).
    if at(0, b"conectix") || tail.is_some_and(|t| t.starts_with(b"conectix")) {
        return Probed::Readable(Format::Vpc);
    }
    // VDI: the pre-header's signature at 0x40 (little-endian 0xbeda107f).
    if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        return Probed::Readable(Format::Vdi);
    }
    let known: [(usize, &[u8], &'static str); 7] = [
        (0, b"QED\0", "a QED image"),
        (0, b"WithoutFreeSpace", "a Parallels image"),
        (0, b"WithouFreSpacExt", "a Parallels image"),
        (0, b"Bochs Virtual HD Image", "a Bochs image"),
        (0, b"#!/bin/sh\n#V2.0 Format", "a cloop image"),
        (0, b"LUKS\xba\xbe", "a LUKS volume (QEMU's luks format)"),
        (
            0,
            b"SAUL\xba\xbe",
            "a LUKS2 volume with a secondary header first",
        ),
    ];
    for (off, magic, what) in known {
        if at(off, magic) {
            return Probed::NotReadable(what);
        }
    }
    // DMG: the "koly" trailer in the last 512 bytes.
    if tail.is_some_and(|t| t.starts_with(b"koly")) {
        return Probed::NotReadable("a DMG image");
    }
    Probed::Readable(Format::Raw)
}

/// Whether `head` is a VMDK text descriptor by QEMU's `vmdk_probe`: after
/// comment lines (`#…`) and lines of spaces, the first line is `version=1`,
/// `version=2` or `version=3` (ending in LF or CRLF).
fn is_vmdk_descriptor(head: &[u8]) -> bool {
    let mut p = 0;
    while p < head.len() {
        match head[p] {
            b'#' => {
                while p < head.len() && head[p] != b'\n' {
                    p += 1;
                }
                p += 1;
            }
            b' ' => {
                while p < head.len() && head[p] == b' ' {
                    p += 1;
                }
                if head.get(p) == Some(&b'\r') {
                    p += 1;
                }
                if head.get(p) != Some(&b'\n') {
                    return false;
                }
                p += 1;
            }
            _ => {
                let rest = &head[p..];
                return [b'1', b'2', b'3'].iter().any(|v| {
                    let line = [b"version=".as_slice(), &[*v]].concat();
                    rest.starts_with(&line)
                        && matches!(&rest[line.len()..], [b'\n', ..] | [b'\r', b'\n', ..])
                });
            }
        }
    }
    false
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    fn tail(magic: &[u8]) -> [u8; 512] {
        let mut t = [0u8; 512];
        t[..magic.len()].copy_from_slice(magic);
        t
    }

    #[test]
    fn every_format_qemu_probes_is_named_never_raw() {
        let mut vdi = vec![0u8; 512];
        vdi[..4].copy_from_slice(b"<<< ");
        vdi[0x40..0x44].copy_from_slice(&0xbeda_107f_u32.to_le_bytes());
        let cases: [(&[u8], Probed); 14] = [
            (b"QFI\xfb\0\0\0\x03", Probed::Readable(Format::Qcow2)),
            (
                b"QFI\xfb\0\0\0\x01",
                Probed::NotReadable("a qcow (version 1) image"),
            ),
            (b"KDMV\x01\0\0\0", Probed::Readable(Format::Vmdk)),
            (b"COWD", Probed::Readable(Format::Vmdk)),
            (
                b"# Disk DescriptorFile\nversion=1\n",
                Probed::Readable(Format::Vmdk),
            ),
            (b"#c\n  \r\nversion=3\r\n", Probed::Readable(Format::Vmdk)),
            (b"vhdxfile", Probed::Readable(Format::Vhdx)),
            (b"conectix", Probed::Readable(Format::Vpc)),
            (&vdi, Probed::Readable(Format::Vdi)),
            (b"QED\0", Probed::NotReadable("a QED image")),
            (
                b"WithoutFreeSpace",
                Probed::NotReadable("a Parallels image"),
            ),
            (
                b"Bochs Virtual HD Image",
                Probed::NotReadable("a Bochs image"),
            ),
            (
                b"LUKS\xba\xbe\0\x02",
                Probed::NotReadable("a LUKS volume (QEMU's luks format)"),
            ),
            (b"\xeb\x52\x90NTFS    ", Probed::Readable(Format::Raw)),
        ];
        for (head, want) in cases {
            assert_eq!(
                probe_bytes(head, None),
                want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // Footers at the end: a fixed VHD, a DMG.
        assert_eq!(
            probe_bytes(&[0; 512], Some(&tail(b"conectix"))),
            Probed::Readable(Format::Vpc)
        );
        assert_eq!(
            probe_bytes(&[0; 512], Some(&tail(b"koly"))),
            Probed::NotReadable("a DMG image")
        );
    }

    #[test]
    fn text_that_is_not_a_descriptor_is_raw() {
        for head in [
            b"\nversion=1\n".as_slice(), // QEMU accepts no empty line before it
            b"x\nversion=1\n",
            b"version=4\n",
            b"version=1",
            b"# only a comment\n",
        ] {
            assert_eq!(
                probe_bytes(head, None),
                Probed::Readable(Format::Raw),
                "{head:?}"
            );
        }
    }
}

impl Image {
    /// A one-image "chain" from an already opened layer (no backing file is
    /// followed; unallocated ranges read as zeros). For in-memory images,
    /// tests and fuzzing.
    pub fn from_layer(layer: Layer) -> Image {
        Image {
            layers: vec![layer],
            unallocated: Vec::new(),
            files: HashSet::new(),
            canonical: None,
        }
    }

    /// Puts the qcow2 overlay at `path`, whose backing file must be this
    /// image's top, on top of the chain, without reopening the rest of it.
    /// This is how chains grow one link at a time in O(1) per link.
    pub fn push_overlay(&mut self, path: &Path, opts: &OpenOptions) -> Result<()> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        if !opts.force_share {
            lock::lock_for_reading(&file, path)?;
        }
        let q = Qcow2Image::open(Box::new(FileStorage::new(file, path)?))?;
        let name = q
            .header()
            .backing_file
            .as_deref()
            .ok_or_else(|| Error::Chain {
                reason: format!("{} has no backing file", path.display()),
            })?;
        let named = backing::resolve(name, path)?;
        let same = |a: &Path, b: &Path| -> Result<bool> {
            let ma = std::fs::metadata(a).map_err(|e| Error::io(a, e))?;
            let mb = std::fs::metadata(b).map_err(|e| Error::io(b, e))?;
            Ok((ma.dev(), ma.ino()) == (mb.dev(), mb.ino()))
        };
        if !same(&named, self.path())? {
            return Err(Error::Chain {
                reason: format!(
                    "{} is backed by {}, not by {}",
                    path.display(),
                    named.display(),
                    self.path().display()
                ),
            });
        }
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        self.files.insert((meta.dev(), meta.ino()));
        self.layers.insert(0, Layer::Qcow2(Box::new(q)));
        self.share_l2_budget();
        Ok(())
    }

    /// Puts the qcow2 overlay held by the file `file` on top of the chain,
    /// naming it `path` (where it will be once renamed into place). The
    /// caller vouches that its backing file is this image's top: a link
    /// being built, whose backing name refers to files not yet in place.
    /// Errors name `path`: `file` is a temporary name the user never chose.
    pub fn push_staged(&mut self, file: &Path, path: &Path, opts: &OpenOptions) -> Result<()> {
        let f = File::open(file).map_err(|e| Error::io(path, e))?;
        if !opts.force_share {
            lock::lock_for_reading(&f, path)?;
        }
        let meta = f.metadata().map_err(|e| Error::io(path, e))?;
        let q = Qcow2Image::open(Box::new(FileStorage::new(f, path)?))?;
        self.files.insert((meta.dev(), meta.ino()));
        self.layers.insert(0, Layer::Qcow2(Box::new(q)));
        self.share_l2_budget();
        Ok(())
    }

    /// Takes the top image off the chain (the inverse of
    /// [`Image::push_overlay`]); a one-image chain is left as it is.
    pub fn pop_top(&mut self) {
        if self.layers.len() > 1 {
            self.layers.remove(0);
            self.share_l2_budget();
        }
    }

    /// The guest as the top image's backing chain reads it.
    pub fn below_top(&mut self) -> BelowTop<'_> {
        let size = self.size();
        BelowTop {
            layers: &mut self.layers[1..],
            size,
        }
    }

    /// Splits the chain-wide L2 cache budget among the qcow2 images, so
    /// memory does not grow with depth beyond one L2 slice (4 KiB) per image.
    fn share_l2_budget(&mut self) {
        self.unallocated = vec![None; self.layers.len()];
        let n = self.layers.len().max(1) as u64;
        let budget = crate::image::qcow2::l2_cache::L2_CACHE_BYTES / n;
        for layer in &mut self.layers {
            if let Layer::Qcow2(q) = layer {
                q.set_l2_cache_budget(budget);
            }
        }
    }

    /// Whether `path` names one of the chain's files (the same inode).
    /// Output paths are checked against this: qfault never writes its inputs.
    pub fn holds_file(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| self.files.contains(&(m.dev(), m.ino())))
    }

    /// A usage error if `out` is one of the chain's files.
    pub fn refuse_as_output(&self, out: &Path) -> Result<()> {
        if self.holds_file(out) {
            return Err(Error::Usage(format!(
                "{} is an image of the input chain; qfault never writes its inputs",
                out.display()
            )));
        }
        Ok(())
    }

    /// A refusal when QEMU cannot read this chain as qfault does, so that a
    /// qcow2 overlay backed by it would read differently in QEMU: a
    /// differencing VHD (QEMU reads its parent's sectors as zeros) or VHDX
    /// (QEMU refuses to open it). Standalone outputs, which name no backing
    /// file, are not concerned.
    pub fn refuse_as_qemu_backing(&self) -> Result<()> {
        for layer in &self.layers {
            let Layer::Driver(d) = layer else { continue };
            let (kind, qemu) = match d.format() {
                Format::Vpc => ("VHD", "reads the sectors its parent holds as zeros"),
                Format::Vhdx => ("VHDX", "refuses to open it"),
                _ => continue,
            };
            if d.backing().is_some() {
                return Err(Error::Refused(format!(
                    "{} is a differencing {kind} image, and QEMU {qemu}: an overlay backed by \
                     this chain would read differently in QEMU; write a standalone output \
                     (-O raw or -O qcow2-standalone) or flatten the chain first (qfault export)",
                    d.path().display()
                )));
            }
        }
        Ok(())
    }

    /// The images of the chain, top first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// What each image of the chain is, top first.
    pub fn chain_info(&self) -> Vec<LayerInfo> {
        self.layers.iter().map(Layer::info).collect()
    }

    /// The top image's format.
    pub fn format(&self) -> Format {
        self.layers[0].format()
    }

    /// The top image's path.
    pub fn path(&self) -> &Path {
        self.layers[0].path()
    }

    /// The top image's path made absolute and canonical
    /// ([`canonical_file`]), resolved once for as long as the top stays the
    /// same (a batch names one base in a thousand overlays; resolving it
    /// cost a readlink per path component each time).
    pub fn canonical_path(&mut self) -> Result<PathBuf> {
        if let Some((path, canonical)) = &self.canonical {
            if path == self.path() {
                return Ok(canonical.clone());
            }
        }
        let canonical = canonical_file(self.path())?;
        self.canonical = Some((self.path().to_path_buf(), canonical.clone()));
        Ok(canonical)
    }

    /// Whether the top image itself provides the guest bytes at `offset`
    /// (data, compressed data or zeros), and for how long: `(provides, len)`
    /// with `len <= max_len`. Unlike [`Image::extent`], this never consults
    /// the backing chain.
    pub fn top_extent(&mut self, offset: u64, max_len: u64) -> Result<(bool, u64)> {
        check_range(offset, 1, self.size())?;
        let len = max_len.min(self.size() - offset);
        let e = self.layers[0].map(offset, len, false)?;
        Ok((e.mapping != Mapping::Unallocated, e.len))
    }

    /// Which image provides the guest bytes at `offset`, for at most
    /// `max_len` bytes (the returned extent may be shorter).
    pub fn extent(&mut self, offset: u64, max_len: u64) -> Result<ChainExtent> {
        check_range(offset, 1, self.size())?;
        let mut len = max_len.min(self.size() - offset);
        self.unallocated.resize(self.layers.len(), None);
        let mut depth = 0;
        loop {
            // Below the size of layer `depth`: the top's by check_range,
            // a backing file's by the test before descending to it.
            let hint = &mut self.unallocated[depth];
            let e = match *hint {
                Some((start, end)) if start <= offset && offset < end => Extent {
                    len: len.min(end - offset),
                    mapping: Mapping::Unallocated,
                },
                _ => {
                    let e = self.layers[depth].map(offset, len, true)?;
                    if e.mapping == Mapping::Unallocated {
                        *hint = Some((offset, offset + e.len));
                    }
                    e
                }
            };
            len = e.len;
            let found = |zero, data, compressed, host_offset| ChainExtent {
                start: offset,
                length: len,
                depth: Some(depth),
                layer: depth,
                zero,
                data,
                compressed,
                host_offset,
            };
            match e.mapping {
                Mapping::Zero { host } => return Ok(found(true, false, false, host)),
                Mapping::Data { host } => return Ok(found(false, true, false, Some(host))),
                Mapping::Compressed { .. } => return Ok(found(false, true, true, None)),
                Mapping::Unallocated => {}
            }
            match self.layers.get(depth + 1) {
                Some(below) if offset < below.size() => depth += 1,
                // No backing file, or one that ends before `offset`: zeros.
                _ => {
                    return Ok(ChainExtent {
                        depth: None,
                        ..found(true, false, false, None)
                    })
                }
            }
        }
    }
}

impl Image {
    /// What image `layer` of the chain (0 = top) alone stores at `offset`,
    /// for at most `max_len` bytes, as [`Layer::map`] with holes: e.g. the
    /// compressed cluster behind an extent [`Image::extent`] reported as
    /// compressed. `offset` must lie below that image's size.
    pub fn layer_map(&mut self, layer: usize, offset: u64, max_len: u64) -> Result<Extent> {
        let l = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| Error::Usage(format!("the chain has no image {layer}")))?;
        check_range(offset, 1, l.size())?;
        l.map(offset, max_len, true)
    }
}

impl ReadAt for Image {
    fn size(&self) -> u64 {
        self.layers[0].size()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        read_layers(&mut self.layers, offset, buf)
    }
}

/// The guest as the images below the top read it (the top's backing chain),
/// sized like the top; see [`Image::below_top`].
#[derive(Debug)]
pub struct BelowTop<'a> {
    layers: &'a mut [Layer],
    size: u64,
}

impl ReadAt for BelowTop<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        read_layers(self.layers, offset, buf)
    }
}

/// Reads guest bytes through `layers` (top first); what no layer provides,
/// or lies past a layer's end, reads as zeros.
fn read_layers(layers: &mut [Layer], offset: u64, buf: &mut [u8]) -> Result<()> {
    // Ranges still to read: (guest offset, start in buf, length).
    let mut pending: Vec<(u64, usize, usize)> = vec![(offset, 0, buf.len())];
    for layer in layers.iter_mut() {
        let mut fall_through: Vec<(u64, usize, usize)> = Vec::new();
        for (off, at, len) in pending {
            let layer_size = layer.size();
            let inside = if off >= layer_size {
                0
            } else {
                (len as u64).min(layer_size - off) as usize
            };
            buf[at + inside..at + len].fill(0);
            let mut done = 0usize;
            while done < inside {
                let guest = off + done as u64;
                let e = layer.map(guest, (inside - done) as u64, false)?;
                let n = e.len as usize;
                let dst = &mut buf[at + done..at + done + n];
                match e.mapping {
                    Mapping::Unallocated => match fall_through.last_mut() {
                        Some(last)
                            if last.0 + last.2 as u64 == guest && last.1 + last.2 == at + done =>
                        {
                            last.2 += n;
                        }
                        _ => fall_through.push((guest, at + done, n)),
                    },
                    Mapping::Zero { .. } => dst.fill(0),
                    m => layer.read_mapped(m, guest, dst)?,
                }
                done += n;
            }
        }
        pending = fall_through;
        if pending.is_empty() {
            return Ok(());
        }
    }
    // Unallocated in every image: zeros.
    for (_, at, len) in pending {
        buf[at..at + len].fill(0);
    }
    Ok(())
}

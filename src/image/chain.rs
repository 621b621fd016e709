//! A backing chain opened as one guest disk.
//!
//! [`open`] opens the top image and every backing file it names (read-only),
//! detecting loops and bounding the depth. [`Image`] then serves reads by
//! asking each layer in turn what backs a range: data and zeros are answered
//! where they are found, unallocated ranges fall through to the next layer,
//! and ranges past a layer's end read as zeros.

use crate::error::{Error, Result};
use crate::image::backing::{self, BackingPolicy};
use crate::image::qcow2::{header::MAGIC, Extent, Mapping, Qcow2Image};
use crate::image::raw::{read_exact_at, RawImage};
use crate::image::storage::FileStorage;
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
}

impl Format {
    /// The name QEMU uses for the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }

    /// Parses a format name as recorded in a backing-format header extension.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
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
    /// Cluster size (qcow2 only).
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
}

impl Layer {
    /// Guest size of this layer.
    pub fn size(&self) -> u64 {
        match self {
            Layer::Raw(r) => r.size(),
            Layer::Qcow2(q) => q.size(),
        }
    }

    /// What backs `offset` in this layer, for at most `max_len` bytes
    /// (`offset` below [`Layer::size`]). With `holes`, a raw layer reports
    /// file holes as [`Mapping::Zero`]; otherwise all of it is data.
    pub fn map(&mut self, offset: u64, max_len: u64, holes: bool) -> Result<Extent> {
        match self {
            Layer::Qcow2(q) => q.map(offset, max_len),
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
            mapping: Mapping::Zero,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChainExtent {
    /// First guest byte.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// Index in the chain (0 = top) of the image that provides these bytes;
    /// `None` when no image does (they read as zeros).
    pub depth: Option<usize>,
    /// The bytes read as zeros without reading data.
    pub zero: bool,
    /// The bytes are stored as data (possibly compressed) in that image.
    pub data: bool,
    /// Whether that image stores them compressed.
    pub compressed: bool,
}

/// A guest disk: the top image and its backing chain.
#[derive(Debug)]
pub struct Image {
    layers: Vec<Layer>,
    /// (device, inode) of every file of the chain, to refuse writing over one.
    files: HashSet<(u64, u64)>,
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
        layers,
        files: seen,
    };
    image.share_l2_budget();
    Ok(image)
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
        // O_NONBLOCK: a FIFO named by an image must not hang the open.
        // O_NOFOLLOW on a confined (canonical) path: a symlink swapped in
        // after the check is not followed out of the root.
        let nofollow = if root.is_some() && !layers.is_empty() {
            libc::O_NOFOLLOW
        } else {
            0
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | nofollow)
            .open(&open_at)
            .map_err(|e| {
                if layers.is_empty() {
                    Error::io(&p, e)
                } else {
                    Error::Chain {
                        reason: format!("cannot open backing file {}: {e}", p.display()),
                    }
                }
            })?;
        let meta = file.metadata().map_err(|e| Error::io(&p, e))?;
        if !seen.insert((meta.dev(), meta.ino())) {
            return Err(Error::Chain {
                reason: format!(
                    "loop: {} is its own backing file (directly or through other images)",
                    p.display()
                ),
            });
        }
        if meta.is_dir() {
            return Err(Error::io(
                &p,
                std::io::Error::from(std::io::ErrorKind::IsADirectory),
            ));
        }
        if !meta.is_file() {
            return Err(Error::unsupported(
                &p,
                "not a regular file (qfault reads image files, not devices, FIFOs or sockets)",
            ));
        }
        if meta.len() == 0 {
            return Err(Error::malformed(
                &p,
                "the file is empty (0 bytes): not a disk image",
            ));
        }
        if !opts.force_share {
            lock::lock_for_reading(&file, &p)?;
        }
        let format = match format {
            Some(f) => f,
            None => probe(&file, &p)?,
        };
        let layer = match format {
            Format::Raw => Layer::Raw(RawImage::from_file(file, &p)?),
            Format::Qcow2 => Layer::Qcow2(Box::new(Qcow2Image::open(Box::new(FileStorage::new(
                file, &p,
            )?))?)),
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
        if let Layer::Qcow2(q) = &layer {
            if let Some(name) = &q.header().backing_file {
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
                let backing_format =
                    opts.backing
                        .format(name, &p, q.header().backing_format.as_deref())?;
                let open_at = BackingPolicy::confine(root.as_deref(), name, &backing_path, &p)?;
                next = Some((backing_path, open_at, backing_format));
            }
        }
        layers.push(layer);
    }
    Ok(())
}

/// qcow2 if the file starts with the qcow2 magic, raw otherwise.
fn probe(file: &File, path: &Path) -> Result<Format> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 4 {
        return Ok(Format::Raw);
    }
    let mut magic = [0u8; 4];
    read_exact_at(file, path, 0, &mut magic)?;
    Ok(if magic == MAGIC {
        Format::Qcow2
    } else {
        Format::Raw
    })
}

impl Image {
    /// A one-image "chain" from an already opened layer (no backing file is
    /// followed; unallocated ranges read as zeros). For in-memory images,
    /// tests and fuzzing.
    pub fn from_layer(layer: Layer) -> Image {
        Image {
            layers: vec![layer],
            files: HashSet::new(),
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
    /// memory does not grow with depth beyond one table per image.
    fn share_l2_budget(&mut self) {
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
        match self.layers[0] {
            Layer::Raw(_) => Format::Raw,
            Layer::Qcow2(_) => Format::Qcow2,
        }
    }

    /// The top image's path.
    pub fn path(&self) -> &Path {
        match &self.layers[0] {
            Layer::Raw(r) => r.path(),
            Layer::Qcow2(q) => q.path(),
        }
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
        for (depth, layer) in self.layers.iter_mut().enumerate() {
            if offset >= layer.size() {
                break;
            }
            let e = layer.map(offset, len, true)?;
            len = e.len;
            let (zero, data, compressed) = match e.mapping {
                Mapping::Unallocated => continue,
                Mapping::Zero => (true, false, false),
                Mapping::Data { .. } => (false, true, false),
                Mapping::Compressed { .. } => (false, true, true),
            };
            return Ok(ChainExtent {
                start: offset,
                length: len,
                depth: Some(depth),
                zero,
                data,
                compressed,
            });
        }
        Ok(ChainExtent {
            start: offset,
            length: len,
            depth: None,
            zero: true,
            data: false,
            compressed: false,
        })
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
                    Mapping::Zero => dst.fill(0),
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

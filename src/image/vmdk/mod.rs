//! VMDK images (VMware): monolithicSparse and streamOptimized files (one
//! hosted sparse extent with its descriptor embedded), and descriptor files
//! naming their extents (monolithicFlat, twoGbMaxExtentSparse,
//! twoGbMaxExtentFlat, vmfs, vmfsSparse), read as QEMU's `block/vmdk.c`
//! reads them.
//!
//! Spec: VMware "Virtual Disk Format 5.0". [`open`] reads the first bytes:
//! `KDMV` is a hosted sparse extent ([`header`]; its descriptor at sector 1
//! names the parent), `COWD` an ESX Server sparse extent, anything else a
//! text descriptor ([`descriptor`]) whose extent files are opened through
//! [`Files`], the chain's backing-file gate. The guest is the extents one
//! after another; sparse extents map grains through their grain directory
//! and tables ([`sparse`]). A differencing disk's parent
//! (`parentFileNameHint`) is its backing image, of format `vmdk`.
//!
//! Not read: seSparse extents, and a standalone `COWD` file (QEMU opens
//! neither: the latter has no descriptor). QEMU's check that the parent's
//! `CID` equals the child's `parentCID` is not made.

pub mod descriptor;
pub mod header;
pub mod sparse;

use crate::error::{Error, Result};
use crate::image::chain::{Format, LayerInfo};
use crate::image::driver::{BackingRef, Driver, Files};
use crate::image::qcow2::{Extent, Mapping};
use crate::image::storage::Storage;
use descriptor::{ExtentType, DESC_SIZE, EMBEDDED_DESC_OFFSET, MAX_DESCRIPTOR};
use header::{Hosted, VMDK3_MAGIC, VMDK4_MAGIC};
use sparse::SparseExtent;
use std::path::{Path, PathBuf};

/// Most grain-table lookups one [`Driver::map`] call makes while joining
/// runs (each covers up to one grain table); the caller asks again for the
/// rest.
const MAX_MAP_STEPS: usize = 4096;

/// An open VMDK image (read-only).
#[derive(Debug)]
pub struct Vmdk {
    path: PathBuf,
    file_len: u64,
    create_type: String,
    extents: Vec<VmdkExtent>,
    size: u64,
    parent: Option<String>,
    cid: u32,
    parent_cid: u32,
    /// Index of the extent the last lookup found.
    last: usize,
}

/// One extent of the guest.
#[derive(Debug)]
struct VmdkExtent {
    /// First guest byte.
    start: u64,
    /// Bytes.
    len: u64,
    data: ExtentData,
}

#[derive(Debug)]
enum ExtentData {
    /// The guest bytes in order, from byte `start` of the file.
    Flat {
        storage: Box<dyn Storage>,
        start: u64,
    },
    Sparse(Box<SparseExtent>),
}

/// Opens the VMDK image in `storage`; extent files its descriptor names are
/// opened through `files`.
pub fn open(storage: Box<dyn Storage>, files: &mut dyn Files) -> Result<Box<dyn Driver>> {
    Ok(Box::new(Vmdk::open(storage, files)?))
}

/// The first [`DESC_SIZE`] bytes from `at`, where QEMU looks for the
/// parent's name and the CIDs.
fn read_window(storage: &dyn Storage, at: u64) -> Result<Vec<u8>> {
    let mut w = vec![0u8; DESC_SIZE];
    storage.read_at(at, &mut w)?;
    Ok(w)
}

/// The descriptor text at `at`, cut at its first NUL, at most
/// [`MAX_DESCRIPTOR`] bytes (QEMU ignores the rest).
fn read_descriptor(storage: &dyn Storage, at: u64) -> Result<Vec<u8>> {
    let n = storage.len().min(MAX_DESCRIPTOR) as usize;
    let mut d = vec![0u8; n];
    storage.read_at(at, &mut d)?;
    let keep = descriptor::c_str(&d).len();
    d.truncate(keep);
    Ok(d)
}

impl Vmdk {
    /// Opens the VMDK image in `storage` (see [`open`]).
    pub fn open(storage: Box<dyn Storage>, files: &mut dyn Files) -> Result<Vmdk> {
        let path = storage.path().to_path_buf();
        let file_len = storage.len();
        if file_len < 4 {
            return Err(Error::malformed(
                &path,
                "the file is too small to be a VMDK image",
            ));
        }
        let mut magic = [0u8; 4];
        storage.read_at(0, &mut magic)?;
        let (create_type, extents, window) = if &magic == VMDK4_MAGIC {
            let window = read_window(storage.as_ref(), EMBEDDED_DESC_OFFSET)?;
            match header::read_hosted(storage.as_ref())? {
                Hosted::Extent(h) => {
                    let ct = if h.compressed() {
                        "streamOptimized"
                    } else {
                        "monolithicSparse"
                    };
                    let len = h.capacity_bytes();
                    let ext = SparseExtent::open(storage, h)?;
                    let one = VmdkExtent {
                        start: 0,
                        len,
                        data: ExtentData::Sparse(Box::new(ext)),
                    };
                    (ct.to_string(), vec![one], window)
                }
                Hosted::Descriptor(at) => {
                    let text = read_descriptor(storage.as_ref(), at)?;
                    let (ct, extents) = open_extents(&path, &text, files)?;
                    (ct, extents, window)
                }
            }
        } else if &magic == VMDK3_MAGIC {
            return Err(Error::unsupported(
                &path,
                "a standalone ESX Server sparse extent (COWD), which QEMU does not open either \
                 (it has no descriptor); open the vmfsSparse descriptor that names it",
            ));
        } else {
            let window = read_window(storage.as_ref(), 0)?;
            let text = read_descriptor(storage.as_ref(), 0)?;
            let (ct, extents) = open_extents(&path, &text, files)?;
            (ct, extents, window)
        };
        let parent = descriptor::parent_hint(&path, &window)?;
        let cid = descriptor::cid(&path, &window, "CID")?;
        let parent_cid = descriptor::cid(&path, &window, "parentCID")?;
        let size = extents.last().map_or(0, |e| e.start + e.len);
        if size == 0 {
            return Err(Error::malformed(
                &path,
                "the VMDK image holds no data extent (0 bytes)",
            ));
        }
        Ok(Vmdk {
            path,
            file_len,
            create_type,
            extents,
            size,
            parent,
            cid,
            parent_cid,
            last: 0,
        })
    }

    /// The create type, as `qemu-img info` shows it.
    pub fn create_type(&self) -> &str {
        &self.create_type
    }

    /// The content ID and the parent's content ID the descriptor records.
    pub fn cids(&self) -> (u32, u32) {
        (self.cid, self.parent_cid)
    }

    /// The index of the extent holding guest byte `offset` (below the size).
    fn find(&mut self, offset: u64) -> usize {
        let e = &self.extents[self.last.min(self.extents.len() - 1)];
        if offset >= e.start && offset - e.start < e.len {
            return self.last;
        }
        let i = self.extents.partition_point(|e| e.start + e.len <= offset);
        self.last = i.min(self.extents.len() - 1);
        self.last
    }
}

/// Parses the descriptor `text` of `path` and opens the extents it names.
fn open_extents(
    path: &Path,
    text: &[u8],
    files: &mut dyn Files,
) -> Result<(String, Vec<VmdkExtent>)> {
    let ct = descriptor::create_type(path, text)?;
    if !descriptor::DESCRIPTOR_CREATE_TYPES.contains(&ct.as_str()) {
        return Err(Error::unsupported(
            path,
            format!(
                "VMDK descriptor of createType \"{}\" (QEMU, and qfault, read {} from a descriptor file)",
                ct.escape_debug(),
                descriptor::DESCRIPTOR_CREATE_TYPES.join(", ")
            ),
        ));
    }
    if ct == "seSparse" {
        return Err(Error::unsupported(
            path,
            "seSparse VMDK images (ESXi space-efficient sparse), which qfault does not read",
        ));
    }
    let lines = descriptor::extents(path, text)?;
    let mut out: Vec<VmdkExtent> = Vec::with_capacity(lines.len());
    let mut start = 0u64;
    for (i, line) in lines.iter().enumerate() {
        if lines[..i].iter().any(|l| l.file == line.file) {
            return Err(Error::unsupported(
                path,
                format!(
                    "the descriptor names the extent file '{}' twice (QEMU reads a blank line \
                     before an extent line as a second copy of it); qfault opens each file of a chain once",
                    line.file.escape_debug()
                ),
            ));
        }
        let storage = files.open_named(&line.file, path)?;
        let (len, data) = match line.kind {
            ExtentType::Flat => {
                let len = header::sectors_to_bytes(path, line.sectors, "extent size")?;
                let at = header::sectors_to_bytes(path, line.flat_offset, "flat extent offset")?;
                (len, ExtentData::Flat { storage, start: at })
            }
            ExtentType::Sparse => {
                let h = open_sparse_header(storage.as_ref())?;
                let len = h.capacity_bytes();
                (
                    len,
                    ExtentData::Sparse(Box::new(SparseExtent::open(storage, h)?)),
                )
            }
        };
        let end = start
            .checked_add(len)
            .filter(|e| *e <= i64::MAX as u64)
            .ok_or_else(|| {
                Error::malformed(path, "the extents' sizes add up to more than 2^63 bytes")
            })?;
        if len > 0 {
            out.push(VmdkExtent { start, len, data });
        }
        start = end;
    }
    Ok((ct, out))
}

/// The header of a sparse extent file named by a descriptor.
fn open_sparse_header(storage: &dyn Storage) -> Result<header::SparseHeader> {
    let mut magic = [0u8; 4];
    storage.read_at(0, &mut magic)?;
    if &magic == VMDK4_MAGIC {
        match header::read_hosted(storage)? {
            Hosted::Extent(h) => Ok(h),
            Hosted::Descriptor(_) => Err(Error::unsupported(
                storage.path(),
                "a sparse extent that holds another descriptor (qfault reads one level of descriptor)",
            )),
        }
    } else if &magic == VMDK3_MAGIC {
        header::read_esx(storage)
    } else {
        Err(Error::malformed(
            storage.path(),
            "named as a sparse extent, and not a VMDK sparse extent (no KDMV or COWD magic)",
        ))
    }
}

impl Driver for Vmdk {
    fn format(&self) -> Format {
        Format::Vmdk
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn map(&mut self, offset: u64, max_len: u64) -> Result<Extent> {
        let i = self.find(offset);
        let e = &mut self.extents[i];
        let rel = offset - e.start;
        let avail = max_len.min(e.len - rel);
        match &mut e.data {
            ExtentData::Flat { start, .. } => Ok(Extent {
                len: avail,
                mapping: Mapping::Data { host: *start + rel },
            }),
            ExtentData::Sparse(s) => {
                let first = s.map_grain(rel)?;
                let mut ext = Extent {
                    len: first.len.min(avail),
                    mapping: first.mapping,
                };
                if matches!(ext.mapping, Mapping::Compressed { .. }) {
                    return Ok(ext);
                }
                // Bounded work per call: callers ask again for the rest.
                let mut steps = 0;
                while ext.len < avail && steps < MAX_MAP_STEPS {
                    steps += 1;
                    let next = s.map_grain(rel + ext.len)?;
                    let joins = match (ext.mapping, next.mapping) {
                        (Mapping::Data { host: a }, Mapping::Data { host: b }) => a + ext.len == b,
                        (Mapping::Zero { .. }, Mapping::Zero { .. })
                        | (Mapping::Unallocated, Mapping::Unallocated) => true,
                        _ => false,
                    };
                    if !joins {
                        break;
                    }
                    ext.len = (ext.len + next.len).min(avail);
                }
                Ok(ext)
            }
        }
    }

    fn read_mapped(&mut self, mapping: Mapping, guest: u64, buf: &mut [u8]) -> Result<()> {
        let i = self.find(guest);
        let e = &mut self.extents[i];
        let rel = guest - e.start;
        match (&mut e.data, mapping) {
            (ExtentData::Flat { storage, .. }, Mapping::Data { host }) => {
                storage.read_at(host, buf)
            }
            (ExtentData::Sparse(s), Mapping::Data { host }) => s.storage().read_at(host, buf),
            (
                ExtentData::Sparse(s),
                Mapping::Compressed {
                    descriptor,
                    in_cluster,
                },
            ) => s.read_compressed(descriptor.offset, in_cluster, rel - in_cluster, buf),
            _ => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn info(&self) -> LayerInfo {
        // qemu-img info shows a cluster size when every extent is sparse
        // with the same grain size and compression.
        let grains: Vec<(u64, bool)> = self
            .extents
            .iter()
            .map(|e| match &e.data {
                ExtentData::Sparse(s) => (s.header().grain_bytes(), s.header().compressed()),
                ExtentData::Flat { .. } => (0, false),
            })
            .collect();
        let cluster_size = match grains.first() {
            Some(&(g, c)) if g > 0 && grains.iter().all(|&x| x == (g, c)) => Some(g),
            _ => None,
        };
        LayerInfo {
            path: self.path.clone(),
            format: Format::Vmdk,
            virtual_size: self.size,
            file_size: self.file_len,
            cluster_size,
            version: None,
            compression_type: None,
            extended_l2: false,
            snapshots: 0,
            backing_file: self.parent.clone(),
            backing_format: self.parent.as_ref().map(|_| "vmdk".to_string()),
        }
    }

    fn backing(&self) -> Option<BackingRef> {
        self.parent.as_ref().map(|name| BackingRef {
            name: name.clone(),
            format: Some("vmdk".to_string()),
        })
    }
}

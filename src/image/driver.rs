//! The seam for image formats other than raw and qcow2 (VMDK, VHDX, VHD,
//! VDI): one trait each format implements, one entry point per format, and
//! the gate through which a format opens files its image names.
//!
//! A [`Driver`] answers the same question as [`crate::image::qcow2`]: what
//! backs a run of guest bytes (host data, a compressed block, zeros, or
//! nothing, meaning the backing image). The chain in [`crate::image::Image`]
//! turns those answers into reads and follows [`Driver::backing`] through the
//! same gate as qcow2 backing files. Files a format names for its own data
//! (a VMDK descriptor's extents) are opened only through [`Files`], which the
//! chain implements with the backing-file policy (names resolved relative to
//! the naming file, protocols refused, `--backing-root` confinement, loops
//! detected, read-only).
//!
//! Each format lives in its own folder (`image/vmdk/`, `image/vhdx/`,
//! `image/vpc/`, `image/vdi/`) with one entry point, `open`, dispatched by
//! [`open`].

use crate::error::{Error, Result};
use crate::image::chain::{Format, LayerInfo};
use crate::image::qcow2::{Extent, Mapping};
use crate::image::storage::Storage;
use std::path::Path;

/// One image file of a format read by a driver, opened read-only.
pub trait Driver: std::fmt::Debug {
    /// The format (the name overlays record as their backing format).
    fn format(&self) -> Format;

    /// Guest size in bytes.
    fn size(&self) -> u64;

    /// What backs the guest bytes at `offset` (below [`Driver::size`]), for
    /// at most `max_len` bytes (`max_len > 0`). The returned extent's length
    /// is between 1 and `max_len`. [`Mapping::Data`]'s `host` is the byte's
    /// offset in the image file when the data lies in it (reported by `map`);
    /// drivers whose data lies in several files may use any value and find
    /// the data again from the guest offset in [`Driver::read_mapped`].
    /// [`Mapping::Unallocated`] falls through to the backing image (or reads
    /// as zeros without one).
    fn map(&mut self, offset: u64, max_len: u64) -> Result<Extent>;

    /// Reads guest bytes from `guest` that [`Driver::map`] reported as
    /// `mapping` ([`Mapping::Data`] or [`Mapping::Compressed`]), never
    /// past that extent.
    fn read_mapped(&mut self, mapping: Mapping, guest: u64, buf: &mut [u8]) -> Result<()>;

    /// The path the image was opened at.
    fn path(&self) -> &Path;

    /// What the image is, as `qemu-img info` would say.
    fn info(&self) -> LayerInfo;

    /// The backing (parent) image this image names, if it is a
    /// differencing image.
    fn backing(&self) -> Option<BackingRef> {
        None
    }
}

/// A backing (parent) image as a child image names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingRef {
    /// The name as stored (resolved relative to the child's directory).
    pub name: String,
    /// The parent's format as the child records it (a differencing VHD's
    /// parent is a VHD: `Some("vpc")`); `None` asks the policy to probe.
    pub format: Option<String>,
}

/// Opens files an image names for its own data (not backing files).
pub trait Files {
    /// Opens the file `name` found in `referrer`, read-only, after the
    /// policy checks; the file's bytes come back as [`Storage`].
    fn open_named(&mut self, name: &str, referrer: &Path) -> Result<Box<dyn Storage>>;
}

/// A [`Files`] that opens nothing: for images read from memory (tests,
/// fuzzing), where a named file is an error.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFiles;

impl Files for NoFiles {
    fn open_named(&mut self, name: &str, referrer: &Path) -> Result<Box<dyn Storage>> {
        Err(Error::Chain {
            reason: format!(
                "{} names the file '{}', and no files may be opened here",
                referrer.display(),
                name.escape_debug()
            ),
        })
    }
}

/// Opens the image in `storage` with `format`'s driver.
///
/// Raw and qcow2 are not drivers (the chain opens them itself); asking for
/// them here is a usage error.
pub fn open(
    format: Format,
    storage: Box<dyn Storage>,
    files: &mut dyn Files,
) -> Result<Box<dyn Driver>> {
    match format {
        Format::Vmdk => crate::image::vmdk::open(storage, files),
        Format::Vhdx => crate::image::vhdx::open(storage, files),
        Format::Vpc => crate::image::vpc::open(storage, files),
        Format::Vdi => crate::image::vdi::open(storage, files),
        Format::Raw | Format::Qcow2 => Err(Error::Usage(format!(
            "{} is not opened through a format driver",
            format.name()
        ))),
    }
}

/// The refusal for a format qfault recognises but does not read yet, with
/// the conversion that makes it readable.
pub fn not_readable(path: &Path, what: &str) -> Error {
    Error::unsupported(
        path,
        format!(
            "{what}, which qfault cannot read; convert it with \
             `qemu-img convert -O qcow2 {} OUT.qcow2` (or pass -f raw to read the file itself as the disk)",
            crate::image::backing::shell_word(&path.display().to_string())
        ),
    )
}

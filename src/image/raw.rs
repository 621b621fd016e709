//! Raw images: the guest disk is the file, byte for byte.
//!
//! As in QEMU's block layer, the guest size is the file size rounded up to a
//! whole 512-byte sector; the bytes past the end of the file read as zeros.

use crate::error::{Error, Result};
use crate::image::{check_range, ReadAt};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// QEMU's sector size, to which raw image sizes are rounded up (`BDRV_SECTOR_SIZE`).
pub const SECTOR: u64 = 512;

/// A raw image file opened read-only.
#[derive(Debug)]
pub struct RawImage {
    file: File,
    path: PathBuf,
    size: u64,
    file_len: u64,
}

impl RawImage {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_file(file, path)
    }

    /// Wraps an already opened file; the guest size is the file size rounded
    /// up to a multiple of 512 bytes.
    pub fn from_file(file: File, path: &Path) -> Result<Self> {
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(RawImage {
            file,
            path: path.to_path_buf(),
            size: file_len.div_ceil(SECTOR) * SECTOR,
            file_len,
        })
    }

    /// The file this image reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes (the guest size may be up to 511 bytes more).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The open file (for hole queries).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl ReadAt for RawImage {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        read_exact_at(&self.file, &self.path, offset, buf)
    }
}

/// `pread` until `buf` is full; a file that shrank underneath reads as zeros.
pub(crate) fn read_exact_at(file: &File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(())
}

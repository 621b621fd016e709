//! The storage layer under the format drivers: where an image file's bytes
//! come from (a file opened read-only, or memory for tests and fuzzing).
//!
//! Format drivers ([`crate::image::qcow2`]) read host bytes only through
//! [`Storage`], so they never touch the filesystem themselves.

use crate::error::Result;
use crate::image::raw::read_exact_at;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Positional reads of an image file's bytes.
pub trait Storage: std::fmt::Debug {
    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from `offset`; bytes past the end read as zeros (as QEMU's
    /// file driver reads them).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// The name used in messages and to resolve relative backing names.
    fn path(&self) -> &Path;

    /// The open file, when the bytes come from one (for in-kernel copies,
    /// `copy_file_range`, and hole queries); `None` for memory.
    fn file(&self) -> Option<&File> {
        None
    }
}

/// A file opened read-only.
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    path: PathBuf,
    len: u64,
}

impl FileStorage {
    /// Wraps an open file named `path`.
    pub fn new(file: File, path: &Path) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|e| crate::Error::io(path, e))?
            .len();
        Ok(FileStorage {
            file,
            path: path.to_path_buf(),
            len,
        })
    }
}

impl FileStorage {
    /// Wraps an open file named `path` whose length the caller just read
    /// (one `fstat` per file of a chain, not two).
    pub fn with_len(file: File, path: &Path, len: u64) -> Self {
        FileStorage {
            file,
            path: path.to_path_buf(),
            len,
        }
    }
}

impl Storage for FileStorage {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_exact_at(&self.file, &self.path, offset, buf)
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

/// An image file held in memory.
#[derive(Debug, Clone)]
pub struct MemStorage {
    bytes: Vec<u8>,
    path: PathBuf,
}

impl MemStorage {
    /// An in-memory file named `name` (for messages).
    pub fn new(bytes: Vec<u8>, name: &str) -> Self {
        MemStorage {
            bytes,
            path: PathBuf::from(name),
        }
    }
}

impl Storage for MemStorage {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        let len = self.bytes.len() as u64;
        if offset < len {
            let n = ((len - offset) as usize).min(buf.len());
            buf[..n].copy_from_slice(&self.bytes[offset as usize..offset as usize + n]);
        }
        Ok(())
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

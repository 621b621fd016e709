//! Atomic output files: write to a temporary file beside the target, fsync,
//! then move it into place and fsync the directory.
//!
//! Until [`AtomicFile::commit`] succeeds the target is untouched, and the
//! temporary file is removed when the [`AtomicFile`] is dropped. Temporary
//! files are named `.NAME.qfault-tmp.PID` so they are recognisable.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Marker in the names of qfault's temporary files.
pub const TMP_MARKER: &str = ".qfault-tmp.";

/// A file being written that appears at its target path only on commit.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    target: PathBuf,
    overwrite: bool,
}

impl AtomicFile {
    /// Starts writing `target`. Unless `overwrite`, an existing target is a
    /// usage error, checked now and again at commit.
    pub fn create(target: &Path, overwrite: bool) -> Result<Self> {
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(Error::Usage(format!(
                "{} already exists; pass --overwrite to replace it",
                target.display()
            )));
        }
        let name = target
            .file_name()
            .ok_or_else(|| Error::Usage(format!("{} does not name a file", target.display())))?;
        let dir = parent_dir(target);
        let tmp = dir.join(format!(
            ".{}{TMP_MARKER}{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        // A leftover from a killed run with our PID can only be stale.
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            target: target.to_path_buf(),
            overwrite,
        })
    }

    /// The temporary file to write into.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("file is present until commit")
    }

    /// Path of the temporary file (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs the data, moves it to the target and fsyncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("file is present until commit");
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        if self.overwrite {
            std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        } else {
            // link() fails if the target appeared meanwhile: never replace it.
            std::fs::hard_link(&self.tmp, &self.target).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Usage(format!(
                        "{} already exists; pass --overwrite to replace it",
                        self.target.display()
                    ))
                } else {
                    Error::io(&self.target, e)
                }
            })?;
            std::fs::remove_file(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?;
        }
        let dir = parent_dir(&self.target);
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&dir, e))?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_and_refuse_and_cleanup() {
        let dir = std::env::temp_dir().join(format!("qfault-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("out.bin");
        let _ = std::fs::remove_file(&target);

        let a = AtomicFile::create(&target, false).unwrap();
        let tmp = a.tmp_path().to_path_buf();
        drop(a);
        assert!(!tmp.exists() && !target.exists(), "dropped: nothing left");

        let a = AtomicFile::create(&target, false).unwrap();
        a.file().write_all(b"one").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");

        let e = AtomicFile::create(&target, false).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);

        let a = AtomicFile::create(&target, true).unwrap();
        a.file().write_all(b"two").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Atomic output files: write to a temporary file beside the target, fsync,
//! then move it into place and fsync the directory.
//!
//! Until [`AtomicFile::commit`] succeeds the target is untouched, and the
//! temporary file is removed when the [`AtomicFile`] is dropped. Temporary
//! files are named `.NAME.qfault-tmp.PID` so they are recognisable.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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
        remove_stale_temporaries(&dir, &name.to_string_lossy());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| Error::io(target, e))?;
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

    /// Path of the temporary file, to reopen what was written. Error
    /// messages name [`AtomicFile::target`] instead: the user knows that
    /// path, not the temporary one.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The path the file appears at on commit (the one to name in errors).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs the data, moves it to the target and fsyncs the directory.
    ///
    /// On any failure before the target is in place, the temporary file is
    /// removed (by `Drop`) and the target is untouched.
    pub fn commit(mut self) -> Result<()> {
        self.file()
            .sync_all()
            .map_err(|e| Error::io(&self.target, e))?;
        if self.overwrite {
            std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        } else {
            rename_noreplace(&self.tmp, &self.target).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Usage(format!(
                        "{} already exists; pass --overwrite to replace it",
                        self.target.display()
                    ))
                } else {
                    Error::io(&self.target, e)
                }
            })?;
        }
        // In place: from here on nothing may remove it.
        self.file = None;
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

/// Moves `from` to `to` unless `to` exists (atomically: renameat2 with
/// RENAME_NOREPLACE; where the filesystem lacks it, link then unlink).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        return Err(e);
    }
    std::fs::hard_link(from, to)?;
    // The target is in place; a leftover link is only a stale temporary.
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// Removes temporary files a killed qfault left for this target: those named
/// `.NAME.qfault-tmp.PID` whose process no longer runs (or is this one).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}{TMP_MARKER}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as i32 || !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this PID exists.
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Granularity at which zero blocks become holes (the usual filesystem block).
pub const HOLE_BLOCK: usize = 4096;

/// Writes the non-zero 4 KiB blocks of `data` at `offset`, coalescing runs;
/// the all-zero blocks are skipped so they stay holes in a fresh file.
pub fn write_nonzero(file: &std::fs::File, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let mut run_start: Option<usize> = None;
    let mut i = 0;
    while i < data.len() {
        let end = (i + HOLE_BLOCK).min(data.len());
        let zero = data[i..end].iter().all(|&b| b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(i),
            (true, Some(s)) => {
                file.write_all_at(&data[s..i], offset + s as u64)
                    .map_err(|e| Error::io(path, e))?;
                run_start = None;
            }
            _ => {}
        }
        i = end;
    }
    if let Some(s) = run_start {
        file.write_all_at(&data[s..], offset + s as u64)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
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
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage);

        let a = AtomicFile::create(&target, true).unwrap();
        a.file().write_all(b"two").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = std::env::temp_dir().join(format!("qfault-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // PID 0x7fff_fff0 does not exist; PID 1 (init) does.
        let dead = dir.join(format!(".t.img{TMP_MARKER}{}", 0x7fff_fff0));
        let alive = dir.join(format!(".t.img{TMP_MARKER}1"));
        let other = dir.join(format!(".u.img{TMP_MARKER}{}", 0x7fff_fff0));
        for p in [&dead, &alive, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        let a = AtomicFile::create(&dir.join("t.img"), false).unwrap();
        drop(a);
        assert!(!dead.exists(), "stale temporary of a dead run removed");
        assert!(
            alive.exists(),
            "a running process's temporary is left alone"
        );
        assert!(other.exists(), "another target's temporary is left alone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! QEMU-compatible image locking, so qfault behaves like `qemu-img` without `-U`.
//!
//! QEMU's file driver (block/file-posix.c, "raw_apply_lock_bytes") marks the
//! images it has open with shared OFD byte-range locks: byte 100 + n while it
//! holds permission n, byte 200 + n while it refuses to share permission n.
//! A reader like qfault holds "consistent read" (n = 0) and refuses to share
//! "write" (n = 1). It must not open an image another process holds write
//! permission on (byte 101), nor one whose holder refuses to share
//! consistent reads (byte 200).

use crate::error::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// First lock byte for permissions held (QEMU's `RAW_LOCK_PERM_BASE`).
pub const LOCK_PERM_BASE: i64 = 100;
/// First lock byte for permissions not shared (QEMU's `RAW_LOCK_SHARED_BASE`).
pub const LOCK_SHARED_BASE: i64 = 200;
/// Permission bit 0: `BLK_PERM_CONSISTENT_READ`.
pub const PERM_CONSISTENT_READ: i64 = 0;
/// Permission bit 1: `BLK_PERM_WRITE`.
pub const PERM_WRITE: i64 = 1;

/// Checks that no other process writes `file` (or refuses to share reads),
/// then takes a reader's shared locks, held until `file` is closed.
pub fn lock_for_reading(file: &File, path: &Path) -> Result<()> {
    let conflicts = [
        (
            LOCK_PERM_BASE + PERM_WRITE,
            "another process has it open for writing",
        ),
        (
            LOCK_SHARED_BASE + PERM_CONSISTENT_READ,
            "another process has it open and refuses to share reads",
        ),
    ];
    for (byte, what) in conflicts {
        if locked_by_other(file, byte).map_err(|e| Error::io(path, e))? {
            return Err(Error::Refused(format!(
                "{}: {what} (QEMU lock byte {byte}); stop that process, or pass -U/--force-share to read anyway",
                path.display()
            )));
        }
    }
    for byte in [
        LOCK_PERM_BASE + PERM_CONSISTENT_READ,
        LOCK_SHARED_BASE + PERM_WRITE,
    ] {
        set_read_lock(file, byte).map_err(|e| {
            if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EACCES) {
                Error::Refused(format!(
                    "{}: another process holds a conflicting lock on byte {byte}; pass -U/--force-share to read anyway",
                    path.display()
                ))
            } else {
                Error::io(path, e)
            }
        })?;
    }
    Ok(())
}

fn flock_for(byte: i64, kind: i32) -> libc::flock {
    // SAFETY: flock is a plain C struct; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Would an exclusive lock on `byte` conflict with another open file description's lock?
fn locked_by_other(file: &File, byte: i64) -> std::io::Result<bool> {
    let mut fl = flock_for(byte, libc::F_WRLCK);
    // SAFETY: fcntl with F_OFD_GETLK reads and writes the flock we pass.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // Filesystems without lock support: QEMU carries on, so do we.
        if e.raw_os_error() == Some(libc::ENOTSUP) || e.raw_os_error() == Some(libc::ENOLCK) {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Takes a shared OFD lock on `byte`.
fn set_read_lock(file: &File, byte: i64) -> std::io::Result<()> {
    let fl = flock_for(byte, libc::F_RDLCK);
    // SAFETY: fcntl with F_OFD_SETLK reads the flock we pass.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOTSUP) || e.raw_os_error() == Some(libc::ENOLCK) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_lock_is_refused_and_readers_coexist() {
        let dir = std::env::temp_dir().join(format!("qfault-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("img");
        std::fs::write(&p, b"x").unwrap();
        let a = File::open(&p).unwrap();
        let b = File::open(&p).unwrap();
        lock_for_reading(&a, &p).unwrap();
        lock_for_reading(&b, &p).unwrap(); // two readers share
                                           // A "writer": another open file description holding byte 101.
        let w = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        set_read_lock(&w, LOCK_PERM_BASE + PERM_WRITE).unwrap();
        let c = File::open(&p).unwrap();
        let e = lock_for_reading(&c, &p).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Refused, "{e}");
        assert!(e.to_string().contains("open for writing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

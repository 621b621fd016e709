//! Atomic output files: write to a temporary file beside the target, fsync,
//! then move it into place and fsync the directory.
//!
//! Many files written together ([`commit_all`], e.g. the links of a chain)
//! share one flush: one `syncfs` per filesystem before any is moved into
//! place, and one fsync per directory after. Durability can be turned off
//! ([`AtomicFile::set_sync`], `--no-sync`), as qemu-img's default output
//! cache mode does: the files are still complete-or-absent for a process
//! that dies, but not after a power loss.
//!
//! Until [`AtomicFile::commit`] succeeds the target is untouched, and the
//! temporary file is removed when the [`AtomicFile`] is dropped.
//!
//! Temporary files are named `.PREFIX.qfault-tmp.HASH.HOST.PID` (see
//! [`temporary_name`]): PREFIX is the target's name, cut to at most
//! [`MAX_PREFIX`] bytes, HASH identifies the full name, HOST is this host's
//! name and PID this process, so the name fits NAME_MAX (255 bytes) whatever
//! the target's length and says who may judge whether its writer still runs.
//! Before writing, a temporary left by a killed run for the same target is
//! removed only when it names this host and its PID no longer runs here;
//! another host's temporaries (a directory shared over NFS) are never
//! touched. The older form `.NAME.qfault-tmp.PID` records no host: it is
//! judged the same way only in a directory on a local filesystem
//! ([`on_local_filesystem`]) and kept anywhere else.
//!
//! Every temporary file being written is in a process-wide registry;
//! [`install_signal_cleanup`] (which the CLI calls first thing) removes them
//! on SIGINT, SIGTERM or SIGHUP before the process dies of that signal, and
//! makes writes past the file size limit fail with EFBIG instead of killing
//! the process with SIGXFSZ.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Marker in the names of qfault's temporary files.
pub const TMP_MARKER: &str = ".qfault-tmp.";

/// Longest part of the target's name kept in a temporary name, in bytes.
pub const MAX_PREFIX: usize = 150;

/// Longest host name kept in a temporary name, in bytes (Linux's
/// HOST_NAME_MAX).
pub const MAX_HOST: usize = 64;

/// Hex digits of the hash of the target's full name.
const HASH_DIGITS: usize = 16;

/// The longest file name a filesystem accepts (Linux's NAME_MAX).
pub const NAME_MAX: usize = 255;

/// A file being written that appears at its target path only on commit.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    target: PathBuf,
    overwrite: bool,
    sync: bool,
    /// Not yet moved into place: dropping it removes the temporary file.
    pending: bool,
    /// Its entry in the registry of live temporaries.
    live: LiveToken,
}

impl AtomicFile {
    /// Starts writing `target`. Unless `overwrite`, an existing target is a
    /// usage error, checked now and again at commit.
    pub fn create(target: &Path, overwrite: bool) -> Result<Self> {
        check_target(target)?;
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
        let tmp = dir.join(temporary_name(name, this_host(), std::process::id()));
        remove_stale_temporaries(&dir, name);
        // Registered before it exists, so a signal at any moment finds it.
        let live = register_live(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| {
                unregister_live(&live);
                create_error(target, &dir, e)
            })?;
        log::info!("write {} as temporary {}", target.display(), tmp.display());
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            target: target.to_path_buf(),
            overwrite,
            sync: true,
            pending: true,
            live,
        })
    }

    /// Whether [`AtomicFile::commit`] flushes the file and its directory to
    /// stable storage (the default) or only moves the file into place.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// The temporary file to write into.
    pub fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("file is open until commit or close")
    }

    /// Closes the temporary file's descriptor, keeping the file staged (so
    /// many staged files need no descriptor each until they are committed
    /// together); commit reopens it to flush it. Nothing may be written
    /// after this.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// The temporary file, open (reopened read-only after
    /// [`AtomicFile::close`]), to flush or stat it.
    fn handle(&self) -> Result<Handle<'_>> {
        match &self.file {
            Some(f) => Ok(Handle::Open(f)),
            None => File::open(&self.tmp)
                .map(Handle::Reopened)
                .map_err(|e| Error::io(&self.target, e)),
        }
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
        if self.sync {
            self.handle()?
                .sync_all()
                .map_err(|e| Error::io(&self.target, e))?;
        }
        self.place()?;
        if self.sync {
            sync_dir(&parent_dir(&self.target))?;
        }
        Ok(())
    }

    /// Moves the temporary file to the target (no flush).
    fn place(&mut self) -> Result<()> {
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
        self.pending = false;
        if let Some(meta) = self.file.take().and_then(|f| f.metadata().ok()) {
            log::info!(
                "renamed {} to {}: {} bytes ({} allocated)",
                self.tmp.display(),
                self.target.display(),
                meta.len(),
                std::os::unix::fs::MetadataExt::blocks(&meta) * 512
            );
        }
        unregister_live(&self.live);
        Ok(())
    }
}

/// The temporary file of an [`AtomicFile`]: its own descriptor, or one
/// opened again after [`AtomicFile::close`].
enum Handle<'a> {
    Open(&'a File),
    Reopened(File),
}

impl std::ops::Deref for Handle<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match self {
            Handle::Open(f) => f,
            Handle::Reopened(f) => f,
        }
    }
}

/// Commits `files` together with one flush: every filesystem they are on is
/// synced once (`syncfs`) before any is moved into place, then each is
/// renamed, then each directory is fsynced once. Files whose
/// [`AtomicFile::set_sync`] is off are only renamed. On an error before the
/// renames, no file is placed and every temporary file is removed.
pub fn commit_all(mut files: Vec<AtomicFile>) -> Result<()> {
    // The files to flush, grouped by filesystem: one file is fsynced, more
    // are flushed by one syncfs of their filesystem.
    let mut by_dev: Vec<(u64, Vec<usize>)> = Vec::new();
    for (i, f) in files.iter().enumerate().filter(|(_, f)| f.sync) {
        use std::os::unix::fs::MetadataExt;
        let dev = f
            .handle()?
            .metadata()
            .map_err(|e| Error::io(&f.target, e))?
            .dev();
        match by_dev.iter_mut().find(|(d, _)| *d == dev) {
            Some((_, group)) => group.push(i),
            None => by_dev.push((dev, vec![i])),
        }
    }
    for (_, group) in &by_dev {
        use std::os::fd::AsRawFd;
        let f = &files[group[0]];
        let h = f.handle()?;
        let flushed = if group.len() == 1 {
            h.sync_all()
        } else {
            // SAFETY: syncfs on a descriptor we own; no memory is passed.
            match unsafe { libc::syncfs(h.as_raw_fd()) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        };
        flushed.map_err(|e| Error::io(&f.target, e))?;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in &mut files {
        f.place()?;
        let dir = parent_dir(&f.target);
        if f.sync && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Commits `files` like [`commit_all`] (one `syncfs` per filesystem before
/// any is moved into place, one fsync per directory after), but each file
/// on its own terms: the result for each, in order. A file whose flush
/// failed is not placed (its temporary file is removed) and the others go
/// on; a file whose directory could not be flushed is in place but reported
/// with that error. For a batch, where one output's failure must not stop
/// the others.
pub fn commit_each(files: Vec<AtomicFile>) -> Vec<Result<()>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut results: Vec<Result<()>> = files.iter().map(|_| Ok(())).collect();
    // Group the files to flush by filesystem: one is fsynced, more are
    // flushed by one syncfs of their filesystem. A temporary file is on its
    // directory's filesystem, so each directory is looked at once (staged
    // files are closed: reopening each to stat it cost two system calls per
    // output).
    let mut dir_devs: Vec<(PathBuf, std::io::Result<u64>)> = Vec::new();
    let mut by_dev: Vec<(u64, Vec<usize>)> = Vec::new();
    for (i, f) in files.iter().enumerate().filter(|(_, f)| f.sync) {
        let dir = parent_dir(&f.target);
        let at = match dir_devs.iter().position(|(d, _)| *d == dir) {
            Some(at) => at,
            None => {
                let dev = std::fs::metadata(&dir).map(|m| m.dev());
                dir_devs.push((dir, dev));
                dir_devs.len() - 1
            }
        };
        match &dir_devs[at].1 {
            Ok(dev) => match by_dev.iter_mut().find(|(d, _)| d == dev) {
                Some((_, group)) => group.push(i),
                None => by_dev.push((*dev, vec![i])),
            },
            Err(e) => {
                let e = std::io::Error::new(e.kind(), e.to_string());
                results[i] = Err(Error::io(&dir_devs[at].0, e));
            }
        }
    }
    for (_, group) in &by_dev {
        let f = &files[group[0]];
        let flushed = match f.handle() {
            Err(e) => Err(std::io::Error::other(e.to_string())),
            Ok(h) if group.len() == 1 => h.sync_all(),
            // SAFETY: syncfs on a descriptor we own; no memory is passed.
            Ok(h) => match unsafe { libc::syncfs(h.as_raw_fd()) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            },
        };
        if let Err(e) = flushed {
            for &i in group {
                let e = std::io::Error::new(e.kind(), e.to_string());
                results[i] = Err(Error::io(&files[i].target, e));
            }
        }
    }
    let mut dirs: Vec<(PathBuf, Vec<usize>)> = Vec::new();
    for (i, mut f) in files.into_iter().enumerate() {
        if results[i].is_err() {
            continue; // dropped: its temporary file is removed
        }
        if let Err(e) = f.place() {
            results[i] = Err(e);
            continue;
        }
        if f.sync {
            let dir = parent_dir(&f.target);
            match dirs.iter_mut().find(|(d, _)| *d == dir) {
                Some((_, members)) => members.push(i),
                None => dirs.push((dir, vec![i])),
            }
        }
    }
    for (dir, members) in dirs {
        if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
            for i in members {
                let e = std::io::Error::new(e.kind(), e.to_string());
                results[i] = Err(Error::io(&dir, e));
            }
        }
    }
    results
}

/// Fsyncs the directory `dir` (so a rename in it is durable).
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        self.file = None;
        if std::mem::take(&mut self.pending) {
            let _ = std::fs::remove_file(&self.tmp);
            unregister_live(&self.live);
        }
    }
}

/// Refuses an output path that cannot name a file to write, before any
/// work: a directory (`-o /tmp`, with or without `--overwrite`), a path
/// without a file name, a parent directory that does not exist or is not a
/// directory. Each error names the user's path and says what to do.
pub fn check_target(target: &Path) -> Result<()> {
    if target.is_dir() {
        return Err(Error::Usage(format!(
            "{0} is a directory; -o names the file to write, such as {0}/NAME",
            target.display()
        )));
    }
    if target.file_name().is_none() {
        return Err(Error::Usage(format!(
            "{} does not name a file",
            target.display()
        )));
    }
    let dir = parent_dir(target);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "cannot write {}: {} is not a directory",
            target.display(),
            dir.display()
        ))),
        Err(e) => Err(create_error(target, &dir, e)),
    }
}

/// The error for a target whose temporary file in `dir` could not be
/// created: it names the target and its directory (never the temporary
/// name) and says what to do.
fn create_error(target: &Path, dir: &Path, e: std::io::Error) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::ENOENT) => "; create the directory first or choose another output path",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "; choose a directory you may write to as the output path"
        }
        Some(libc::EROFS) => "; the filesystem is read-only: choose another output path",
        Some(libc::ENOTDIR) => "; a part of the path is not a directory",
        _ => "",
    };
    let e = std::io::Error::new(e.kind(), format!("{e}{hint}"));
    Error::io(dir, e).context(format!("cannot write {}", target.display()))
}

/// Temporary files being written now, by registration number, in the
/// order they were registered (see [`install_signal_cleanup`]).
static LIVE: Mutex<std::collections::BTreeMap<u64, PathBuf>> =
    Mutex::new(std::collections::BTreeMap::new());

/// The next registration number.
static NEXT_LIVE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn live() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<u64, PathBuf>> {
    // A panic elsewhere while holding the lock leaves a usable list.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary file's place in both registries, so that taking it off costs
/// the same however many other temporaries are live (a batch stages a
/// thousand outputs before committing them).
#[derive(Debug)]
struct LiveToken {
    id: u64,
    slot: Option<signal_list::Slot>,
}

fn register_live(tmp: &Path) -> LiveToken {
    let id = NEXT_LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    live().insert(id, tmp.to_path_buf());
    LiveToken {
        id,
        slot: signal_list::add(tmp),
    }
}

fn unregister_live(token: &LiveToken) {
    live().remove(&token.id);
    if let Some(slot) = &token.slot {
        signal_list::remove(slot);
    }
}

/// The live temporaries as the signal handler sees them: a list it can
/// walk without locking or allocating (see [`install_signal_cleanup`]).
///
/// Nodes are never freed, and a node whose path is null is reused; a path
/// taken off the list is not freed either, since a handler running on
/// another thread may be reading it (a few bytes per output file for the
/// life of the process).
mod signal_list {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    pub(super) struct Node {
        path: AtomicPtr<libc::c_char>,
        next: AtomicPtr<Node>,
    }

    /// Where [`add`] put a path: the node and the path it holds.
    #[derive(Debug)]
    pub(super) struct Slot {
        node: &'static Node,
        /// The leaked path, as an address (so the slot can move between
        /// threads with the file it belongs to).
        path: usize,
    }

    impl std::fmt::Debug for Node {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Node").finish_non_exhaustive()
        }
    }

    static HEAD: AtomicPtr<Node> = AtomicPtr::new(null_mut());

    /// About how many nodes hold no path: [`add`] walks the list for a free
    /// node only when some may be free (a batch stages a thousand outputs
    /// before committing any; walking a thousand busy nodes for each was
    /// quadratic). A hint: a free node missed costs one more node.
    static FREE: AtomicUsize = AtomicUsize::new(0);

    fn nodes() -> impl Iterator<Item = &'static Node> {
        let mut at = HEAD.load(Ordering::Acquire);
        std::iter::from_fn(move || {
            // SAFETY: nodes are leaked boxes, never freed.
            let node = unsafe { at.as_ref() }?;
            at = node.next.load(Ordering::Acquire);
            Some(node)
        })
    }

    /// Puts `tmp` on the list, in a free node or a new one (a path holding
    /// a NUL byte cannot be created, so it is left out: `None`).
    pub(super) fn add(tmp: &Path) -> Option<Slot> {
        let c = CString::new(tmp.as_os_str().as_bytes()).ok()?;
        let p = c.into_raw();
        let slot = |node| Slot {
            node,
            path: p as usize,
        };
        if FREE.load(Ordering::Relaxed) > 0 {
            for node in nodes() {
                // A plain load first: a compare-and-swap on every busy node
                // would cost a locked instruction each.
                if node.path.load(Ordering::Relaxed).is_null()
                    && node
                        .path
                        .compare_exchange(null_mut(), p, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    let _ = FREE
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                    return Some(slot(node));
                }
            }
        }
        let node = Box::into_raw(Box::new(Node {
            path: AtomicPtr::new(p),
            next: AtomicPtr::new(HEAD.load(Ordering::Acquire)),
        }));
        // SAFETY: `node` was just leaked from a box and is not shared yet.
        let next = unsafe { &(*node).next };
        let mut head = next.load(Ordering::Relaxed);
        while let Err(now) = HEAD.compare_exchange(head, node, Ordering::AcqRel, Ordering::Acquire)
        {
            head = now;
            next.store(head, Ordering::Relaxed);
        }
        // SAFETY: nodes are never freed.
        Some(slot(unsafe { &*node }))
    }

    /// Takes the path [`add`] put in `slot` off the list (unless
    /// [`clear`] did already).
    pub(super) fn remove(slot: &Slot) {
        let freed = slot.node.path.compare_exchange(
            slot.path as *mut libc::c_char,
            null_mut(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        if freed.is_ok() {
            FREE.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes every path off the list.
    pub(super) fn clear() {
        for node in nodes() {
            if !node.path.swap(null_mut(), Ordering::AcqRel).is_null() {
                FREE.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Unlinks every path on the list: async-signal-safe (atomic loads and
    /// unlink only).
    pub(super) fn unlink_all() {
        for node in nodes() {
            let p = node.path.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: a NUL-terminated path leaked by `add`.
                unsafe { libc::unlink(p) };
            }
        }
    }
}

/// The temporary files this process is writing now.
pub fn live_temporaries() -> Vec<PathBuf> {
    live().values().cloned().collect()
}

/// Removes every temporary file this process is writing (for a process
/// about to end without unwinding: a signal, or the CLI giving up on a
/// closed standard output). Their writers then fail if they go on.
pub fn remove_live_temporaries() {
    signal_list::clear();
    for p in std::mem::take(&mut *live()).into_values() {
        let _ = std::fs::remove_file(p);
    }
}

/// Makes the process end cleanly on signals, for command-line programs:
///
/// - SIGXFSZ is ignored, so a write past the file size limit (`ulimit -f`)
///   fails with EFBIG, which qfault reports as an error on the file, instead
///   of killing the process and leaving its temporary file behind.
/// - On SIGINT, SIGTERM or SIGHUP a signal handler removes every temporary
///   file being written and the process then dies of that same signal (the
///   shell reports 128 + its number; exit code 128 + N where the signal
///   cannot be re-raised). The handler only walks a list kept for it and
///   calls `unlink`, both safe in a signal handler; no thread is started
///   (starting one cost a tenth of a millisecond on every run).
///
/// Call it once, early.
pub fn install_signal_cleanup() -> Result<()> {
    // SAFETY: setting the disposition of SIGXFSZ to SIG_IGN has no
    // preconditions; the sigaction structure is fully initialised, and the
    // handler is async-signal-safe (see `on_signal`).
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in CLEANUP_SIGNALS {
            // Each of them waits while the handler runs.
            libc::sigaddset(&mut action.sa_mask, sig);
        }
        action.sa_flags = libc::SA_RESTART;
        for sig in CLEANUP_SIGNALS {
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(Error::io("signal handler", std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// The signals [`install_signal_cleanup`] handles.
const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Removes the live temporaries, then dies of `sig`: only async-signal-safe
/// calls (atomic loads, unlink, signal, pthread_sigmask, raise, _exit).
extern "C" fn on_signal(sig: libc::c_int) {
    signal_list::unlink_all();
    // SAFETY: each call is async-signal-safe; `set` is initialised by
    // sigemptyset before use.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        // Blocked while its handler runs: unblocked, it is delivered now.
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig);
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

/// The name of the temporary file process `pid` on `host` writes for the
/// target named `name`: `.PREFIX.qfault-tmp.HASH.HOST.PID`.
///
/// PREFIX is `name` cut to at most [`MAX_PREFIX`] bytes, never inside a
/// UTF-8 sequence; HASH is 16 hex digits of the SHA-256 of the full `name`,
/// so targets that share a long prefix get distinct names; HOST is `host`
/// with bytes other than ASCII letters, digits, `-` and `.` replaced by `_`,
/// cut to [`MAX_HOST`] bytes. The result is at most [`NAME_MAX`] bytes.
pub fn temporary_name(name: &OsStr, host: &str, pid: u32) -> OsString {
    let mut out = temporary_stem(name);
    out.extend_from_slice(sanitize_host(host).as_bytes());
    out.push(b'.');
    out.extend_from_slice(pid.to_string().as_bytes());
    OsString::from_vec(out)
}

/// `.PREFIX.qfault-tmp.HASH.`: what every temporary name for the target
/// named `name` starts with, whoever writes it.
fn temporary_stem(name: &OsStr) -> Vec<u8> {
    let bytes = name.as_bytes();
    let hash = Sha256::digest(bytes);
    let mut out = Vec::with_capacity(NAME_MAX);
    out.push(b'.');
    out.extend_from_slice(&bytes[..prefix_len(bytes, MAX_PREFIX)]);
    out.extend_from_slice(TMP_MARKER.as_bytes());
    for b in &hash[..HASH_DIGITS / 2] {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    out.push(b'.');
    out
}

/// The length of the longest prefix of `bytes` of at most `max` bytes that
/// does not end inside a UTF-8 sequence (a cut before a continuation byte
/// backs off to the sequence's start), so a valid UTF-8 name keeps a valid
/// UTF-8 prefix.
fn prefix_len(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    let mut end = max;
    // A UTF-8 sequence has at most 3 continuation bytes.
    for _ in 0..3 {
        if end > 0 && bytes[end] & 0xC0 == 0x80 {
            end -= 1;
        } else {
            break;
        }
    }
    end
}

/// `host` made safe and bounded for a file name: ASCII letters, digits, `-`
/// and `.` kept, any other byte replaced by `_`, at most [`MAX_HOST`] bytes;
/// `unknown` when empty.
fn sanitize_host(host: &str) -> String {
    let s: String = host
        .bytes()
        .take(MAX_HOST)
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unknown".to_string()
    } else {
        s
    }
}

/// This host's name as it appears in temporary names (see
/// [`temporary_name`]): `gethostname(2)`, sanitized and bounded.
pub fn this_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for buf.len() bytes; gethostname
        // writes at most that many.
        let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let raw = if r == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            String::new()
        };
        sanitize_host(&raw)
    })
}

/// Who wrote a temporary file, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TempOwner {
    /// `.PREFIX.qfault-tmp.HASH.HOST.PID`: the (sanitized) host and PID.
    Host {
        /// The host name as written in the temporary name.
        host: String,
        /// The writer's process id on that host.
        pid: u32,
    },
    /// `.NAME.qfault-tmp.PID`, the form of qfault before host names were
    /// recorded: the PID, on a host nobody knows.
    Legacy {
        /// The writer's process id.
        pid: u32,
    },
}

/// Whether `file_name` is a temporary file for the target named `name`, and
/// whose: `None` when it is not one.
pub fn temporary_owner(name: &OsStr, file_name: &OsStr) -> Option<TempOwner> {
    let file_name = file_name.as_bytes();
    if let Some(rest) = file_name.strip_prefix(temporary_stem(name).as_slice()) {
        let dot = rest.iter().rposition(|&b| b == b'.')?;
        let (host, pid) = (&rest[..dot], &rest[dot + 1..]);
        let host = std::str::from_utf8(host).ok()?;
        if host.is_empty() || sanitize_host(host) != host {
            return None;
        }
        return Some(TempOwner::Host {
            host: host.to_string(),
            pid: parse_pid(pid)?,
        });
    }
    let mut legacy = Vec::with_capacity(name.len() + TMP_MARKER.len() + 1);
    legacy.push(b'.');
    legacy.extend_from_slice(name.as_bytes());
    legacy.extend_from_slice(TMP_MARKER.as_bytes());
    let pid = file_name.strip_prefix(legacy.as_slice())?;
    Some(TempOwner::Legacy {
        pid: parse_pid(pid)?,
    })
}

/// A PID written in decimal: digits only, fitting a u32.
fn parse_pid(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Removes temporary files a killed qfault left for the target named `name`
/// in `dir`, judging only what this host can judge:
///
/// - `.PREFIX.qfault-tmp.HASH.HOST.PID` is removed when HOST is this host
///   and PID no longer runs (or is this process: a leftover of an earlier
///   process that had the same PID). Another host's temporary is kept: its
///   PID means nothing here and its writer may be running.
/// - `.NAME.qfault-tmp.PID` (older qfault, no host recorded) is removed
///   under the same PID rule only when `dir` is on a local filesystem
///   ([`on_local_filesystem`]), where no other host can have written it; on
///   NFS, CIFS, FUSE or an unknown filesystem it is kept, since it might be
///   a live writer's on another host, and is for the user to delete.
///
/// The directory is listed once per [`SCAN_REUSE`] (its temporaries
/// remembered), not once per target: a batch writing thousands of outputs
/// into one directory would otherwise list it once for each.
fn remove_stale_temporaries(dir: &Path, name: &OsStr) {
    let Some(found) = temporaries_in(dir) else {
        return;
    };
    // Every temporary name of this target starts with "." and the
    // target's name cut to MAX_PREFIX bytes (less at most 3, never inside a
    // UTF-8 sequence): a cheap test before the full one, which hashes.
    let lead = &name.as_bytes()[..name.len().min(MAX_PREFIX - 3)];
    let mut local = None;
    for file_name in found {
        let f = file_name.as_bytes();
        if f.first() != Some(&b'.') || !f[1..].starts_with(lead) {
            continue;
        }
        let pid = match temporary_owner(name, &file_name) {
            Some(TempOwner::Host { host, pid }) if host == this_host() => pid,
            Some(TempOwner::Legacy { pid })
                if *local.get_or_insert_with(|| on_local_filesystem(dir)) =>
            {
                pid
            }
            _ => continue,
        };
        if pid == std::process::id() || !process_alive(pid) {
            let _ = std::fs::remove_file(dir.join(&file_name));
        }
    }
}

/// How long one listing of a directory's temporaries is reused.
const SCAN_REUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Directories listed lately: (directory, when, the temporaries in it).
type Scans = Vec<(PathBuf, std::time::Instant, Vec<OsString>)>;

/// The names of the temporary files (any target's) in `dir`, from a
/// listing at most [`SCAN_REUSE`] old; `None` when it cannot be listed.
fn temporaries_in(dir: &Path) -> Option<Vec<OsString>> {
    static SCANS: Mutex<Scans> = Mutex::new(Vec::new());
    let now = std::time::Instant::now();
    {
        let mut scans = SCANS.lock().unwrap_or_else(|e| e.into_inner());
        scans.retain(|(_, at, _)| now.duration_since(*at) < SCAN_REUSE);
        if let Some((_, _, names)) = scans.iter().find(|(d, _, _)| d == dir) {
            return Some(names.clone());
        }
    }
    let marker = TMP_MARKER.as_bytes();
    let names: Vec<OsString> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.as_bytes().windows(marker.len()).any(|w| w == marker))
        .collect();
    let mut scans = SCANS.lock().unwrap_or_else(|e| e.into_inner());
    if scans.len() < 64 {
        scans.push((dir.to_path_buf(), now, names.clone()));
    }
    Some(names)
}

/// Whether `dir` is on a filesystem only this host writes: one of the
/// usual local filesystems (ext2/3/4, XFS, Btrfs, F2FS, ZFS, tmpfs, ramfs,
/// overlayfs). Network, cluster and FUSE filesystems, and any filesystem
/// not listed, count as shared.
pub fn on_local_filesystem(dir: &Path) -> bool {
    const LOCAL: [u64; 8] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0xF2F5_2010, // F2FS
        0x2FC1_2FC1, // ZFS
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x794C_7630, // overlayfs
    ];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; an all-zero value is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    // f_type's integer type differs between targets; the magic fits 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64 & 0xFFFF_FFFF;
    LOCAL.contains(&magic)
}

/// Whether a process with this PID exists on this host.
fn process_alive(pid: u32) -> bool {
    // 0 and values over i32::MAX would address process groups.
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
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

/// Whether every byte of `data` is zero. Compares 64 bytes at a time (which
/// the compiler turns into vector instructions; a byte-at-a-time loop that
/// stops at the first non-zero byte is several times slower on the zero
/// clusters every overlay and export goes through).
pub fn is_zero(data: &[u8]) -> bool {
    const CHUNK: usize = 64;
    let mut chunks = data.chunks_exact(CHUNK);
    for c in &mut chunks {
        if c.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// Writes the non-zero 4 KiB blocks of `data` at `offset`, coalescing runs;
/// the all-zero blocks are skipped so they stay holes in a fresh file.
pub fn write_nonzero(file: &std::fs::File, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let mut run_start: Option<usize> = None;
    let mut i = 0;
    while i < data.len() {
        let end = (i + HOLE_BLOCK).min(data.len());
        let zero = is_zero(&data[i..end]);
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

    /// Regression (issue 16): a batch stages a thousand outputs; taking one
    /// off the registry must not depend on the others, nor leave it listed.
    #[test]
    fn live_temporaries_are_listed_in_order_until_committed_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<AtomicFile> = (0..300)
            .map(|i| AtomicFile::create(&dir.path().join(format!("o{i}")), false).unwrap())
            .collect();
        let mine = |live: &[PathBuf]| -> Vec<PathBuf> {
            live.iter()
                .filter(|p| p.starts_with(dir.path()))
                .cloned()
                .collect()
        };
        let tmps: Vec<PathBuf> = files.iter().map(|f| f.tmp_path().to_path_buf()).collect();
        assert_eq!(mine(&live_temporaries()), tmps);
        let mut files = files.into_iter();
        files.next().unwrap().commit().unwrap();
        drop(files.next());
        assert_eq!(mine(&live_temporaries()), tmps[2..]);
        drop(files);
        assert!(mine(&live_temporaries()).is_empty());
        assert!(dir.path().join("o0").exists() && !dir.path().join("o1").exists());
        // Files registered after many were taken off are listed too.
        let again: Vec<AtomicFile> = (0..300)
            .map(|i| AtomicFile::create(&dir.path().join(format!("p{i}")), false).unwrap())
            .collect();
        assert_eq!(mine(&live_temporaries()).len(), again.len());
    }

    #[test]
    fn is_zero_sees_a_single_set_byte_anywhere() {
        for len in [0, 1, 63, 64, 65, 4096, 4097] {
            let mut v = vec![0u8; len];
            assert!(is_zero(&v), "len {len}");
            for at in [0, len / 2, len.saturating_sub(1)] {
                if len == 0 {
                    continue;
                }
                v[at] = 0x80;
                assert!(!is_zero(&v), "len {len}, byte {at}");
                v[at] = 0;
            }
        }
    }

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
    fn legacy_temporaries_of_dead_processes_are_removed_on_local_filesystems() {
        let dir = std::env::temp_dir().join(format!("qfault-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Old names carry no host; on a local filesystem they are judged
        // as before. PID 0x7fff_fff0 does not exist; PID 1 (init) does.
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

    /// A PID no process has (over any pid_max Linux allows).
    const DEAD: u32 = 0x7fff_fff0;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn temporary_names_fit_name_max_for_the_longest_names() {
        let long_host = "h".repeat(300);
        for name in [
            "a".repeat(255),
            "é".repeat(127) + "a",
            "€".repeat(85),
            "𝄞".repeat(63) + "abc",
        ] {
            assert_eq!(name.len(), 255);
            for host in ["vm", long_host.as_str()] {
                let t = temporary_name(os(&name), host, u32::MAX);
                assert!(t.len() <= NAME_MAX, "{} bytes: {t:?}", t.len());
                assert_eq!(
                    temporary_owner(os(&name), &t),
                    Some(TempOwner::Host {
                        host: sanitize_host(host),
                        pid: u32::MAX
                    })
                );
            }
        }
        // The bound is reached exactly: longest prefix, host and PID.
        let t = temporary_name(os(&"a".repeat(255)), &long_host, u32::MAX);
        assert_eq!(t.len(), NAME_MAX);
    }

    #[test]
    fn short_names_are_kept_whole_and_readable() {
        let t = temporary_name(os("disk.qcow2"), "node1.example", 4242);
        let t = t.to_str().unwrap();
        let rest = t.strip_prefix(".disk.qcow2.qfault-tmp.").unwrap();
        let (hash, owner) = rest.split_at(HASH_DIGITS);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        assert_eq!(owner, ".node1.example.4242");
        assert!(t.contains(TMP_MARKER));
    }

    #[test]
    fn distinct_long_targets_get_distinct_names() {
        let common = "x".repeat(200);
        let a = format!("{common}-first.qcow2");
        let b = format!("{common}-second.qcow2");
        let (ta, tb) = (
            temporary_name(os(&a), "vm", 7),
            temporary_name(os(&b), "vm", 7),
        );
        assert_ne!(ta, tb);
        // Each is recognised as its own target's only.
        assert!(temporary_owner(os(&a), &ta).is_some());
        assert!(temporary_owner(os(&a), &tb).is_none());
        assert!(temporary_owner(os(&b), &ta).is_none());
    }

    #[test]
    fn cuts_never_split_a_utf8_sequence() {
        for (ch, extra) in [("é", 0), ("€", 0), ("€", 1), ("𝄞", 0), ("𝄞", 2)] {
            let name = "a".repeat(extra) + &ch.repeat(100);
            let t = temporary_name(os(&name), "vm", 1);
            let t = t
                .to_str()
                .expect("a UTF-8 name keeps a UTF-8 temporary name");
            let prefix = t[1..].split(TMP_MARKER).next().unwrap();
            assert!(name.starts_with(prefix));
            assert!(prefix.len() <= MAX_PREFIX && prefix.len() > MAX_PREFIX - 4);
        }
        // Bytes that are not UTF-8 are cut as bytes.
        let raw = OsStr::from_bytes(&[0xff; 200]);
        let t = temporary_name(raw, "vm", 1);
        assert!(t.len() <= NAME_MAX);
        assert!(temporary_owner(raw, &t).is_some());
    }

    #[test]
    fn hosts_are_sanitized_and_bounded() {
        assert_eq!(sanitize_host("node-1.lab"), "node-1.lab");
        assert_eq!(sanitize_host("a b/c\u{e9}"), "a_b_c__");
        assert_eq!(sanitize_host(""), "unknown");
        assert_eq!(sanitize_host(&"h".repeat(100)).len(), MAX_HOST);
        let me = this_host();
        assert!(!me.is_empty() && me.len() <= MAX_HOST);
        assert_eq!(sanitize_host(me), me);
    }

    #[test]
    fn owners_are_parsed_strictly() {
        let name = os("t.img");
        let owner = |f: &str| temporary_owner(name, os(f));
        let stem = String::from_utf8(temporary_stem(name)).unwrap();
        assert_eq!(
            owner(&format!("{stem}node1.lab.123")),
            Some(TempOwner::Host {
                host: "node1.lab".into(),
                pid: 123
            })
        );
        assert_eq!(
            owner(".t.img.qfault-tmp.77"),
            Some(TempOwner::Legacy { pid: 77 })
        );
        for not_ours in [
            format!("{stem}node1.+5"),
            format!("{stem}node1."),
            format!("{stem}.5"),
            format!("{stem}no dot"),
            format!("{stem}bad host.5"),
            format!("{stem}node1.99999999999"),
            ".t.img.qfault-tmp.".to_string(),
            ".t.img.qfault-tmp.12a".to_string(),
            ".u.img.qfault-tmp.12".to_string(),
            "t.img".to_string(),
        ] {
            assert_eq!(owner(&not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn a_255_byte_target_is_written() {
        let dir = std::env::temp_dir().join(format!("qfault-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("é".repeat(120) + &"b".repeat(15));
        assert_eq!(target.file_name().unwrap().len(), 255);
        let a = AtomicFile::create(&target, false).unwrap();
        a.file().write_all(b"long").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"long");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.as_bytes().windows(12).any(|w| w == TMP_MARKER.as_bytes()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_this_hosts_dead_temporaries_are_removed() {
        let dir = std::env::temp_dir().join(format!("qfault-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let name = os("t.img");
        let other_host = if this_host() == "elsewhere" {
            "away"
        } else {
            "elsewhere"
        };
        let dead_here = dir.join(temporary_name(name, this_host(), DEAD));
        let alive_here = dir.join(temporary_name(name, this_host(), 1));
        let dead_elsewhere = dir.join(temporary_name(name, other_host, DEAD));
        for p in [&dead_here, &alive_here, &dead_elsewhere] {
            std::fs::write(p, b"partial").unwrap();
        }
        drop(AtomicFile::create(&dir.join("t.img"), false).unwrap());
        assert!(!dead_here.exists(), "this host's dead writer: removed");
        assert!(alive_here.exists(), "this host's live writer: kept");
        assert!(dead_elsewhere.exists(), "another host's: never judged");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_temporary_dir_is_local() {
        // The legacy-name test relies on it (ext4 or tmpfs here).
        assert!(on_local_filesystem(&std::env::temp_dir()));
        assert!(!on_local_filesystem(Path::new("/nonexistent/dir")));
    }
}

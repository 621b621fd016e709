//! `qfault inject ntfs-boot` against the real tools (GitHub issue 6).
//!
//! Every disk here is built with the real tools (sfdisk, sgdisk, mkntfs,
//! ntfscp, mkfs.vfat, qemu-img, qemu-io). Every overlay qfault writes is read
//! back through QEMU (`qemu-img convert`, never only through qfault's own
//! reader), and the partition taken from it is given to the real `ntfs-3g`
//! mount and the real `ntfsfix`. qfault's predictions (its JSON report and
//! `qfault verify --json`) are compared with what those tools actually did.
//!
//! FUSE: mounts use `ntfs-3g -o ro PART DIR` / `umount DIR`. When /dev/fuse
//! cannot be opened, the mount checks fall back to `ntfsinfo -m` and
//! `ntfsls -f` (same libntfs-3g mount code, no FUSE) and say so loudly on
//! stderr; nothing is skipped silently.

mod common;

use common::{
    assert_qemu_img_check_clean, cmd, qemu_img, qfault_bin, qfault_expect, run, run_any, sh,
    sparse_file, tmpdir, tool_path, write_at, BaseGuard,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// The contents of the file put in every NTFS volume built here, so that
/// "lists the root" has something to list and read.
const HELLO: &[u8] = b"hello from a qfault ntfs-boot test\n";

/// What ntfsfix prints when it takes the backup boot sector.
const ALT_USABLE: &str = "The alternate bootsector is usable";
/// What ntfs-3g (and ntfsfix's first mount attempt) says about a zeroed sector 0.
const SIG_MISSING: &str = "NTFS signature is missing";

// ---------------------------------------------------------------------------
// Small process helpers

/// A command for a real tool, found on PATH or in the sbin directories
/// (cargo test does not always have /usr/sbin on PATH).
fn tool<I, S>(name: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let path = tool_path(name).unwrap_or_else(|| panic!("{name} not found"));
    cmd(path, args)
}

/// Runs a real tool; panics unless it exits 0; returns stdout.
fn tool_ok<I, S>(name: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    String::from_utf8_lossy(&run(&mut tool(name, args)).stdout).into_owned()
}

/// Runs `c` with `input` on stdin; panics unless it exits 0.
fn run_stdin(mut c: Command, input: &str) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let name = format!("{c:?}");
    let mut child = c.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed with {}\nstdin:\n{input}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stdout and stderr together, for matching messages.
fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

// ---------------------------------------------------------------------------
// Sparse files: data extents only (SEEK_DATA / SEEK_HOLE)

/// The data extents `[start, end)` of a file, as the filesystem reports them.
fn data_extents(f: &File) -> Vec<(u64, u64)> {
    let size = f.metadata().unwrap().len() as i64;
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    while pos < size {
        // SAFETY: lseek on an fd we own; it only moves the file offset.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // no data after pos
            }
            panic!("lseek(SEEK_DATA, {pos}): {e}");
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        assert!(
            hole > data,
            "lseek(SEEK_HOLE, {data}) = {hole}: {}",
            std::io::Error::last_os_error()
        );
        out.push((data as u64, hole as u64));
        pos = hole as i64;
    }
    out
}

/// Copies the data extents of `src` within `[src_off, src_off + len)` into
/// `dst` at `dst_off + (x - src_off)`, never reading `src`'s holes and never
/// truncating `dst`. Returns the number of bytes copied.
fn copy_extents(src: &Path, src_off: u64, len: u64, dst: &Path, dst_off: u64) -> u64 {
    let s = File::open(src).unwrap();
    let d = OpenOptions::new().write(true).open(dst).unwrap();
    let end = src_off + len;
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut copied = 0;
    for (a, b) in data_extents(&s) {
        let (a, b) = (a.max(src_off), b.min(end));
        let mut x = a;
        while x < b {
            let n = ((b - x) as usize).min(buf.len());
            s.read_exact_at(&mut buf[..n], x).unwrap();
            d.write_all_at(&buf[..n], dst_off + (x - src_off)).unwrap();
            x += n as u64;
            copied += n as u64;
        }
    }
    copied
}

/// Guards a sparse raw base: the 40 GiB one cannot be hashed by reading it
/// whole in reasonable time, and even the 128 MiB ones cost ~8 s per hash
/// with [`BaseGuard`] (sha2 in a debug build runs at ~15 MB/s here), twice
/// per test. The small qcow2 bases keep [`BaseGuard`]. What is hashed: the file's size, its mtime, the list of
/// data extents the filesystem reports (SEEK_DATA/SEEK_HOLE) and every byte
/// inside them. Holes are not read: they read as zeros by definition, and
/// any write into a hole allocates blocks, which changes the extent list.
/// So this covers the whole content as long as the filesystem reports
/// extents truthfully (ext4 and tmpfs do).
struct SparseGuard {
    path: PathBuf,
    len: u64,
    mtime: std::time::SystemTime,
    digest: String,
}

impl SparseGuard {
    fn new(path: &Path) -> Self {
        let meta = std::fs::metadata(path).unwrap();
        SparseGuard {
            path: path.to_path_buf(),
            len: meta.len(),
            mtime: meta.modified().unwrap(),
            digest: Self::hash(path),
        }
    }

    fn hash(path: &Path) -> String {
        let f = File::open(path).unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 4 * MIB as usize];
        for (a, b) in data_extents(&f) {
            h.update(a.to_le_bytes());
            h.update(b.to_le_bytes());
            let mut x = a;
            while x < b {
                let n = ((b - x) as usize).min(buf.len());
                f.read_exact_at(&mut buf[..n], x).unwrap();
                h.update(&buf[..n]);
                x += n as u64;
            }
        }
        format!("{:x}", h.finalize())
    }

    fn assert_unchanged(&self) {
        let meta = std::fs::metadata(&self.path).unwrap();
        assert_eq!(meta.len(), self.len, "{} changed size", self.path.display());
        assert_eq!(
            meta.modified().unwrap(),
            self.mtime,
            "{} was modified",
            self.path.display()
        );
        assert_eq!(
            Self::hash(&self.path),
            self.digest,
            "{} changed content",
            self.path.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Building disks with the real tools

/// A sparse disk of `size` bytes with the partition table `script` written
/// by sfdisk (512-byte sectors: sfdisk's view of a regular file).
fn sfdisk_disk(path: &Path, size: u64, script: &str) {
    sparse_file(path, size);
    run_stdin(tool("sfdisk", ["-q".as_ref(), p(path)]), script);
}

/// Makes an NTFS volume the way Windows-like disks are made here: on a
/// sparse file of `fs_bytes` (the partition's size, or less to simulate a
/// partition grown after formatting), `mkntfs -Q -F -L LABEL -p START -H 255
/// -S 63 [extra]`, `hello.txt` copied in with ntfscp when `with_file`, then
/// only its data extents copied into `disk` at `start_sector` × 512.
fn put_ntfs(
    disk: &Path,
    start_sector: u64,
    fs_bytes: u64,
    label: &str,
    extra: &[&str],
    with_file: bool,
) {
    let work = tmpdir();
    let vol = work.path().join("vol.ntfs");
    sparse_file(&vol, fs_bytes);
    let start = start_sector.to_string();
    let mut args = vec![
        "-Q", "-F", "-L", label, "-p", &start, "-H", "255", "-S", "63",
    ];
    args.extend_from_slice(extra);
    let mut c = tool("mkntfs", &args);
    c.arg(&vol);
    run(&mut c);
    if with_file {
        let src = work.path().join("hello.txt");
        std::fs::write(&src, HELLO).unwrap();
        run(&mut tool(
            "ntfscp",
            [p(&vol), p(&src), OsStr::new("hello.txt")],
        ));
    }
    copy_extents(&vol, 0, fs_bytes, disk, start_sector * SECTOR);
    assert_eq!(
        std::fs::metadata(disk).unwrap().len() % SECTOR,
        0,
        "disk grew oddly"
    );
}

/// `sfdisk --json`: (start sector, sectors) of partition `n` (its node name
/// ends in `n`, e.g. `disk.raw5`).
fn sfdisk_partition(disk: &Path, n: u32) -> (u64, u64) {
    let v: Value = serde_json::from_str(&tool_ok("sfdisk", ["--json".as_ref(), p(disk)])).unwrap();
    let parts = v["partitiontable"]["partitions"].as_array().unwrap();
    let node_suffix = format!("{}{n}", disk.file_name().unwrap().to_string_lossy());
    let part = parts
        .iter()
        .find(|x| x["node"].as_str().unwrap().ends_with(&node_suffix))
        .unwrap_or_else(|| panic!("no partition {n} in {v}"));
    (
        part["start"].as_u64().unwrap(),
        part["size"].as_u64().unwrap(),
    )
}

// ---------------------------------------------------------------------------
// Reading an image back through QEMU

/// Guest bytes `[start, start + size)` of `image` (any format, through its
/// backing chain) as a sparse raw file of `size` bytes: `qemu-img convert -O
/// raw` of the whole image (QEMU skips unallocated and zero areas, so this
/// takes well under a second even for 40 GiB), then the data extents of the
/// range copied out. (A raw node with offset/size over the image, via
/// `--image-opts`, also works but reads every zero: ~30 s for 40 GiB.)
fn qemu_extract(image: &Path, start: u64, size: u64, out: &Path) {
    let scratch = tmpdir();
    let flat = scratch.path().join("flat.raw");
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        p(image),
        p(&flat),
    ]);
    let virtual_size = qemu_info(image)["virtual-size"].as_u64().unwrap();
    assert_eq!(std::fs::metadata(&flat).unwrap().len(), virtual_size);
    assert!(start + size <= virtual_size, "range beyond the disk");
    sparse_file(out, size);
    copy_extents(&flat, start, size, out, 0);
}

/// `qemu-img info --output=json`.
fn qemu_info(image: &Path) -> Value {
    serde_json::from_str(&qemu_img([
        "info".as_ref(),
        "--output=json".as_ref(),
        p(image),
    ]))
    .unwrap()
}

/// The overlay is a clean qcow2 whose backing file (as QEMU resolves it) is
/// `base` with format `base_format`, and qfault's report says the same.
fn assert_overlay_shape(overlay: &Path, base: &Path, base_format: &str, report: &Value) {
    assert_qemu_img_check_clean(overlay);
    let info = qemu_info(overlay);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["backing-filename-format"], base_format, "{info}");
    let full = PathBuf::from(info["full-backing-filename"].as_str().unwrap());
    assert_eq!(
        full.canonicalize().unwrap(),
        base.canonicalize().unwrap(),
        "qemu-img resolves the overlay's backing file elsewhere: {info}"
    );
    let ov = &report["output"]["overlay"];
    assert_eq!(ov["backing_file"], info["backing-filename"], "{ov}");
    assert_eq!(ov["backing_format"], base_format, "{ov}");
    assert_eq!(
        ov["virtual_size"], info["virtual-size"],
        "overlay virtual size"
    );
}

// ---------------------------------------------------------------------------
// Mounting: FUSE, or the loud fallback

/// Can this process use FUSE? Decided once; the fallback is announced
/// loudly. `QFAULT_TEST_NO_FUSE=1` forces the fallback (to exercise it).
fn fuse_usable() -> bool {
    static FUSE: OnceLock<bool> = OnceLock::new();
    *FUSE.get_or_init(|| {
        let why = if std::env::var_os("QFAULT_TEST_NO_FUSE").is_some_and(|v| v == "1") {
            Some("QFAULT_TEST_NO_FUSE=1".to_string())
        } else {
            match OpenOptions::new().read(true).write(true).open("/dev/fuse") {
                Ok(_) => None,
                Err(e) => Some(format!("/dev/fuse is unusable: {e}")),
            }
        };
        match why {
            None => true,
            Some(why) if common::in_ci() && std::env::var_os("QFAULT_TEST_NO_FUSE").is_none() => {
                panic!("CI must check mounts with real ntfs-3g FUSE mounts: {why}")
            }
            Some(why) => {
                // Straight to fd 2, past libtest's capture: seen even when
                // every test passes.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !!! FUSE FALLBACK ({why}).\n\
                     !!! ntfs_boot tests check mounts with `ntfsinfo -m` and list roots with\n\
                     !!! `ntfsls -f` instead of a real ntfs-3g FUSE mount.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                );
                false
            }
        }
    })
}

/// A live ntfs-3g mount, unmounted on drop (also when a test panics).
struct Mount {
    dir: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let out = run_any(&mut tool("umount", [p(&self.dir)]));
        if !out.status.success() {
            eprintln!("umount {} failed: {}", self.dir.display(), all_text(&out));
        }
    }
}

/// Tries the command qfault predicts for (`ntfs-3g PART MNT`, read-write)
/// on the partition image `part`; an error is `(exit code, output)`.
fn try_mount(part: &Path, dir: &Path) -> Result<Mount, (i32, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let out = run_any(&mut tool("ntfs-3g", [p(part), p(dir)]));
    if out.status.success() {
        Ok(Mount {
            dir: dir.to_path_buf(),
        })
    } else {
        Err((out.status.code().unwrap_or(-1), all_text(&out)))
    }
}

/// The mode of the mount on `dir`: `rw` or `ro` (ntfs-3g exits 0 also when
/// it silently falls back to read-only).
fn mount_mode(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not mounted:\n{mounts}", dir.display()));
    let options = line.split(' ').nth(3).unwrap();
    options.split(',').next().unwrap().to_string()
}

/// The real mount of `part` is refused as `predicted` (a `mount` or
/// `after-repair` outcome) says: its exit code and key message.
fn assert_mount_refused_as_predicted(part: &Path, mnt: &Path, predicted: &Value) {
    assert_eq!(predicted["result"], "refused", "{predicted:#}");
    let message = predicted["message"].as_str();
    if fuse_usable() {
        match try_mount(part, mnt) {
            Ok(m) => {
                drop(m);
                panic!(
                    "ntfs-3g mounted {} although qfault predicted {predicted}",
                    part.display()
                );
            }
            Err((code, text)) => {
                assert_eq!(
                    Some(i64::from(code)),
                    predicted["exit_code"].as_i64(),
                    "ntfs-3g's exit code is not the predicted one:\n{text}"
                );
                if let Some(m) = message {
                    assert!(text.contains(m), "ntfs-3g did not say {m:?}:\n{text}");
                }
            }
        }
    } else {
        eprintln!("FUSE FALLBACK: ntfsinfo -m {}", part.display());
        let out = run_any(&mut tool("ntfsinfo", ["-m".as_ref(), p(part)]));
        assert!(
            !out.status.success(),
            "ntfsinfo -m opened the damaged volume"
        );
        if let Some(m) = message {
            assert!(all_text(&out).contains(m), "{}", all_text(&out));
        }
    }
}

/// Real `blkid -p` on the partition image reports what `predicted` (the
/// `identify` outcome) says: its exit code and TYPE.
fn assert_blkid_as_predicted(part: &Path, predicted: &Value) {
    let out = run_any(&mut tool(
        "blkid",
        ["-p".as_ref(), "-o".as_ref(), "export".as_ref(), p(part)],
    ));
    assert_eq!(
        out.status.code().map(i64::from),
        predicted["exit_code"].as_i64(),
        "blkid -p {}: {}",
        part.display(),
        all_text(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text.lines().find_map(|l| l.strip_prefix("TYPE="));
    assert_eq!(
        found,
        predicted["result"].as_str(),
        "blkid's TYPE is not the predicted one"
    );
}

/// Mounts `part` for real, read-write (checked: not a silent read-only
/// fallback), and returns its root listing (sorted) and the content of
/// `hello.txt` if there is one.
fn mount_and_list(part: &Path, mnt: &Path) -> (Vec<String>, Option<Vec<u8>>) {
    if fuse_usable() {
        let m = try_mount(part, mnt).unwrap_or_else(|(code, text)| {
            panic!(
                "ntfs-3g mount of {} failed (exit {code}): {text}",
                part.display()
            )
        });
        assert_eq!(
            mount_mode(&m.dir),
            "rw",
            "ntfs-3g fell back to a read-only mount"
        );
        let mut names: Vec<String> = std::fs::read_dir(&m.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let hello = std::fs::read(m.dir.join("hello.txt")).ok();
        drop(m);
        (names, hello)
    } else {
        eprintln!(
            "FUSE FALLBACK: ntfsinfo -m and ntfsls -f instead of mounting {}",
            part.display()
        );
        // ntfsfix leaves the volume marked dirty; ntfs-3g mounts it anyway,
        // the ntfsprogs need -f for that.
        tool_ok("ntfsinfo", ["-f".as_ref(), "-m".as_ref(), p(part)]);
        let mut names: Vec<String> = tool_ok("ntfsls", ["-f".as_ref(), p(part)])
            .lines()
            .map(str::to_string)
            .filter(|n| !n.is_empty() && !n.starts_with('$') && n != ".")
            .collect();
        names.sort();
        let hello = names.iter().any(|n| n == "hello.txt").then(|| {
            run(&mut tool(
                "ntfscat",
                ["-f".as_ref(), p(part), "hello.txt".as_ref()],
            ))
            .stdout
        });
        (names, hello)
    }
}

// ---------------------------------------------------------------------------
// The recipe, run and judged

/// `qfault inject ntfs-boot BASE -o OVERLAY ARGS --json`, which must exit 0.
fn inject_json(base: &Path, overlay: &Path, args: &[&str]) -> Value {
    let mut a: Vec<&OsStr> = vec![
        "inject".as_ref(),
        "ntfs-boot".as_ref(),
        p(base),
        "-o".as_ref(),
        p(overlay),
        "--json".as_ref(),
    ];
    a.extend(args.iter().map(OsStr::new));
    let out = qfault_expect(a, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inject --json is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `qfault verify --json OVERLAY`.
fn verify_json(overlay: &Path) -> Value {
    let out = qfault_expect(["verify".as_ref(), "--json".as_ref(), p(overlay)], 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The report's target for partition `n`.
fn target(report: &Value, n: u32) -> &Value {
    report["output"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["partition"]["number"] == n)
        .unwrap_or_else(|| panic!("no target for partition {n} in {report:#}"))
}

/// `qfault verify --json`, which reads the overlay back through QEMU-format
/// parsing of its own, sees changes only inside the damaged ranges, in
/// exactly the damaged partitions, and calls the overlay `expected`.
fn assert_verify_sees(overlay: &Path, report: &Value, expected: &str) {
    let v = verify_json(overlay);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["verdict"], expected, "{v:#}");
    let targets = report["output"]["targets"].as_array().unwrap();
    let parts = v["partitions"].as_array().unwrap();
    let numbers = |xs: &[Value]| {
        let mut n: Vec<u64> = xs
            .iter()
            .map(|x| x["partition"]["number"].as_u64().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        numbers(parts),
        numbers(targets),
        "verify sees other partitions changed than inject damaged:\n{v:#}"
    );
    let damaged: Vec<(u64, u64)> = targets
        .iter()
        .flat_map(|t| t["changes"].as_array().unwrap())
        .map(|c| {
            let o = c["offset"].as_u64().unwrap();
            (o, o + c["length"].as_u64().unwrap())
        })
        .collect();
    for r in v["changes"].as_array().unwrap() {
        let s = r["offset"].as_u64().unwrap();
        let e = s + r["length"].as_u64().unwrap();
        assert!(
            damaged.iter().any(|&(a, b)| a <= s && e <= b),
            "change {s}..{e} outside the damaged ranges {damaged:?}"
        );
    }
    for vp in parts {
        assert!(vp["filesystem_now"].is_null(), "{vp:#}");
    }
}

/// Partition `n` as `qfault inspect --json` reports it (geometry, role).
fn inspect_part(disk: &Path, n: u64) -> Value {
    let out = qfault_expect(["inspect".as_ref(), "--json".as_ref(), p(disk)], 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["number"] == n)
        .cloned()
        .unwrap_or_else(|| panic!("no partition {n}: {v:#}"))
}

/// The outcome of `role` in a prediction.
fn outcome<'a>(pr: &'a Value, role: &str) -> &'a Value {
    pr["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == role)
        .unwrap_or_else(|| panic!("no {role} outcome in {pr:#}"))
}

/// The prediction note starting with `prefix`, without it.
fn note<'a>(pr: &'a Value, prefix: &str) -> Option<&'a str> {
    pr["notes"]
        .as_array()?
        .iter()
        .find_map(|n| n.as_str()?.strip_prefix(prefix))
}

/// A partition as the tests expect it.
struct Part {
    number: u32,
    start: u64,
    size: u64,
    label: &'static str,
    /// Root entries a mount shows (sorted).
    root: &'static [&'static str],
    /// The content of its `hello.txt`, if it has one.
    hello: Option<&'static [u8]>,
}

/// The whole acceptance check for one damaged partition: qfault's target
/// is as planned and predicts repair; the partition read from the overlay
/// by qemu-img is zeroed where planned and equal to the base elsewhere in
/// the first MiB; the real mount fails with "NTFS signature is missing";
/// real ntfsfix says "The alternate bootsector is usable" and succeeds; the
/// real mount then works and lists exactly the predicted root entries.
fn assert_repairs_for_real(
    work: &Path,
    overlay: &Path,
    base: &Path,
    report: &Value,
    part: &Part,
    zeroed: u64,
) {
    let t = target(report, part.number);
    let pr = &t["prediction"];
    assert_eq!(t["partition"]["offset"], part.start, "{t:#}");
    assert_eq!(t["partition"]["length"], part.size, "{t:#}");
    assert_eq!(t["changes"][0]["offset"], part.start, "{t:#}");
    assert_eq!(t["changes"][0]["length"], zeroed, "{t:#}");
    let identify = outcome(pr, "identify");
    assert_eq!(
        (&identify["result"], &identify["exit_code"]),
        (&Value::Null, &2.into())
    );
    let mount = outcome(pr, "mount");
    assert_eq!(mount["result"], "refused", "{pr:#}");
    assert_eq!(mount["exit_code"], 12, "{pr:#}");
    assert_eq!(mount["message"], SIG_MISSING, "{pr:#}");
    let fix_outcome = outcome(pr, "repair");
    assert_eq!(
        (&fix_outcome["tool"], &fix_outcome["result"]),
        (&"ntfsfix".into(), &"repairs".into())
    );
    assert_eq!(fix_outcome["exit_code"], 0, "{pr:#}");
    assert_eq!(fix_outcome["message"], ALT_USABLE, "{pr:#}");
    assert_eq!(
        outcome(pr, "after-repair")["result"],
        "read-write",
        "{pr:#}"
    );
    assert_eq!(pr["byte_identical_after_repair"], false, "{pr:#}");
    let lba = part.size / SECTOR - 1;
    assert!(
        note(pr, "ntfsfix rewrites sector 0 from LBA ")
            .is_some_and(|n| n.starts_with(&format!("{lba} "))),
        "{pr:#}"
    );
    let after = note(pr, "after the repair: label ").unwrap_or_else(|| panic!("{pr:#}"));
    let (label, root) = after.split_once(", root: ").unwrap();
    assert_eq!(label, format!("\"{}\"", part.label), "{pr:#}");
    let predicted_root: Vec<String> = match root {
        "(empty)" => Vec::new(),
        r => r.split(", ").map(str::to_string).collect(),
    };
    assert_eq!(predicted_root, part.root, "{pr:#}");

    // The partition as QEMU reads it through the overlay, and through the base.
    let img = work.join(format!("p{}.raw", part.number));
    qemu_extract(overlay, part.start, part.size, &img);
    let head_len = MIB.min(part.size) as usize;
    let mut head = vec![0u8; head_len];
    File::open(&img)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    let base_head = work.join(format!("p{}-base-head.raw", part.number));
    qemu_extract(base, part.start, head_len as u64, &base_head);
    let base_head = std::fs::read(&base_head).unwrap();
    let z = zeroed as usize;
    assert!(
        head[..z].iter().all(|&b| b == 0),
        "the first {zeroed} bytes of partition {} do not read as zeros through QEMU",
        part.number
    );
    assert!(
        base_head[..z].iter().any(|&b| b != 0),
        "the base's boot sector is already zero: the test proves nothing"
    );
    assert!(
        head[z..] == base_head[z..],
        "partition {} differs from the base after byte {zeroed}",
        part.number
    );

    assert_blkid_as_predicted(&img, identify);
    let mnt = work.join(format!("mnt{}", part.number));
    assert_mount_refused_as_predicted(&img, &mnt, mount);

    let fix = run_any(&mut tool("ntfsfix", [p(&img)]));
    let fix_text = all_text(&fix);
    assert_eq!(
        fix.status.code().map(i64::from),
        fix_outcome["exit_code"].as_i64(),
        "real ntfsfix on partition {} did not exit as predicted:\n{fix_text}",
        part.number
    );
    assert!(fix_text.contains(ALT_USABLE), "{fix_text}");
    assert!(fix_text.contains("Rewriting the bootsector"), "{fix_text}");
    assert!(fix_text.contains("processed successfully"), "{fix_text}");

    let (names, hello) = mount_and_list(&img, &mnt);
    assert_eq!(
        names, predicted_root,
        "the real mount lists other root entries than qfault predicted"
    );
    assert_eq!(
        hello.as_deref(),
        part.hello,
        "hello.txt read through the real mount"
    );
    // byte_identical_after_repair (false: ntfsfix marks the volume dirty),
    // proven on partitions small enough to compare whole.
    if part.size <= 1 << 30 {
        let base_img = work.join(format!("p{}-base.raw", part.number));
        qemu_extract(base, part.start, part.size, &base_img);
        let identical = std::fs::read(&img).unwrap() == std::fs::read(&base_img).unwrap();
        assert_eq!(
            identical, pr["byte_identical_after_repair"],
            "byte identity after the real repair is not as predicted"
        );
    }
}

/// The recipe refuses partition `n` of `base` (exit 3) with a message
/// containing every string of `reason`, writes nothing; under
/// `--allow-unrepairable` it writes an overlay whose JSON says
/// "unrepairable", that `qfault verify` agrees with, and on which real
/// ntfsfix indeed fails.
fn assert_refused_and_unrepairable(
    work: &Path,
    base: &Path,
    base_format: &str,
    n: u32,
    reason: &[&str],
) -> Value {
    let overlay = work.join(format!("refused-p{n}.qcow2"));
    let nn = n.to_string();
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(base),
            "-o".as_ref(),
            p(&overlay),
            "--partition".as_ref(),
            OsStr::new(&nn),
        ],
        3,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for r in reason {
        assert!(err.contains(r), "refusal lacks {r:?}:\n{err}");
    }
    assert!(err.contains("--allow-unrepairable"), "{err}");
    assert!(
        !overlay.exists(),
        "a refused inject left {}",
        overlay.display()
    );

    let report = inject_json(
        base,
        &overlay,
        &["--partition", &nn, "--allow-unrepairable"],
    );
    assert_overlay_shape(&overlay, base, base_format, &report);
    let t = target(&report, n);
    let pr = &t["prediction"];
    assert_eq!(outcome(pr, "mount")["exit_code"], 12, "{pr:#}");
    let fix = outcome(pr, "repair");
    assert_eq!(fix["result"], "cannot-repair", "{pr:#}");
    assert_eq!(fix["exit_code"], 1, "{pr:#}");
    assert_eq!(outcome(pr, "after-repair")["result"], "refused", "{pr:#}");
    assert_verify_sees(&overlay, &report, "unrepairable");

    let start = t["partition"]["offset"].as_u64().unwrap();
    let size = t["partition"]["length"].as_u64().unwrap();
    let img = work.join(format!("refused-p{n}.raw"));
    qemu_extract(&overlay, start, size, &img);
    assert_blkid_as_predicted(&img, outcome(pr, "identify"));
    let mnt = work.join(format!("mnt-refused{n}"));
    assert_mount_refused_as_predicted(&img, &mnt, outcome(pr, "mount"));
    let fix = run_any(&mut tool("ntfsfix", [p(&img)]));
    let text = all_text(&fix);
    assert_eq!(
        fix.status.code().map(i64::from),
        outcome(pr, "repair")["exit_code"].as_i64(),
        "real ntfsfix on partition {n} did not exit as predicted:\n{text}"
    );
    let said = outcome(pr, "repair")["message"].as_str().unwrap();
    assert!(text.contains(said), "ntfsfix did not say {said:?}:\n{text}");
    assert_mount_refused_as_predicted(&img, &mnt, outcome(pr, "after-repair"));
    // It fails where qfault said: no alternate boot sector is usable.
    assert!(!text.contains(ALT_USABLE), "{text}");
    assert!(
        text.contains("Trying the alternate boot sector")
            && text.contains("Volume is corrupt. You should run chkdsk."),
        "real ntfsfix failed, but not on the boot sector:\n{text}"
    );
    report
}

/// A 128 MiB MBR disk with one NTFS partition (sectors 2048..2048+200704)
/// holding hello.txt; returns (start sector, sectors).
fn small_ntfs_disk(disk: &Path, label: &str) -> (u64, u64) {
    let (start, sectors) = (2048, 200_704);
    sfdisk_disk(
        disk,
        128 * MIB,
        &format!("label: dos\nstart={start}, size={sectors}, type=7\n"),
    );
    put_ntfs(disk, start, sectors * SECTOR, label, &[], true);
    (start, sectors)
}

// ---------------------------------------------------------------------------
// The motivating geometry, full size

/// 40 GiB sparse raw disk, MBR, 500 MiB NTFS "System Reserved" at 1 MiB,
/// NTFS "C" filling the rest; damage partition 2 and check it with the real
/// tools. The base is far too big to hash by reading; see [`SparseGuard`].
#[test]
fn full_size_40g_mbr_partition_2() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls",
        "ntfscat", "umount",
    ]) {
        return;
    }
    let t0 = std::time::Instant::now();
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("win40g.raw");
    let size = 40u64 << 30;
    let p1 = (2048u64, 500 * MIB / SECTOR);
    let p2_start = p1.0 + p1.1;
    let p2 = (p2_start, size / SECTOR - p2_start);
    sfdisk_disk(
        &disk,
        size,
        &format!(
            "label: dos\nstart={}, size={}, type=7, bootable\nstart={}, type=7\n",
            p1.0, p1.1, p2.0
        ),
    );
    assert_eq!(sfdisk_partition(&disk, 2), p2, "sfdisk placed C elsewhere");
    put_ntfs(&disk, p1.0, p1.1 * SECTOR, "System Reserved", &[], false);
    put_ntfs(&disk, p2.0, p2.1 * SECTOR, "C", &[], true);
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), size);
    let guard = SparseGuard::new(&disk);
    eprintln!("40G: disk built in {:?}", t0.elapsed());

    let overlay = w.join("win40g-ntfs-boot.qcow2");
    // Two NTFS partitions: without --partition qfault asks which (exit 2).
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&disk),
            "-o".as_ref(),
            p(&overlay),
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"System Reserved\"") && err.contains("\"C\""),
        "{err}"
    );
    assert!(!overlay.exists());
    let report = inject_json(&disk, &overlay, &["--partition", "2"]);
    eprintln!("40G: injected at {:?}", t0.elapsed());
    assert_eq!(report["output"]["targets"].as_array().unwrap().len(), 1);
    assert_overlay_shape(&overlay, &disk, "raw", &report);
    // A few clusters, not gigabytes.
    let ov_len = std::fs::metadata(&overlay).unwrap().len();
    assert!(ov_len < 4 * MIB, "overlay is {ov_len} bytes");
    assert_verify_sees(&overlay, &report, "repairable");

    let c = Part {
        number: 2,
        start: p2.0 * SECTOR,
        size: p2.1 * SECTOR,
        label: "C",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &disk, &report, &c, SECTOR);
    eprintln!("40G: real tools done at {:?}", t0.elapsed());
    guard.assert_unchanged();
}

// ---------------------------------------------------------------------------
// Other bases and layouts (small disks)

/// The base is a compressed qcow2 (converted from a raw MBR disk).
#[test]
fn compressed_qcow2_base() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls",
        "ntfscat", "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let raw = w.join("disk.raw");
    let (start, sectors) = small_ntfs_disk(&raw, "Data");
    let base = w.join("base.qcow2");
    qemu_img([
        "convert".as_ref(),
        "-c".as_ref(),
        "-f".as_ref(),
        "raw".as_ref(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        p(&raw),
        p(&base),
    ]);
    std::fs::remove_file(&raw).unwrap();
    // Really compressed: far smaller than the NTFS metadata it holds.
    let m = qemu_img(["map".as_ref(), "--output=json".as_ref(), p(&base)]);
    assert!(m.contains("\"compressed\": true"), "not compressed:\n{m}");
    let guard = BaseGuard::new(&[&base]);

    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&base, &overlay, &[]);
    assert_overlay_shape(&overlay, &base, "qcow2", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    let part = Part {
        number: 1,
        start: start * SECTOR,
        size: sectors * SECTOR,
        label: "Data",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &base, &report, &part, SECTOR);
    guard.assert_unchanged();
}

/// The base is the top of a 2-deep chain: bottom.raw holds the disk with
/// its backup boot sector zeroed, top.qcow2 (written by qemu-io) puts the
/// backup back. qfault must read through the chain: it refuses the bottom
/// alone and repairs from the top.
#[test]
fn two_deep_chain_base() {
    if !common::require_tools(&[
        "qemu-img", "qemu-io", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo",
        "ntfsls", "ntfscat", "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let bottom = w.join("bottom.raw");
    let (start, sectors) = small_ntfs_disk(&bottom, "Chain");
    let backup_off = (start + sectors - 1) * SECTOR;
    let mut backup = vec![0u8; SECTOR as usize];
    File::open(&bottom)
        .unwrap()
        .read_exact_at(&mut backup, backup_off)
        .unwrap();
    assert_eq!(
        &backup[3..11],
        b"NTFS    ",
        "mkntfs put no backup at the end"
    );
    let backup_file = w.join("backup.bin");
    std::fs::write(&backup_file, &backup).unwrap();
    write_at(&bottom, backup_off, &[0u8; SECTOR as usize]);

    let top = w.join("top.qcow2");
    qemu_img([
        "create".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        "-b".as_ref(),
        OsStr::new("bottom.raw"),
        "-F".as_ref(),
        "raw".as_ref(),
        p(&top),
    ]);
    common::qemu_io(
        "qcow2",
        &top,
        &[&format!(
            "write -s {} {backup_off} {SECTOR}",
            backup_file.display()
        )],
    );
    let guard = BaseGuard::new(&[&top]);
    let bottom_guard = SparseGuard::new(&bottom);

    // The bottom alone: the backup is gone, so qfault refuses.
    let refused = w.join("from-bottom.qcow2");
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&bottom),
            "-o".as_ref(),
            p(&refused),
        ],
        3,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the sector is all zeros"),
        "{}",
        all_text(&out)
    );
    assert!(!refused.exists());

    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&top, &overlay, &[]);
    assert_overlay_shape(&overlay, &top, "qcow2", &report);
    assert_eq!(
        report["base_chain"].as_array().unwrap().len(),
        2,
        "{:#}",
        report["base_chain"]
    );
    let chain = qemu_img([
        "info".as_ref(),
        "--backing-chain".as_ref(),
        "--output=json".as_ref(),
        p(&overlay),
    ]);
    let chain: Value = serde_json::from_str(&chain).unwrap();
    assert_eq!(chain.as_array().unwrap().len(), 3, "{chain:#}");
    assert_verify_sees(&overlay, &report, "repairable");
    let part = Part {
        number: 1,
        start: start * SECTOR,
        size: sectors * SECTOR,
        label: "Chain",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &top, &report, &part, SECTOR);
    guard.assert_unchanged();
    bottom_guard.assert_unchanged();
}

/// A GPT disk (sgdisk, Microsoft basic data type 0700).
#[test]
fn gpt_disk() {
    if !common::require_tools(&[
        "qemu-img", "sgdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls",
        "ntfscat", "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("gpt.raw");
    sparse_file(&disk, 128 * MIB);
    let (start, sectors) = (36_864u64, 180_224u64);
    tool_ok(
        "sgdisk",
        [
            OsStr::new("-n"),
            OsStr::new("1:2048:+16M"),
            OsStr::new("-t"),
            OsStr::new("1:ef00"),
            OsStr::new("-n"),
            OsStr::new(&format!("2:{start}:{}", start + sectors - 1)),
            OsStr::new("-t"),
            OsStr::new("2:0700"),
            OsStr::new("-c"),
            OsStr::new("2:Basic data partition"),
            p(&disk),
        ],
    );
    put_ntfs(&disk, start, sectors * SECTOR, "GptData", &[], true);
    let guard = SparseGuard::new(&disk);

    // Partition 1 (the ESP) holds nothing; the only NTFS is chosen by default.
    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&disk, &overlay, &[]);
    assert_overlay_shape(&overlay, &disk, "raw", &report);
    assert_eq!(report["output"]["targets"].as_array().unwrap().len(), 1);
    assert_verify_sees(&overlay, &report, "repairable");
    let part = Part {
        number: 2,
        start: start * SECTOR,
        size: sectors * SECTOR,
        label: "GptData",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &disk, &report, &part, SECTOR);
    guard.assert_unchanged();
}

/// A logical partition inside an extended MBR partition (number 5).
#[test]
fn logical_partition_in_extended() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls",
        "ntfscat", "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("ext.raw");
    sfdisk_disk(
        &disk,
        128 * MIB,
        "label: dos\n\
         start=2048, size=32768, type=7\n\
         start=36864, size=221184, type=5\n\
         start=40960, size=120832, type=7\n\
         start=163840, size=90112, type=83\n",
    );
    let (p1s, p1n) = sfdisk_partition(&disk, 1);
    let (start, sectors) = sfdisk_partition(&disk, 5);
    assert_eq!(
        (start, sectors),
        (40960, 120_832),
        "sfdisk moved the logical"
    );
    put_ntfs(&disk, p1s, p1n * SECTOR, "Primary", &[], false);
    put_ntfs(&disk, start, sectors * SECTOR, "Logical", &[], true);
    let guard = SparseGuard::new(&disk);

    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&disk, &overlay, &["--partition", "5"]);
    assert_eq!(report["output"]["targets"].as_array().unwrap().len(), 1);
    assert_eq!(target(&report, 5)["partition"]["number"], 5);
    assert_eq!(inspect_part(&disk, 5)["role"], "logical");
    assert_overlay_shape(&overlay, &disk, "raw", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    let part = Part {
        number: 5,
        start: start * SECTOR,
        size: sectors * SECTOR,
        label: "Logical",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &disk, &report, &part, SECTOR);
    guard.assert_unchanged();
}

/// Large clusters: 64 KiB (sectors per cluster 128) and 2 MiB (encoded as a
/// negative power of two, which ntfs-3g 2022.10.3 accepts although
/// ntfsfix-facts.md says ≤ 64 KiB). `--all` damages both and both repair.
#[test]
fn large_clusters_64k_and_2m() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls",
        "ntfscat", "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("clusters.raw");
    let p1 = (2048u64, 200_704u64);
    let p2 = (p1.0 + p1.1, 286_720u64);
    sfdisk_disk(
        &disk,
        256 * MIB,
        &format!(
            "label: dos\nstart={}, size={}, type=7\nstart={}, size={}, type=7\n",
            p1.0, p1.1, p2.0, p2.1
        ),
    );
    put_ntfs(&disk, p1.0, p1.1 * SECTOR, "C64K", &["-c", "65536"], true);
    put_ntfs(&disk, p2.0, p2.1 * SECTOR, "C2M", &["-c", "2097152"], true);
    let guard = SparseGuard::new(&disk);
    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&disk, &overlay, &["--all"]);
    assert_eq!(report["output"]["targets"].as_array().unwrap().len(), 2);
    assert_overlay_shape(&overlay, &disk, "raw", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    for (n, (start, sectors), label, cluster) in
        [(1, p1, "C64K", 65_536), (2, p2, "C2M", 2_097_152)]
    {
        let t = target(&report, n);
        assert_eq!(t["partition"]["filesystem"], "ntfs", "{t:#}");
        let geo = inspect_part(&disk, n as u64);
        assert_eq!(geo["ntfs"]["cluster_size"], cluster, "{geo:#}");
        let part = Part {
            number: n,
            start: start * SECTOR,
            size: sectors * SECTOR,
            label,
            root: &["hello.txt"],
            hello: Some(HELLO),
        };
        assert_repairs_for_real(w, &overlay, &disk, &report, &part, SECTOR);
    }
    guard.assert_unchanged();
}

/// `--all` on a disk with one repairable NTFS and one grown after
/// formatting: the first is damaged (and repairs for real), the second is
/// skipped with the reason and reads exactly as in the base.
#[test]
fn all_skips_the_unrepairable_partition() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls",
        "ntfscat", "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("mixed.raw");
    let p1 = (2048u64, 98_304u64);
    let p2 = (p1.0 + p1.1, 131_072u64);
    sfdisk_disk(
        &disk,
        128 * MIB,
        &format!(
            "label: dos\nstart={}, size={}, type=7\nstart={}, size={}, type=7\n",
            p1.0, p1.1, p2.0, p2.1
        ),
    );
    put_ntfs(&disk, p1.0, p1.1 * SECTOR, "Good", &[], true);
    put_ntfs(&disk, p2.0, 32 * MIB, "Grown", &[], true);
    let guard = SparseGuard::new(&disk);
    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&disk, &overlay, &["--all"]);
    assert_eq!(report["output"]["targets"].as_array().unwrap().len(), 1);
    let skipped = &report["output"]["skipped"];
    assert_eq!(skipped.as_array().unwrap().len(), 1, "{skipped:#}");
    assert_eq!(skipped[0]["partition"]["number"], 2);
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no usable backup boot sector at the partition's last sector"),
        "{skipped:#}"
    );
    assert_overlay_shape(&overlay, &disk, "raw", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    let part = Part {
        number: 1,
        start: p1.0 * SECTOR,
        size: p1.1 * SECTOR,
        label: "Good",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &disk, &report, &part, SECTOR);
    // The skipped partition, read through the overlay, still mounts as is.
    let img = w.join("skipped.raw");
    qemu_extract(&overlay, p2.0 * SECTOR, p2.1 * SECTOR, &img);
    let (names, hello) = mount_and_list(&img, &w.join("mnt-skipped"));
    assert_eq!(names, ["hello.txt"]);
    assert_eq!(hello.as_deref(), Some(HELLO));
    guard.assert_unchanged();
}

/// No partition table: NTFS on the whole disk, chosen as partition 0.
#[test]
fn whole_disk_ntfs_is_partition_0() {
    if !common::require_tools(&[
        "qemu-img", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls", "ntfscat",
        "umount",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("superfloppy.raw");
    sparse_file(&disk, 64 * MIB);
    put_ntfs(&disk, 0, 64 * MIB, "Whole", &[], true);
    let guard = SparseGuard::new(&disk);
    let overlay = w.join("overlay.qcow2");
    let report = inject_json(&disk, &overlay, &["--partition", "0"]);
    assert_overlay_shape(&overlay, &disk, "raw", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    let part = Part {
        number: 0,
        start: 0,
        size: 64 * MIB,
        label: "Whole",
        root: &["hello.txt"],
        hello: Some(HELLO),
    };
    assert_repairs_for_real(w, &overlay, &disk, &report, &part, SECTOR);
    guard.assert_unchanged();
}

// ---------------------------------------------------------------------------
// Negative cases: predicted by qfault, confirmed by real ntfsfix

/// A 128 MiB MBR disk whose partition 1 spans 200,704 sectors but holds an
/// NTFS made on 131,072 (64 MiB): a partition grown after formatting, so the
/// backup boot sector sits at the old end, not at the partition's last sector.
fn grown_disk(w: &Path) -> PathBuf {
    let disk = w.join("grown.raw");
    sfdisk_disk(
        &disk,
        128 * MIB,
        "label: dos\nstart=2048, size=200704, type=7\n",
    );
    put_ntfs(&disk, 2048, 64 * MIB, "Grown", &[], true);
    disk
}

/// Grown partition: qfault refuses, predicts ntfsfix fails at LBA 200,703
/// (all zeros there), and real ntfsfix does fail on the overlay.
#[test]
fn refuses_partition_grown_after_formatting() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = grown_disk(w);
    let guard = SparseGuard::new(&disk);
    let report = assert_refused_and_unrepairable(
        w,
        &disk,
        "raw",
        1,
        &[
            "no usable backup boot sector at the partition's last sector (LBA 200703)",
            "the sector is all zeros",
        ],
    );
    let t = target(&report, 1);
    assert_eq!(
        outcome(&t["prediction"], "repair")["result"],
        "cannot-repair"
    );
    // The undamaged volume is shorter than its partition, and qfault saw it.
    let part = inspect_part(&disk, 1);
    let geo = &part["ntfs"];
    assert_eq!(geo["number_of_sectors"], 64 * MIB / SECTOR - 1, "{geo:#}");
    assert_eq!(geo["backup_boot_sector_ok"], false, "{geo:#}");
    guard.assert_unchanged();
}

/// The refusal for a grown partition should name the cause.
/// `fs::ntfs::explain` appends "the partition was grown after formatting"
/// when it knows the volume's size, but it looks for that size in the
/// *damaged* sector 0 (and the damaged view's LBA 0), which the recipe has
/// just zeroed, so the hint never appears in `inject ntfs-boot`'s refusal.
/// Fails until the hint is taken from the undamaged boot sector.
#[test]
fn grown_partition_refusal_names_the_cause() {
    if !common::require_tools(&["sfdisk", "mkntfs", "ntfscp"]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = grown_disk(w);
    let guard = SparseGuard::new(&disk);
    let overlay = w.join("o.qcow2");
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&disk),
            "-o".as_ref(),
            p(&overlay),
        ],
        3,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the partition was grown after formatting"),
        "the refusal does not say the partition was grown after formatting:\n{err}"
    );
    guard.assert_unchanged();
}

/// Backup boot sector zeroed (partition 1) or corrupted (partition 2: OEM
/// id overwritten): refused one by one, and `--all` refuses the disk.
#[test]
fn refuses_damaged_backup_boot_sector() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfscp", "ntfsfix", "ntfs-3g", "ntfsinfo",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("backup.raw");
    let p1 = (2048u64, 98_304u64);
    let p2 = (p1.0 + p1.1, 98_304u64);
    sfdisk_disk(
        &disk,
        128 * MIB,
        &format!(
            "label: dos\nstart={}, size={}, type=7\nstart={}, size={}, type=7\n",
            p1.0, p1.1, p2.0, p2.1
        ),
    );
    put_ntfs(&disk, p1.0, p1.1 * SECTOR, "ZeroBackup", &[], true);
    put_ntfs(&disk, p2.0, p2.1 * SECTOR, "BadBackup", &[], true);
    write_at(&disk, (p1.0 + p1.1 - 1) * SECTOR, &[0u8; SECTOR as usize]);
    write_at(&disk, (p2.0 + p2.1 - 1) * SECTOR + 3, b"XXXXXXXX");
    let guard = SparseGuard::new(&disk);

    assert_refused_and_unrepairable(
        w,
        &disk,
        "raw",
        1,
        &[
            "no usable backup boot sector at the partition's last sector",
            "the sector is all zeros",
        ],
    );
    assert_refused_and_unrepairable(
        w,
        &disk,
        "raw",
        2,
        &[
            "no usable backup boot sector at the partition's last sector",
            "OEM id is not NTFS",
        ],
    );

    let all = w.join("all.qcow2");
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&disk),
            "-o".as_ref(),
            p(&all),
            "--all".as_ref(),
        ],
        3,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no NTFS partition can be damaged repairably")
            && err.contains("ZeroBackup")
            && err.contains("BadBackup"),
        "{err}"
    );
    assert!(!all.exists());
    guard.assert_unchanged();
}

/// NTFS with 4096-byte sectors in a partition of a 512-byte-sector disk:
/// ntfsfix on a file uses 512-byte sectors and cannot take the 4 KiB backup.
#[test]
fn refuses_ntfs_with_4096_byte_sectors() {
    if !common::require_tools(&[
        "qemu-img", "sfdisk", "mkntfs", "ntfsfix", "ntfs-3g", "ntfsinfo",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("4k.raw");
    let (start, sectors) = (2048u64, 200_704u64);
    sfdisk_disk(
        &disk,
        128 * MIB,
        &format!("label: dos\nstart={start}, size={sectors}, type=7\n"),
    );
    put_ntfs(
        &disk,
        start,
        sectors * SECTOR,
        "FourK",
        &["-s", "4096"],
        false,
    );
    let guard = SparseGuard::new(&disk);
    let report = assert_refused_and_unrepairable(
        w,
        &disk,
        "raw",
        1,
        &["no usable backup boot sector at the partition's last sector"],
    );
    let t = target(&report, 1);
    let geo = inspect_part(&disk, 1);
    assert_eq!(geo["ntfs"]["bytes_per_sector"], 4096, "{geo:#}");
    // --sectors counts the volume's sectors: one 4096-byte sector zeroed.
    assert_eq!(t["changes"][0]["length"], 4096, "{t:#}");
    guard.assert_unchanged();
}

/// A vfat partition: refused (exit 3) as not NTFS, even with
/// --allow-unrepairable, and nothing is written.
#[test]
fn refuses_partition_that_is_not_ntfs() {
    if !common::require_tools(&["sfdisk", "mkfs.vfat", "mkntfs"]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("vfat.raw");
    sfdisk_disk(
        &disk,
        128 * MIB,
        "label: dos\nstart=2048, size=98304, type=c\nstart=100352, size=98304, type=7\n",
    );
    let fat = w.join("fat.img");
    sparse_file(&fat, 98_304 * SECTOR);
    run(&mut tool(
        "mkfs.vfat",
        ["-n".as_ref(), "EFI".as_ref(), p(&fat)],
    ));
    copy_extents(&fat, 0, 98_304 * SECTOR, &disk, 2048 * SECTOR);
    put_ntfs(&disk, 100_352, 98_304 * SECTOR, "Other", &[], false);
    let guard = SparseGuard::new(&disk);

    let overlay = w.join("overlay.qcow2");
    for extra in [&[][..], &["--allow-unrepairable"][..]] {
        let mut args: Vec<&OsStr> = vec![
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&disk),
            "-o".as_ref(),
            p(&overlay),
            "--partition".as_ref(),
            "1".as_ref(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        let out = qfault_expect(args, 3);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("partition 1")
                && err.contains("vfat")
                && err.contains("does not hold ntfs"),
            "{extra:?}: {err}"
        );
        assert!(!overlay.exists(), "{extra:?} wrote an overlay");
    }
    guard.assert_unchanged();
}

// ---------------------------------------------------------------------------
// The shipped sample

/// Partition 1 ("System Reserved") and 2 ("C") of testdata/sample.qcow2.
const SAMPLE_P1: Part = Part {
    number: 1,
    start: 2048 * SECTOR,
    size: 32_768 * SECTOR,
    label: "System Reserved",
    root: &[],
    hello: None,
};
const SAMPLE_P2: Part = Part {
    number: 2,
    start: 34_816 * SECTOR,
    size: 96_256 * SECTOR,
    label: "C",
    root: &["hello.txt", "readme.txt"],
    hello: Some(b"Hello from the qfault sample disk.\n"),
};

/// `--all` damages both partitions, and both repair with real ntfsfix.
#[test]
fn sample_all_damages_and_repairs_both() {
    if !common::require_tools(&[
        "qemu-img", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls", "ntfscat", "umount",
    ]) {
        return;
    }
    let sample = common::sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let w = dir.path();
    let overlay = w.join("all.qcow2");
    let report = inject_json(&sample, &overlay, &["--all"]);
    assert_eq!(report["output"]["targets"].as_array().unwrap().len(), 2);
    assert!(report["output"]["skipped"].as_array().unwrap().is_empty());
    assert_overlay_shape(&overlay, &sample, "qcow2", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    for part in [&SAMPLE_P1, &SAMPLE_P2] {
        assert_repairs_for_real(w, &overlay, &sample, &report, part, SECTOR);
    }
    guard.assert_unchanged();
}

/// Without --partition the sample's two NTFS partitions are ambiguous:
/// exit 2, both listed, nothing written.
#[test]
fn sample_without_partition_is_usage_error_listing_both() {
    if !common::require_tools(&[]) {
        return;
    }
    let sample = common::sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let overlay = dir.path().join("o.qcow2");
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&sample),
            "-o".as_ref(),
            p(&overlay),
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--partition"), "{err}");
    assert!(
        err.contains("partition 1 (") && err.contains("\"System Reserved\""),
        "{err}"
    );
    assert!(
        err.contains("partition 2 (") && err.contains("\"C\""),
        "{err}"
    );
    assert!(!overlay.exists());

    // A partition that does not exist: also a usage error, listing the disk.
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&sample),
            "-o".as_ref(),
            p(&overlay),
            "--partition".as_ref(),
            "7".as_ref(),
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("there is no partition 7") && err.contains("\"System Reserved\""),
        "{err}"
    );
    assert!(!overlay.exists());
    guard.assert_unchanged();
}

/// `--sectors 8` zeroes 4096 bytes (as in the original story) and real
/// ntfsfix still repairs it.
#[test]
fn sample_sectors_8_zeroes_4096_bytes_and_repairs() {
    if !common::require_tools(&[
        "qemu-img", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls", "ntfscat", "umount",
    ]) {
        return;
    }
    let sample = common::sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let w = dir.path();
    let overlay = w.join("s8.qcow2");
    let report = inject_json(&sample, &overlay, &["--partition", "2", "--sectors", "8"]);
    assert_overlay_shape(&overlay, &sample, "qcow2", &report);
    assert_verify_sees(&overlay, &report, "repairable");
    assert_repairs_for_real(w, &overlay, &sample, &report, &SAMPLE_P2, 4096);
    guard.assert_unchanged();
}

/// The boundary of `--sectors` on the sample's "C" (4 KiB clusters, `$MFT`
/// at cluster 4 = partition byte 16,384): 32 sectors stop just short of
/// `$MFT` and real ntfsfix repairs; 33 sectors zero the start of MFT record
/// 0, so qfault refuses ("the repaired volume does not open"). Under
/// --allow-unrepairable its JSON says ntfsfix will still rewrite the boot
/// sector but the result does not open, and real ntfsfix does exactly that:
/// "The alternate bootsector is usable", then fails on `$MFT`.
#[test]
fn sample_sectors_boundary_at_mft() {
    if !common::require_tools(&[
        "qemu-img", "ntfsfix", "ntfs-3g", "ntfsinfo", "ntfsls", "ntfscat", "umount",
    ]) {
        return;
    }
    let sample = common::sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let w = dir.path();

    let ok = w.join("s32.qcow2");
    let report = inject_json(&sample, &ok, &["--partition", "2", "--sectors", "32"]);
    assert_verify_sees(&ok, &report, "repairable");
    assert_repairs_for_real(w, &ok, &sample, &report, &SAMPLE_P2, 16_384);

    let bad = w.join("s33.qcow2");
    let out = qfault_expect(
        [
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            p(&sample),
            "-o".as_ref(),
            p(&bad),
            "--partition".as_ref(),
            "2".as_ref(),
            "--sectors".as_ref(),
            "33".as_ref(),
        ],
        3,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "ntfsfix would rewrite the boot sector, but the repaired volume does not open"
        ),
        "{err}"
    );
    assert!(!bad.exists());
    let report = inject_json(
        &sample,
        &bad,
        &[
            "--partition",
            "2",
            "--sectors",
            "33",
            "--allow-unrepairable",
        ],
    );
    assert_overlay_shape(&bad, &sample, "qcow2", &report);
    assert_verify_sees(&bad, &report, "unrepairable");
    let pr = &target(&report, 2)["prediction"];
    // ntfsfix rewrites sector 0, then fails on $MFT: exit 1.
    assert_eq!(outcome(pr, "repair")["result"], "cannot-repair", "{pr:#}");
    assert_eq!(outcome(pr, "repair")["exit_code"], 1, "{pr:#}");
    assert_eq!(outcome(pr, "after-repair")["result"], "refused", "{pr:#}");
    assert_eq!(outcome(pr, "after-repair")["exit_code"], 13, "{pr:#}");
    assert!(
        note(pr, "the repaired volume does not open: ").is_some(),
        "{pr:#}"
    );

    let img = w.join("s33.raw");
    qemu_extract(&bad, SAMPLE_P2.start, SAMPLE_P2.size, &img);
    assert_blkid_as_predicted(&img, outcome(pr, "identify"));
    let mnt = w.join("mnt33");
    assert_mount_refused_as_predicted(&img, &mnt, outcome(pr, "mount"));
    let fix = run_any(&mut tool("ntfsfix", [p(&img)]));
    let text = all_text(&fix);
    assert_eq!(
        fix.status.code().map(i64::from),
        outcome(pr, "repair")["exit_code"].as_i64(),
        "real ntfsfix did not exit as predicted:\n{text}"
    );
    assert!(
        text.contains(ALT_USABLE) && text.contains("Failed to load $MFT"),
        "real ntfsfix did not fail the predicted way:\n{text}"
    );
    assert_mount_refused_as_predicted(&img, &mnt, outcome(pr, "after-repair"));
    guard.assert_unchanged();
}

/// `make demo`'s script runs the recipe on the shipped sample and prints the
/// report; testdata stays as it was.
#[test]
fn demo_script_prints_the_report() {
    if !common::require_tools(&["git", "bash"]) {
        return;
    }
    let root = common::repo_root();
    let status = || {
        sh(
            "git",
            [
                "-C".as_ref(),
                root.as_os_str(),
                "status".as_ref(),
                "--porcelain".as_ref(),
                "testdata".as_ref(),
            ],
        )
    };
    let before = status();
    let guard = BaseGuard::new(&[common::sample_image()]);
    let mut c = cmd("bash", [root.join("scripts/demo.sh")]);
    c.env("QFAULT", qfault_bin());
    let out = run(&mut c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("inject ntfs-boot"), "{text}");
    assert!(
        text.contains("damaged partition 2") && text.contains("ntfs \"C\""),
        "the demo does not print the damaged partition:\n{text}"
    );
    assert!(
        text.contains("repair:") && text.contains(ALT_USABLE),
        "the demo does not print the ntfsfix prediction:\n{text}"
    );
    assert!(
        text.contains("mount:")
            && text.contains("refused (exit 12): \"NTFS signature is missing\""),
        "{text}"
    );
    assert!(!text.contains("pipeline incomplete"), "{text}");
    assert!(text.contains("verdict: repairable"), "{text}");
    // It ends by repairing a copy of the partition with the real ntfsfix
    // and setting its exit code beside the prediction.
    if common::require_tools(&["qemu-img", "ntfsfix", "python3"]) {
        assert!(
            text.contains("demo: ntfsfix predicted by qfault: exit 0 (repairs)")
                && text.contains("demo: ntfsfix real:                exit 0")
                && text.contains("demo: the prediction held"),
            "{text}"
        );
        assert!(
            text.contains("The alternate bootsector is usable"),
            "{text}"
        );
    }
    assert_eq!(status(), before, "the demo changed testdata");
    guard.assert_unchanged();
    // The overlay the demo wrote is real qcow2 that QEMU opens.
    let demo_overlay = root.join("target/demo/sample-ntfs-boot.qcow2");
    assert_qemu_img_check_clean(&demo_overlay);
}

// ---------------------------------------------------------------------------
// The helpers the 40 GiB case relies on must be able to fail.

/// copy_extents copies data extents (and only their range) to the right
/// offsets; SparseGuard notices a write into a hole, a write of equal
/// length into data, and a change of size.
#[test]
fn sparse_helpers_copy_and_guard_for_real() {
    if !common::require_tools(&[]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let src = w.join("src.raw");
    sparse_file(&src, 64 * MIB);
    let a = common::pattern(5000, 1);
    let b = common::pattern(70_000, 2);
    write_at(&src, 3 * MIB + 17, &a);
    write_at(&src, 40 * MIB, &b);
    let f = File::open(&src).unwrap();
    let ext = data_extents(&f);
    assert!(
        !ext.is_empty() && ext.iter().map(|(s, e)| e - s).sum::<u64>() < 4 * MIB,
        "the filesystem does not report holes: {ext:?}"
    );

    // Copy [2 MiB, 2 MiB + 48 MiB) of src to dst at 10 MiB.
    let dst = w.join("dst.raw");
    sparse_file(&dst, 64 * MIB);
    copy_extents(&src, 2 * MIB, 48 * MIB, &dst, 10 * MIB);
    let want = {
        let mut v = vec![0u8; 64 * MIB as usize];
        let s = std::fs::read(&src).unwrap();
        v[10 * MIB as usize..58 * MIB as usize]
            .copy_from_slice(&s[2 * MIB as usize..50 * MIB as usize]);
        v
    };
    assert!(
        std::fs::read(&dst).unwrap() == want,
        "copy_extents misplaced data"
    );

    // Each change on a fresh file with a fresh guard, its mtime put back,
    // so that only the content (or size) can give it away.
    type Change = Box<dyn Fn(&Path)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "zeros written into a hole",
            Box::new(|f| write_at(f, 20 * MIB, &[0u8; 4096])),
        ),
        (
            "data rewritten in place, same length",
            Box::new(|f| write_at(f, 40 * MIB, &common::pattern(70_000, 3))),
        ),
        (
            "size changed",
            Box::new(|f| {
                let h = OpenOptions::new().write(true).open(f).unwrap();
                h.set_len(65 * MIB).unwrap();
            }),
        ),
    ];
    for (what, change) in changes {
        let victim = w.join("victim.raw");
        let _ = std::fs::remove_file(&victim);
        sparse_file(&victim, 64 * MIB);
        write_at(&victim, 3 * MIB + 17, &a);
        write_at(&victim, 40 * MIB, &b);
        let guard = SparseGuard::new(&victim);
        guard.assert_unchanged();
        change(&victim);
        OpenOptions::new()
            .write(true)
            .open(&victim)
            .unwrap()
            .set_modified(guard.mtime)
            .unwrap();
        let missed = std::panic::catch_unwind(|| guard.assert_unchanged()).is_ok();
        assert!(!missed, "SparseGuard missed: {what}");
    }
}

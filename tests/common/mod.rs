//! Shared helpers for integration tests: scratch directories, real tools with
//! their output in the failure message, file hashing, and the "base is
//! unchanged" guard.
//!
//! Real-tool policy: [`require_tool`] returns `false` (and says so loudly on
//! stderr) when a tool is missing on a developer machine, but panics when the
//! `CI` environment variable is set, so CI never skips a real-tool test.
#![allow(dead_code)]

pub mod fat;
pub mod formats;
pub mod ptable;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh temporary directory, removed when dropped.
pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("qfault-test-")
        .tempdir()
        .expect("create temporary directory")
}

/// Path of the `qfault` binary under test.
pub fn qfault_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qfault"))
}

/// The repository root (for `testdata/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped sample image.
pub fn sample_image() -> PathBuf {
    repo_root().join("testdata/sample.qcow2")
}

/// Is `name` an executable on PATH (or in /sbin, /usr/sbin)?
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True when running under CI (the `CI` environment variable is set and not empty).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Checks that every tool is available. Missing under CI: panic. Missing
/// elsewhere: print a loud SKIP line and return `false` (the caller returns).
pub fn require_tools(names: &[&str]) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| tool_path(n).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if in_ci() {
        panic!("CI is set and required tools are missing: {missing:?} (run `make deps`)");
    }
    eprintln!("SKIP: tools missing: {missing:?}; run `make deps` (under CI this fails)");
    false
}

/// Shorthand for [`require_tools`] with one tool.
pub fn require_tool(name: &str) -> bool {
    require_tools(&[name])
}

/// Formats a finished command for a failure message.
fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, returning its output whatever the exit status.
pub fn run_any(cmd: &mut Command) -> Output {
    let name = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// Runs `cmd` and panics (with its stdout and stderr) unless it exits 0.
pub fn run(cmd: &mut Command) -> Output {
    let out = run_any(cmd);
    if !out.status.success() {
        panic!("command failed\n{}", describe(cmd, &out));
    }
    out
}

/// Runs `cmd` and panics (with its output) unless it exits with `code`.
pub fn run_expect(cmd: &mut Command, code: i32) -> Output {
    let out = run_any(cmd);
    if out.status.code() != Some(code) {
        panic!("expected exit code {code}\n{}", describe(cmd, &out));
    }
    out
}

/// Builds a `Command` from a program and arguments.
pub fn cmd<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs a program with arguments; panics unless it exits 0; returns stdout as text.
pub fn sh<I, S>(program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    String::from_utf8_lossy(&run(&mut cmd(program, args)).stdout).into_owned()
}

/// Runs `qfault` with arguments, returning its output whatever the exit status.
pub fn qfault<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_any(&mut cmd(qfault_bin(), args))
}

/// Runs `qfault`, panics unless it exits 0, returns stdout as text.
pub fn qfault_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    String::from_utf8_lossy(&run(&mut cmd(qfault_bin(), args)).stdout).into_owned()
}

/// Runs `qfault`, panics unless it exits with `code`, returns the output.
pub fn qfault_expect<I, S>(args: I, code: i32) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_expect(&mut cmd(qfault_bin(), args), code)
}

/// Runs `qemu-img` with arguments; panics unless it exits 0; returns stdout.
pub fn qemu_img<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    sh("qemu-img", args)
}

/// Runs `qemu-io -f FMT IMAGE -c CMD` for each command; panics unless it succeeds.
pub fn qemu_io(format: &str, image: &Path, commands: &[&str]) {
    let mut c = Command::new("qemu-io");
    c.arg("-f").arg(format);
    for k in commands {
        c.arg("-c").arg(k);
    }
    c.arg(image);
    let out = run(&mut c);
    // qemu-io reports some failures on stdout with exit status 0.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("failed") && !text.contains("error"),
        "qemu-io reported a failure for {commands:?} on {}:\n{text}",
        image.display()
    );
}

/// `qemu-img check` must report no errors and no leaks.
pub fn assert_qemu_img_check_clean(image: &Path) {
    let out = run_any(&mut cmd(
        "qemu-img",
        [OsStr::new("check"), image.as_os_str()],
    ));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("No errors were found"),
        "qemu-img check {} is not clean (status {}):\n{text}",
        image.display(),
        out.status
    );
}

/// The guest content of `image` as QEMU sees it (`qemu-img convert -O raw`).
pub fn qemu_raw_bytes(image: &Path) -> Vec<u8> {
    let dir = tmpdir();
    let out = dir.path().join("flat.raw");
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-O"),
        OsStr::new("raw"),
        image.as_os_str(),
        out.as_os_str(),
    ]);
    std::fs::read(&out).expect("read converted raw")
}

/// SHA-256 of a file's content, as lowercase hex.
pub fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {} for hashing: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read for hashing");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

/// SHA-256 of a byte slice, as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Remembers the hashes (and modification times) of a base image and its
/// backing files, so a test can assert at the end that none was written.
pub struct BaseGuard {
    files: Vec<(PathBuf, String, std::fs::Metadata)>,
}

impl BaseGuard {
    /// Hashes every file given (typically the base and its backing chain).
    pub fn new<P: AsRef<Path>>(paths: &[P]) -> Self {
        let files = paths
            .iter()
            .map(|p| {
                let p = p.as_ref().to_path_buf();
                let meta = std::fs::metadata(&p).expect("stat base");
                (p.clone(), sha256_file(&p), meta)
            })
            .collect();
        BaseGuard { files }
    }

    /// Panics unless every file still has its hash, size and mtime.
    pub fn assert_unchanged(&self) {
        for (p, hash, meta) in &self.files {
            let now = std::fs::metadata(p).expect("stat base");
            assert_eq!(now.len(), meta.len(), "{} changed size", p.display());
            assert_eq!(
                now.modified().ok(),
                meta.modified().ok(),
                "{} was modified",
                p.display()
            );
            assert_eq!(&sha256_file(p), hash, "{} changed content", p.display());
        }
    }
}

/// Creates a sparse file of `size` bytes.
pub fn sparse_file(path: &Path, size: u64) {
    let f = std::fs::File::create(path).expect("create sparse file");
    f.set_len(size).expect("set_len");
}

/// Writes `data` at `offset` in an existing file without truncating it.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for write_at");
    f.write_all_at(data, offset).expect("write_at");
}

/// Deterministic pseudo-random bytes (xorshift), for test payloads.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `blkid -p -o export FILE` as a map (empty when blkid finds nothing).
pub fn blkid(file: &Path) -> HashMap<String, String> {
    let out = run_any(&mut cmd(
        "blkid",
        [
            "-p".as_ref(),
            "-o".as_ref(),
            "export".as_ref(),
            file.as_os_str(),
        ],
    ));
    assert!(
        matches!(out.status.code(), Some(0) | Some(2)),
        "blkid -p {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), blkid_unescape(v)))
        .collect()
}

/// Undoes blkid's export escaping (a backslash before special characters).
pub fn blkid_unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `len` pseudo-random bytes (seed `seed`) at `off` into an image
/// through `qemu-io -c "write -s FILE off len"`.
pub fn qemu_io_write_pattern(format: &str, img: &Path, off: u64, len: u64, seed: u64) {
    let src = img.with_extension(format!("payload-{off}-{len}"));
    std::fs::write(&src, pattern(len as usize, seed)).unwrap();
    qemu_io(
        format,
        img,
        &[&format!("write -s {} {off} {len}", src.display())],
    );
    std::fs::remove_file(&src).unwrap();
}

/// `qemu-img convert -f raw -O qcow2 [extra...] SRC DST`.
pub fn qemu_img_to_qcow2(src: &Path, dst: &Path, extra: &[&str]) {
    let mut args: Vec<&OsStr> = ["convert", "-f", "raw", "-O", "qcow2"]
        .into_iter()
        .map(OsStr::new)
        .collect();
    args.extend(extra.iter().map(OsStr::new));
    args.push(src.as_os_str());
    args.push(dst.as_os_str());
    qemu_img(args);
}

/// `qemu-img create -q -f qcow2 [extra...] -b BACKING -F BACKING_FMT IMG SIZE`:
/// a qcow2 overlay, as test fixtures need them.
pub fn qemu_img_create_overlay(
    img: &Path,
    backing: impl AsRef<OsStr>,
    backing_fmt: &str,
    extra: &[&str],
    size: &str,
) {
    let mut args: Vec<&OsStr> = ["create", "-q", "-f", "qcow2"].map(OsStr::new).to_vec();
    args.extend(extra.iter().map(OsStr::new));
    args.extend([
        OsStr::new("-b"),
        backing.as_ref(),
        OsStr::new("-F"),
        OsStr::new(backing_fmt),
    ]);
    args.extend([img.as_os_str(), OsStr::new(size)]);
    qemu_img(args);
}

/// A `--json` document of qfault's (docs/json.md): `"schema": 1` first,
/// then exactly `keys` in this order.
pub fn json_document(json: &str, keys: &[&str]) -> Value {
    let doc: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let got: Vec<&str> = doc
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, keys, "top-level keys");
    assert_eq!(doc["schema"], 1);
    doc
}

/// One Output of the report: the keys of the schema (none of the old flat
/// ones), and an overlay section that agrees with `qemu-img info` and the
/// file system.
pub fn assert_output_matches_qemu(o: &Value) {
    let obj = o.as_object().expect("an Output object");
    for gone in [
        "seconds",
        "prediction",
        "backing_file",
        "file_size",
        "allocated_size",
    ] {
        assert!(!obj.contains_key(gone), "old key '{gone}' in {o}");
    }
    assert!(o["recipe"]["name"].is_string(), "{o}");
    assert!(o["recipe"]["params"].is_object(), "{o}");
    assert!(o["targets"].is_array(), "{o}");
    let path = Path::new(o["path"].as_str().unwrap());
    let ov = &o["overlay"];
    assert_eq!(ov["path"], o["path"]);
    let info: Value = serde_json::from_str(&qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        path.as_os_str(),
    ]))
    .unwrap();
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(ov["virtual_size"], info["virtual-size"], "{info}");
    assert_eq!(ov["cluster_size"], info["cluster-size"], "{info}");
    assert_eq!(ov["backing_file"], info["backing-filename"], "{info}");
    assert_eq!(
        ov["backing_format"], info["backing-filename-format"],
        "{info}"
    );
    assert_eq!(
        ov["file_size"].as_u64().unwrap(),
        std::fs::metadata(path).unwrap().len()
    );
    for k in ["allocated_size", "data_clusters", "zero_clusters"] {
        assert!(ov[k].is_u64(), "{k}: {ov}");
    }
    for t in o["targets"].as_array().unwrap() {
        assert!(t["changes"].is_array(), "{t}");
        assert!(t["prediction"]["outcomes"].is_array(), "{t}");
        assert!(t["prediction"]["byte_identical_after_repair"].is_boolean());
    }
}

/// Runs qfault with files capped at `limit` bytes (`RLIMIT_FSIZE`, SIGXFSZ
/// ignored): writing past it fails with EFBIG, a real I/O error in the
/// middle of writing.
pub fn qfault_with_file_limit<I, S>(args: I, limit: u64) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use std::os::unix::process::CommandExt;
    let mut c = cmd(qfault_bin(), args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_any(&mut c)
}
pub mod linux;

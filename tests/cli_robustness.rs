//! The command line as a user of Unix tools meets it (issue 18): no input
//! makes qfault panic (non-UTF-8 paths in every JSON document, a closed
//! stdout), signals and the file size limit leave no temporary file, every
//! failure is one line naming the user's path, `--help` says what the JSON
//! is and how qfault exits, chains as deep as qfault builds open by
//! default, sizes read as qemu-img reads them, `info` shows a chain that
//! stops at a missing backing file, and MBR PARTUUIDs are blkid's.

mod common;

use common::ptable::{sfdisk_logical_qcow2, sgdisk_gpt_qcow2};
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `dir/NAME` where NAME holds the byte 0xff (not UTF-8).
fn non_utf8(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let mut name = stem.as_bytes().to_vec();
    name.push(0xff);
    name.extend_from_slice(ext.as_bytes());
    dir.join(OsString::from_vec(name))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `obj[key]` is the lossy text of `path` and `obj[key_hex]` its exact bytes.
fn assert_path_field(obj: &Value, key: &str, path: &Path) {
    let bytes = path.as_os_str().as_bytes();
    assert_eq!(
        obj[key].as_str(),
        Some(path.to_string_lossy().as_ref()),
        "{key} in {obj}"
    );
    assert_eq!(
        obj[format!("{key}_hex")].as_str(),
        Some(hex(bytes).as_str()),
        "{key}_hex in {obj}"
    );
}

/// A successful qfault run's stdout as JSON (exit 0, no panic).
fn json_ok(args: &[&OsStr]) -> Value {
    let out = qfault_expect(args, 0);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// stderr is exactly one line `qfault: error: …`; returns it.
fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("qfault: error: "), "{err:?}");
    assert!(
        !err.contains("panicked") && !err.contains(".qfault-tmp."),
        "{err}"
    );
    err
}

fn temporaries(dir: &Path) -> Vec<OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_bytes().windows(12).any(|w| w == b".qfault-tmp."))
        .collect()
}

#[test]
fn non_utf8_paths_in_every_json_output_are_carried_as_path_hex() {
    if !require_tool("qemu-img") {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let os = |s: &str| OsString::from(s);
    // An overlay of the sample with a non-UTF-8 name: info, inspect, map.
    let bad = non_utf8(d, "bad", "name.qcow2");
    qemu_img_create_overlay(&bad, &sample, "qcow2", &[], "64M");
    for cmd in ["info", "inspect"] {
        let v = json_ok(&[OsStr::new(cmd), OsStr::new("--json"), bad.as_os_str()]);
        assert_path_field(&v["chain"][0], "path", &bad);
    }
    // inject: the overlay is written, then reported (the reported `from`
    // path too), no panic after writing.
    let payload = non_utf8(d, "p", ".bin");
    std::fs::write(&payload, pattern(4096, 1)).unwrap();
    let out = non_utf8(d, "z", ".qcow2");
    let v = json_ok(&[
        &os("inject"),
        &os("write"),
        sample.as_os_str(),
        &os("--offset"),
        &os("1M"),
        &os("--from"),
        payload.as_os_str(),
        &os("-o"),
        out.as_os_str(),
        &os("--json"),
    ]);
    assert_path_field(&v["output"], "path", &out);
    assert_path_field(&v["output"]["overlay"], "path", &out);
    assert_path_field(&v["output"]["recipe"]["params"], "from", &payload);
    assert!(out.is_file());
    assert_qemu_img_check_clean(&out);
    // verify, and map: the extent the overlay holds names it.
    let v = json_ok(&[&os("verify"), out.as_os_str(), &os("--json")]);
    assert_path_field(&v["chain"][0], "path", &out);
    let v = json_ok(&[&os("map"), &os("--json"), out.as_os_str()]);
    let ours = v["extents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["start"] == 1 << 20)
        .expect("an extent at 1 MiB");
    assert_path_field(ours, "file", &out);
    // chain: into a non-UTF-8 directory.
    let cdir = non_utf8(d, "c", "dir");
    let v = json_ok(&[
        &os("chain"),
        sample.as_os_str(),
        &os("-o"),
        cdir.as_os_str(),
        &os("--depth"),
        &os("2"),
        &os("--json"),
    ]);
    assert_path_field(&v["chain"], "dir", &cdir);
    assert_path_field(&v["chain"], "top", &cdir.join("link-0002.qcow2"));
    assert_path_field(
        &v["chain"]["links"][0],
        "path",
        &cdir.join("link-0001.qcow2"),
    );
    // batch: a manifest in a non-UTF-8 directory; its outputs resolve there.
    let bdir = non_utf8(d, "b", "dir");
    std::fs::create_dir(&bdir).unwrap();
    let manifest = bdir.join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[image]]\nbase = \"{}\"\noutput = \"o.qcow2\"\nrecipe = \"empty\"\n",
            sample.display()
        ),
    )
    .unwrap();
    let v = json_ok(&[&os("batch"), manifest.as_os_str(), &os("--json")]);
    assert_path_field(&v["batch"], "manifest", &manifest);
    assert_path_field(
        &v["batch"]["entries"][0]["outputs"][0],
        "path",
        &bdir.join("o.qcow2"),
    );
    // export has no JSON; it writes such a path.
    let raw = non_utf8(d, "e", ".raw");
    qfault_expect(
        [
            OsStr::new("export"),
            bad.as_os_str(),
            OsStr::new("-o"),
            raw.as_os_str(),
        ],
        0,
    );
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 64 << 20);
    // UTF-8 paths carry no _hex key.
    let v = json_ok(&[OsStr::new("info"), OsStr::new("--json"), sample.as_os_str()]);
    assert!(v["chain"][0].get("path_hex").is_none());
    guard.assert_unchanged();
}

/// Runs qfault with stdout a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&OsStr]) -> Output {
    let mut child = Command::new(qfault_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn closed_stdout_ends_quietly_with_exit_0() {
    let dir = tmpdir();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let s = sample.as_os_str();
    let o = OsStr::new;
    let out_file = dir.path().join("ov.qcow2");
    let runs: Vec<Vec<&OsStr>> = vec![
        vec![o("map"), s],
        vec![o("map"), o("--json"), s],
        vec![o("info"), s],
        vec![o("info"), o("--json"), s],
        vec![o("inspect"), s],
        vec![o("inspect"), o("--json"), s],
        vec![o("recipes")],
        vec![o("recipes"), o("--json")],
        vec![o("--help")],
        vec![
            o("inject"),
            o("zero"),
            s,
            o("--offset"),
            o("1M"),
            o("--length"),
            o("512"),
            o("-o"),
            out_file.as_os_str(),
            o("--json"),
        ],
    ];
    for args in &runs {
        let out = with_closed_stdout(args);
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(0), ""),
            "qfault {args:?} with stdout closed"
        );
    }
    // The overlay was written before its report was lost; nothing else left.
    assert!(out_file.is_file());
    assert!(temporaries(dir.path()).is_empty());
    // The shell's way: `qfault map … | head -1`, `info … | head -3`.
    let script = format!(
        "set -o pipefail; '{q}' map '{s}' | head -1 >/dev/null && '{q}' info '{s}' | head -3 >/dev/null",
        q = qfault_bin().display(),
        s = sample.display()
    );
    let out = run_any(Command::new("bash").args(["-c", &script]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    // A stdout that fails otherwise is an error, in one line.
    let full = std::fs::File::create("/dev/full");
    if let Ok(full) = full {
        let out = run_any(Command::new(qfault_bin()).args([o("info"), s]).stdout(full));
        assert_eq!(out.status.code(), Some(1));
        let e = one_error_line(&out);
        assert!(e.contains("standard output"), "{e}");
    }
    guard.assert_unchanged();
}

/// A 2 GiB sparse raw base with 128 MiB of data spread over it, so an
/// export takes a moment (the signal is sent as soon as its temporary file
/// appears).
fn big_base(dir: &Path) -> PathBuf {
    let base = dir.join("big.raw");
    sparse_file(&base, 2 << 30);
    let chunk = pattern(32 << 20, 7);
    for i in 0..4u64 {
        write_at(&base, i * (512 << 20), &chunk);
    }
    base
}

#[test]
fn sigterm_sigint_sighup_during_an_export_leave_no_temporary_file() {
    let dir = tmpdir();
    let base = big_base(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let out = dir.path().join("out.raw");
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut child = Command::new(qfault_bin())
            .arg("export")
            .arg(&base)
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while temporaries(dir.path()).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no temporary file appeared"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: kill on our own child's PID.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(sig),
            "qfault dies of the signal (the shell reports 128+{sig}): {status:?}"
        );
        assert_eq!(
            temporaries(dir.path()),
            Vec::<OsString>::new(),
            "signal {sig}"
        );
        assert!(!out.exists(), "no partial output");
    }
    // The shell's view: 128 + 15.
    let script = format!(
        "'{}' export '{}' -o '{}' & pid=$!; \
         while ! ls -a '{}' | grep -q qfault-tmp; do sleep 0.001; done; \
         kill -TERM $pid; wait $pid",
        qfault_bin().display(),
        base.display(),
        out.display(),
        dir.path().display()
    );
    let o = run_any(Command::new("bash").args(["-c", &script]));
    assert_eq!(o.status.code(), Some(143), "{o:?}");
    assert!(temporaries(dir.path()).is_empty());
    guard.assert_unchanged();
}

/// Runs qfault under `ulimit -f BLOCKS` (1024-byte blocks) in bash.
fn under_file_limit(blocks: u64, args: &[&OsStr]) -> Output {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("ulimit -f {blocks} && exec \"$0\" \"$@\""))
        .arg(qfault_bin())
        .args(args);
    run_any(&mut c)
}

#[test]
fn sigxfsz_is_ignored_so_writes_past_ulimit_f_fail_with_efbig_and_leave_nothing() {
    let dir = tmpdir();
    let d = dir.path();
    let base = d.join("base.raw");
    sparse_file(&base, 64 << 20);
    write_at(&base, 0, &pattern(8 << 20, 3));
    let payload = d.join("payload.bin");
    std::fs::write(&payload, pattern(4 << 20, 4)).unwrap();
    let guard = BaseGuard::new(&[&base]);
    let o = OsStr::new;
    let out = d.join("out.img");
    let cdir = d.join("chain");
    let each = format!("write --offset 0 --from {}", payload.display());
    let runs: Vec<Vec<&OsStr>> = vec![
        vec![o("export"), base.as_os_str(), o("-o"), out.as_os_str()],
        vec![
            o("inject"),
            o("write"),
            base.as_os_str(),
            o("--offset"),
            o("1M"),
            o("--from"),
            payload.as_os_str(),
            o("-o"),
            out.as_os_str(),
        ],
        vec![
            o("chain"),
            base.as_os_str(),
            o("-o"),
            cdir.as_os_str(),
            o("--depth"),
            o("2"),
            o("--each"),
            o(&each),
        ],
    ];
    for args in &runs {
        let r = under_file_limit(1024, args);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {r:?}");
        let e = one_error_line(&r);
        assert!(
            e.contains("File too large") && e.contains("ulimit -f"),
            "{e}"
        );
        assert!(!out.exists());
        assert!(temporaries(d).is_empty(), "{:?}", temporaries(d));
        if cdir.exists() {
            assert!(temporaries(&cdir).is_empty());
            assert_eq!(std::fs::read_dir(&cdir).unwrap().count(), 0);
        }
    }
    guard.assert_unchanged();
}

#[test]
fn output_path_errors_name_the_users_path_and_say_what_to_do() {
    let dir = tmpdir();
    let d = dir.path();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let export = |out: &Path, extra: &[&str], code: i32| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("export"),
            sample.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        one_error_line(&qfault_expect(args, code))
    };
    // A missing directory: exit 1, the path as given, what to do.
    let missing = d.join("nodir/x.raw");
    let e = export(&missing, &[], 1);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("create the directory"), "{e}");
    // An existing directory: it says so, not "pass --overwrite".
    let e = export(d, &[], 2);
    assert!(
        e.contains("is a directory") && !e.contains("--overwrite"),
        "{e}"
    );
    let empty = d.join("emptydir");
    std::fs::create_dir(&empty).unwrap();
    let e = export(&empty, &["--overwrite"], 2);
    assert!(e.contains("emptydir is a directory"), "{e}");
    assert!(empty.is_dir());
    // inject says the same of a directory.
    let e = one_error_line(&qfault_expect(
        [
            OsStr::new("inject"),
            OsStr::new("empty"),
            sample.as_os_str(),
            OsStr::new("-o"),
            empty.as_os_str(),
            OsStr::new("--overwrite"),
        ],
        2,
    ));
    assert!(e.contains("is a directory"), "{e}");
    // chain's -o is a directory: a file there is said to be one.
    let file = d.join("afile");
    std::fs::write(&file, b"x").unwrap();
    let e = one_error_line(&qfault_expect(
        [
            OsStr::new("chain"),
            sample.as_os_str(),
            OsStr::new("-o"),
            file.as_os_str(),
            OsStr::new("--depth"),
            OsStr::new("2"),
        ],
        2,
    ));
    assert!(e.contains("afile exists and is not a directory"), "{e}");
    // A directory the user may not write: root writes anywhere, so run as
    // nobody (setpriv) in a directory only root may write.
    let ro = d.join("readonly");
    std::fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let target = ro.join("x.raw");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && !require_tool("setpriv") {
        return;
    }
    let mut c = if root {
        let mut c = Command::new(tool_path("setpriv").unwrap());
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(qfault_bin());
        c
    } else {
        Command::new(qfault_bin())
    };
    c.arg("export").arg(&sample).arg("-o").arg(&target);
    let out = run_any(&mut c);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = one_error_line(&out);
    assert!(
        e.contains(&target.display().to_string()) && e.contains("Permission denied"),
        "{e}"
    );
    assert!(e.contains("choose a directory you may write to"), "{e}");
    assert!(temporaries(&ro).is_empty());
    guard.assert_unchanged();
}

#[test]
fn usage_errors_are_one_line_with_exit_2_and_help_and_version_still_work() {
    let sample = sample_image();
    let s = sample.to_str().unwrap();
    for args in [
        vec!["export", s, "--bogus"],
        vec!["export", s],
        vec!["inject", "zero", s, "-o", "x.qcow2", "--offest", "1M"],
        vec!["inject", "zero", s, "-o", "x.qcow2", "--offset", "1M"],
        vec![
            "inject",
            "zero",
            s,
            "-o",
            "x.qcow2",
            "--cluster-size",
            "nine",
        ],
        vec!["inject", "no-such-recipe", s],
        vec!["nosuchcommand"],
        vec!["info", s, "-f", "qed"],
        vec!["export", s, "-o", "json"],
        vec!["export", s, "-o", "-"],
        vec!["batch", "m.toml", "--jobs", "0"],
        vec!["chain", s, "-o", "d", "--depth", "0"],
    ] {
        let out = qfault_expect(&args, 2);
        let e = one_error_line(&out);
        assert!(e.contains("--help'"), "a pointer to the help: {e}");
        assert!(out.stdout.is_empty());
    }
    // The pointer names the subcommand the user typed.
    let e = one_error_line(&qfault_expect(
        ["inject", "zero", s, "-o", "x.qcow2", "--offest", "1M"],
        2,
    ));
    assert!(
        e.contains("'qfault inject zero --help'") && e.contains("--offset"),
        "{e}"
    );
    let e = one_error_line(&qfault_expect(["info", s, "--max-depth", "abc"], 2));
    assert!(e.contains("'qfault info --help'"), "{e}");
    let e = one_error_line(&qfault_expect(["export", s], 2));
    assert!(
        e.contains("--output <OUT>"),
        "the missing argument is named: {e}"
    );
    for args in [
        ["--help"].as_slice(),
        &["export", "--help"],
        &["help", "info"],
    ] {
        let out = qfault_expect(args, 0);
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
    let out = qfault_expect(["--version"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("qfault "));
}

#[test]
fn every_help_ends_with_the_exit_codes_and_says_what_its_json_is() {
    let last_line = "128+N  killed by signal N";
    for (args, json) in [
        (vec!["--help"], false),
        (vec!["info", "--help"], true),
        (vec!["export", "--help"], false),
        (vec!["inspect", "--help"], true),
        (vec!["map", "--help"], true),
        (vec!["inject", "--help"], true),
        (vec!["inject", "zero", "--help"], true),
        (vec!["inject", "ntfs-boot", "--help"], true),
        (vec!["recipes", "--help"], true),
        (vec!["verify", "--help"], true),
        (vec!["chain", "--help"], true),
        (vec!["batch", "--help"], true),
    ] {
        let help = qfault_ok(&args);
        let tail = help.trim_end().lines().last().unwrap_or("");
        assert!(tail.contains(last_line), "{args:?} ends with: {tail}");
        assert!(help.contains("Exit codes:"), "{args:?}");
        if json {
            assert!(
                help.contains("JSON (--json): one object, {\"schema\": 1")
                    && help.contains("docs/json.md")
                    && help.contains("_hex"),
                "{args:?}:\n{help}"
            );
        }
    }
    // The manifest format is in the binary, not only in README.md.
    let help = qfault_ok(["batch", "--help"]);
    for needle in [
        "[[image]]",
        "[[chain]]",
        "base =",
        "output =",
        "recipe =",
        "depth =",
        "links =",
    ] {
        assert!(help.contains(needle), "batch --help lacks {needle}");
    }
    assert!(!help.contains("README"), "{help}");
    // Sizes are explained where a user looks.
    assert!(qfault_ok(["--help"]).contains("qemu-img"));
}

#[test]
fn a_1000_deep_chain_opens_with_the_default_depth_limit_and_lists_flat() {
    if !require_tool("qemu-img") {
        return;
    }
    let dir = tmpdir();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let cdir = dir.path().join("c");
    let s = sample.to_str().unwrap();
    let c = cdir.to_str().unwrap();
    qfault_ok(["chain", s, "-o", c, "--depth", "1000"]);
    let top = cdir.join("link-1000.qcow2");
    let t = top.to_str().unwrap();
    let v: Value = serde_json::from_str(&qfault_ok(["info", "--json", t])).unwrap();
    assert_eq!(v["chain"].as_array().unwrap().len(), 1001);
    // The human listing: flat, with a depth column, 1001 rows.
    let text = qfault_ok(["inspect", t]);
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("DEPTH"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 1001, "{text}");
    for (i, row) in rows.iter().enumerate() {
        let (depth, rest) = row.trim_start().split_once("  ").unwrap();
        assert_eq!(depth.parse::<usize>().unwrap(), i);
        assert!(row.len() - rest.len() <= 8, "flat: {row:?}");
    }
    // Below the limit: the error names --max-depth, in info and in batch.
    let out = qfault_expect(["info", t, "--max-depth", "10"], 1);
    let e = one_error_line(&out);
    assert!(e.contains("--max-depth"), "{e}");
    // The images within the limit are shown; no file was "tried" and failed.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("backing file 9:") && !text.contains("tried:"),
        "{text}"
    );
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!("[[image]]\nbase = \"{t}\"\noutput = \"o.qcow2\"\nrecipe = \"empty\"\n"),
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let e = one_error_line(&qfault_expect(["batch", m, "--max-depth", "10"], 1));
    assert!(e.contains("--max-depth"), "{e}");
    // batch's -f forces each base's format: a qcow2 read as raw is a
    // 64 MiB-odd raw disk with no backing file.
    let out = qfault_expect(["batch", m, "-f", "raw", "--json"], 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["batch"]["entries"][0]["status"], "written");
    qfault_ok(["batch", m, "--overwrite"]);
    let info = qemu_img([
        "info",
        "--output=json",
        dir.path().join("o.qcow2").to_str().unwrap(),
    ]);
    assert!(info.contains("link-1000.qcow2"), "{info}");
    guard.assert_unchanged();
}

#[test]
fn length_0_is_a_usage_error_and_writes_nothing() {
    let dir = tmpdir();
    let out = dir.path().join("o.qcow2");
    let s = sample_image();
    let e = one_error_line(&qfault_expect(
        [
            OsStr::new("inject"),
            OsStr::new("zero"),
            s.as_os_str(),
            OsStr::new("--offset"),
            OsStr::new("1M"),
            OsStr::new("--length"),
            OsStr::new("0"),
            OsStr::new("-o"),
            out.as_os_str(),
        ],
        2,
    ));
    assert!(e.contains("length"), "{e}");
    assert!(!out.exists());
}

#[test]
fn sizes_read_as_qemu_img_reads_them() {
    if !require_tool("qemu-img") {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let base = d.join("base.raw");
    sparse_file(&base, 64 << 20);
    let guard = BaseGuard::new(&[&base]);
    for size in [
        "1k", "1K", "2m", "1M", "1b", "1B", "1.5M", "4096", "1KB", "1kb", "1MB", "1KiB", "1Mi",
        "1s",
    ] {
        // The size qemu-img reads (before rounding the file to sectors):
        // "Formatting 'F', fmt=raw size=N".
        let probe = d.join("probe.raw");
        let q = run_any(
            Command::new("qemu-img")
                .args(["create", "-f", "raw"])
                .arg(&probe)
                .arg(size),
        );
        let qemu = q.status.success().then(|| {
            let text = String::from_utf8_lossy(&q.stdout);
            let n = text
                .split("size=")
                .nth(1)
                .expect("size=")
                .split_whitespace()
                .next();
            n.unwrap().parse::<u64>().unwrap()
        });
        let out = d.join("o.qcow2");
        let _ = std::fs::remove_file(&out);
        let r = qfault([
            OsStr::new("inject"),
            OsStr::new("zero"),
            base.as_os_str(),
            OsStr::new("--offset"),
            OsStr::new("0"),
            OsStr::new("--length"),
            OsStr::new(size),
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--json"),
        ]);
        let ours = r.status.success().then(|| {
            let v: Value = serde_json::from_slice(&r.stdout).unwrap();
            v["output"]["targets"][0]["changes"][0]["length"]
                .as_u64()
                .unwrap()
        });
        match size {
            // qfault's additions: sectors and the IEC forms.
            "1KiB" => assert_eq!((qemu, ours), (None, Some(1024))),
            "1Mi" => assert_eq!((qemu, ours), (None, Some(1 << 20))),
            "1s" => assert_eq!((qemu, ours), (None, Some(512))),
            _ => assert_eq!(ours, qemu, "{size}: qfault vs qemu-img"),
        }
        if ours.is_none() {
            assert_eq!(r.status.code(), Some(2), "{size}");
            one_error_line(&r);
        }
    }
    guard.assert_unchanged();
}

#[test]
fn info_on_an_overlay_whose_backing_file_is_missing_shows_the_top_and_what_it_tried() {
    if !require_tool("qemu-img") {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let gone = d.join("gone.raw");
    sparse_file(&gone, 16 << 20);
    let ov = d.join("ov.qcow2");
    qemu_img_create_overlay(&ov, "gone.raw", "raw", &[], "16M");
    std::fs::remove_file(&gone).unwrap();
    let o = ov.to_str().unwrap();
    let out = qfault_expect(["info", o], 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("image: {o}")), "{text}");
    assert!(text.contains("backing file: gone.raw"), "{text}");
    assert!(text.contains("backing file 1: gone.raw"), "{text}");
    assert!(
        text.contains(&format!("tried: {}", gone.display())),
        "{text}"
    );
    let e = one_error_line(&out);
    assert!(e.contains("gone.raw"), "{e}");
    let out = qfault_expect(["info", "--json", o], 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["chain"].as_array().unwrap().len(), 1);
    assert_eq!(v["chain"][0]["path"], o);
    assert_eq!(v["error"]["backing_file"], "gone.raw");
    assert_eq!(v["error"]["tried"], gone.to_str().unwrap());
    assert_eq!(v["error"]["kind"], "malformed-image");
    assert!(v["error"]["message"].as_str().unwrap().contains("gone.raw"));
    one_error_line(&out);
}

/// `PARTUUID`s by partition number, as libblkid reads them (`partx -g`).
fn partx_uuids(raw: &Path) -> HashMap<u32, String> {
    sh(
        "partx",
        [
            OsStr::new("-g"),
            OsStr::new("-o"),
            OsStr::new("NR,UUID"),
            raw.as_os_str(),
        ],
    )
    .lines()
    .filter_map(|l| {
        let mut w = l.split_whitespace();
        Some((w.next()?.parse().ok()?, w.next()?.to_string()))
    })
    .collect()
}

#[test]
fn mbr_disk_identifier_and_partuuids_are_blkids() {
    if !require_tools(&["qemu-img", "blkid", "partx", "sfdisk", "sgdisk"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let logical = d.join("logical.qcow2");
    sfdisk_logical_qcow2(&logical);
    let gpt = d.join("gpt.qcow2");
    sgdisk_gpt_qcow2(&gpt);
    for image in [sample_image(), logical, gpt] {
        let guard = BaseGuard::new(&[&image]);
        let raw = d.join("disk.raw");
        let _ = std::fs::remove_file(&raw);
        qemu_img([
            OsStr::new("convert"),
            OsStr::new("-O"),
            OsStr::new("raw"),
            image.as_os_str(),
            raw.as_os_str(),
        ]);
        let ptuuid = blkid(&raw)["PTUUID"].clone();
        let want = partx_uuids(&raw);
        let v = json_ok(&[
            OsStr::new("inspect"),
            OsStr::new("--json"),
            image.as_os_str(),
        ]);
        // GPT GUIDs are printed upper case, as sgdisk does; blkid prints
        // them lower case. MBR identifiers are blkid's exactly.
        let norm = |s: &str| s.to_ascii_lowercase();
        assert_eq!(
            norm(v["disk_id"].as_str().unwrap_or("")),
            ptuuid,
            "{}",
            image.display()
        );
        let got: HashMap<u32, String> = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["number"].as_u64() != Some(0))
            .map(|p| {
                (
                    p["number"].as_u64().unwrap() as u32,
                    norm(p["partuuid"].as_str().unwrap_or("")),
                )
            })
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{}", image.display());
        guard.assert_unchanged();
    }
    // The sample, as the issue reports blkid: PARTUUID=51a7fa17-02.
    let v = json_ok(&[
        OsStr::new("inspect"),
        OsStr::new("--json"),
        sample_image().as_os_str(),
    ]);
    assert_eq!(v["partitions"][1]["partuuid"], "51a7fa17-02");
    assert!(
        qfault_ok([OsStr::new("inspect"), sample_image().as_os_str()])
            .contains("disk identifier 51a7fa17")
    );
}

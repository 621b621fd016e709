//! Pipelines get killed, disks fill up and VMs keep images open: qfault must
//! stay correct and lose nothing (issue 8, parts 3 to 5).

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A raw base with some data, and a payload big enough that writing an
/// overlay takes a few milliseconds.
fn base_and_payload(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = dir.join("base.raw");
    sparse_file(&base, 64 << 20);
    write_at(&base, 1 << 20, &pattern(1 << 20, 1));
    let payload = dir.join("payload.bin");
    std::fs::write(&payload, pattern(16 << 20, 2)).unwrap();
    (base, payload)
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".qfault-tmp."))
        .collect()
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_overlay() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let (base, payload) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let out = dir.path().join("ov.qcow2");
    // Time one full run to spread the kill moments over it.
    let t = Instant::now();
    qfault_ok([
        "inject",
        "write",
        base.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--offset",
        "3M",
        "--from",
        payload.to_str().unwrap(),
    ]);
    let full = t.elapsed().max(Duration::from_millis(5));
    let expected = qemu_raw_bytes(&out);
    let mut completed = 0;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for run in 0..100 {
        let _ = std::fs::remove_file(&out);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 * 3 / 2 + 1));
        let mut child = Command::new(qfault_bin())
            .args([
                "inject",
                "write",
                base.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--offset",
                "3M",
                "--from",
                payload.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if out.exists() {
            completed += 1;
            assert_qemu_img_check_clean(&out);
            if run % 10 == 0 {
                assert_eq!(
                    qemu_raw_bytes(&out),
                    expected,
                    "run {run}: complete but wrong"
                );
            }
        }
    }
    eprintln!("sigkill: {completed} of 100 runs completed before the kill");
    // A later run cleans up what the killed ones left behind.
    let _ = std::fs::remove_file(&out);
    qfault_ok([
        "inject",
        "zero",
        base.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--offset",
        "0",
        "--length",
        "512",
    ]);
    assert_eq!(temporaries(dir.path()), Vec::<String>::new());
    guard.assert_unchanged();
}

#[test]
fn file_size_limit_gives_a_clear_error_and_no_file() {
    if !require_tools(&["sh"]) {
        return;
    }
    let dir = tmpdir();
    let (base, payload) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let out = dir.path().join("ov.qcow2");
    // 1024-byte blocks: 2 MiB, less than the 16 MiB payload. SIGXFSZ is
    // ignored so the write fails with EFBIG instead of killing qfault.
    let script = format!(
        "ulimit -f 2048; trap '' XFSZ; exec '{}' inject write '{}' -o '{}' --offset 3M --from '{}'",
        qfault_bin().display(),
        base.display(),
        out.display(),
        payload.display()
    );
    let o = run_expect(&mut cmd("sh", ["-c", &script]), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("qfault: error: "), "{err}");
    assert!(
        err.contains("too large") || err.contains("File too large"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!out.exists(), "no target after EFBIG");
    assert_eq!(temporaries(dir.path()), Vec::<String>::new());
    guard.assert_unchanged();
}

#[test]
fn full_filesystem_gives_a_clear_error_and_no_file() {
    if !require_tools(&["mount", "umount"]) {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !in_ci(),
            "CI runs as root; the full-filesystem test needs it"
        );
        eprintln!("SKIP: not root, cannot mount a small tmpfs");
        return;
    }
    let dir = tmpdir();
    let (base, payload) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    run(&mut cmd(
        "mount",
        [
            "-t",
            "tmpfs",
            "-o",
            "size=4m",
            "tmpfs",
            small.to_str().unwrap(),
        ],
    ));
    let out = small.join("ov.qcow2");
    let o = qfault([
        "inject",
        "write",
        base.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--offset",
        "3M",
        "--from",
        payload.to_str().unwrap(),
    ]);
    let leftovers = temporaries(&small);
    let existed = out.exists();
    run(&mut cmd("umount", [small.to_str().unwrap()]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!existed, "no target on a full filesystem");
    assert_eq!(leftovers, Vec::<String>::new());
    guard.assert_unchanged();
}

/// Starts `qemu-io` holding `image` open read-write until its stdin closes.
fn qemu_io_holding(image: &Path) -> std::process::Child {
    let spawn = || {
        Command::new("qemu-io")
            .args(["-f", "raw", image.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    // Wait until its write lock (byte 101) is visible. The probe itself
    // (`qfault info`) briefly takes a shared lock, so a qemu-io starting at
    // that moment fails to get its write lock and exits: start it again.
    // A loaded CI machine can take seconds: wait long, report what was seen.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    let mut restarts = 0;
    while Instant::now() < deadline {
        let o = qfault(["info", image.to_str().unwrap()]);
        if o.status.code() == Some(3) {
            return child;
        }
        if let Ok(Some(_)) = child.try_wait() {
            restarts += 1;
            child = spawn();
        }
        last = Some(o);
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "qemu-io never took its locks on {} ({restarts} restarts); qfault info last said {:?}",
        image.display(),
        last.map(|o| (o.status, String::from_utf8_lossy(&o.stderr).into_owned()))
    );
}

#[test]
fn an_image_open_for_writing_elsewhere_is_refused_unless_force_share() {
    if !require_tools(&["qemu-io", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let base = dir.path().join("base.raw");
    sparse_file(&base, 8 << 20);
    let top = dir.path().join("top.qcow2");
    qemu_img([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        top.to_str().unwrap(),
    ]);
    let mut holder = qemu_io_holding(&base);
    // The locked file is the backing file: the error names it.
    let o = qfault_expect(["info", top.to_str().unwrap()], 3);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("base.raw") && err.contains("open for writing"),
        "{err}"
    );
    let out = dir.path().join("ov.qcow2");
    qfault_expect(
        [
            "inject",
            "zero",
            top.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--offset",
            "0",
            "--length",
            "1",
        ],
        3,
    );
    assert!(!out.exists());
    qfault_ok(["info", "-U", top.to_str().unwrap()]);
    drop(holder.stdin.take());
    let _ = holder.wait();
    qfault_ok(["info", top.to_str().unwrap()]);
}

#[test]
fn while_qfault_reads_a_base_qemu_cannot_take_write_access() {
    if !require_tools(&["qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let base = dir.path().join("base.raw");
    sparse_file(&base, 8 << 20);
    let image = qfault::image::open(&base, &Default::default()).unwrap();
    let o = run_any(&mut cmd(
        "qemu-io",
        ["-f", "raw", "-c", "write 0 512", base.to_str().unwrap()],
    ));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !o.status.success() || text.contains("lock"),
        "qemu-io wrote while qfault held the base: {text}"
    );
    assert!(text.contains("lock"), "{text}");
    drop(image);
    let o = run_any(&mut cmd(
        "qemu-io",
        ["-f", "raw", "-c", "write 0 512", base.to_str().unwrap()],
    ));
    assert!(
        o.status.success(),
        "after qfault closed it, qemu-io may write"
    );
}

/// The sync system calls (`fsync`, `fdatasync`, `syncfs`) a qfault run
/// makes, counted by strace.
fn sync_calls(args: &[&str]) -> Vec<String> {
    let log = tempfile::NamedTempFile::new().unwrap();
    run(Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync,syncfs", "-o"])
        .arg(log.path())
        .arg(qfault_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null()));
    std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .filter(|l| l.contains("sync"))
        .map(|l| l.split('(').next().unwrap_or(l).trim().to_string())
        .map(|l| l.rsplit(' ').next().unwrap_or(&l).to_string())
        .collect()
}

/// Issue 16, goal 2: a chain is flushed once (one syncfs for all its
/// links, one fsync of their directory), not twice per link; one overlay or
/// export is one fsync of the file and one of its directory; `--no-sync`
/// flushes nothing and writes the same bytes.
#[test]
fn durability_costs_one_flush_per_run_and_none_with_no_sync() {
    if !require_tools(&["strace", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let (base, _) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let b = base.to_str().unwrap();
    let each = "zero --offset 1M --length 512";
    assert_eq!(
        sync_calls(&[
            "chain",
            b,
            "-o",
            &d("synced"),
            "--depth",
            "20",
            "--each",
            each
        ]),
        ["syncfs", "fsync"],
        "a durable chain"
    );
    assert_eq!(
        sync_calls(&[
            "chain",
            b,
            "-o",
            &d("fast"),
            "--depth",
            "20",
            "--each",
            each,
            "--no-sync"
        ]),
        Vec::<String>::new(),
        "a --no-sync chain"
    );
    for i in 1..=20 {
        let name = format!("link-{i:04}.qcow2");
        let (a, f) = (
            dir.path().join("synced").join(&name),
            dir.path().join("fast").join(&name),
        );
        assert!(a.exists(), "{} missing", a.display());
        assert_eq!(
            sha256_file(&a),
            sha256_file(&f),
            "{name}: --no-sync wrote other bytes"
        );
    }
    assert_qemu_img_check_clean(&dir.path().join("fast/link-0020.qcow2"));
    let inject = |out: &str, extra: &[&str]| {
        let mut a = vec![
            "inject", "zero", b, "-o", out, "--offset", "0", "--length", "512",
        ];
        a.extend(extra);
        sync_calls(&a)
    };
    assert_eq!(
        inject(&d("one.qcow2"), &[]),
        ["fsync", "fsync"],
        "one overlay"
    );
    assert_eq!(
        inject(&d("two.qcow2"), &["--no-sync"]),
        Vec::<String>::new()
    );
    assert_eq!(
        sha256_file(&dir.path().join("one.qcow2")),
        sha256_file(&dir.path().join("two.qcow2"))
    );
    assert_eq!(
        sync_calls(&["export", b, "-o", &d("e1.raw")]),
        ["fsync", "fsync"],
        "export"
    );
    assert_eq!(
        sync_calls(&["export", b, "-o", &d("e2.raw"), "--no-sync"]),
        Vec::<String>::new()
    );
    assert_eq!(
        sha256_file(&dir.path().join("e1.raw")),
        sha256_file(&dir.path().join("e2.raw"))
    );
    guard.assert_unchanged();
}

/// A chain killed at any moment leaves only complete links: each link in
/// place is whole (flushed before any was renamed), and a re-run completes
/// the chain and removes the temporaries.
#[test]
fn sigkill_during_a_chain_never_leaves_a_partial_link() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let (base, _) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let out = dir.path().join("chain");
    let args = |o: &Path| {
        vec![
            "chain".to_string(),
            base.to_str().unwrap().to_string(),
            "-o".into(),
            o.to_str().unwrap().to_string(),
            "--depth".into(),
            "30".into(),
        ]
    };
    let t = Instant::now();
    qfault_ok(args(&dir.path().join("reference")));
    let full = t.elapsed().max(Duration::from_millis(5));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..30 {
        let _ = std::fs::remove_dir_all(&out);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 * 3 / 2 + 1));
        let mut child = Command::new(qfault_bin())
            .args(args(&out))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        for i in 1..=30 {
            let name = format!("link-{i:04}.qcow2");
            let link = out.join(&name);
            if link.exists() {
                assert_eq!(
                    sha256_file(&link),
                    sha256_file(&dir.path().join("reference").join(&name)),
                    "{name} is in place but not whole"
                );
            }
        }
    }
    qfault_ok(args(&out));
    assert_eq!(temporaries(&out), Vec::<String>::new());
    assert_qemu_img_check_clean(&out.join("link-0030.qcow2"));
    guard.assert_unchanged();
}

/// Issue 16, goal 2 for batches: a run's outputs are flushed once, together
/// (one syncfs for every output, one fsync per output directory), not two
/// fsyncs per output; `--no-sync` flushes nothing and writes the same
/// bytes; `--json-lines` places (and flushes) each entry as it finishes; a
/// re-run finds every output unchanged, flushes nothing and changes no byte.
#[test]
fn a_batch_is_flushed_once_per_run_and_reruns_write_nothing() {
    if !require_tools(&["strace", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let (base, payload) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let manifest = |name: &str| {
        let mut m = String::new();
        for k in 0..12u64 {
            // Two output directories; zero and write entries.
            let sub = if k % 2 == 0 { "a" } else { "b" };
            m += &format!(
                "[[image]]\nbase = {:?}\noutput = \"{name}/{sub}/e{k}.qcow2\"\n",
                base.to_str().unwrap()
            );
            if k % 3 == 0 {
                m += &format!(
                    "recipe = \"write\"\noffset = {}\nfrom = {:?}\n\n",
                    (k + 1) << 20,
                    payload.to_str().unwrap()
                );
            } else {
                m += &format!(
                    "recipe = \"zero\"\noffset = {}\nlength = {}\n\n",
                    (k << 20) + 4096,
                    512 * (k + 1)
                );
            }
        }
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, m).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (synced, fast, lines) = (manifest("synced"), manifest("fast"), manifest("lines"));
    assert_eq!(
        sync_calls(&["batch", &synced, "-j", "2"]),
        ["syncfs", "fsync", "fsync"],
        "a durable batch: one syncfs, one fsync per output directory"
    );
    assert_eq!(
        sync_calls(&["batch", &fast, "-j", "2", "--no-sync"]),
        Vec::<String>::new(),
        "a --no-sync batch"
    );
    assert_eq!(
        sync_calls(&["batch", &lines, "-j", "1", "--json-lines"]).len(),
        24,
        "streamed: each output flushed as its entry finishes (file, directory)"
    );
    let files = |name: &str| -> Vec<(String, String)> {
        let mut v = Vec::new();
        for sub in ["a", "b"] {
            let d = dir.path().join(name).join(sub);
            let mut names: Vec<String> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                v.push((format!("{sub}/{n}"), sha256_file(&d.join(&n))));
            }
        }
        v
    };
    let written = files("synced");
    assert_eq!(written.len(), 12, "{written:?}: no temporary left");
    assert_eq!(files("fast"), written, "--no-sync wrote other bytes");
    assert_eq!(files("lines"), written, "--json-lines wrote other bytes");
    for k in [0, 1] {
        let sub = if k % 2 == 0 { "a" } else { "b" };
        let out = dir.path().join(format!("synced/{sub}/e{k}.qcow2"));
        assert_qemu_img_check_clean(&out);
    }
    // e1 zeroes 1024 bytes at 1 MiB + 4 KiB of the patterned base.
    let mut expected = qemu_raw_bytes(&base);
    expected[(1 << 20) + 4096..(1 << 20) + 4096 + 1024].fill(0);
    assert!(qemu_raw_bytes(&dir.path().join("synced/b/e1.qcow2")) == expected);

    // A re-run: every output unchanged, nothing flushed, no byte changed.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let e0 = dir.path().join("synced/a/e0.qcow2");
    let before = mtime(&e0);
    assert_eq!(
        sync_calls(&["batch", &synced, "-j", "2"]),
        Vec::<String>::new(),
        "a re-run flushes nothing"
    );
    let report = qfault_ok(["batch", &synced, "--json"]);
    assert_eq!(report.matches("\"unchanged\"").count(), 24, "{report}");
    assert_eq!(files("synced"), written);
    assert_eq!(mtime(&e0), before);
    guard.assert_unchanged();
}

/// A batch killed at any moment leaves only whole outputs (each staged
/// output is flushed before any is moved into place), and a re-run
/// completes it and removes the temporaries.
#[test]
fn sigkill_during_a_batch_never_leaves_a_partial_output() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let (base, payload) = base_and_payload(dir.path());
    let guard = BaseGuard::new(&[&base]);
    let manifest = |name: &str| {
        let mut m = String::new();
        for k in 0..20u64 {
            m += &format!(
                "[[image]]\nbase = {:?}\noutput = \"{name}/e{k}.qcow2\"\nrecipe = \"write\"\noffset = {}\nfrom = {:?}\n\n",
                base.to_str().unwrap(),
                k << 20,
                payload.to_str().unwrap()
            );
        }
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, m).unwrap();
        path
    };
    let (reference, m) = (manifest("reference"), manifest("out"));
    let t = Instant::now();
    qfault_ok([
        "batch".as_ref(),
        reference.as_os_str(),
        "-j".as_ref(),
        "2".as_ref(),
    ]);
    let full = t.elapsed().max(Duration::from_millis(5));
    let out = dir.path().join("out");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20 {
        let _ = std::fs::remove_dir_all(&out);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 * 3 / 2 + 1));
        let mut child = Command::new(qfault_bin())
            .args(["batch".as_ref(), m.as_os_str(), "-j".as_ref(), "2".as_ref()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        for k in 0..20 {
            let name = format!("e{k}.qcow2");
            let o = out.join(&name);
            if o.exists() {
                assert_eq!(
                    sha256_file(&o),
                    sha256_file(&dir.path().join("reference").join(&name)),
                    "{name} is in place but not whole"
                );
            }
        }
    }
    qfault_ok(["batch".as_ref(), m.as_os_str()]);
    assert_eq!(temporaries(&out), Vec::<String>::new());
    for k in 0..20 {
        let name = format!("e{k}.qcow2");
        assert_eq!(
            sha256_file(&out.join(&name)),
            sha256_file(&dir.path().join("reference").join(&name))
        );
    }
    assert_qemu_img_check_clean(&out.join("e19.qcow2"));
    guard.assert_unchanged();
}

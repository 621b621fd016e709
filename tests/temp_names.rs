//! Temporary files that work on every filesystem (issue 19, part 3): their
//! names fit NAME_MAX whatever the target's length, and the stale cleanup
//! removes only this host's temporaries whose writer is dead, never another
//! host's (a directory shared over NFS).

mod common;

use common::*;
use qfault::output::{temporary_name, this_host, NAME_MAX, TMP_MARKER};
use std::path::{Path, PathBuf};

/// A PID no process has (over any pid_max Linux allows).
const DEAD: u32 = 0x7fff_fff0;

/// The names of qfault's temporary files in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(TMP_MARKER))
        .collect()
}

/// A 64 MiB raw base with some data at 1 MiB.
fn base(dir: &Path) -> PathBuf {
    let base = dir.join("base.raw");
    sparse_file(&base, 64 << 20);
    write_at(&base, 1 << 20, &pattern(64 << 10, 1));
    base
}

/// A file name of exactly 250 bytes, with two-byte characters where
/// temporary names cut it (byte 150 falls inside one of them).
fn long_name(tag: &str) -> String {
    let mut start = format!("{tag}-");
    if start.len() % 2 == 0 {
        start.push('p');
    }
    let name = format!("{start}{}", "ü".repeat(80));
    assert!(!name.is_char_boundary(150));
    let pad = 250 - name.len() - ".qcow2".len();
    format!("{name}{}.qcow2", "x".repeat(pad))
}

fn inject_zero(base: &Path, out: &Path) -> String {
    qfault_ok([
        "inject".as_ref(),
        "zero".as_ref(),
        base.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--offset".as_ref(),
        "1M".as_ref(),
        "--length".as_ref(),
        "4K".as_ref(),
    ])
}

#[test]
fn a_250_byte_target_name_is_written_and_leaves_no_temporary() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let base = base(dir.path());
    let guard = BaseGuard::new(&[&base]);

    let overlay = dir.path().join(long_name("overlay"));
    assert_eq!(overlay.file_name().unwrap().len(), 250);
    // The old form, `.NAME.qfault-tmp.PID`, could not exist in this directory.
    assert!(1 + 250 + TMP_MARKER.len() + 1 > NAME_MAX);
    inject_zero(&base, &overlay);
    assert_qemu_img_check_clean(&overlay);
    let mut expected = std::fs::read(&base).unwrap();
    expected[1 << 20..(1 << 20) + 4096].fill(0);
    assert!(
        qemu_raw_bytes(&overlay) == expected,
        "the overlay reads wrong"
    );
    assert_eq!(temporaries(dir.path()), Vec::<String>::new());

    let flat = dir.path().join(long_name("export"));
    assert_eq!(flat.file_name().unwrap().len(), 250);
    qfault_ok([
        "export".as_ref(),
        overlay.as_os_str(),
        "-o".as_ref(),
        flat.as_os_str(),
    ]);
    assert!(std::fs::read(&flat).unwrap() == expected, "export differs");
    assert_eq!(temporaries(dir.path()), Vec::<String>::new());
    guard.assert_unchanged();
}

#[test]
fn only_this_hosts_temporaries_of_dead_writers_are_removed() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let base = base(dir.path());
    let guard = BaseGuard::new(&[&base]);
    // The host as the kernel names it, which is what qfault records (this
    // machine's name needs no sanitizing).
    let kernel_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let kernel_host = kernel_host.trim();
    if kernel_host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        assert_eq!(this_host(), kernel_host);
    }

    for name in [long_name("stale"), "short.qcow2".to_string()] {
        let name = std::ffi::OsString::from(name);
        let out = dir.path().join(&name);
        let ours_dead = temporary_name(&name, this_host(), DEAD);
        // This test process runs: its temporary is a live writer's.
        let ours_alive = temporary_name(&name, this_host(), std::process::id());
        // Another host's, crafted by hand from ours: same target, same dead
        // PID, another host name in its place.
        let suffix = format!(".{}.{DEAD}", this_host());
        let theirs = ours_dead
            .to_str()
            .unwrap()
            .strip_suffix(&suffix)
            .map(|stem| format!("{stem}.other-host.example.{DEAD}"))
            .unwrap();
        assert!(ours_dead.len() <= NAME_MAX && theirs.len() <= NAME_MAX);
        for t in [
            ours_dead.as_os_str(),
            ours_alive.as_os_str(),
            theirs.as_ref(),
        ] {
            std::fs::write(dir.path().join(t), b"partial").unwrap();
        }

        inject_zero(&base, &out);
        assert_qemu_img_check_clean(&out);
        let path = |t: &std::ffi::OsStr| dir.path().join(t);
        assert!(
            !path(&ours_dead).exists(),
            "this host's temporary with a dead PID is removed"
        );
        assert!(
            path(&ours_alive).exists(),
            "this host's temporary of a live PID is kept"
        );
        assert!(
            path(theirs.as_ref()).exists(),
            "another host's temporary is never judged here"
        );
        std::fs::remove_file(path(&ours_alive)).unwrap();
        std::fs::remove_file(path(theirs.as_ref())).unwrap();
        assert_eq!(temporaries(dir.path()), Vec::<String>::new());
    }
    guard.assert_unchanged();
}

//! The gate for files named inside images (`BackingPolicy`): a backing file
//! without a recorded format is refused unless `--probe-backing`, and
//! `--backing-root DIR` confines every file an image names to DIR, symlinks
//! and `..` resolved first. Images are built with the real `qemu-img`; every
//! input is hashed before and after.

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const M: u64 = 1 << 20;
/// What the host file a malicious guest names holds.
const SECRET: &[u8] = b"HOST-SECRET-0123456789";

/// Header extension type of the backing format (qcow2 spec).
const EXT_BACKING_FORMAT: [u8; 4] = [0xE2, 0x79, 0x2A, 0xCA];

/// Turns `img`'s backing-format header extension into an unknown (ignored)
/// one: the image then names its backing file without recording its format,
/// as images made before QEMU 6.1 (or by hand) do. `qemu-img` itself will
/// no longer write such an image.
fn drop_backing_format(img: &Path) {
    let mut bytes = std::fs::read(img).unwrap();
    let head = &bytes[..4096.min(bytes.len())];
    let at = head
        .windows(4)
        .position(|w| w == EXT_BACKING_FORMAT)
        .expect("backing format extension");
    bytes[at..at + 4].copy_from_slice(&[0x0b, 0xad, 0xf0, 0x0d]);
    std::fs::write(img, bytes).unwrap();
    let info = qemu_img(["info", "--output=json", "-U", img.to_str().unwrap()]);
    assert!(!info.contains("backing-filename-format"), "{info}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `qfault ARGS` exits 3 with every phrase on stderr (one line).
fn refused(args: &[&str], phrases: &[&str]) -> String {
    let out = qfault_expect(args, 3);
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    for p in phrases {
        assert!(err.contains(p), "{args:?}: missing {p:?} in {err}");
    }
    err
}

/// The guest content as `qfault export` reads it (extra options first).
fn export(extra: &[&str], img: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("export.raw");
    let _ = std::fs::remove_file(&out);
    let mut args: Vec<&str> = vec!["export"];
    args.extend(extra);
    args.extend([s(img), "-o", s(&out)]);
    qfault_ok(&args);
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    bytes
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The classic hole: `vm/guest.raw` is a raw guest disk whose guest wrote a
/// whole qcow2 image into it, one that names an absolute host path as its
/// backing file; `vm/top.qcow2` is an overlay on it that does not record
/// its backing file's format. Returns (top, guest, secret).
fn malicious_chain(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let secret = d.join("secret.txt");
    std::fs::write(&secret, SECRET.repeat(4096)).unwrap();
    let vm = d.join("vm");
    std::fs::create_dir(&vm).unwrap();
    // What the guest writes at the start of its disk: a qcow2 image backed
    // by the host file.
    let evil = d.join("evil.qcow2");
    qemu_img_create_overlay(&evil, &secret, "raw", &["-u"], "1M");
    let guest = vm.join("guest.raw");
    sparse_file(&guest, M);
    write_at(&guest, 0, &std::fs::read(&evil).unwrap());
    std::fs::remove_file(&evil).unwrap();
    let top = vm.join("top.qcow2");
    qemu_img_create_overlay(&top, "guest.raw", "raw", &[], "1M");
    drop_backing_format(&top);
    (top, guest, secret)
}

#[test]
fn a_raw_guest_holding_a_qcow2_header_is_never_followed_by_default() {
    if !require_tool("qemu-img") {
        return;
    }
    let d = tmpdir();
    let (top, guest, secret) = malicious_chain(d.path());
    let vm = top.parent().unwrap().to_path_buf();
    let guard = BaseGuard::new(&[&top, &guest, &secret]);
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let ov = out.join("ov.qcow2");
    let manifest = out.join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[image]]\nbase = \"{}\"\noutput = \"b.qcow2\"\nrecipe = \"empty\"\n",
            top.display()
        ),
    )
    .unwrap();
    let links = out.join("links");

    // Every command that opens images refuses, names the image and the
    // backing name, says how to record the format or allow probing, and
    // never names (so never reached) the host file.
    let want = [
        "top.qcow2",
        "'guest.raw'",
        "without recording its format",
        &format!("qemu-img rebase -u -F FMT -b guest.raw {}", top.display()),
        "--probe-backing",
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["info", s(&top)],
        vec!["info", "--json", s(&top)],
        vec!["map", s(&top)],
        vec!["inspect", s(&top)],
        vec!["export", s(&top), "-o", s(&ov)],
        vec![
            "inject",
            "zero",
            s(&top),
            "--offset",
            "0",
            "--length",
            "512",
            "-o",
            s(&ov),
        ],
        vec!["chain", s(&top), "-o", s(&links), "--depth", "2"],
        vec!["batch", s(&manifest)],
    ];
    for args in &commands {
        let err = refused(args, &want);
        assert!(!err.contains("secret"), "{args:?}: {err}");
    }
    assert!(!ov.exists() && !links.exists() && !out.join("b.qcow2").exists());

    // The top named by the user is what the user says: `-f raw` reads the
    // guest as raw, whatever header it holds, and follows nothing.
    let info = qfault_ok(["info", "--json", "-f", "raw", s(&guest)]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["chain"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["chain"][0]["format"], "raw", "{v}");
    assert_eq!(
        export(&["-f", "raw"], &guest, d.path()),
        std::fs::read(&guest).unwrap()
    );

    // Recording the format, as the message says, makes the chain safe: the
    // guest is raw, its header is guest data, the host file is not read.
    let fixed = vm.join("fixed.qcow2");
    std::fs::copy(&top, &fixed).unwrap();
    qemu_img(["rebase", "-u", "-F", "raw", "-b", "guest.raw", s(&fixed)]);
    let bytes = export(&[], &fixed, d.path());
    assert_eq!(bytes, std::fs::read(&guest).unwrap());
    assert!(!contains(&bytes, SECRET));
    assert_eq!(bytes, qemu_raw_bytes(&fixed));
    // The same with the chain confined to vm/.
    assert_eq!(export(&["--backing-root", s(&vm)], &fixed, d.path()), bytes);

    // --probe-backing restores probing and with it the hole, on purpose:
    // the guest reads as qcow2 and the host file is followed (QEMU's
    // `qemu-img convert` does the same).
    let info = qfault_ok(["info", "--json", "--probe-backing", s(&top)]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 3, "{v}");
    assert_eq!(chain[1]["format"], "qcow2", "{v}");
    assert_eq!(chain[2]["path"], s(&secret), "{v}");
    let bytes = export(&["--probe-backing"], &top, d.path());
    assert!(contains(&bytes, SECRET));
    assert_eq!(bytes, qemu_raw_bytes(&top));
    // ... unless --backing-root keeps the chain inside vm/.
    for cmd in [
        vec!["info", "--probe-backing", "--backing-root", s(&vm), s(&top)],
        vec![
            "export",
            "--probe-backing",
            "--backing-root",
            s(&vm),
            s(&top),
            "-o",
            s(&ov),
        ],
    ] {
        refused(
            &cmd,
            &[
                "guest.raw",
                s(&secret),
                "outside the backing root",
                s(&vm.canonicalize().unwrap()),
            ],
        );
    }
    // batch and chain take --probe-backing too.
    qfault_ok(["batch", "--probe-backing", s(&manifest)]);
    assert!(out.join("b.qcow2").exists());
    qfault_ok([
        "chain",
        "--probe-backing",
        s(&top),
        "-o",
        s(&links),
        "--depth",
        "2",
    ]);
    assert!(links.join("link-0002.qcow2").exists());
    guard.assert_unchanged();
}

/// root/ holds the images; outside/ a file they must not reach.
struct Escapes {
    root: PathBuf,
    outside: PathBuf,
    /// Images whose backing file lies outside root/, one way or another.
    escaping: Vec<PathBuf>,
}

fn escapes(d: &Path) -> Escapes {
    let root = d.join("root");
    let outside = d.join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let base = outside.join("base.raw");
    std::fs::write(&base, SECRET.repeat(1024)).unwrap();
    let mk = |name: &str, backing: &OsStr, fmt: &str| {
        let p = root.join(name);
        qemu_img_create_overlay(&p, backing, fmt, &["-u"], "1M");
        p
    };
    // A plain `../` escape, one hidden behind sub/.., an absolute path.
    let dotdot = mk("dotdot.qcow2", OsStr::new("../outside/base.raw"), "raw");
    let subdot = mk(
        "subdot.qcow2",
        OsStr::new("sub/../../outside/base.raw"),
        "raw",
    );
    let abs = mk("abs.qcow2", base.as_os_str(), "raw");
    // A symlinked file and a symlinked directory inside root/.
    std::os::unix::fs::symlink("../outside/base.raw", root.join("link.raw")).unwrap();
    let link = mk("vialink.qcow2", OsStr::new("link.raw"), "raw");
    std::os::unix::fs::symlink(&outside, root.join("sub/door")).unwrap();
    let door = mk("viadoor.qcow2", OsStr::new("sub/door/base.raw"), "raw");
    // The escape two links down: top -> mid (inside) -> ../outside.
    let mid_name = "sub/mid.qcow2";
    let mid = root.join(mid_name);
    qemu_img_create_overlay(&mid, "../../outside/base.raw", "raw", &["-u"], "1M");
    let deep = mk("deep.qcow2", OsStr::new(mid_name), "qcow2");
    Escapes {
        root,
        outside,
        escaping: vec![dotdot, subdot, abs, link, door, deep],
    }
}

#[test]
fn confinement_refuses_dotdot_and_symlink_escapes() {
    if !require_tool("qemu-img") {
        return;
    }
    let d = tmpdir();
    let e = escapes(d.path());
    let base = e.outside.join("base.raw");
    let guard = BaseGuard::new(&[&base]);
    let canon_base = base.canonicalize().unwrap();
    // The root may itself be spelt with a symlink and `..`.
    std::os::unix::fs::symlink(&e.root, d.path().join("root-link")).unwrap();
    let root_spellings = [
        e.root.clone(),
        d.path().join("root-link"),
        e.root.join("sub/.."),
    ];
    let out = d.path().join("out.raw");
    for img in &e.escaping {
        // Without confinement each opens (recorded formats, plain files).
        let bytes = export(&[], img, d.path());
        assert!(contains(&bytes, SECRET), "{}", img.display());
        for root in &root_spellings {
            let err = refused(
                &["export", "--backing-root", s(root), s(img), "-o", s(&out)],
                &["outside the backing root", s(&canon_base)],
            );
            // The message names the image that holds the escaping name.
            let holder = if img.ends_with("deep.qcow2") {
                "mid.qcow2"
            } else {
                img.file_name().unwrap().to_str().unwrap()
            };
            assert!(err.contains(holder), "{err}");
        }
    }
    assert!(!out.exists());
    // The library gives the same answer.
    let opts = qfault::image::OpenOptions {
        backing: qfault::image::BackingPolicy {
            probe: false,
            root: Some(e.root.clone()),
        },
        ..Default::default()
    };
    for img in &e.escaping {
        let err = qfault::image::open(img, &opts).unwrap_err();
        assert_eq!(err.kind(), qfault::error::ErrorKind::Refused, "{err}");
    }
    // A root that does not exist is a usage error, not a silent pass.
    qfault_expect(
        [
            "info",
            "--backing-root",
            s(&d.path().join("nowhere")),
            s(&e.escaping[0]),
        ],
        2,
    );
    guard.assert_unchanged();
}

#[test]
fn a_legitimate_chain_across_directories_still_opens() {
    if !require_tool("qemu-img") {
        return;
    }
    let d = tmpdir();
    let dir = |n: &str| {
        let p = d.path().join("images").join(n);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let (bd, md, td) = (dir("base"), dir("mid"), dir("top"));
    let base = bd.join("base.raw");
    std::fs::write(&base, pattern(2 * M as usize, 7)).unwrap();
    let mid = md.join("mid.qcow2");
    qemu_img_create_overlay(&mid, "../base/base.raw", "raw", &[], "2M");
    qemu_io_write_pattern("qcow2", &mid, 65536, 4096, 8);
    // Named through a symlink that stays inside the tree.
    std::os::unix::fs::symlink("../mid/mid.qcow2", td.join("mid-link.qcow2")).unwrap();
    let top = td.join("top.qcow2");
    qemu_img_create_overlay(&top, "mid-link.qcow2", "qcow2", &[], "2M");
    qemu_io_write_pattern("qcow2", &top, 3 * 65536 + 512, 1000, 9);
    let guard = BaseGuard::new(&[&base, &mid, &top]);
    let want = qemu_raw_bytes(&top);
    let images = d.path().join("images");
    assert_eq!(export(&[], &top, d.path()), want);
    assert_eq!(
        export(&["--backing-root", s(&images)], &top, d.path()),
        want
    );
    // A root covering only the top's directory refuses the first step out.
    refused(
        &["info", "--backing-root", s(&td), s(&top)],
        &["mid-link.qcow2", "outside the backing root"],
    );
    // The top itself is named by the user and not checked against the root:
    // an image outside the root may still name files inside it.
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let ov = out.join("ov.qcow2");
    qfault_ok([
        "inject",
        "zero",
        "--backing-root",
        s(&images),
        s(&top),
        "--offset",
        "64K",
        "--length",
        "4K",
        "-o",
        s(&ov),
    ]);
    // ov.qcow2 lies outside images/ and names top.qcow2 inside it.
    let info = qfault_ok(["info", "--json", "--backing-root", s(&images), s(&ov)]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["chain"].as_array().map(Vec::len), Some(4), "{v}");
    qfault_ok(["verify", "--backing-root", s(&images), s(&ov)]);
    assert_qemu_img_check_clean(&ov);
    let links = out.join("links");
    qfault_ok([
        "chain",
        "--backing-root",
        s(&images),
        s(&top),
        "-o",
        s(&links),
        "--depth",
        "3",
    ]);
    let manifest = out.join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[image]]\nbase = \"{}\"\noutput = \"b.qcow2\"\nrecipe = \"empty\"\n",
            top.display()
        ),
    )
    .unwrap();
    qfault_ok(["batch", "--backing-root", s(&images), s(&manifest)]);
    assert_eq!(qemu_raw_bytes(&out.join("b.qcow2")), want);
    // A batch confined to top/ alone refuses the base's chain.
    refused(
        &["batch", "--backing-root", s(&td), s(&manifest)],
        &["outside the backing root"],
    );
    guard.assert_unchanged();
}

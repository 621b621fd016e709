//! Acceptance tests of issue 3 (the qcow2 reader), second-implementation part:
//! reads through qcow2-rs (an independent pure-Rust qcow2 reader, driven
//! synchronously with its `Qcow2IoSync` backend and `futures_lite::block_on`)
//! must agree with `qfault::image::open(...).read_at(...)` on random ranges,
//! wherever qcow2-rs supports the image. Both are also checked against
//! `qemu-img convert -O raw`, so a disagreement says who is wrong.
//!
//! What qcow2-rs 0.1.6 supports, as established by reading its source
//! (meta.rs `Qcow2Header::from_buf`, dev.rs, utils.rs) and pinned by
//! `qcow2rs_support_matches_its_documented_limits` below:
//! - Cross-checked here: qcow2 version 3 with cluster sizes 512 B to 2 MiB
//!   (below 4 KiB only with 512-byte L2/refcount cache slices: its default
//!   4 KiB slices make `Qcow2Info::new` panic on a subtraction overflow),
//!   zero clusters and discards, zlib-compressed clusters, internal snapshots
//!   (the active L1 is read), a bitmap extension, version 2 images without
//!   header extensions, and chains of qcow2 images of equal size named by
//!   absolute paths.
//! - Refused (pinned): zstd (incompatible bit 3) and extended L2 (bit 4),
//!   "Unrecognized incompatible feature(s)"; a version 2 image with header
//!   extensions (e.g. a backing format): it always decodes a 104-byte v3
//!   header, so it reads the extensions as v3 fields; raw backing files (it
//!   opens every backing file as qcow2: "Not a qcow2 file").
//! - Not usable as an oracle: relative backing names (resolved against the
//!   working directory, not the image's directory), and reads past the end of
//!   a backing file smaller than its overlay (it returns the buffer unfilled
//!   instead of zeros), and any range not aligned to 512 bytes.
//!
//! Its setup calls `unwrap()`/`expect()` on failures, so support is probed
//! under `catch_unwind`. The matrix in reader_matrix.rs covers everything
//! qcow2-rs cannot, against qemu-img.

mod common;

use common::*;
use futures_lite::future::block_on;
use qcow2_rs::dev::{Qcow2Dev, Qcow2DevParams};
use qcow2_rs::helpers::Qcow2IoBuf;
use qcow2_rs::sync_io::Qcow2IoSync;
use qcow2_rs::utils::qcow2_setup_dev_sync;
use qfault::image::{OpenOptions, ReadAt};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const M: u64 = 1024 * 1024;

fn tools() -> bool {
    require_tools(&["qemu-img", "qemu-io"])
}

// ---------------------------------------------------------------------------
// qcow2-rs, synchronously
// ---------------------------------------------------------------------------

/// Opens `path` (and its backing chain) read-only with qcow2-rs; `Err` with a
/// reason when qcow2-rs refuses or panics.
fn qcow2rs_open(path: &Path, small_slices: bool) -> Result<Qcow2Dev<Qcow2IoSync>, String> {
    let path = path.to_path_buf();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(move || {
        let params = if small_slices {
            // Clusters below 4 KiB need caches with 512-byte slices.
            Qcow2DevParams::new(9, Some((9, 64 << 10)), Some((9, 64 << 10)), true, false)
        } else {
            Qcow2DevParams::new(9, None, None, true, false)
        };
        let dev = qcow2_setup_dev_sync(&path, &params).map_err(|e| format!("{e:?}"))?;
        block_on(dev.qcow2_prep_io()).map_err(|e| format!("{e:?}"))?;
        Ok(dev)
    });
    std::panic::set_hook(prev);
    match r {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

fn qcow2rs_read(dev: &Qcow2Dev<Qcow2IoSync>, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = Qcow2IoBuf::<u8>::new(len);
    buf.fill(0xee); // so a read that does not fill the buffer is noticed
    let n = block_on(dev.read_at(&mut buf, offset))
        .unwrap_or_else(|e| panic!("qcow2-rs read {offset}+{len}: {e:?}"));
    assert_eq!(n, len, "qcow2-rs short read at {offset}+{len}");
    buf.to_vec()
}

// ---------------------------------------------------------------------------
// Fixtures (absolute backing names; qcow2 backing files only)
// ---------------------------------------------------------------------------

fn raw_image(path: &Path, size: u64, regions: &[(u64, u64)], salt: u64) {
    sparse_file(path, size);
    for &(off, len) in regions {
        write_at(path, off, &pattern(len as usize, off ^ salt));
    }
}

/// A v3 qcow2 with data, holes, overwrites, zero clusters and discards.
fn plain(dir: &Path, name: &str, size: u64, opts: &str) -> PathBuf {
    let raw = dir.join(format!("{name}.src"));
    raw_image(
        &raw,
        size,
        &[(0, 70_000), (size / 3, size / 4), (size - 5000, 5000)],
        size,
    );
    let img = dir.join(name);
    if opts.is_empty() {
        qemu_img_to_qcow2(&raw, &img, &[]);
    } else {
        qemu_img_to_qcow2(&raw, &img, &["-o", opts]);
    }
    qemu_io_write_pattern("qcow2", &img, size / 2 + 4096, 100_000, 3);
    qemu_io(
        "qcow2",
        &img,
        &[
            &format!("write -z {} 65536", size / 3 + 65536),
            &format!("discard {} 131072", size / 3 + 4 * 65536),
        ],
    );
    img
}

fn compressed(dir: &Path, name: &str, ctype: &str) -> PathBuf {
    compressed_cs(dir, name, ctype, 65536)
}

fn compressed_cs(dir: &Path, name: &str, ctype: &str, cs: u64) -> PathBuf {
    let raw = dir.join(format!("{name}.src"));
    sparse_file(&raw, 2 * M);
    let text: Vec<u8> = (0..M as usize)
        .map(|i| b"compressible qfault text\n"[i % 25])
        .collect();
    write_at(&raw, 0, &text);
    write_at(&raw, M + 100_000, &pattern(200_000, 5));
    let img = dir.join(name);
    qemu_img_to_qcow2(
        &raw,
        &img,
        &[
            "-c",
            "-o",
            &format!("compression_type={ctype},cluster_size={cs}"),
        ],
    );
    img
}

fn with_snapshots(dir: &Path) -> PathBuf {
    let img = plain(dir, "snap.qcow2", 2 * M, "");
    qemu_img([
        OsStr::new("snapshot"),
        OsStr::new("-c"),
        OsStr::new("s1"),
        img.as_os_str(),
    ]);
    qemu_io_write_pattern("qcow2", &img, 10_000, 300_000, 6);
    qemu_io("qcow2", &img, &["write -z 1048576 65536"]);
    img
}

fn with_bitmap(dir: &Path) -> PathBuf {
    let img = plain(dir, "bitmap.qcow2", 2 * M, "");
    qemu_img([
        OsStr::new("bitmap"),
        OsStr::new("--add"),
        img.as_os_str(),
        OsStr::new("b0"),
    ]);
    qemu_io_write_pattern("qcow2", &img, 700_000, 50_000, 7);
    img
}

/// qcow2 <- qcow2 <- qcow2, absolute names; the top is larger than the base.
fn qcow2_chain(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let base = plain(dir, "chain-base.qcow2", 2 * M, "cluster_size=4096");
    let mid = dir.join("chain-mid.qcow2");
    let top = dir.join("chain-top.qcow2");
    for (img, backing, size) in [(&mid, &base, "2M"), (&top, &mid, "2M")] {
        qemu_img_create_overlay(img, backing, "qcow2", &[], size);
    }
    qemu_io_write_pattern("qcow2", &mid, 30_000, 200_000, 8);
    qemu_io("qcow2", &mid, &["write -z 1048576 131072"]);
    qemu_io_write_pattern("qcow2", &top, 150_000, 100_000, 9);
    qemu_io_write_pattern("qcow2", &top, 2 * M - 4096, 4096, 10);
    qemu_io("qcow2", &top, &["discard 65536 65536"]);
    (top.clone(), vec![top, mid, base])
}

// ---------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------

/// Deterministic ranges: every cluster boundary region plus random ones,
/// 512-aligned (qcow2-rs cannot read anything else).
fn ranges(size: u64, count: usize, seed: u64) -> Vec<(u64, usize)> {
    let sectors = size / 512;
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut v = vec![(0, 512), ((sectors - 1) * 512, 512)];
    for _ in 0..count {
        let start = next() % sectors;
        let max = (sectors - start).min(512); // up to 256 KiB
        let n = 1 + next() % max;
        v.push((start * 512, (n * 512) as usize));
    }
    v
}

/// Reads random ranges through qcow2-rs and through qfault and compares them
/// (and both with qemu-img's flat image).
fn compare_with_qcow2rs(img: &Path, chain: &[PathBuf]) {
    let cluster_size = qfault::image::open(img, &OpenOptions::default())
        .ok()
        .and_then(|i| i.chain_info()[0].cluster_size)
        .unwrap_or(65536);
    let guard = BaseGuard::new(chain);
    let flat = qemu_raw_bytes(img);
    let dev = qcow2rs_open(img, cluster_size < 4096)
        .unwrap_or_else(|e| panic!("qcow2-rs must support {}: {e}", img.display()));
    let mut ours = qfault::image::open(img, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("qfault opens {}: {e}", img.display()));
    assert_eq!(ours.size(), flat.len() as u64, "qfault guest size");
    // qcow2-rs reads whole 512-byte sectors; sizes here are multiples of 512.
    assert_eq!(flat.len() % 512, 0);
    for (off, len) in ranges(ours.size(), 120, ours.size() ^ 0x5eed) {
        let theirs = qcow2rs_read(&dev, off, len);
        let mut mine = vec![0u8; len];
        ours.read_at(off, &mut mine)
            .unwrap_or_else(|e| panic!("qfault read {off}+{len}: {e}"));
        let want = &flat[off as usize..off as usize + len];
        let q_ok = theirs == want;
        let m_ok = mine == want;
        assert!(
            q_ok && m_ok,
            "{}: range {off}+{len}: qfault {} qemu, qcow2-rs {} qemu, qfault {} qcow2-rs",
            img.display(),
            if m_ok { "==" } else { "!=" },
            if q_ok { "==" } else { "!=" },
            if mine == theirs { "==" } else { "!=" },
        );
    }
    // The whole disk in one read each (multi-cluster paths).
    let n = flat.len();
    assert!(qcow2rs_read(&dev, 0, n) == flat, "qcow2-rs whole-disk read");
    let mut all = vec![0u8; n];
    ours.read_at(0, &mut all).unwrap();
    assert!(all == flat, "qfault whole-disk read");
    // Unaligned ranges through qfault only (qcow2-rs cannot).
    for (off, len) in ranges(ours.size(), 100, 77) {
        let off = (off + 7).min(ours.size() - 1);
        let len = len
            .min((ours.size() - off) as usize)
            .saturating_sub(3)
            .max(1);
        let mut b = vec![0u8; len];
        ours.read_at(off, &mut b).unwrap();
        assert!(
            b[..] == flat[off as usize..off as usize + len],
            "{}: qfault unaligned read {off}+{len}",
            img.display()
        );
    }
    guard.assert_unchanged();
}

#[test]
fn qcow2rs_agrees_on_plain_v3_images() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for (name, size, opts) in [
        ("c64k.qcow2", 4 * M, ""),
        ("c4k.qcow2", 3 * M, "cluster_size=4096"),
        ("c2m.qcow2", 10 * M, "cluster_size=2M"),
        ("c512.qcow2", M, "cluster_size=512"),
        ("c2k.qcow2", 2 * M, "cluster_size=2048"),
        ("v2.qcow2", 2 * M, "compat=0.10"),
    ] {
        let img = plain(d.path(), name, size, opts);
        compare_with_qcow2rs(&img, std::slice::from_ref(&img));
    }
}

#[test]
fn qcow2rs_agrees_on_zlib_compressed() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for cs in [512, 4096, 65536] {
        let img = compressed_cs(d.path(), &format!("zlib-{cs}.qcow2"), "zlib", cs);
        compare_with_qcow2rs(&img, std::slice::from_ref(&img));
    }
}

#[test]
fn qcow2rs_agrees_on_snapshots_and_bitmaps() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = with_snapshots(d.path());
    compare_with_qcow2rs(&img, std::slice::from_ref(&img));
    let img = with_bitmap(d.path());
    compare_with_qcow2rs(&img, std::slice::from_ref(&img));
}

#[test]
fn qcow2rs_agrees_on_qcow2_chain() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let (top, chain) = qcow2_chain(d.path());
    compare_with_qcow2rs(&top, &chain);
}

/// A version 2 overlay: its backing-format header extension starts at byte
/// 72, where qcow2-rs expects version 3 feature bits.
fn v2_over_qcow2(dir: &Path) -> PathBuf {
    let base = plain(dir, "v2-base.qcow2", M, "");
    let top = dir.join("v2-top.qcow2");
    qemu_img_create_overlay(&top, base, "qcow2", &["-o", "compat=0.10"], "1M");
    qemu_io_write_pattern("qcow2", &top, 4096, 8192, 12);
    top
}

/// Pins the support list in the module comment: if a qcow2-rs update starts
/// supporting one of these, this fails and the cross-check should grow.
#[test]
fn qcow2rs_support_matches_its_documented_limits() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let unsupported = [
        compressed(d.path(), "zstd.qcow2", "zstd"),
        plain(d.path(), "extl2.qcow2", 2 * M, "extended_l2=on"),
        v2_over_qcow2(d.path()),
    ];
    for img in &unsupported {
        let guard = BaseGuard::new(&[img]);
        match qcow2rs_open(img, false) {
            Ok(_) => panic!(
                "qcow2-rs now opens {}: add it to the cross-check",
                img.display()
            ),
            Err(e) => eprintln!("qcow2-rs refuses {}: {e}", img.display()),
        }
        // qfault reads it, and agrees with qemu.
        let mut ours = qfault::image::open(img, &OpenOptions::default()).unwrap();
        let mut all = vec![0u8; ours.size() as usize];
        ours.read_at(0, &mut all).unwrap();
        assert!(all == qemu_raw_bytes(img), "{}", img.display());
        guard.assert_unchanged();
    }
    // Raw backing file: qcow2-rs opens it as qcow2 and fails.
    let base = d.path().join("base.raw");
    raw_image(&base, M, &[(0, M)], 11);
    let top = d.path().join("over-raw.qcow2");
    qemu_img_create_overlay(&top, &base, "raw", &[], "1M");
    match qcow2rs_open(&top, false) {
        Ok(_) => panic!("qcow2-rs now reads raw backing files"),
        Err(e) => eprintln!("qcow2-rs refuses a raw backing file: {e}"),
    }
}

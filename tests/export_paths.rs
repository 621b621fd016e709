//! `qfault export`'s ways of moving bytes (issue 16, goal 5): data stored
//! uncompressed in raw and qcow2 files is copied by the kernel
//! (`copy_file_range`), compressed clusters are inflated by worker threads,
//! and the rest is read through the chain. Each way, and chains mixing them
//! (upper images overriding part of a lower image's run, sub-clusters,
//! zeros over data), must give exactly what `qemu-img convert -O raw`
//! gives; `-v` says which way each byte went, so each test also checks the
//! way it means to cover was taken.

mod common;

use common::*;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const K: u64 = 1024;
const M: u64 = 1024 * 1024;

fn tools() -> bool {
    require_tools(&["qemu-img", "qemu-io"])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bytes done per way, from the `-v` line of `qfault export`.
#[derive(Debug)]
struct Ways {
    copied: u64,
    inflated: u64,
    read: u64,
}

/// Exports `img` with `extra` options, asserts the output equals
/// `qemu-img convert -O raw`, and returns the ways taken and the output's
/// allocated bytes. The chain's files must not change.
fn export_matches(img: &Path, chain: &[&Path], extra: &[&str]) -> (Ways, u64) {
    let guard = BaseGuard::new(chain);
    let dir = tmpdir();
    let out = dir.path().join("flat.raw");
    let mut args = vec!["-v", "export", s(img), "-o", s(&out)];
    args.extend(extra);
    let o = qfault_expect(args, 0);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let line = err
        .lines()
        .find(|l| l.contains("copied by the kernel"))
        .unwrap_or_else(|| panic!("no summary line in -v output:\n{err}"));
    let num = |after: &str| -> u64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words
            .iter()
            .position(|w| w.trim_end_matches(',') == after)
            .unwrap_or_else(|| panic!("no '{after}' in {line}"));
        words[i - 1].parse().unwrap()
    };
    let ways = Ways {
        copied: {
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "bytes").unwrap();
            words[i - 1].parse().unwrap()
        },
        inflated: num("inflated"),
        read: num("read"),
    };
    let got = std::fs::read(&out).unwrap();
    let want = qemu_raw_bytes(img);
    assert_eq!(got.len(), want.len(), "{}: sizes differ", img.display());
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "{}: export differs from qemu-img convert at byte {i} (0x{i:x}); ways {ways:?}",
            img.display()
        );
    }
    let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
    guard.assert_unchanged();
    (ways, allocated)
}

/// A raw file of `size` bytes: pseudo-random data in `regions`, holes elsewhere.
fn raw_with(path: &Path, size: u64, regions: &[(u64, u64)], salt: u64) {
    sparse_file(path, size);
    for &(off, len) in regions {
        write_at(path, off, &pattern(len as usize, off ^ salt));
    }
}

/// Compressible, non-zero bytes.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut n = seed;
    while v.len() < len {
        v.extend_from_slice(format!("export line {n:08} qrstuvwxyz\n").as_bytes());
        n += 1;
    }
    v.truncate(len);
    v
}

#[test]
fn raw_file_is_copied_by_the_kernel_and_its_holes_stay_holes() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("base.raw");
    // Unaligned ends, data runs longer than one request (8 MiB), and a
    // size that is not a multiple of 512 (the tail reads as zeros).
    raw_with(
        &raw,
        40 * M + 300,
        &[(4096 + 512, 3 * M), (10 * M, 20 * M + 777), (40 * M, 300)],
        1,
    );
    let (ways, allocated) = export_matches(&raw, &[&raw], &["-f", "raw"]);
    assert!(ways.copied > 23 * M, "{ways:?}");
    assert_eq!((ways.inflated, ways.read), (0, 0), "{ways:?}");
    assert!(
        allocated < 26 * M,
        "holes filled: {allocated} bytes allocated"
    );
    // --no-sync writes the same bytes.
    let (ways, _) = export_matches(&raw, &[&raw], &["-f", "raw", "--no-sync"]);
    assert!(ways.copied > 23 * M, "{ways:?}");
}

#[test]
fn uncompressed_qcow2_is_copied_by_the_kernel() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_with(&raw, 64 * M, &[(M, 9 * M), (30 * M + 64 * K, 5 * M)], 2);
    for (name, opts) in [
        ("plain.qcow2", "cluster_size=65536"),
        ("small.qcow2", "cluster_size=4096"),
        ("big.qcow2", "cluster_size=2097152"),
        ("v2.qcow2", "compat=0.10"),
    ] {
        let img = d.path().join(name);
        qemu_img_to_qcow2(&raw, &img, &["-o", opts]);
        let (ways, _) = export_matches(&img, &[&img], &[]);
        assert!(ways.copied >= 14 * M, "{name}: {ways:?}");
        assert_eq!((ways.inflated, ways.read), (0, 0), "{name}: {ways:?}");
    }
}

#[test]
fn chain_overrides_parts_of_lower_runs() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    raw_with(&base, 32 * M, &[(0, 24 * M)], 3);
    let mid = d.path().join("mid.qcow2");
    qemu_img_create_overlay(&mid, "base.raw", "raw", &[], "32M");
    // Inside the base's run: whole clusters, an unaligned piece, zeros
    // written over data, a discard, and data past the base's data.
    qemu_io_write_pattern("qcow2", &mid, 2 * M, 64 * K, 31);
    qemu_io_write_pattern("qcow2", &mid, 5 * M + 512, 3 * 512, 32);
    qemu_io_write_pattern("qcow2", &mid, 26 * M, M, 33);
    qemu_io(
        "qcow2",
        &mid,
        &["write -z 8M 1M", "write -z -u 12M 256k", "discard 16M 64k"],
    );
    let top = d.path().join("top.qcow2");
    qemu_img_create_overlay(&top, "mid.qcow2", "qcow2", &[], "32M");
    qemu_io_write_pattern("qcow2", &top, 2 * M + 32 * K, 64 * K, 34);
    qemu_io_write_pattern("qcow2", &top, 20 * M, 3 * M, 35);
    qemu_io("qcow2", &top, &["write -z 26M 4k"]);
    let (ways, _) = export_matches(&top, &[&base, &mid, &top], &[]);
    assert!(ways.copied > 20 * M, "{ways:?}");
    assert_eq!((ways.inflated, ways.read), (0, 0), "{ways:?}");
    // A partition-like window not starting at 0: exports of sub-ranges go
    // the same ways (the CLI reaches them through --partition).
    let (ways, _) = export_matches(&mid, &[&base, &mid], &[]);
    assert!(ways.copied > 20 * M, "{ways:?}");
}

#[test]
fn extended_l2_subclusters_over_a_backing_file() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.qcow2");
    let raw = d.path().join("src.raw");
    raw_with(&raw, 16 * M, &[(0, 12 * M)], 4);
    qemu_img_to_qcow2(&raw, &base, &["-o", "extended_l2=on,cluster_size=131072"]);
    let top = d.path().join("top.qcow2");
    qemu_img_create_overlay(
        &top,
        "base.qcow2",
        "qcow2",
        &["-o", "extended_l2=on,cluster_size=131072"],
        "16M",
    );
    // Sub-clusters are 4 KiB here: single ones, runs, zeros, unaligned.
    qemu_io_write_pattern("qcow2", &top, 4096, 4096, 41);
    qemu_io_write_pattern("qcow2", &top, 3 * M + 8192, 5 * 4096, 42);
    qemu_io_write_pattern("qcow2", &top, 6 * M + 100, 1000, 43);
    qemu_io("qcow2", &top, &["write -z 7M 12k", "write -z 14M 4k"]);
    let (ways, _) = export_matches(&top, &[&base, &top], &[]);
    assert!(ways.copied > 11 * M, "{ways:?}");
    assert_eq!((ways.inflated, ways.read), (0, 0), "{ways:?}");
}

#[test]
fn compressed_clusters_are_inflated_by_the_workers() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    sparse_file(&raw, 24 * M);
    // Compressible text (compressed clusters), random data (stored
    // uncompressed by qemu-img: copied), zeros between.
    write_at(&raw, 0, &text(5 * M as usize + 4096, 1));
    write_at(&raw, 6 * M, &pattern(2 * M as usize, 5));
    write_at(&raw, 9 * M, &text(7 * M as usize, 2));
    for kind in ["zlib", "zstd"] {
        let img = d.path().join(format!("{kind}.qcow2"));
        qemu_img_to_qcow2(
            &raw,
            &img,
            &["-c", "-o", &format!("compression_type={kind}")],
        );
        let (ways, _) = export_matches(&img, &[&img], &[]);
        assert!(ways.inflated >= 12 * M, "{kind}: {ways:?}");
        assert!(ways.copied >= 2 * M, "{kind}: {ways:?}");
        assert_eq!(ways.read, 0, "{kind}: {ways:?}");
        // An overlay writing into compressed clusters: the inflated
        // clusters are cut around it.
        let top = d.path().join(format!("{kind}-top.qcow2"));
        qemu_img_create_overlay(&top, format!("{kind}.qcow2"), "qcow2", &[], "24M");
        qemu_io_write_pattern("qcow2", &top, 64 * K + 512, 4096, 51);
        qemu_io_write_pattern("qcow2", &top, 10 * M, 96 * K, 52);
        let (ways, _) = export_matches(&top, &[&img, &top], &[]);
        assert!(ways.inflated >= 11 * M, "{kind} chain: {ways:?}");
    }
}

#[test]
fn data_clusters_in_host_file_holes_stay_holes() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = d.path().join("prealloc.qcow2");
    // preallocation=metadata maps every cluster to a hole of the file.
    qemu_img([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "preallocation=metadata",
        s(&img),
        "64M",
    ]);
    qemu_io_write_pattern("qcow2", &img, 3 * M, M, 61);
    let (ways, allocated) = export_matches(&img, &[&img], &[]);
    assert!(ways.copied >= 63 * M, "{ways:?}");
    assert!(
        allocated < 4 * M,
        "holes of the qcow2 file became data: {allocated} bytes allocated"
    );
}

#[test]
fn other_formats_are_read_through_the_chain() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_with(&raw, 16 * M, &[(M, 3 * M), (9 * M, 64 * K)], 7);
    let vdi = d.path().join("disk.vdi");
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-f"),
        OsStr::new("raw"),
        OsStr::new("-O"),
        OsStr::new("vdi"),
        raw.as_os_str(),
        vdi.as_os_str(),
    ]);
    let (ways, _) = export_matches(&vdi, &[&vdi], &[]);
    assert!(ways.read >= 3 * M, "{ways:?}");
    assert_eq!(ways.copied, 0, "{ways:?}");
}

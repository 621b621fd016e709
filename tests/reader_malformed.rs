//! Acceptance tests of issue 3 (the qcow2 reader), malformed-image part.
//!
//! Each case starts from a valid image made by the real `qemu-img` and
//! patches big-endian fields at the offsets of `docs/interop/qcow2.txt`
//! (header: version 4, backing_file_offset 8, cluster_bits 20, size 24,
//! crypt_method 32, l1_size 36, l1_table_offset 40, refcount_table_offset 48,
//! incompatible_features 72). `qfault export` must then fail with exit code 1,
//! one stderr line `qfault: error: ...` naming the specific problem, no panic,
//! and no output file (nor a temporary one) left behind. The patched file
//! itself must not be written.
//!
//! The expected phrases were agreed by reading the reader's messages
//! (src/image/qcow2/header.rs, qcow2/mod.rs, compressed.rs, backing.rs, chain.rs).

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const M: u64 = 1024 * 1024;

fn tools() -> bool {
    require_tools(&["qemu-img", "qemu-io"])
}

// ---------------------------------------------------------------------------
// Patching helpers
// ---------------------------------------------------------------------------

fn read_be64(path: &Path, off: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_be_bytes(b)
}

fn put_be64(path: &Path, off: u64, v: u64) {
    write_at(path, off, &v.to_be_bytes());
}

fn put_be32(path: &Path, off: u64, v: u32) {
    write_at(path, off, &v.to_be_bytes());
}

/// Header field offsets (docs/interop/qcow2.txt, "Header").
mod hdr {
    pub const VERSION: u64 = 4;
    pub const CLUSTER_BITS: u64 = 20;
    pub const CRYPT_METHOD: u64 = 32;
    pub const L1_SIZE: u64 = 36;
    pub const L1_TABLE_OFFSET: u64 = 40;
    pub const REFCOUNT_TABLE_OFFSET: u64 = 48;
    pub const REFCOUNT_TABLE_CLUSTERS: u64 = 56;
    pub const INCOMPATIBLE_FEATURES: u64 = 72;
    pub const HEADER_LENGTH: u64 = 100;
    pub const SIZE: u64 = 24;
    pub const BACKING_FILE_SIZE: u64 = 16;
}

/// Bits 9-55 of an L1 or standard L2 entry.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;

/// A valid 1 MiB qcow2 (64 KiB clusters) with data in its first clusters,
/// made by qemu-img; returns its path. `extra` goes to `qemu-img convert`.
fn valid_qcow2(dir: &Path, name: &str, extra: &[&str], text: bool) -> PathBuf {
    let raw = dir.join(format!("{name}.src"));
    sparse_file(&raw, M);
    let data = if text {
        (0..300_000u32)
            .map(|i| b"qfault compressible line\n"[(i % 25) as usize])
            .collect()
    } else {
        pattern(300_000, 1)
    };
    write_at(&raw, 0, &data);
    let img = dir.join(name);
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("convert"),
        OsStr::new("-f"),
        OsStr::new("raw"),
        OsStr::new("-O"),
        OsStr::new("qcow2"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(raw.as_os_str());
    args.push(img.as_os_str());
    qemu_img(args);
    std::fs::remove_file(&raw).unwrap();
    assert_qemu_img_check_clean(&img);
    img
}

/// L1 entry `i` of `img`: (file offset of the entry, its value).
fn l1_entry(img: &Path, i: u64) -> (u64, u64) {
    let at = read_be64(img, hdr::L1_TABLE_OFFSET) + 8 * i;
    (at, read_be64(img, at))
}

/// Standard L2 entry `i` under L1 entry 0: (file offset of the entry, its value).
fn l2_entry(img: &Path, i: u64) -> (u64, u64) {
    let (_, l1) = l1_entry(img, 0);
    let l2 = l1 & OFFSET_MASK;
    assert_ne!(l2, 0, "fixture: L1 entry 0 must be allocated");
    let at = l2 + 8 * i;
    (at, read_be64(img, at))
}

/// The first compressed L2 entry under L1 entry 0.
fn first_compressed_entry(img: &Path, cluster_size: u64) -> (u64, u64) {
    for i in 0..cluster_size / 8 {
        let (at, e) = l2_entry(img, i);
        if e & COMPRESSED != 0 {
            return (at, e);
        }
    }
    panic!("fixture {} has no compressed cluster", img.display());
}

// ---------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------

/// Runs `qfault SUBCOMMAND img [-o out]` and checks the failure contract;
/// every phrase in `expect` must appear in the error line. Returns stderr.
fn expect_failure(sub: &str, img: &Path, expect: &[&str], mem_limit_kib: Option<u64>) -> String {
    let outdir = tmpdir();
    let out = outdir.path().join("guest.raw");
    let mut argv: Vec<&OsStr> = vec![OsStr::new(sub), img.as_os_str()];
    if sub == "export" {
        argv.extend([OsStr::new("-o"), out.as_os_str()]);
    } else {
        argv.push(OsStr::new("--json"));
    }
    let mut c = match mem_limit_kib {
        // A virtual-memory limit makes an attempt to allocate a huge table fail loudly.
        Some(kib) => {
            let script = format!("ulimit -v {kib} && exec \"$0\" \"$@\"");
            let mut c = cmd("sh", ["-c", script.as_str()]);
            c.arg(qfault_bin()).args(&argv);
            c
        }
        None => cmd(qfault_bin(), &argv),
    };
    let o = run_any(&mut c);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let ctx = format!(
        "qfault {sub} {} (status {:?})\nstderr: {stderr}\nstdout: {}",
        img.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!stderr.contains("panicked"), "panic: {ctx}");
    assert_eq!(o.status.code(), Some(1), "exit code: {ctx}");
    assert!(stderr.starts_with("qfault: error: "), "prefix: {ctx}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {ctx}");
    for e in expect {
        assert!(stderr.contains(e), "stderr must contain {e:?}: {ctx}");
    }
    if sub == "export" {
        let left: Vec<_> = std::fs::read_dir(outdir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "files left in the output directory: {left:?}; {ctx}"
        );
    } else if !o.stdout.is_empty() {
        // A chain that breaks below the top: `info` shows the images that
        // opened and the error (issue 18), never a document without it.
        let doc: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {ctx}"));
        assert!(!doc["chain"].as_array().unwrap().is_empty(), "{ctx}");
        assert!(doc["error"]["message"].is_string(), "info's error: {ctx}");
    }
    stderr
}

/// `export` fails as expected and does not write `img` (or `others`).
fn expect_export_error(img: &Path, others: &[&Path], expect: &[&str]) {
    let mut all = vec![img];
    all.extend_from_slice(others);
    let guard = BaseGuard::new(&all);
    expect_failure("export", img, expect, None);
    guard.assert_unchanged();
}

/// `export` and `info` both fail as expected (the chain cannot be opened).
fn expect_open_error(img: &Path, others: &[&Path], expect: &[&str]) {
    let mut all = vec![img];
    all.extend_from_slice(others);
    let guard = BaseGuard::new(&all);
    expect_failure("export", img, expect, None);
    expect_failure("info", img, expect, None);
    guard.assert_unchanged();
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

#[test]
fn truncated_header() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "t.qcow2", &[], false);
    // Shorter than the 72-byte version 2 header.
    let short = d.path().join("short.qcow2");
    std::fs::copy(&img, &short).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(50)
        .unwrap();
    expect_open_error(&short, &[], &["short.qcow2", "truncated header"]);
    // Long enough for version 2, not for version 3's 104 bytes.
    let v3short = d.path().join("v3short.qcow2");
    std::fs::copy(&img, &v3short).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&v3short)
        .unwrap()
        .set_len(100)
        .unwrap();
    expect_open_error(&v3short, &[], &["truncated header", "104"]);
}

#[test]
fn cluster_bits_out_of_range() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for bits in [0u32, 8, 22, 63, 64, 0xffff_ffff] {
        let img = valid_qcow2(d.path(), &format!("cb{bits}.qcow2"), &[], false);
        put_be32(&img, hdr::CLUSTER_BITS, bits);
        expect_open_error(
            &img,
            &[],
            &[&format!("cluster_bits {bits} is out of range")],
        );
    }
}

#[test]
fn unknown_version() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "v4.qcow2", &[], false);
    put_be32(&img, hdr::VERSION, 4);
    expect_open_error(&img, &[], &["version 4"]);
}

#[test]
fn encrypted_image() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for (method, name) in [(1u32, "AES"), (2, "LUKS")] {
        let img = valid_qcow2(d.path(), &format!("enc{method}.qcow2"), &[], false);
        put_be32(&img, hdr::CRYPT_METHOD, method);
        expect_export_error(
            &img,
            &[],
            &[&format!("encrypted image (crypt_method {method}, {name})")],
        );
    }
}

#[test]
fn corrupt_bit() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "corrupt.qcow2", &[], false);
    let f = read_be64(&img, hdr::INCOMPATIBLE_FEATURES);
    put_be64(&img, hdr::INCOMPATIBLE_FEATURES, f | 1 << 1);
    expect_export_error(&img, &[], &["corrupt bit is set"]);
}

#[test]
fn unknown_incompatible_feature() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for bit in [5u32, 63] {
        let img = valid_qcow2(d.path(), &format!("feat{bit}.qcow2"), &[], false);
        let f = read_be64(&img, hdr::INCOMPATIBLE_FEATURES);
        put_be64(&img, hdr::INCOMPATIBLE_FEATURES, f | 1 << bit);
        expect_export_error(
            &img,
            &[],
            &[&format!("unknown incompatible feature bit {bit}")],
        );
    }
}

#[test]
fn external_data_file_bit() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "data-file.qcow2", &[], false);
    let f = read_be64(&img, hdr::INCOMPATIBLE_FEATURES);
    put_be64(&img, hdr::INCOMPATIBLE_FEATURES, f | 1 << 2);
    expect_export_error(&img, &[], &["external data file"]);
}

// ---------------------------------------------------------------------------
// L1 / L2 tables
// ---------------------------------------------------------------------------

#[test]
fn l1_table_past_end_of_file() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "l1eof.qcow2", &[], false);
    let len = std::fs::metadata(&img).unwrap().len();
    put_be64(&img, hdr::L1_TABLE_OFFSET, (len / 65536 + 16) * 65536);
    expect_export_error(&img, &[], &["L1 table at", "past the end of the file"]);
    // Overlapping the end: starts inside the file, ends past it.
    let img2 = valid_qcow2(d.path(), "l1eof2.qcow2", &[], false);
    let len2 = std::fs::metadata(&img2).unwrap().len();
    put_be64(&img2, hdr::L1_TABLE_OFFSET, (len2 - 1) / 65536 * 65536);
    put_be32(&img2, hdr::L1_SIZE, 65536 / 8 + 1);
    expect_export_error(&img2, &[], &["L1 table at", "past the end of the file"]);
}

/// 2^31 L1 entries would be a 16 GiB table: refused before any allocation
/// (the process runs under a 1 GiB address-space limit).
#[test]
fn huge_l1_size_is_refused_without_allocating() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "hugel1.qcow2", &[], false);
    put_be32(&img, hdr::L1_SIZE, 1 << 31);
    let guard = BaseGuard::new(&[&img]);
    for sub in ["export", "info"] {
        expect_failure(
            sub,
            &img,
            &["L1 table of 2147483648 entries", "exceeds"],
            Some(1 << 20),
        );
    }
    guard.assert_unchanged();
}

#[test]
fn unaligned_l2_offset() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "l2unaligned.qcow2", &[], false);
    let (at, e) = l1_entry(&img, 0);
    put_be64(&img, at, e + 512);
    expect_export_error(
        &img,
        &[],
        &["L2 table of L1 entry 0", "is not cluster-aligned"],
    );
}

#[test]
fn l2_table_past_end_of_file() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "l2eof.qcow2", &[], false);
    let (at, e) = l1_entry(&img, 0);
    put_be64(&img, at, (e & !OFFSET_MASK) | (1 << 40));
    expect_export_error(
        &img,
        &[],
        &["L2 table of L1 entry 0", "past the end of the file"],
    );
}

/// Tables and data pointing into the header cluster or other metadata.
/// (An L1 entry cannot name cluster 0 itself: offset 0 means "unallocated";
/// so the header case is an L2 entry that maps host offset 0.)
#[test]
fn tables_pointing_into_metadata() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    // L2 entry: data cluster at host offset 0 (the header), with the COPIED flag.
    let img = valid_qcow2(d.path(), "l2hdr.qcow2", &[], false);
    let (at, _) = l2_entry(&img, 0);
    put_be64(&img, at, COPIED);
    expect_export_error(&img, &[], &["guest offset 0", "host offset 0"]);

    // L2 table located at the L1 table.
    let img = valid_qcow2(d.path(), "l2l1.qcow2", &[], false);
    let l1 = read_be64(&img, hdr::L1_TABLE_OFFSET);
    let (at, _) = l1_entry(&img, 0);
    put_be64(&img, at, COPIED | l1);
    expect_export_error(
        &img,
        &[],
        &["L2 table of L1 entry 0", "points into the L1 table"],
    );

    // L2 table located at the refcount table.
    let img = valid_qcow2(d.path(), "l2rc.qcow2", &[], false);
    let rc = read_be64(&img, hdr::REFCOUNT_TABLE_OFFSET);
    let (at, _) = l1_entry(&img, 0);
    put_be64(&img, at, COPIED | rc);
    expect_export_error(
        &img,
        &[],
        &["L2 table of L1 entry 0", "points into the refcount table"],
    );

    // Data cluster located at the L1 table.
    let img = valid_qcow2(d.path(), "datal1.qcow2", &[], false);
    let l1 = read_be64(&img, hdr::L1_TABLE_OFFSET);
    let (at, _) = l2_entry(&img, 1);
    put_be64(&img, at, COPIED | l1);
    expect_export_error(
        &img,
        &[],
        &["guest offset 65536", "points into the L1 table"],
    );

    // Data cluster not aligned to the cluster size.
    let img = valid_qcow2(d.path(), "dataunaligned.qcow2", &[], false);
    let (at, e) = l2_entry(&img, 2);
    put_be64(&img, at, e + 512);
    expect_export_error(&img, &[], &["guest offset 131072", "not cluster-aligned"]);
}

// ---------------------------------------------------------------------------
// Compressed clusters
// ---------------------------------------------------------------------------

#[test]
fn compressed_descriptor_past_end_of_file() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "cpast.qcow2", &["-c"], true);
    let (at, e) = first_compressed_entry(&img, 65536);
    let len = std::fs::metadata(&img).unwrap().len();
    // cluster_bits 16: x = 62 - (16 - 8) = 54; host offset in bits 0..53.
    let x = 54;
    let sectors = e & (((1u64 << 62) - 1) & !((1u64 << x) - 1));
    put_be64(&img, at, COMPRESSED | sectors | (len + 10 * 65536 + 100));
    expect_export_error(
        &img,
        &[],
        &["compressed cluster descriptor", "outside the data area"],
    );
}

/// Appends `stream` to `img` at a 512-aligned offset and points the first
/// compressed L2 entry (64 KiB clusters) at it.
fn point_first_compressed_at(img: &Path, stream: &[u8]) {
    let (at, _) = first_compressed_entry(img, 65536);
    let len = std::fs::metadata(img).unwrap().len();
    let off = len.div_ceil(512) * 512;
    write_at(img, off, stream);
    let sectors = (stream.len() as u64).div_ceil(512);
    assert!(
        sectors >= 1 && sectors - 1 < 256,
        "stream too long for the field"
    );
    put_be64(img, at, COMPRESSED | ((sectors - 1) << 54) | off);
}

#[test]
fn compressed_stream_inflating_past_one_cluster() {
    if !tools() {
        return;
    }
    use std::io::Write;
    let d = tmpdir();
    let two_clusters = vec![0x5au8; 2 * 65536];

    let img = valid_qcow2(d.path(), "cbig-zlib.qcow2", &["-c"], true);
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&two_clusters).unwrap();
    point_first_compressed_at(&img, &enc.finish().unwrap());
    expect_export_error(&img, &[], &["inflates to more than one cluster"]);

    let img = valid_qcow2(
        d.path(),
        "cbig-zstd.qcow2",
        &["-c", "-o", "compression_type=zstd"],
        true,
    );
    let z = ruzstd::encoding::compress_to_vec(
        &two_clusters[..],
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    point_first_compressed_at(&img, &z);
    expect_export_error(&img, &[], &["inflates to more than one cluster"]);
}

#[test]
fn compressed_stream_garbage_or_short() {
    if !tools() {
        return;
    }
    use std::io::Write;
    let d = tmpdir();
    // Not a deflate stream at all.
    let img = valid_qcow2(d.path(), "cgarbage.qcow2", &["-c"], true);
    point_first_compressed_at(&img, &[0xffu8; 1024]);
    expect_export_error(&img, &[], &["compressed cluster at guest offset"]);

    // A valid stream of half a cluster.
    let img = valid_qcow2(d.path(), "cshort.qcow2", &["-c"], true);
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&[0x11u8; 32768]).unwrap();
    point_first_compressed_at(&img, &enc.finish().unwrap());
    expect_export_error(&img, &[], &["inflates to 32768 bytes"]);
}

// ---------------------------------------------------------------------------
// Backing chain
// ---------------------------------------------------------------------------

/// `qemu-img create -u` (no backing open) with a backing name as given.
fn overlay_naming(path: &Path, backing: &str, fmt: &str) {
    qemu_img_create_overlay(path, backing, fmt, &["-u"], "1M");
}

#[test]
fn backing_loop() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    // a -> b -> a
    let a = d.path().join("a.qcow2");
    let b = d.path().join("b.qcow2");
    overlay_naming(&a, "b.qcow2", "qcow2");
    overlay_naming(&b, "a.qcow2", "qcow2");
    expect_open_error(&a, &[&b], &["loop"]);
    // a -> a
    let s = d.path().join("self.qcow2");
    overlay_naming(&s, "self.qcow2", "qcow2");
    expect_open_error(&s, &[], &["loop"]);
    // top -> x -> y -> x, with a different spelling of x's name (./x.qcow2)
    let top = d.path().join("top.qcow2");
    let x = d.path().join("x.qcow2");
    let y = d.path().join("y.qcow2");
    overlay_naming(&top, "x.qcow2", "qcow2");
    overlay_naming(&x, "y.qcow2", "qcow2");
    overlay_naming(&y, "./x.qcow2", "qcow2");
    expect_open_error(&top, &[&x, &y], &["loop"]);
}

#[test]
fn backing_named_by_protocol_or_json() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    sparse_file(&base, M);
    let file_name = format!("file:{}", base.display());
    let json_name = format!(
        r#"json:{{"driver":"raw","file":{{"driver":"file","filename":"{}"}}}}"#,
        base.display()
    );
    let cases: [(&str, &str); 6] = [
        ("nbd:localhost:10809", "'nbd:' protocol"),
        (
            "nbd+unix:///export?socket=/tmp/none.sock",
            "'nbd+unix:' protocol",
        ),
        ("http://example.invalid/disk.img", "'http:' protocol"),
        ("https://example.invalid/disk.img", "'https:' protocol"),
        (&file_name, "'file:' protocol"),
        (&json_name, "JSON"),
    ];
    for (i, (name, phrase)) in cases.iter().enumerate() {
        let img = d.path().join(format!("p{i}.qcow2"));
        overlay_naming(&img, name, "raw");
        expect_open_error(&img, &[&base], &[phrase, "plain files only"]);
    }
}

#[test]
fn backing_file_missing() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = d.path().join("orphan.qcow2");
    overlay_naming(&img, "gone.raw", "raw");
    expect_open_error(&img, &[], &["gone.raw"]);
}

// ---------------------------------------------------------------------------
// Random corruption of metadata: never a panic
// ---------------------------------------------------------------------------

/// Where the last panic happened (set by the test's panic hook).
static PANIC_AT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Byte ranges worth corrupting in `img`: the header fields and extensions,
/// the L1 table and the first L2 table.
fn metadata_ranges(img: &[u8]) -> Vec<(usize, usize)> {
    let be64 = |at: usize| u64::from_be_bytes(img[at..at + 8].try_into().unwrap());
    let be32 = |at: usize| u32::from_be_bytes(img[at..at + 4].try_into().unwrap());
    let cs = 1usize << be32(20);
    let l1 = be64(40) as usize;
    let l1_len = be32(36) as usize * 8;
    let mut v = vec![(0, 112), (112, 512.min(cs)), (l1, l1_len.max(8))];
    let l2 = (be64(l1) & OFFSET_MASK) as usize;
    if l2 != 0 {
        v.push((l2, 256.min(cs)));
    }
    v
}

/// Opens and reads the whole guest through the library; a panic is returned
/// as its message, an error or success as `None`.
fn read_all_catching_panics(path: &Path) -> Option<String> {
    let p = path.to_path_buf();
    let r = std::panic::catch_unwind(move || {
        let opts = qfault::image::OpenOptions::default();
        if let Ok(mut img) = qfault::image::open(&p, &opts) {
            use qfault::image::ReadAt;
            let size = img.size().min(64 * M);
            let mut buf = vec![0u8; 256 * 1024];
            let mut off = 0;
            while off < size {
                let n = (size - off).min(buf.len() as u64) as usize;
                if img.read_at(off, &mut buf[..n]).is_err() {
                    break;
                }
                off += n as u64;
            }
        }
    });
    r.err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Thousands of deterministic random corruptions of header, L1 and L2 bytes
/// in several kinds of image: opening and reading may fail, never panic
/// (debug builds also trap arithmetic overflow).
#[test]
fn random_metadata_corruption_never_panics() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    sparse_file(&base, M);
    write_at(&base, 0, &pattern(M as usize, 3));
    let ext = d.path().join("ext.qcow2");
    qemu_img_create_overlay(&ext, "base.raw", "raw", &["-o", "extended_l2=on"], "1M");
    qemu_io(
        "qcow2",
        &ext,
        &["write -P 7 4096 6144", "write -z 65536 4096"],
    );
    let fixtures = [
        valid_qcow2(d.path(), "plain.qcow2", &[], false),
        valid_qcow2(d.path(), "small.qcow2", &["-o", "cluster_size=512"], false),
        valid_qcow2(d.path(), "zlib.qcow2", &["-c"], true),
        valid_qcow2(
            d.path(),
            "zstd.qcow2",
            &["-c", "-o", "compression_type=zstd"],
            true,
        ),
        valid_qcow2(d.path(), "v2.qcow2", &["-o", "compat=0.10"], false),
        ext,
    ];
    let guard = BaseGuard::new(&[&base]);
    let interesting: [u64; 10] = [
        0,
        1,
        0xff,
        0x200,
        0x1_0000,
        1 << 31,
        1 << 62,
        1 << 63,
        u64::MAX,
        0x00ff_ffff_ffff_fe00,
    ];
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *PANIC_AT.lock().unwrap() = at;
    }));
    // One example per panic location: (location, example).
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut count = 0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for fixture in &fixtures {
        let pristine = std::fs::read(fixture).unwrap();
        let ranges = metadata_ranges(&pristine);
        let victim = d.path().join("victim.qcow2");
        for iter in 0..200 {
            let mut img = pristine.clone();
            let mut edits = Vec::new();
            for _ in 0..1 + rnd() % 3 {
                let (start, len) = ranges[(rnd() % ranges.len() as u64) as usize];
                if start >= img.len() {
                    continue;
                }
                let len = len.min(img.len() - start);
                if rnd() % 2 == 0 {
                    // An aligned big-endian field set to an interesting value.
                    let at = (start + (rnd() as usize % len)) & !7;
                    if at < start || at + 8 > img.len() {
                        continue;
                    }
                    let v = interesting[(rnd() % 10) as usize]
                        ^ if rnd() % 3 == 0 {
                            rnd() & 0xffff_fe00
                        } else {
                            0
                        };
                    img[at..at + 8].copy_from_slice(&v.to_be_bytes());
                    edits.push(format!("be64 at {at} = 0x{v:x}"));
                } else {
                    let at = start + (rnd() as usize % len);
                    let v = rnd() as u8;
                    img[at] = v;
                    edits.push(format!("byte at {at} = 0x{v:02x}"));
                }
            }
            std::fs::write(&victim, &img).unwrap();
            if let Some(msg) = read_all_catching_panics(&victim) {
                count += 1;
                let at = PANIC_AT.lock().unwrap().clone();
                if !failures.iter().any(|(l, _)| *l == at) {
                    failures.push((
                        at.clone(),
                        format!(
                            "{at}: {msg}\n    {} iteration {iter}: {edits:?}",
                            fixture.file_name().unwrap().to_string_lossy()
                        ),
                    ));
                }
            }
        }
    }
    std::panic::set_hook(prev);
    guard.assert_unchanged();
    assert!(
        failures.is_empty(),
        "{count} corruptions made the reader panic, at {} places (one example each):\n{}",
        failures.len(),
        failures
            .iter()
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------
// Issue 8's corpus: more hand-built malformed images
// ---------------------------------------------------------------------------

#[test]
fn refcount_table_overlapping_the_header_or_missing() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "rt0.qcow2", &[], false);
    put_be64(&img, hdr::REFCOUNT_TABLE_OFFSET, 0);
    expect_open_error(&img, &[], &["refcount table at 0x0 overlaps the header"]);
    let img = valid_qcow2(d.path(), "rtl1.qcow2", &[], false);
    let l1 = read_be64(&img, hdr::L1_TABLE_OFFSET);
    put_be64(&img, hdr::REFCOUNT_TABLE_OFFSET, l1);
    expect_open_error(&img, &[], &["refcount table", "overlaps the L1 table"]);
    let img = valid_qcow2(d.path(), "rtnone.qcow2", &[], false);
    put_be32(&img, hdr::REFCOUNT_TABLE_CLUSTERS, 0);
    expect_open_error(&img, &[], &["no refcount table"]);
}

#[test]
fn virtual_size_near_2_pow_63() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "huge.qcow2", &[], false);
    put_be64(&img, hdr::SIZE, (1 << 63) - 512);
    expect_open_error(
        &img,
        &[],
        &["too small for a virtual size of 9223372036854775296"],
    );
}

#[test]
fn backing_name_longer_than_1023_bytes() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = d.path().join("long.qcow2");
    overlay_naming(&img, "base.raw", "raw");
    put_be32(&img, hdr::BACKING_FILE_SIZE, 1024);
    expect_open_error(&img, &[], &["backing file name is 1024 bytes long"]);
}

#[test]
fn unreadable_backing_file() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    // Root reads any file whatever its mode, so "unreadable" is a directory.
    std::fs::create_dir(d.path().join("adir")).unwrap();
    let img = d.path().join("dirback.qcow2");
    overlay_naming(&img, "adir", "raw");
    expect_open_error(&img, &[], &["adir"]);
}

#[test]
fn file_shorter_than_its_header_claims() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "short.qcow2", &[], false);
    // Keep the header, refcount structures and L1 table; cut away the L2 table and data.
    let l2 = l1_entry(&img, 0).1 & OFFSET_MASK;
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(l2).unwrap();
    expect_export_error(&img, &[], &["L2 table", "past the end of the file"]);
}

#[test]
fn zero_length_file() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = d.path().join("zero.img");
    std::fs::File::create(&img).unwrap();
    expect_open_error(&img, &[], &["empty (0 bytes)"]);
    let top = d.path().join("top.qcow2");
    overlay_naming(&top, "zero.img", "raw");
    expect_open_error(&top, &[&img], &["zero.img", "empty (0 bytes)"]);
}

#[test]
fn absurd_header_length() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for v in [0u32, 8, 103, 0xffff_fff8] {
        let img = valid_qcow2(d.path(), &format!("hl{v}.qcow2"), &[], false);
        put_be32(&img, hdr::HEADER_LENGTH, v);
        expect_open_error(&img, &[], &["header_length"]);
    }
}

// ---------------------------------------------------------------------------
// Found in review
// ---------------------------------------------------------------------------

#[test]
fn zero_flag_in_a_version_2_image_is_refused_like_qemu() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = valid_qcow2(d.path(), "v2zero.qcow2", &["-o", "compat=0.10"], false);
    let (at, v) = l2_entry(&img, 0);
    put_be64(&img, at, v | 1);
    expect_export_error(&img, &[], &["zero flag", "version 2"]);
}

#[test]
fn a_fifo_as_backing_file_is_refused_without_hanging() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    run(&mut cmd(
        "mkfifo",
        [d.path().join("pipe").to_str().unwrap()],
    ));
    let img = d.path().join("fifo.qcow2");
    overlay_naming(&img, "pipe", "raw");
    expect_open_error(&img, &[], &["pipe", "not a regular file"]);
}

/// Each image's L1 table is bounded by QEMU's 32 MiB limit; a chain of
/// them is bounded too, so a small (sparse) crafted chain cannot make
/// qfault allocate gigabytes.
#[test]
fn chain_of_huge_l1_tables_is_refused() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let mut prev = "base.raw".to_string();
    sparse_file(&d.path().join(&prev), M);
    for i in 0..9 {
        let name = format!("l{i}.qcow2");
        qemu_img([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            &prev,
            "-F",
            if i == 0 { "raw" } else { "qcow2" },
            d.path().join(&name).to_str().unwrap(),
            "2P",
        ]);
        prev = name;
    }
    let top = d.path().join(&prev);
    expect_failure("info", &top, &["L1 tables exceed"], Some(1 << 20));
}

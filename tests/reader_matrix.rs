//! Acceptance tests of issue 3 (the qcow2 reader), matrix part.
//!
//! Every image is built at test time with the real `qemu-img` and `qemu-io`;
//! for each one, `qfault export` must be byte-identical to
//! `qemu-img convert -O raw`, and `qfault info --json` must agree field by
//! field with `qemu-img info --output=json --backing-chain`. Every fixture is
//! also checked to really have the property it is meant to cover (compat
//! level, compressed clusters, extended L2, snapshots, bitmaps, ...), so a
//! recipe that silently stops producing it makes the test fail instead of
//! passing vacuously.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const K: u64 = 1024;
const M: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------
// Fixture helpers
// ---------------------------------------------------------------------------

/// Compressible but non-zero bytes (numbered text lines), for compressed clusters.
fn text_fill(len: u64, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len as usize + 64);
    let mut n = seed;
    while (v.len() as u64) < len {
        v.extend_from_slice(format!("qfault line {n:08} abcdefghijklmnop\n").as_bytes());
        n += 1;
    }
    v.truncate(len as usize);
    v
}

/// A sparse raw file of `size` bytes with pseudo-random data in `regions`
/// (offset, length); everything else is a hole (zeros).
fn raw_image(path: &Path, size: u64, regions: &[(u64, u64)], salt: u64) {
    sparse_file(path, size);
    for &(off, len) in regions {
        assert!(off + len <= size, "region {off}+{len} past {size}");
        write_at(path, off, &pattern(len as usize, off ^ salt));
    }
}

/// Like [`raw_image`], but the regions hold compressible text.
fn raw_text_image(path: &Path, size: u64, regions: &[(u64, u64)], salt: u64) {
    sparse_file(path, size);
    for &(off, len) in regions {
        write_at(path, off, &text_fill(len, off ^ salt));
    }
}

/// `qemu-img create -f qcow2 [-o opts] [-b backing -F fmt] path size`.
fn create_qcow2(path: &Path, size: &str, opts: &str, backing: Option<(&str, &str)>) {
    let mut args: Vec<String> = vec!["create".into(), "-q".into(), "-f".into(), "qcow2".into()];
    if !opts.is_empty() {
        args.push("-o".into());
        args.push(opts.into());
    }
    if let Some((b, fmt)) = backing {
        args.extend(["-b".into(), b.into(), "-F".into(), fmt.into()]);
    }
    args.push(path.to_str().unwrap().into());
    args.push(size.into());
    qemu_img(args);
}

/// Runs qemu-io commands on a qcow2 image.
fn qio(img: &Path, cmds: &[&str]) {
    qemu_io("qcow2", img, cmds);
}

/// `qemu-img info --output=json` (one image, no chain).
fn qemu_info(img: &Path) -> Value {
    let out = qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        img.as_os_str(),
    ]);
    serde_json::from_str(&out).expect("qemu-img info JSON")
}

fn qemu_format_data(img: &Path) -> Value {
    qemu_info(img)["format-specific"]["data"].clone()
}

/// Percentage of compressed clusters reported by `qemu-img check`.
fn qemu_compressed_percent(img: &Path) -> f64 {
    let out = run_any(&mut cmd("qemu-img", [OsStr::new("check"), img.as_os_str()]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let word = text
        .lines()
        .flat_map(|l| l.split(','))
        .find(|s| s.contains("compressed clusters"))
        .unwrap_or_else(|| panic!("no compressed-cluster line in qemu-img check:\n{text}"));
    word.trim()
        .trim_end_matches("compressed clusters")
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|e| panic!("parse {word:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Panics with the first differing offset (and the run length) unless equal.
fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: qfault export is {} bytes, qemu-img convert is {} bytes",
        got.len(),
        want.len()
    );
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        let end = (i..got.len())
            .find(|&j| got[j] == want[j])
            .unwrap_or(got.len());
        let total = got.iter().zip(want).filter(|(a, b)| a != b).count();
        let show = (i + 16).min(got.len());
        panic!(
            "{what}: {total} bytes differ; first at offset {i} (0x{i:x}), first run ends at {end} (0x{end:x})\n\
             qfault: {:02x?}\nqemu:   {:02x?}",
            &got[i..show],
            &want[i..show]
        );
    }
}

/// `qfault ARGS` run in directory `cwd`; panics unless it exits 0.
fn qfault_in(cwd: &Path, args: &[&OsStr]) -> String {
    let mut c = cmd(qfault_bin(), args);
    c.current_dir(cwd);
    String::from_utf8_lossy(&run(&mut c).stdout).into_owned()
}

/// `qfault export IMG -o OUT` (run from `cwd`, with `img` as given) must
/// produce exactly what `qemu-img convert -O raw` produces.
fn assert_export_matches(img: &Path, cwd: &Path) {
    assert_export_matches_with(img, cwd, &[]);
}

/// [`assert_export_matches`] with `extra` options for qfault.
fn assert_export_matches_with(img: &Path, cwd: &Path, extra: &[&str]) {
    let outdir = tmpdir();
    let out = outdir.path().join("guest.raw");
    let mut args = vec![
        OsStr::new("export"),
        img.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    qfault_in(cwd, &args);
    let got = std::fs::read(&out).expect("read qfault export output");
    let abs = if img.is_absolute() {
        img.to_path_buf()
    } else {
        cwd.join(img)
    };
    let want = qemu_raw_bytes(&abs);
    assert_same_bytes(&format!("export of {}", abs.display()), &got, &want);
}

fn resolve(cwd: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    p.canonicalize()
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

/// `qfault info --json` must agree with `qemu-img info --output=json --backing-chain`.
fn assert_info_matches(img: &Path, cwd: &Path) {
    assert_info_matches_with(img, cwd, &[]);
}

/// [`assert_info_matches`] with `extra` options for qfault.
fn assert_info_matches_with(img: &Path, cwd: &Path, extra: &[&str]) {
    let mut args = vec![OsStr::new("info"), img.as_os_str(), OsStr::new("--json")];
    args.extend(extra.iter().map(OsStr::new));
    let ours: Value =
        serde_json::from_str(&qfault_in(cwd, &args)).expect("qfault info --json prints JSON");
    let abs = if img.is_absolute() {
        img.to_path_buf()
    } else {
        cwd.join(img)
    };
    let theirs: Value = serde_json::from_str(&qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        OsStr::new("--backing-chain"),
        abs.as_os_str(),
    ]))
    .expect("qemu-img info JSON");
    assert_eq!(ours["schema"], 1, "qfault info --json: {ours}");
    let ours = ours["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("qfault info --json has no \"chain\" array: {ours}"));
    let theirs = theirs
        .as_array()
        .expect("qemu-img --backing-chain gives an array");
    assert_eq!(
        ours.len(),
        theirs.len(),
        "chain length differs\nqfault: {ours:#?}\nqemu: {theirs:#?}"
    );
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        let ctx = format!(
            "chain[{i}] of {}\nqfault: {o:#}\nqemu: {t:#}",
            abs.display()
        );
        let qemu_file = resolve(Path::new("/"), t["filename"].as_str().unwrap());
        let our_file = resolve(
            cwd,
            o["path"]
                .as_str()
                .unwrap_or_else(|| panic!("no path: {ctx}")),
        );
        assert_eq!(our_file, qemu_file, "path: {ctx}");
        assert_eq!(o["format"], t["format"], "format: {ctx}");
        assert_eq!(o["virtual_size"], t["virtual-size"], "virtual_size: {ctx}");
        let flen = std::fs::metadata(&qemu_file).unwrap().len();
        assert_eq!(o["file_size"], Value::from(flen), "file_size: {ctx}");
        let data = &t["format-specific"]["data"];
        let is_qcow2 = t["format"] == "qcow2";
        let field = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
        assert_eq!(
            o["cluster_size"],
            field(&t["cluster-size"]),
            "cluster_size: {ctx}"
        );
        let version = match data["compat"].as_str() {
            Some("0.10") => Value::from(2),
            Some("1.1") => Value::from(3),
            Some(other) => panic!("unexpected compat {other}"),
            None => Value::Null,
        };
        assert_eq!(o["version"], version, "version: {ctx}");
        assert_eq!(
            o["compression_type"],
            field(&data["compression-type"]),
            "compression_type: {ctx}"
        );
        let ext = data["extended-l2"].as_bool().unwrap_or(false);
        assert_eq!(o["extended_l2"], Value::from(ext), "extended_l2: {ctx}");
        assert_eq!(
            o["backing_file"],
            field(&t["backing-filename"]),
            "backing_file: {ctx}"
        );
        assert_eq!(
            o["backing_format"],
            field(&t["backing-filename-format"]),
            "backing_format: {ctx}"
        );
        if !is_qcow2 {
            assert_eq!(o["format"], "raw", "format: {ctx}");
        }
    }
}

/// The whole acceptance check for one image: hashes the chain, exports and
/// compares with qemu, compares `info`, and asserts the chain was not written.
fn verify(img: &Path, chain: &[&Path]) {
    verify_from(img, chain, &std::env::temp_dir());
}

/// [`verify`] with qfault started in `cwd` (so relative names are tested
/// against the image's directory, not the working directory).
fn verify_from(img: &Path, chain: &[&Path], cwd: &Path) {
    let guard = BaseGuard::new(chain);
    assert_export_matches(img, cwd);
    assert_info_matches(img, cwd);
    guard.assert_unchanged();
}

fn tools() -> bool {
    require_tools(&["qemu-img", "qemu-io"])
}

// ---------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------

/// qcow2 version 2 (compat=0.10): no zero flag, so `write -z` and `discard`
/// take other paths in QEMU.
#[test]
fn v2_compat_0_10() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    let img = d.path().join("v2.qcow2");
    raw_image(
        &raw,
        4 * M,
        &[
            (0, 3000),
            (65536 - 100, 70000),
            (M + 12345, 300 * K),
            (4 * M - 777, 777),
        ],
        2,
    );
    qemu_img_to_qcow2(&raw, &img, &["-o", "compat=0.10"]);
    qemu_io_write_pattern("qcow2", &img, 2 * M + 100, 5000, 21);
    qio(
        &img,
        &[
            "write -z 65536 65536",
            "discard 1179648 65536",
            "write -z 3000 1000",
        ],
    );
    assert_eq!(
        qemu_format_data(&img)["compat"],
        "0.10",
        "fixture must be v2"
    );
    assert_qemu_img_check_clean(&img);
    verify(&img, &[&img]);

    // v2 with 4 KiB clusters and a raw backing file (v2 write -z must store zeros).
    let base = d.path().join("base.raw");
    raw_image(&base, 2 * M, &[(0, 2 * M)], 22);
    let top = d.path().join("top-v2.qcow2");
    create_qcow2(
        &top,
        "2M",
        "compat=0.10,cluster_size=4096",
        Some(("base.raw", "raw")),
    );
    qemu_io_write_pattern("qcow2", &top, 5000, 9000, 23);
    qio(&top, &["write -z 65536 8192", "discard 131072 4096"]);
    assert_eq!(qemu_format_data(&top)["compat"], "0.10");
    verify(&top, &[&top, &base]);
}

/// v3 images with each cluster size; data straddles cluster boundaries and
/// the virtual size is not a multiple of the cluster size.
fn cluster_size_case(cs: u64, size: u64) {
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    let img = d.path().join(format!("c{cs}.qcow2"));
    raw_image(
        &raw,
        size,
        &[
            (0, 3000),
            (3 * cs - 100, cs + 700),
            (size / 2 + 12345, 200_000),
            (size - 777, 777),
        ],
        cs,
    );
    qemu_img_to_qcow2(&raw, &img, &["-o", &format!("cluster_size={cs}")]);
    // Overwrite parts of allocated clusters and allocate new ones.
    qemu_io_write_pattern("qcow2", &img, cs * 3 + 17, 1000, cs + 1);
    qemu_io_write_pattern("qcow2", &img, size / 4 + 3, 3 * cs + 5, cs + 2);
    let info = qemu_info(&img);
    assert_eq!(
        info["cluster-size"],
        Value::from(cs),
        "fixture cluster size"
    );
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1");
    assert_qemu_img_check_clean(&img);
    verify(&img, &[&img]);
}

#[test]
fn v3_cluster_512() {
    if !tools() {
        return;
    }
    cluster_size_case(512, 2 * M + 1536);
}

#[test]
fn v3_cluster_4k() {
    if !tools() {
        return;
    }
    cluster_size_case(4 * K, 4 * M + 1536);
}

#[test]
fn v3_cluster_64k() {
    if !tools() {
        return;
    }
    cluster_size_case(64 * K, 4 * M + 1536);
}

#[test]
fn v3_cluster_2m() {
    if !tools() {
        return;
    }
    cluster_size_case(2 * M, 12 * M + 1536);
}

/// `qemu-img convert -c` with zlib or zstd: a mix of compressed clusters
/// (text), clusters QEMU stores uncompressed (random data does not shrink),
/// and holes; then overwrites, `write -z` and `discard` over compressed clusters.
fn compressed_case(ctype: &str) {
    // Descriptor layouts differ with cluster_bits (x = 62 - (cluster_bits - 8)):
    // 512 B clusters have a 1-bit sector count, 2 MiB clusters a 13-bit one.
    for cs in [512, 4 * K, 64 * K, 2 * M] {
        let d = tmpdir();
        let raw = d.path().join("src.raw");
        let img = d.path().join(format!("{ctype}-{cs}.qcow2"));
        let size = (3 * M).max(8 * cs) + 512;
        raw_text_image(&raw, size, &[(0, M + 5000), (2 * M, 300 * K)], 7);
        write_at(&raw, M + 200 * K, &pattern(150_000, 8));
        qemu_img_to_qcow2(
            &raw,
            &img,
            &[
                "-c",
                "-o",
                &format!("compression_type={ctype},cluster_size={cs}"),
            ],
        );
        let data = qemu_format_data(&img);
        assert_eq!(data["compression-type"], ctype, "fixture compression type");
        let pct = qemu_compressed_percent(&img);
        assert!(pct > 10.0, "fixture has only {pct}% compressed clusters");
        qemu_io_write_pattern("qcow2", &img, cs + 100, 700, 9);
        qio(
            &img,
            &[
                &format!("write -z {} {}", 4 * cs, cs),
                &format!("discard {} {}", 6 * cs, 2 * cs),
            ],
        );
        assert_qemu_img_check_clean(&img);
        verify(&img, &[&img]);
    }

    // Compressed clusters written by qemu-io (`write -c`) into an overlay,
    // and compressed clusters with extended L2 entries.
    let d = tmpdir();
    let base = d.path().join("base.raw");
    raw_image(&base, 2 * M, &[(0, 2 * M)], 10);
    let top = d.path().join("top.qcow2");
    create_qcow2(
        &top,
        "2M",
        &format!("compression_type={ctype}"),
        Some(("base.raw", "raw")),
    );
    let text = d.path().join("text.bin");
    std::fs::write(&text, text_fill(2 * 65536, 11)).unwrap();
    qio(
        &top,
        &[&format!("write -c -s {} 65536 131072", text.display())],
    );
    assert!(
        qemu_compressed_percent(&top) > 0.0,
        "fixture: write -c compressed nothing"
    );
    verify(&top, &[&top, &base]);

    let raw = d.path().join("ext.src");
    raw_text_image(&raw, 3 * M, &[(0, 2 * M)], 12);
    write_at(&raw, M, &pattern(100_000, 13));
    let ext = d.path().join("ext.qcow2");
    qemu_img_to_qcow2(
        &raw,
        &ext,
        &[
            "-c",
            "-o",
            &format!("compression_type={ctype},extended_l2=on"),
        ],
    );
    assert_eq!(qemu_format_data(&ext)["extended-l2"], true, "fixture");
    assert!(qemu_compressed_percent(&ext) > 10.0, "fixture");
    qio(&ext, &["write -z 2048 4096", "discard 65536 65536"]);
    verify(&ext, &[&ext]);
}

#[test]
fn compressed_zlib() {
    if !tools() {
        return;
    }
    compressed_case("zlib");
}

#[test]
fn compressed_zstd() {
    if !tools() {
        return;
    }
    compressed_case("zstd");
}

/// extended_l2=on: data, `write -z` and `discard` in sub-cluster pieces, with
/// and without a backing file (an unallocated sub-cluster reads the backing
/// file, a zero sub-cluster reads zeros).
#[test]
fn extended_l2_subclusters() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    // (a) no backing file; 64 KiB clusters, 2 KiB sub-clusters.
    let raw = d.path().join("src.raw");
    let img = d.path().join("ext.qcow2");
    raw_image(&raw, 2 * M, &[(0, 2 * M)], 31);
    qemu_img_to_qcow2(&raw, &img, &["-o", "extended_l2=on,cluster_size=64k"]);
    qio(
        &img,
        &[
            "write -z 2048 2048",
            "write -z 8192 6144",
            "write -z 70000 1000",
            "discard 135168 4096",
            "write -z 262144 65536",
        ],
    );
    qemu_io_write_pattern("qcow2", &img, 200_000, 3000, 32);
    assert_eq!(qemu_format_data(&img)["extended-l2"], true, "fixture");
    assert_qemu_img_check_clean(&img);
    verify(&img, &[&img]);

    // (b) over a raw backing file full of data; 64 KiB and 16 KiB clusters
    // (2 KiB and 512-byte sub-clusters).
    let base = d.path().join("base.raw");
    raw_image(&base, 2 * M, &[(0, 2 * M)], 33);
    for cs in [64 * K, 16 * K] {
        let sc = cs / 32;
        let top = d.path().join(format!("ext-top-{cs}.qcow2"));
        create_qcow2(
            &top,
            "2M",
            &format!("extended_l2=on,cluster_size={cs}"),
            Some(("base.raw", "raw")),
        );
        qemu_io_write_pattern("qcow2", &top, sc, sc, 34);
        qemu_io_write_pattern("qcow2", &top, 3 * sc + 100, 2 * sc + 50, 35); // partial sub-clusters: COW from backing
        qio(
            &top,
            &[
                &format!("write -z {} {}", cs + 2 * sc, 4 * sc),
                &format!("write -z {} {}", 2 * cs, cs),
                &format!("discard {} {}", 3 * cs + sc, sc),
                &format!("write -z {} {}", 5 * cs + 7 * sc, 3 * sc),
            ],
        );
        qemu_io_write_pattern("qcow2", &top, 5 * cs + 8 * sc, sc, 36); // data inside a zeroed range
        assert_eq!(qemu_format_data(&top)["extended-l2"], true, "fixture");
        assert_qemu_img_check_clean(&top);
        verify(&top, &[&top, &base]);
    }
}

/// `write -z` (with and without unmap) and `discard` over allocated data,
/// whole-cluster and partial, with and without a backing file.
#[test]
fn zero_and_discard_over_allocated_data() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, 2 * M, &[(0, 2 * M)], 41);
    let img = d.path().join("full.qcow2");
    qemu_img_to_qcow2(&raw, &img, &[]);
    let cmds = [
        "write -z 65536 65536",
        "write -z 200000 5000",
        "write -z -u 327680 131072",
        "discard 524288 65536",
        "discard 700000 1000",
        "discard 786432 200000",
    ];
    qio(&img, &cmds);
    assert_qemu_img_check_clean(&img);
    verify(&img, &[&img]);

    // Same operations in an overlay whose backing file has data everywhere:
    // the zeroed ranges must not show the backing data through.
    let top = d.path().join("top.qcow2");
    create_qcow2(&top, "2M", "", Some(("src.raw", "raw")));
    qemu_io_write_pattern("qcow2", &top, 0, M, 42);
    qio(&top, &cmds);
    assert_qemu_img_check_clean(&top);
    verify(&top, &[&top, &raw]);
}

/// A 3-deep chain raw <- qcow2 <- qcow2 in three directories, linked by
/// relative names ("../base/base.raw"), opened from an unrelated working
/// directory and from the top image's directory with a relative path.
#[test]
fn chain_relative_names_across_directories() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for sub in ["base", "mid", "top", "elsewhere"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
    }
    let base = d.path().join("base/base.raw");
    let mid = d.path().join("mid/mid.qcow2");
    let top = d.path().join("top/top.qcow2");
    raw_image(&base, 3 * M, &[(0, 3 * M)], 51);
    create_qcow2(&mid, "3M", "", Some(("../base/base.raw", "raw")));
    qemu_io_write_pattern("qcow2", &mid, 100_000, 400_000, 52);
    qio(&mid, &["write -z 1048576 65536"]);
    create_qcow2(
        &top,
        "3M",
        "cluster_size=4096",
        Some(("../mid/mid.qcow2", "qcow2")),
    );
    qemu_io_write_pattern("qcow2", &top, 300_001, 50_000, 53);
    qio(&top, &["write -z 2097152 8192", "discard 1048576 4096"]);
    let chain = [&top as &Path, &mid, &base];
    verify_from(&top, &chain, &d.path().join("elsewhere"));
    verify_from(Path::new("top.qcow2"), &chain, &d.path().join("top"));

    // Depth 2: raw <- qcow2 across directories.
    verify_from(&mid, &[&mid, &base], &d.path().join("elsewhere"));
}

/// Chains named by absolute paths: raw <- qcow2 (depth 2) and
/// qcow2 <- qcow2 (v2) <- qcow2 (depth 3), all backing names absolute.
#[test]
fn chain_absolute_names() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("base.raw");
    raw_image(&raw, 2 * M, &[(0, 700_000), (M + 5, 500_000)], 61);
    let over = d.path().join("over.qcow2");
    create_qcow2(&over, "2M", "", Some((raw.to_str().unwrap(), "raw")));
    qemu_io_write_pattern("qcow2", &over, 600_000, 200_000, 62);
    verify(&over, &[&over, &raw]);

    let b = d.path().join("b.qcow2");
    let m = d.path().join("m.qcow2");
    let t = d.path().join("t.qcow2");
    let braw = d.path().join("b-src.raw");
    raw_image(&braw, 2 * M, &[(0, 2 * M)], 63);
    qemu_img_to_qcow2(&braw, &b, &["-o", "cluster_size=512"]);
    create_qcow2(
        &m,
        "2M",
        "compat=0.10",
        Some((b.to_str().unwrap(), "qcow2")),
    );
    qemu_io_write_pattern("qcow2", &m, 65536, 131072, 64);
    create_qcow2(&t, "2M", "", Some((m.to_str().unwrap(), "qcow2")));
    qemu_io_write_pattern("qcow2", &t, 100_000, 70_000, 65);
    qio(&t, &["write -z 1048576 131072"]);
    assert!(Path::new(qemu_info(&t)["backing-filename"].as_str().unwrap()).is_absolute());
    verify_from(&t, &[&t, &m, &b], &d.path().join("."));
}

/// A qcow2 larger than its backing file (reads past the backing file's end
/// are zeros), over a raw whose size is not a multiple of 512, and a qcow2
/// smaller than its backing file.
#[test]
fn qcow2_larger_and_smaller_than_backing() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    raw_image(&base, M + 1000, &[(0, M + 1000)], 71);
    let big = d.path().join("big.qcow2");
    create_qcow2(&big, "3M", "", Some(("base.raw", "raw")));
    qemu_io_write_pattern("qcow2", &big, M - 4096, 8192, 72); // straddles the backing end
    qemu_io_write_pattern("qcow2", &big, 2 * M + 1, 1000, 73);
    verify(&big, &[&big, &base]);

    // Same, with the straddling cluster left to the backing file.
    let big2 = d.path().join("big2.qcow2");
    create_qcow2(&big2, "2M", "cluster_size=4096", Some(("base.raw", "raw")));
    qemu_io_write_pattern("qcow2", &big2, 0, 4096, 74);
    verify(&big2, &[&big2, &base]);

    let small = d.path().join("small.qcow2");
    create_qcow2(&small, "512K", "", Some(("base.raw", "raw")));
    qemu_io_write_pattern("qcow2", &small, 1000, 1000, 75);
    verify(&small, &[&small, &base]);
}

/// Raw images whose size is not a multiple of 512, alone and with `-f raw`.
#[test]
fn raw_sizes_not_multiple_of_512() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for size in [1u64, 511, 1000, 4097, M + 3] {
        let img = d.path().join(format!("r{size}.raw"));
        raw_image(&img, size, &[(0, size)], size);
        verify(&img, &[&img]);
        // Forcing the format must give the same bytes.
        let guard = BaseGuard::new(&[&img]);
        let out = d.path().join(format!("r{size}.out"));
        qfault_ok([
            OsStr::new("export"),
            img.as_os_str(),
            OsStr::new("-f"),
            OsStr::new("raw"),
            OsStr::new("-o"),
            out.as_os_str(),
        ]);
        assert_same_bytes(
            &format!("export -f raw of {size}-byte raw"),
            &std::fs::read(&out).unwrap(),
            &qemu_raw_bytes(&img),
        );
        guard.assert_unchanged();
    }
}

/// Internal snapshots (`qemu-img snapshot -c`) followed by more writes: the
/// active L1 table, not a snapshot's, must be read.
#[test]
fn internal_snapshots_active_l1_is_read() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, 2 * M, &[(0, M), (M + 500_000, 100_000)], 81);
    let img = d.path().join("snap.qcow2");
    qemu_img_to_qcow2(&raw, &img, &[]);
    qemu_img([
        OsStr::new("snapshot"),
        OsStr::new("-c"),
        OsStr::new("s1"),
        img.as_os_str(),
    ]);
    qemu_io_write_pattern("qcow2", &img, 10_000, 200_000, 82);
    qio(&img, &["write -z 524288 65536", "discard 655360 131072"]);
    qemu_img([
        OsStr::new("snapshot"),
        OsStr::new("-c"),
        OsStr::new("s2"),
        img.as_os_str(),
    ]);
    qemu_io_write_pattern("qcow2", &img, 1_500_000, 300_000, 83);
    let info = qemu_info(&img);
    let snaps = info["snapshots"].as_array().expect("fixture has snapshots");
    assert_eq!(snaps.len(), 2, "fixture snapshots: {info:#}");
    assert_qemu_img_check_clean(&img);
    verify(&img, &[&img]);
    // Sanity of the fixture: the active state differs from snapshot s1.
    let s1 = d.path().join("s1.raw");
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-O"),
        OsStr::new("raw"),
        OsStr::new("-l"),
        OsStr::new("snapshot.name=s1"),
        img.as_os_str(),
        s1.as_os_str(),
    ]);
    assert_ne!(std::fs::read(&s1).unwrap(), qemu_raw_bytes(&img));
}

/// A persistent dirty bitmap (`qemu-img bitmap --add`): the header extension
/// and the autoclear bit must be skipped, the data read as usual.
#[test]
fn bitmap_extension_is_skipped() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, 2 * M, &[(0, 300_000), (M, 200_000)], 91);
    let img = d.path().join("bm.qcow2");
    qemu_img_to_qcow2(&raw, &img, &["-o", "cluster_size=4096"]);
    qemu_img([
        OsStr::new("bitmap"),
        OsStr::new("--add"),
        img.as_os_str(),
        OsStr::new("b0"),
    ]);
    qemu_img([
        OsStr::new("bitmap"),
        OsStr::new("--add"),
        OsStr::new("--disable"),
        img.as_os_str(),
        OsStr::new("b1"),
    ]);
    qemu_io_write_pattern("qcow2", &img, 500_000, 100_000, 92); // recorded in b0
    let data = qemu_format_data(&img);
    assert_eq!(
        data["bitmaps"].as_array().map(Vec::len),
        Some(2),
        "fixture bitmaps: {data:#}"
    );
    assert_qemu_img_check_clean(&img);
    verify(&img, &[&img]);
}

// ---------------------------------------------------------------------------
// The CLI contract around export and info
// ---------------------------------------------------------------------------

fn small_qcow2(d: &Path) -> PathBuf {
    let raw = d.join("src.raw");
    raw_image(&raw, M, &[(4096, 100_000)], 101);
    let img = d.join("small.qcow2");
    qemu_img_to_qcow2(&raw, &img, &[]);
    img
}

/// An existing output is refused (exit 2) and left untouched without
/// `--overwrite`, and replaced with it.
#[test]
fn export_refuses_existing_output_without_overwrite() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = small_qcow2(d.path());
    let guard = BaseGuard::new(&[&img]);
    let out = d.path().join("out.raw");
    std::fs::write(&out, b"precious").unwrap();
    let args = [
        OsStr::new("export"),
        img.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ];
    let o = qfault_expect(args, 2);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("qfault: error:"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    qfault_ok(args.iter().chain([&OsStr::new("--overwrite")]));
    assert_same_bytes(
        "export --overwrite",
        &std::fs::read(&out).unwrap(),
        &qemu_raw_bytes(&img),
    );
    guard.assert_unchanged();
}

/// The exported raw file is sparse: a 64 MiB disk with 1 MiB of data does
/// not take 64 MiB on disk, and no temporary file is left beside it.
#[test]
fn export_output_is_sparse_and_atomic() {
    if !tools() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, 64 * M, &[(10 * M, M)], 111);
    let img = d.path().join("sparse.qcow2");
    qemu_img_to_qcow2(&raw, &img, &[]);
    let guard = BaseGuard::new(&[&img]);
    let outdir = tmpdir();
    let out = outdir.path().join("guest.raw");
    qfault_ok([
        OsStr::new("export"),
        img.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), 64 * M);
    let allocated = meta.blocks() * 512;
    assert!(
        allocated <= 8 * M,
        "export is not sparse: {allocated} bytes allocated for 1 MiB of data"
    );
    let names: Vec<_> = std::fs::read_dir(outdir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsStr::new("guest.raw")], "leftover files");
    assert_same_bytes(
        "sparse export",
        &std::fs::read(&out).unwrap(),
        &qemu_raw_bytes(&img),
    );
    guard.assert_unchanged();
}

/// `info --max-depth N` follows at most N backing files (src/cli/common.rs:
/// "Most backing files to follow"); a deeper chain is an error naming the limit.
#[test]
fn info_max_depth_limits_the_chain() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    raw_image(&base, M, &[(0, 4096)], 121);
    let mid = d.path().join("mid.qcow2");
    let top = d.path().join("top.qcow2");
    create_qcow2(&mid, "1M", "", Some(("base.raw", "raw")));
    create_qcow2(&top, "1M", "", Some(("mid.qcow2", "qcow2")));
    let guard = BaseGuard::new(&[&top, &mid, &base]);
    let info = |img: &Path, n: &str| {
        qfault([
            OsStr::new("info"),
            img.as_os_str(),
            OsStr::new("--json"),
            OsStr::new("--max-depth"),
            OsStr::new(n),
        ])
    };
    // Two backing files: a limit of 2 is enough.
    let ok = info(&top, "2");
    assert!(ok.status.success(), "{ok:?}");
    let v: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["schema"], 1, "{v}");
    assert_eq!(v["chain"].as_array().map(Vec::len), Some(3));
    // A raw image alone needs no backing file at all.
    assert!(info(&base, "0").status.success());
    for n in ["1", "0"] {
        let o = info(&top, n);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "--max-depth {n}: {o:?}");
        assert!(stderr.starts_with("qfault: error:"), "stderr: {stderr}");
        assert!(
            stderr.contains(&format!("deeper than the limit of {n} backing files")),
            "stderr must name the depth limit: {stderr}"
        );
        assert!(
            stderr.contains("--max-depth"),
            "stderr must name the option that raises it: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"), "stderr: {stderr}");
        // The images within the limit, if any, with the error (issue 18).
        if o.stdout.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(!v["chain"].as_array().unwrap().is_empty(), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--max-depth"),
            "{v}"
        );
    }
    // export honours the same option.
    let out = d.path().join("out.raw");
    let o = qfault([
        OsStr::new("export"),
        top.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--max-depth"),
        OsStr::new("1"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!out.exists());
    guard.assert_unchanged();
}

// ---------------------------------------------------------------------------
// More images QEMU reads
// ---------------------------------------------------------------------------

/// A qcow2 whose header size is not a multiple of 512 (qemu-img never
/// writes one, other tools may): QEMU reads floor(size / 512) sectors.
#[test]
fn qcow2_virtual_size_not_multiple_of_512() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, M, &[(0, M)], 131);
    let img = d.path().join("odd.qcow2");
    qemu_img_to_qcow2(&raw, &img, &[]);
    write_at(&img, 24, &(M - 1000).to_be_bytes());
    assert_eq!(qemu_info(&img)["virtual-size"], Value::from(M - 1024));
    verify(&img, &[&img]);
}

/// Backing format not recorded (the extension renamed to an unknown type,
/// which must be skipped): refused by default (exit 3, tests/backing_gate.rs
/// has the why); with `--probe-backing` the backing file's format is
/// probed, as QEMU does.
#[test]
fn backing_format_not_recorded_is_probed() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("base.raw");
    raw_image(&raw, M, &[(0, M)], 141);
    let qb = d.path().join("base.qcow2");
    qemu_img_to_qcow2(&raw, &qb, &["-o", "cluster_size=4096"]);
    for (name, backing, fmt) in [
        ("over-raw.qcow2", "base.raw", "raw"),
        ("over-q.qcow2", "base.qcow2", "qcow2"),
    ] {
        let top = d.path().join(name);
        create_qcow2(&top, "1M", "", Some((backing, fmt)));
        qemu_io_write_pattern("qcow2", &top, 70_000, 5000, 142);
        let mut head = std::fs::read(&top).unwrap();
        head.truncate(65536);
        let at = head
            .windows(4)
            .position(|w| w == 0xe279_2acau32.to_be_bytes())
            .expect("fixture: backing format extension");
        write_at(&top, at as u64, &0x1234_5678u32.to_be_bytes());
        assert!(
            qemu_info(&top)["backing-filename-format"].is_null(),
            "fixture: backing format still recorded"
        );
        let guard = BaseGuard::new(&[&top, &raw, &qb]);
        let o = qfault_expect([OsStr::new("info"), top.as_os_str()], 3);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--probe-backing"), "{err}");
        let cwd = std::env::temp_dir();
        assert_export_matches_with(&top, &cwd, &["--probe-backing"]);
        assert_info_matches_with(&top, &cwd, &["--probe-backing"]);
        guard.assert_unchanged();
    }
}

/// A backing format recorded as raw over a file that is really qcow2: the
/// recorded format wins (no probing), so the guest sees the qcow2 file's bytes.
#[test]
fn recorded_raw_backing_format_is_not_probed() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, M, &[(0, 300_000)], 151);
    let qb = d.path().join("really.qcow2");
    qemu_img_to_qcow2(&raw, &qb, &[]);
    let top = d.path().join("top.qcow2");
    qemu_img([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "really.qcow2",
        "-F",
        "raw",
        top.to_str().unwrap(),
        "1M",
    ]);
    qemu_io_write_pattern("qcow2", &top, 500_000, 1000, 152);
    verify(&top, &[&top, &qb]);
}

/// Images grown and shrunk by `qemu-img resize` (the L1 table is larger than
/// the size needs after a shrink), and zero-sized images.
#[test]
fn resized_and_empty_images() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, M, &[(0, M)], 161);
    let img = d.path().join("rs.qcow2");
    qemu_img_to_qcow2(&raw, &img, &[]);
    qemu_img(["resize", "-q", img.to_str().unwrap(), "5M"]);
    qemu_io_write_pattern("qcow2", &img, 4 * M + 3, 100_000, 162);
    verify(&img, &[&img]);
    qemu_img(["resize", "-q", "--shrink", img.to_str().unwrap(), "512K"]);
    verify(&img, &[&img]);

    let q0 = d.path().join("empty.qcow2");
    create_qcow2(&q0, "0", "", None);
    verify(&q0, &[&q0]);
    // A zero-length file is refused (issue 8: it is not a disk image), even
    // though QEMU would open it as an empty raw disk.
    let r0 = d.path().join("empty.raw");
    sparse_file(&r0, 0);
    let o = qfault_expect(
        [
            "export",
            r0.to_str().unwrap(),
            "-o",
            d.path().join("e.out").to_str().unwrap(),
        ],
        1,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty (0 bytes)"));
    assert!(!d.path().join("e.out").exists());
}

/// Refcount widths, lazy refcounts and a set dirty bit do not change how
/// data is read.
#[test]
fn refcount_widths_lazy_refcounts_and_dirty_bit() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("src.raw");
    raw_image(&raw, 2 * M, &[(0, 700_000), (M + 1, 1000)], 171);
    for opts in ["refcount_bits=1", "refcount_bits=64", "lazy_refcounts=on"] {
        let img = d.path().join(format!("{opts}.qcow2"));
        qemu_img_to_qcow2(&raw, &img, &["-o", opts]);
        qemu_io_write_pattern("qcow2", &img, 600_000, 300_000, 172);
        verify(&img, &[&img]);
    }
    let dirty = d.path().join("lazy_refcounts=on.qcow2");
    let mut f = [0u8; 8];
    f.copy_from_slice(&std::fs::read(&dirty).unwrap()[72..80]);
    write_at(&dirty, 72, &(u64::from_be_bytes(f) | 1).to_be_bytes());
    verify(&dirty, &[&dirty]);
}

/// `export -o` naming a file of the image's own chain must not replace it,
/// even with `--overwrite`: the base is never written.
#[test]
fn export_never_replaces_a_file_of_its_own_chain() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    raw_image(&base, M, &[(0, M)], 181);
    let top = d.path().join("top.qcow2");
    create_qcow2(&top, "1M", "", Some(("base.raw", "raw")));
    qemu_io_write_pattern("qcow2", &top, 0, 4096, 182);
    let guard = BaseGuard::new(&[&top, &base]);
    for out in [&top, &base] {
        for extra in [&[][..], &["--overwrite"][..]] {
            let mut args = vec![
                OsStr::new("export"),
                top.as_os_str(),
                OsStr::new("-o"),
                out.as_os_str(),
            ];
            args.extend(extra.iter().map(OsStr::new));
            let o = qfault(&args);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success(),
                "export {} -o {} {extra:?} succeeded",
                top.display(),
                out.display()
            );
            assert!(stderr.starts_with("qfault: error:"), "stderr: {stderr}");
            assert!(!stderr.contains("panicked"), "stderr: {stderr}");
        }
    }
    guard.assert_unchanged();
}

/// An output directory that does not exist: exit 1, one line, nothing created.
#[test]
fn export_into_missing_directory() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = small_qcow2(d.path());
    let guard = BaseGuard::new(&[&img]);
    let out = d.path().join("no/such/dir/out.raw");
    let o = qfault_expect(
        [
            OsStr::new("export"),
            img.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ],
        1,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("qfault: error:"), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    assert!(!d.path().join("no").exists());
    guard.assert_unchanged();
}

/// Preallocated images (metadata, falloc, full; with extended L2 and a
/// backing file, where allocated-but-unwritten sub-clusters must not show
/// the backing data).
#[test]
fn preallocated_images() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for opts in [
        "preallocation=metadata",
        "preallocation=falloc",
        "preallocation=full",
        "preallocation=metadata,extended_l2=on",
    ] {
        let img = d.path().join(format!("{opts}.qcow2"));
        create_qcow2(&img, "3M", opts, None);
        qemu_io_write_pattern("qcow2", &img, 100_000, 10_000, 191);
        verify(&img, &[&img]);
    }
    let base = d.path().join("base.raw");
    raw_image(&base, 2 * M, &[(0, 2 * M)], 192);
    let top = d.path().join("prealloc-over-base.qcow2");
    create_qcow2(
        &top,
        "2M",
        "preallocation=metadata,extended_l2=on",
        Some(("base.raw", "raw")),
    );
    qemu_io_write_pattern("qcow2", &top, 70_000, 3000, 193);
    verify(&top, &[&top, &base]);
}

/// `-f raw` on a qcow2 file exports the file's own bytes, as
/// `qemu-img convert -f raw` does; `-f qcow2` on a raw file is an error.
#[test]
fn forced_format() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let img = small_qcow2(d.path());
    let raw = d.path().join("plain.raw");
    raw_image(&raw, M, &[(0, M)], 201);
    let guard = BaseGuard::new(&[&img, &raw]);
    let out = d.path().join("out.raw");
    qfault_ok([
        OsStr::new("export"),
        img.as_os_str(),
        OsStr::new("-f"),
        OsStr::new("raw"),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    let flat = d.path().join("qemu.raw");
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-f"),
        OsStr::new("raw"),
        OsStr::new("-O"),
        OsStr::new("raw"),
        img.as_os_str(),
        flat.as_os_str(),
    ]);
    assert_same_bytes(
        "export -f raw of a qcow2 file",
        &std::fs::read(&out).unwrap(),
        &std::fs::read(&flat).unwrap(),
    );
    let out2 = d.path().join("out2.raw");
    let o = qfault_expect(
        [
            OsStr::new("export"),
            raw.as_os_str(),
            OsStr::new("-f"),
            OsStr::new("qcow2"),
            OsStr::new("-o"),
            out2.as_os_str(),
        ],
        1,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("qfault: error:"), "stderr: {stderr}");
    assert!(stderr.contains("not a qcow2 image"), "stderr: {stderr}");
    assert!(!out2.exists());
    guard.assert_unchanged();
}

/// Old images store the backing name right after the header, with no
/// header-extension end marker: the extension area ends at the name.
#[test]
fn v2_backing_name_right_after_the_header() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let d = tmpdir();
    let base = d.path().join("base.raw");
    sparse_file(&base, 1 << 20);
    write_at(&base, 4096, &pattern(8192, 7));
    let top = d.path().join("old.qcow2");
    qemu_img([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "compat=0.10",
        "-b",
        "base.raw",
        "-F",
        "raw",
        top.to_str().unwrap(),
    ]);
    qemu_io_write_pattern("qcow2", &top, 65536, 4096, 8);
    // Rewrite the header's tail: the name at byte 72, nothing else after it.
    let name = b"base.raw";
    let mut tail = vec![0u8; 4096 - 72];
    tail[..name.len()].copy_from_slice(name);
    write_at(&top, 72, &tail);
    write_at(&top, 8, &72u64.to_be_bytes());
    write_at(&top, 16, &(name.len() as u32).to_be_bytes());
    let guard = BaseGuard::new(&[&top, &base]);
    let out = d.path().join("out.raw");
    // Such an image has no room for a recorded backing format: the gate
    // refuses it unless probing is allowed.
    qfault_expect(["info", top.to_str().unwrap()], 3);
    qfault_ok([
        "export",
        "--probe-backing",
        "-f",
        "qcow2",
        top.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), qemu_raw_bytes(&top));
    guard.assert_unchanged();
}

//! Standalone outputs (`inject -O raw`, `-O qcow2-standalone`): the whole
//! damaged guest in one file, checked against QEMU's own flattening of the
//! equivalent overlay (`qemu-img convert -O raw`, `qemu-img compare`),
//! `qemu-img check`, re-runs byte for byte, and, for reflink clones, the
//! filesystem's own accounting on a loop-mounted XFS.

mod common;

use common::*;
use qfault::apply::{check_standalone, OutputFormat};
use qfault::image::{self, OpenOptions};
use qfault::recipe::Spec;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The sample's NTFS "C" partition.
const RECIPE: [&str; 3] = ["ntfs-boot", "--partition", "2"];

/// `qfault inject ntfs-boot BASE -o OUT --partition 2 EXTRA… --json`: the
/// Output object.
fn inject(base: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<&OsStr> = vec![OsStr::new("inject"), OsStr::new(RECIPE[0])];
    args.extend([base.as_os_str(), OsStr::new("-o"), out.as_os_str()]);
    args.extend(RECIPE[1..].iter().map(OsStr::new));
    args.extend(extra.iter().map(OsStr::new));
    args.push(OsStr::new("--json"));
    let doc = json_document(
        &qfault_ok(args),
        &["schema", "command", "base_chain", "output", "timings"],
    );
    doc["output"].clone()
}

/// `qemu-img convert -O raw IMG OUT`.
fn flatten(img: &Path, out: &Path) {
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-O"),
        OsStr::new("raw"),
        img.as_os_str(),
        out.as_os_str(),
    ]);
}

/// `qemu-img compare A B` must say the guests are identical.
fn assert_same_guest(a: &Path, b: &Path) {
    let out = qemu_img([OsStr::new("compare"), a.as_os_str(), b.as_os_str()]);
    assert!(out.contains("Images are identical"), "{out}");
}

/// Files hold the same bytes (compared by hash: the files may be large).
fn assert_same_file(a: &Path, b: &Path) {
    assert_eq!(
        std::fs::metadata(a).unwrap().len(),
        std::fs::metadata(b).unwrap().len(),
        "{} and {} differ in size",
        a.display(),
        b.display()
    );
    assert_eq!(
        sha256_file(a),
        sha256_file(b),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

/// A qcow2 chain on a copy of the sample: the sample, then a qcow2 overlay
/// holding 128 KiB in the MBR gap whose 5000-byte pattern repeats (zstd
/// shrinks it, deflate within QEMU's 4 KiB window cannot) and a run of
/// random bytes (stored uncompressed). Returns (top, files).
fn qcow2_chain(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let base = dir.join("sample.qcow2");
    std::fs::copy(sample_image(), &base).unwrap();
    let mid = dir.join("mid.qcow2");
    qemu_img_create_overlay(&mid, "sample.qcow2", "qcow2", &[], "64M");
    let unit = pattern(5000, 7);
    let repeated: Vec<u8> = unit.iter().cycle().take(128 << 10).copied().collect();
    let src = dir.join("repeated.bin");
    std::fs::write(&src, &repeated).unwrap();
    qemu_io(
        "qcow2",
        &mid,
        &[&format!(
            "write -s {} {} {}",
            src.display(),
            256 << 10,
            128 << 10
        )],
    );
    std::fs::remove_file(&src).unwrap();
    qemu_io_write_pattern("qcow2", &mid, 512 << 10, 64 << 10, 3);
    (mid.clone(), vec![base, mid])
}

#[test]
fn raw_output_of_a_qcow2_chain_equals_qemus_flattening_of_the_overlay() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let (top, files) = qcow2_chain(dir.path());
    let guard = BaseGuard::new(&files);

    let overlay = dir.path().join("ov.qcow2");
    let ov = inject(&top, &overlay, &[]);
    assert_eq!(ov["output_format"], "overlay");
    let want = dir.path().join("want.raw");
    flatten(&overlay, &want);

    let raw = dir.path().join("out.raw");
    let o = inject(&top, &raw, &["-O", "raw"]);
    assert_eq!(o["output_format"], "raw", "{o}");
    assert_eq!(o["status"], "written");
    assert_eq!(o["overlay"]["raw_copy"], "sparse-copy", "{o}");
    assert_eq!(o["overlay"]["backing_file"], Value::Null);
    assert_eq!(o["overlay"]["cluster_size"], Value::Null);
    assert_eq!(o["overlay"]["file_size"], 64 << 20);
    assert_same_file(&raw, &want);
    // The same targets and predictions as the overlay's.
    assert_eq!(o["targets"], ov["targets"]);
    // Holes stay holes: the sample stores a few MiB of its 64.
    let allocated = o["overlay"]["allocated_size"].as_u64().unwrap();
    assert!(allocated < 16 << 20, "{allocated} bytes allocated");

    // Re-runs: another path gets the same bytes; the same path is left alone.
    let again = dir.path().join("again.raw");
    inject(&top, &again, &["-O", "raw"]);
    assert_same_file(&raw, &again);
    let o = inject(&top, &raw, &["-O", "raw"]);
    assert_eq!(o["status"], "unchanged");
    assert_eq!(o["overlay"]["raw_copy"], "none");
    // Other bytes at the path need --overwrite.
    write_at(&again, 300 << 10, b"x");
    let mut args = vec!["inject", "ntfs-boot"];
    let again_s = again.to_str().unwrap();
    let top_s = top.to_str().unwrap();
    args.extend([top_s, "-o", again_s, "--partition", "2", "-O", "raw"]);
    qfault_expect(&args, 2);
    let o = inject(&top, &again, &["-O", "raw", "--overwrite"]);
    assert_eq!(o["status"], "replaced");
    assert_same_file(&raw, &again);
    guard.assert_unchanged();
}

#[test]
fn standalone_qcow2_plain_zlib_and_zstd_pass_qemu_img_check_and_compare() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let (top, files) = qcow2_chain(dir.path());
    let guard = BaseGuard::new(&files);
    let overlay = dir.path().join("ov.qcow2");
    inject(&top, &overlay, &[]);

    for (name, extra, compression) in [
        ("plain", vec![], Value::Null),
        ("zlib", vec!["--compress", "zlib"], "zlib".into()),
        ("zstd", vec!["--compress", "zstd"], "zstd".into()),
    ] {
        let out = dir.path().join(format!("{name}.qcow2"));
        let mut args = vec!["-O", "qcow2-standalone"];
        args.extend(extra.iter().copied());
        let o = inject(&top, &out, &args);
        assert_eq!(o["output_format"], "qcow2-standalone", "{o}");
        assert_eq!(o["overlay"]["compression"], compression, "{o}");
        assert_eq!(o["overlay"]["backing_file"], Value::Null);
        assert_eq!(o["overlay"]["zero_clusters"], 0);
        assert_qemu_img_check_clean(&out);
        let info: Value = serde_json::from_str(&qemu_img([
            OsStr::new("info"),
            OsStr::new("--output=json"),
            out.as_os_str(),
        ]))
        .unwrap();
        assert_eq!(info["format"], "qcow2");
        assert!(info.get("backing-filename").is_none(), "{info}");
        assert_eq!(info["virtual-size"], 64 << 20);
        assert_eq!(info["cluster-size"], o["overlay"]["cluster_size"]);
        assert_eq!(
            info["format-specific"]["data"]["compression-type"],
            if name == "zstd" { "zstd" } else { "zlib" },
            "{info}"
        );
        assert_same_guest(&out, &overlay);
        let stored = o["overlay"]["data_clusters"].as_u64().unwrap();
        if name == "plain" {
            assert_eq!(o["overlay"]["compressed_clusters"], Value::Null);
        } else {
            let n = o["overlay"]["compressed_clusters"].as_u64().unwrap();
            assert!(n > 0 && n <= stored, "{o}");
            // Compressed and uncompressed clusters side by side, all of
            // them read back by QEMU (the compare above).
            assert!(n < stored, "the random cluster is stored as it is: {o}");
            let plain = std::fs::metadata(dir.path().join("plain.qcow2"))
                .unwrap()
                .len();
            assert!(std::fs::metadata(&out).unwrap().len() < plain / 2);
        }
        // Unallocated where the guest reads zeros: QEMU maps no data there.
        let map: Value = serde_json::from_str(&qemu_img([
            OsStr::new("map"),
            OsStr::new("--output=json"),
            out.as_os_str(),
        ]))
        .unwrap();
        let data: u64 = map
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"] == true)
            .map(|e| e["length"].as_u64().unwrap())
            .sum();
        let cs = o["overlay"]["cluster_size"].as_u64().unwrap();
        assert_eq!(data, stored * cs, "{map}");

        // Re-run: byte-identical, and the existing file is left alone.
        let again = dir.path().join(format!("{name}-again.qcow2"));
        inject(&top, &again, &args);
        assert_same_file(&out, &again);
        let o = inject(&top, &out, &args);
        assert_eq!(o["status"], "unchanged", "{o}");
    }
    guard.assert_unchanged();
}

#[test]
fn raw_base_outside_a_reflink_filesystem_gets_a_sparse_copy() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    // tmp is ext4 or tmpfs here: no FICLONE, so the fallback runs.
    let dir = tmpdir();
    let base = dir.path().join("base.raw");
    flatten(&sample_image(), &base);
    let guard = BaseGuard::new(&[&base]);
    let overlay = dir.path().join("ov.qcow2");
    inject(&base, &overlay, &[]);
    let want = dir.path().join("want.raw");
    flatten(&overlay, &want);
    let raw = dir.path().join("out.raw");
    let o = inject(&base, &raw, &["-O", "raw"]);
    if o["overlay"]["raw_copy"] == "reflink" {
        eprintln!("note: the temporary directory supports reflinks");
    }
    assert_same_file(&raw, &want);
    let sq = dir.path().join("out.qcow2");
    inject(
        &base,
        &sq,
        &["-O", "qcow2-standalone", "--compress", "zlib"],
    );
    assert_qemu_img_check_clean(&sq);
    assert_same_guest(&sq, &overlay);
    guard.assert_unchanged();
}

#[test]
fn the_check_refuses_a_standalone_image_that_lacks_the_damage() {
    // The post-write check of a standalone output is real: the undamaged
    // base, offered as the written image, is refused.
    let dir = tmpdir();
    let base_path = dir.path().join("base.raw");
    if !require_tool("qemu-img") {
        return;
    }
    flatten(&sample_image(), &base_path);
    let mut base = image::open(&base_path, &OpenOptions::default()).unwrap();
    let spec = Spec::parse("ntfs-boot --partition 2").unwrap();
    let plan = spec.plan(&mut base).unwrap();
    let mut written = qfault::standalone::open_raw(&base_path, &base_path).unwrap();
    let e = check_standalone(&mut written, &mut base, &spec, &plan).unwrap_err();
    assert_eq!(e.kind(), qfault::error::ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("guest byte 17825792"), "{e}");
}

#[test]
fn options_that_do_not_apply_are_usage_errors() {
    let dir = tmpdir();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let s = sample_image();
    let s = s.to_str().unwrap();
    for extra in [
        vec!["-O", "raw", "--compress", "zlib"],
        vec!["--compress", "zstd"],
        vec!["-O", "qcow2-standalone", "--absolute-backing"],
        vec!["-O", "vmdk"],
    ] {
        let mut args = vec!["inject", "ntfs-boot", s, "-o", o, "--partition", "2"];
        args.extend(extra.iter().copied());
        let r = qfault_expect(&args, 2);
        assert!(!out.exists(), "{extra:?}");
        let err = String::from_utf8_lossy(&r.stderr).to_string();
        assert!(
            err.contains("--compress")
                || err.contains("--absolute-backing")
                || err.contains("vmdk"),
            "{extra:?}: {err}"
        );
    }
    assert_eq!(OutputFormat::parse("raw", None).unwrap(), OutputFormat::Raw);
}

#[test]
fn batch_manifests_choose_the_output_format() {
    if !require_tool("qemu-img") {
        return;
    }
    let dir = tmpdir();
    let base = dir.path().join("sample.qcow2");
    std::fs::copy(sample_image(), &base).unwrap();
    let guard = BaseGuard::new(&[&base]);
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        r#"
[[image]]
base = "sample.qcow2"
output = "ov.qcow2"
recipe = "ntfs-boot"
partition = 2

[[image]]
base = "sample.qcow2"
output = "flat.raw"
output_format = "raw"
recipe = "ntfs-boot"
partition = 2

[[image]]
base = "sample.qcow2"
output = "whole.qcow2"
output_format = "qcow2-standalone"
compress = "zstd"
recipe = "ntfs-boot"
partition = 2
"#,
    )
    .unwrap();
    let text = qfault_ok([OsStr::new("batch"), m.as_os_str(), OsStr::new("--json")]);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let formats: Vec<&Value> = doc["batch"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["outputs"][0]["output_format"])
        .collect();
    assert_eq!(formats, ["overlay", "raw", "qcow2-standalone"], "{doc}");
    let want = dir.path().join("want.raw");
    flatten(&dir.path().join("ov.qcow2"), &want);
    assert_same_file(&dir.path().join("flat.raw"), &want);
    assert_qemu_img_check_clean(&dir.path().join("whole.qcow2"));
    assert_same_guest(
        &dir.path().join("whole.qcow2"),
        &dir.path().join("ov.qcow2"),
    );

    // A compression on a raw output is an error naming the field.
    std::fs::write(
        &m,
        "[[image]]\nbase = \"sample.qcow2\"\noutput = \"x.raw\"\noutput_format = \"raw\"\ncompress = \"zlib\"\nrecipe = \"empty\"\n",
    )
    .unwrap();
    let r = qfault_expect([OsStr::new("batch"), m.as_os_str()], 2);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("image[0].compress"), "{err}");
    guard.assert_unchanged();
}

/// A loop-mounted filesystem image, unmounted (and its loop device freed)
/// when dropped.
struct Mounted {
    dir: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// Free bytes of the filesystem holding `path` (`stat -f`).
fn free_bytes(path: &Path) -> u64 {
    // Let delayed allocation and unwritten extents settle first.
    sh("sync", ["-f", path.to_str().unwrap()]);
    let out = sh("stat", ["-f", "-c", "%f %S", path.to_str().unwrap()]);
    let v: Vec<u64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    v[0] * v[1]
}

#[test]
fn raw_output_of_a_raw_base_on_xfs_is_a_reflink_clone_sharing_unchanged_blocks() {
    if !require_tools(&["qemu-img", "mkfs.xfs", "xfs_io", "mount", "umount"]) {
        return;
    }
    let dir = tmpdir();
    let fs_img = dir.path().join("xfs.img");
    sparse_file(&fs_img, 512 << 20);
    sh(
        "mkfs.xfs",
        ["-q", "-m", "reflink=1", fs_img.to_str().unwrap()],
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    sh(
        "mount",
        [
            "-o",
            "loop",
            fs_img.to_str().unwrap(),
            mnt.to_str().unwrap(),
        ],
    );
    let _mounted = Mounted { dir: mnt.clone() };

    // A 2 GiB raw base holding the sample's few MiB.
    let base = mnt.join("base.raw");
    flatten(&sample_image(), &base);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&base)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let guard = BaseGuard::new(&[&base]);
    let base_alloc = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&base).unwrap().blocks() * 512
    };
    assert!(base_alloc > 1 << 20, "{base_alloc}");

    let before = free_bytes(&mnt);
    let raw = mnt.join("out.raw");
    let o = inject(&base, &raw, &["-O", "raw"]);
    let after = free_bytes(&mnt);
    assert_eq!(o["overlay"]["raw_copy"], "reflink", "{o}");
    assert_eq!(o["overlay"]["file_size"], 2u64 << 30);
    // Only the changed block is new (one 512-byte sector in one 4 KiB
    // block), plus a little metadata: far less than the base's data.
    let used = before.saturating_sub(after);
    assert!(
        used < 256 << 10 && used < base_alloc / 8,
        "the clone took {used} bytes (base data {base_alloc})"
    );
    // The kernel reports the clone's extents as shared with the base.
    let fiemap = sh("xfs_io", ["-r", "-c", "fiemap -v", raw.to_str().unwrap()]);
    let shared = fiemap
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|flags| {
            u64::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 0x2000 != 0)
        })
        .count();
    assert!(shared > 0, "no shared extents:\n{fiemap}");

    // Same bytes as QEMU's flattening of the equivalent overlay.
    let overlay = mnt.join("ov.qcow2");
    inject(&base, &overlay, &[]);
    let cmp = qemu_img([
        OsStr::new("compare"),
        OsStr::new("-f"),
        OsStr::new("raw"),
        OsStr::new("-F"),
        OsStr::new("qcow2"),
        raw.as_os_str(),
        overlay.as_os_str(),
    ]);
    assert!(cmp.contains("Images are identical"), "{cmp}");
    // Re-run: byte-identical to the first.
    let again = mnt.join("again.raw");
    inject(&base, &again, &["-O", "raw"]);
    assert_same_file(&raw, &again);

    // The same base written to another filesystem cannot be cloned: the
    // sparse copy holds the same bytes.
    let elsewhere = dir.path().join("elsewhere.raw");
    let o = inject(&base, &elsewhere, &["-O", "raw"]);
    assert_eq!(o["overlay"]["raw_copy"], "sparse-copy", "{o}");
    assert_same_file(&raw, &elsewhere);
    guard.assert_unchanged();
}

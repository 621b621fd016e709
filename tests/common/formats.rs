//! The acceptance every base format must meet (issue 17), checked against
//! QEMU and the real tools: an image made by `qemu-img convert -O FMT` from
//! a disk with partitions (the shipped NTFS sample; an ext4 disk) reads
//! exactly as QEMU reads it, inspects as blkid sees the raw disk, and takes
//! `inject ntfs-boot` to an overlay QEMU accepts and ntfsfix repairs as
//! predicted.

use super::linux::{code_and_text, ext4_disk, tool, Table};
use super::{assert_qemu_img_check_clean, qemu_img, qfault_ok, sample_image, tmpdir, BaseGuard};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Converts `src` to `FMT` with `qemu-img convert -O FMT [-o OPTS]` into a
/// directory of its own (a format may write several files), returning the
/// image and every file the conversion made.
pub fn convert_to(src: &Path, dir: &Path, fmt: &str, opts: &[&str]) -> (PathBuf, Vec<PathBuf>) {
    std::fs::create_dir_all(dir).unwrap();
    let img = dir.join(format!("disk.{fmt}"));
    let mut args: Vec<&OsStr> = vec![
        "convert".as_ref(),
        "-q".as_ref(),
        "-O".as_ref(),
        fmt.as_ref(),
    ];
    args.extend(opts.iter().map(OsStr::new));
    args.extend([src.as_os_str(), img.as_os_str()]);
    qemu_img(args);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    (img, files)
}

fn json(args: &[&OsStr]) -> Value {
    serde_json::from_str(&qfault_ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn qemu_json(args: &[&OsStr]) -> Value {
    serde_json::from_str(&qemu_img(args)).unwrap()
}

/// `img` (format `fmt`) reads as QEMU reads it: `qfault info` agrees with
/// `qemu-img info` on format and virtual size; `qfault export` equals
/// `qemu-img convert -O raw` byte for byte (returned: that raw file);
/// `qfault inspect` of `img` equals `qfault inspect` of the raw conversion,
/// and every filesystem it names is what `blkid -p` says of that partition
/// of the raw conversion.
pub fn assert_reads_like_qemu(img: &Path, fmt: &str, work: &Path) -> PathBuf {
    // QEMU is told the format (its probe reads a fixed VHD, footer at the
    // end, as raw); qfault must find it by itself.
    let q = qemu_json(&[
        "info".as_ref(),
        "-f".as_ref(),
        fmt.as_ref(),
        "--output=json".as_ref(),
        img.as_os_str(),
    ]);
    let ours = json(&["info".as_ref(), "--json".as_ref(), img.as_os_str()]);
    let top = &ours["chain"][0];
    assert_eq!(top["format"], fmt, "{ours:#}");
    assert_eq!(
        q["format"],
        fmt,
        "qemu-img reads {} as {}",
        img.display(),
        q["format"]
    );
    assert_eq!(
        top["virtual_size"], q["virtual-size"],
        "virtual size: {ours:#} vs {q:#}"
    );

    let reference = work.join(format!("{fmt}-qemu.raw"));
    qemu_img([
        "convert".as_ref(),
        "-f".as_ref(),
        fmt.as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        img.as_os_str(),
        reference.as_os_str(),
    ]);
    let exported = work.join(format!("{fmt}-qfault.raw"));
    qfault_ok([
        "export".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        exported.as_os_str(),
    ]);
    assert!(
        std::fs::read(&exported).unwrap() == std::fs::read(&reference).unwrap(),
        "qfault export of {} differs from qemu-img convert -O raw",
        img.display()
    );
    std::fs::remove_file(&exported).unwrap();

    let a = json(&["inspect".as_ref(), "--json".as_ref(), img.as_os_str()]);
    let b = json(&["inspect".as_ref(), "--json".as_ref(), reference.as_os_str()]);
    for key in ["table", "disk_size", "sector_size", "gpt", "partitions"] {
        assert_eq!(a[key], b[key], "inspect {key}: {fmt} vs its raw conversion");
    }
    let parts = a["partitions"].as_array().expect("partitions");
    assert!(!parts.is_empty(), "no partition found in {}", img.display());
    for p in parts {
        let (off, len) = (p["offset"].as_u64().unwrap(), p["length"].as_u64().unwrap());
        let out = super::run_any(
            tool("blkid")
                .args([
                    "-p",
                    "-o",
                    "export",
                    "-O",
                    &off.to_string(),
                    "-S",
                    &len.to_string(),
                ])
                .arg(&reference),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(super::blkid_unescape)
        };
        assert_eq!(
            field("TYPE").as_deref(),
            p["filesystem"].as_str(),
            "partition {}: blkid says {text}",
            p["number"]
        );
        if let Some(uuid) = field("UUID") {
            assert_eq!(Some(uuid.as_str()), p["uuid"].as_str(), "{text}");
        }
        if let Some(label) = field("LABEL") {
            assert_eq!(Some(label.as_str()), p["label"].as_str(), "{text}");
        }
    }
    reference
}

/// The outcome of `role` for `tool` in a prediction.
fn outcome<'a>(pr: &'a Value, role: &str, tool: &str) -> &'a Value {
    pr["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == role && o["tool"] == tool)
        .unwrap_or_else(|| panic!("no {role} outcome for {tool}: {pr:#}"))
}

/// Runs the predicted command of `o` (its `PART` being `part`) and checks
/// the real exit code and key message against the prediction.
fn assert_real(o: &Value, part: &Path) {
    let name = o["tool"].as_str().unwrap();
    let words: Vec<&str> = o["command"].as_str().unwrap().split(' ').collect();
    assert_eq!(words[0], name, "{o}");
    let mut c = tool(name);
    for w in &words[1..] {
        match *w {
            "PART" => c.arg(part),
            w => c.arg(w),
        };
    }
    let (code, text) = code_and_text(&mut c);
    assert_eq!(
        Some(code as i64),
        o["exit_code"].as_i64(),
        "real {name} exited otherwise than predicted ({o}):\n{text}"
    );
    if let Some(m) = o["message"].as_str() {
        assert!(text.contains(m), "real {name} did not say {m:?}:\n{text}");
    }
}

/// `inject ntfs-boot --partition 1` on `img` (format `fmt`, whose raw
/// conversion is `reference`): the overlay records `fmt` as its backing
/// format and `qemu-img check` accepts it; the report equals the one for
/// the raw conversion; QEMU reads through it exactly the reference with
/// the reported changes zeroed; on the partition QEMU reads, the real
/// blkid, ntfsfix and (after the repair) ntfsresize behave as predicted.
pub fn assert_ntfs_boot_through(img: &Path, fmt: &str, reference: &Path, work: &Path) {
    let inject = |base: &Path, out: &Path| {
        json(&[
            "inject".as_ref(),
            "ntfs-boot".as_ref(),
            base.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--partition".as_ref(),
            "1".as_ref(),
            "--json".as_ref(),
        ])
    };
    let overlay = work.join(format!("{fmt}-damaged.qcow2"));
    let report = inject(img, &overlay);
    assert_qemu_img_check_clean(&overlay);
    let q = qemu_json(&[
        "info".as_ref(),
        "--output=json".as_ref(),
        overlay.as_os_str(),
    ]);
    assert_eq!(q["backing-filename-format"], fmt, "{q:#}");
    assert_eq!(
        report["output"]["overlay"]["backing_format"], fmt,
        "{report:#}"
    );

    let ref_overlay = work.join(format!("{fmt}-reference-damaged.qcow2"));
    let ref_report = inject(reference, &ref_overlay);
    let targets = &report["output"]["targets"];
    assert_eq!(
        targets, &ref_report["output"]["targets"],
        "the {fmt} base and its raw conversion give different reports"
    );

    // What QEMU reads through the overlay: the reference, zeroed where reported.
    let through = work.join(format!("{fmt}-damaged.raw"));
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        overlay.as_os_str(),
        through.as_os_str(),
    ]);
    let mut expected = std::fs::read(reference).unwrap();
    let got = std::fs::read(&through).unwrap();
    let t = &targets[0];
    for c in t["changes"].as_array().unwrap() {
        let (off, len) = (
            c["offset"].as_u64().unwrap() as usize,
            c["length"].as_u64().unwrap() as usize,
        );
        assert!(
            expected[off..off + len].iter().any(|&b| b != 0),
            "nothing to zero"
        );
        expected[off..off + len].fill(0);
    }
    assert!(
        got == expected,
        "QEMU reads other bytes through the {fmt} overlay than planned"
    );

    // The real tools on the damaged partition as QEMU reads it.
    let (start, len) = (
        t["partition"]["offset"].as_u64().unwrap() as usize,
        t["partition"]["length"].as_u64().unwrap() as usize,
    );
    let part = work.join(format!("{fmt}-p1.raw"));
    std::fs::write(&part, &got[start..start + len]).unwrap();
    drop((got, expected));
    let pr = &t["prediction"];
    assert_real(outcome(pr, "identify", "blkid"), &part);
    assert_real(outcome(pr, "repair", "ntfsfix"), &part);
    assert_real(outcome(pr, "after-repair", "ntfsresize"), &part);
}

/// The whole acceptance for `fmt` made with `qemu-img convert -O FMT OPTS`:
/// the NTFS sample and an ext4 disk read like QEMU reads them; `inject
/// ntfs-boot` through the NTFS one is proven with the real tools; no file
/// of either base changes.
pub fn assert_base_format(fmt: &str, opts: &[&str]) {
    if !super::require_tools(&[
        "qemu-img",
        "blkid",
        "ntfsfix",
        "ntfsresize",
        "mkfs.ext4",
        "sfdisk",
    ]) {
        return;
    }
    let dir = tmpdir();
    let w = dir.path();
    let (img, files) = convert_to(&sample_image(), &w.join("ntfs"), fmt, opts);
    let guard = BaseGuard::new(&files);
    let reference = assert_reads_like_qemu(&img, fmt, w);
    assert_ntfs_boot_through(&img, fmt, &reference, w);
    guard.assert_unchanged();

    let ext4 = ext4_disk(w, "ext4", Table::Mbr);
    let (img, files) = convert_to(&ext4.raw, &w.join("ext4-img"), fmt, opts);
    let guard = BaseGuard::new(&files);
    let ext4_work = w.join("ext4-work");
    std::fs::create_dir_all(&ext4_work).unwrap();
    assert_reads_like_qemu(&img, fmt, &ext4_work);
    guard.assert_unchanged();
}

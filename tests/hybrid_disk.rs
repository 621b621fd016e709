//! A filesystem spanning the whole disk next to a partition table (a hybrid
//! ISO image: an ISO 9660 volume whose system area holds an MBR listing an
//! EFI-style FAT32 partition). `blkid -p` reports both the TYPE and the
//! PTTYPE; `qfault inspect` lists the whole-disk filesystem as partition 0
//! and the table's partitions as sfdisk does; a recipe still picks the FAT32
//! partition, and `verify` judges the damage by that partition alone.

mod common;

use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// A 40 MiB hybrid image: genisoimage's volume, an MBR (sfdisk, signatures
/// kept) with partition 1 at 4 MiB holding FAT32.
fn hybrid(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("iso-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("readme.txt"), b"hybrid\n").unwrap();
    let iso = dir.join("hybrid.iso");
    run(cmd("genisoimage", ["-quiet", "-V", "HYBRID", "-o"])
        .arg(&iso)
        .arg(&src));
    let f = std::fs::OpenOptions::new().write(true).open(&iso).unwrap();
    f.set_len(40 * MIB).unwrap();
    drop(f);
    let mut c = cmd("sfdisk", ["-q", "--wipe", "never"]);
    c.arg(&iso).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    writeln!(
        child.stdin.take().unwrap(),
        "label: dos\nstart={}, size={}, type=ef",
        4 * MIB / 512,
        34 * MIB / 512
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    run(&mut cmd(
        "mkfs.vfat",
        [
            "-F".to_string(),
            "32".into(),
            "--offset".into(),
            (4 * MIB / 512).to_string(),
            iso.to_str().unwrap().into(),
            (34 * MIB / 1024).to_string(),
        ],
    ));
    iso
}

#[test]
fn inspect_reports_the_whole_disk_filesystem_and_the_table() {
    if !require_tools(&[
        "genisoimage",
        "sfdisk",
        "mkfs.vfat",
        "blkid",
        "qemu-img",
        "fsck.fat",
    ]) {
        return;
    }
    let dir = tmpdir();
    let iso = hybrid(dir.path());
    // The oracle: blkid sees both on the whole disk.
    let b = blkid(&iso);
    assert_eq!(b.get("TYPE").map(String::as_str), Some("iso9660"), "{b:?}");
    assert_eq!(b.get("PTTYPE").map(String::as_str), Some("dos"), "{b:?}");
    let base = dir.path().join("hybrid.qcow2");
    qemu_img_to_qcow2(&iso, &base, &[]);
    let guard = BaseGuard::new(&[&base]);
    let v: Value = serde_json::from_slice(
        &qfault_expect(["inspect", base.to_str().unwrap(), "--json"], 0).stdout,
    )
    .unwrap();
    assert_eq!(v["table"], "dos");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{v:#}");
    assert_eq!(parts[0]["number"], 0);
    assert_eq!(parts[0]["offset"], 0);
    assert_eq!(parts[0]["length"], 40 * MIB);
    assert_eq!(parts[0]["filesystem"], "iso9660");
    assert_eq!(parts[0]["label"], b["LABEL"].as_str());
    // One warning, naming the hybrid layout; no overlap warnings although
    // partition 0 covers the table's partitions.
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v:#}");
    assert!(warnings[0].as_str().unwrap().contains("hybrid"), "{v:#}");
    // The table's partitions as sfdisk lists them.
    let sf: Value = serde_json::from_str(&sh("sfdisk", ["--json", iso.to_str().unwrap()])).unwrap();
    let table = sf["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(parts[1]["number"], 1);
    assert_eq!(
        parts[1]["offset"].as_u64().unwrap(),
        table[0]["start"].as_u64().unwrap() * 512
    );
    assert_eq!(parts[1]["filesystem"], "vfat");

    // A FAT recipe picks the table's FAT32 partition; verify judges it alone.
    let out = dir.path().join("dirty.qcow2");
    let r: Value = serde_json::from_slice(
        &qfault_expect(
            [
                "inject",
                "fat32-dirty",
                base.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--json",
            ],
            0,
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(r["output"]["targets"][0]["partition"]["number"], 1);
    let ver: Value = serde_json::from_slice(
        &qfault_expect(
            [
                "verify",
                out.to_str().unwrap(),
                "--expect",
                "repairable",
                "--json",
            ],
            0,
        )
        .stdout,
    )
    .unwrap();
    let judged: Vec<u64> = ver["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"]["number"].as_u64().unwrap())
        .collect();
    assert_eq!(judged, [1], "{ver:#}");
    assert_qemu_img_check_clean(&out);
    guard.assert_unchanged();
}

/// libblkid probes filesystems and partition tables independently
/// (`blkid_probe_is_covered_by_pt` is consulted only by its zfs and
/// linux_raid probes; "tolerant" matters only between superblocks): an
/// ext4 volume at offset 0 under a DOS table whose partition covers it is
/// reported with both TYPE and PTTYPE by `blkid -p`, and `inspect` lists it
/// as partition 0 beside the table.
#[test]
fn blkid_reports_an_intolerant_filesystem_beside_a_covering_table_too() {
    if !require_tools(&["sfdisk", "mkfs.ext4", "blkid", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let img = dir.path().join("ext4-dos.raw");
    sparse_file(&img, 32 * MIB);
    run(cmd("mkfs.ext4", ["-q", "-F"]).arg(&img));
    let table = dir.path().join("table.raw");
    sparse_file(&table, 32 * MIB);
    let mut c = cmd("sfdisk", ["-q"]);
    c.arg(&table).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "label: dos\n2048,,83").unwrap();
    assert!(child.wait().unwrap().success());
    write_at(&img, 0, &std::fs::read(&table).unwrap()[..512]);
    let b = blkid(&img);
    assert_eq!(b.get("TYPE").map(String::as_str), Some("ext4"), "{b:?}");
    assert_eq!(b.get("PTTYPE").map(String::as_str), Some("dos"), "{b:?}");
    let q = dir.path().join("ext4-dos.qcow2");
    qemu_img_to_qcow2(&img, &q, &[]);
    let v: Value = serde_json::from_slice(
        &qfault_expect(["inspect", q.to_str().unwrap(), "--json"], 0).stdout,
    )
    .unwrap();
    assert_eq!(v["table"], "dos", "{v:#}");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{v:#}");
    assert_eq!(parts[0]["number"], 0);
    assert_eq!(parts[0]["filesystem"], "ext4");
    assert_eq!(parts[1]["offset"], MIB);
}

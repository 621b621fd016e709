//! Regressions from real images nobody here made (`make corpus`, issue 19),
//! rebuilt small with the real tools so the suite needs no download:
//!
//! - a partition holding two filesystem signatures (the DFTT images: an
//!   NTFS volume whose boot area also carries an ext2 superblock): blkid
//!   says "ambivalent result", `inspect` reports it, recipes refuse it
//!   (exit 3) unless `--fs` names the filesystem, and the `ntfs-boot`
//!   prediction on it holds against the real blkid, ntfsfix and ntfs-3g;
//! - a UDF bridge disc (genisoimage `-udf`): blkid says `udf`, not `iso9660`;
//! - a GPT disk cut short: sfdisk falls back to the protective MBR, blkid
//!   reports PTTYPE `PMBR`; `inspect` follows with a warning, exit 0.

mod common;

use common::linux::{code_and_text, linux_disk, qemu_extract, tool, Table};
use common::*;
use serde_json::Value;
use std::path::Path;

const MIB: u64 = 1 << 20;

fn inspect_json(image: &Path) -> Value {
    let out = qfault_ok(["inspect".as_ref(), "--json".as_ref(), image.as_os_str()]);
    serde_json::from_str(&out).unwrap()
}

/// `blkid -p` exit code and output.
fn blkid_probe(file: &Path) -> (i32, String) {
    code_and_text(tool("blkid").arg("-p").arg(file))
}

/// An MBR disk whose partition 1 (24 MiB) is an NTFS volume made by mkntfs
/// with the superblock of an ext2 volume (mkfs.ext2 on a file of the same
/// size) copied to byte 1024, inside NTFS's boot area: both signatures
/// pass blkid's checks, as on the DFTT images.
fn ntfs_plus_ext2(dir: &Path) -> common::linux::LinuxDisk {
    linux_disk(dir, "amb", Table::Mbr, 24 * MIB, |vol| {
        run(tool("mkntfs")
            .args(["-Q", "-F", "-q", "-L", "BOTH"])
            .arg(vol));
        let ext = vol.with_extension("ext2");
        sparse_file(&ext, 24 * MIB);
        run(tool("mkfs.ext2").args(["-q", "-F", "-L", "side"]).arg(&ext));
        let bytes = std::fs::read(&ext).unwrap();
        write_at(vol, 1024, &bytes[1024..2048]);
        std::fs::remove_file(&ext).unwrap();
    })
}

#[test]
fn ambivalent_signatures_are_reported_as_blkid_reports_them() {
    if !require_tools(&["mkntfs", "mkfs.ext2", "sfdisk", "blkid", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let disk = ntfs_plus_ext2(dir.path());
    let part = dir.path().join("p1.raw");
    qemu_extract(&disk.base, disk.start, disk.size, &part);
    // The oracle: blkid finds both and names neither.
    let (code, text) = blkid_probe(&part);
    assert_eq!(code, 8, "{text}");
    assert!(text.contains("ambivalent result"), "{text}");

    let j = inspect_json(&disk.base);
    let p1 = &j["partitions"][0];
    assert_eq!(p1["number"], 1);
    assert_eq!(p1["filesystem"], Value::Null);
    assert_eq!(p1["label"], Value::Null);
    assert_eq!(p1["ambivalent"], serde_json::json!(["ext2", "ntfs"]));
    assert!(
        j["warnings"][0].as_str().unwrap().contains("ambivalent"),
        "{j}"
    );
    let human = qfault_ok(["inspect".as_ref(), disk.base.as_os_str()]);
    assert!(human.contains("ambivalent: ext2+ntfs"), "{human}");
}

#[test]
fn recipes_refuse_an_ambivalent_partition_unless_fs_names_it() {
    if !require_tools(&[
        "mkntfs",
        "mkfs.ext2",
        "ntfsfix",
        "ntfs-3g",
        "blkid",
        "qemu-img",
    ]) {
        return;
    }
    let dir = tmpdir();
    let disk = ntfs_plus_ext2(dir.path());
    let guard = BaseGuard::new(&[&disk.base]);
    let out = dir.path().join("nb.qcow2");
    let base = disk.base.to_str().unwrap();
    let o = out.to_str().unwrap();
    // Without --fs: refused with the reason, nothing written.
    for args in [
        vec!["inject", "ntfs-boot", base, "-o", o, "--partition", "1"],
        vec!["inject", "ntfs-boot", base, "-o", o],
        vec!["inject", "ntfs-dirty", base, "-o", o, "--partition", "1"],
    ] {
        let r = qfault_expect(&args, 3);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains("ambivalent") && err.contains("--fs"),
            "{args:?}: {err}"
        );
        assert!(!out.exists());
    }
    // A recipe for a filesystem that is not among the signatures: refused
    // as any partition without it.
    let r = qfault_expect(
        ["inject", "ext4-unclean", base, "-o", o, "--partition", "1"],
        3,
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("does not hold ext4"));
    // --fs naming another filesystem than the recipe's: a usage error.
    qfault_expect(
        [
            "inject",
            "ntfs-boot",
            base,
            "-o",
            o,
            "--partition",
            "1",
            "--fs",
            "ext2",
        ],
        2,
    );
    // --fs ntfs: the recipe acts, and its prediction holds.
    let r = qfault_ok([
        "inject",
        "ntfs-boot",
        base,
        "-o",
        o,
        "--partition",
        "1",
        "--fs",
        "ntfs",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&r).unwrap();
    let outcomes = j["output"]["targets"][0]["prediction"]["outcomes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(outcomes[0]["role"], "identify");
    // With the NTFS boot sector gone only ext2 is left for blkid.
    assert_eq!(outcomes[0]["result"], "ext2");
    assert_qemu_img_check_clean(&out);
    let part = dir.path().join("nb-p1.raw");
    qemu_extract(&out, disk.start, disk.size, &part);
    let (code, text) = blkid_probe(&part);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("TYPE=\"ext2\""), "{text}");
    let repair = outcomes.iter().find(|o| o["role"] == "repair").unwrap();
    let (code, text) = code_and_text(tool("ntfsfix").arg(&part));
    assert_eq!(
        i64::from(code),
        repair["exit_code"].as_i64().unwrap(),
        "{text}"
    );
    assert!(text.contains(repair["message"].as_str().unwrap()), "{text}");
    // After the repair ntfs-3g mounts it (read-only here; the prediction
    // says read-write, which `ntfs_boot.rs` checks on its own fixtures).
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let (code, text) = code_and_text(tool("ntfs-3g").args(["-o", "ro"]).arg(&part).arg(&mnt));
    assert_eq!(code, 0, "{text}");
    run(tool("umount").arg(&mnt));
    guard.assert_unchanged();
}

#[test]
fn udf_bridge_disc_is_udf_as_blkid_says() {
    if !require_tools(&["genisoimage", "blkid"]) {
        return;
    }
    let dir = tmpdir();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"udf\n").unwrap();
    let iso = dir.path().join("bridge.iso");
    run(tool("genisoimage")
        .args(["-quiet", "-udf", "-V", "Bridge label", "-o"])
        .arg(&iso)
        .arg(&src));
    let oracle = blkid(&iso);
    assert_eq!(oracle["TYPE"], "udf", "{oracle:?}");
    let j = inspect_json(&iso);
    let p0 = &j["partitions"][0];
    assert_eq!(p0["filesystem"], "udf");
    assert_eq!(
        p0["label"].as_str(),
        oracle.get("LABEL").map(String::as_str)
    );
    assert_eq!(p0["uuid"].as_str(), oracle.get("UUID").map(String::as_str));
    assert_eq!(
        p0["version"].as_str(),
        oracle.get("VERSION").map(String::as_str)
    );
    assert_eq!(p0["ambivalent"], serde_json::json!([]));
}

#[test]
fn gpt_cut_short_falls_back_to_the_mbr_view_as_sfdisk_does() {
    if !require_tools(&["sgdisk", "sfdisk", "blkid"]) {
        return;
    }
    let dir = tmpdir();
    let raw = dir.path().join("gpt.raw");
    sparse_file(&raw, 16 * MIB);
    run(tool("sgdisk")
        .args(["-n", "1:2048:+4M", "-n", "2:0:+4M"])
        .arg(&raw));
    // Cut at 6 MiB: the backup header is gone and the primary's last usable
    // LBA lies past the end.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(6 * MIB)
        .unwrap();
    assert_eq!(blkid(&raw)["PTTYPE"], "PMBR");
    let sf: Value =
        serde_json::from_slice(&run(tool("sfdisk").arg("-J").arg(&raw)).stdout).unwrap();
    let t = &sf["partitiontable"];
    assert_eq!(t["label"], "dos");
    let j = inspect_json(&raw);
    assert_eq!(j["table"], "dos");
    assert!(
        j["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no valid GPT header"),
        "{j}"
    );
    let mine = j["partitions"].as_array().unwrap();
    let theirs = t["partitions"].as_array().unwrap();
    assert_eq!(mine.len(), theirs.len());
    for (m, s) in mine.iter().zip(theirs) {
        assert_eq!(
            m["offset"].as_u64().unwrap(),
            s["start"].as_u64().unwrap() * 512
        );
        assert_eq!(
            m["length"].as_u64().unwrap(),
            s["size"].as_u64().unwrap() * 512
        );
        assert_eq!(m["type"], "0xee");
        assert_eq!(s["type"], "ee");
    }
}

//! Filesystem identification against `blkid -p` for the families the disk
//! tests in `tests/inspect.rs` do not cover: exFAT, XFS, btrfs, LUKS1/2,
//! ISO 9660 (plain and Joliet), FAT32, ext3, NTFS with 4 KiB sectors. Each is
//! made by its real tool on a whole-disk file and inspected as a superfloppy.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// Makes `size` bytes with `make`, then compares inspect's partition 0 with blkid.
fn check(size: u64, want: &str, make: impl FnOnce(&Path, &Path)) -> Value {
    let dir = tmpdir();
    let img = dir.path().join("fs.img");
    sparse_file(&img, size);
    make(dir.path(), &img);
    let b = blkid(&img);
    assert_eq!(
        b.get("TYPE").map(String::as_str),
        Some(want),
        "blkid: {b:?}"
    );
    // A file that starts with a LUKS header is QEMU's `luks` format, not a
    // raw disk: refused unless read as raw on purpose (`-f raw`).
    let luks = want == "crypto_LUKS";
    if luks {
        let refused = qfault_expect(["inspect".as_ref(), img.as_os_str()], 1);
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("LUKS") && err.contains("-f raw"), "{err}");
    }
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["inspect".as_ref(), "--json".as_ref(), img.as_os_str()];
    if luks {
        args.extend([std::ffi::OsStr::new("-f"), std::ffi::OsStr::new("raw")]);
    }
    let out = qfault_ok(args);
    let v: Value = serde_json::from_str(&out).unwrap();
    let p = &v["partitions"][0];
    assert_eq!(p["number"], 0, "{v:#}");
    assert_eq!(v["schema"], 1, "{v:#}");
    assert_eq!(p["offset"], 0, "{v:#}");
    assert_eq!(p["length"], size);
    for (key, field) in [("TYPE", "filesystem"), ("LABEL", "label"), ("UUID", "uuid")] {
        assert_eq!(
            p[field].as_str(),
            b.get(key).map(String::as_str),
            "{key} of {want}: {v:#}"
        );
    }
    p.clone()
}

fn run_tool(program: &str, args: &[&str], img: &Path) {
    let mut a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_ref()).collect();
    a.push(img.as_os_str());
    sh(program, a);
}

#[test]
fn exfat() {
    if require_tools(&["mkfs.exfat", "blkid"]) {
        check(16 * MIB, "exfat", |_, img| {
            run_tool("mkfs.exfat", &["-L", "Stick"], img)
        });
    }
}

#[test]
fn xfs() {
    // mkfs.xfs refuses filesystems under 300 MB; the file stays sparse.
    if require_tools(&["mkfs.xfs", "blkid"]) {
        check(300 * MIB, "xfs", |_, img| {
            run_tool("mkfs.xfs", &["-q", "-L", "data"], img)
        });
    }
}

#[test]
fn btrfs() {
    if require_tools(&["mkfs.btrfs", "blkid"]) {
        check(32 * MIB, "btrfs", |_, img| {
            run_tool("mkfs.btrfs", &["-q", "-M", "-L", "pool"], img)
        });
    }
}

#[test]
fn luks1_and_luks2() {
    if !require_tools(&["cryptsetup", "blkid"]) {
        return;
    }
    for (ty, label) in [("luks1", None), ("luks2", Some("vault"))] {
        check(20 * MIB, "crypto_LUKS", |dir, img| {
            let key = dir.join("key");
            std::fs::write(&key, "passphrase").unwrap();
            let mut args = vec![
                "luksFormat",
                "-q",
                "--type",
                ty,
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                key.to_str().unwrap(),
            ];
            if let Some(l) = label {
                args.extend(["--label", l]);
            }
            run_tool("cryptsetup", &args, img);
        });
    }
}

#[test]
fn iso9660_plain_and_joliet() {
    if !require_tools(&["genisoimage", "blkid"]) {
        return;
    }
    for joliet in [false, true] {
        let dir = tmpdir();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("hello.txt"), "hi").unwrap();
        let iso = dir.path().join("disc.iso");
        let mut args = vec!["-quiet", "-V", "Install_Disc_2024"];
        if joliet {
            args.push("-J");
        }
        args.extend(["-o", iso.to_str().unwrap(), src.to_str().unwrap()]);
        sh("genisoimage", &args);
        let size = std::fs::metadata(&iso).unwrap().len();
        check(size, "iso9660", |_, img| {
            std::fs::copy(&iso, img).unwrap();
        });
    }
}

#[test]
fn fat32_and_ext3() {
    if !require_tools(&["mkfs.vfat", "mkfs.ext4", "blkid"]) {
        return;
    }
    check(40 * MIB, "vfat", |_, img| {
        run_tool("mkfs.vfat", &["-F", "32", "-n", "BIGFAT"], img)
    });
    check(16 * MIB, "ext3", |_, img| {
        run_tool("mkfs.ext4", &["-q", "-F", "-t", "ext3", "-L", "old"], img)
    });
}

#[test]
fn ntfs_with_4096_byte_sectors() {
    if !require_tools(&["mkntfs", "blkid"]) {
        return;
    }
    let p = check(16 * MIB, "ntfs", |_, img| {
        run_tool(
            "mkntfs",
            &["-q", "-Q", "-F", "-s", "4096", "-L", "Big"],
            img,
        )
    });
    assert_eq!(p["ntfs"]["bytes_per_sector"], 4096);
    // The backup is the last 4 KiB, not the last 512 bytes: ntfsfix on a
    // file could not use it.
    assert_eq!(p["ntfs"]["backup_boot_sector_ok"], false, "{p:#}");
}

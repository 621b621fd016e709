//! The Linux recipes (ext4, XFS, btrfs, LUKS2) against the real tools
//! (GitHub issue 14).
//!
//! Each test makes the filesystem with the real mkfs inside partition 1 of
//! an MBR or GPT disk, puts it under a qcow2 chain (base ← link), injects
//! with `qfault inject … --json`, takes the partition out through QEMU
//! (`qemu-img convert`), and runs every outcome the JSON predicts with the
//! real tool: blkid, the kernel mount through a loop device (as root), the
//! read-only checker (the partition must be unchanged after it), the repair
//! on a copy, then the after-repair outcomes (second run clean, mount).
//! The predicted exit code, key message and mount mode are compared with
//! what happened; `byte_identical_after_repair` with the sha256 of the
//! repaired partition. The bases are hashed before and after.

mod common;

use common::linux::{
    code_and_text, ext4_disk, linux_disk, mkfs_ext4, qemu_extract, sparse_copy, tool, LinuxDisk,
    Table,
};
use common::{
    assert_qemu_img_check_clean, qfault_expect, require_tools, sha256_file, tmpdir, BaseGuard,
};
use serde_json::Value;
use std::path::Path;

/// `qfault inject NAME TOP -o OUT --json ARGS`, exit 0, as JSON.
fn inject(name: &str, disk: &LinuxDisk, out: &Path, args: &[&str]) -> Value {
    let mut a = vec![
        "inject".to_string(),
        name.to_string(),
        disk.top.to_str().unwrap().to_string(),
        "-o".into(),
        out.to_str().unwrap().into(),
        "--json".into(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    let o = qfault_expect(&a, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The mode (`rw`/`ro`) of the mount on `dir`, if mounted.
fn mount_mode(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap()))
        .map(|l| {
            l.split(' ')
                .nth(3)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string()
        })
}

/// Runs outcome `o`'s command on `part` (mount point `mnt`) and compares
/// exit code, message and, for mounts, the mode with the prediction.
fn check_outcome(o: &Value, part: &Path, mnt: &Path) {
    let command = o["command"].as_str().unwrap();
    // "… PART (PART: losetup -r)": run on a read-only loop device.
    let (command, loop_dev) = match command.split_once(" (PART: losetup -r)") {
        Some((c, _)) => {
            let (code, dev) = code_and_text(tool("losetup").args(["-r", "-f", "--show"]).arg(part));
            assert_eq!(code, 0, "losetup -r: {dev}");
            (c, Some(dev.trim().to_string()))
        }
        None => (command, None),
    };
    let part_arg = loop_dev
        .clone()
        .unwrap_or_else(|| part.to_str().unwrap().to_string());
    let words: Vec<String> = command
        .split_whitespace()
        .map(|w| match w {
            "PART" => part_arg.clone(),
            "MNT" => mnt.to_str().unwrap().to_string(),
            w => w.to_string(),
        })
        .collect();
    let mut c = tool(&words[0]);
    c.args(&words[1..]);
    let (code, text) = code_and_text(&mut c);
    if let Some(dev) = loop_dev {
        let (dc, dt) = code_and_text(tool("losetup").arg("-d").arg(&dev));
        assert_eq!(dc, 0, "losetup -d {dev}: {dt}");
    }
    let mode = if o["tool"] == "mount" {
        let m = mount_mode(mnt);
        if m.is_some() {
            let (uc, ut) = code_and_text(tool("umount").arg(mnt));
            assert_eq!(uc, 0, "umount: {ut}");
        }
        m
    } else {
        None
    };
    let ctx = format!(
        "{command} on {}: exit {code}\n{text}\npredicted {o:#}",
        part.display()
    );
    assert_eq!(i64::from(code), o["exit_code"].as_i64().unwrap(), "{ctx}");
    if let Some(m) = o["message"].as_str() {
        assert!(text.contains(m), "message {m:?} missing: {ctx}");
    }
    match o["result"].as_str() {
        Some("read-write") => assert_eq!(mode.as_deref(), Some("rw"), "{ctx}"),
        Some("read-only") => assert_eq!(mode.as_deref(), Some("ro"), "{ctx}"),
        Some("refused") => assert_eq!(mode, None, "{ctx}"),
        _ => {}
    }
    if o["role"] == "identify" {
        let t = o["result"].as_str().map(|t| format!("TYPE=\"{t}\""));
        match t {
            Some(t) => assert!(text.contains(&t), "{ctx}"),
            None => assert!(!text.contains("TYPE="), "{ctx}"),
        }
    }
}

/// Injects `name` into `disk`, then runs every predicted outcome for real.
/// Returns the report.
fn prove(name: &str, disk: &LinuxDisk, args: &[&str]) -> Value {
    let guard = BaseGuard::new(&[&disk.base, &disk.top]);
    let w = disk.base.parent().unwrap();
    let overlay = w.join(format!("{name}.qcow2"));
    let report = inject(name, disk, &overlay, args);
    assert_qemu_img_check_clean(&overlay);
    let targets = report["output"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{report:#}");
    let t = &targets[0];
    let number = if disk.start == 0 { 0 } else { 1 };
    assert_eq!(t["partition"]["number"], number);
    assert_eq!(t["partition"]["offset"].as_u64(), Some(disk.start));
    let prediction = &t["prediction"];
    // `qfault verify` reads the overlay back and predicts the same.
    let v: Value = serde_json::from_slice(
        &qfault_expect(["verify", "--json", overlay.to_str().unwrap()], 0).stdout,
    )
    .unwrap();
    let vp = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"]["number"] == number)
        .unwrap_or_else(|| panic!("verify does not see partition {number}: {v:#}"));
    assert_eq!(&vp["prediction"], prediction, "verify vs inject");
    assert_eq!(v["verdict"], "repairable", "{v:#}");
    let outcomes = prediction["outcomes"].as_array().unwrap();
    let part = w.join(format!("{name}.part"));
    qemu_extract(&overlay, disk.start, disk.size, &part);
    // The damage is exactly the reported changes.
    let orig = w.join(format!("{name}.orig"));
    qemu_extract(&disk.top, disk.start, disk.size, &orig);
    assert_eq!(sha256_file(&orig), disk.volume_sha, "base partition");
    assert_changes(&orig, &part, t, disk.start);
    let damaged_sha = sha256_file(&part);
    let mnt = w.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let repaired = w.join(format!("{name}.repaired"));
    sparse_copy(&part, &repaired);
    let mut repaired_sha = None;
    for o in outcomes {
        match o["role"].as_str().unwrap() {
            "identify" | "check" => {
                check_outcome(o, &part, &mnt);
                assert_eq!(sha256_file(&part), damaged_sha, "{o} wrote");
            }
            "mount" => {
                // A read-write mount may replay a journal: on a copy.
                let scratch = w.join(format!("{name}.mnt"));
                sparse_copy(&part, &scratch);
                check_outcome(o, &scratch, &mnt);
                std::fs::remove_file(&scratch).unwrap();
            }
            "repair" => {
                check_outcome(o, &repaired, &mnt);
                repaired_sha = Some(sha256_file(&repaired));
            }
            "after-repair" => check_outcome(o, &repaired, &mnt),
            r => panic!("unknown role {r}"),
        }
    }
    if let Some(sha) = repaired_sha {
        assert_eq!(
            sha == disk.volume_sha,
            prediction["byte_identical_after_repair"].as_bool().unwrap(),
            "byte_identical_after_repair is wrong"
        );
    }
    // Injecting again on the damaged overlay is refused (exit 3), or the
    // recipe is repeatable.
    let again = w.join(format!("{name}-again.qcow2"));
    let mut a: Vec<String> = vec![
        "inject".into(),
        name.into(),
        overlay.to_str().unwrap().into(),
    ];
    a.extend(["-o".into(), again.to_str().unwrap().into()]);
    a.extend(args.iter().map(|s| s.to_string()));
    let code = if repeatable(name) { 0 } else { 3 };
    let r = qfault_expect(&a, code);
    if code == 3 {
        assert!(!again.exists(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    guard.assert_unchanged();
    report
}

/// The registry's `repeatable` for `name` (`qfault recipes --json`).
fn repeatable(name: &str) -> bool {
    let v: Value = serde_json::from_slice(&qfault_expect(["recipes", "--json"], 0).stdout).unwrap();
    v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no recipe {name}"))["repeatable"]
        .as_bool()
        .unwrap()
}

/// The bytes that differ between `orig` and `part` lie inside the
/// target's reported changes (guest offsets; the partition starts at `start`).
fn assert_changes(orig: &Path, part: &Path, target: &Value, start: u64) {
    let a = std::fs::read(orig).unwrap();
    let b = std::fs::read(part).unwrap();
    let ranges: Vec<(u64, u64)> = target["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let o = c["offset"].as_u64().unwrap() - start;
            (o, o + c["length"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(a.len(), b.len());
    let mut any = false;
    const CHUNK: usize = 64 * 1024;
    for (c, (x, y)) in a.chunks(CHUNK).zip(b.chunks(CHUNK)).enumerate() {
        if x == y {
            continue;
        }
        for (j, (p, q)) in x.iter().zip(y).enumerate() {
            if p != q {
                any = true;
                let i = (c * CHUNK + j) as u64;
                assert!(
                    ranges.iter().any(|&(s, e)| s <= i && i < e),
                    "byte {i} changed outside {ranges:?}"
                );
            }
        }
    }
    assert!(any, "nothing changed");
}

fn ext4_tools() -> bool {
    require_tools(&[
        "mkfs.ext4",
        "e2fsck",
        "blkid",
        "mount",
        "umount",
        "sfdisk",
        "qemu-img",
    ])
}

#[test]
fn ext4_sb_primary() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = ext4_disk(dir.path(), "sbp", Table::Gpt);
    prove("ext4-sb-primary", &disk, &[]);
}

#[test]
fn ext4_sb_primary_without_descriptor_checksums_checks_clean() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(
        dir.path(),
        "plain",
        Table::Mbr,
        24 << 20,
        mkfs_ext4(&["-b", "1024", "-O", "^metadata_csum,^uninit_bg"]),
    );
    let r = prove("ext4-sb-primary", &disk, &[]);
    let check = &r["output"]["targets"][0]["prediction"]["outcomes"][2];
    assert_eq!(check["command"], "e2fsck -n PART");
    assert_eq!(check["exit_code"], 0, "{check}");
}

#[test]
fn ext4_sb_primary_with_crc16_gdt_csum() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(
        dir.path(),
        "uninit",
        Table::Gpt,
        24 << 20,
        mkfs_ext4(&["-b", "1024", "-O", "^metadata_csum,uninit_bg"]),
    );
    let r = prove("ext4-sb-primary", &disk, &[]);
    let check = &r["output"]["targets"][0]["prediction"]["outcomes"][2];
    assert_eq!(check["exit_code"], 4, "{check}");
}

#[test]
fn ext4_sb_primary_on_a_used_filesystem_with_4k_blocks() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    // Default geometry (4 KiB blocks, 32768 per group): 2 groups. Files
    // written through the kernel leave the backup descriptors stale.
    let disk = linux_disk(
        dir.path(),
        "used4k",
        Table::Gpt,
        136 << 20,
        common::linux::mkfs_ext4_used(&[]),
    );
    let r = prove("ext4-sb-primary", &disk, &[]);
    let check = &r["output"]["targets"][0]["prediction"]["outcomes"][2];
    assert_eq!(check["exit_code"], 4, "{check}");
}

#[test]
fn ext4_sb_primary_on_a_used_filesystem_without_uninit_groups() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    // No descriptor checksums, so no uninit groups: only the stale counts
    // of the backup descriptors make e2fsck -n exit 4.
    let disk = linux_disk(
        dir.path(),
        "usedplain",
        Table::Mbr,
        24 << 20,
        common::linux::mkfs_ext4_used(&["-b", "1024", "-O", "^metadata_csum,^uninit_bg"]),
    );
    let r = prove("ext4-sb-primary", &disk, &[]);
    let t = &r["output"]["targets"][0]["prediction"];
    assert_eq!(t["outcomes"][2]["exit_code"], 4, "{t}");
    assert!(t["notes"].to_string().contains("stale"), "{t}");
}

/// `qfault inject NAME TOP -o OUT`, expected to be refused (exit 3) with
/// `why` in the message and nothing written.
fn assert_refused(name: &str, disk: &LinuxDisk, why: &str) {
    let out = disk
        .base
        .parent()
        .unwrap()
        .join(format!("{name}-refused.qcow2"));
    let r = qfault_expect(
        [
            "inject",
            name,
            disk.top.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains(why), "{name}: {err}");
    assert!(!out.exists());
}

const EXT4_RECIPES: [&str; 4] = [
    "ext4-sb-primary",
    "ext4-gdt-csum",
    "ext4-needs-recovery",
    "ext4-unclean",
];

#[test]
fn ext4_recipes_refuse_a_crash_snapshot_and_the_kernel_agrees() {
    if !ext4_tools() || !require_tools(&["debugfs", "losetup"]) {
        return;
    }
    let dir = tmpdir();
    // A snapshot of a mounted filesystem: the journal needs recovery.
    let disk = linux_disk(dir.path(), "crash", Table::Mbr, 24 << 20, |vol| {
        mkfs_ext4(&["-b", "1024"])(vol);
        common::linux::debugfs_w("feature needs_recovery")(vol);
    });
    let guard = BaseGuard::new(&[&disk.base, &disk.top]);
    for name in EXT4_RECIPES {
        assert_refused(name, &disk, "already needs recovery");
    }
    // Why: the read-only mount ext4-gdt-csum predicts to work is refused
    // already (exit 32), and e2fsck -p replays the journal first.
    let part = dir.path().join("crash.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let (code, text) = code_and_text(tool("mount").args(["-o", "loop,ro"]).arg(&part).arg(&mnt));
    if code == 0 {
        code_and_text(tool("umount").arg(&mnt));
    }
    assert_eq!(code, 32, "{text}");
    guard.assert_unchanged();
}

#[test]
fn ext4_recipes_refuse_a_filesystem_with_errors_and_e2fsck_agrees() {
    if !ext4_tools() || !require_tools(&["debugfs"]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "errors", Table::Gpt, 24 << 20, |vol| {
        mkfs_ext4(&["-b", "1024"])(vol);
        common::linux::debugfs_w("ssv state 3")(vol);
    });
    for name in EXT4_RECIPES {
        assert_refused(name, &disk, "with errors (s_state 0x3)");
    }
    // Why: e2fsck -p already forces a full check for the errors (and
    // clears them, exit 0), not for what the recipes would do.
    let part = dir.path().join("errors.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    let (code, text) = code_and_text(tool("e2fsck").arg("-p").arg(&part));
    assert!(
        text.contains("contains a file system with errors, check forced"),
        "exit {code}: {text}"
    );
}

#[test]
fn ext4_recipes_refuse_a_geometry_e2fsck_cannot_open_and_e2fsck_agrees() {
    if !ext4_tools() || !require_tools(&["debugfs"]) {
        return;
    }
    let dir = tmpdir();
    // One inode fewer than the groups hold: ext2fs_open2 calls the
    // superblock corrupt.
    let disk = linux_disk(dir.path(), "geom", Table::Mbr, 24 << 20, |vol| {
        mkfs_ext4(&["-b", "1024"])(vol);
        common::linux::debugfs_w("ssv inodes_count 6143")(vol);
    });
    for name in EXT4_RECIPES {
        assert_refused(name, &disk, "libext2fs calls it corrupt");
    }
    let part = dir.path().join("geom.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    // e2fsck indeed abandons the primary for a backup (and then finds
    // the filesystem inconsistent).
    let (code, text) = code_and_text(tool("e2fsck").arg("-n").arg(&part));
    assert!(
        text.contains("ext2fs_open2: The ext2 superblock is corrupt")
            && text.contains("trying backup blocks"),
        "exit {code}: {text}"
    );
    assert_ne!(code, 0, "{text}");
}

#[test]
fn verify_does_not_blame_an_ext4_recipe_for_the_base_state() {
    if !ext4_tools() || !require_tools(&["debugfs"]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "snap", Table::Mbr, 24 << 20, |vol| {
        mkfs_ext4(&["-b", "1024"])(vol);
        common::linux::debugfs_w("feature needs_recovery")(vol);
    });
    // Any change to a crash snapshot (here 4 KiB of free space zeroed)
    // is not ext4-needs-recovery's damage.
    let out = dir.path().join("z.qcow2");
    qfault_expect(
        [
            "inject",
            "zero",
            disk.top.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--partition",
            "1",
            "--offset",
            "20M",
            "--length",
            "4K",
        ],
        0,
    );
    let v: Value = serde_json::from_slice(
        &qfault_expect(["verify", "--json", out.to_str().unwrap()], 0).stdout,
    )
    .unwrap();
    assert_ne!(v["verdict"], "repairable", "{v:#}");
    let tools = v["partitions"][0]["prediction"]["outcomes"].to_string();
    assert!(!tools.contains("e2fsck"), "{v:#}");
}

#[test]
fn ext4_sb_primary_refuses_one_group_and_e2fsck_agrees() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(
        dir.path(),
        "one",
        Table::Mbr,
        6 << 20,
        mkfs_ext4(&["-b", "1024"]),
    );
    let guard = BaseGuard::new(&[&disk.base, &disk.top]);
    assert_refused("ext4-sb-primary", &disk, "one block group");
    // The real e2fsck indeed cannot repair that damage.
    let part = dir.path().join("one.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    common::write_at(&part, 1024, &[0u8; 1024]);
    let (code, text) = code_and_text(tool("e2fsck").args(["-fy"]).arg(&part));
    assert_eq!(code, 8, "{text}");
    guard.assert_unchanged();
}

#[test]
fn ext4_sb_primary_refuses_groups_e2fsck_does_not_look_in_and_e2fsck_agrees() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    // 4096 blocks per group: the backup is at block 4097, e2fsck looks at 8193.
    let disk = linux_disk(
        dir.path(),
        "g4k",
        Table::Gpt,
        24 << 20,
        mkfs_ext4(&["-b", "1024", "-g", "4096"]),
    );
    assert_refused(
        "ext4-sb-primary",
        &disk,
        "e2fsck finds no backup superblock",
    );
    let part = dir.path().join("g4k.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    common::write_at(&part, 1024, &[0u8; 1024]);
    let (code, text) = code_and_text(tool("e2fsck").args(["-fy"]).arg(&part));
    assert_eq!(code, 8, "{text}");
}

#[test]
fn ext4_needs_recovery() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = ext4_disk(dir.path(), "rec", Table::Mbr);
    prove("ext4-needs-recovery", &disk, &[]);
}

#[test]
fn ext4_unclean() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = ext4_disk(dir.path(), "unc", Table::Gpt);
    prove("ext4-unclean", &disk, &["--partition", "1"]);
}

#[test]
fn ext4_gdt_csum() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = ext4_disk(dir.path(), "gdt", Table::Mbr);
    prove("ext4-gdt-csum", &disk, &[]);
}

#[test]
fn ext4_recipes_with_the_default_4k_geometry_on_a_used_filesystem() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    // mkfs.ext4's defaults (4 KiB blocks, metadata_csum, 64bit), files
    // written through the kernel.
    let disk = linux_disk(
        dir.path(),
        "def4k",
        Table::Gpt,
        48 << 20,
        common::linux::mkfs_ext4_used(&[]),
    );
    for name in ["ext4-gdt-csum", "ext4-needs-recovery", "ext4-unclean"] {
        prove(name, &disk, &[]);
    }
}

#[test]
fn ext4_gdt_csum_on_a_whole_disk_filesystem() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = common::linux::whole_disk(dir.path(), "whole", 24 << 20, mkfs_ext4(&["-b", "1024"]));
    prove("ext4-gdt-csum", &disk, &[]);
}

#[test]
fn ext4_gdt_csum_refuses_without_descriptor_checksums() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(
        dir.path(),
        "nocsum",
        Table::Mbr,
        24 << 20,
        mkfs_ext4(&["-b", "1024", "-O", "^metadata_csum,^uninit_bg"]),
    );
    assert_refused("ext4-gdt-csum", &disk, "neither metadata_csum nor gdt_csum");
}

#[test]
fn ext4_gdt_csum_with_crc16_gdt_csum() {
    if !ext4_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(
        dir.path(),
        "crc16",
        Table::Gpt,
        24 << 20,
        mkfs_ext4(&["-b", "1024", "-O", "^metadata_csum,uninit_bg"]),
    );
    prove("ext4-gdt-csum", &disk, &[]);
}

#[test]
fn xfs_sb_primary() {
    if !require_tools(&[
        "mkfs.xfs",
        "xfs_repair",
        "blkid",
        "mount",
        "sfdisk",
        "qemu-img",
    ]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "xfs", Table::Gpt, 320 << 20, |vol| {
        common::run(tool("mkfs.xfs").args(["-q", "-f"]).arg(vol));
    });
    prove("xfs-sb-primary", &disk, &[]);
}

#[test]
fn xfs_sb_primary_with_4096_byte_sectors() {
    if !require_tools(&[
        "mkfs.xfs",
        "xfs_repair",
        "blkid",
        "mount",
        "sfdisk",
        "qemu-img",
    ]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "xfs4k", Table::Mbr, 320 << 20, |vol| {
        common::run(
            tool("mkfs.xfs")
                .args(["-q", "-f", "-s", "size=4096"])
                .arg(vol),
        );
    });
    let r = prove("xfs-sb-primary", &disk, &[]);
    assert_eq!(r["output"]["targets"][0]["changes"][0]["length"], 4096);
}

fn xfs_tools() -> bool {
    require_tools(&[
        "mkfs.xfs",
        "xfs_repair",
        "blkid",
        "mount",
        "sfdisk",
        "qemu-img",
    ])
}

#[test]
fn xfs_sb_primary_with_a_non_default_ag_size() {
    if !xfs_tools() {
        return;
    }
    let dir = tmpdir();
    // AGs of 96 MiB: not at the default (80 MiB) boundaries xfs_repair
    // tries first, so both find AG 1's copy by the sector scan.
    let disk = linux_disk(dir.path(), "xfs5", Table::Gpt, 320 << 20, |vol| {
        common::run(
            tool("mkfs.xfs")
                .args(["-q", "-f", "-d", "agsize=96m"])
                .arg(vol),
        );
    });
    let r = prove("xfs-sb-primary", &disk, &[]);
    let notes = r["output"]["targets"][0]["prediction"]["notes"].to_string();
    assert!(
        notes.contains(&format!("at byte {}", 96u64 << 20)),
        "{notes}"
    );
}

#[test]
fn xfs_verify_claims_no_bad_magic_for_another_primary_fault() {
    if !xfs_tools() {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "xfsbs", Table::Mbr, 320 << 20, |vol| {
        common::run(tool("mkfs.xfs").args(["-q", "-f"]).arg(vol));
    });
    // sb_blocksize zeroed: the magic stays, the primary is bad otherwise.
    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, [0u8; 4]).unwrap();
    let out = dir.path().join("bs.qcow2");
    qfault_expect(
        [
            "inject",
            "write",
            disk.top.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--partition",
            "1",
            "--offset",
            "4",
            "--from",
            zeros.to_str().unwrap(),
        ],
        0,
    );
    let v: Value = serde_json::from_slice(
        &qfault_expect(["verify", "--json", out.to_str().unwrap()], 0).stdout,
    )
    .unwrap();
    let predicted = v["partitions"][0]["prediction"].to_string();
    assert!(!predicted.contains("bad magic number"), "{v:#}");
    // The real xfs_repair -n indeed says something else.
    let part = dir.path().join("xfsbs.part");
    qemu_extract(&out, disk.start, disk.size, &part);
    let (_, text) = code_and_text(tool("xfs_repair").arg("-n").arg(&part));
    assert!(!text.contains("bad magic number"), "{text}");
}

#[test]
fn btrfs_sb_primary() {
    if !require_tools(&[
        "mkfs.btrfs",
        "btrfs",
        "blkid",
        "mount",
        "sfdisk",
        "qemu-img",
    ]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "btrfs", Table::Mbr, 130 << 20, |vol| {
        common::run(tool("mkfs.btrfs").args(["-q", "-f"]).arg(vol));
    });
    prove("btrfs-sb-primary", &disk, &["--partition", "1"]);
}

#[test]
fn btrfs_sb_primary_with_the_mirror_ending_the_partition() {
    if !require_tools(&[
        "mkfs.btrfs",
        "btrfs",
        "blkid",
        "mount",
        "sfdisk",
        "qemu-img",
    ]) {
        return;
    }
    let dir = tmpdir();
    // Exactly 64 MiB + 4 KiB: the mirror's last byte is the partition's.
    let disk = linux_disk(dir.path(), "edge", Table::Gpt, (64 << 20) + 4096, |vol| {
        common::run(tool("mkfs.btrfs").args(["-q", "-f", "--mixed"]).arg(vol));
    });
    prove("btrfs-sb-primary", &disk, &[]);
}

#[test]
fn btrfs_sb_primary_names_the_checksum_type_it_refuses() {
    if !require_tools(&["mkfs.btrfs", "sfdisk", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "xxh", Table::Mbr, 130 << 20, |vol| {
        common::run(
            tool("mkfs.btrfs")
                .args(["-q", "-f", "--csum", "xxhash"])
                .arg(vol),
        );
    });
    assert_refused(
        "btrfs-sb-primary",
        &disk,
        "checksum type is xxhash (mkfs.btrfs --csum)",
    );
}

#[test]
fn btrfs_sb_primary_refuses_a_device_without_mirror_and_btrfs_agrees() {
    if !require_tools(&["mkfs.btrfs", "btrfs", "sfdisk", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let disk = linux_disk(dir.path(), "small", Table::Gpt, 64 << 20, |vol| {
        common::run(tool("mkfs.btrfs").args(["-q", "-f", "--mixed"]).arg(vol));
    });
    let guard = BaseGuard::new(&[&disk.base, &disk.top]);
    assert_refused("btrfs-sb-primary", &disk, "no mirror superblock");
    // The real super-recover has nothing to recover from: exit 1, not 2.
    let part = dir.path().join("small.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    common::write_at(&part, 65536, &[0u8; 4096]);
    let (code, text) = code_and_text(
        tool("btrfs")
            .args(["rescue", "super-recover", "-y"])
            .arg(&part),
    );
    assert_eq!(code, 1, "{text}");
    guard.assert_unchanged();
}

#[test]
fn luks2_primary_header_refuses_a_corrupt_secondary_and_cryptsetup_agrees() {
    if !require_tools(&["cryptsetup", "losetup", "sfdisk", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let key = dir.path().join("key");
    std::fs::write(&key, "qfault").unwrap();
    // The secondary header's JSON area (16 KiB + 4 KiB) starts with '['
    // instead of '{': its sha256 no longer matches.
    let disk = linux_disk(dir.path(), "badsec", Table::Gpt, 32 << 20, |vol| {
        common::run(
            tool("cryptsetup")
                .args(["luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2"])
                .args(["--pbkdf-force-iterations", "1000", "--key-file"])
                .arg(&key)
                .arg(vol),
        );
        common::write_at(vol, 16384 + 4096, b"[");
    });
    assert_refused(
        "luks2-primary-header",
        &disk,
        "secondary header at byte 16384 is corrupt",
    );
    // Without the primary, cryptsetup does not take that secondary.
    let part = dir.path().join("badsec.part");
    qemu_extract(&disk.top, disk.start, disk.size, &part);
    common::write_at(&part, 0, &[0u8; 4096]);
    let (code, dev) = code_and_text(tool("losetup").args(["-r", "-f", "--show"]).arg(&part));
    assert_eq!(code, 0, "{dev}");
    let (code, text) = code_and_text(tool("cryptsetup").arg("luksDump").arg(dev.trim()));
    code_and_text(tool("losetup").arg("-d").arg(dev.trim()));
    assert_ne!(code, 0, "{text}");
}

/// A second LUKS2 geometry: a 64 KiB metadata area puts the secondary
/// header at 64 KiB instead of 16 KiB, on an MBR partition.
#[test]
fn luks2_primary_header_with_a_64k_metadata_area() {
    if !require_tools(&["cryptsetup", "losetup", "blkid", "sfdisk", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let key = dir.path().join("key");
    std::fs::write(&key, "qfault").unwrap();
    let disk = linux_disk(dir.path(), "luks64", Table::Mbr, 32 << 20, |vol| {
        common::run(
            tool("cryptsetup")
                .args(["luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2"])
                .args(["--luks2-metadata-size", "64k"])
                .args(["--pbkdf-force-iterations", "1000", "--key-file"])
                .arg(&key)
                .arg(vol),
        );
    });
    prove("luks2-primary-header", &disk, &[]);
}

#[test]
fn luks2_primary_header() {
    if !require_tools(&["cryptsetup", "losetup", "blkid", "sfdisk", "qemu-img"]) {
        return;
    }
    let dir = tmpdir();
    let key = dir.path().join("key");
    std::fs::write(&key, "qfault").unwrap();
    let disk = linux_disk(dir.path(), "luks", Table::Gpt, 32 << 20, |vol| {
        common::run(
            tool("cryptsetup")
                .args(["luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2"])
                .args(["--pbkdf-force-iterations", "1000", "--key-file"])
                .arg(&key)
                .arg(vol),
        );
    });
    let report = prove("luks2-primary-header", &disk, &[]);
    let notes = report["output"]["targets"][0]["prediction"]["notes"].to_string();
    assert!(notes.contains("silently rewrites"), "{notes}");
    // The trap, for real: the passphrase works through the secondary on a
    // read-only device and nothing is written; the same command on the
    // writable file rewrites the primary header.
    let w = dir.path();
    let part = w.join("luks2-primary-header.part");
    let before = sha256_file(&part);
    let (code, dev) = code_and_text(tool("losetup").args(["-r", "-f", "--show"]).arg(&part));
    assert_eq!(code, 0, "{dev}");
    let (code, text) = code_and_text(
        tool("cryptsetup")
            .args(["open", "--test-passphrase", "--key-file"])
            .arg(&key)
            .arg(dev.trim()),
    );
    code_and_text(tool("losetup").arg("-d").arg(dev.trim()));
    assert_eq!(code, 0, "{text}");
    assert_eq!(sha256_file(&part), before, "read-only device written");
    let (code, text) = code_and_text(tool("cryptsetup").arg("isLuks").arg(&part));
    assert_eq!(code, 0, "{text}");
    assert_ne!(
        sha256_file(&part),
        before,
        "no self-healing on a writable file"
    );
    assert_eq!(&std::fs::read(&part).unwrap()[..6], b"LUKS\xba\xbe");
}

//! `qfault inspect` against the real tools: disks partitioned with sfdisk
//! and sgdisk, filesystems made with mkntfs, mkfs.* and mkswap; the oracles
//! are `sfdisk --json` (numbers, starts, sizes) and `blkid -p -o export` on
//! each extracted partition (TYPE, LABEL, UUID). Each disk is also checked
//! as a compressed qcow2 and as the top of a backing chain.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;

/// What one partition should look like, from sfdisk and blkid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect {
    number: u64,
    start: u64,
    size: u64,
    filesystem: Option<String>,
    label: Option<String>,
    uuid: Option<String>,
}

/// Runs `program args` with `input` on stdin; panics unless it exits 0.
fn sh_stdin(program: &str, args: &[&str], input: &str) -> String {
    let mut c = Command::new(program);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("start {program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the non-zero 64 KiB blocks of `part` into `disk` at `offset`
/// (like `dd conv=notrunc,sparse`, without reading holes as data).
fn copy_into(disk: &Path, offset: u64, part: &Path) {
    let data = std::fs::read(part).unwrap();
    for (i, chunk) in data.chunks(64 << 10).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            write_at(disk, offset + (i as u64) * (64 << 10), chunk);
        }
    }
}

/// Makes a filesystem with `mkfs` (a closure given the file) in a new file
/// of `size` bytes and copies it into `disk` at `offset`.
fn fill(dir: &Path, disk: &Path, offset: u64, size: u64, mkfs: impl FnOnce(&Path)) {
    let part = dir.join(format!("part-{offset}.img"));
    sparse_file(&part, size);
    mkfs(&part);
    copy_into(disk, offset, &part);
    std::fs::remove_file(&part).unwrap();
}

fn mkntfs(label: &str) -> impl FnOnce(&Path) {
    let label = label.to_string();
    move |p: &Path| {
        sh(
            "mkntfs",
            ["-q", "-Q", "-F", "-L", label.as_str(), p.to_str().unwrap()],
        );
    }
}

fn mkfs(program: &'static str, args: &'static [&'static str]) -> impl FnOnce(&Path) {
    move |p: &Path| {
        let mut a: Vec<&str> = args.to_vec();
        a.push(p.to_str().unwrap());
        sh(program, a);
    }
}

/// Numbers, starts and sizes (bytes) from `sfdisk --json TARGET`.
fn sfdisk_parts(target: &Path) -> (String, Vec<(u64, u64, u64)>) {
    let json: Value = serde_json::from_str(&sh("sfdisk", ["--json".as_ref(), target.as_os_str()]))
        .expect("sfdisk --json output");
    let t = &json["partitiontable"];
    let ss = t["sectorsize"].as_u64().unwrap_or(512);
    let label = t["label"].as_str().unwrap().to_string();
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let digits: String = node
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            (
                digits.parse().unwrap(),
                p["start"].as_u64().unwrap() * ss,
                p["size"].as_u64().unwrap() * ss,
            )
        })
        .collect();
    (label, parts)
}

/// blkid's view of the byte range `start..start+size` of `disk`.
fn blkid_range(
    dir: &Path,
    disk: &Path,
    start: u64,
    size: u64,
) -> (Option<String>, Option<String>, Option<String>) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(disk).unwrap();
    let mut buf = vec![0u8; size as usize];
    f.read_exact_at(&mut buf, start).unwrap();
    let part = dir.join("extracted.img");
    std::fs::write(&part, &buf).unwrap();
    let m = blkid(&part);
    std::fs::remove_file(&part).unwrap();
    (
        m.get("TYPE").cloned(),
        m.get("LABEL").cloned(),
        m.get("UUID").cloned(),
    )
}

/// The expected partitions of a raw disk: sfdisk's ranges, blkid's identities.
fn expectations(dir: &Path, disk: &Path, sfdisk_target: &Path) -> (String, Vec<Expect>) {
    let (label, parts) = sfdisk_parts(sfdisk_target);
    let exp = parts
        .into_iter()
        .map(|(number, start, size)| {
            let (filesystem, label, uuid) = blkid_range(dir, disk, start, size);
            Expect {
                number,
                start,
                size,
                filesystem,
                label,
                uuid,
            }
        })
        .collect();
    (label, exp)
}

/// `qfault inspect --json IMAGE`: a document whose first key is `"schema": 1`.
fn inspect(image: &Path) -> Value {
    let out = qfault_ok(["inspect".as_ref(), "--json".as_ref(), image.as_os_str()]);
    let compact: String = out.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        compact.starts_with("{\"schema\":1,"),
        "inspect JSON does not start with \"schema\": 1:\n{out}"
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect JSON: {e}\n{out}"))
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The partitions of an inspect report in the shape of [`Expect`].
fn reported(v: &Value) -> Vec<Expect> {
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Expect {
            number: p["number"].as_u64().unwrap(),
            start: p["offset"].as_u64().unwrap(),
            size: p["length"].as_u64().unwrap(),
            filesystem: opt_str(&p["filesystem"]),
            label: opt_str(&p["label"]),
            uuid: opt_str(&p["uuid"]),
        })
        .collect()
}

/// The same disk three ways: raw, compressed qcow2, top of a chain
/// (top.qcow2 → mid.qcow2 → the compressed qcow2). Returns (path, depth).
fn variants(dir: &Path, raw: &Path) -> Vec<(PathBuf, usize)> {
    let comp = dir.join("disk-c.qcow2");
    let mid = dir.join("mid.qcow2");
    let top = dir.join("top.qcow2");
    qemu_img([
        "convert".as_ref(),
        "-c".as_ref(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        raw.as_os_str(),
        comp.as_os_str(),
    ]);
    for (img, backing) in [(&mid, &comp), (&top, &mid)] {
        qemu_img([
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            backing.as_os_str(),
            "-F".as_ref(),
            "qcow2".as_ref(),
            img.as_os_str(),
        ]);
    }
    vec![(raw.to_path_buf(), 1), (comp, 1), (top, 3)]
}

/// Inspects every variant of `raw` and compares with the expectations.
fn check_all(dir: &Path, raw: &Path, table: &str, sector_size: u64, exp: &[Expect]) -> Vec<Value> {
    let mut reports = Vec::new();
    for (img, depth) in variants(dir, raw) {
        let v = inspect(&img);
        assert_eq!(
            v["chain"].as_array().unwrap().len(),
            depth,
            "{}",
            img.display()
        );
        assert_eq!(v["table"], table, "{}", img.display());
        assert_eq!(v["sector_size"], sector_size, "{}", img.display());
        assert_eq!(reported(&v), exp, "{}: {v:#}", img.display());
        reports.push(v);
    }
    reports
}

fn tools_for_disks() -> bool {
    require_tools(&[
        "sfdisk",
        "sgdisk",
        "mkntfs",
        "mkfs.vfat",
        "mkfs.ext4",
        "mkswap",
        "blkid",
        "qemu-img",
    ])
}

/// sfdisk script of the MBR disk: two primaries, an extended partition with
/// three logicals, and a primary after it.
const MBR_SCRIPT: &str = "label: dos
label-id: 0x1234abcd
unit: sectors

start=2048, size=16384, type=7, bootable
start=18432, size=16384, type=83
start=34816, size=86016, type=5
start=120832, size=10240, type=c
start=36864, size=16384, type=c
start=55296, size=8192, type=82
start=65536, size=16384, type=83
";

#[test]
fn mbr_with_extended_and_logical_partitions() {
    if !tools_for_disks() {
        return;
    }
    let dir = tmpdir();
    let disk = dir.path().join("disk.raw");
    sparse_file(&disk, 64 * MIB);
    sh_stdin(
        "sfdisk",
        &[
            "--quiet",
            "--no-reread",
            "--no-tell-kernel",
            disk.to_str().unwrap(),
        ],
        MBR_SCRIPT,
    );
    let d = dir.path();
    fill(d, &disk, 2048 * 512, 16384 * 512, mkntfs("Boot"));
    fill(
        d,
        &disk,
        18432 * 512,
        16384 * 512,
        mkfs("mkfs.ext4", &["-q", "-F", "-L", "root"]),
    );
    fill(
        d,
        &disk,
        120832 * 512,
        10240 * 512,
        mkfs("mkfs.vfat", &["-n", "PRIMFAT"]),
    );
    fill(
        d,
        &disk,
        36864 * 512,
        16384 * 512,
        mkfs("mkfs.vfat", &["-n", "LOGIFAT"]),
    );
    fill(
        d,
        &disk,
        55296 * 512,
        8192 * 512,
        mkfs("mkswap", &["-L", "swp"]),
    );
    fill(
        d,
        &disk,
        65536 * 512,
        16384 * 512,
        mkfs("mkfs.ext4", &["-q", "-F", "-t", "ext2"]),
    );
    let (label, exp) = expectations(d, &disk, &disk);
    assert_eq!(label, "dos");
    let numbers: Vec<u64> = exp.iter().map(|e| e.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 7], "sfdisk numbering");
    assert_eq!(exp[0].filesystem.as_deref(), Some("ntfs"));
    assert_eq!(exp[5].filesystem.as_deref(), Some("swap"));
    let reports = check_all(d, &disk, "dos", 512, &exp);
    let p = &reports[0]["partitions"];
    assert_eq!(p[0]["bootable"], true);
    assert_eq!(p[0]["type"], "0x07");
    assert_eq!(p[2]["role"], "extended");
    assert_eq!(p[4]["role"], "logical");
    assert_eq!(p[0]["ntfs"]["bytes_per_sector"], 512);
    assert_eq!(p[0]["ntfs"]["backup_boot_sector_ok"], true);
    assert_eq!(p[0]["ntfs"]["number_of_sectors"], 16383);
    assert!(reports[0]["warnings"].as_array().unwrap().is_empty());
}

/// sgdisk commands of the five-partition GPT disk.
fn make_gpt(dir: &Path) -> PathBuf {
    let disk = dir.join("gpt.raw");
    sparse_file(&disk, 64 * MIB);
    let p = disk.to_str().unwrap();
    sh(
        "sgdisk",
        [
            "-n",
            "1:2048:+8M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI system partition",
            "-n",
            "2:0:+16M",
            "-t",
            "2:0c01",
            "-c",
            "2:Microsoft reserved partition",
            "-n",
            "3:0:+16M",
            "-t",
            "3:0700",
            "-c",
            "3:Basic data partition",
            "-n",
            "4:0:+12M",
            "-t",
            "4:8300",
            "-c",
            "4:Linux filesystem",
            "-n",
            "5:0:0",
            "-t",
            "5:8200",
            "-c",
            "5:swap",
            p,
        ],
    );
    let (_, parts) = sfdisk_parts(&disk);
    let start = |n: u64| parts.iter().find(|x| x.0 == n).map(|x| (x.1, x.2)).unwrap();
    let (s1, z1) = start(1);
    fill(dir, &disk, s1, z1, mkfs("mkfs.vfat", &["-n", "ESP"]));
    let (s3, z3) = start(3);
    fill(dir, &disk, s3, z3, mkntfs("Windows"));
    let (s4, z4) = start(4);
    fill(
        dir,
        &disk,
        s4,
        z4,
        mkfs("mkfs.ext4", &["-q", "-F", "-L", "linux"]),
    );
    let (s5, z5) = start(5);
    fill(dir, &disk, s5, z5, mkfs("mkswap", &[]));
    disk
}

#[test]
fn gpt_with_five_partitions() {
    if !tools_for_disks() {
        return;
    }
    let dir = tmpdir();
    let disk = make_gpt(dir.path());
    let (label, exp) = expectations(dir.path(), &disk, &disk);
    assert_eq!(label, "gpt");
    assert_eq!(exp.len(), 5);
    let reports = check_all(dir.path(), &disk, "gpt", 512, &exp);
    let v = &reports[0];
    assert_eq!(v["gpt"]["used_backup"], false);
    let p = &v["partitions"];
    assert_eq!(p[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(p[0]["type_name"], "EFI System");
    assert_eq!(p[1]["type_name"], "Microsoft reserved");
    assert_eq!(p[2]["type_name"], "Microsoft basic data");
    assert_eq!(p[3]["type_name"], "Linux filesystem");
    assert_eq!(p[4]["type_name"], "Linux swap");
    assert_eq!(p[2]["name"], "Basic data partition");
    // sgdisk -i prints the unique GUID of partition 3.
    let info = sh("sgdisk", ["-i".as_ref(), "3".as_ref(), disk.as_os_str()]);
    let guid = info
        .lines()
        .find_map(|l| l.strip_prefix("Partition unique GUID: "))
        .unwrap()
        .trim();
    assert_eq!(p[2]["partuuid"], guid);
}

#[test]
fn gpt_with_zeroed_primary_header_uses_the_backup() {
    if !tools_for_disks() {
        return;
    }
    let dir = tmpdir();
    let disk = make_gpt(dir.path());
    let (_, intact) = expectations(dir.path(), &disk, &disk);
    write_at(&disk, 512, &[0u8; 512]);
    // sfdisk reads the backup too; it must agree with the intact table.
    let (label, exp) = expectations(dir.path(), &disk, &disk);
    assert_eq!(label, "gpt");
    assert_eq!(exp, intact);
    for v in check_all(dir.path(), &disk, "gpt", 512, &exp) {
        assert_eq!(v["gpt"]["used_backup"], true);
        let w = v["warnings"].to_string();
        assert!(w.contains("using the backup"), "{w}");
    }
    let human = qfault_ok(["inspect".as_ref(), disk.as_os_str()]);
    assert!(human.contains("backup GPT header"), "{human}");
}

/// Detaches a loop device when dropped.
struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn gpt_written_for_4096_byte_sectors() {
    if !tools_for_disks() || !require_tools(&["losetup"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let disk = d.join("disk4k.raw");
    sparse_file(&disk, 64 * MIB);
    let dev = sh(
        "losetup",
        [
            "-f".as_ref(),
            "--show".as_ref(),
            "-b".as_ref(),
            "4096".as_ref(),
            disk.as_os_str(),
        ],
    );
    let lo = Loop(dev.trim().to_string());
    let lop = Path::new(&lo.0);
    sh(
        "sgdisk",
        [
            "-n", "1:0:+16M", "-t", "1:8300", "-c", "1:data", "-n", "2:0:+16M", "-t", "2:0700",
            "-n", "3:0:0", "-t", "3:8200", &lo.0,
        ],
    );
    let (label, parts) = sfdisk_parts(lop);
    drop(lo);
    assert_eq!(label, "gpt");
    let mut exp = Vec::new();
    for (i, (number, start, size)) in parts.iter().copied().enumerate() {
        match i {
            0 => fill(
                d,
                &disk,
                start,
                size,
                mkfs("mkfs.ext4", &["-q", "-F", "-b", "4096", "-L", "four"]),
            ),
            1 => fill(
                d,
                &disk,
                start,
                size,
                mkfs("mkfs.vfat", &["-S", "4096", "-n", "FAT4K"]),
            ),
            _ => fill(d, &disk, start, size, mkfs("mkswap", &["-L", "s4"])),
        }
        let (filesystem, label, uuid) = blkid_range(d, &disk, start, size);
        exp.push(Expect {
            number,
            start,
            size,
            filesystem,
            label,
            uuid,
        });
    }
    assert_eq!(exp[1].filesystem.as_deref(), Some("vfat"));
    check_all(d, &disk, "gpt", 4096, &exp);
}

fn superfloppy(mkfs_fn: impl FnOnce(&Path), want: &str) {
    let dir = tmpdir();
    let disk = dir.path().join("floppy.raw");
    sparse_file(&disk, 32 * MIB);
    mkfs_fn(&disk);
    let m = blkid(&disk);
    assert_eq!(m.get("TYPE").map(String::as_str), Some(want));
    let exp = vec![Expect {
        number: 0,
        start: 0,
        size: 32 * MIB,
        filesystem: m.get("TYPE").cloned(),
        label: m.get("LABEL").cloned(),
        uuid: m.get("UUID").cloned(),
    }];
    for v in check_all(dir.path(), &disk, "none", 512, &exp) {
        assert_eq!(v["partitions"][0]["type"], Value::Null);
    }
}

#[test]
fn superfloppy_ext4() {
    if tools_for_disks() {
        superfloppy(mkfs("mkfs.ext4", &["-q", "-F", "-L", "floppy"]), "ext4");
    }
}

#[test]
fn superfloppy_fat() {
    if tools_for_disks() {
        superfloppy(mkfs("mkfs.vfat", &["-n", "FLOPPY"]), "vfat");
    }
}

#[test]
fn human_output_is_an_aligned_table() {
    if !tools_for_disks() {
        return;
    }
    let dir = tmpdir();
    let disk = dir.path().join("disk.raw");
    sparse_file(&disk, 64 * MIB);
    sh_stdin(
        "sfdisk",
        &[
            "--quiet",
            "--no-reread",
            "--no-tell-kernel",
            disk.to_str().unwrap(),
        ],
        MBR_SCRIPT,
    );
    fill(dir.path(), &disk, 2048 * 512, 16384 * 512, mkntfs("Boot"));
    let out = qfault_ok(["inspect".as_ref(), disk.as_os_str()]);
    assert!(out.contains("partition table: dos"), "{out}");
    let rows: Vec<&str> = out.lines().skip_while(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 1 + 7, "{out}");
    let col = rows[0].find("FILESYSTEM").unwrap();
    assert!(rows[1][col..].starts_with("ntfs"), "{out}");
    assert!(rows[1].contains("Boot") && rows[1].contains('*'), "{out}");
}

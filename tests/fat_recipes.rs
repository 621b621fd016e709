//! The FAT32 and exFAT recipes against the real tools: a FAT32 or exFAT
//! volume in a partition of an MBR disk (and one whole-disk volume each)
//! under a two-link qcow2 chain, damaged with `qfault inject`, taken out
//! with `qemu-img convert -O raw` and cut to the partition, then every tool
//! the JSON prediction names is run with its predicted command line and
//! compared with the predicted exit code, result and message (values read
//! from the JSON); repairs run on fresh copies and, where predicted, hash
//! the same as the undamaged partition. Also the refusals (exit 3).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Which filesystem a fixture holds.
#[derive(Clone, Copy, PartialEq)]
enum Fs {
    Fat32,
    Exfat,
}

/// A base disk under a qcow2 chain, and its undamaged volume.
struct Fixture {
    dir: tempfile::TempDir,
    /// The top of the chain (base.qcow2 ← top.qcow2): what qfault damages.
    top: PathBuf,
    /// The undamaged volume's bytes, as a file.
    volume: PathBuf,
    /// Where the volume starts on the disk.
    offset: u64,
    guard: BaseGuard,
}

const MIB: u64 = 1 << 20;

fn tools(fs: Fs) -> bool {
    let mut t = vec!["qemu-img", "blkid", "sfdisk"];
    match fs {
        Fs::Fat32 => t.extend(["mkfs.vfat", "fsck.fat", "mcopy", "mdir"]),
        Fs::Exfat => t.extend(["mkfs.exfat", "fsck.exfat", "mount.exfat-fuse", "losetup"]),
    }
    require_tools(&t)
}

/// Makes the volume file (`mkfs_args` extra) and, unless `whole_disk`, an
/// MBR disk with it as partition 1 at 1 MiB; then the qcow2 chain.
fn fixture(fs: Fs, whole_disk: bool, mkfs_args: &[&str], tweak: impl FnOnce(&Path)) -> Fixture {
    let dir = tmpdir();
    let d = dir.path();
    let volume = d.join("volume.img");
    let size = match fs {
        Fs::Fat32 => 36 * MIB,
        Fs::Exfat => 32 * MIB,
    };
    sparse_file(&volume, size);
    match fs {
        Fs::Fat32 => {
            let mut a = vec!["-n", "QFAULT", "-i", "51F4A0CA"];
            if !mkfs_args.iter().any(|a| a.starts_with("-F")) {
                a.extend(["-F", "32"]);
            }
            a.extend(mkfs_args);
            let mut c = cmd("mkfs.vfat", &a);
            c.arg(&volume);
            run(&mut c);
            let f = d.join("hello.txt");
            std::fs::write(&f, pattern(3000, 5)).unwrap();
            run(cmd("mcopy", ["-i"]).arg(&volume).arg(&f).arg("::hello.txt"));
        }
        Fs::Exfat => {
            let mut c = cmd("mkfs.exfat", ["-L", "QFAULT"]);
            c.args(mkfs_args).arg(&volume);
            run(&mut c);
        }
    }
    tweak(&volume);
    let bytes = std::fs::read(&volume).unwrap();
    let (raw, offset) = if whole_disk {
        (volume.clone(), 0)
    } else {
        let raw = d.join("disk.raw");
        sparse_file(&raw, size + 2 * MIB);
        let ptype = if fs == Fs::Fat32 { "c" } else { "7" };
        let mut c = cmd("sfdisk", ["-q"]);
        c.arg(&raw);
        c.stdin(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        writeln!(
            child.stdin.take().unwrap(),
            "label: dos\nstart=2048, size={}, type={ptype}",
            size / 512
        )
        .unwrap();
        assert!(child.wait().unwrap().success(), "sfdisk failed");
        write_at(&raw, MIB, &bytes);
        (raw, MIB)
    };
    let base = d.join("base.qcow2");
    qemu_img_to_qcow2(&raw, &base, &[]);
    let top = d.join("top.qcow2");
    qemu_img_create_overlay(
        &top,
        "base.qcow2",
        "qcow2",
        &[],
        &format!("{}", size + if whole_disk { 0 } else { 2 * MIB }),
    );
    let guard = BaseGuard::new(&[&base, &top]);
    Fixture {
        dir,
        top,
        volume,
        offset,
        guard,
    }
}

/// `qfault inject NAME top -o OUT --json ARGS`: the one target.
fn inject(fx: &Fixture, name: &str, args: &[&str]) -> (Value, PathBuf) {
    let out = fx.dir.path().join(format!("{name}.qcow2"));
    let mut a = vec![
        "inject",
        name,
        fx.top.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ];
    a.extend(args);
    let o = qfault_expect(&a, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let targets = v["output"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{v:#}");
    assert_qemu_img_check_clean(&out);
    (targets[0].clone(), out)
}

/// The damaged volume out of the overlay: `qemu-img convert -O raw`, then
/// cut to the partition the target names.
fn extract(fx: &Fixture, overlay: &Path, target: &Value, name: &str) -> PathBuf {
    let raw = fx.dir.path().join(format!("{name}.raw"));
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        overlay.as_os_str(),
        raw.as_os_str(),
    ]);
    let off = target["partition"]["offset"].as_u64().unwrap();
    let len = target["partition"]["length"].as_u64().unwrap();
    assert_eq!(off, fx.offset);
    let all = std::fs::read(&raw).unwrap();
    let part = fx.dir.path().join(format!("{name}.part"));
    std::fs::write(&part, &all[off as usize..(off + len) as usize]).unwrap();
    std::fs::remove_file(&raw).unwrap();
    part
}

/// Runs a predicted command line on `part` (PART and MNT substituted; a
/// loop device for exfat-fuse, read-only when the command asks `-o ro`).
/// Returns the exit code and all output; unmounts whatever it mounted and
/// says whether it was mounted read-write.
fn run_predicted(command: &str, part: &Path, mnt: &Path) -> (i32, String, Option<bool>) {
    let mut loopdev = None;
    let target = if command.contains("exfat-fuse") {
        let mut a = vec!["-f", "--show"];
        if command.contains("-o ro") {
            a.push("-r");
        }
        let mut c = cmd("losetup", &a);
        c.arg(part);
        let dev = String::from_utf8_lossy(&run(&mut c).stdout)
            .trim()
            .to_string();
        loopdev = Some(dev.clone());
        dev
    } else {
        part.to_str().unwrap().to_string()
    };
    std::fs::create_dir_all(mnt).unwrap();
    let line = command
        .replace("PART", &target)
        .replace("MNT", mnt.to_str().unwrap());
    let out = run_any(cmd("sh", ["-c", &line]).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let m = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(mnt.to_str().unwrap()))
        .map(|l| {
            l.split(' ')
                .nth(3)
                .unwrap_or("")
                .split(',')
                .any(|o| o == "rw")
        });
    if m.is_some() {
        run(&mut cmd("umount", [mnt]));
    }
    if let Some(dev) = loopdev {
        run(&mut cmd("losetup", ["-d", &dev]));
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, m)
}

/// Runs every predicted outcome of `target` against the damaged volume
/// `part` and compares; `base_sha` is the undamaged volume's hash.
fn check_every_outcome(fx: &Fixture, target: &Value, part: &Path, base_sha: &str) {
    let prediction = &target["prediction"];
    let damaged_sha = sha256_file(part);
    assert_ne!(damaged_sha, base_sha, "the damage changed nothing");
    let outcomes = prediction["outcomes"].as_array().unwrap();
    let mnt = fx.dir.path().join("mnt");
    let mut repaired: Option<PathBuf> = None;
    let mut checked_repair = false;
    for (i, o) in outcomes.iter().enumerate() {
        let role = o["role"].as_str().unwrap();
        let command = o["command"].as_str().unwrap();
        let want = o["exit_code"].as_i64().unwrap() as i32;
        let result = &o["result"];
        let ctx = format!("{} / {role}: {command}", target["recipe"]);
        if role == "identify" {
            let b = blkid(part);
            match result.as_str() {
                Some(t) => assert_eq!(b.get("TYPE").map(String::as_str), Some(t), "{ctx}: {b:?}"),
                None => assert!(!b.contains_key("TYPE"), "{ctx}: {b:?}"),
            }
            let pttype = prediction["notes"].as_array().is_some_and(|n| {
                n.iter()
                    .any(|n| n.as_str().unwrap().contains("PTTYPE=\"dos\""))
            });
            assert_eq!(
                b.get("PTTYPE").map(String::as_str) == Some("dos"),
                pttype,
                "{ctx}: {b:?}"
            );
            continue;
        }
        // Every tool runs on its own copy; after-repair on the repaired one.
        let copy = fx.dir.path().join(format!("run-{i}.part"));
        let on = if role == "after-repair" {
            repaired.clone().unwrap_or_else(|| {
                std::fs::copy(part, &copy).unwrap();
                copy.clone()
            })
        } else {
            std::fs::copy(part, &copy).unwrap();
            copy.clone()
        };
        let (code, text, mounted) = run_predicted(command, &on, &mnt);
        assert_eq!(code, want, "{ctx}: exit code\n{text}");
        if let Some(m) = o["message"].as_str() {
            assert!(text.contains(m), "{ctx}: no \"{m}\" in\n{text}");
        }
        match (role, result.as_str().unwrap()) {
            ("mount" | "after-repair", "read-write") if command.contains("exfat-fuse") => {
                assert_eq!(mounted, Some(true), "{ctx}: not mounted read-write\n{text}")
            }
            ("mount" | "after-repair", "refused") => assert_eq!(mounted, None, "{ctx}"),
            ("check", _) => {
                assert_eq!(sha256_file(&on), damaged_sha, "{ctx}: the check wrote")
            }
            ("repair", "repairs") => {
                if prediction["byte_identical_after_repair"] == true {
                    assert_eq!(sha256_file(&on), base_sha, "{ctx}: not byte-identical");
                    checked_repair = true;
                } else {
                    assert_ne!(sha256_file(&on), damaged_sha, "{ctx}: repaired nothing");
                }
                if repaired.is_none() {
                    repaired = Some(on.clone());
                }
            }
            ("repair", "cannot-repair") => {
                assert_eq!(sha256_file(&on), damaged_sha, "{ctx}: it wrote");
            }
            ("after-repair", "clean") => {}
            _ => {}
        }
    }
    assert_eq!(
        checked_repair,
        prediction["byte_identical_after_repair"] == true,
        "{}: byte identity not checked",
        target["recipe"]
    );
}

/// Injects `name` into the fixture and checks every predicted outcome.
fn prove(fx: &Fixture, name: &str, args: &[&str]) -> Value {
    let (target, overlay) = inject(fx, name, args);
    assert_eq!(target["recipe"], name);
    // `verify` reads the overlay back and agrees on the verdict.
    let repairs = target["prediction"]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == "repair")
        .is_some_and(|o| o["result"] == "repairs");
    let expect = if repairs {
        "repairable"
    } else {
        "unrepairable"
    };
    qfault_expect(["verify", overlay.to_str().unwrap(), "--expect", expect], 0);
    // ... and predicts the same for the partition, read from the overlay.
    let v = verify_json(&overlay);
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{name}: {v:#}");
    assert_eq!(parts[0]["partition"], target["partition"], "{name}");
    assert_eq!(
        parts[0]["prediction"], target["prediction"],
        "{name}: verify vs inject"
    );
    catalogue_agrees(name, &target);
    let part = extract(fx, &overlay, &target, name);
    let base_sha = sha256_file(&fx.volume);
    check_every_outcome(fx, &target, &part, &base_sha);
    target
}

/// `qfault verify OVERLAY --json`.
fn verify_json(overlay: &Path) -> Value {
    serde_json::from_slice(
        &qfault_expect(["verify", overlay.to_str().unwrap(), "--json"], 0).stdout,
    )
    .unwrap()
}

/// A hand-made overlay on the fixture (qemu-io `writes`, offsets in the
/// volume) that `verify` must predict repairable but not byte-identical:
/// the predicted repair runs for real and must not give the base back.
fn hand_made(fx: &Fixture, name: &str, writes: &[(u64, &[u8])]) {
    let overlay = fx.dir.path().join(format!("{name}.qcow2"));
    let size =
        std::fs::metadata(&fx.volume).unwrap().len() + if fx.offset == 0 { 0 } else { 2 * MIB };
    qemu_img_create_overlay(
        &overlay,
        fx.top.to_str().unwrap(),
        "qcow2",
        &[],
        &size.to_string(),
    );
    for (off, bytes) in writes {
        let src = fx.dir.path().join("payload");
        std::fs::write(&src, bytes).unwrap();
        qemu_io(
            "qcow2",
            &overlay,
            &[&format!(
                "write -s {} {} {}",
                src.display(),
                fx.offset + off,
                bytes.len()
            )],
        );
    }
    let v = verify_json(&overlay);
    assert_eq!(v["verdict"], "repairable", "{name}: {v:#}");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{name}: {v:#}");
    let p = &parts[0]["prediction"];
    assert_eq!(p["byte_identical_after_repair"], false, "{name}: {p:#}");
    let target = serde_json::json!({
        "recipe": name,
        "partition": parts[0]["partition"],
        "prediction": p,
    });
    let part = extract(fx, &overlay, &target, name);
    let base_sha = sha256_file(&fx.volume);
    check_every_outcome(fx, &target, &part, &base_sha);
    // Every predicted repair leaves something other than the base.
    for (i, o) in p["outcomes"].as_array().unwrap().iter().enumerate() {
        if o["role"] == "repair" && o["result"] == "repairs" {
            let on = fx.dir.path().join(format!("again-{i}.part"));
            std::fs::copy(&part, &on).unwrap();
            let (code, text, _) = run_predicted(
                o["command"].as_str().unwrap(),
                &on,
                &fx.dir.path().join("mnt"),
            );
            assert_eq!(
                code,
                o["exit_code"].as_i64().unwrap() as i32,
                "{name}: {text}"
            );
            assert_ne!(sha256_file(&on), base_sha, "{name}: {o} gave the base back");
        }
    }
}

/// `verify` confirms byte identity against the backing chain: overlays
/// whose repair restores consistency from the damaged copy are not
/// byte-identical (the dirty flag in both boot sectors, where `-a` clears
/// only the primary; a changed volume ID, which "Copy original to backup"
/// spreads).
#[test]
fn verify_does_not_call_a_repair_byte_identical_unless_it_gives_the_base_back() {
    if !tools(Fs::Fat32) {
        return;
    }
    let fx = fixture(Fs::Fat32, false, &[], |_| {});
    hand_made(&fx, "dirty-both", &[(0x41, &[1]), (6 * 512 + 0x41, &[1])]);
    hand_made(&fx, "serial", &[(0x43, &[0x99])]);
    fx.guard.assert_unchanged();
    // exFAT: fsck.exfat -y restores the main boot region, not a byte
    // changed elsewhere.
    if tools(Fs::Exfat) {
        let fx = fixture(Fs::Exfat, false, &[], |_| {});
        hand_made(
            &fx,
            "exfat-and-data",
            &[(0x100, &[0x42]), (20 * MIB, &[0x42])],
        );
        fx.guard.assert_unchanged();
    }
}

/// mdir is predicted only where mtools' own media check decides: three
/// FATs kill fsck.fat ("only 1 or 2 FATs are supported") while mtools
/// passes its media check (and here lists the volume), so no reader
/// outcome is predicted; every predicted outcome is run.
#[test]
fn mdir_is_predicted_only_where_its_media_check_decides() {
    if !tools(Fs::Fat32) {
        return;
    }
    let fx = fixture(Fs::Fat32, false, &[], |_| {});
    let overlay = fx.dir.path().join("bps.qcow2");
    let size = std::fs::metadata(&fx.volume).unwrap().len() + 2 * MIB;
    qemu_img_create_overlay(
        &overlay,
        fx.top.to_str().unwrap(),
        "qcow2",
        &[],
        &size.to_string(),
    );
    qemu_io(
        "qcow2",
        &overlay,
        &[&format!("write -P 0x03 {} 1", fx.offset + 0x10)],
    );
    let v = verify_json(&overlay);
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{v:#}");
    let p = &parts[0]["prediction"];
    let outcomes = p["outcomes"].as_array().unwrap();
    assert!(outcomes.iter().all(|o| o["tool"] != "mtools"), "{p:#}");
    let check = outcomes.iter().find(|o| o["role"] == "check").unwrap();
    assert_eq!(check["exit_code"], 1, "{p:#}");
    let target = serde_json::json!({
        "recipe": "bps",
        "partition": parts[0]["partition"],
        "prediction": p,
    });
    let part = extract(&fx, &overlay, &target, "bps");
    check_every_outcome(&fx, &target, &part, &sha256_file(&fx.volume));
    // mdir indeed does not say "non DOS media" here.
    let (_, text, _) = run_predicted("mdir -i PART ::", &part, &fx.dir.path().join("mnt"));
    assert!(!text.contains("non DOS media"), "{text}");
    fx.guard.assert_unchanged();
}

/// Changes outside every partition that no model claims make the overlay
/// unrepairable, even beside a repairable partition: they are reported as
/// the whole disk with blkid only.
#[test]
fn verify_reports_unclaimed_changes_outside_the_partitions() {
    if !tools(Fs::Fat32) {
        return;
    }
    let fx = fixture(Fs::Fat32, false, &[], |_| {});
    let (_, overlay) = inject(&fx, "fat32-dirty", &[]);
    qemu_io("qcow2", &overlay, &["write -P 0x5a 51200 512"]);
    let v = verify_json(&overlay);
    assert_eq!(v["verdict"], "unrepairable", "{v:#}");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{v:#}");
    let disk = parts
        .iter()
        .find(|p| p["partition"]["number"] == 0)
        .unwrap();
    assert_eq!(disk["changes"][0]["offset"], 51200, "{v:#}");
    let outcomes = disk["prediction"]["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 1, "{v:#}");
    assert_eq!(
        (&outcomes[0]["tool"], &outcomes[0]["result"]),
        (&"blkid".into(), &"dos".into())
    );
    // blkid -p on the disk taken out of the overlay agrees.
    let raw = fx.dir.path().join("outside.raw");
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        overlay.as_os_str(),
        raw.as_os_str(),
    ]);
    let b = blkid(&raw);
    assert_eq!(b.get("PTTYPE").map(String::as_str), Some("dos"), "{b:?}");
    assert!(!b.contains_key("TYPE"), "{b:?}");
    qfault_expect(
        [
            "verify",
            overlay.to_str().unwrap(),
            "--expect",
            "unrepairable",
        ],
        0,
    );
    fx.guard.assert_unchanged();
}

/// `qfault recipes --json` lists the same outcomes as the prediction on a
/// typical volume (its messages are the computed ones' stems).
fn catalogue_agrees(name: &str, target: &Value) {
    let v: Value = serde_json::from_slice(&qfault_expect(["recipes", "--json"], 0).stdout).unwrap();
    let entry = v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap();
    let listed = entry["outcomes"].as_array().unwrap();
    let predicted = target["prediction"]["outcomes"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        predicted.len(),
        "{name}: {listed:#?} vs {predicted:#?}"
    );
    for (l, p) in listed.iter().zip(predicted) {
        for k in [
            "role",
            "tool",
            "command",
            "result",
            "exit_code",
            "verified_with",
        ] {
            assert_eq!(l[k], p[k], "{name}: {k}: {l} vs {p}");
        }
        if let Some(m) = l["message"].as_str() {
            assert!(
                p["message"].as_str().unwrap_or("").starts_with(m),
                "{name}: {l} vs {p}"
            );
        }
    }
}

#[test]
fn fat32_recipes_in_an_mbr_partition() {
    if !tools(Fs::Fat32) {
        return;
    }
    let fx = fixture(Fs::Fat32, false, &[], |_| {});
    let t = prove(&fx, "fat32-fat-mismatch", &[]);
    assert_eq!(t["partition"]["number"], 1);
    assert_eq!(t["prediction"]["byte_identical_after_repair"], true);
    let t = prove(&fx, "fat32-dirty", &["--partition", "1"]);
    assert_eq!(t["changes"][0]["length"], 1);
    let t = prove(&fx, "fat32-backup-boot", &[]);
    // The trap: the checker exits 0 although it lists the differences.
    let check = &t["prediction"]["outcomes"][2];
    assert_eq!(
        (check["role"].as_str(), check["exit_code"].as_i64()),
        (Some("check"), Some(0))
    );
    let t = prove(&fx, "fat32-boot", &[]);
    assert_eq!(t["prediction"]["byte_identical_after_repair"], false);
    fx.guard.assert_unchanged();
}

#[test]
fn fat32_recipes_on_a_whole_disk_volume_and_another_cluster() {
    if !tools(Fs::Fat32) {
        return;
    }
    let fx = fixture(Fs::Fat32, true, &[], |_| {});
    let t = prove(&fx, "fat32-dirty", &[]);
    assert_eq!(t["partition"]["number"], 0);
    // hello.txt's first cluster follows the root directory's.
    prove(
        &fx,
        "fat32-fat-mismatch",
        &["--partition", "0", "--cluster", "3"],
    );
    fx.guard.assert_unchanged();
}

#[test]
fn exfat_boot_checksum_in_a_partition_and_on_a_whole_disk() {
    if !tools(Fs::Exfat) {
        return;
    }
    for whole in [false, true] {
        let fx = fixture(Fs::Exfat, whole, &[], |_| {});
        let t = prove(&fx, "exfat-boot-checksum", &[]);
        assert_eq!(t["partition"]["number"], if whole { 0 } else { 1 });
        assert_eq!(t["prediction"]["byte_identical_after_repair"], true);
        fx.guard.assert_unchanged();
    }
}

/// `inject NAME` must refuse (exit 3) with `why` in the message and write nothing.
fn refused(fx: &Fixture, name: &str, args: &[&str], why: &str) {
    let out = fx.dir.path().join("refused.qcow2");
    let mut a = vec![
        "inject",
        name,
        fx.top.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    a.extend(args);
    let o = qfault_expect(&a, 3);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(why), "{name}: no \"{why}\" in {err}");
    assert!(
        !out.exists(),
        "{name}: a refused inject wrote {}",
        out.display()
    );
}

#[test]
fn preconditions_refuse_with_a_reason() {
    if !tools(Fs::Fat32) || !tools(Fs::Exfat) {
        return;
    }
    // FAT16: the FAT32 recipes refuse it.
    let fx = fixture(Fs::Fat32, false, &["-F", "16"], |_| {});
    for r in [
        "fat32-fat-mismatch",
        "fat32-dirty",
        "fat32-backup-boot",
        "fat32-boot",
    ] {
        refused(&fx, r, &[], "no FAT32 partition");
        refused(&fx, r, &["--partition", "1"], "is FAT16, not FAT32");
    }
    fx.guard.assert_unchanged();
    // One FAT: nothing to mismatch.
    let fx = fixture(Fs::Fat32, false, &["-f", "1"], |_| {});
    refused(&fx, "fat32-fat-mismatch", &[], "one FAT only");
    fx.guard.assert_unchanged();
    // A free cluster: marking it free changes nothing.
    let fx = fixture(Fs::Fat32, false, &[], |_| {});
    refused(
        &fx,
        "fat32-fat-mismatch",
        &["--cluster", "1000"],
        "is free in the first FAT",
    );
    fx.guard.assert_unchanged();
    // No backup boot sector (BPB_BkBootSec 0).
    let fx = fixture(Fs::Fat32, false, &[], |v| write_at(v, 0x32, &[0, 0]));
    refused(&fx, "fat32-backup-boot", &[], "BPB_BkBootSec is 0");
    // Already dirty: fsck.fat would report it before the damage.
    let fx = fixture(Fs::Fat32, false, &[], |v| write_at(v, 0x41, &[1]));
    refused(&fx, "fat32-dirty", &[], "Dirty bit is set");
    // exFAT whose backup boot region differs from the main one.
    let fx = fixture(Fs::Exfat, false, &[], |v| {
        write_at(v, 12 * 512 + 0x100, &[0x42])
    });
    refused(&fx, "exfat-boot-checksum", &[], "backup boot region");
    fx.guard.assert_unchanged();
}

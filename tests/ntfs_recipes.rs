//! The NTFS state recipes against the real tools: for each, an NTFS volume
//! made by mkntfs (on an MBR, a GPT or a logical partition; clusters of
//! 512 B, 4 KiB and 64 KiB) under a two-deep qcow2 chain, damaged with
//! `qfault inject`, taken out with `qemu-img convert`, and every outcome the
//! JSON report predicts run for real ([`prove`]): blkid, each ntfs-3g mount
//! request and the mode it ends in, the checker, each repair on its own copy,
//! and the outcomes after the working repair. Regressions for the
//! `ntfs-boot` fixes of the NTFS catalogue issue are named after what they
//! guard.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

const MIB: u64 = 1 << 20;

/// Every tool the oracle runs.
const TOOLS: &[&str] = &[
    "qemu-img",
    "qemu-io",
    "sfdisk",
    "mkntfs",
    "ntfs-3g",
    "ntfsfix",
    "ntfsresize",
    "blkid",
    "mount",
    "umount",
];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// FUSE must work under CI; elsewhere a test without it returns early, loudly.
fn fuse_or_skip() -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
    {
        return true;
    }
    if in_ci() {
        panic!(
            "CI must prove NTFS predictions with real ntfs-3g FUSE mounts: /dev/fuse is unusable"
        );
    }
    let _ = writeln!(std::io::stderr(), "SKIP: /dev/fuse is unusable");
    false
}

/// How the disk is partitioned.
#[derive(Clone, Copy, Debug)]
enum Table {
    /// MBR, the NTFS volume in primary partition 1.
    Mbr,
    /// GPT, the volume in partition 1.
    Gpt,
    /// MBR with an extended partition; the volume in logical partition 5.
    Logical,
}

/// A base under a chain: `base.qcow2` (the volume) ← `mid.qcow2` (a write
/// outside the volume), the partition's place, and the base's guard.
struct Fixture {
    dir: tempfile::TempDir,
    top: PathBuf,
    number: u32,
    start: u64,
    size: u64,
    guard: BaseGuard,
}

/// Makes the fixture: a 48 MiB disk, a ~40 MiB NTFS partition with
/// `cluster`-byte clusters holding `hello.txt` (and a 64 KiB `hiberfil.sys`
/// when `hiberfil`), written through a real ntfs-3g mount.
fn fixture(table: Table, cluster: u32, hiberfil: bool) -> Fixture {
    let dir = tmpdir();
    let w = dir.path();
    let disk = w.join("disk.raw");
    sparse_file(&disk, 48 * MIB);
    let (script, number) = match table {
        Table::Mbr => ("label: dos\nstart=2048, size=81920, type=7\n", 1),
        Table::Gpt => (
            "label: gpt\nstart=2048, size=81920, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n",
            1,
        ),
        Table::Logical => (
            "label: dos\nstart=2048, size=4096, type=83\nstart=8192, size=86016, type=5\nstart=10240, size=81920, type=7\n",
            5,
        ),
    };
    let mut c = cmd("sfdisk", ["-q".as_ref(), disk.as_os_str()]);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    let json = sh("sfdisk", ["-J".as_ref(), disk.as_os_str()]);
    let v: Value = serde_json::from_str(&json).unwrap();
    let p = v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "7" || p["type"] == "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
        .unwrap()
        .clone();
    let start = p["start"].as_u64().unwrap() * 512;
    let size = p["size"].as_u64().unwrap() * 512;
    let vol = w.join("vol.raw");
    sparse_file(&vol, size);
    run(&mut cmd(
        "mkntfs",
        [
            "-F",
            "-Q",
            "-q",
            "-L",
            "QF",
            "-c",
            &cluster.to_string(),
            "-p",
            &(start / 512).to_string(),
            vol.to_str().unwrap(),
        ],
    ));
    let mnt = w.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(&mut cmd("ntfs-3g", [vol.as_os_str(), mnt.as_os_str()]));
    std::fs::write(mnt.join("hello.txt"), b"hello from qfault\n").unwrap();
    if hiberfil {
        std::fs::write(mnt.join("hiberfil.sys"), vec![0u8; 65536]).unwrap();
    }
    run(&mut cmd("umount", [mnt.as_os_str()]));
    let bytes = std::fs::read(&vol).unwrap();
    write_at(&disk, start, &bytes);
    std::fs::remove_file(&vol).unwrap();
    let base = w.join("base.qcow2");
    qemu_img_to_qcow2(&disk, &base, &[]);
    std::fs::remove_file(&disk).unwrap();
    let top = w.join("mid.qcow2");
    qemu_img_create_overlay(&top, "base.qcow2", "qcow2", &[], "48M");
    // A write in the chain's top, outside the volume: the chain is real.
    qemu_io("qcow2", &top, &["write -P 0x5a 46M 64k"]);
    let guard = BaseGuard::new(&[&base, &top]);
    Fixture {
        dir,
        top,
        number,
        start,
        size,
        guard,
    }
}

/// `qfault inject RECIPE TOP -o OUT --partition N --json`: exit 0, the report.
fn inject(f: &Fixture, recipe: &str, extra: &[&str]) -> (PathBuf, Value) {
    let out = f.dir.path().join(format!("{recipe}.qcow2"));
    let n = f.number.to_string();
    let mut args = vec![
        "inject",
        recipe,
        f.top.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--partition",
        &n,
        "--json",
    ];
    args.extend(extra);
    let o = qfault_expect(args, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["output"]["status"], "written", "{v:#}");
    assert_qemu_img_check_clean(&out);
    (out, v)
}

/// The partition as QEMU reads it through `image` (`qemu-img convert` of
/// the whole disk, then cut).
fn extract(f: &Fixture, image: &Path, name: &str) -> PathBuf {
    let w = f.dir.path();
    let disk = w.join(format!("{name}-disk.raw"));
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        image.as_os_str(),
        disk.as_os_str(),
    ]);
    let part = w.join(format!("{name}.raw"));
    let bytes = std::fs::read(&disk).unwrap();
    std::fs::write(&part, &bytes[f.start as usize..(f.start + f.size) as usize]).unwrap();
    std::fs::remove_file(&disk).unwrap();
    part
}

/// A fresh copy of `part` for one tool run (some runs write).
fn copy(part: &Path, name: &str) -> PathBuf {
    let c = part.with_file_name(format!("{name}.raw"));
    std::fs::copy(part, &c).unwrap();
    c
}

/// The mode (`rw`/`ro`) of the mount on `dir`, if mounted.
fn mode(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
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

/// Runs one predicted outcome's command on `part` and checks its exit code,
/// key message and (for mounts) the mode it ends in.
fn run_outcome(o: &Value, part: &Path, mnt: &Path) {
    let command = o["command"].as_str().unwrap();
    let words: Vec<String> = command
        .split(' ')
        .map(|w| match w {
            "PART" => part.to_str().unwrap().to_string(),
            "MNT" => mnt.to_str().unwrap().to_string(),
            w => w.to_string(),
        })
        .collect();
    std::fs::create_dir_all(mnt).unwrap();
    let out = run_any(&mut cmd(&words[0], &words[1..]));
    let said = text(&out);
    let mounted = mode(mnt);
    if mounted.is_some() {
        run(&mut cmd("umount", [mnt.as_os_str()]));
    }
    let ctx = format!("`{command}` (predicted {o}):\n{said}");
    assert_eq!(
        out.status.code().map(i64::from),
        o["exit_code"].as_i64(),
        "exit code of {ctx}"
    );
    if let Some(m) = o["message"].as_str() {
        let m = m.replace("PART", part.to_str().unwrap());
        assert!(said.contains(&m), "{ctx}\ndoes not say {m:?}");
    }
    match o["result"].as_str() {
        Some("read-write") => assert_eq!(mounted.as_deref(), Some("rw"), "{ctx}"),
        Some("read-only") => assert_eq!(mounted.as_deref(), Some("ro"), "{ctx}"),
        Some("refused") if words[0] == "ntfs-3g" || words[0] == "mount" => {
            assert_eq!(mounted, None, "{ctx}")
        }
        _ => {}
    }
    if o["role"] == "identify" {
        let t = String::from_utf8_lossy(&out.stdout);
        let ty = t
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("TYPE=\""))
            .map(|v| v.trim_end_matches('"'));
        assert_eq!(ty, o["result"].as_str(), "{ctx}");
    }
}

/// Proves every outcome of `prediction` on the damaged partition `part`:
/// identify, mount and check outcomes each on a fresh copy; each repair on
/// its own copy; the after-repair outcomes in order on the copy the last
/// working repair repaired (when none works: the copy the last repair ran
/// on, as a failed ntfsfix may have written). Returns that copy.
fn prove(prediction: &Value, part: &Path) -> PathBuf {
    let mnt = part.with_file_name("mnt");
    let mut repaired = None;
    let mut tried = None;
    for (i, o) in prediction["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        match o["role"].as_str().unwrap() {
            "identify" | "mount" | "check" => run_outcome(o, &copy(part, &format!("o{i}")), &mnt),
            "repair" => {
                let c = copy(part, &format!("o{i}"));
                run_outcome(o, &c, &mnt);
                if o["result"] == "repairs" {
                    repaired = Some(c);
                } else {
                    tried = Some(c);
                }
            }
            "after-repair" => {
                let target = repaired
                    .as_ref()
                    .or(tried.as_ref())
                    .cloned()
                    .unwrap_or_else(|| copy(part, "unrepaired"));
                run_outcome(o, &target, &mnt);
            }
            r => panic!("unknown role {r}"),
        }
    }
    repaired.or(tried).unwrap_or_else(|| part.to_path_buf())
}

/// The one target of a report, its prediction, and its changes.
fn target(report: &Value) -> (&Value, &Value) {
    let t = &report["output"]["targets"][0];
    (&t["prediction"], &t["changes"])
}

/// The whole check for one recipe on one fixture: inject, extract with
/// QEMU, the changed bytes (and only those) differ from the base, every
/// predicted outcome holds, the repair is not byte-identical (as predicted),
/// `verify` agrees with the written overlay, and the base is untouched.
fn check_recipe(f: &Fixture, recipe: &str, expect_roles: &[(&str, &str)]) -> Value {
    let (overlay, report) = inject(f, recipe, &[]);
    let (pr, changes) = target(&report);
    for (role, result) in expect_roles {
        assert!(
            pr["outcomes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["role"] == *role && o["result"] == *result),
            "{recipe}: no {role} {result} in {pr:#}"
        );
    }
    let damaged = extract(f, &overlay, "damaged");
    let before = extract(f, &f.top, "before");
    let (a, b) = (
        std::fs::read(&damaged).unwrap(),
        std::fs::read(&before).unwrap(),
    );
    let mut inside = vec![false; a.len()];
    for c in changes.as_array().unwrap() {
        let off = (c["offset"].as_u64().unwrap() - f.start) as usize;
        let len = c["length"].as_u64().unwrap() as usize;
        inside[off..off + len].iter_mut().for_each(|x| *x = true);
    }
    let mut differing = 0;
    for i in 0..a.len() {
        if a[i] != b[i] {
            assert!(
                inside[i],
                "{recipe}: byte {i} changed outside the reported changes"
            );
            differing += 1;
        }
    }
    assert!(differing > 0, "{recipe}: the overlay changes nothing");
    let repaired = prove(pr, &damaged);
    let identical = std::fs::read(&repaired).unwrap() == b;
    assert_eq!(
        identical, pr["byte_identical_after_repair"],
        "{recipe}: byte identity after the repair"
    );
    // verify, reading the written overlay, predicts the same.
    let v = qfault_expect(["verify", overlay.to_str().unwrap(), "--json"], 0);
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    let vp = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"]["offset"] == f.start)
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        vp["prediction"]["outcomes"], pr["outcomes"],
        "{recipe}: verify"
    );
    f.guard.assert_unchanged();
    report
}

macro_rules! recipe_test {
    ($name:ident, $recipe:literal, $table:expr, $cluster:expr, $hiber:expr, [$(($role:literal, $result:literal)),* $(,)?]) => {
        #[test]
        fn $name() {
            if !require_tools(TOOLS) || !fuse_or_skip() {
                return;
            }
            let f = fixture($table, $cluster, $hiber);
            check_recipe(&f, $recipe, &[$(($role, $result)),*]);
        }
    };
}

recipe_test!(
    fast_startup_mbr_4k,
    "ntfs-fast-startup",
    Table::Mbr,
    4096,
    false,
    [
        ("mount", "read-only"),
        ("repair", "repairs"),
        ("after-repair", "read-write")
    ]
);
recipe_test!(
    unclean_journal_gpt_512,
    "ntfs-unclean-journal",
    Table::Gpt,
    512,
    false,
    [("mount", "read-write"), ("repair", "repairs")]
);
recipe_test!(
    hibernated_logical_4k,
    "ntfs-hibernated",
    Table::Logical,
    4096,
    true,
    [
        ("mount", "read-only"),
        ("repair", "cannot-repair"),
        ("repair", "repairs")
    ]
);
recipe_test!(
    hibernated_gpt_64k,
    "ntfs-hibernated",
    Table::Gpt,
    65536,
    true,
    [
        ("mount", "read-only"),
        ("repair", "cannot-repair"),
        ("repair", "repairs")
    ]
);
recipe_test!(
    dirty_mbr_64k,
    "ntfs-dirty",
    Table::Mbr,
    65536,
    false,
    [
        ("mount", "read-write"),
        ("check", "refused"),
        ("after-repair", "clean")
    ]
);
recipe_test!(
    mftmirr_gpt_64k,
    "ntfs-mftmirr",
    Table::Gpt,
    65536,
    false,
    [("mount", "refused"), ("repair", "repairs")]
);
recipe_test!(
    mftmirr_mbr_512,
    "ntfs-mftmirr",
    Table::Mbr,
    512,
    false,
    [("mount", "refused"), ("repair", "repairs")]
);
recipe_test!(
    boot_both_mbr_4k,
    "ntfs-boot-both",
    Table::Mbr,
    4096,
    false,
    [("mount", "refused"), ("repair", "cannot-repair")]
);
recipe_test!(
    backup_boot_logical_512,
    "ntfs-backup-boot",
    Table::Logical,
    512,
    false,
    [("check", "reports-damage"), ("repair", "repairs")]
);
recipe_test!(
    ntfs_boot_gpt_4k_every_outcome_real,
    "ntfs-boot",
    Table::Gpt,
    4096,
    true,
    [("mount", "refused"), ("repair", "repairs")]
);

/// The Windows-made volume of `testdata/external/dfvfs` (unpartitioned,
/// partition 0) under a chain.
fn windows_fixture() -> Fixture {
    let dir = tmpdir();
    let base = dir.path().join("base.qcow2");
    std::fs::copy(
        repo_root().join("testdata/external/dfvfs/windows_volume.qcow2"),
        &base,
    )
    .unwrap();
    let top = dir.path().join("mid.qcow2");
    qemu_img_create_overlay(&top, "base.qcow2", "qcow2", &[], "35913728");
    let guard = BaseGuard::new(&[&base, &top]);
    Fixture {
        dir,
        top,
        number: 0,
        start: 0,
        size: 35_913_728,
        guard,
    }
}

/// Predictions hold on a volume Windows made, not only on mkntfs's: every
/// recipe that applies to it (it has no hiberfil.sys), proven for real.
#[test]
fn windows_made_volume_every_recipe() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    for recipe in [
        "ntfs-boot",
        "ntfs-fast-startup",
        "ntfs-unclean-journal",
        "ntfs-dirty",
        "ntfs-mftmirr",
        "ntfs-boot-both",
        "ntfs-backup-boot",
    ] {
        check_recipe(&windows_fixture(), recipe, &[]);
    }
    let f = windows_fixture();
    let out = f.dir.path().join("h.qcow2");
    let o = qfault_expect(
        [
            "inject",
            "ntfs-hibernated",
            f.top.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(text(&o).contains("no hiberfil.sys"), "{}", text(&o));
}

#[test]
fn hibernated_refuses_a_volume_without_hiberfil_sys() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    let f = fixture(Table::Mbr, 4096, false);
    let out = f.dir.path().join("h.qcow2");
    let o = qfault_expect(
        [
            "inject",
            "ntfs-hibernated",
            f.top.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("there is no hiberfil.sys"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
    f.guard.assert_unchanged();
}

#[test]
fn dirty_refuses_a_volume_already_dirty() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    let f = fixture(Table::Mbr, 4096, false);
    let (overlay, _) = inject(&f, "ntfs-dirty", &[]);
    let again = f.dir.path().join("again.qcow2");
    let o = qfault_expect(
        [
            "inject",
            "ntfs-dirty",
            overlay.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ],
        3,
    );
    assert!(text(&o).contains("already set"), "{}", text(&o));
}

/// ntfs-boot fix: the predicted root listing after the repair is what
/// ntfs-3g shows, `$RECYCLE.BIN` included (only NTFS system files are hidden).
#[test]
fn ntfs_boot_root_listing_shows_recycle_bin() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    let mut f = fixture(Table::Mbr, 4096, false);
    // Add $RECYCLE.BIN through a real mount, into a new chain link.
    let mnt = f.dir.path().join("m");
    std::fs::create_dir_all(&mnt).unwrap();
    let part = f.dir.path().join("withbin-mount.raw");
    add_link(&mut f, "withbin", |bytes| {
        std::fs::write(&part, &*bytes).unwrap();
        run(&mut cmd("ntfs-3g", [part.as_os_str(), mnt.as_os_str()]));
        std::fs::create_dir(mnt.join("$RECYCLE.BIN")).unwrap();
        run(&mut cmd("umount", [mnt.as_os_str()]));
        *bytes = std::fs::read(&part).unwrap();
        std::fs::remove_file(&part).unwrap();
    });
    let (out, v) = inject(&f, "ntfs-boot", &[]);
    let (pr, _) = target(&v);
    let note = pr["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|n| n.as_str()?.strip_prefix("after the repair: "))
        .unwrap()
        .to_string();
    assert!(note.ends_with("root: $RECYCLE.BIN, hello.txt"), "{note}");
    let repaired = prove(pr, &extract(&f, &out, "nbd"));
    run(&mut cmd("ntfs-3g", [repaired.as_os_str(), mnt.as_os_str()]));
    let mut names: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    run(&mut cmd("umount", [mnt.as_os_str()]));
    names.sort();
    assert_eq!(names, ["$RECYCLE.BIN", "hello.txt"]);
}

/// ntfs-boot fix: a volume whose boot sectors lack the 0x55AA end marker
/// (ntfs-3g only logs it) is damaged and predicted repairable, and the real
/// ntfsfix and ntfs-3g agree.
#[test]
fn ntfs_boot_accepts_boot_sectors_without_end_marker() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    let mut f = fixture(Table::Mbr, 4096, false);
    add_link(&mut f, "nomarker", |b| {
        let n = b.len();
        b[510..512].fill(0);
        b[n - 2..].fill(0);
    });
    let (out, v) = inject(&f, "ntfs-boot", &[]);
    let (pr, _) = target(&v);
    let damaged = extract(&f, &out, "nm");
    assert_eq!(
        &std::fs::read(&damaged).unwrap()[f.size as usize - 2..],
        &[0, 0]
    );
    prove(pr, &damaged);
}

/// ntfs-boot fix: zeroing up to $MFT (every sector but the backup) predicts
/// what real ntfsfix does: exit 1, not "repairs".
#[test]
fn ntfs_boot_prediction_covers_every_zeroed_sector() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    let f = fixture(Table::Mbr, 4096, false);
    let sectors = (f.size / 512 - 1).to_string();
    let (_, v) = inject(
        &f,
        "ntfs-boot",
        &["--sectors", &sectors, "--allow-unrepairable"],
    );
    let (pr, _) = target(&v);
    let repair = pr["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == "repair")
        .unwrap();
    assert_eq!(repair["result"], "cannot-repair", "{pr:#}");
    let overlay = f.dir.path().join("ntfs-boot.qcow2");
    prove(pr, &extract(&f, &overlay, "allzero"));
}

/// The state model reads untrusted metadata: on a real volume whose
/// `$MFT`, `$MFTMirr`, `$LogFile` and root-index bytes are corrupted at
/// random (deterministically, 3000 variants), it returns a prediction or an
/// error, never panics.
#[test]
fn state_model_survives_corrupted_metadata() {
    if !require_tool("qemu-img") {
        return;
    }
    let dir = tmpdir();
    let raw = dir.path().join("sample.raw");
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        sample_image().as_os_str(),
        raw.as_os_str(),
    ]);
    // Partition 2 of the sample: 4 KiB clusters, $MFT at cluster 4: corrupt
    // the first 96 KiB of $MFT (system records, the root directory), the
    // mirror's cluster and the journal's two restart pages.
    let disk = std::fs::read(&raw).unwrap();
    let part = disk[17_825_792..].to_vec();
    let mft = 4 * 4096;
    let mut spans: Vec<(usize, usize)> = vec![(mft, 96 * 1024)];
    let mirr = u64::from_le_bytes(part[0x38..0x40].try_into().unwrap()) as usize * 4096;
    spans.push((mirr, 4096));
    let state =
        qfault::fs::ntfs::NtfsState::read(&mut qfault::image::MemDisk(part.clone())).unwrap();
    let log = state.places.logfile.unwrap();
    let log_at = log.runs[0].lcn.unwrap() as usize * 4096;
    spans.push((log_at, 8192));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Two restart pages in the journal (mkntfs leaves it empty), so the
    // restart-page checks are reached.
    let mut part = part;
    for (i, lsn) in [(0, 0x200_0000), (1, 0x200_1000)] {
        let page = qfault::fs::ntfs::logfile::restart_page(log.size, 1, 1, i == 0, lsn);
        part[log_at + i * 4096..log_at + (i + 1) * 4096].copy_from_slice(&page);
    }
    // One copy, corrupted and restored in place: cloning 47 MiB per
    // variant would dominate the run.
    let mut d = qfault::image::MemDisk(part.clone());
    for _ in 0..3000 {
        let mut changed = Vec::new();
        for _ in 0..1 + next() % 8 {
            let (start, len) = spans[(next() % spans.len() as u64) as usize];
            let at = start + (next() % len as u64) as usize;
            changed.push(at);
            d.0[at] = match next() % 4 {
                0 => 0,
                1 => 0xFF,
                _ => next() as u8,
            };
        }
        // A prediction, or an error saying the guest is bad: never a usage
        // error (exit 2) for what an image says.
        if let Err(e) = qfault::recipe::ntfs::state_prediction(&mut d) {
            assert_eq!(e.kind(), qfault::error::ErrorKind::Malformed, "{e}");
        }
        for at in changed {
            d.0[at] = part[at];
        }
    }
}

/// A new top link over `f.top` holding `patch(partition bytes)`'s changes,
/// written with qemu-io; `f.top` becomes it (the guard still covers the
/// base and the old top).
fn add_link(f: &mut Fixture, name: &str, patch: impl FnOnce(&mut Vec<u8>)) {
    let part = extract(f, &f.top, &format!("{name}-src"));
    let mut bytes = std::fs::read(&part).unwrap();
    patch(&mut bytes);
    std::fs::write(&part, &bytes).unwrap();
    let top = f.dir.path().join(format!("{name}.qcow2"));
    let backing = f.top.file_name().unwrap().to_str().unwrap().to_string();
    qemu_img_create_overlay(&top, &backing, "qcow2", &[], "48M");
    run(&mut cmd(
        "qemu-io",
        [
            "-f",
            "qcow2",
            "-c",
            &format!("write -s {} {} {}", part.display(), f.start, f.size),
            top.to_str().unwrap(),
        ],
    ));
    f.top = top;
}

/// Where `$LogFile`'s data starts in a partition image (through qfault's
/// own model; the tests below prove what the tools make of it).
fn logfile_offset(part: &[u8]) -> usize {
    let state =
        qfault::fs::ntfs::NtfsState::read(&mut qfault::image::MemDisk(part.to_vec())).unwrap();
    let cs = state.params.unwrap().cluster_size as usize;
    state.places.logfile.unwrap().runs[0].lcn.unwrap() as usize * cs
}

/// Windows keeps two clean restart pages, the second usually the newer. A
/// recipe writing only the first would change nothing; the journal recipes
/// write both, and ntfs-3g agrees (the fixture's journal is first proven
/// clean by a real read-write mount).
#[test]
fn journal_recipes_on_a_windows_like_two_page_journal() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    for recipe in ["ntfs-fast-startup", "ntfs-unclean-journal"] {
        let mut f = fixture(Table::Mbr, 4096, false);
        add_link(&mut f, "twopages", |b| {
            let at = logfile_offset(b);
            let size = 2 << 20; // mkntfs's $LogFile on a 40 MiB volume
            let p0 = qfault::fs::ntfs::logfile::restart_page(size, 1, 1, true, 0x200_0000);
            let p1 = qfault::fs::ntfs::logfile::restart_page(size, 1, 1, true, 0x200_1000);
            b[at..at + 4096].copy_from_slice(&p0);
            b[at + 4096..at + 8192].copy_from_slice(&p1);
        });
        let clean = extract(&f, &f.top, "clean");
        let mnt = f.dir.path().join("m");
        run_outcome(
            &serde_json::json!({"role": "mount", "command": "ntfs-3g PART MNT",
                "result": "read-write", "exit_code": 0, "message": null}),
            &clean,
            &mnt,
        );
        let said = text(&run_any(&mut cmd(
            "ntfs-3g",
            [clean.as_os_str(), mnt.as_os_str()],
        )));
        run(&mut cmd("umount", [mnt.as_os_str()]));
        assert!(
            !said.contains("unclean"),
            "the fixture's journal is not clean: {said}"
        );
        let d = f.dir.path();
        f.guard = BaseGuard::new(&[d.join("base.qcow2"), d.join("mid.qcow2"), f.top.clone()]);
        check_recipe(&f, recipe, &[("repair", "repairs")]);
    }
}

/// ntfsfix's other branch: on a partition with no sector past the volume,
/// it prints "Checking file system overflow... FAILED" and exits 1, `-n`
/// too. The state model's prediction for such a volume (with `$MFTMirr`
/// broken, so a repair is attempted) is proven with the real tools, and
/// the recipes that promise a repair refuse it.
#[test]
fn a_volume_that_fills_its_partition_is_predicted_as_ntfsfix_sees_it() {
    if !require_tools(TOOLS) || !fuse_or_skip() {
        return;
    }
    let f = fixture(Table::Mbr, 4096, false);
    // The partition as a one-sector-shorter device: it ends with the volume.
    let full = extract(&f, &f.top, "full");
    let mut bytes = std::fs::read(&full).unwrap();
    bytes.truncate(bytes.len() - 512);
    let number_of_sectors = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap());
    assert_eq!(bytes.len() as u64 / 512, number_of_sectors);
    let short = f.dir.path().join("short.raw");
    std::fs::write(&short, &bytes).unwrap();
    let clean =
        qfault::recipe::ntfs::state_prediction(&mut qfault::image::MemDisk(bytes.clone())).unwrap();
    let clean = serde_json::to_value(&clean).unwrap();
    let role = |p: &Value, r: &str| -> Vec<Value> {
        p["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["role"] == r)
            .cloned()
            .collect()
    };
    assert_eq!(role(&clean, "check")[0]["exit_code"], 1, "{clean:#}");
    assert_eq!(
        role(&clean, "repair")[0]["result"],
        "cannot-repair",
        "{clean:#}"
    );
    prove(&clean, &short);
    // With $MFTMirr broken as ntfs-mftmirr breaks it.
    let mut broken = bytes.clone();
    let state =
        qfault::fs::ntfs::NtfsState::read(&mut qfault::image::MemDisk(bytes.clone())).unwrap();
    for &(at, n) in &state.places.mirror_si_time {
        for b in &mut broken[at as usize..at as usize + n] {
            *b = !*b;
        }
    }
    let p = qfault::recipe::ntfs::state_prediction(&mut qfault::image::MemDisk(broken.clone()))
        .unwrap();
    let p = serde_json::to_value(&p).unwrap();
    assert_eq!(role(&p, "mount")[0]["exit_code"], 13, "{p:#}");
    assert_eq!(
        role(&p, "repair")[0]["message"],
        "Error: Failed to fix the alternate boot sector",
        "{p:#}"
    );
    std::fs::write(&short, &broken).unwrap();
    prove(&p, &short);
}

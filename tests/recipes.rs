//! The recipe registry, through every front-end: for every recipe the same
//! parameters through `inject`, `chain --depth 1 --each` and a manifest give
//! byte-identical overlays (checked by `qemu-img check`); every JSON
//! document carries `"schema": 1` and the documented prediction fields; and
//! regressions for the front-end drift the registry removed, each named
//! after what it guards.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;

/// One set of parameters per registry recipe, and the base it runs on (a
/// name [`fixture`] knows; `sample` is the shipped sample, whose partition 2
/// is NTFS "C" at 17 MiB). A recipe added to the registry without a row here
/// fails `every_registry_recipe_has_a_conformance_case`.
const CASES: &[(&str, &str, &str)] = &[
    ("empty", "empty", "sample"),
    (
        "zero",
        "zero --offset 8s --length 512 --partition 2",
        "sample",
    ),
    ("write", "write --offset 1M --from payload.bin", "sample"),
    ("ntfs-boot", "ntfs-boot --partition 2", "sample"),
    (
        "ntfs-fast-startup",
        "ntfs-fast-startup --partition 2",
        "sample",
    ),
    (
        "ntfs-unclean-journal",
        "ntfs-unclean-journal --partition 2",
        "sample",
    ),
    ("ntfs-hibernated", "ntfs-hibernated", "ntfs-hiberfil"),
    ("ntfs-dirty", "ntfs-dirty --partition 2", "sample"),
    ("ntfs-mftmirr", "ntfs-mftmirr --partition 1", "sample"),
    ("ntfs-boot-both", "ntfs-boot-both --partition 2", "sample"),
    (
        "ntfs-backup-boot",
        "ntfs-backup-boot --partition 2",
        "sample",
    ),
    ("ext4-sb-primary", "ext4-sb-primary", "ext4"),
    ("ext4-needs-recovery", "ext4-needs-recovery", "ext4"),
    ("ext4-unclean", "ext4-unclean --partition 1", "ext4"),
    ("ext4-gdt-csum", "ext4-gdt-csum", "ext4"),
    ("xfs-sb-primary", "xfs-sb-primary", "xfs"),
    ("btrfs-sb-primary", "btrfs-sb-primary", "btrfs"),
    ("luks2-primary-header", "luks2-primary-header", "luks2"),
    ("gpt-primary", "gpt-primary", "gpt"),
    ("gpt-primary-crc", "gpt-primary-crc --byte 60", "gpt"),
    ("gpt-backup", "gpt-backup", "gpt"),
    ("gpt-no-pmbr", "gpt-no-pmbr", "gpt"),
    ("mbr-no-signature", "mbr-no-signature", "sample"),
    ("mbr-overlap", "mbr-overlap --overlap 8", "sample"),
    ("mbr-ebr-loop", "mbr-ebr-loop", "mbr-logical"),
    (
        "fat32-fat-mismatch",
        "fat32-fat-mismatch --partition 1 --cluster 2",
        "fat32",
    ),
    ("fat32-dirty", "fat32-dirty", "fat32"),
    (
        "fat32-backup-boot",
        "fat32-backup-boot --partition 1",
        "fat32",
    ),
    ("exfat-boot-checksum", "exfat-boot-checksum", "exfat"),
    ("fat32-boot", "fat32-boot", "fat32"),
];

/// Recipes whose predicted messages quote values computed from the image
/// (checksums), so `qfault recipes` can only list a typical line.
const MESSAGES_FROM_THE_IMAGE: &[&str] = &["ext4-gdt-csum", "exfat-boot-checksum"];

/// The base image named `name` in a CASES row, made in `dir` (once per
/// name: later calls return the same file). Its file name is what a manifest
/// in `dir` names as `base`.
fn fixture(name: &str, dir: &std::path::Path) -> PathBuf {
    let path = dir.join(format!("{name}.qcow2"));
    if path.exists() {
        return path;
    }
    match name {
        "sample" => {
            std::fs::copy(sample_image(), &path).unwrap();
        }
        "ntfs-hiberfil" => ntfs_hiberfil_disk(dir, &path),
        "ext4" | "xfs" | "btrfs" | "luks2" => {
            common::linux::fixture(name, dir);
        }
        "gpt" => common::ptable::sgdisk_gpt_qcow2(&path),
        "mbr-logical" => common::ptable::sfdisk_logical_qcow2(&path),
        "fat32" | "exfat" => common::fat::fat_disk_qcow2(name, &path),
        other => panic!("no fixture named {other}: add it to fixture()"),
    }
    path
}

/// A 24 MiB unpartitioned NTFS disk (mkntfs) holding a 64 KiB
/// `hiberfil.sys` written through a real ntfs-3g mount, as `path` (qcow2).
fn ntfs_hiberfil_disk(dir: &std::path::Path, path: &std::path::Path) {
    assert!(
        require_tools(&["mkntfs", "ntfs-3g", "umount"]),
        "the ntfs-hiberfil fixture needs mkntfs and ntfs-3g"
    );
    let raw = dir.join("ntfs-hiberfil.raw");
    sparse_file(&raw, 24 << 20);
    run(&mut cmd(
        "mkntfs",
        ["-F", "-Q", "-q", raw.to_str().unwrap()],
    ));
    let mnt = dir.join("ntfs-hiberfil.mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(&mut cmd("ntfs-3g", [raw.as_os_str(), mnt.as_os_str()]));
    let written = std::fs::write(mnt.join("hiberfil.sys"), vec![0u8; 65536]);
    run(&mut cmd("umount", [mnt.as_os_str()]));
    written.unwrap();
    qemu_img_to_qcow2(&raw, path, &[]);
    std::fs::remove_file(&raw).unwrap();
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// A work directory with a copy of the sample (hashed: a test asserts at
/// its end that it was never written) and a payload file.
fn work() -> (tempfile::TempDir, PathBuf, BaseGuard) {
    let dir = tmpdir();
    let base = dir.path().join("sample.qcow2");
    std::fs::copy(sample_image(), &base).unwrap();
    std::fs::write(dir.path().join("payload.bin"), pattern(3000, 7)).unwrap();
    let guard = BaseGuard::new(&[&base]);
    (dir, base, guard)
}

/// The recipe words as TOML `key = value` lines (the manifest fields).
fn toml_fields(words: &str) -> String {
    let w: Vec<&str> = words.split_whitespace().collect();
    let mut lines = vec![format!("recipe = \"{}\"", w[0])];
    let mut i = 1;
    while i < w.len() {
        let key = w[i].trim_start_matches("--").replace('-', "_");
        match w.get(i + 1) {
            Some(v) if !v.starts_with("--") => {
                lines.push(format!("{key} = \"{v}\""));
                i += 2;
            }
            _ => {
                lines.push(format!("{key} = true"));
                i += 1;
            }
        }
    }
    lines.join("\n")
}

#[test]
fn every_registry_recipe_has_a_conformance_case() {
    let out = qfault_expect(["recipes", "--json"], 0);
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    let names: Vec<&str> = v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let cases: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    assert_eq!(names, cases, "add a row to CASES for every recipe");
}

#[test]
fn inject_chain_and_manifest_write_byte_identical_overlays() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let (dir, _, guard) = work();
    let w = dir.path();
    // Every base is made and hashed before qfault runs on any of them.
    let bases: Vec<PathBuf> = CASES.iter().map(|c| fixture(c.2, w)).collect();
    let base_refs: Vec<&std::path::Path> = bases.iter().map(PathBuf::as_path).collect();
    let fixtures = BaseGuard::new(&base_refs);
    for ((name, words, fixture_name), base) in CASES.iter().zip(&bases) {
        let args: Vec<&str> = words.split_whitespace().skip(1).collect();
        // Every output one directory below the base: same backing name.
        let injected = w.join("i").join(format!("{name}.qcow2"));
        std::fs::create_dir_all(injected.parent().unwrap()).unwrap();
        let mut a: Vec<String> = vec!["inject".into(), name.to_string()];
        a.push(base.to_str().unwrap().into());
        a.extend([
            "-o".into(),
            injected.to_str().unwrap().into(),
            "--json".into(),
        ]);
        a.extend(args.iter().map(|s| s.to_string()));
        let inj = qfault_expect(
            a.iter()
                .map(|s| s.replace("payload.bin", w.join("payload.bin").to_str().unwrap())),
            0,
        );
        let report = json(&inj);
        assert_eq!(report["schema"], 1, "{report:#}");
        assert_eq!(report["output"]["recipe"]["name"], *name);
        assert_eq!(report["output"]["status"], "written");
        for t in report["output"]["targets"].as_array().unwrap() {
            assert_eq!(t["recipe"], *name);
            for k in ["partition", "changes", "prediction"] {
                assert!(t.get(k).is_some(), "{name}: target lacks {k}: {t:#}");
            }
            let p = &t["prediction"];
            assert!(p["byte_identical_after_repair"].is_boolean(), "{p:#}");
            for o in p["outcomes"].as_array().unwrap() {
                for k in ["role", "tool", "command", "result", "exit_code", "message"] {
                    assert!(o.get(k).is_some(), "{name}: outcome lacks {k}: {o:#}");
                }
            }
        }
        assert!(report["timings"].is_object());
        // What `qfault recipes` lists is what the recipe predicts on its
        // typical target (here, this fixture).
        let catalogue = json(&qfault_expect(["recipes", "--json"], 0));
        let listed = catalogue["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == *name)
            .unwrap();
        // Some messages quote values computed from the image (checksums):
        // for those recipes only, messages are left out of the comparison.
        let computed = MESSAGES_FROM_THE_IMAGE.contains(name);
        let shape = |v: &Value| -> Vec<Value> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    let mut o = o.clone();
                    if computed {
                        o.as_object_mut().unwrap().remove("message");
                    }
                    o
                })
                .collect()
        };
        if !listed["outcomes"].as_array().unwrap().is_empty() {
            assert_eq!(
                shape(&listed["outcomes"]),
                shape(&report["output"]["targets"][0]["prediction"]["outcomes"]),
                "{name}: the catalogue's outcomes are not what it predicts on {fixture_name}"
            );
        }

        let each = words.replace("payload.bin", w.join("payload.bin").to_str().unwrap());
        let chain_dir = w.join(format!("c-{name}"));
        qfault_expect(
            [
                "chain",
                base.to_str().unwrap(),
                "-o",
                chain_dir.to_str().unwrap(),
                "--depth",
                "1",
                "--each",
                &each,
            ],
            0,
        );
        let linked = chain_dir.join("link-0001.qcow2");

        let manifest_out = w.join("m").join(format!("{name}.qcow2"));
        let manifest = w.join(format!("{name}.toml"));
        std::fs::write(
            &manifest,
            format!(
                "[[image]]\nbase = \"{fixture_name}.qcow2\"\noutput = \"m/{name}.qcow2\"\n{}\n",
                toml_fields(words)
            ),
        )
        .unwrap();
        qfault_expect(["batch", manifest.to_str().unwrap()], 0);

        let a = std::fs::read(&injected).unwrap();
        assert_eq!(
            a,
            std::fs::read(&linked).unwrap(),
            "{name}: inject vs chain"
        );
        assert_eq!(
            a,
            std::fs::read(&manifest_out).unwrap(),
            "{name}: inject vs manifest"
        );
        assert_qemu_img_check_clean(&injected);
    }
    guard.assert_unchanged();
    fixtures.assert_unchanged();
}

#[test]
fn recipes_json_lists_fields_and_the_ntfs_boot_outcomes() {
    let v = json(&qfault_expect(["recipes", "--json"], 0));
    let recipes = v["recipes"].as_array().unwrap();
    let find = |n: &str| recipes.iter().find(|r| r["name"] == n).unwrap();
    let zero_fields: Vec<&str> = find("zero")["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(zero_fields, ["offset", "length", "partition"]);
    let nb = find("ntfs-boot");
    let outcomes = nb["outcomes"].as_array().unwrap();
    let role = |r: &str| outcomes.iter().find(|o| o["role"] == r).unwrap();
    assert_eq!(role("identify")["result"], Value::Null);
    assert_eq!(role("identify")["exit_code"], 2);
    assert_eq!(role("mount")["result"], "refused");
    assert_eq!(role("mount")["exit_code"], 12);
    assert_eq!(role("mount")["message"], "NTFS signature is missing");
    assert_eq!(role("repair")["result"], "repairs");
    assert_eq!(role("repair")["exit_code"], 0);
    assert_eq!(role("after-repair")["result"], "read-write");
    assert_eq!(nb["repeatable"], false);
    // The human listing is generated from the same registry.
    let text = qfault_ok(["recipes"]);
    for r in recipes {
        assert!(text.contains(&format!("{}: ", r["name"].as_str().unwrap())));
    }
}

#[test]
fn chain_of_ntfs_boot_twice_is_refused_before_the_first_link() {
    let (dir, base, guard) = work();
    let d = dir.path().join("d");
    let out = qfault_expect(
        [
            "chain",
            base.to_str().unwrap(),
            "-o",
            d.to_str().unwrap(),
            "--depth",
            "2",
            "--each",
            "ntfs-boot --partition 2",
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be applied on top of itself"), "{err}");
    assert!(!d.exists(), "a refused chain left {}", d.display());
    guard.assert_unchanged();
}

#[test]
fn manifest_chain_of_ntfs_boot_twice_fails_validation_and_writes_nothing() {
    let (dir, _base, guard) = work();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        "[[image]]\nbase = \"sample.qcow2\"\noutput = \"out/ok.qcow2\"\nrecipe = \"empty\"\n\n\
         [[chain]]\nbase = \"sample.qcow2\"\ndir = \"out/c\"\ndepth = 2\n\
         each = { recipe = \"ntfs-boot\", partition = 2 }\n",
    )
    .unwrap();
    let out = qfault_expect(["batch", m.to_str().unwrap()], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chain[0].each"), "{err}");
    assert!(!dir.path().join("out").exists(), "validation wrote outputs");
    guard.assert_unchanged();
}

#[test]
fn a_later_link_that_cannot_be_planned_leaves_no_link_behind() {
    let (dir, _base, guard) = work();
    let d = dir.path().join("d");
    // Link 1 zeroes partition 2's boot sector; link 2's ntfs-boot then finds
    // no NTFS there: refused while planning, before link 1 is written.
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        format!(
            "[[chain]]\nbase = \"sample.qcow2\"\ndir = \"{}\"\nlinks = [\n\
             {{ recipe = \"zero\", offset = \"17M\", length = 512 }},\n\
             {{ recipe = \"ntfs-boot\", partition = 2 }},\n]\n",
            d.display()
        ),
    )
    .unwrap();
    let out = qfault_expect(["batch", m.to_str().unwrap()], 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chain[0].links[1]"), "{err}");
    assert!(!d.exists(), "{} left behind", d.display());
    guard.assert_unchanged();
}

#[test]
fn partition_0_is_the_whole_disk_everywhere() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let (dir, base, guard) = work();
    let w = dir.path();
    // export --partition 0: the whole disk, as qemu-img converts it.
    let raw = w.join("whole.raw");
    qfault_expect(
        [
            "export",
            base.to_str().unwrap(),
            "-o",
            raw.to_str().unwrap(),
            "--partition",
            "0",
        ],
        0,
    );
    assert_eq!(std::fs::read(&raw).unwrap(), qemu_raw_bytes(&base));
    // inject zero --partition 0 and --each "zero ... --partition 0": the disk.
    let o = w.join("z.qcow2");
    qfault_expect(
        [
            "inject",
            "zero",
            base.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
            "--offset",
            "0",
            "--length",
            "512",
            "--partition",
            "0",
        ],
        0,
    );
    let bytes = qemu_raw_bytes(&o);
    assert!(bytes[..512].iter().all(|&b| b == 0));
    // A manifest takes partition = 0 too; the sample's whole disk is not
    // NTFS, so ntfs-boot refuses it (exit 3), it is no usage error.
    let m = w.join("m.toml");
    std::fs::write(
        &m,
        "[[image]]\nbase = \"sample.qcow2\"\noutput = \"p0.qcow2\"\nrecipe = \"ntfs-boot\"\npartition = 0\n",
    )
    .unwrap();
    let out = qfault_expect(["batch", m.to_str().unwrap()], 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partition 0") && err.contains("does not hold ntfs"),
        "{err}"
    );
    guard.assert_unchanged();
}

#[test]
fn manifest_takes_all_and_allow_unrepairable() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let (dir, _base, guard) = work();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        "[[image]]\nbase = \"sample.qcow2\"\noutput = \"all.qcow2\"\nrecipe = \"ntfs-boot\"\nall = true\nallow_unrepairable = false\n",
    )
    .unwrap();
    let v = json(&qfault_expect(["batch", m.to_str().unwrap(), "--json"], 0));
    assert_eq!(v["schema"], 1);
    let targets = v["batch"]["entries"][0]["outputs"][0]["targets"]
        .as_array()
        .unwrap();
    let numbers: Vec<u64> = targets
        .iter()
        .map(|t| t["partition"]["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);
    let bytes = qemu_raw_bytes(&dir.path().join("all.qcow2"));
    for t in targets {
        let off = t["partition"]["offset"].as_u64().unwrap() as usize;
        assert!(bytes[off..off + 512].iter().all(|&b| b == 0));
    }
    guard.assert_unchanged();
}

#[test]
fn each_zero_takes_a_partition_like_inject() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let (dir, base, guard) = work();
    let d = dir.path().join("d");
    qfault_expect(
        [
            "chain",
            base.to_str().unwrap(),
            "-o",
            d.to_str().unwrap(),
            "--depth",
            "2",
            "--each",
            "zero --offset 0 --length 512 --partition 2",
        ],
        0,
    );
    let bytes = qemu_raw_bytes(&d.join("link-0002.qcow2"));
    let orig = qemu_raw_bytes(&base);
    let start = 17 << 20;
    assert!(orig[start..start + 512].iter().any(|&b| b != 0));
    assert!(bytes[start..start + 512].iter().all(|&b| b == 0));
    assert_eq!(bytes[..start], orig[..start]);
    assert_eq!(bytes[start + 512..], orig[start + 512..]);
    guard.assert_unchanged();
}

#[test]
fn an_identical_existing_output_is_unchanged_for_inject_too() {
    let (dir, base, guard) = work();
    let o = dir.path().join("b.qcow2");
    let args = |json: bool| {
        let mut a = vec![
            "inject".to_string(),
            "ntfs-boot".into(),
            base.to_str().unwrap().into(),
            "-o".into(),
            o.to_str().unwrap().into(),
            "--partition".into(),
            "2".into(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    qfault_expect(args(false), 0);
    let before = std::fs::metadata(&o).unwrap();
    let v = json(&qfault_expect(args(true), 0));
    assert_eq!(v["output"]["status"], "unchanged");
    let after = std::fs::metadata(&o).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        before.ino(),
        after.ino(),
        "the identical output was rewritten"
    );
    assert_eq!(before.mtime_nsec(), after.mtime_nsec());
    // Two runs' JSON compare equal except status and timings.
    let mut again = json(&qfault_expect(args(true), 0));
    let mut first = v.clone();
    first["timings"] = Value::Null;
    again["timings"] = Value::Null;
    first["output"]["overlay"]["allocated_size"] = Value::Null;
    again["output"]["overlay"]["allocated_size"] = Value::Null;
    assert_eq!(first, again);
    // A different existing file needs --overwrite (exit 2).
    std::fs::write(&o, b"other").unwrap();
    qfault_expect(args(false), 2);
    guard.assert_unchanged();
}

#[test]
fn every_json_document_starts_with_schema_1() {
    let (dir, base, guard) = work();
    let b = base.to_str().unwrap();
    let o = dir.path().join("o.qcow2");
    qfault_expect(["inject", "empty", b, "-o", o.to_str().unwrap()], 0);
    for args in [
        vec!["info", b, "--json"],
        vec!["inspect", b, "--json"],
        vec!["map", b, "--json"],
        vec!["verify", o.to_str().unwrap(), "--json"],
        vec!["recipes", "--json"],
    ] {
        let v = json(&qfault_expect(&args, 0));
        assert_eq!(v["schema"], 1, "{args:?}: {v:#}");
        let text = String::from_utf8_lossy(&qfault_expect(&args, 0).stdout).to_string();
        assert!(
            text.trim_start().starts_with("{\n  \"schema\": 1"),
            "{args:?}: schema is not the first key"
        );
    }
    // One partition shape: inspect's partitions carry offset and length.
    let v = json(&qfault_expect(["inspect", b, "--json"], 0));
    let p = &v["partitions"][1];
    assert_eq!(p["number"], 2);
    assert_eq!(p["offset"], 17825792);
    assert!(p["length"].is_u64());
    guard.assert_unchanged();
}

#[test]
fn verify_expect_gates_on_the_verdict() {
    let (dir, base, guard) = work();
    let b = base.to_str().unwrap();
    let o = dir.path().join("b.qcow2");
    let e = dir.path().join("e.qcow2");
    qfault_expect(
        [
            "inject",
            "ntfs-boot",
            b,
            "-o",
            o.to_str().unwrap(),
            "--partition",
            "2",
        ],
        0,
    );
    qfault_expect(["inject", "empty", b, "-o", e.to_str().unwrap()], 0);
    let o = o.to_str().unwrap();
    let e = e.to_str().unwrap();
    qfault_expect(["verify", o, "--expect", "repairable"], 0);
    qfault_expect(["verify", o, "--expect", "unrepairable"], 3);
    qfault_expect(["verify", o, "--expect", "unchanged"], 3);
    qfault_expect(["verify", e, "--expect", "unchanged"], 0);
    qfault_expect(["verify", e, "--expect", "repairable"], 3);
    qfault_expect(["verify", o], 0);
    guard.assert_unchanged();
}

/// The post-write check is a real check: handed an overlay whose bytes were
/// changed after writing (by QEMU), it refuses.
#[test]
fn the_post_write_check_refuses_a_tampered_overlay() {
    if !require_tools(&["qemu-io"]) {
        return;
    }
    use qfault::apply::check_overlay;
    use qfault::image::{open, OpenOptions};
    use qfault::recipe::Spec;
    let (dir, base, guard) = work();
    let o = dir.path().join("b.qcow2");
    let spec = Spec::parse("ntfs-boot --partition 2").unwrap();
    let opts = OpenOptions::default();
    let mut image = open(&base, &opts).unwrap();
    let plan = spec.plan(&mut image).unwrap();
    qfault::overlay::write_overlay(&mut image, &plan.patches, &o, &Default::default()).unwrap();
    check_overlay(&mut image, &spec, &plan, &o, &o, &opts).expect("the untouched overlay passes");
    // One byte outside the damage, written by QEMU into the overlay.
    qemu_io("qcow2", &o, &["write -P 0x55 17826304 1"]);
    let e = check_overlay(&mut image, &spec, &plan, &o, &o, &opts).unwrap_err();
    assert!(e.to_string().contains("17826304"), "{e}");
    // The boot sector put back: bytes and prediction both differ.
    let o2 = dir.path().join("b2.qcow2");
    qfault::overlay::write_overlay(&mut image, &plan.patches, &o2, &Default::default()).unwrap();
    qemu_io("qcow2", &o2, &["write -P 0xeb 17825792 1"]);
    assert!(check_overlay(&mut image, &spec, &plan, &o2, &o2, &opts).is_err());
    guard.assert_unchanged();
}

#[test]
fn the_readme_lists_the_recipes_as_qfault_recipes_prints_them() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let listed = readme
        .split("<!-- recipes:begin -->\n```\n")
        .nth(1)
        .and_then(|r| r.split("```\n<!-- recipes:end -->").next())
        .expect("README has the recipes markers");
    assert_eq!(
        listed,
        qfault_ok(["recipes"]),
        "README.md's recipe list is stale: paste `qfault recipes` between the markers"
    );
}

#[test]
fn a_zero_length_change_is_a_usage_error_not_an_empty_overlay() {
    let (dir, base, guard) = work();
    let out = dir.path().join("z.qcow2");
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    for args in [
        vec!["--offset", "0", "--length", "0"],
        vec!["--offset", "0", "--from", empty.to_str().unwrap()],
    ] {
        let recipe = if args.contains(&"--from") {
            "write"
        } else {
            "zero"
        };
        let mut a = vec![
            "inject",
            recipe,
            base.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        a.extend(args);
        let o = qfault_expect(a, 2);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("qfault: error: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!out.exists(), "{recipe}: an output was written");
    }
    guard.assert_unchanged();
}

/// qemu-img's `--output=json` habit: `-o json` (or `human`) is refused with
/// a hint instead of silently writing a file named `json`; `./json` works.
#[test]
fn output_json_like_qemu_img_is_refused_with_a_hint() {
    let (dir, base, guard) = work();
    let d = dir.path();
    for args in [
        vec!["export", base.to_str().unwrap(), "--output=json"],
        vec!["inject", "empty", base.to_str().unwrap(), "-o", "human"],
        vec![
            "chain",
            base.to_str().unwrap(),
            "--output",
            "json",
            "--depth",
            "1",
        ],
    ] {
        let o = std::process::Command::new(qfault_bin())
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("looks like qemu-img's --output="), "{err}");
        assert!(err.contains("pass ./"), "{err}");
        assert!(!d.join("json").exists() && !d.join("human").exists());
    }
    let o = std::process::Command::new(qfault_bin())
        .args(["inject", "empty", base.to_str().unwrap(), "-o", "./json"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(d.join("json").exists());
    guard.assert_unchanged();
}

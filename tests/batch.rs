//! `qfault batch`: manifests validated up front, produced in parallel and in
//! shards, idempotently, each chain all or nothing; outputs checked with
//! qemu-img.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A manifest with three images and two chains on the sample, outputs
/// under `out/` next to it.
fn manifest(sample: &Path, zero_length: u32) -> String {
    let s = sample.display();
    format!(
        r#"
[[image]]
base = "{s}"
output = "out/c-boot.qcow2"
recipe = "zero"
offset = "17M"
length = {zero_length}

[[image]]
base = "{s}"
output = "out/mbr.qcow2"
recipe = "zero"
offset = 0
length = "1s"
cluster_size = "4K"

[[image]]
base = "{s}"
output = "out/p1.qcow2"
recipe = "write"
offset = "2048s"
from = "payload.bin"

[[chain]]
base = "{s}"
dir = "out/empty"
depth = 4

[[chain]]
base = "{s}"
dir = "out/steps"
name_pattern = "s{{i}}.qcow2"
links = [
    {{ recipe = "zero", offset = "17M", length = 512 }},
    {{ recipe = "empty" }},
    {{ recipe = "write", offset = "1M", from = "payload.bin" }},
]
"#
    )
}

/// A directory holding the manifest and its payload.
fn setup(dir: &Path, sample: &Path, zero_length: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("payload.bin"), pattern(700, 7)).unwrap();
    let m = dir.join("m.toml");
    std::fs::write(&m, manifest(sample, zero_length)).unwrap();
    m
}

/// Every file under `dir/out`, relative path -> bytes.
fn outputs(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, acc: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, acc);
            } else {
                acc.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(&dir.join("out"), &dir.join("out"), &mut acc);
    acc
}

fn batch(m: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = vec!["batch", m.to_str().unwrap()];
    a.extend_from_slice(extra);
    qfault(a)
}

/// A `--json` document: `"schema": 1` first, then the command's keys.
fn parse_document(json: &str) -> Value {
    let doc = json_document(json, &["schema", "command", "batch", "timings"]);
    assert_eq!(doc["command"], "batch");
    let batch: Vec<&str> = doc["batch"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(batch, ["manifest", "shard", "entries"], "{json}");
    // Timings only under "timings": one per entry and per output.
    let entries = doc["batch"]["entries"].as_array().unwrap();
    let timings = doc["timings"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), timings.len(), "{json}");
    for (e, t) in entries.iter().zip(timings) {
        assert!(!e.as_object().unwrap().contains_key("seconds"), "{e}");
        assert_eq!(t["entry"], e["entry"]);
        assert!(t["seconds"].is_f64(), "{t}");
        assert_eq!(
            t["outputs"].as_array().unwrap().len(),
            e["outputs"].as_array().unwrap().len(),
            "{t}"
        );
    }
    assert!(doc["timings"]["total_seconds"].is_f64(), "{json}");
    assert!(doc["timings"]["jobs"].as_u64().unwrap() >= 1, "{json}");
    doc
}

/// The report of a successful `qfault batch M --json EXTRA...`.
fn json_report(m: &Path, extra: &[&str]) -> Value {
    let mut a = vec!["batch", m.to_str().unwrap(), "--json"];
    a.extend_from_slice(extra);
    let doc = parse_document(&qfault_ok(a));
    assert_eq!(doc["batch"]["manifest"], m.to_str().unwrap());
    doc
}

/// The report's entries.
fn entries(r: &Value) -> &Vec<Value> {
    r["batch"]["entries"].as_array().unwrap()
}

#[test]
fn a_manifest_produces_checked_images_and_chains_and_reruns_are_no_ops() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let tmp = tmpdir();
    let m = setup(tmp.path(), &sample, 512);
    let report = json_report(&m, &["--jobs", "2"]);
    assert_eq!(report["batch"]["shard"], "0/1");
    assert_eq!(report["timings"]["jobs"], 2);
    let first = entries(&report);
    assert_eq!(first.len(), 5);
    let names: Vec<&str> = first.iter().map(|e| e["entry"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["image[0]", "image[1]", "image[2]", "chain[0]", "chain[1]"]
    );
    let out = tmp.path().join("out");
    // Each output's recipe, as the manifest gave it (byte counts resolved,
    // paths against the manifest's directory), and where it went.
    let zero = |offset: u64, length: u64| {
        json!({"name": "zero", "params": {
            "offset": offset,
            "length": length,
            "partition": null,
        }})
    };
    let write = |offset: u64| {
        json!({"name": "write", "params": {
            "offset": offset,
            "from": tmp.path().join("payload.bin").to_str().unwrap(),
            "partition": null,
        }})
    };
    let empty = json!({"name": "empty", "params": {}});
    let expected: [Vec<(String, Value)>; 5] = [
        vec![("c-boot.qcow2".into(), zero(17 << 20, 512))],
        vec![("mbr.qcow2".into(), zero(0, 512))],
        vec![("p1.qcow2".into(), write(1 << 20))],
        (1..=4)
            .map(|i| (format!("empty/link-{i:04}.qcow2"), empty.clone()))
            .collect(),
        vec![
            ("steps/s1.qcow2".into(), zero(17 << 20, 512)),
            ("steps/s2.qcow2".into(), empty.clone()),
            ("steps/s3.qcow2".into(), write(1 << 20)),
        ],
    ];
    for (k, (e, want)) in first.iter().zip(&expected).enumerate() {
        assert_eq!(e["index"], k, "{e}");
        assert_eq!(e["status"], "written", "{e}");
        assert_eq!(e["error"], Value::Null, "{e}");
        let outputs = e["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), want.len(), "{e}");
        for (o, (file, recipe)) in outputs.iter().zip(want) {
            assert_eq!(o["path"], out.join(file).to_str().unwrap());
            assert_eq!(&o["recipe"], recipe, "{o}");
            assert_eq!(o["status"], "written", "{o}");
            assert_output_matches_qemu(o);
        }
    }
    assert_eq!(first[1]["outputs"][0]["overlay"]["cluster_size"], 4096);
    assert_eq!(
        first[4]["outputs"][2]["overlay"]["backing_file"],
        "s2.qcow2"
    );
    let disk_target = &first[0]["outputs"][0]["targets"][0];
    assert_eq!(disk_target["partition"], Value::Null);
    assert_eq!(
        disk_target["changes"],
        json!([{"offset": 17 << 20, "length": 512}])
    );
    for f in [
        "c-boot.qcow2",
        "mbr.qcow2",
        "p1.qcow2",
        "empty/link-0004.qcow2",
        "steps/s3.qcow2",
    ] {
        assert_qemu_img_check_clean(&out.join(f));
    }
    // What the guest sees, by QEMU.
    let raw = qemu_raw_bytes(&sample);
    let payload = pattern(700, 7);
    let with = |edits: &[(usize, Option<&[u8]>, usize)]| {
        let mut r = raw.clone();
        for &(off, bytes, len) in edits {
            match bytes {
                Some(b) => r[off..off + b.len()].copy_from_slice(b),
                None => r[off..off + len].fill(0),
            }
        }
        r
    };
    assert!(qemu_raw_bytes(&out.join("c-boot.qcow2")) == with(&[(17 << 20, None, 512)]));
    assert!(qemu_raw_bytes(&out.join("mbr.qcow2")) == with(&[(0, None, 512)]));
    assert!(qemu_raw_bytes(&out.join("p1.qcow2")) == with(&[(1 << 20, Some(&payload), 0)]));
    assert!(qemu_raw_bytes(&out.join("empty/link-0004.qcow2")) == raw);
    assert!(
        qemu_raw_bytes(&out.join("steps/s3.qcow2"))
            == with(&[(17 << 20, None, 512), (1 << 20, Some(&payload), 0)])
    );

    // Re-run: a no-op, every output unchanged, nothing rewritten.
    let before = outputs(tmp.path());
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let t0 = mtime(&out.join("steps/s2.qcow2"));
    let report = json_report(&m, &[]);
    for e in entries(&report) {
        assert_eq!(e["status"], "unchanged", "{e}");
        for o in e["outputs"].as_array().unwrap() {
            assert_eq!(o["status"], "unchanged", "{o}");
        }
    }
    assert_eq!(
        outputs(tmp.path()),
        before,
        "same files, same bytes, no temporaries"
    );
    assert_eq!(mtime(&out.join("steps/s2.qcow2")), t0);

    // A changed entry: its output differs, an error unless --overwrite.
    std::fs::write(&m, manifest(&sample, 1024 * 64)).unwrap();
    let r = batch(&m, &[]);
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("m.toml: image[0]") && err.contains("differs"),
        "{err}"
    );
    assert_eq!(outputs(tmp.path()), before, "nothing changed");
    let report = json_report(&m, &["--overwrite"]);
    let e = entries(&report);
    assert_eq!(e[0]["status"], "replaced");
    assert_eq!(e[0]["outputs"][0]["status"], "replaced");
    assert_eq!(e[0]["outputs"][0]["recipe"], zero(17 << 20, 64 << 10));
    assert_output_matches_qemu(&e[0]["outputs"][0]);
    for e in &e[1..] {
        assert_eq!(e["status"], "unchanged", "{e}");
    }
    assert!(qemu_raw_bytes(&out.join("c-boot.qcow2")) == with(&[(17 << 20, None, 64 << 10)]));
    guard.assert_unchanged();
}

#[test]
fn shards_split_the_manifest_and_jobs_do_not_change_the_bytes() {
    let sample = sample_image();
    let tmp = tmpdir();
    // Sibling directories: the same relative backing names, so the same bytes.
    let full = setup(&tmp.path().join("full"), &sample, 512);
    let one = setup(&tmp.path().join("one"), &sample, 512);
    let s0 = setup(&tmp.path().join("s0"), &sample, 512);
    let s1 = setup(&tmp.path().join("s1"), &sample, 512);
    let r = batch(&full, &["--jobs", "2"]);
    assert!(r.status.success(), "{r:?}");
    // The table: a row per output or run of links, each with its
    // prediction line, then the totals.
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(table.starts_with("ENTRY     STATUS   OUTPUT"), "{table}");
    assert_eq!(
        table.matches("  -> disk: no tool outcomes\n").count(),
        7,
        "{table}"
    );
    assert!(table.contains(" (4 links) "), "{table}");
    assert!(
        table.contains(
            "5 entries (shard 0/1, 2 jobs): 5 written, 0 unchanged, 0 replaced, 0 failed; "
        ),
        "{table}"
    );
    let r = batch(&one, &["--jobs", "1"]);
    assert!(r.status.success(), "{r:?}");
    let full_out = outputs(full.parent().unwrap());
    assert_eq!(full_out.len(), 3 + 4 + 3);
    assert!(
        full_out == outputs(one.parent().unwrap()),
        "--jobs 1 and --jobs 2 differ"
    );

    let r0 = json_report(&s0, &["--shard", "0/2"]);
    let r1 = json_report(&s1, &["--shard", "1/2"]);
    assert_eq!(r0["batch"]["shard"], "0/2");
    assert_eq!(r1["batch"]["shard"], "1/2");
    let names = |r: &Value| -> Vec<(String, u64)> {
        entries(r)
            .iter()
            .map(|e| {
                (
                    e["entry"].as_str().unwrap().to_string(),
                    e["index"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let owned = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|&(s, i)| (s.to_string(), i)).collect()
    };
    assert_eq!(
        names(&r0),
        owned(&[("image[0]", 0), ("image[2]", 2), ("chain[1]", 4)])
    );
    assert_eq!(names(&r1), owned(&[("image[1]", 1), ("chain[0]", 3)]));
    let (o0, o1) = (outputs(s0.parent().unwrap()), outputs(s1.parent().unwrap()));
    assert!(o0.keys().all(|k| !o1.contains_key(k)), "shards overlap");
    let mut union = o0;
    union.extend(o1);
    assert!(
        union == full_out,
        "the shards together make exactly the full set"
    );
}

#[test]
fn validation_errors_name_the_entry_and_field_and_write_nothing() {
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let tmp = tmpdir();
    let m = setup(tmp.path(), &sample, 512);
    std::os::unix::fs::symlink(&sample, tmp.path().join("base-link.qcow2")).unwrap();
    let good = manifest(&sample, 512);
    let s = sample.display();
    let cases: Vec<(String, &str, i32)> =
        vec![
        (
            good.replace(
                "offset = \"17M\"\nlength = 512",
                "offset = \"63M\"\nlength = \"2M\"",
            ),
            "m.toml: image[0].length: range",
            2,
        ),
        (
            good.replace("offset = \"2048s\"", "offset = \"1G\""),
            "image[2].offset: range",
            2,
        ),
        (
            good.replace("from = \"payload.bin\"\n\n", "from = \"nope.bin\"\n\n"),
            "image[2].from: ",
            1,
        ),
        (
            good.replacen(&format!("base = \"{s}\""), "base = \"missing.qcow2\"", 1),
            "image[0].base: ",
            1,
        ),
        (
            good.replace(
                "output = \"out/mbr.qcow2\"",
                "output = \"out/c-boot.qcow2\"",
            ),
            "image[1].output: ",
            2,
        ),
        (
            good.replace(
                "dir = \"out/empty\"",
                "dir = \"out/steps\"\nname_pattern = \"s{i}.qcow2\"",
            ),
            "chain[1].dir: ",
            2,
        ),
        (
            good.replace("output = \"out/mbr.qcow2\"", &format!("output = \"{s}\"")),
            "never written",
            2,
        ),
        // Outputs are compared as resolved paths: through `..`, and through
        // a symbolic link (to the base, made below).
        (
            good.replace(
                "output = \"out/mbr.qcow2\"",
                "output = \"out/../out/c-boot.qcow2\"",
            ),
            "is also written by image[0].output",
            2,
        ),
        (
            good.replace("output = \"out/mbr.qcow2\"", "output = \"base-link.qcow2\""),
            "base-link.qcow2 is the base of image[0]",
            2,
        ),
        (
            good.replace("depth = 4", "depth = 4\nlenght = 3"),
            "chain[0].lenght: unknown field",
            2,
        ),
        (
            good.replace(
                "{ recipe = \"empty\" }",
                "{ recipe = \"empty\", offset = 1 }",
            ),
            "chain[1].links[1].offset: not a parameter of recipe 'empty'",
            2,
        ),
        (
            good.replace(
                "{ recipe = \"zero\", offset = \"17M\", length = 512 }",
                "{ recipe = \"zero\", offset = \"64M\", length = 512 }",
            ),
            "chain[1].links[0].offset: range",
            2,
        ),
        (
            good.replacen(
                "recipe = \"write\"\noffset = \"2048s\"\nfrom = \"payload.bin\"",
                "recipe = \"ntfs-boot\"\npartition = 9",
                1,
            ),
            "image[2].partition: there is no partition 9",
            2,
        ),
        // Recipe fields are the recipe's own arguments, from the registry.
        (
            good.replace("length = 512\n", "length = 512\nfrom = \"payload.bin\"\n"),
            "m.toml: image[0].from: not a parameter of recipe 'zero' \
             (it takes: offset, length, partition)",
            2,
        ),
        (
            good.replace("offset = 0\n", "ofset = 0\n"),
            "m.toml: image[1].ofset: unknown field (expected one of: base, output, \
             cluster_size, absolute_backing, output_format, compress, recipe, offset, \
             length, partition)",
            2,
        ),
        (
            good.replace("length = 512\n", "length = \"1X\"\n"),
            "m.toml: image[0].length: '1X': unknown unit",
            2,
        ),
        (
            good.replace("length = 512\n", ""),
            "m.toml: image[0].length: missing",
            2,
        ),
        (
            good.replace("recipe = \"zero\"\noffset = 0", "recipe = \"zeroes\"\noffset = 0"),
            "m.toml: image[1].recipe: unknown recipe 'zeroes'",
            2,
        ),
        (
            good.replacen(
                "recipe = \"write\"\noffset = \"2048s\"\nfrom = \"payload.bin\"",
                "recipe = \"ntfs-boot\"\npartition = 2\nallow_unrepairable = \"yes\"",
                1,
            ),
            "m.toml: image[2].allow_unrepairable: expected true or false",
            2,
        ),
        (
            good.replace(
                "depth = 4",
                "depth = 4\neach = { recipe = \"zero\", offset = \"64M\", length = 1 }",
            ),
            "m.toml: chain[0].each.offset: range",
            2,
        ),
        (
            good.replace(
                "depth = 4",
                "depth = 4\neach = { recipe = \"zero\", offset = 0, length = 1, partition = 9 }",
            ),
            "m.toml: chain[0].each.partition: there is no partition 9",
            2,
        ),
        // A recipe that cannot be applied on top of itself, twice in a chain.
        (
            good.replace(
                "depth = 4",
                "depth = 2\neach = { recipe = \"ntfs-boot\", partition = 2 }",
            ),
            "m.toml: chain[0].each: recipe 'ntfs-boot' cannot be applied on top of itself",
            2,
        ),
        (
            good.replace(
                "{ recipe = \"empty\" }",
                "{ recipe = \"ntfs-boot\", partition = \"2\" },\n    \
                 { recipe = \"ntfs-boot\", partition = 2 }",
            ),
            "m.toml: chain[1].links[2]: recipe 'ntfs-boot' cannot be applied on top of itself",
            2,
        ),
        // Partition 0 (the whole disk) is a valid parameter; the sample's
        // whole disk holds no NTFS, so the recipe refuses it (exit 3).
        (
            good.replacen(
                "recipe = \"write\"\noffset = \"2048s\"\nfrom = \"payload.bin\"",
                "recipe = \"ntfs-boot\"\npartition = 0",
                1,
            ),
            "m.toml: image[2]: refused: partition 0",
            3,
        ),
    ];
    for (text, needle, code) in cases {
        assert_ne!(text, good, "the case for {needle} changes the manifest");
        std::fs::write(&m, &text).unwrap();
        let r = batch(&m, &[]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{needle}: {err}");
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            !tmp.path().join("out").exists(),
            "{needle}: nothing written"
        );
    }
    guard.assert_unchanged();
}

#[test]
fn recipe_fields_are_the_inject_arguments() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let tmp = tmpdir();
    let s = sample.display();
    // Integers or strings for values, booleans for flags.
    let m = tmp.path().join("m.toml");
    std::fs::write(
        &m,
        format!(
            r#"
[[image]]
base = "{s}"
output = "c.qcow2"
recipe = "ntfs-boot"
partition = "2"
sectors = 1
allow_unrepairable = false

[[image]]
base = "{s}"
output = "z.qcow2"
recipe = "zero"
offset = 0
length = "1s"
partition = 2

[[chain]]
base = "{s}"
dir = "steps"
links = [
    {{ recipe = "ntfs-boot", partition = 2 }},
    {{ recipe = "zero", offset = "1K", length = 512, partition = "2" }},
]
"#
        ),
    )
    .unwrap();
    let report = json_report(&m, &[]);
    let e = entries(&report);
    assert_eq!(e.len(), 3);
    let ntfs_boot = json!({"name": "ntfs-boot", "params": {
        "partition": 2, "all": false, "sectors": 1, "allow_unrepairable": false,
    }});
    assert_eq!(e[0]["outputs"][0]["recipe"], ntfs_boot);
    assert_eq!(
        e[1]["outputs"][0]["recipe"],
        json!({"name": "zero", "params": {"offset": 0, "length": 512, "partition": 2}})
    );
    assert_eq!(e[2]["outputs"][0]["recipe"], ntfs_boot);
    assert_eq!(
        e[2]["outputs"][1]["recipe"],
        json!({"name": "zero", "params": {"offset": 1024, "length": 512, "partition": 2}})
    );
    for o in e.iter().flat_map(|e| e["outputs"].as_array().unwrap()) {
        assert_eq!(o["status"], "written", "{o}");
        assert_output_matches_qemu(o);
        let t = &o["targets"][0];
        assert_eq!(t["partition"]["number"], 2, "{t}");
    }

    // The same arguments given to `qfault inject` write the same bytes.
    for (file, args) in [
        ("c.qcow2", &["ntfs-boot", "--partition", "2"][..]),
        (
            "z.qcow2",
            &[
                "zero",
                "--offset",
                "0",
                "--length",
                "512",
                "--partition",
                "2",
            ][..],
        ),
    ] {
        let cli = tmp.path().join(format!("cli-{file}"));
        let mut a = vec!["inject"];
        a.extend_from_slice(args);
        a.extend([sample.to_str().unwrap(), "-o", cli.to_str().unwrap()]);
        qfault_ok(a);
        assert!(
            std::fs::read(&cli).unwrap() == std::fs::read(tmp.path().join(file)).unwrap(),
            "{file} differs from qfault inject {args:?}"
        );
    }

    // What QEMU reads: the chain's link 1 is c.qcow2's guest, the top adds
    // 512 zero bytes 1 KiB into partition 2.
    let c_raw = qemu_raw_bytes(&tmp.path().join("c.qcow2"));
    assert!(
        c_raw != qemu_raw_bytes(&sample),
        "ntfs-boot changed something"
    );
    assert!(qemu_raw_bytes(&tmp.path().join("steps/link-0001.qcow2")) == c_raw);
    let mut top = c_raw.clone();
    top[(17 << 20) + 1024..(17 << 20) + 1536].fill(0);
    assert_qemu_img_check_clean(&tmp.path().join("steps/link-0002.qcow2"));
    assert!(qemu_raw_bytes(&tmp.path().join("steps/link-0002.qcow2")) == top);

    // The table gives each row's prediction in one line.
    let r = batch(&m, &[]);
    assert!(r.status.success(), "{r:?}");
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(
        table.contains(
            "  -> partition 2: blkid nothing (exit 2), ntfs-3g refused (exit 12), \
             mount refused (exit 32), ntfsfix repairs (exit 0), ntfs-3g read-write (exit 0), \
             ntfsresize refused (exit 1)\n"
        ),
        "{table}"
    );
    assert!(table.contains("3 entries (shard 0/1, "), "{table}");
    assert!(
        table.contains(": 0 written, 3 unchanged, 0 replaced, 0 failed; "),
        "{table}"
    );
    guard.assert_unchanged();
}

#[test]
fn a_chain_that_fails_while_written_leaves_nothing_and_the_rest_is_produced() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let tmp = tmpdir();
    let s = sample.display();
    let m = tmp.path().join("m.toml");
    std::fs::write(
        &m,
        format!(
            r#"
[[image]]
base = "{s}"
output = "mbr.qcow2"
recipe = "zero"
offset = 0
length = 512
cluster_size = "4K"

[[chain]]
base = "{s}"
dir = "steps"
links = [
    {{ recipe = "empty" }},
    {{ recipe = "empty" }},
    {{ recipe = "zero", offset = "17M", length = 512 }},
]
"#
        ),
    )
    .unwrap();
    // Files capped at 320 KiB: an empty link (4 clusters of 64 KiB) fits,
    // link 3 (6 clusters) does not; the small image fits.
    let r = qfault_with_file_limit(["batch", m.to_str().unwrap(), "--json"], 320 << 10);
    assert_eq!(r.status.code(), Some(1), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("m.toml: chain[0]: link 3") && err.contains("File too large"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let doc = parse_document(&String::from_utf8_lossy(&r.stdout));
    let e = entries(&doc);
    assert_eq!(e[0]["status"], "written", "{doc}");
    assert_eq!(e[1]["status"], "failed", "{doc}");
    assert_eq!(e[1]["outputs"], json!([]));
    assert!(e[1]["error"].as_str().unwrap().contains("link 3"), "{doc}");
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["m.toml", "mbr.qcow2"],
        "no link, no temporary file, no chain directory"
    );
    assert_qemu_img_check_clean(&tmp.path().join("mbr.qcow2"));

    // Without the cap: the image is unchanged, the chain written whole.
    let report = json_report(&m, &[]);
    let e = entries(&report);
    assert_eq!(e[0]["status"], "unchanged");
    assert_eq!(e[1]["status"], "written");
    assert_eq!(e[1]["outputs"].as_array().unwrap().len(), 3);
    let top = tmp.path().join("steps/link-0003.qcow2");
    assert_qemu_img_check_clean(&top);
    let mut expected = qemu_raw_bytes(&sample);
    expected[17 << 20..(17 << 20) + 512].fill(0);
    assert!(qemu_raw_bytes(&top) == expected);
    guard.assert_unchanged();
}

#[test]
fn the_shipped_example_manifest_is_valid() {
    // Parse and validate only (the library, no output written): the example
    // in testdata/ stays in step with the format.
    let m = repo_root().join("testdata/manifest-example.toml");
    let b = qfault::batch::Batch::from_manifest(&m).unwrap();
    assert_eq!(b.entries().len(), 6);
    b.validate().unwrap();
}

/// The README shows the shipped example manifest verbatim, so the docs stay true.
#[test]
fn readme_shows_the_shipped_example_manifest() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("testdata/manifest-example.toml")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "README.md's manifest example differs from testdata/manifest-example.toml"
    );
}

#[test]
fn batch_jobs_0_is_a_usage_error() {
    let dir = tmpdir();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        format!(
            "[[image]]\nbase = \"{}\"\noutput = \"x.qcow2\"\nrecipe = \"empty\"\n",
            sample_image().display()
        ),
    )
    .unwrap();
    let o = qfault_expect(["batch", m.to_str().unwrap(), "--jobs", "0"], 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must be at least 1"),
        "{o:?}"
    );
    assert!(!dir.path().join("x.qcow2").exists());
}

//! `qfault batch`: manifests validated up front, produced in parallel and in
//! shards, idempotently; outputs checked with qemu-img.

mod common;

use common::*;
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

fn json_report(m: &Path, extra: &[&str]) -> serde_json::Value {
    let mut a = vec!["batch", m.to_str().unwrap(), "--json"];
    a.extend_from_slice(extra);
    serde_json::from_str(&qfault_ok(a)).expect("JSON report")
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
    let entries = report["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["image[0]", "image[1]", "image[2]", "chain[0]", "chain[1]"]
    );
    for e in entries {
        assert_eq!(e["status"], "written", "{e}");
        for o in e["outputs"].as_array().unwrap() {
            assert!(o["file_size"].as_u64().unwrap() > 0);
            assert!(o["seconds"].as_f64().is_some());
            assert!(!o["recipe"].as_str().unwrap().is_empty());
            assert!(!o["prediction"].as_str().unwrap().is_empty());
        }
    }
    let out = tmp.path().join("out");
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
    for e in report["entries"].as_array().unwrap() {
        assert_eq!(e["status"], "unchanged", "{e}");
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
    assert_eq!(report["entries"][0]["status"], "replaced");
    assert_eq!(report["entries"][1]["status"], "unchanged");
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
    let entries = |r: &serde_json::Value| -> Vec<String> {
        r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["entry"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(entries(&r0), ["image[0]", "image[2]", "chain[1]"]);
    assert_eq!(entries(&r1), ["image[1]", "chain[0]"]);
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
    let good = manifest(&sample, 512);
    let s = sample.display();
    let cases: Vec<(String, &str, i32)> = vec![
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

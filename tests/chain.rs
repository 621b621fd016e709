//! `qfault chain`: deep backing chains, planned whole and written all or
//! nothing, checked with qemu-img (check, info, info --backing-chain,
//! convert) and blkid.

mod common;

use common::*;
use qfault::chain::{ChainBuilder, DEFAULT_NAME_PATTERN};
use qfault::image::ReadAt;
use qfault::recipe::Spec;
use serde_json::Value;
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

const MIB: usize = 1 << 20;
/// Partition 2 ("C", NTFS) of the sample starts here.
const P2: usize = 17 * MIB;

/// `qemu-img info --backing-chain --output=json`, parsed.
fn backing_chain(top: &Path) -> Vec<Value> {
    let text = qemu_img([
        OsStr::new("info"),
        OsStr::new("--backing-chain"),
        OsStr::new("--output=json"),
        top.as_os_str(),
    ]);
    let v: Value = serde_json::from_str(&text).expect("qemu-img info JSON");
    v.as_array()
        .expect("a JSON array, one object per image")
        .clone()
}

/// Every image names the next one as its backing file, the last is `base`.
fn assert_chain_links(chain: &[Value], base: &Path) {
    for pair in chain.windows(2) {
        assert_eq!(
            pair[0]["full-backing-filename"], pair[1]["filename"],
            "{} is not backed by {}",
            pair[0]["filename"], pair[1]["filename"]
        );
    }
    let last = chain.last().unwrap()["filename"].as_str().unwrap();
    assert_eq!(
        std::fs::canonicalize(last).unwrap(),
        std::fs::canonicalize(base).unwrap()
    );
}

/// The file names in `d`, sorted, with their modification times.
fn mtimes(d: &Path) -> Vec<(std::ffi::OsString, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), e.metadata().unwrap().modified().unwrap())
        })
        .collect();
    v.sort();
    v
}

/// The names in `d`, sorted.
fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_1000_deep_chain_on_the_sample_is_clean_and_reads_as_the_sample() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let chain_dir = dir.path().join("chain");

    let t = Instant::now();
    let out = qfault_ok([
        OsStr::new("chain"),
        sample.as_os_str(),
        OsStr::new("-o"),
        chain_dir.as_os_str(),
        OsStr::new("--depth"),
        OsStr::new("1000"),
    ]);
    let took = t.elapsed();
    eprintln!("qfault chain --depth 1000 took {took:.2?}\n{out}");
    let top = chain_dir.join("link-1000.qcow2");
    assert!(out.contains("  each link: empty\n"), "{out}");
    assert!(out.contains("  link 1: disk: no tool outcomes\n"), "{out}");
    assert!(
        out.contains(&format!("  top: {}\n", top.display())),
        "{out}"
    );
    assert!(
        out.contains("1000 written, 0 unchanged, 0 replaced"),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(&chain_dir).unwrap().count(), 1000);

    assert_qemu_img_check_clean(&top);
    let chain = backing_chain(&top);
    assert_eq!(
        chain.len(),
        1001,
        "qemu-img lists the 1000 links and the sample"
    );
    assert_chain_links(&chain, &sample);
    let first = &chain[999];
    assert_eq!(
        first["filename"],
        chain_dir.join("link-0001.qcow2").to_str().unwrap()
    );
    let stored = first["backing-filename"].as_str().unwrap();
    assert!(!stored.starts_with('/'), "relative backing name: {stored}");
    assert!(
        out.contains(&format!("  link 1 backing file: {stored}\n")),
        "{out}"
    );

    let sample_raw = qemu_raw_bytes(&sample);
    // The acceptance check, literally. QEMU 10.0 overflows a coroutine stack
    // reading through more than ~870 backing files (its own chains crash the
    // same way), so a SIGSEGV there is reported, not counted against qfault.
    let raw = dir.path().join("top.raw");
    let literal = run_any(&mut cmd(
        "qemu-img",
        [
            OsStr::new("convert"),
            OsStr::new("-O"),
            OsStr::new("raw"),
            top.as_os_str(),
            raw.as_os_str(),
        ],
    ));
    if literal.status.signal() == Some(libc::SIGSEGV) {
        eprintln!(
            "NOTE: qemu-img convert -O raw crashed (SIGSEGV) on the 1001-image chain: \
             a QEMU limit, checked below through convert -B instead"
        );
    } else {
        assert!(
            literal.status.success(),
            "qemu-img convert failed: {literal:?}"
        );
        assert!(std::fs::read(&raw).unwrap() == sample_raw, "top != sample");
    }
    // Through the whole chain without deep recursion: QEMU copies what the
    // 1000 links hold above the sample (nothing), then reads that flat.
    let flat = dir.path().join("flat.qcow2");
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-O"),
        OsStr::new("qcow2"),
        OsStr::new("-B"),
        sample.as_os_str(),
        OsStr::new("-F"),
        OsStr::new("qcow2"),
        top.as_os_str(),
        flat.as_os_str(),
    ]);
    assert!(
        qemu_raw_bytes(&flat) == sample_raw,
        "top (via convert -B) != sample"
    );
    // And at a depth QEMU reads directly.
    assert!(
        qemu_raw_bytes(&chain_dir.join("link-0500.qcow2")) == sample_raw,
        "link 500 != sample"
    );
    guard.assert_unchanged();
}

#[test]
fn each_zero_links_zero_the_range_and_reruns_change_nothing() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let chain_dir = dir.path().join("z");
    let args = |each: &str, extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "chain".into(),
            sample.to_str().unwrap().into(),
            "-o".into(),
            chain_dir.to_str().unwrap().into(),
            "--depth".into(),
            "20".into(),
            "--name-pattern".into(),
            "z{i:03}.img".into(),
            "--each".into(),
            each.into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let zero = "zero --offset 17M --length 512";
    let out = qfault_ok(args(zero, &[]));
    assert!(
        out.contains("  each link: zero --offset 17825792 --length 512\n"),
        "{out}"
    );
    assert!(out.contains("  link 1: disk: no tool outcomes\n"), "{out}");
    assert!(out.contains("20 written, 0 unchanged, 0 replaced"), "{out}");
    let top = chain_dir.join("z020.img");
    assert_qemu_img_check_clean(&top);
    assert_qemu_img_check_clean(&chain_dir.join("z001.img"));
    let chain = backing_chain(&top);
    assert_eq!(chain.len(), 21);
    assert_chain_links(&chain, &sample);
    let mut expected = qemu_raw_bytes(&sample);
    expected[P2..P2 + 512].fill(0);
    assert!(
        qemu_raw_bytes(&top) == expected,
        "top != sample with 512 bytes zeroed"
    );

    // A re-run is a no-op: every link unchanged, no file rewritten.
    let before = mtimes(&chain_dir);
    let json = qfault_ok(args(zero, &["--json"]));
    let doc = json_document(&json, &["schema", "command", "chain", "timings"]);
    assert_eq!(doc["command"], "chain");
    let report = &doc["chain"];
    assert_eq!(report["base"], sample.to_str().unwrap());
    assert_eq!(report["dir"], chain_dir.to_str().unwrap());
    assert_eq!(report["top"], top.to_str().unwrap());
    let links = report["links"].as_array().unwrap();
    assert_eq!(links.len(), 20);
    for (k, l) in links.iter().enumerate() {
        let i = k + 1;
        assert_eq!(l["status"], "unchanged", "{json}");
        assert_eq!(
            l["path"],
            chain_dir.join(format!("z{i:03}.img")).to_str().unwrap()
        );
        assert_eq!(l["recipe"]["name"], "zero");
        assert_eq!(
            l["recipe"]["params"],
            serde_json::json!({"offset": P2, "length": 512, "partition": null})
        );
        // What qemu-img reads in the link's header.
        assert_output_matches_qemu(l);
        let backing = l["overlay"]["backing_file"].as_str().unwrap();
        if i == 1 {
            assert_eq!(backing, chain[20 - i]["backing-filename"]);
            assert!(!backing.starts_with('/'), "{backing}");
        } else {
            assert_eq!(backing, format!("z{:03}.img", i - 1));
        }
        let targets = l["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "{l}");
        assert_eq!(targets[0]["recipe"], "zero");
        assert_eq!(targets[0]["partition"], Value::Null);
        assert_eq!(
            targets[0]["changes"],
            serde_json::json!([{"offset": P2, "length": 512}])
        );
        assert_eq!(targets[0]["prediction"]["outcomes"], serde_json::json!([]));
    }
    let timings = &doc["timings"];
    assert!(timings["total_seconds"].as_f64().unwrap() >= 0.0);
    let per_link = timings["links"].as_array().unwrap();
    assert_eq!(per_link.len(), 20);
    assert!(per_link.iter().all(|s| s.as_f64().is_some()), "{timings}");
    assert_eq!(
        mtimes(&chain_dir),
        before,
        "nothing rewritten, no temporaries left"
    );

    // Other parameters: existing links differ, an error unless --overwrite.
    let other = "zero --offset 17M --length 64K";
    let out = qfault_expect(args(other, &[]), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("link 1") && err.contains("differs"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(mtimes(&chain_dir), before);
    let json = qfault_ok(args(other, &["--overwrite", "--json"]));
    let doc = json_document(&json, &["schema", "command", "chain", "timings"]);
    let links = doc["chain"]["links"].as_array().unwrap();
    assert_eq!(links.len(), 20);
    for l in links {
        assert_eq!(l["status"], "replaced", "{l}");
        assert_eq!(l["recipe"]["params"]["length"], 64 << 10);
    }
    assert_output_matches_qemu(&links[19]);
    assert_eq!(names(&chain_dir).len(), 20, "no temporaries left");
    expected[P2..P2 + (64 << 10)].fill(0);
    assert!(qemu_raw_bytes(&top) == expected);
    assert_qemu_img_check_clean(&top);
    guard.assert_unchanged();
}

#[test]
fn each_takes_the_same_arguments_as_inject() {
    if !require_tools(&["qemu-img", "blkid"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let chain_dir = dir.path().join("p");
    // Offsets inside partition 2, as `qfault inject zero --partition 2` takes them.
    let json = qfault_ok([
        "chain",
        sample.to_str().unwrap(),
        "-o",
        chain_dir.to_str().unwrap(),
        "--depth",
        "3",
        "--each",
        "zero --offset 0 --length 512 --partition 2",
        "--json",
    ]);
    let doc = json_document(&json, &["schema", "command", "chain", "timings"]);
    let links = doc["chain"]["links"].as_array().unwrap();
    assert_eq!(links.len(), 3);
    for (k, l) in links.iter().enumerate() {
        assert_eq!(l["status"], "written");
        assert_eq!(
            l["recipe"],
            serde_json::json!({"name": "zero", "params": {
                "offset": 0,
                "length": 512,
                "partition": 2,
            }})
        );
        let t = &l["targets"][0];
        assert_eq!(t["partition"]["number"], 2, "{t}");
        assert_eq!(t["partition"]["offset"], P2);
        // Link 1 finds NTFS "C"; the links above are planned on it, where
        // partition 2's boot sector is already zero.
        if k == 0 {
            assert_eq!(t["partition"]["label"], "C", "{t}");
            assert_eq!(t["partition"]["filesystem"], "ntfs", "{t}");
        } else {
            assert_eq!(t["partition"]["label"], Value::Null, "{t}");
            assert_eq!(t["partition"]["filesystem"], Value::Null, "{t}");
        }
        assert_eq!(
            t["changes"],
            serde_json::json!([{"offset": P2, "length": 512}])
        );
    }
    let top = chain_dir.join("link-0003.qcow2");
    assert_qemu_img_check_clean(&top);
    let sample_raw = qemu_raw_bytes(&sample);
    let raw = qemu_raw_bytes(&top);
    let mut expected = sample_raw.clone();
    expected[P2..P2 + 512].fill(0);
    assert!(
        raw == expected,
        "top != sample with partition 2's sector 0 zeroed"
    );

    // The predicted blkid outcome, against blkid on the partition QEMU reads.
    let part_len = links[0]["targets"][0]["partition"]["length"]
        .as_u64()
        .unwrap() as usize;
    let part = dir.path().join("p2.raw");
    std::fs::write(&part, &raw[P2..P2 + part_len]).unwrap();
    let blkid_out = run_any(&mut cmd(
        tool_path("blkid").unwrap(),
        [OsStr::new("-p"), part.as_os_str()],
    ));
    let outcomes = links[2]["targets"][0]["prediction"]["outcomes"]
        .as_array()
        .unwrap();
    let predicted = outcomes
        .iter()
        .find(|o| o["tool"] == "blkid")
        .unwrap_or_else(|| panic!("a blkid outcome: {outcomes:?}"));
    assert_eq!(
        predicted["exit_code"].as_i64(),
        blkid_out.status.code().map(i64::from),
        "blkid -p on partition 2: {blkid_out:?}"
    );
    guard.assert_unchanged();
}

#[test]
fn bad_recipes_are_refused_before_anything_is_written() {
    let sample = sample_image();
    let dir = tmpdir();
    let out_dir = dir.path().join("never");
    for (each, depth, needle, code) in [
        ("zero --offset 100M --length 1", 3, "each.offset: range", 2),
        ("zero --offset 64M --length 1", 3, "each.offset: range", 2),
        ("zero --offset 1M --length 64M", 3, "each.length: range", 2),
        (
            "zero --offset 0 --length 512 --partition 9",
            3,
            "each.partition: there is no partition 9",
            2,
        ),
        (
            "zero --offset 1M",
            3,
            "--each 'zero --offset 1M': \
             the following required arguments were not provided: --length",
            2,
        ),
        (
            "zero --ofset 1M --length 1",
            3,
            "--each 'zero --ofset 1M --length 1': unexpected argument '--ofset'",
            2,
        ),
        (
            "zero --offset 0 --length 1X",
            3,
            "--each 'zero --offset 0 --length 1X': ",
            2,
        ),
        ("empty --offset 1", 3, "--each 'empty --offset 1': ", 2),
        ("nope", 3, "--each 'nope': ", 2),
        (
            "write --offset 0 --from /nonexistent/x",
            3,
            "each.from: /nonexistent/x",
            1,
        ),
        (
            "ntfs-boot --partition 9",
            1,
            "each.partition: there is no partition 9",
            2,
        ),
        // The second link would find partition 2 already damaged.
        (
            "ntfs-boot --partition 2",
            3,
            "each: recipe 'ntfs-boot' cannot be applied on top of itself",
            2,
        ),
        (
            "ntfs-boot --partition 2",
            2,
            "cannot be applied on top of itself",
            2,
        ),
    ] {
        let out = qfault_expect(
            [
                "chain",
                sample.to_str().unwrap(),
                "-o",
                out_dir.to_str().unwrap(),
                "--depth",
                &depth.to_string(),
                "--each",
                each,
            ],
            code,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{each}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty(), "{each}: {out:?}");
        assert!(!out_dir.exists(), "{each}: nothing written");
    }
    let out = qfault_expect(
        [
            "chain",
            sample.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--depth",
            "3",
            "--name-pattern",
            "same.qcow2",
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("{i}"));
    // More links than files can be open (Linux caps the limit near 2^30).
    let out = qfault_expect(
        [
            "chain",
            sample.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--depth",
            "3000000000",
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("depth:") && err.contains("open-file"), "{err}");
    assert!(!out_dir.exists());
    // A chain whose links would replace the base is refused.
    let base_dir = dir.path().join("base");
    std::fs::create_dir(&base_dir).unwrap();
    let base = base_dir.join("link-0001.qcow2");
    std::fs::copy(&sample, &base).unwrap();
    let guard = BaseGuard::new(&[&base]);
    let out = qfault_expect(
        [
            "chain",
            base.to_str().unwrap(),
            "-o",
            base_dir.to_str().unwrap(),
            "--depth",
            "2",
            "--overwrite",
        ],
        2,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never written"),
        "{out:?}"
    );
    assert_eq!(names(&base_dir), ["link-0001.qcow2"]);
    guard.assert_unchanged();
}

#[test]
fn a_failing_link_leaves_no_link_and_no_new_directory() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();

    // Link 3 exists with other bytes: refused once links 1 and 2 are staged,
    // and neither is left behind (nor a temporary file).
    let existing = dir.path().join("existing");
    qfault_ok([
        "chain",
        sample.to_str().unwrap(),
        "-o",
        existing.to_str().unwrap(),
        "--depth",
        "3",
    ]);
    std::fs::remove_file(existing.join("link-0001.qcow2")).unwrap();
    std::fs::remove_file(existing.join("link-0002.qcow2")).unwrap();
    let before = mtimes(&existing);
    let out = qfault_expect(
        [
            "chain",
            sample.to_str().unwrap(),
            "-o",
            existing.to_str().unwrap(),
            "--depth",
            "5",
            "--each",
            "zero --offset 17M --length 512",
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("link 3") && err.contains("differs"), "{err}");
    assert_eq!(mtimes(&existing), before, "only the old link 3, untouched");

    // The same with --overwrite goes through: links 1, 2, 4, 5 written,
    // link 3 replaced.
    let json = qfault_ok([
        "chain",
        sample.to_str().unwrap(),
        "-o",
        existing.to_str().unwrap(),
        "--depth",
        "5",
        "--each",
        "zero --offset 17M --length 512",
        "--overwrite",
        "--json",
    ]);
    let doc = json_document(&json, &["schema", "command", "chain", "timings"]);
    let statuses: Vec<&str> = doc["chain"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["written", "written", "replaced", "written", "written"]
    );
    assert_qemu_img_check_clean(&existing.join("link-0005.qcow2"));

    // A write that fails (files capped below one link's size): the new
    // directory, and the new directory above it, are gone again.
    let parent = dir.path().join("new");
    let fresh = parent.join("chain");
    let out = qfault_with_file_limit(
        [
            "chain",
            sample.to_str().unwrap(),
            "-o",
            fresh.to_str().unwrap(),
            "--depth",
            "3",
        ],
        100 << 10,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        err.contains("link 1") && err.contains("File too large"),
        "{err}"
    );
    assert!(!fresh.exists(), "the chain directory is removed again");
    assert!(
        !parent.exists(),
        "{} was created for the chain and is left behind",
        parent.display()
    );
    assert_eq!(names(dir.path()), ["existing"], "nothing else left");
    guard.assert_unchanged();
}

#[test]
fn the_library_checks_a_whole_chain_before_writing() {
    if !require_tools(&["qemu-img", "blkid"]) {
        return;
    }
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let dir = tmpdir();
    let chain_dir = dir.path().join("lib");
    let spec = |s: &str| Spec::parse(s).unwrap();

    // Checked, nothing written: the base is open, the directory not made.
    let builder = ChainBuilder::new(&sample, &chain_dir)
        .link(spec("ntfs-boot --partition 2"))
        .link(spec("empty"))
        .link(spec("zero --offset 1M --length 512"));
    assert_eq!(builder.len(), 3);
    let checked = builder.check().unwrap();
    assert_eq!(checked.base().size(), 64 << 20);
    assert_eq!(checked.into_base().chain_info().len(), 1);
    assert!(!chain_dir.exists(), "check() writes nothing");
    let expected_names: Vec<PathBuf> = (1..=3)
        .map(|i| chain_dir.join(DEFAULT_NAME_PATTERN.replace("{i:04}", &format!("{i:04}"))))
        .collect();
    assert_eq!(builder.outputs(), expected_names);

    // Errors name the link, as `links[i]`.
    let err = ChainBuilder::new(&sample, &chain_dir)
        .link(spec("empty"))
        .link(spec("zero --offset 64M --length 512"))
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("links[1].offset: range"), "{err}");
    let err = ChainBuilder::new(&sample, &chain_dir)
        .link(spec("ntfs-boot --partition 2"))
        .link(spec("empty"))
        .link(spec("ntfs-boot --partition 2"))
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("links[2]: recipe 'ntfs-boot' cannot be applied on top of itself"),
        "{err}"
    );
    let err = ChainBuilder::new(&sample, &chain_dir)
        .depth(2, spec("ntfs-boot --partition 2"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("each: recipe 'ntfs-boot'"), "{err}");
    assert!(!chain_dir.exists(), "nothing written");

    // Built: the top holds every link's change, as QEMU reads it.
    let report = builder.build().unwrap();
    assert_eq!(report.links.len(), 3);
    assert_eq!(report.top.as_deref(), Some(expected_names[2].as_path()));
    let names: Vec<&str> = report.links.iter().map(|l| l.recipe.name()).collect();
    assert_eq!(names, ["ntfs-boot", "empty", "zero"]);
    assert!(report
        .links
        .iter()
        .all(|l| l.status == qfault::overlay::Status::Written));
    let top = report.top.clone().unwrap();
    assert_qemu_img_check_clean(&top);
    let sample_raw = qemu_raw_bytes(&sample);
    let raw = qemu_raw_bytes(&top);
    let changes = &report.links[0].targets[0].changes;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (off, len) = (changes[0].offset as usize, changes[0].length as usize);
    assert_eq!((off, len), (P2, 512));
    let mut expected = sample_raw.clone();
    expected[off..off + len].copy_from_slice(&raw[off..off + len]);
    expected[MIB..MIB + 512].fill(0);
    assert!(raw == expected, "top differs outside the links' changes");
    assert!(
        raw[off..off + len] != sample_raw[off..off + len],
        "ntfs-boot changed the boot sector"
    );
    // ntfs-boot's predicted blkid outcome, against blkid on what QEMU reads.
    let p = report.links[0].targets[0].partition.as_ref().unwrap();
    let part = dir.path().join("p2.raw");
    std::fs::write(
        &part,
        &raw[p.offset as usize..(p.offset + p.length) as usize],
    )
    .unwrap();
    let blkid_out = run_any(&mut cmd(
        tool_path("blkid").unwrap(),
        [OsStr::new("-p"), part.as_os_str()],
    ));
    let predicted = report.links[0].targets[0]
        .prediction
        .outcomes
        .iter()
        .find(|o| o.tool == "blkid")
        .expect("a blkid outcome");
    assert_eq!(
        Some(predicted.exit_code),
        blkid_out.status.code(),
        "{blkid_out:?}"
    );

    // Built again: every link unchanged.
    let again = builder.build().unwrap();
    assert!(again
        .links
        .iter()
        .all(|l| l.status == qfault::overlay::Status::Unchanged));
    guard.assert_unchanged();
}

#[test]
fn chain_depth_0_is_a_usage_error_and_creates_nothing() {
    let dir = tmpdir();
    let out = dir.path().join("links");
    let o = qfault_expect(
        [
            "chain",
            sample_image().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--depth",
            "0",
        ],
        2,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must be at least 1"),
        "{o:?}"
    );
    assert!(!out.exists(), "chain --depth 0 created its directory");
}

//! The command line as a user meets it (issue 18): progress bars only on a
//! terminal, `-q` and `-v`, `batch --json-lines`, shell completions, man
//! pages, `--version` with the git commit, and `map --json` compared field
//! by field with `qemu-img map --output=json`.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const M: u64 = 1 << 20;

fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Single-quoted for `sh -c`.
fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs qfault with `args` with stdin, stdout and stderr on a
/// pseudo-terminal (util-linux `script`), and returns everything it printed
/// there, with its exit code.
fn on_a_terminal(dir: &Path, args: &[&str]) -> (String, i32) {
    let line = std::iter::once(p(&qfault_bin()))
        .chain(args.iter().copied())
        .map(shq)
        .collect::<Vec<_>>()
        .join(" ");
    // `script -e` returns the command's exit code.
    let out = run_any(
        Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .current_dir(dir)
            .stdin(Stdio::null()),
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The lines of a terminal transcript as a person sees them: each `\r`
/// or `ESC[2K` redraw keeps only what was drawn last.
fn screen_lines(transcript: &str) -> Vec<String> {
    transcript
        .replace("\x1b[2K", "")
        .split('\n')
        .map(|l| {
            l.rsplit('\r')
                .find(|s| !s.is_empty())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn progress_shows_on_a_terminal_only_and_not_with_q() {
    if !require_tool("script") {
        return;
    }
    let dir = tmpdir();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);

    // A terminal: a bar that ends at 100 % of the 64 MiB guest.
    let (t, code) = on_a_terminal(dir.path(), &["export", p(&sample), "-o", "a.raw"]);
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains("export: ["),
        "no progress bar on a terminal:\n{t}"
    );
    let lines = screen_lines(&t);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("export: [") && l.contains("100% 64.00 MiB of 64.00 MiB")),
        "the bar does not end at 100 %: {lines:?}"
    );

    // -q on a terminal: nothing at all (export prints nothing on stdout).
    let (t, code) = on_a_terminal(dir.path(), &["-q", "export", p(&sample), "-o", "b.raw"]);
    assert_eq!(code, 0, "{t}");
    assert_eq!(t, "", "-q printed something on a terminal");
    // -q after the subcommand too (a global option).
    let (t, _) = on_a_terminal(
        dir.path(),
        &["export", p(&sample), "-o", "c.raw", "--quiet"],
    );
    assert_eq!(t, "", "--quiet after the subcommand printed something");

    // stderr a pipe: no bar, and no escape codes anywhere.
    let out = run(Command::new(qfault_bin())
        .args(["export", p(&sample), "-o", "d.raw"])
        .current_dir(dir.path()));
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    // chain and batch have bars of their own; inject a spinner.
    let (t, code) = on_a_terminal(
        dir.path(),
        &["chain", p(&sample), "-o", "ch", "--depth", "12"],
    );
    assert_eq!(code, 0, "{t}");
    assert!(
        screen_lines(&t)
            .iter()
            .any(|l| l.starts_with("chain: [") && l.contains("12 of 12 links")),
        "{t}"
    );
    let (t, code) = on_a_terminal(
        dir.path(),
        &["-q", "chain", p(&sample), "-o", "ch2", "--depth", "12"],
    );
    assert_eq!(code, 0, "{t}");
    assert!(!t.contains("chain: ["), "-q drew a bar: {t}");
    assert!(
        t.contains("chain of 12 links"),
        "-q hides stdout's report: {t}"
    );
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[image]]\nbase = {s:?}\noutput = \"o/z.qcow2\"\nrecipe = \"zero\"\noffset = \"1M\"\nlength = 512\n\n\
             [[chain]]\nbase = {s:?}\ndir = \"o/c\"\ndepth = 3\n",
            s = p(&sample)
        ),
    )
    .unwrap();
    let (t, code) = on_a_terminal(dir.path(), &["batch", p(&manifest)]);
    assert_eq!(code, 0, "{t}");
    assert!(
        screen_lines(&t)
            .iter()
            .any(|l| l.starts_with("batch: [") && l.contains("2 of 2 entries")),
        "{t}"
    );
    let (t, code) = on_a_terminal(
        dir.path(),
        &[
            "inject",
            "zero",
            p(&sample),
            "-o",
            "i.qcow2",
            "--offset",
            "1M",
            "--length",
            "512",
        ],
    );
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("inject: "), "no spinner: {t}");
    guard.assert_unchanged();
}

#[test]
fn verbose_says_what_is_read_and_written_and_quiet_keeps_errors() {
    let dir = tmpdir();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    let base = dir.path().join("base.qcow2");
    std::fs::copy(&sample, &base).unwrap();
    let top = dir.path().join("top.qcow2");
    qemu_img_create_overlay(&top, "base.qcow2", "qcow2", &[], "64M");

    let out = dir.path().join("x.raw");
    let o = qfault_expect(["-v", "export", p(&top), "-o", p(&out)], 0);
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("qfault: ")), "{err}");
    // Each file of the chain, with its format, top first.
    let opened: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" read-only as "))
        .collect();
    assert_eq!(opened.len(), 2, "{err}");
    assert!(
        opened[0].contains(&format!("open {} read-only as qcow2", p(&top))),
        "{err}"
    );
    assert!(opened[1].contains("base.qcow2 read-only as qcow2"), "{err}");
    // The temporary file, its rename, and the bytes the file holds.
    let tmp = lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("qfault: write {} as temporary ", p(&out))))
        .unwrap_or_else(|| panic!("no temporary named: {err}"));
    let size = std::fs::metadata(&out).unwrap().len();
    assert_eq!(size, 64 * M);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "qfault: renamed {tmp} to {}: {size} bytes",
            p(&out)
        ))),
        "{err}"
    );
    assert!(!Path::new(tmp).exists(), "the temporary file is left");

    // inject -v names the overlay's temporary file and its rename too.
    let ov = dir.path().join("ov.qcow2");
    let o = qfault_expect(
        [
            "inject",
            "zero",
            p(&top),
            "-o",
            p(&ov),
            "--offset",
            "1M",
            "--length",
            "512",
            "--verbose",
        ],
        0,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let bytes = std::fs::metadata(&ov).unwrap().len();
    assert!(
        err.contains(&format!("qfault: write {} as temporary ", p(&ov))),
        "{err}"
    );
    assert!(
        err.contains(&format!("to {}: {bytes} bytes", p(&ov))),
        "{err}"
    );
    // A second run writes nothing and says so.
    let o = qfault_expect(
        [
            "-v",
            "inject",
            "zero",
            p(&top),
            "-o",
            p(&ov),
            "--offset",
            "1M",
            "--length",
            "512",
        ],
        0,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already holds these bytes"), "{err}");
    assert!(!err.contains("temporary"), "{err}");

    // Without -v: nothing on stderr (not a terminal).
    let o = qfault_expect(["map", p(&top)], 0);
    assert!(o.stderr.is_empty());
    // -q keeps errors, one line.
    let o = qfault_expect(["-q", "info", p(&dir.path().join("missing.qcow2"))], 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("qfault: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // -q and -v together are a usage error.
    qfault_expect(["-q", "-v", "info", p(&top)], 2);
    guard.assert_unchanged();
}

#[test]
fn batch_json_lines_stream_entries_as_they_finish_then_a_summary() {
    let dir = tmpdir();
    let sample = sample_image();
    let guard = BaseGuard::new(&[&sample]);
    // image[0] writes 12 MiB (slow); image[1..3] zero one sector (fast).
    // With two workers, one is busy with image[0] while the other does
    // image[1], image[2] and image[3], so image[0] finishes last.
    std::fs::write(dir.path().join("big.bin"), pattern(12 * M as usize, 7)).unwrap();
    let s = p(&sample);
    let mut m = format!(
        "[[image]]\nbase = {s:?}\noutput = \"out/big.qcow2\"\nrecipe = \"write\"\noffset = \"20M\"\nfrom = \"big.bin\"\n\n"
    );
    for k in 1..4 {
        m += &format!(
            "[[image]]\nbase = {s:?}\noutput = \"out/z{k}.qcow2\"\nrecipe = \"zero\"\noffset = \"{k}M\"\nlength = 512\n\n"
        );
    }
    let manifest = dir.path().join("m.toml");
    std::fs::write(&manifest, m).unwrap();

    let start = Instant::now();
    let mut child = Command::new(qfault_bin())
        .args(["batch", p(&manifest), "--json-lines", "-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines: Vec<(String, f64)> = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push((line.unwrap(), start.elapsed().as_secs_f64()));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let docs: Vec<Value> = lines
        .iter()
        .map(|(l, _)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(docs.len(), 5, "{lines:?}");
    for d in &docs {
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(&keys[..2], ["schema", "event"], "{d}");
        assert_eq!(d["schema"], 1);
    }
    let (entries, summary) = docs.split_at(4);
    let order: Vec<&str> = entries
        .iter()
        .map(|d| {
            assert_eq!(d["event"], "entry", "{d}");
            assert_eq!(d["status"], "written", "{d}");
            assert!(d["error"].is_null());
            assert!(d["timings"]["seconds"].as_f64().unwrap() > 0.0);
            let o = &d["outputs"][0];
            assert_output_matches_qemu(o);
            d["entry"].as_str().unwrap()
        })
        .collect();
    // In order of completion: the slow image[0] last, the rest as queued.
    assert_eq!(order, ["image[1]", "image[2]", "image[3]", "image[0]"]);
    for (d, k) in entries.iter().zip([1, 2, 3, 0]) {
        assert_eq!(d["index"], k);
    }
    // Streamed: the first entry's line came well before the last one's,
    // which waited for the 12 MiB entry.
    let slow = entries[3]["timings"]["seconds"].as_f64().unwrap();
    assert!(
        lines[0].1 + slow / 2.0 < lines[3].1,
        "lines arrive at {:?}; the slow entry took {slow} s",
        lines.iter().map(|l| l.1).collect::<Vec<_>>()
    );
    let sm = &summary[0];
    assert_eq!(sm["event"], "summary");
    assert_eq!(sm["manifest"], p(&manifest));
    assert_eq!(sm["shard"], "0/1");
    assert_eq!(
        (
            sm["entries"].as_u64(),
            sm["written"].as_u64(),
            sm["failed"].as_u64()
        ),
        (Some(4), Some(4), Some(0))
    );
    assert_eq!(sm["timings"]["jobs"], 2);

    // --json-lines and --json together: a usage error.
    qfault_expect(["batch", p(&manifest), "--json-lines", "--json"], 2);
    // A re-run streams "unchanged" entries and a summary saying so.
    let text = qfault_ok(["batch", p(&manifest), "--json-lines"]);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["unchanged"], 4, "{text}");
    // -v names the manifest and the overlays left alone.
    let o = qfault_expect(["-v", "batch", p(&manifest)], 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("qfault: read manifest {} (", p(&manifest)))
            && err.contains("4 entries)"),
        "{err}"
    );
    assert_eq!(err.matches("already holds these bytes").count(), 4, "{err}");
    // Documented in --help and docs/json.md.
    let help = qfault_ok(["batch", "--help"]);
    assert!(help.contains("--json-lines"), "{help}");
    let doc = std::fs::read_to_string(repo_root().join("docs/json.md")).unwrap();
    assert!(doc.contains("batch --json-lines"));
    guard.assert_unchanged();
}

#[test]
fn completions_parse_in_their_shell() {
    let bash = qfault_expect(["completions", "bash"], 0);
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(script.contains("_qfault()"), "{script}");
    for word in [
        "inject",
        "ntfs-boot",
        "--json-lines",
        "--quiet",
        "--max-depth",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let dir = tmpdir();
    let f = dir.path().join("qfault.bash");
    std::fs::write(&f, &script).unwrap();
    run(Command::new("bash").arg("-n").arg(&f));
    // And it really completes: the subcommands after `qfault `.
    let probe = format!(
        "source {}; COMP_WORDS=(qfault exp); COMP_CWORD=1; _qfault qfault exp qfault; echo \"${{COMPREPLY[@]}}\"",
        shq(p(&f))
    );
    let got = sh("bash", ["-c", &probe]);
    assert_eq!(got.trim(), "export", "{got}");
    let zsh = qfault_ok(["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef qfault"), "{zsh}");
    let fish = qfault_ok(["completions", "fish"]);
    assert!(fish.contains("complete -c qfault"), "{fish}");
    qfault_expect(["completions", "tcsh"], 2);
}

/// `man`'s output to a pipe without its bold and underline (`X\bX`, `_\bX`).
fn without_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    // After `X\b`, the character drawn over X stays.
    out.into_iter().collect()
}

#[test]
fn man_pages_render_with_man() {
    if !require_tools(&["man", "groff"]) {
        return;
    }
    let dir = tmpdir();
    let out = dir.path().join("man");
    qfault_expect(["man", p(&out)], 0);
    for page in [
        "qfault.1",
        "qfault-inject.1",
        "qfault-inject-ntfs-boot.1",
        "qfault-batch.1",
    ] {
        let path = out.join(page);
        let o = run(Command::new("man")
            .args(["-l", p(&path)])
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("PAGER", "cat"));
        let text = without_overstrike(&String::from_utf8_lossy(&o.stdout));
        assert!(
            o.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("NAME"), "{page}: {text}");
        assert!(text.contains("SYNOPSIS"), "{page}: {text}");
        if page == "qfault.1" {
            for s in [
                "export",
                "inject",
                "batch",
                "completions",
                "--quiet",
                "--verbose",
            ] {
                assert!(text.contains(s), "qfault.1 lacks {s}: {text}");
            }
            assert!(
                !text.contains("qfault-man"),
                "the hidden man command is listed"
            );
        }
    }
    assert!(!out.join("qfault-man.1").exists());
}

#[test]
fn version_names_the_git_commit() {
    let v = qfault_ok(["--version"]);
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output();
    let commit = match git {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_string(),
        _ => "unknown".to_string(),
    };
    assert_eq!(
        v.trim(),
        format!("qfault {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

/// `qfault map --json`'s extents without qfault's own `file` key.
fn qfault_map(image: &Path) -> Value {
    let text = qfault_ok(["map", "--json", p(image)]);
    let mut doc = json_document(&text, &["schema", "extents"]);
    let chain: Vec<String> = {
        let info = json_document(
            &qfault_ok(["info", "--json", p(image)]),
            &["schema", "chain"],
        );
        info["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["path"].as_str().unwrap().to_string())
            .collect()
    };
    let extents = doc["extents"].as_array_mut().unwrap();
    for e in extents.iter_mut() {
        let depth = e["depth"].as_u64().unwrap() as usize;
        let file = e
            .as_object_mut()
            .unwrap()
            .remove("file")
            .expect("a file key");
        assert_eq!(file, chain[depth].as_str(), "{e}");
    }
    doc["extents"].take()
}

fn qemu_map(image: &Path) -> Value {
    serde_json::from_str(&qemu_img(["map", "--output=json", p(image)])).unwrap()
}

/// Asserts the two maps are equal, showing the first differing entry.
fn assert_maps_equal(image: &Path) -> Vec<Value> {
    let (ours, theirs) = (qfault_map(image), qemu_map(image));
    let (a, b) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x, y, "{}: entry {i} differs", image.display());
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{}: {ours:#}\nqemu-img: {theirs:#}",
        image.display()
    );
    b.clone()
}

#[test]
fn map_json_is_qemu_img_map_on_chains() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();

    // qcow2 over qcow2 over raw: a 4 MiB raw base with data and holes, a
    // 6 MiB middle (the base is shorter), an 8 MiB top (the middle is
    // shorter); data, zero clusters, unallocated ranges on each.
    let raw = d.join("base.raw");
    sparse_file(&raw, 4 * M);
    qemu_io("raw", &raw, &["write -P 1 0 1M", "write -P 2 3M 64k"]);
    let mid = d.join("mid.qcow2");
    qemu_img_create_overlay(&mid, "base.raw", "raw", &[], "6M");
    qemu_io(
        "qcow2",
        &mid,
        &[
            "write -P 3 512k 128k",
            "write -z 2M 128k",
            "write -P 4 5M 64k",
        ],
    );
    let top = d.join("top.qcow2");
    qemu_img_create_overlay(&top, "mid.qcow2", "qcow2", &[], "8M");
    qemu_io(
        "qcow2",
        &top,
        &["write -P 5 0 64k", "write -z 1M 64k", "write -P 6 7M 64k"],
    );
    let guard = BaseGuard::new(&[&raw, &mid, &top]);
    let map = assert_maps_equal(&top);
    // The cases are there: bytes no image provides, reported at the image
    // whose backing file is shorter (depth 1 under 6 MiB, 0 above), raw
    // data and holes with their file offset, a plain zero cluster.
    let has = |f: &dyn Fn(&Value) -> bool| map.iter().any(f);
    assert!(has(&|e| e["present"] == false
        && e["depth"] == 1
        && e["start"] == 4 * M));
    assert!(has(&|e| e["present"] == false
        && e["depth"] == 0
        && e["start"] == 6 * M));
    assert!(has(&|e| e["depth"] == 2
        && e["zero"] == true
        && e["offset"].is_u64()));
    assert!(has(&|e| e["depth"] == 2
        && e["data"] == true
        && e["offset"] == 3 * M));
    assert!(has(&|e| e["depth"] == 1
        && e["zero"] == true
        && e.get("offset").is_none()));
    assert_maps_equal(&mid);
    assert_maps_equal(&raw);

    // qcow2 over qcow2 over a compressed qcow2 (no backing file): its
    // unallocated ranges are at depth 2, not present; a zero cluster that
    // keeps its allocation has an offset; a compressed cluster has none.
    let src = d.join("src.raw");
    sparse_file(&src, 4 * M);
    qemu_io("raw", &src, &["write -P 1 0 256k", "write -P 2 1M 64k"]);
    let bottom = d.join("bottom.qcow2");
    qemu_img([
        "convert",
        "-c",
        "-f",
        "raw",
        "-O",
        "qcow2",
        p(&src),
        p(&bottom),
    ]);
    let mid2 = d.join("mid2.qcow2");
    qemu_img_create_overlay(&mid2, "bottom.qcow2", "qcow2", &[], "4M");
    qemu_io(
        "qcow2",
        &mid2,
        &[
            "write -P 3 2M 256k",
            "write -z 2M 64k",
            "write -c -P 7 3M 64k",
            "write -P 8 3200k 64k",
        ],
    );
    let top2 = d.join("top2.qcow2");
    qemu_img_create_overlay(&top2, "mid2.qcow2", "qcow2", &[], "4M");
    qemu_io(
        "qcow2",
        &top2,
        &["write -z -u 2M 128k", "write -P 9 3M 64k"],
    );
    let guard2 = BaseGuard::new(&[&bottom, &mid2, &top2]);
    let map = assert_maps_equal(&top2);
    let has = |f: &dyn Fn(&Value) -> bool| map.iter().any(f);
    assert!(has(&|e| e["present"] == false && e["depth"] == 2));
    assert!(has(
        &|e| e["compressed"] == true && e.get("offset").is_none()
    ));
    let map = assert_maps_equal(&mid2);
    assert!(
        map.iter()
            .any(|e| e["zero"] == true && e["present"] == true && e["offset"].is_u64()),
        "no zero cluster that keeps its allocation: {map:?}"
    );
    assert_maps_equal(&bottom);

    // An overlay qfault wrote, on the sample.
    let ov = d.join("ov.qcow2");
    qfault_ok([
        "inject",
        "zero",
        p(&sample_image()),
        "-o",
        p(&ov),
        "--offset",
        "1M",
        "--length",
        "1M",
    ]);
    assert_maps_equal(&ov);
    guard.assert_unchanged();
    guard2.assert_unchanged();
}

/// Runs inside one L2 table are scanned a slice (512 entries) at a time:
/// `map --json` stays `qemu-img map` for runs of data (contiguous and not),
/// plain and allocated zero clusters, discarded and unallocated clusters
/// that cross slice and table boundaries, on 64 KiB and 4 KiB clusters and
/// on a version 2 image (no zero flag).
#[test]
fn map_json_is_qemu_img_map_across_l2_slices() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    // (cluster size, slice span in bytes: 512 entries of it)
    for (cs, compat) in [(65536u64, "1.1"), (4096, "1.1"), (65536, "0.10")] {
        let span = 512 * cs;
        let img = d.join(format!("runs-{cs}-{compat}.qcow2"));
        let size = 3 * span;
        qemu_img([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("cluster_size={cs},compat={compat}"),
            p(&img),
            &size.to_string(),
        ]);
        let at = |slice: u64, clusters: i64| (slice * span) as i64 + clusters * cs as i64;
        let mut cmds = vec![
            // Contiguous data across the first slice boundary.
            format!("write -P 1 {} {}", at(1, -8), 16 * cs),
            // Data written backwards: host clusters not contiguous.
            format!("write -P 2 {} {}", at(0, 21), cs),
            format!("write -P 3 {} {}", at(0, 20), cs),
            // The tail of the last slice: data up to the disk's end.
            format!("write -P 4 {} {}", at(3, -3), 3 * cs),
        ];
        if compat == "1.1" {
            // Plain zero clusters across the second slice boundary, and
            // allocated zero clusters (ZERO_ALLOC) over data, then a hole.
            cmds.push(format!("write -z -u {} {}", at(2, -4), 8 * cs));
            cmds.push(format!("write -P 5 {} {}", at(1, 100), 8 * cs));
            cmds.push(format!("write -z {} {}", at(1, 100), 8 * cs));
            cmds.push(format!("discard {} {}", at(1, 103), cs));
        } else {
            cmds.push(format!("write -P 5 {} {}", at(1, 100), 8 * cs));
            cmds.push(format!("discard {} {}", at(1, 103), cs));
        }
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        qemu_io("qcow2", &img, &cmds);
        let entries = assert_maps_equal(&img);
        assert!(entries.len() >= 8, "{}: {entries:?}", img.display());
    }
}

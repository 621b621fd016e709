//! The partition-table recipes (`gpt-*`, `mbr-*`) against the real tools
//! (issue 15).
//!
//! Each base is made by the real partitioners: sgdisk (first usable LBA 34)
//! and sfdisk (libfdisk's layout, first usable LBA 2048, once with the last
//! partition reaching the last usable LBA, where `sgdisk -e` refuses), with
//! 512-byte sectors on a file and 4096-byte sectors on a `losetup -b 4096`
//! loop device. The base goes under a qcow2 chain (base ← mid), qfault
//! injects on top, and the disk is taken out with `qemu-img convert -O raw`.
//! Then every outcome of the JSON prediction is run for real, in order
//! (readers and checkers, then the repair, then the after-repair checks):
//! its exit code must be the predicted one and its output must hold the
//! predicted message. Where `byte_identical_after_repair` is predicted, the
//! repaired disk's sha256 must equal the base's, and where it is not, it
//! must differ. The bases are hashed before and after (never written).

mod common;

use common::{
    assert_qemu_img_check_clean, qemu_img, qemu_img_create_overlay, qemu_img_to_qcow2,
    qfault_expect, require_tools, run, run_any, sha256_file, tmpdir, tool_path, BaseGuard,
};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MIB: u64 = 1 << 20;
const DISK: u64 = 64 * MIB;

const TOOLS: &[&str] = &["qemu-img", "sgdisk", "sfdisk", "parted", "blkid", "losetup"];

/// PATH with the sbin directories (cargo test does not always have them).
fn path_env() -> String {
    format!(
        "{}:/sbin:/usr/sbin:/usr/local/sbin",
        std::env::var("PATH").unwrap_or_default()
    )
}

fn tool(name: &str) -> Command {
    let mut c = Command::new(tool_path(name).unwrap_or_else(|| panic!("{name} not found")));
    c.env("PATH", path_env());
    c
}

/// Runs `c` with `input` on stdin; panics unless it exits 0.
fn run_stdin(mut c: Command, input: &str) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let name = format!("{c:?}");
    let mut child = c.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        out.status,
        all_text(&out)
    );
    out
}

fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loop device over a file, detached when dropped.
struct Loop(String);

impl Loop {
    fn attach(file: &Path, sector: u32) -> Loop {
        let mut c = tool("losetup");
        c.args(["-f", "--show", "-b", &sector.to_string()])
            .arg(file);
        let dev = String::from_utf8_lossy(&run(&mut c).stdout)
            .trim()
            .to_string();
        Loop(dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("sync").status();
        let _ = tool("losetup").args(["-d", &self.0]).status();
    }
}

/// How a base disk is partitioned.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Maker {
    /// sgdisk: first usable LBA right after the main array.
    Sgdisk,
    /// sfdisk, last partition aligned (ends before the last usable LBA).
    Sfdisk,
    /// sfdisk, last partition up to the last usable LBA (sgdisk -e refuses).
    SfdiskFull,
    /// sgdisk, then boot code and a disk signature in sector 0 (bytes
    /// 0..444, as GRUB leaves a BIOS/GPT disk).
    SgdiskBootCode,
    /// sfdisk, then attribute bit 10 set on partition 1 (sgdisk -A),
    /// which `sfdisk -d` does not dump.
    SfdiskAttr,
    /// sfdisk, an MBR with two partitions.
    Mbr,
    /// sfdisk, an MBR with an extended partition holding two logicals.
    MbrLogical,
}

/// Partitions a fresh 64 MiB `path` with `maker` for `sector`-byte sectors
/// (4096: through a loop device with that logical sector size).
fn make_disk(path: &Path, maker: Maker, sector: u32) {
    std::fs::File::create(path).unwrap().set_len(DISK).unwrap();
    let lp = (sector != 512).then(|| Loop::attach(path, sector));
    let target: PathBuf = lp
        .as_ref()
        .map_or(path.to_path_buf(), |l| PathBuf::from(&l.0));
    let spt = u64::from(sector);
    let mib = MIB / spt; // sectors per MiB
    let last_usable = DISK / spt - 1 - (16384 / spt) - 1;
    match maker {
        Maker::Sgdisk | Maker::SgdiskBootCode => {
            let mut c = tool("sgdisk");
            c.args([
                "-U",
                "8BF973B8-29DC-42B1-B8DD-DC98A26F0B26",
                "-n",
                &format!("1:{}:+16M", mib),
                "-t",
                "1:8300",
                "-u",
                "1:279D8C81-AFCF-4453-8097-D8E0307E6702",
                "-n",
                "2:0:0",
                "-t",
                "2:0700",
                "-u",
                "2:075C2964-3FCB-44D5-893A-DFF4E589A5D7",
            ])
            .arg(&target);
            run(&mut c);
            if maker == Maker::SgdiskBootCode {
                let code: Vec<u8> = (0..444u32).map(|i| (i * 7 + 1) as u8).collect();
                common::write_at(path, 0, &code);
            }
        }
        Maker::Sfdisk | Maker::SfdiskFull | Maker::SfdiskAttr => {
            let p2 = 17 * mib;
            let second = if maker == Maker::SfdiskFull {
                format!("{p2},{},L", last_usable - p2 + 1)
            } else {
                format!("{p2},,L")
            };
            let script = format!(
                "label: gpt\nlabel-id: 5C4CB1B1-6B1D-4E0A-9E8B-3D2A7C1F0E11\n{mib},{},L\n{second}\n",
                16 * mib
            );
            let mut c = tool("sfdisk");
            c.arg("-q").arg(&target);
            run_stdin(c, &script);
            if maker == Maker::SfdiskAttr {
                let mut c = tool("sgdisk");
                c.args(["-A", "1:set:10"]).arg(&target);
                run(&mut c);
            }
        }
        Maker::Mbr => {
            let mut c = tool("sfdisk");
            c.arg("-q").arg(&target);
            run_stdin(
                c,
                "label: dos\nlabel-id: 0x9120834d\n2048,32768,83\n34816,,7\n",
            );
        }
        Maker::MbrLogical => {
            let mut c = tool("sfdisk");
            c.arg("-q").arg(&target);
            run_stdin(
                c,
                "label: dos\nlabel-id: 0x406d7d49\n2048,8192,83\n10240,,5\n12288,8192,83\n22528,8192,83\n",
            );
        }
    }
    drop(lp);
}

/// One base: its raw file (for hashes), its qcow2 chain (base ← mid).
struct Base {
    raw: PathBuf,
    sector: u32,
    mid: PathBuf,
    guard: BaseGuard,
}

fn base(dir: &Path, name: &str, maker: Maker, sector: u32) -> Base {
    let raw = dir.join(format!("{name}.raw"));
    make_disk(&raw, maker, sector);
    let qcow = dir.join(format!("{name}.qcow2"));
    qemu_img_to_qcow2(&raw, &qcow, &[]);
    let mid = dir.join(format!("{name}-mid.qcow2"));
    qemu_img_create_overlay(&mid, &qcow, "qcow2", &[], &DISK.to_string());
    let guard = BaseGuard::new(&[&raw, &qcow, &mid]);
    Base {
        raw,
        sector,
        mid,
        guard,
    }
}

/// Runs a predicted command line (`PART` replaced by `part`) in a shell.
fn run_predicted(command: &str, part: &str) -> Output {
    let line = command.replace("PART", part);
    let mut c = Command::new("sh");
    c.args(["-c", &line]).env("PATH", path_env());
    run_any(&mut c)
}

/// Checks one outcome of the prediction against the real tool.
fn check_outcome(case: &str, o: &Value, part: &str) {
    let command = o["command"].as_str().unwrap();
    let out = run_predicted(command, part);
    let text = all_text(&out);
    let want = o["exit_code"].as_i64().unwrap() as i32;
    assert_eq!(
        out.status.code(),
        Some(want),
        "{case}: `{command}` exit code (predicted {o})\n{text}"
    );
    if let Some(msg) = o["message"].as_str() {
        assert!(
            text.contains(msg),
            "{case}: `{command}` does not say {msg:?}\n{text}"
        );
    }
    if o["tool"] == "blkid" && o["result"].is_null() {
        assert!(text.trim().is_empty(), "{case}: blkid found\n{text}");
    }
}

/// Injects `words` on `b`, takes the disk out, runs every predicted
/// outcome, and checks the byte-identity promise. Returns the report.
fn run_case(dir: &Path, b: &Base, case: &str, words: &str) -> Value {
    let out = dir.join(format!("{case}.qcow2"));
    let mut args: Vec<String> = vec!["inject".into()];
    let mut w = words.split_whitespace();
    args.push(w.next().unwrap().into());
    args.push(b.mid.to_str().unwrap().into());
    args.extend(["-o".into(), out.to_str().unwrap().into(), "--json".into()]);
    args.extend(w.map(String::from));
    let inj = qfault_expect(&args, 0);
    let report: Value = serde_json::from_slice(&inj.stdout).unwrap();
    assert_qemu_img_check_clean(&out);
    let target = &report["output"]["targets"][0];
    assert!(
        target["partition"].is_null(),
        "{case}: whole disk: {target}"
    );
    let prediction = &target["prediction"];

    // `qfault verify` reads the overlay back and says the same of the whole disk.
    let v: Value = serde_json::from_slice(
        &qfault_expect(["verify", out.to_str().unwrap(), "--json"], 0).stdout,
    )
    .unwrap();
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{case}: {v:#}");
    assert_eq!(parts[0]["partition"]["number"], 0, "{case}: {v:#}");
    assert_eq!(
        &parts[0]["prediction"], prediction,
        "{case}: verify vs inject"
    );
    let repairs = prediction["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["role"] == "repair" && o["result"] == "repairs");
    assert_eq!(
        v["verdict"],
        if repairs {
            "repairable"
        } else {
            "unrepairable"
        },
        "{case}: {v:#}"
    );

    let damaged = dir.join(format!("{case}.raw"));
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        out.as_os_str(),
        damaged.as_os_str(),
    ]);
    assert_ne!(
        sha256_file(&damaged),
        sha256_file(&b.raw),
        "{case}: damage changes the disk"
    );
    {
        let lp = (b.sector != 512).then(|| Loop::attach(&damaged, b.sector));
        let part = lp
            .as_ref()
            .map_or(damaged.to_str().unwrap().to_string(), |l| l.0.clone());
        for o in prediction["outcomes"].as_array().unwrap() {
            check_outcome(case, o, &part);
        }
    }
    let repaired_is_base = sha256_file(&damaged) == sha256_file(&b.raw);
    let has_repair = prediction["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["role"] == "repair");
    let promised = prediction["byte_identical_after_repair"].as_bool().unwrap();
    assert_eq!(
        repaired_is_base, promised,
        "{case}: sha256(repaired) == sha256(base) is {repaired_is_base}, predicted {promised}\n{prediction:#}"
    );
    if promised {
        assert!(has_repair, "{case}: byte identity needs a repair");
    }
    b.guard.assert_unchanged();
    report
}

const GPT_RECIPES: &[&str] = &[
    "gpt-primary",
    "gpt-primary-crc",
    "gpt-backup",
    "gpt-no-pmbr",
];

/// Every GPT recipe on one geometry; returns the repair command and byte
/// identity each predicted, by recipe.
fn gpt_geometry(maker: Maker, sector: u32) -> Vec<(String, String, bool, i64)> {
    let dir = tmpdir();
    let name = format!("{maker:?}-{sector}").to_lowercase();
    let b = base(dir.path(), &name, maker, sector);
    let mut seen = Vec::new();
    for r in GPT_RECIPES {
        let case = format!("{name}-{r}");
        let report = run_case(dir.path(), &b, &case, r);
        let p = &report["output"]["targets"][0]["prediction"];
        let repair = p["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["role"] == "repair")
            .unwrap();
        seen.push((
            r.to_string(),
            repair["command"].as_str().unwrap().to_string(),
            p["byte_identical_after_repair"].as_bool().unwrap(),
            repair["exit_code"].as_i64().unwrap(),
        ));
    }
    seen
}

fn find<'a>(seen: &'a [(String, String, bool, i64)], r: &str) -> &'a (String, String, bool, i64) {
    seen.iter().find(|s| s.0 == r).unwrap()
}

#[test]
fn sgdisk_tables_512_are_restored_by_sgdisk_e() {
    if !require_tools(TOOLS) {
        return;
    }
    let seen = gpt_geometry(Maker::Sgdisk, 512);
    for s in &seen {
        assert_eq!((s.1.as_str(), s.2), ("sgdisk -e PART", true), "{s:?}");
    }
}

#[test]
fn sgdisk_tables_4096_are_restored_by_sgdisk_e() {
    if !require_tools(TOOLS) {
        return;
    }
    let seen = gpt_geometry(Maker::Sgdisk, 4096);
    for s in &seen {
        assert_eq!((s.1.as_str(), s.2), ("sgdisk -e PART", true), "{s:?}");
    }
}

/// gdisk writes back the protective MBR it read when the last usable LBA
/// stays (sgdisk's layout): boot code and disk signature survive `sgdisk -e`.
#[test]
fn sgdisk_e_keeps_boot_code_in_the_protective_mbr() {
    if !require_tools(TOOLS) {
        return;
    }
    let dir = tmpdir();
    let b = base(dir.path(), "bootcode", Maker::SgdiskBootCode, 512);
    for r in ["gpt-primary", "gpt-primary-crc", "gpt-backup"] {
        let report = run_case(dir.path(), &b, &format!("bootcode-{r}"), r);
        let p = &report["output"]["targets"][0]["prediction"];
        assert_eq!(p["byte_identical_after_repair"], true, "{r}: {p:#}");
        assert!(p["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["role"] == "repair" && o["command"] == "sgdisk -e PART"));
    }
    // Zeroing sector 0 loses the boot code: sgdisk -e writes its plain one,
    // so the result is not known; the recipe refuses.
    let out = dir.path().join("x.qcow2");
    let o = qfault_expect(
        [
            "inject",
            "gpt-no-pmbr",
            b.mid.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(
        all_text(&o).contains("protective MBR to be rebuilt"),
        "{}",
        all_text(&o)
    );
    b.guard.assert_unchanged();
}

/// A hand-made overlay through `verify` (the whole disk), checked with the
/// real tools as `run_case` does: every outcome and the byte identity.
fn verify_case(dir: &Path, b: &Base, case: &str, qemu_io: &[&str]) -> Value {
    let out = dir.join(format!("{case}.qcow2"));
    qemu_img_create_overlay(&out, &b.mid, "qcow2", &[], &DISK.to_string());
    common::qemu_io("qcow2", &out, qemu_io);
    let v: Value = serde_json::from_slice(
        &qfault_expect(["verify", out.to_str().unwrap(), "--json"], 0).stdout,
    )
    .unwrap();
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{case}: {v:#}");
    assert_eq!(parts[0]["partition"]["number"], 0, "{case}: {v:#}");
    let prediction = parts[0]["prediction"].clone();
    let damaged = dir.join(format!("{case}.raw"));
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        out.as_os_str(),
        damaged.as_os_str(),
    ]);
    for o in prediction["outcomes"].as_array().unwrap() {
        check_outcome(case, o, damaged.to_str().unwrap());
    }
    let promised = prediction["byte_identical_after_repair"].as_bool().unwrap();
    assert_eq!(
        sha256_file(&damaged) == sha256_file(&b.raw),
        promised,
        "{case}: {prediction:#}"
    );
    b.guard.assert_unchanged();
    prediction
}

/// gdisk reports a valid header over a bad entry array as the array's
/// error ("Main partition table: ERROR"), not the header's.
#[test]
fn sgdisk_v_names_the_entry_array_when_only_its_crc_is_wrong() {
    if !require_tools(TOOLS) {
        return;
    }
    let dir = tmpdir();
    let b = base(dir.path(), "arraycrc", Maker::Sgdisk, 512);
    // A byte of entry 100 (unused) in the main array (LBA 2), and in the backup array.
    let main = 2 * 512 + 99 * 128 + 20;
    let backup = (DISK / 512 - 33) * 512 + 99 * 128 + 20;
    for (case, off, line) in [
        ("main-array", main, "Main partition table: ERROR"),
        ("backup-array", backup, "Backup partition table: ERROR"),
    ] {
        let p = verify_case(dir.path(), &b, case, &[&format!("write -P 0x5a {off} 1")]);
        let check = p["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["role"] == "check")
            .unwrap();
        assert_eq!(check["message"], line, "{case}: {p:#}");
    }
}

/// libfdisk's overlap test only asks whether a later partition's first or
/// last sector lies in an earlier one: partition 2 moved to start before
/// partition 1 and end after it holds it, parted refuses the disk, and
/// `sfdisk --verify` says "No errors detected.".
#[test]
fn sfdisk_verify_misses_a_later_partition_holding_an_earlier_one() {
    if !require_tools(TOOLS) {
        return;
    }
    let dir = tmpdir();
    let b = base(dir.path(), "mbr", Maker::Mbr, 512);
    let raw = std::fs::read(&b.raw).unwrap();
    let rec = 446 + 16;
    let start = u32::from_le_bytes(raw[rec + 8..rec + 12].try_into().unwrap());
    let size = u32::from_le_bytes(raw[rec + 12..rec + 16].try_into().unwrap());
    let new_start: u32 = 1024;
    let mut bytes = new_start.to_le_bytes().to_vec();
    bytes.extend((start + size - new_start).to_le_bytes());
    let src = dir.path().join("record");
    std::fs::write(&src, &bytes).unwrap();
    let p = verify_case(
        dir.path(),
        &b,
        "holds",
        &[&format!("write -s {} {} 8", src.display(), rec + 8)],
    );
    let by_role = |r: &str, t: &str| {
        p["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["role"] == r && o["tool"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(by_role("check", "sfdisk")["result"], "clean", "{p:#}");
    assert_eq!(by_role("mount", "parted")["result"], "refused", "{p:#}");
}

#[test]
fn libfdisk_tables_are_restored_by_sfdisk_not_sgdisk() {
    if !require_tools(TOOLS) {
        return;
    }
    for sector in [512, 4096] {
        let seen = gpt_geometry(Maker::Sfdisk, sector);
        for r in ["gpt-primary", "gpt-primary-crc", "gpt-backup"] {
            let s = find(&seen, r);
            assert_eq!(
                (s.1.as_str(), s.2),
                ("sfdisk -d PART | sfdisk PART", true),
                "{s:?}"
            );
        }
        // Only sgdisk sees a GPT without its protective MBR; on libfdisk's
        // layout it repairs, but not byte for byte.
        let s = find(&seen, "gpt-no-pmbr");
        assert_eq!(
            (s.1.as_str(), s.2, s.3),
            ("sgdisk -e PART", false, 0),
            "{s:?}"
        );
    }
}

/// `sfdisk -d` drops attribute bits 3..47: on libfdisk's layout with such
/// a bit set no repair restores the disk byte for byte (sgdisk -e moves the
/// backup array; the sfdisk rewrite loses the bit).
#[test]
fn sfdisk_rewrite_is_not_identity_when_the_dump_drops_attribute_bits() {
    if !require_tools(TOOLS) {
        return;
    }
    let seen = gpt_geometry(Maker::SfdiskAttr, 512);
    for r in ["gpt-primary", "gpt-primary-crc", "gpt-backup"] {
        let s = find(&seen, r);
        assert!(!s.2, "{s:?}");
    }
    // The rewrite itself, on a copy of a base: sha256 changes.
    let dir = tmpdir();
    let b = base(dir.path(), "attr", Maker::SfdiskAttr, 512);
    let copy = dir.path().join("copy.raw");
    std::fs::copy(&b.raw, &copy).unwrap();
    let out = run_predicted("sfdisk -d PART | sfdisk PART", copy.to_str().unwrap());
    assert!(out.status.success(), "{}", all_text(&out));
    assert_ne!(sha256_file(&copy), sha256_file(&b.raw));
}

#[test]
fn sgdisk_e_refuses_when_the_last_partition_reaches_the_last_usable_lba() {
    if !require_tools(TOOLS) {
        return;
    }
    let seen = gpt_geometry(Maker::SfdiskFull, 512);
    for r in ["gpt-primary", "gpt-primary-crc", "gpt-backup"] {
        let s = find(&seen, r);
        assert_eq!(
            (s.1.as_str(), s.2),
            ("sfdisk -d PART | sfdisk PART", true),
            "{s:?}"
        );
    }
    let s = find(&seen, "gpt-no-pmbr");
    assert_eq!(
        (s.1.as_str(), s.2, s.3),
        ("sgdisk -e PART", false, 4),
        "{s:?}"
    );
}

#[test]
fn mbr_recipes_agree_with_the_tools() {
    if !require_tools(TOOLS) {
        return;
    }
    let dir = tmpdir();
    let b = base(dir.path(), "mbr", Maker::Mbr, 512);
    let r = run_case(dir.path(), &b, "mbr-no-signature", "mbr-no-signature");
    // Writing 55 aa back restores the base, as the note says.
    let damaged = dir.path().join("mbr-no-signature.raw");
    common::write_at(&damaged, 510, &[0x55, 0xAA]);
    assert_eq!(sha256_file(&damaged), sha256_file(&b.raw));
    assert!(r["output"]["targets"][0]["prediction"]["notes"][0]
        .as_str()
        .unwrap()
        .contains("55 aa"));
    run_case(dir.path(), &b, "mbr-overlap", "mbr-overlap");
    run_case(dir.path(), &b, "mbr-overlap-1", "mbr-overlap --overlap 1");
    // Without an extended partition there is no EBR chain to loop.
    let out = dir.path().join("x.qcow2");
    let o = qfault_expect(
        [
            "inject",
            "mbr-ebr-loop",
            b.mid.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(all_text(&o).contains("no extended partition"));

    let l = base(dir.path(), "logical", Maker::MbrLogical, 512);
    let r = run_case(dir.path(), &l, "mbr-ebr-loop", "mbr-ebr-loop");
    // parted lists the first logical partition once, no second one.
    let damaged = dir.path().join("mbr-ebr-loop.raw");
    let text = all_text(&run_predicted(
        "parted -s PART print",
        damaged.to_str().unwrap(),
    ));
    assert!(text.lines().any(|l| l.starts_with(" 5 ")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with(" 6 ")), "{text}");
    // libfdisk lists #5..#60: 2 primaries and 56 copies.
    let mut c = tool("sfdisk");
    c.arg("-d").arg(&damaged);
    let dump = String::from_utf8_lossy(&run(&mut c).stdout).into_owned();
    assert_eq!(dump.matches("start=").count(), 58, "{dump}");
    assert!(r["output"]["targets"][0]["prediction"]["notes"][0]
        .as_str()
        .unwrap()
        .contains("56 times"));
}

#[test]
fn refusals_name_the_missing_precondition() {
    if !require_tools(TOOLS) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let mbr = base(d, "mbr", Maker::Mbr, 512);
    let gpt = base(d, "gpt", Maker::Sgdisk, 512);
    let out = d.join("x.qcow2");
    let refused = |recipe: &str, base: &Base, extra: &[&str], why: &str| {
        let mut args = vec![
            "inject",
            recipe,
            base.mid.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = qfault_expect(&args, 3);
        let text = all_text(&o);
        assert!(text.contains(why), "{recipe}: {text}");
        assert!(!out.exists(), "{recipe}: nothing written");
    };
    for r in GPT_RECIPES {
        refused(r, &mbr, &[], "holds no GPT");
    }
    refused("mbr-no-signature", &gpt, &[], "holds a GPT");
    refused("mbr-overlap", &gpt, &[], "holds a GPT");
    refused(
        "gpt-primary-crc",
        &gpt,
        &["--value", "0xb8"],
        "already holds 0xb8",
    );

    // One partition: nothing to overlap.
    let one = d.join("one.raw");
    std::fs::File::create(&one).unwrap().set_len(DISK).unwrap();
    let mut c = tool("sfdisk");
    c.arg("-q").arg(&one);
    run_stdin(c, "label: dos\n2048,,83\n");
    let one_q = d.join("one.qcow2");
    qemu_img_to_qcow2(&one, &one_q, &[]);
    let o = qfault_expect(
        [
            "inject",
            "mbr-overlap",
            one_q.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(all_text(&o).contains("needs two primary partitions"));

    // Copies that disagree: the base's backup array differs from the
    // primary's, so what a repair restores is not known.
    let odd = d.join("odd.raw");
    std::fs::copy(&gpt.raw, &odd).unwrap();
    let mut c = tool("sgdisk");
    c.args(["-c", "1:renamed"]).arg(&odd);
    run(&mut c);
    // Put the original backup header and array back: now the two copies disagree.
    let orig = std::fs::read(&gpt.raw).unwrap();
    let tail = (DISK - 33 * 512) as usize;
    common::write_at(&odd, tail as u64, &orig[tail..]);
    let odd_q = d.join("odd.qcow2");
    qemu_img_to_qcow2(&odd, &odd_q, &[]);
    let o = qfault_expect(
        [
            "inject",
            "gpt-primary",
            odd_q.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    let text = all_text(&o);
    assert!(
        text.contains("backup GPT at the last LBA is already invalid")
            || text.contains("is not what the surviving copy implies"),
        "{text}"
    );

    // Applying a recipe again on its own damage is refused.
    let once = d.join("once.qcow2");
    qfault_expect(
        [
            "inject",
            "gpt-primary",
            gpt.mid.to_str().unwrap(),
            "-o",
            once.to_str().unwrap(),
        ],
        0,
    );
    let o = qfault_expect(
        [
            "inject",
            "gpt-primary",
            once.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(all_text(&o).contains("primary GPT is already invalid"));
    mbr.guard.assert_unchanged();
    gpt.guard.assert_unchanged();
}

/// `sfdisk -d DEV` as (start, size) pairs in bytes, by its `sector-size`.
fn sfdisk_ranges(dev: &str) -> Vec<(u64, u64)> {
    let mut c = tool("sfdisk");
    c.args(["-d", dev]);
    let text = String::from_utf8_lossy(&run(&mut c).stdout).into_owned();
    let ss: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sector-size: "))
        .map_or(512, |v| v.trim().parse().unwrap());
    let field = |l: &str, k: &str| -> u64 {
        let rest = &l[l.find(k).unwrap() + k.len()..];
        rest.split(',').next().unwrap().trim().parse().unwrap()
    };
    text.lines()
        .filter(|l| l.contains("start="))
        .map(|l| (field(l, "start=") * ss, field(l, "size=") * ss))
        .collect()
}

#[test]
fn mbr_written_for_4096_byte_sectors_is_read_as_the_device_shows_it() {
    if !require_tools(&["qemu-img", "sfdisk", "losetup", "mkfs.vfat", "blkid"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let raw = d.join("mbr4k.raw");
    std::fs::File::create(&raw).unwrap().set_len(DISK).unwrap();
    let expected = {
        let lp = Loop::attach(&raw, 4096);
        let mut c = tool("sfdisk");
        c.arg("-q").arg(&lp.0);
        run_stdin(c, "label: dos\n256,4096,83\n4352,,7\n");
        sfdisk_ranges(&lp.0)
    };
    // A FAT filesystem with 4096-byte sectors in partition 1.
    let fs = d.join("fs.raw");
    std::fs::File::create(&fs)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    let mut c = tool("mkfs.vfat");
    c.args(["-S", "4096"]).arg(&fs);
    run(&mut c);
    common::write_at(&raw, expected[0].0, &std::fs::read(&fs).unwrap());
    let qcow = d.join("mbr4k.qcow2");
    qemu_img_to_qcow2(&raw, &qcow, &[]);
    let guard = BaseGuard::new(&[&raw, &qcow]);
    let out = qfault_expect(["inspect", qcow.to_str().unwrap(), "--json"], 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["table"], "dos");
    assert_eq!(v["sector_size"], 4096);
    let got: Vec<(u64, u64)> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["offset"].as_u64().unwrap(), p["length"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, expected, "qfault vs sfdisk on the 4096-byte device");
    // blkid at that offset agrees on the filesystem.
    let mut c = tool("blkid");
    c.args([
        "-p",
        "-O",
        &expected[0].0.to_string(),
        "-o",
        "value",
        "-s",
        "TYPE",
    ])
    .arg(&raw);
    let blkid_type = String::from_utf8_lossy(&run(&mut c).stdout)
        .trim()
        .to_string();
    assert_eq!(v["partitions"][0]["filesystem"], blkid_type.as_str());
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("4096-byte sectors"));
    // sfdisk on the image file reads 512-byte sectors, so it does not see
    // these partitions: the mbr-* recipes would predict what only a
    // 4096-byte device shows, so they refuse.
    let file_view = sfdisk_ranges(raw.to_str().unwrap());
    assert_ne!(file_view, expected);
    let out = d.join("x.qcow2");
    for r in ["mbr-no-signature", "mbr-overlap", "mbr-ebr-loop"] {
        let o = qfault_expect(
            [
                "inject",
                r,
                qcow.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            3,
        );
        assert!(
            all_text(&o).contains("model 512-byte sectors"),
            "{r}: {}",
            all_text(&o)
        );
        assert!(!out.exists());
    }
    guard.assert_unchanged();
}

#[test]
fn hybrid_iso_reports_the_filesystem_and_the_table_as_blkid_does() {
    if !require_tools(&["qemu-img", "sfdisk", "genisoimage", "blkid"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let content = d.join("content");
    std::fs::create_dir(&content).unwrap();
    std::fs::write(content.join("hello.txt"), b"hybrid\n").unwrap();
    let iso = d.join("hybrid.iso");
    let mut c = tool("genisoimage");
    c.args(["-quiet", "-V", "HYBRID", "-o"])
        .arg(&iso)
        .arg(&content);
    run(&mut c);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&iso)
        .unwrap()
        .set_len(4 * MIB)
        .unwrap();
    // An MBR in the ISO's system area, as isohybrid writes one.
    let mut c = tool("sfdisk");
    c.arg("-q").arg(&iso);
    run_stdin(c, "label: dos\n2048,,83\n");
    let mut c = tool("blkid");
    c.args(["-p", "-o", "export"]).arg(&iso);
    let blkid = String::from_utf8_lossy(&run(&mut c).stdout).into_owned();
    assert!(
        blkid.contains("TYPE=iso9660") && blkid.contains("PTTYPE=dos"),
        "{blkid}"
    );

    let out = qfault_expect(["inspect", iso.to_str().unwrap(), "--json"], 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["table"], "dos");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{v:#}");
    assert_eq!(parts[0]["number"], 0);
    assert_eq!(parts[0]["filesystem"], "iso9660");
    assert_eq!(parts[0]["label"], "HYBRID");
    assert!(blkid.contains("LABEL=HYBRID"), "{blkid}");
    assert_eq!(parts[1]["number"], 1);
    assert_eq!(parts[1]["offset"], MIB);
}

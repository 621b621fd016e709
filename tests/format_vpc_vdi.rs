//! Issue 17, VHD (`vpc`) and VDI readers: images made by the real
//! `qemu-img`/`qemu-io` read exactly as QEMU reads them (`export` equals
//! `qemu-img convert -O raw` byte for byte, `info` agrees with `qemu-img
//! info`), qcow2 overlays over them, `inject zero` overlays QEMU accepts and
//! reads like its own, a differencing VHD built by hand, and hostile images
//! refused without panic. Every base is hashed before and after.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const M: u64 = 1024 * 1024;

fn tools() -> bool {
    require_tools(&["qemu-img", "qemu-io"])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `qemu-img convert -f FMT -O raw`: the guest as QEMU reads it.
fn qemu_raw(img: &Path, fmt: &str) -> Vec<u8> {
    let dir = tmpdir();
    let out = dir.path().join("q.raw");
    qemu_img(["convert", "-f", fmt, "-O", "raw", s(img), s(&out)]);
    std::fs::read(&out).unwrap()
}

/// `qfault export IMG`: the guest as qfault reads it.
fn qfault_raw(img: &Path) -> Vec<u8> {
    let dir = tmpdir();
    let out = dir.path().join("f.raw");
    qfault_ok(["export", s(img), "-o", s(&out)]);
    std::fs::read(&out).unwrap()
}

fn qemu_info(img: &Path, fmt: &str) -> Value {
    serde_json::from_str(&qemu_img(["info", "-f", fmt, "--output=json", s(img)])).unwrap()
}

fn qfault_chain(img: &Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&qfault_ok(["info", "--json", s(img)])).unwrap();
    doc["chain"].as_array().unwrap().clone()
}

/// Checks `img` of format `fmt` against QEMU: format, virtual size, cluster
/// size, and every guest byte.
fn assert_reads_like_qemu(img: &Path, fmt: &str) {
    let guard = BaseGuard::new(&[img]);
    let q = qemu_info(img, fmt);
    let chain = qfault_chain(img);
    assert_eq!(chain.len(), 1, "{}", img.display());
    let top = &chain[0];
    assert_eq!(top["format"], fmt, "{}", img.display());
    assert_eq!(top["virtual_size"], q["virtual-size"], "{}", img.display());
    assert_eq!(
        top["cluster_size"],
        q.get("cluster-size").cloned().unwrap_or(Value::Null),
        "{}",
        img.display()
    );
    assert_eq!(top["file_size"], std::fs::metadata(img).unwrap().len());
    let ours = qfault_raw(img);
    let theirs = qemu_raw(img, fmt);
    assert_eq!(ours.len(), theirs.len(), "{}: guest size", img.display());
    assert!(
        ours == theirs,
        "{}: export differs from qemu-img convert",
        img.display()
    );
    guard.assert_unchanged();
}

/// `qemu-img convert -O FMT [-o OPTS] sample.qcow2 DIR/NAME`.
fn from_sample(dir: &Path, name: &str, fmt: &str, opts: &[&str]) -> PathBuf {
    let img = dir.join(name);
    let mut args = vec!["convert", "-O", fmt];
    args.extend_from_slice(opts);
    let sample = sample_image();
    args.push(s(&sample));
    args.push(s(&img));
    qemu_img(args);
    img
}

#[test]
fn vhd_from_qemu_img_convert_reads_like_qemu() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    for (name, opts) in [
        ("dynamic.vhd", &[][..]),
        ("fixed.vhd", &["-o", "subformat=fixed"][..]),
        ("dynamic-force.vhd", &["-o", "force_size=on"][..]),
        (
            "fixed-force.vhd",
            &["-o", "subformat=fixed,force_size=on"][..],
        ),
    ] {
        let img = from_sample(dir.path(), name, "vpc", opts);
        assert_reads_like_qemu(&img, "vpc");
    }
}

#[test]
fn vdi_from_qemu_img_convert_reads_like_qemu() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    for (name, opts) in [
        ("dynamic.vdi", &[][..]),
        ("static.vdi", &["-o", "static=on"][..]),
    ] {
        let img = from_sample(dir.path(), name, "vdi", opts);
        assert_reads_like_qemu(&img, "vdi");
    }
}

/// A fixed VHD has its footer only at the end: QEMU's probe calls it raw
/// (footer included in the guest); qfault probes it as `vpc`, deliberately.
#[test]
fn a_fixed_vhd_is_probed_as_vpc_where_qemu_says_raw() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let img = from_sample(dir.path(), "fixed.vhd", "vpc", &["-o", "subformat=fixed"]);
    let probed: Value =
        serde_json::from_str(&qemu_img(["info", "--output=json", s(&img)])).unwrap();
    assert_eq!(
        probed["format"], "raw",
        "QEMU's probe changed: update README"
    );
    assert_eq!(qfault_chain(&img)[0]["format"], "vpc");
}

/// Images written by qemu-io: data across block boundaries, holes, zero
/// writes, a partial last block.
#[test]
fn images_written_by_qemu_io_with_holes_and_zero_writes() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    for (fmt, name, opts) in [
        ("vpc", "w.vhd", &[][..]),
        ("vpc", "w-force.vhd", &["-o", "force_size=on"][..]),
        ("vpc", "w-fixed.vhd", &["-o", "subformat=fixed"][..]),
        ("vdi", "w.vdi", &[][..]),
        ("vdi", "w-static.vdi", &["-o", "static=on"][..]),
    ] {
        let img = dir.path().join(name);
        let mut args = vec!["create", "-q", "-f", fmt];
        args.extend_from_slice(opts);
        args.extend([s(&img), "21M"]);
        qemu_img(args);
        qemu_io_write_pattern(fmt, &img, M + 512, 3 * M, 1);
        qemu_io(
            fmt,
            &img,
            &["write -P 0x5a 9M 4K", "write -z 9M 2K", "write -z 12M 1M"],
        );
        qemu_io_write_pattern(fmt, &img, 20 * M + 4096, 4096, 2);
        assert_reads_like_qemu(&img, fmt);
    }
}

/// qcow2 overlays over each kind, written by qemu-io, read through.
#[test]
fn qcow2_overlays_over_vhd_and_vdi_read_through() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    for (fmt, name, opts) in [
        ("vpc", "b.vhd", &[][..]),
        ("vpc", "bf.vhd", &["-o", "subformat=fixed"][..]),
        ("vdi", "b.vdi", &[][..]),
        ("vdi", "bs.vdi", &["-o", "static=on"][..]),
    ] {
        let base = from_sample(dir.path(), name, fmt, opts);
        let guard = BaseGuard::new(&[&base]);
        let size = qemu_info(&base, fmt)["virtual-size"].as_u64().unwrap();
        let ov = dir.path().join(format!("{name}.ov.qcow2"));
        qemu_img_create_overlay(&ov, name, fmt, &[], &size.to_string());
        qemu_io("qcow2", &ov, &["write -P 0x33 3M 100K", "write -z 40M 64K"]);
        let chain = qfault_chain(&ov);
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1]["format"], fmt);
        assert!(
            qfault_raw(&ov) == qemu_raw(&ov, "qcow2"),
            "{name}: overlay read"
        );
        guard.assert_unchanged();
    }
}

/// `inject zero` on each writes an overlay that records the base's format,
/// that `qemu-img check` accepts and that QEMU reads like the same zero
/// write made by qemu-io.
#[test]
fn inject_zero_overlays_record_vpc_and_vdi() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    for (fmt, name, opts) in [
        ("vpc", "z.vhd", &[][..]),
        (
            "vpc",
            "zf.vhd",
            &["-o", "subformat=fixed,force_size=on"][..],
        ),
        ("vdi", "z.vdi", &[][..]),
        ("vdi", "zs.vdi", &["-o", "static=on"][..]),
    ] {
        let base = from_sample(dir.path(), name, fmt, opts);
        let guard = BaseGuard::new(&[&base]);
        let ov = dir.path().join(format!("{name}.zero.qcow2"));
        qfault_ok([
            "inject",
            "zero",
            "--offset",
            "1M",
            "--length",
            "100K",
            "-o",
            s(&ov),
            s(&base),
        ]);
        assert_qemu_img_check_clean(&ov);
        let info: Value =
            serde_json::from_str(&qemu_img(["info", "--output=json", s(&ov)])).unwrap();
        assert_eq!(info["backing-filename-format"], fmt, "{name}");
        let size = qemu_info(&base, fmt)["virtual-size"].as_u64().unwrap();
        let eq = dir.path().join(format!("{name}.eq.qcow2"));
        qemu_img_create_overlay(&eq, name, fmt, &[], &size.to_string());
        qemu_io("qcow2", &eq, &["write -z 1M 100K"]);
        let out = run_any(&mut cmd("qemu-img", ["compare", s(&ov), s(&eq)]));
        assert!(
            out.status.success(),
            "{name}: qemu-img compare: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let raw = qemu_raw(&ov, "qcow2");
        assert!(raw[M as usize..(M + 100 * 1024) as usize]
            .iter()
            .all(|&b| b == 0));
        assert!(
            qfault_raw(&ov) == raw,
            "{name}: qfault reads its overlay as QEMU does"
        );
        guard.assert_unchanged();
    }
}

// ---------------------------------------------------------------------------
// Differencing VHD (type 4), built from qemu-img images by hand: QEMU reads
// no parent for VHDs, so the expected guest is computed from the spec.
// ---------------------------------------------------------------------------

fn be32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Recomputes the footer checksum ("Hard Disk Footer Format", offset 64).
fn fix_footer(f: &mut [u8]) {
    f[64..68].fill(0);
    let sum = f[..512]
        .iter()
        .fold(0u32, |a, &b| a.wrapping_add(u32::from(b)));
    f[64..68].copy_from_slice(&(!sum).to_be_bytes());
}

/// Turns the dynamic VHD `bytes` into a differencing one: disk type 4 in
/// both footers, the parent's Unicode name, optionally a `W2ru` locator
/// (its data placed where the footer was, the footer moved after it).
fn make_differencing(bytes: &mut Vec<u8>, parent_name: &str, w2ru: Option<&str>) {
    let len = bytes.len();
    let mut footer = bytes[len - 512..].to_vec();
    footer[60..64].copy_from_slice(&4u32.to_be_bytes());
    fix_footer(&mut footer);
    bytes[..512].copy_from_slice(&footer);
    let h = be64_at(bytes, 16) as usize;
    let name: Vec<u8> = parent_name
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    bytes[h + 64..h + 64 + 512].fill(0);
    bytes[h + 64..h + 64 + name.len()].copy_from_slice(&name);
    if let Some(rel) = w2ru {
        let data: Vec<u8> = rel.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let at = (len - 512) as u64;
        let loc = h + 576;
        bytes[loc..loc + 4].copy_from_slice(b"W2ru");
        bytes[loc + 4..loc + 8].copy_from_slice(&512u32.to_be_bytes());
        bytes[loc + 8..loc + 12].copy_from_slice(&(data.len() as u32).to_be_bytes());
        bytes[loc + 16..loc + 24].copy_from_slice(&at.to_be_bytes());
        bytes.truncate(len - 512);
        let mut sector = data.clone();
        sector.resize(512, 0);
        bytes.extend_from_slice(&sector);
        bytes.extend_from_slice(&footer);
    } else {
        bytes[len - 512..].copy_from_slice(&footer);
    }
}

#[test]
fn a_differencing_vhd_reads_its_parent_per_spec() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let parent = from_sample(dir.path(), "parent.vhd", "vpc", &["-o", "force_size=on"]);
    let parent_raw = qemu_raw(&parent, "vpc");
    for (case, name_field, locator) in [
        ("by-locator", "not-this-one.vhd", Some(".\\parent.vhd")),
        ("by-name", "parent.vhd", None),
    ] {
        let child = dir.path().join(format!("child-{case}.vhd"));
        qemu_img([
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "force_size=on",
            s(&child),
            "64M",
        ]);
        qemu_io_write_pattern("vpc", &child, M, M, 7);
        qemu_io_write_pattern("vpc", &child, 4 * M, 2 * M, 8);
        let child_raw = qemu_raw(&child, "vpc");
        let mut bytes = std::fs::read(&child).unwrap();
        make_differencing(&mut bytes, name_field, locator);
        // Clear the bitmap bits of block 2's first 16 sectors: those read
        // from the parent (bits are most significant first).
        let h = be64_at(&bytes, 16) as usize;
        let bat = be64_at(&bytes, h + 16) as usize;
        let block2 = be32_at(&bytes, bat + 8) as usize * 512;
        bytes[block2] = 0;
        bytes[block2 + 1] = 0;
        std::fs::write(&child, &bytes).unwrap();

        // Spec: blocks 0 and 2 (2 MiB each) are the child's, but for the
        // 16 sectors of block 2 whose bits are clear; the rest the parent's.
        let mut expected = parent_raw.clone();
        for block in [0usize, 2] {
            let r = block * 2 * M as usize..(block + 1) * 2 * M as usize;
            expected[r.clone()].copy_from_slice(&child_raw[r]);
        }
        let b2 = 4 * M as usize;
        expected[b2..b2 + 8192].copy_from_slice(&parent_raw[b2..b2 + 8192]);

        let guard = BaseGuard::new(&[&child, &parent]);
        let chain = qfault_chain(&child);
        assert_eq!(chain.len(), 2, "{case}");
        assert_eq!(chain[0]["backing_file"], "parent.vhd", "{case}");
        assert_eq!(chain[0]["backing_format"], "vpc", "{case}");
        assert!(qfault_raw(&child) == expected, "{case}: differencing read");
        // QEMU reads no VHD parent: an overlay on this chain would read
        // otherwise in QEMU, so it is refused; a standalone output is not.
        let ov = dir.path().join(format!("ov-{case}.qcow2"));
        let out = qfault_expect(
            [
                "inject",
                "zero",
                s(&child),
                "-o",
                s(&ov),
                "--offset",
                "0",
                "--length",
                "512",
            ],
            3,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("differencing VHD") && err.contains("-O raw"),
            "{err}"
        );
        assert!(!ov.exists());
        let flat = dir.path().join(format!("flat-{case}.raw"));
        qfault_ok([
            "inject",
            "zero",
            s(&child),
            "-o",
            s(&flat),
            "--offset",
            "0",
            "--length",
            "512",
            "-O",
            "raw",
        ]);
        let mut zeroed = expected.clone();
        zeroed[..512].fill(0);
        assert!(
            std::fs::read(&flat).unwrap() == zeroed,
            "{case}: -O raw of the chain"
        );
        guard.assert_unchanged();
    }
}

// ---------------------------------------------------------------------------
// Hostile images: refused with one error line, exit 1, no panic.
// ---------------------------------------------------------------------------

fn assert_refused(img: &Path, phrase: &str) {
    let out = qfault_expect(["export", s(img), "-o", s(&img.with_extension("out"))], 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("qfault: error: "), "{err}");
    assert!(
        err.contains(phrase),
        "{}: want {phrase:?} in {err}",
        img.display()
    );
    assert!(!img.with_extension("out").exists());
}

/// QEMU's verdict on the same file: `Some(message)` when it refuses.
fn qemu_refusal(img: &Path, fmt: &str) -> Option<String> {
    let out = run_any(&mut cmd(
        "qemu-img",
        [
            OsStr::new("info"),
            OsStr::new("-f"),
            OsStr::new(fmt),
            img.as_os_str(),
        ],
    ));
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn small_dynamic_vhd(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let img = dir.join(name);
    qemu_img(["create", "-q", "-f", "vpc", s(&img), "8M"]);
    qemu_io("vpc", &img, &["write -P 0x11 0 4K"]);
    let bytes = std::fs::read(&img).unwrap();
    (img, bytes)
}

#[test]
fn hostile_vhds_are_refused_like_qemu() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let (img, orig) = small_dynamic_vhd(dir.path(), "h.vhd");
    let h = be64_at(&orig, 16) as usize;
    let bat = be64_at(&orig, h + 16) as usize;

    // A BAT entry past the end of the file: QEMU calls it truncated.
    let mut b = orig.clone();
    b[bat + 4..bat + 8].copy_from_slice(&0x0010_0000u32.to_be_bytes());
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "past the end of the file");
    assert!(qemu_refusal(&img, "vpc").unwrap().contains("truncated"));

    // A huge block table: past the end of the file (QEMU: the same), and
    // above QEMU's INT_MAX / 4 entries.
    for (entries, ours, theirs) in [
        (0x1fff_ffffu32, "lies past the end", "pagetable"),
        (0xffff_ffff, "more than QEMU reads", "too large"),
    ] {
        let mut b = orig.clone();
        b[h + 28..h + 32].copy_from_slice(&entries.to_be_bytes());
        std::fs::write(&img, &b).unwrap();
        assert_refused(&img, ours);
        let q = qemu_refusal(&img, "vpc").expect("QEMU refuses it too");
        assert!(q.contains(theirs), "{q}");
    }

    // A block size that is not a power of two.
    let mut b = orig.clone();
    b[h + 32..h + 36].copy_from_slice(&3000u32.to_be_bytes());
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "power of two");
    assert!(qemu_refusal(&img, "vpc").is_some());

    // A footer whose checksum is wrong: QEMU refuses it too.
    let mut b = orig.clone();
    b[100] ^= 0xff;
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "checksum");
    assert!(qemu_refusal(&img, "vpc").unwrap().contains("checksum"));

    // No dynamic header where the footer points.
    let mut b = orig.clone();
    b[h..h + 8].copy_from_slice(b"xxxxxxxx");
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "cxsparse");
    assert!(qemu_refusal(&img, "vpc").is_some());

    // A dynamic type in a footer found only at the end.
    let fixed = dir.path().join("f.vhd");
    qemu_img([
        "create",
        "-q",
        "-f",
        "vpc",
        "-o",
        "subformat=fixed",
        s(&fixed),
        "1M",
    ]);
    let mut b = std::fs::read(&fixed).unwrap();
    let end = b.len() - 512;
    b[end + 60..end + 64].copy_from_slice(&3u32.to_be_bytes());
    fix_footer(&mut b[end..]);
    std::fs::write(&fixed, &b).unwrap();
    assert_refused(&fixed, "footer only at the end");

    // A guest above 2040 GiB (QEMU: File too large).
    let mut b = orig.clone();
    b[28..32].copy_from_slice(b"qem2");
    b[48..56].copy_from_slice(&(3u64 << 40).to_be_bytes());
    fix_footer(&mut b[..512]);
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "2040 GiB");
    assert!(qemu_refusal(&img, "vpc").is_some());

    // A differencing VHD naming no parent.
    let mut b = orig.clone();
    make_differencing(&mut b, "", None);
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "names no parent");
}

fn le32_put(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hostile_vdis_are_refused() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let img = dir.path().join("h.vdi");
    qemu_img(["create", "-q", "-f", "vdi", s(&img), "8M"]);
    qemu_io("vdi", &img, &["write -P 0x11 0 4K", "write -P 0x22 2M 4K"]);
    let orig = std::fs::read(&img).unwrap();
    let bmap = u32::from_le_bytes(orig[0x154..0x158].try_into().unwrap()) as usize;

    // A block map entry past the end of the file: QEMU would read zeros
    // there; qfault calls the image truncated.
    let mut b = orig.clone();
    le32_put(&mut b, bmap + 4, 1000);
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "past the end of the file");

    // A huge block map (and disk size to match): past the end of the file.
    let mut b = orig.clone();
    le32_put(&mut b, 0x180, 0x1fff_0000);
    b[0x170..0x178].copy_from_slice(&(0x1fff_0000u64 << 20).to_le_bytes());
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "block map");

    // More blocks than QEMU's limit.
    let mut b = orig.clone();
    le32_put(&mut b, 0x180, 0xffff_ffff);
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "at most");
    assert!(qemu_refusal(&img, "vdi").is_some());

    // A disk bigger than the block map holds (QEMU refuses it too).
    let mut b = orig.clone();
    b[0x170..0x178].copy_from_slice(&(9 * M).to_le_bytes());
    std::fs::write(&img, &b).unwrap();
    assert_refused(&img, "block map's 8 blocks");
    assert!(qemu_refusal(&img, "vdi").is_some());

    // Other image types, versions, block sizes, a parent UUID.
    for (at, value, phrase) in [
        (0x4c, 4u32, "image type 4"),
        (0x44, 0x0001_0000, "version 1.0"),
        (0x178, 4096, "block size 4096"),
        (0x1b8, 1, "parent UUID"),
    ] {
        let mut b = orig.clone();
        le32_put(&mut b, at, value);
        std::fs::write(&img, &b).unwrap();
        assert_refused(&img, phrase);
    }

    // A discarded block (0xfffffffe) reads as zeros, as in QEMU.
    let mut b = orig.clone();
    le32_put(&mut b, bmap, 0xffff_fffe);
    std::fs::write(&img, &b).unwrap();
    let ours = qfault_raw(&img);
    assert!(ours == qemu_raw(&img, "vdi"));
    assert!(ours[..4096].iter().all(|&x| x == 0));
    assert_eq!(ours[2 * M as usize], 0x22);
}

/// Seeded mutations of small valid images through the fuzz entry points
/// (cargo-fuzz is not installed here): nothing may panic.
#[cfg(feature = "fuzzing")]
#[test]
fn mutated_vhd_and_vdi_images_never_panic() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let raw = dir.path().join("m.raw");
    sparse_file(&raw, 3 * M);
    write_at(&raw, 0, &pattern(8192, 3));
    write_at(&raw, 2 * M + 4096, &pattern(4096, 4));
    let mut seeds = Vec::new();
    for (fmt, name, opts) in [
        ("vpc", "m.vhd", &[][..]),
        ("vpc", "mf.vhd", &["-o", "subformat=fixed"][..]),
        ("vdi", "m.vdi", &[][..]),
        ("vdi", "ms.vdi", &["-o", "static=on"][..]),
    ] {
        let img = dir.path().join(name);
        let mut args = vec!["convert", "-f", "raw", "-O", fmt];
        args.extend_from_slice(opts);
        args.extend([s(&raw), s(&img)]);
        qemu_img(args);
        seeds.push((fmt, std::fs::read(&img).unwrap()));
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (fmt, seed) in &seeds {
        for _ in 0..1000 {
            let mut b = seed.clone();
            for _ in 0..1 + next() % 6 {
                // Mostly the headers and tables (first 4 KiB, last sector).
                let at = match next() % 3 {
                    0 => (next() % 4096) as usize,
                    1 => b.len() - 1 - (next() % 512) as usize,
                    _ => (next() % b.len() as u64) as usize,
                };
                let at = at.min(b.len() - 1);
                b[at] = next() as u8;
            }
            if *fmt == "vpc" {
                // Keep most footers valid so the mutation reaches the tables.
                if next() % 4 != 0 {
                    if &b[..8] == b"conectix" {
                        fix_footer(&mut b[..512]);
                    }
                    let end = b.len() - 512;
                    fix_footer(&mut b[end..]);
                }
                qfault::fuzzing::vpc_read(&b);
            } else {
                qfault::fuzzing::vdi_read(&b);
            }
        }
    }
}

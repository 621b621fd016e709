//! VHDX read as a base and as a chain member: images made by QEMU with each
//! subformat and option export byte for byte as `qemu-img convert -O raw`
//! reads them; overlays over VHDX bases record the backing format `vhdx`
//! and QEMU agrees with them; a differencing VHDX (which QEMU cannot open)
//! built here reads through its parent; hostile images are refused without
//! a panic, as QEMU refuses them where it can tell.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// `qemu-img convert -O vhdx [opts] sample.qcow2 DIR/NAME`.
fn vhdx_from_sample(dir: &Path, name: &str, opts: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args: Vec<&OsStr> = ["convert", "-O", "vhdx"].map(OsStr::new).to_vec();
    args.extend(opts.iter().map(OsStr::new));
    let sample = sample_image();
    args.push(p(&sample));
    args.push(p(&out));
    qemu_img(args);
    out
}

/// `qfault export IMAGE` equals `qemu-img convert -O raw IMAGE`, byte for byte.
fn assert_export_matches_qemu(img: &Path, expected: Option<&[u8]>) {
    let dir = tmpdir();
    let out = dir.path().join("export.raw");
    qfault_ok([OsStr::new("export"), p(img), OsStr::new("-o"), p(&out)]);
    let got = std::fs::read(&out).unwrap();
    let want = match expected {
        Some(w) => w.to_vec(),
        None => qemu_raw_bytes(img),
    };
    assert_eq!(got.len(), want.len(), "{}: export length", img.display());
    if got != want {
        let i = (0..got.len()).find(|&i| got[i] != want[i]).unwrap_or(0);
        panic!("{}: export differs from QEMU's at byte {i}", img.display());
    }
}

/// `qfault info --json` agrees with `qemu-img info` on format, virtual
/// size and cluster (block) size.
fn assert_info_matches_qemu(img: &Path) {
    let ours: Value = serde_json::from_str(&qfault_ok([
        OsStr::new("info"),
        OsStr::new("--json"),
        p(img),
    ]))
    .unwrap();
    let qemu: Value = serde_json::from_str(&qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        p(img),
    ]))
    .unwrap();
    let top = &ours["chain"][0];
    assert_eq!(top["format"], "vhdx", "{ours}");
    assert_eq!(qemu["format"], "vhdx", "{qemu}");
    assert_eq!(top["virtual_size"], qemu["virtual-size"], "{ours}\n{qemu}");
    assert_eq!(top["cluster_size"], qemu["cluster-size"], "{ours}\n{qemu}");
    assert_eq!(
        top["file_size"].as_u64().unwrap(),
        std::fs::metadata(img).unwrap().len()
    );
}

#[test]
fn qemu_made_vhdx_images_read_like_qemu() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let mut images = vec![
        vhdx_from_sample(d, "dynamic.vhdx", &[]),
        vhdx_from_sample(d, "fixed.vhdx", &["-o", "subformat=fixed"]),
        vhdx_from_sample(d, "b1m.vhdx", &["-o", "block_size=1M,log_size=1M"]),
        vhdx_from_sample(d, "b32m.vhdx", &["-o", "block_size=32M,log_size=8M"]),
        vhdx_from_sample(
            d,
            "fixed-nozero.vhdx",
            &["-o", "subformat=fixed,block_state_zero=off"],
        ),
    ];
    // Written by qemu-io: data, zero writes (ZERO blocks) and untouched blocks.
    let written = d.join("written.vhdx");
    qemu_img([
        OsStr::new("create"),
        OsStr::new("-q"),
        OsStr::new("-f"),
        OsStr::new("vhdx"),
        p(&written),
        OsStr::new("64M"),
    ]);
    qemu_io_write_pattern("vhdx", &written, 512, 3 << 20, 7);
    qemu_io(
        "vhdx",
        &written,
        &["write -z 1M 1M", "write -z 16M 16M", "write -P 0x5a 40M 4K"],
    );
    images.push(written);
    let guard = BaseGuard::new(&images);
    for img in &images {
        assert_info_matches_qemu(img);
        assert_export_matches_qemu(img, None);
    }
    guard.assert_unchanged();
}

#[test]
fn qcow2_overlay_over_vhdx_reads_through() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let base = vhdx_from_sample(dir.path(), "base.vhdx", &["-o", "block_size=1M"]);
    let guard = BaseGuard::new(&[&base]);
    let top = dir.path().join("top.qcow2");
    qemu_img_create_overlay(&top, "base.vhdx", "vhdx", &[], "64M");
    qemu_io_write_pattern("qcow2", &top, 3 << 20, 5 << 20, 9);
    qemu_io("qcow2", &top, &["write -z 20M 2M"]);
    let info: Value = serde_json::from_str(&qfault_ok([
        OsStr::new("info"),
        OsStr::new("--json"),
        p(&top),
    ]))
    .unwrap();
    assert_eq!(info["chain"][1]["format"], "vhdx", "{info}");
    assert_eq!(info["chain"][0]["backing_format"], "vhdx", "{info}");
    assert_export_matches_qemu(&top, None);
    guard.assert_unchanged();
}

#[test]
fn inject_zero_on_a_vhdx_base_agrees_with_qemu() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let base = vhdx_from_sample(dir.path(), "base.vhdx", &[]);
    let guard = BaseGuard::new(&[&base]);
    let ours = dir.path().join("ours.qcow2");
    qfault_ok([
        OsStr::new("inject"),
        OsStr::new("zero"),
        p(&base),
        OsStr::new("--offset"),
        OsStr::new("1M"),
        OsStr::new("--length"),
        OsStr::new("300K"),
        OsStr::new("-o"),
        p(&ours),
    ]);
    assert_qemu_img_check_clean(&ours);
    let info: Value = serde_json::from_str(&qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        p(&ours),
    ]))
    .unwrap();
    assert_eq!(info["backing-filename-format"], "vhdx", "{info}");
    assert_eq!(info["backing-filename"], "base.vhdx", "{info}");
    let theirs = dir.path().join("theirs.qcow2");
    qemu_img_create_overlay(&theirs, "base.vhdx", "vhdx", &[], "64M");
    qemu_io("qcow2", &theirs, &["write -z 1M 300K"]);
    let out = run_any(&mut cmd(
        "qemu-img",
        [p(&ours), p(&theirs)]
            .iter()
            .fold(vec![OsStr::new("compare")], |mut v, a| {
                v.push(a);
                v
            }),
    ));
    assert!(
        out.status.success(),
        "qemu-img compare: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And QEMU really reads zeros there, the base's bytes around it.
    let raw = qemu_raw_bytes(&ours);
    let base_raw = qemu_raw_bytes(&base);
    assert!(raw[1 << 20..(1 << 20) + 300 * 1024].iter().all(|&b| b == 0));
    assert_eq!(raw[..1 << 20], base_raw[..1 << 20]);
    assert_ne!(
        base_raw[1 << 20..(1 << 20) + 300 * 1024]
            .iter()
            .filter(|&&b| b != 0)
            .count(),
        0,
        "the zeroed range should hold data in the base, or the test proves nothing"
    );
    guard.assert_unchanged();
}

// ---- Images edited in place: the hostile cases and the differencing disk ----

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Recomputes the CRC-32C of the 4 KiB header at `at` (checksum at +4).
fn fix_header_crc(img: &mut [u8], at: usize) {
    fix_crc(&mut img[at..at + 4096]);
}

fn fix_crc(buf: &mut [u8]) {
    buf[4..8].fill(0);
    let crc = crc32c::crc32c(buf);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// (offset, length) of the region with this GUID's first four bytes.
fn region(img: &[u8], guid_prefix: [u8; 4]) -> (usize, usize) {
    let rt = 192 << 10;
    let n = le32(img, rt + 8) as usize;
    (0..n)
        .map(|i| rt + 16 + i * 32)
        .find(|&e| img[e..e + 4] == guid_prefix)
        .map(|e| (le64(img, e + 16) as usize, le32(img, e + 24) as usize))
        .expect("region")
}

const BAT: [u8; 4] = [0x66, 0x77, 0xc2, 0x2d];
const METADATA: [u8; 4] = [0x06, 0xa2, 0x7c, 0x8b];

/// The metadata item with this GUID's first four bytes: (absolute offset,
/// length).
fn item(img: &[u8], guid_prefix: [u8; 4]) -> (usize, usize) {
    let (m, _) = region(img, METADATA);
    let n = u16::from_le_bytes([img[m + 10], img[m + 11]]) as usize;
    (0..n)
        .map(|i| m + 32 + i * 32)
        .find(|&e| img[e..e + 4] == guid_prefix)
        .map(|e| (m + le32(img, e + 16) as usize, le32(img, e + 20) as usize))
        .expect("metadata item")
}

/// Writes `bytes` as a file in `dir` and returns `qfault info` on it.
fn qfault_info_on(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, std::process::Output) {
    let f = dir.join(name);
    std::fs::write(&f, bytes).unwrap();
    let out = qfault([OsStr::new("info"), p(&f)]);
    (f, out)
}

/// qfault refuses the file with exit status 1, one error line containing
/// `needle`, and no panic.
fn assert_refused(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("qfault: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
}

/// QEMU refuses to open the file too (as a vhdx).
fn assert_qemu_refuses(f: &Path) {
    let out = run_any(&mut cmd(
        "qemu-img",
        [
            OsStr::new("info"),
            OsStr::new("-f"),
            OsStr::new("vhdx"),
            p(f),
        ],
    ));
    assert!(
        !out.status.success(),
        "QEMU opens {} although qfault refuses it",
        f.display()
    );
}

/// A small dynamic VHDX from QEMU with 1 MiB blocks and data in its first
/// blocks, as bytes.
fn small_vhdx(dir: &Path) -> Vec<u8> {
    let img = dir.join("small.vhdx");
    qemu_img([
        OsStr::new("create"),
        OsStr::new("-q"),
        OsStr::new("-f"),
        OsStr::new("vhdx"),
        OsStr::new("-o"),
        OsStr::new("block_size=1M,log_size=1M"),
        p(&img),
        OsStr::new("8M"),
    ]);
    qemu_io_write_pattern("vhdx", &img, 0, 2 << 20, 3);
    std::fs::read(&img).unwrap()
}

#[test]
fn hostile_vhdx_images_are_refused_without_panic() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    let good = small_vhdx(d);
    let (f, out) = qfault_info_on(d, "good.vhdx", &good);
    assert!(out.status.success(), "{out:?}");
    assert_export_matches_qemu(&f, None);
    let (bat, bat_len) = region(&good, BAT);

    // A BAT entry past the end of the file.
    let mut img = good.clone();
    let entry = (1u64 << 40) | 6; // FULLY_PRESENT at 1 TiB.
    img[bat..bat + 8].copy_from_slice(&entry.to_le_bytes());
    let (f, out) = qfault_info_on(d, "bat-past-eof.vhdx", &img);
    assert_refused(&out, "past the end of the file");
    assert_qemu_refuses(&f);

    // A BAT entry pointing into the BAT itself.
    let mut img = good.clone();
    let entry = (bat as u64) | 6;
    img[bat + 8..bat + 16].copy_from_slice(&entry.to_le_bytes());
    let (f, out) = qfault_info_on(d, "bat-overlap.vhdx", &img);
    assert_refused(&out, "overlaps");
    assert_qemu_refuses(&f);

    // A huge disk whose BAT cannot fit its region (64 TiB with 1 MiB blocks).
    let mut img = good.clone();
    let (size_at, _) = item(&img, [0x24, 0x42, 0xa5, 0x2f]);
    img[size_at..size_at + 8].copy_from_slice(&(64u64 << 40).to_le_bytes());
    let (f, out) = qfault_info_on(d, "huge-bat.vhdx", &img);
    assert_refused(&out, "too small for the");
    assert_qemu_refuses(&f);
    assert!(bat_len < (64usize << 20) * 8);

    // Bad CRCs in both headers.
    let mut img = good.clone();
    img[(64 << 10) + 100] ^= 1;
    img[(128 << 10) + 100] ^= 1;
    let (f, out) = qfault_info_on(d, "bad-headers.vhdx", &img);
    assert_refused(&out, "no valid VHDX header");
    assert_qemu_refuses(&f);

    // One bad header: the other one is used (QEMU does the same).
    let mut img = good.clone();
    img[(64 << 10) + 100] ^= 1;
    let (f, out) = qfault_info_on(d, "one-bad-header.vhdx", &img);
    assert!(out.status.success(), "{out:?}");
    assert_export_matches_qemu(&f, None);

    // A bad region table 1 (QEMU reads only that copy).
    let mut img = good.clone();
    img[(192 << 10) + 20] ^= 1;
    let (f, out) = qfault_info_on(d, "bad-region.vhdx", &img);
    assert_refused(&out, "region table 1");
    assert_qemu_refuses(&f);

    // A block size that is not a power of two.
    let mut img = good.clone();
    let (params, _) = item(&img, [0x37, 0x67, 0xa1, 0xca]);
    img[params..params + 4].copy_from_slice(&(3u32 << 20).to_le_bytes());
    let (_, out) = qfault_info_on(d, "bad-block-size.vhdx", &img);
    assert_refused(&out, "block size");

    // A metadata item past the metadata region.
    let mut img = good.clone();
    let (m, _) = region(&img, METADATA);
    let n = u16::from_le_bytes([img[m + 10], img[m + 11]]) as usize;
    for i in 0..n {
        let e = m + 32 + i * 32;
        img[e + 16..e + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    let (_, out) = qfault_info_on(d, "bad-item.vhdx", &img);
    assert_refused(&out, "outside the metadata region");

    // A non-empty log: a log GUID in the header and one valid entry with it.
    let img = with_active_log(&good, true);
    let (f, out) = qfault_info_on(d, "dirty-log.vhdx", &img);
    assert_refused(&out, "qemu-img check -r all");
    let q = run_any(&mut cmd(
        "qemu-img",
        [
            OsStr::new("info"),
            OsStr::new("-f"),
            OsStr::new("vhdx"),
            p(&f),
        ],
    ));
    assert!(
        String::from_utf8_lossy(&q.stderr).contains("log that needs to be replayed"),
        "QEMU should refuse the dirty log read-only: {q:?}"
    );
    // The same log GUID with a broken entry checksum: no active log, and
    // QEMU reads the image as it is.
    let img = with_active_log(&good, false);
    let (f, out) = qfault_info_on(d, "stale-log.vhdx", &img);
    assert!(out.status.success(), "{out:?}");
    assert_export_matches_qemu(&f, None);
}

/// `good` with a log GUID in both headers and, at the log's start, a log
/// entry of one zero descriptor carrying it (with a valid checksum when
/// `valid`).
fn with_active_log(good: &[u8], valid: bool) -> Vec<u8> {
    let mut img = good.to_vec();
    let guid: [u8; 16] = *b"qfault-log-guid!";
    let log_offset = le64(&img, (64 << 10) + 72) as usize;
    for h in [64usize << 10, 128 << 10] {
        img[h + 48..h + 64].copy_from_slice(&guid);
        fix_header_crc(&mut img, h);
    }
    let mut entry = vec![0u8; 4096];
    entry[0..4].copy_from_slice(b"loge");
    entry[8..12].copy_from_slice(&4096u32.to_le_bytes()); // entry length
    entry[16..24].copy_from_slice(&1u64.to_le_bytes()); // sequence number
    entry[24..28].copy_from_slice(&1u32.to_le_bytes()); // one descriptor
    entry[32..48].copy_from_slice(&guid);
    entry[48..56].copy_from_slice(&(img.len() as u64).to_le_bytes()); // flushed offset
    entry[56..64].copy_from_slice(&(img.len() as u64).to_le_bytes()); // last offset
                                                                      // A zero descriptor: zero 0 bytes at file offset 1 MiB... length 4 KiB
                                                                      // of a region no guest data uses (the end of the header section).
    entry[64..68].copy_from_slice(b"zero");
    entry[72..80].copy_from_slice(&4096u64.to_le_bytes());
    entry[80..88].copy_from_slice(&(1u64 << 19).to_le_bytes());
    entry[88..96].copy_from_slice(&1u64.to_le_bytes());
    fix_crc(&mut entry);
    if !valid {
        entry[4] ^= 0xff;
    }
    img[log_offset..log_offset + 4096].copy_from_slice(&entry);
    img
}

/// Appends `data` at the next MiB boundary; returns its offset.
fn append_mib_aligned(img: &mut Vec<u8>, data: &[u8]) -> u64 {
    let at = img.len().div_ceil(1 << 20) << 20;
    img.resize(at, 0);
    img.extend_from_slice(data);
    img.resize(img.len().div_ceil(1 << 20) << 20, 0);
    at as u64
}

/// Turns a QEMU-made empty dynamic VHDX (1 MiB blocks, 512-byte sectors)
/// into a differencing image naming `parent` by relative path: HasParent,
/// a VHDX parent locator, block 0 fully present, block 1 partially present
/// (sectors 0-7 and 100-199 from this file), block 2 ZERO, the rest from
/// the parent. Returns the image and what its guest reads, given the
/// parent's guest bytes.
fn differencing_image(empty: &[u8], parent_raw: &[u8], parent: &str) -> (Vec<u8>, Vec<u8>) {
    let mut img = empty.to_vec();
    let (params, _) = item(&img, [0x37, 0x67, 0xa1, 0xca]);
    assert_eq!(le32(&img, params), 1 << 20, "1 MiB blocks");
    img[params + 4] |= 2; // HasParent
                          // The parent locator item: placed 64 KiB after the last item.
    let (m, mlen) = region(&img, METADATA);
    let mut loc = Vec::new();
    loc.extend_from_slice(&[
        0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a, 0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59,
        0x13,
    ]);
    let pairs = [
        ("parent_linkage", "{00000000-0000-0000-0000-000000000000}"),
        ("relative_path", parent),
        ("absolute_win32_path", "C:\\images\\parent.vhdx"),
    ];
    loc.extend_from_slice(&0u16.to_le_bytes());
    loc.extend_from_slice(&(pairs.len() as u16).to_le_bytes());
    let mut strings = Vec::new();
    let strings_at = 20 + pairs.len() * 12;
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
    for (k, v) in pairs {
        let (k, v) = (utf16(k), utf16(v));
        let ko = strings_at + strings.len();
        strings.extend_from_slice(&k);
        let vo = strings_at + strings.len();
        strings.extend_from_slice(&v);
        loc.extend_from_slice(&(ko as u32).to_le_bytes());
        loc.extend_from_slice(&(vo as u32).to_le_bytes());
        loc.extend_from_slice(&(k.len() as u16).to_le_bytes());
        loc.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    loc.extend_from_slice(&strings);
    let loc_off = mlen - (128 << 10);
    img[m + loc_off..m + loc_off + loc.len()].copy_from_slice(&loc);
    let n = u16::from_le_bytes([img[m + 10], img[m + 11]]) as usize;
    let e = m + 32 + n * 32;
    img[e..e + 16].copy_from_slice(&[
        0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab,
        0x0c,
    ]);
    img[e + 16..e + 20].copy_from_slice(&(loc_off as u32).to_le_bytes());
    img[e + 20..e + 24].copy_from_slice(&(loc.len() as u32).to_le_bytes());
    img[e + 24..e + 28].copy_from_slice(&6u32.to_le_bytes()); // virtual disk, required
    img[m + 10..m + 12].copy_from_slice(&((n + 1) as u16).to_le_bytes());

    // Blocks: 0 fully present, 1 partially present, 2 zero.
    let block0 = pattern(1 << 20, 11);
    let block1 = pattern(1 << 20, 12);
    let b0 = append_mib_aligned(&mut img, &block0);
    let b1 = append_mib_aligned(&mut img, &block1);
    let mut bitmap = vec![0u8; 1 << 20];
    // Block 1's bits start at bit 2048 (2048 sectors per 1 MiB block).
    let bit = |s: usize| 2048 + s;
    let present: Vec<usize> = (0..8).chain(100..200).collect();
    for &s in &present {
        bitmap[bit(s) / 8] |= 1 << (bit(s) % 8);
    }
    let sb = append_mib_aligned(&mut img, &bitmap);
    let (bat, _) = region(&img, BAT);
    let mut set = |idx: usize, v: u64| {
        img[bat + idx * 8..bat + idx * 8 + 8].copy_from_slice(&v.to_le_bytes())
    };
    for i in 0..=4096 {
        set(i, 0);
    }
    set(0, b0 | 6);
    set(1, b1 | 7);
    set(2, 2);
    // The chunk's sector bitmap entry follows its 4096 payload entries.
    set(4096, sb | 6);

    let mut want = parent_raw.to_vec();
    want[..1 << 20].copy_from_slice(&block0);
    for &s in &present {
        let g = (1 << 20) + s * 512;
        want[g..g + 512].copy_from_slice(&block1[s * 512..s * 512 + 512]);
    }
    want[2 << 20..3 << 20].fill(0);
    (img, want)
}

#[test]
fn differencing_vhdx_reads_through_its_parent() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    let parent = vhdx_from_sample(&d.join("sub"), "parent.vhdx", &[]);
    let parent_raw = qemu_raw_bytes(&parent);
    let empty = d.join("empty.vhdx");
    qemu_img([
        OsStr::new("create"),
        OsStr::new("-q"),
        OsStr::new("-f"),
        OsStr::new("vhdx"),
        OsStr::new("-o"),
        OsStr::new("block_size=1M,log_size=1M"),
        p(&empty),
        OsStr::new("64M"),
    ]);
    let (img, want) = differencing_image(
        &std::fs::read(&empty).unwrap(),
        &parent_raw,
        ".\\sub\\parent.vhdx",
    );
    let child = d.join("child.vhdx");
    std::fs::write(&child, &img).unwrap();
    let guard = BaseGuard::new(&[&parent, &child]);

    let info: Value = serde_json::from_str(&qfault_ok([
        OsStr::new("info"),
        OsStr::new("--json"),
        p(&child),
    ]))
    .unwrap();
    assert_eq!(
        info["chain"][0]["backing_file"], "sub/parent.vhdx",
        "{info}"
    );
    assert_eq!(info["chain"][0]["backing_format"], "vhdx", "{info}");
    assert_eq!(info["chain"][1]["format"], "vhdx", "{info}");
    assert_export_matches_qemu(&child, Some(&want));
    // QEMU does not open differencing VHDX images (the reason this test
    // builds its expected bytes itself).
    let q = run_any(&mut cmd("qemu-img", [OsStr::new("info"), p(&child)]));
    assert!(
        !q.status.success(),
        "QEMU now opens differencing VHDX: {q:?}"
    );

    // QEMU cannot open a differencing VHDX, so a qcow2 overlay backed by it
    // is refused (QEMU could not read it); a standalone raw output is not.
    let inject = |out: &Path, extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = ["inject", "zero"].map(Into::into).to_vec();
        args.push(child.clone().into());
        args.extend(["--offset", "1M", "--length", "4K", "-o"].map(Into::into));
        args.push(out.into());
        args.extend(extra.iter().map(Into::into));
        args
    };
    let ov = d.join("ov.qcow2");
    let out = qfault_expect(inject(&ov, &[]), 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("differencing VHDX"), "{err}");
    assert!(!ov.exists());
    let flat = d.join("flat.raw");
    qfault_ok(inject(&flat, &["-O", "raw"]));
    let mut want2 = want.clone();
    want2[1 << 20..(1 << 20) + 4096].fill(0);
    assert!(
        std::fs::read(&flat).unwrap() == want2,
        "-O raw of the differencing chain"
    );

    // Partially present without a present sector bitmap: refused on read.
    let mut broken = img.clone();
    let (bat, _) = region(&broken, BAT);
    broken[bat + 4096 * 8..bat + 4097 * 8].fill(0);
    let f = d.join("broken.vhdx");
    std::fs::write(&f, &broken).unwrap();
    let out = qfault([
        OsStr::new("export"),
        p(&f),
        OsStr::new("-o"),
        p(&d.join("x.raw")),
    ]);
    assert_refused(&out, "sector bitmap");
    // No relative path: refused, naming the Windows path.
    let no_rel = differencing_image(&std::fs::read(&empty).unwrap(), &parent_raw, "").0;
    let (_, out) = qfault_info_on(d, "no-rel.vhdx", &no_rel);
    assert_refused(&out, "relative_path is empty");
    guard.assert_unchanged();
}

/// Reads the whole guest of `bytes` opened as a VHDX from memory (no
/// parent): map walk and reads, errors allowed, panics not.
fn read_all_from_memory(bytes: Vec<u8>) {
    use qfault::image::driver::{self, NoFiles};
    use qfault::image::storage::MemStorage;
    use qfault::image::{Format, Image, Layer, ReadAt};
    let storage = MemStorage::new(bytes, "mutant.vhdx");
    let Ok(d) = driver::open(Format::Vhdx, Box::new(storage), &mut NoFiles) else {
        return;
    };
    let mut image = Image::from_layer(Layer::Driver(d));
    let size = image.size();
    let mut pos = 0;
    for _ in 0..256 {
        if pos >= size {
            break;
        }
        match image.extent(pos, size - pos) {
            Ok(e) => pos += e.length,
            Err(_) => break,
        }
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0;
    while at < size.min(16 << 20) {
        let n = (size - at).min(buf.len() as u64) as usize;
        if image.read_at(at, &mut buf[..n]).is_err() {
            break;
        }
        at += n as u64;
    }
}

/// A seeded mutation run over the structures of a small QEMU-made VHDX
/// (the minimum when cargo-fuzz is not installed; `make fuzz` runs the
/// `vhdx_read` target): headers (with their checksums fixed up half the
/// time, so the mutation reaches what they point to), region table, BAT,
/// metadata table and items. No input may panic.
#[test]
fn mutated_vhdx_structures_never_panic() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let good = small_vhdx(dir.path());
    let (bat, _) = region(&good, BAT);
    let (m, _) = region(&good, METADATA);
    let log = le64(&good, (64 << 10) + 72) as usize;
    let targets: [(usize, usize); 8] = [
        (64 << 10, 80),
        (128 << 10, 80),
        (192 << 10, 80),
        (bat, 64),
        (m, 200),
        (m + (64 << 10), 64),
        (log, 128),
        (0, 8),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..400 {
        let mut img = good.clone();
        for _ in 0..1 + next() % 4 {
            let (start, len) = targets[(next() % targets.len() as u64) as usize];
            let at = start + (next() % len as u64) as usize;
            match next() % 4 {
                0 => img[at] ^= 1 << (next() % 8),
                1 => img[at] = next() as u8,
                2 => img[at] = 0xff,
                _ => {
                    let end = (at + 8).min(img.len());
                    img[at..end].fill(0xff);
                }
            }
        }
        if next() % 2 == 0 {
            for h in [64usize << 10, 128 << 10] {
                fix_header_crc(&mut img, h);
            }
            fix_crc(&mut img[192 << 10..256 << 10]);
        }
        read_all_from_memory(img);
    }
}

/// A 64 TiB sparse VHDX (256 MiB blocks, a 2.2 MB BAT, no block present):
/// info and a full map are quick and memory stays small, because the BAT is
/// read a page at a time.
#[test]
fn a_64_tib_sparse_vhdx_maps_quickly() {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return;
    }
    let dir = tmpdir();
    let mut img = small_vhdx(dir.path());
    let (params, _) = item(&img, [0x37, 0x67, 0xa1, 0xca]);
    img[params..params + 4].copy_from_slice(&(256u32 << 20).to_le_bytes());
    let (size_at, _) = item(&img, [0x24, 0x42, 0xa5, 0x2f]);
    img[size_at..size_at + 8].copy_from_slice(&(64u64 << 40).to_le_bytes());
    // Move the metadata region to the end of the file, then let the BAT
    // grow over where it was.
    let (m, mlen) = region(&img, METADATA);
    let meta = img[m..m + mlen].to_vec();
    let new_m = append_mib_aligned(&mut img, &meta);
    let (bat, _) = region(&img, BAT);
    let entries = (1u64 << 18) + ((1 << 18) - 1) / 16; // chunk ratio 16
    let bat_len = (entries * 8).next_multiple_of(1 << 20);
    img[bat..bat + bat_len as usize].fill(0);
    let rt = 192 << 10;
    for i in 0..le32(&img, rt + 8) as usize {
        let e = rt + 16 + i * 32;
        if img[e..e + 4] == METADATA {
            img[e + 16..e + 24].copy_from_slice(&new_m.to_le_bytes());
        } else if img[e..e + 4] == BAT {
            img[e + 24..e + 28].copy_from_slice(&(bat_len as u32).to_le_bytes());
        }
    }
    fix_crc(&mut img[rt..rt + (64 << 10)]);
    let f = dir.path().join("huge.vhdx");
    std::fs::write(&f, &img).unwrap();
    let qemu: Value = serde_json::from_str(&qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        p(&f),
    ]))
    .unwrap();
    assert_eq!(qemu["virtual-size"], 64u64 << 40, "{qemu}");
    assert_info_matches_qemu(&f);
    let t = std::time::Instant::now();
    let map: Value =
        serde_json::from_str(&qfault_ok([OsStr::new("map"), OsStr::new("--json"), p(&f)])).unwrap();
    assert!(t.elapsed().as_secs() < 20, "map took {:?}", t.elapsed());
    let text = map.to_string();
    assert!(text.contains(&(64u64 << 40).to_string()), "{text}");
}

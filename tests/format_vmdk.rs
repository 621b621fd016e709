//! The VMDK reader (issue 17) against QEMU: images made by
//! `qemu-img convert -O vmdk -o subformat=…` from the sample disk (and an
//! external VMDK, dfvfs's `ext2.vmdk`) export byte for byte as
//! `qemu-img convert -O raw` does, and `info` agrees with `qemu-img info`;
//! chains through VMDK (a qcow2 overlay on a VMDK, a VMDK differencing disk
//! with zeroed grains) read as QEMU reads them; `inject` on a VMDK base
//! writes an overlay recording backing format `vmdk` that QEMU accepts;
//! extent files pass the backing gate (`--backing-root`, loops); hostile
//! images are refused with one line, no panic. Every base is hashed before
//! and after.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SUBFORMATS: [&str; 5] = [
    "monolithicSparse",
    "streamOptimized",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
];

fn tools() -> bool {
    require_tools(&["qemu-img", "qemu-io"])
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Every file in `dir` (a VMDK's descriptor and extents), for the BaseGuard.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// `qemu-img convert -O vmdk -o subformat=SUB [extra] SRC DIR/SUB.vmdk`.
fn make_vmdk(src: &Path, dir: &Path, sub: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("{sub}.vmdk"));
    let opts = format!("subformat={sub}{extra}");
    qemu_img(["convert", "-O", "vmdk", "-o", &opts, s(src), s(&out)]);
    out
}

/// qfault's export of `image` (with extra options before it).
fn export(image: &Path, extra: &[&str], out: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(out);
    let mut args = vec!["export"];
    args.extend_from_slice(extra);
    args.extend([s(image), "-o", s(out)]);
    qfault_ok(args);
    std::fs::read(out).unwrap()
}

fn qemu_info(image: &Path) -> Value {
    let text = qemu_img(["info", "--output=json", s(image)]);
    serde_json::from_str(&text).unwrap()
}

fn qfault_info(image: &Path) -> Value {
    serde_json::from_str(&qfault_ok(["info", "--json", s(image)])).unwrap()
}

/// The export equals QEMU's raw conversion, and `info` agrees with QEMU's.
fn assert_reads_like_qemu(image: &Path, scratch: &Path) {
    let ours = export(image, &[], &scratch.join("ours.raw"));
    let theirs = qemu_raw_bytes(image);
    assert!(
        ours == theirs,
        "{}: export differs from qemu-img convert",
        image.display()
    );
    let q = qemu_info(image);
    let f = qfault_info(image);
    let top = &f["chain"][0];
    assert_eq!(top["format"], q["format"], "{}", image.display());
    assert_eq!(
        top["virtual_size"],
        q["virtual-size"],
        "{}",
        image.display()
    );
    assert_eq!(
        top["cluster_size"],
        q.get("cluster-size").cloned().unwrap_or(Value::Null),
        "{}",
        image.display()
    );
    assert_eq!(
        top["backing_file"],
        q.get("backing-filename").cloned().unwrap_or(Value::Null),
        "{}",
        image.display()
    );
}

#[test]
fn every_subformat_reads_like_qemu() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for sub in SUBFORMATS {
        let dir = d.path().join(sub);
        let img = make_vmdk(&sample_image(), &dir, sub, "");
        let guard = BaseGuard::new(&files_in(&dir));
        assert_reads_like_qemu(&img, d.path());
        // inspect finds the sample's two NTFS partitions through the VMDK.
        let inspect: Value =
            serde_json::from_str(&qfault_ok(["inspect", "--json", s(&img)])).unwrap();
        let fs: Vec<&Value> = inspect["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["filesystem"])
            .collect();
        assert_eq!(fs, ["ntfs", "ntfs"], "{sub}: {inspect}");
        guard.assert_unchanged();
    }
}

#[test]
fn zeroed_grains_in_a_vmdk_differencing_chain() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let base = make_vmdk(&sample_image(), d.path(), "monolithicSparse", "");
    let child = d.path().join("child.vmdk");
    qemu_img([
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        "zeroed_grain=on",
        "-b",
        "monolithicSparse.vmdk",
        "-F",
        "vmdk",
        s(&child),
    ]);
    let guard = BaseGuard::new(&[&base]);
    // Whole grains zeroed (zeroed-grain entries, hiding the parent's data),
    // a partial grain written (copied up from the parent), one grain of data.
    qemu_io(
        "vmdk",
        &child,
        &[
            "write -z 0 128k",
            "write -P 0x5a 1048576 4096",
            "write -P 0xa5 2097152 65536",
        ],
    );
    let raw = qemu_raw_bytes(&child);
    assert!(raw[..128 << 10].iter().all(|&b| b == 0));
    assert_reads_like_qemu(&child, d.path());
    let f = qfault_info(&child);
    assert_eq!(f["chain"].as_array().unwrap().len(), 2, "{f}");
    assert_eq!(f["chain"][0]["backing_format"], "vmdk", "{f}");
    // The zeroed grains read as zeros without the parent (map says zero).
    let map = qfault_ok(["map", "--json", s(&child)]);
    let m: Value = serde_json::from_str(&map).unwrap();
    let first = &m["extents"][0];
    assert_eq!(
        (first["start"].as_u64(), first["zero"].as_bool()),
        (Some(0), Some(true)),
        "{m}"
    );
    assert_eq!(first["depth"], 0, "{m}");
    guard.assert_unchanged();
}

#[test]
fn qcow2_overlay_over_vmdk() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for sub in ["streamOptimized", "twoGbMaxExtentSparse"] {
        let dir = d.path().join(sub);
        let base = make_vmdk(&sample_image(), &dir, sub, "");
        let guard = BaseGuard::new(&files_in(&dir));
        let top = dir.join("top.qcow2");
        qemu_img_create_overlay(&top, format!("{sub}.vmdk"), "vmdk", &[], "64M");
        qemu_io_write_pattern("qcow2", &top, 3 << 20, 200_000, 7);
        assert_reads_like_qemu(&top, d.path());
        let f = qfault_info(&top);
        assert_eq!(f["chain"][1]["format"], "vmdk", "{f}");
        assert_eq!(f["chain"][1]["path"], s(&base), "{f}");
        guard.assert_unchanged();
    }
}

#[test]
fn inject_zero_on_a_vmdk_base() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    for sub in ["monolithicSparse", "streamOptimized", "twoGbMaxExtentFlat"] {
        let dir = d.path().join(sub);
        let base = make_vmdk(&sample_image(), &dir, sub, "");
        let guard = BaseGuard::new(&files_in(&dir));
        let ov = dir.join("ov.qcow2");
        let (off, len) = ("1048576", "70000");
        qfault_ok([
            "inject",
            "zero",
            s(&base),
            "--offset",
            off,
            "--length",
            len,
            "-o",
            s(&ov),
        ]);
        let q = qemu_info(&ov);
        assert_eq!(q["backing-filename-format"], "vmdk", "{q}");
        assert_qemu_img_check_clean(&ov);
        // The same change made by QEMU itself.
        let eq = dir.join("eq.qcow2");
        qemu_img_create_overlay(&eq, &base, "vmdk", &[], "64M");
        qemu_io("qcow2", &eq, &[&format!("write -z {off} {len}")]);
        qemu_img(["compare", s(&ov), s(&eq)]);
        let raw = qemu_raw_bytes(&ov);
        assert!(raw[1 << 20..(1 << 20) + 70000].iter().all(|&b| b == 0));
        assert_ne!(
            qemu_raw_bytes(&base)[1 << 20..(1 << 20) + 70000],
            raw[1 << 20..(1 << 20) + 70000]
        );
        guard.assert_unchanged();
    }
}

/// A flat descriptor naming `file` (one extent of `sectors`).
fn flat_descriptor(path: &Path, file: &str, sectors: u64) {
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\n# Extent description\nRW {sectors} FLAT \"{file}\" 0\n"
    );
    std::fs::write(path, text).unwrap();
}

#[test]
fn extent_files_pass_the_backing_gate() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let data = pattern(1 << 20, 3);
    std::fs::write(d.path().join("outside.raw"), &data).unwrap();
    std::fs::write(root.join("inside.raw"), &data).unwrap();
    let inside = root.join("inside.vmdk");
    flat_descriptor(&inside, "inside.raw", 2048);
    let escape = root.join("escape.vmdk");
    flat_descriptor(&escape, "../outside.raw", 2048);
    let absolute = root.join("absolute.vmdk");
    flat_descriptor(&absolute, s(&d.path().join("outside.raw")), 2048);
    let guard = BaseGuard::new(&[d.path().join("outside.raw"), root.join("inside.raw")]);
    let out = d.path().join("out.raw");
    // Without a root, every name is followed (as QEMU follows it).
    for img in [&inside, &escape, &absolute] {
        assert_eq!(export(img, &[], &out), data);
        assert_eq!(qemu_raw_bytes(img), data);
    }
    // With one, names that leave it are refused, never read.
    assert_eq!(export(&inside, &["--backing-root", s(&root)], &out), data);
    for img in [&escape, &absolute] {
        let o = qfault_expect(
            ["export", "--backing-root", s(&root), s(img), "-o", s(&out)],
            3,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("outside the backing root"), "{err}");
        assert!(
            err.starts_with("qfault: error: ") && err.lines().count() == 1,
            "{err}"
        );
    }
    // A descriptor naming itself as its extent: refused as a loop.
    let selfish = root.join("self.vmdk");
    flat_descriptor(&selfish, "self.vmdk", 1);
    let o = qfault_expect(["info", s(&selfish)], 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("loop"), "{err}");
    // A blank line before the extent line: QEMU reads the extent twice
    // (a disk of twice the size); qfault refuses to open the file twice.
    let twice = root.join("twice.vmdk");
    std::fs::write(
        &twice,
        "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"inside.raw\" 0\n",
    )
    .unwrap();
    assert_eq!(qemu_info(&twice)["virtual-size"], 2 << 20);
    let o = qfault_expect(["info", s(&twice)], 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("twice"));
    guard.assert_unchanged();
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// File offset of the first grain table entry of a hosted sparse extent
/// (the header's, or the footer's when the directory is at the end).
fn first_gte(bytes: &[u8]) -> usize {
    let mut h = &bytes[..512];
    if le64(h, 56) == u64::MAX {
        let at = bytes.len() - 1024;
        h = &bytes[at..at + 512];
    }
    let gd = le64(h, 56) as usize * 512;
    le32(bytes, gd) as usize * 512
}

/// `info` and `export` both fail with exit 1 and one line containing `want`.
fn assert_refused(img: &Path, want: &str) {
    let out = img.with_extension("out");
    for args in [
        vec!["export", s(img), "-o", s(&out)],
        vec!["inspect", s(img)],
    ] {
        let o = qfault_expect(&args, 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err} lacks {want}");
        assert!(
            err.starts_with("qfault: error: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn hostile_vmdks_are_refused() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let sparse = make_vmdk(&sample_image(), d.path(), "monolithicSparse", "");
    let stream = make_vmdk(&sample_image(), d.path(), "streamOptimized", "");
    let good = std::fs::read(&sparse).unwrap();
    let good_stream = std::fs::read(&stream).unwrap();
    let edit = |name: &str, src: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = src.to_vec();
        f(&mut b);
        let p = d.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    // A grain table entry past the end of the file (qemu-img check agrees).
    let gte = first_gte(&good);
    let img = edit("gte.vmdk", &good, &|b| {
        b[gte..gte + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes())
    });
    let check = run_any(&mut cmd("qemu-img", ["check", s(&img)]));
    assert!(String::from_utf8_lossy(&check.stderr).contains("points after EOF"));
    assert_refused(&img, "past the end of the");
    // A grain directory entry pointing past the end.
    let gd = le64(&good, 56) as usize * 512;
    let img = edit("gd.vmdk", &good, &|b| {
        b[gd..gd + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes())
    });
    assert_refused(&img, "grain table 0");
    // A huge grain directory: capacity 2^40 sectors of one-sector grains.
    let img = edit("huge.vmdk", &good, &|b| {
        b[12..20].copy_from_slice(&(1u64 << 40).to_le_bytes());
        b[20..28].copy_from_slice(&1u64.to_le_bytes());
    });
    assert_refused(&img, "grain directory needs");
    // A grain directory that does not fit in the file.
    let img = edit("gdsize.vmdk", &good, &|b| {
        b[12..20].copy_from_slice(&(1u64 << 40).to_le_bytes())
    });
    assert_refused(&img, "grain directory (");
    // A compressed grain whose marker lies about its length, and one whose
    // stream is cut short.
    let marker = le32(&good_stream, first_gte(&good_stream)) as usize * 512;
    let img = edit("lie.vmdk", &good_stream, &|b| {
        b[marker + 8..marker + 12].copy_from_slice(&200_000u32.to_le_bytes())
    });
    assert_refused(&img, "compressed bytes");
    let size = le32(&good_stream, marker + 8);
    let img = edit("short.vmdk", &good_stream, &|b| {
        b[marker + 8..marker + 12].copy_from_slice(&(size / 2).to_le_bytes())
    });
    assert_refused(&img, "zlib stream");
    // Extent sizes that overflow, or add up past 2^63 bytes.
    std::fs::write(d.path().join("x.raw"), [1u8; 512]).unwrap();
    std::fs::write(d.path().join("y.raw"), [2u8; 512]).unwrap();
    let img = d.path().join("overflow.vmdk");
    flat_descriptor(&img, "x.raw", 1 << 60);
    assert_refused(&img, "overflows");
    std::fs::write(
        &img,
        "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n\
         RW 10000000000000000 FLAT \"x.raw\" 0\nRW 10000000000000000 FLAT \"y.raw\" 0\n",
    )
    .unwrap();
    assert_refused(&img, "add up to more than");
    std::fs::write(
        &img,
        "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\
         RW 99999999999999999999 FLAT \"x.raw\" 0\n",
    )
    .unwrap();
    assert_refused(&img, "overflows 64 bits");
    // A descriptor naming a sparse extent that is not one.
    std::fs::write(
        &img,
        "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\
         RW 1 SPARSE \"x.raw\"\n",
    )
    .unwrap();
    assert_refused(&img, "not a VMDK sparse extent");
}

#[test]
fn dfvfs_ext2_vmdk_reads_like_qemu() {
    if !tools() {
        return;
    }
    // Not made by these tests (dfvfs's test data; see SOURCE).
    let img = repo_root().join("testdata/external/dfvfs/ext2.vmdk");
    let guard = BaseGuard::new(&[&img]);
    let d = tmpdir();
    assert_reads_like_qemu(&img, d.path());
    let inspect: Value = serde_json::from_str(&qfault_ok(["inspect", "--json", s(&img)])).unwrap();
    assert_eq!(inspect["partitions"][0]["filesystem"], "ext2", "{inspect}");
    guard.assert_unchanged();
}

/// Opens `bytes` as a VMDK held in memory (no extent file can be opened),
/// walks its map and reads through it: it may fail, never panic.
fn read_through_memory(bytes: &[u8]) -> Result<(), qfault::Error> {
    use qfault::image::driver::NoFiles;
    use qfault::image::storage::MemStorage;
    use qfault::image::{Image, Layer, ReadAt};
    let storage = MemStorage::new(bytes.to_vec(), "m.vmdk");
    let v = qfault::image::vmdk::Vmdk::open(Box::new(storage), &mut NoFiles)?;
    let mut image = Image::from_layer(Layer::Driver(Box::new(v)));
    let size = image.size();
    let mut pos = 0;
    for _ in 0..256 {
        if pos >= size {
            break;
        }
        pos += image.extent(pos, size - pos)?.length;
    }
    let mut buf = vec![0u8; 1 << 16];
    for start in [0, size / 3, size / 2, size.saturating_sub(1 << 16)] {
        let len = (size - start).min(buf.len() as u64) as usize;
        image.read_at(start, &mut buf[..len])?;
    }
    Ok(())
}

/// The minimum the fuzz target (`fuzz/fuzz_targets/vmdk_read.rs`, run by
/// `make fuzz`) stands for when cargo-fuzz is not installed: seeded
/// mutations of real sparse, zeroed-grain and stream-optimized VMDKs,
/// biased to their metadata (header, directory, tables, markers, footer).
#[test]
fn seeded_mutations_never_panic() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let raw = d.path().join("d.raw");
    std::fs::write(&raw, pattern(1 << 20, 9)).unwrap();
    qemu_io("raw", &raw, &["write -z 192k 256k"]);
    let mut seeds = Vec::new();
    for (sub, extra) in [
        ("monolithicSparse", ""),
        ("monolithicSparse", ",zeroed_grain=on"),
        ("streamOptimized", ""),
    ] {
        let dir = d.path().join(format!("{sub}{extra}"));
        let img = make_vmdk(&raw, &dir, sub, extra);
        if !extra.is_empty() {
            qemu_io("vmdk", &img, &["write -z 0 128k"]);
        }
        let bytes = std::fs::read(&img).unwrap();
        read_through_memory(&bytes).expect("the unmutated image reads");
        seeds.push(bytes);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused) = (0, 0);
    let started = std::time::Instant::now();
    for round in 0..2000 {
        let seed = &seeds[round % seeds.len()];
        let mut b = seed.clone();
        let len = b.len();
        for _ in 0..1 + next() % 6 {
            // Metadata lies in the first 64 KiB and the last 1.5 KiB.
            let at = match next() % 4 {
                0 => next() as usize % 512,
                1 => next() as usize % (64 << 10).min(len),
                2 => len - 1536 + next() as usize % 1536,
                _ => next() as usize % len,
            };
            b[at] = match next() % 4 {
                0 => 0xff,
                1 => 0,
                2 => b[at] ^ (1 << (next() % 8)),
                _ => next() as u8,
            };
        }
        if round % 97 == 0 {
            b.truncate(next() as usize % len);
        }
        match read_through_memory(&b) {
            Ok(()) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "2000 mutations: {ok} read, {refused} refused, {:?}",
        started.elapsed()
    );
    assert!(refused > 0 && ok > 0);
}

/// An ESX Server sparse extent (`COWD`, which qemu-img cannot make) of
/// 2048 sectors with 4 KiB grains, grains 0, 3 and 100 allocated, named by
/// a vmfsSparse descriptor: read as QEMU reads it. The `COWD` file alone
/// is refused (QEMU opens it only through a descriptor).
#[test]
fn vmfs_sparse_cowd_extent_reads_like_qemu() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let cowd = d.path().join("c-sparse.vmdk");
    let mut b = vec![0u8; 64 * 512];
    b[..4].copy_from_slice(b"COWD");
    for (at, v) in [
        (4, 1u32),
        (8, 3),
        (12, 2048),
        (16, 8),
        (20, 4),
        (24, 1),
        (28, 64),
    ] {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    b[4 * 512..4 * 512 + 4].copy_from_slice(&5u32.to_le_bytes()); // GD[0] = GT at sector 5
    for (i, (grain, sector)) in [(0usize, 40u32), (3, 48), (100, 56)]
        .into_iter()
        .enumerate()
    {
        let gte = 5 * 512 + grain * 4;
        b[gte..gte + 4].copy_from_slice(&sector.to_le_bytes());
        let at = sector as usize * 512;
        b[at..at + 4096].copy_from_slice(&pattern(4096, i as u64 + 1));
    }
    std::fs::write(&cowd, &b).unwrap();
    let desc = d.path().join("c.vmdk");
    std::fs::write(
        &desc,
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"vmfsSparse\"\n\n# Extent description\nRW 2048 VMFSSPARSE \"c-sparse.vmdk\"\n",
    )
    .unwrap();
    let guard = BaseGuard::new(&[&cowd, &desc]);
    assert_reads_like_qemu(&desc, d.path());
    let raw = qemu_raw_bytes(&desc);
    assert_eq!(raw[3 * 4096..4 * 4096], pattern(4096, 2)[..]);
    let o = qfault_expect(["info", s(&cowd)], 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("COWD") && err.contains("vmfsSparse"), "{err}");
    guard.assert_unchanged();
}

/// VMware writes stream-optimized files with `gdOffset = GD_AT_END` in the
/// header and the real header in a footer before the end-of-stream marker
/// (qemu-img writes the directory's offset in the header and no footer):
/// made here from qemu-img's file, read through the footer as QEMU reads it.
#[test]
fn stream_optimized_footer_like_vmware() {
    if !tools() {
        return;
    }
    let d = tmpdir();
    let stream = make_vmdk(&sample_image(), d.path(), "streamOptimized", "");
    let mut b = std::fs::read(&stream).unwrap();
    assert_eq!(b.len() % 512, 0);
    let header = b[..512].to_vec();
    b[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut marker = vec![0u8; 512];
    marker[12..16].copy_from_slice(&3u32.to_le_bytes()); // MARKER_FOOTER
    b.extend_from_slice(&marker);
    b.extend_from_slice(&header);
    b.extend_from_slice(&[0u8; 512]); // end-of-stream marker
    let vmware = d.path().join("vmware.vmdk");
    std::fs::write(&vmware, &b).unwrap();
    assert_reads_like_qemu(&vmware, d.path());
    assert_eq!(qemu_raw_bytes(&vmware), qemu_raw_bytes(&stream));
    // Without a valid footer: refused (QEMU: "Invalid footer").
    let n = b.len();
    b[n - 1536 + 12] = 9;
    std::fs::write(&vmware, &b).unwrap();
    assert_refused(&vmware, "footer");
}

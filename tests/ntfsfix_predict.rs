//! `qfault::fs::predict_ntfsfix` against the real ntfsfix: volumes made by
//! mkntfs on partition files, damaged in the ways ntfsfix-facts.md lists,
//! then repaired (or not) by ntfsfix. The prediction must say what ntfsfix
//! did: nothing to the boot sector, which sector it copied (checked byte for
//! byte in the repaired sector 0), or that it gave up.

mod common;

use common::*;
use qfault::fs::ntfs::{NtfsfixOutcome, NtfsfixRule};
use qfault::fs::{predict_ntfsfix, NtfsBootSector};
use qfault::image::raw::RawImage;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// A fresh NTFS volume filling a partition file of `size` bytes.
fn volume(dir: &Path, name: &str, size: u64, extra: &[&str]) -> PathBuf {
    let p = dir.join(name);
    sparse_file(&p, size);
    let mut args = vec!["-q", "-Q", "-F"];
    args.extend_from_slice(extra);
    args.push(p.to_str().unwrap());
    sh("mkntfs", args);
    p
}

fn sector(path: &Path, lba: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; 512];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, lba * 512)
        .unwrap();
    b
}

/// Predicts, runs ntfsfix, and checks that both agree. Returns the outcome.
fn predict_and_fix(part: &Path) -> NtfsfixOutcome {
    let s0 = sector(part, 0);
    let pred = {
        let mut img = RawImage::open(part).unwrap();
        predict_ntfsfix(&s0, &mut img).unwrap()
    };
    // What the repaired sector 0 must be: the candidate with its count replaced.
    let expected_s0 = match pred.outcome {
        NtfsfixOutcome::Rewritten {
            lba,
            number_of_sectors,
            ..
        } => {
            let mut b = sector(part, lba);
            let mut bs = NtfsBootSector::parse(&b).unwrap();
            bs.number_of_sectors = number_of_sectors;
            bs.write_into(&mut b).unwrap();
            Some(b)
        }
        _ => None,
    };
    let out = run_any(&mut cmd("ntfsfix", [part.as_os_str()]));
    let text = String::from_utf8_lossy(&out.stdout);
    let ctx = format!("prediction: {pred:#?}\nntfsfix:\n{text}");
    match pred.outcome {
        NtfsfixOutcome::NoRepairNeeded => {
            assert!(!text.contains("Trying the alternate boot sector"), "{ctx}");
            assert!(out.status.success(), "{ctx}");
        }
        NtfsfixOutcome::Rewritten { .. } => {
            assert!(text.contains("The alternate bootsector is usable"), "{ctx}");
            assert!(out.status.success(), "{ctx}");
            assert_eq!(Some(sector(part, 0)), expected_s0, "{ctx}");
        }
        NtfsfixOutcome::Unrepairable => {
            assert!(text.contains("Trying the alternate boot sector"), "{ctx}");
            assert!(!text.contains("bootsector is usable"), "{ctx}");
            assert!(!out.status.success(), "{ctx}");
        }
    }
    pred.outcome
}

fn tools() -> bool {
    require_tools(&["mkntfs", "ntfsfix"])
}

#[test]
fn intact_volume_needs_no_boot_repair() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "ok.img", 16 * MIB, &[]);
    assert_eq!(predict_and_fix(&p), NtfsfixOutcome::NoRepairNeeded);
}

#[test]
fn zeroed_sector0_is_repaired_from_the_last_sector() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    for zero in [512usize, 4096] {
        let p = volume(dir.path(), &format!("z{zero}.img"), 16 * MIB, &[]);
        write_at(&p, 0, &vec![0u8; zero]);
        let got = predict_and_fix(&p);
        assert!(
            matches!(got, NtfsfixOutcome::Rewritten { rule: NtfsfixRule::LastSector, lba, .. } if lba == 16 * MIB / 512 - 1),
            "{got:?}"
        );
    }
}

#[test]
fn broken_mft_location_in_sector0_is_repaired() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "mft.img", 16 * MIB, &[]);
    write_at(&p, 48, &0u64.to_le_bytes()); // mft_lcn = 0
    assert!(matches!(
        predict_and_fix(&p),
        NtfsfixOutcome::Rewritten {
            rule: NtfsfixRule::LastSector,
            ..
        }
    ));
}

#[test]
fn grown_partition_with_zeroed_sector0_is_unrepairable() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "grown.img", 16 * MIB, &[]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(20 * MIB)
        .unwrap();
    // Keep the original sector 0 in a copy so the prediction can explain.
    let mut pristine = RawImage::open(&p).unwrap();
    let pred = predict_ntfsfix(&[0u8; 512], &mut pristine).unwrap();
    let why = pred.attempts[0].rejected.clone().unwrap();
    assert!(
        why.contains("LBA 40959")
            && why.contains("the volume ends at LBA 32767, so the partition was grown"),
        "{why}"
    );
    write_at(&p, 0, &[0u8; 512]);
    assert_eq!(predict_and_fix(&p), NtfsfixOutcome::Unrepairable);
}

#[test]
fn grown_partition_with_only_the_oem_id_broken_uses_the_shown_sector() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "oem.img", 16 * MIB, &[]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(20 * MIB)
        .unwrap();
    write_at(&p, 3, b"XXXX");
    assert_eq!(
        predict_and_fix(&p),
        NtfsfixOutcome::Rewritten {
            rule: NtfsfixRule::ShownSector,
            lba: 16 * MIB / 512 - 1,
            number_of_sectors: (16 * MIB / 512 - 1) as i64
        }
    );
}

#[test]
fn damaged_backup_and_zeroed_sector0_is_unrepairable() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "nobackup.img", 16 * MIB, &[]);
    write_at(&p, 16 * MIB - 512 + 3, b"XXXX");
    write_at(&p, 0, &[0u8; 512]);
    assert_eq!(predict_and_fix(&p), NtfsfixOutcome::Unrepairable);
}

#[test]
fn huge_sector_count_is_truncated() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "huge.img", 16 * MIB, &[]);
    write_at(&p, 16 * MIB - 512, &[0u8; 512]); // no backup
    write_at(&p, 40, &i64::MAX.to_le_bytes());
    assert_eq!(
        predict_and_fix(&p),
        NtfsfixOutcome::Rewritten {
            rule: NtfsfixRule::TruncatedCount,
            lba: 0,
            number_of_sectors: (16 * MIB / 512 - 1) as i64
        }
    );
}

#[test]
fn volume_with_4096_byte_sectors_is_unrepairable_on_a_file() {
    if !tools() {
        return;
    }
    let dir = tmpdir();
    let p = volume(dir.path(), "4k.img", 16 * MIB, &["-s", "4096"]);
    write_at(&p, 0, &[0u8; 512]);
    assert_eq!(predict_and_fix(&p), NtfsfixOutcome::Unrepairable);
}

//! Unit tests for the NTFS boot-sector model and the ntfsfix prediction,
//! one per branch, on synthetic boot sectors. The real ntfsfix is the
//! oracle in `tests/ntfsfix_predict.rs`.

use super::*;
use crate::image::MemDisk;

/// A partition of `sectors` 512-byte sectors formatted the way mkntfs does:
/// volume = partition − 1 sector, backup boot sector in the last sector.
fn boot(volume_sectors: i64) -> NtfsBootSector {
    NtfsBootSector {
        jump: [0xEB, 0x52, 0x90],
        oem_id: *OEM_ID,
        bytes_per_sector: 512,
        sectors_per_cluster_raw: 8,
        reserved_sectors: 0,
        fats: 0,
        root_entries: 0,
        sectors: 0,
        media_type: 0xF8,
        sectors_per_fat: 0,
        sectors_per_track: 63,
        heads: 255,
        hidden_sectors: 2048,
        large_sectors: 0,
        physical_drive: 0x80,
        current_head: 0,
        extended_boot_signature: 0x80,
        reserved2: 0,
        number_of_sectors: volume_sectors,
        mft_lcn: 4,
        mftmirr_lcn: 2,
        clusters_per_mft_record: -10,
        reserved0: [0; 3],
        clusters_per_index_record: 1,
        reserved1: [0; 3],
        volume_serial_number: 0x1234_5678_9ABC_DEF0,
        checksum: 0,
        end_of_sector_marker: END_OF_SECTOR_MARKER,
    }
}

fn bytes(bs: &NtfsBootSector) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    bs.write_into(&mut b).unwrap();
    b
}

/// A partition of `sectors` sectors: the boot sector at 0 and at `backup_lba`.
fn partition(sectors: u64, bs: &NtfsBootSector, backup_lba: Option<u64>) -> MemDisk {
    let mut d = vec![0u8; sectors as usize * 512];
    d[..512].copy_from_slice(&bytes(bs));
    if let Some(lba) = backup_lba {
        let o = lba as usize * 512;
        d[o..o + 512].copy_from_slice(&bytes(bs));
    }
    MemDisk(d)
}

#[test]
fn parse_and_write_round_trip() {
    let bs = boot(4095);
    let b = bytes(&bs);
    assert_eq!(NtfsBootSector::parse(&b).unwrap(), bs);
    assert!(NtfsBootSector::parse(&b[..511]).is_err());
    let p = bs.check().unwrap();
    assert_eq!(p.cluster_size, 4096);
    assert_eq!(p.mft_record_size, 1024);
    assert_eq!(p.nr_clusters, 4095 / 8);
}

#[test]
fn validity_check_order_and_reasons() {
    use NtfsBootDefect::*;
    let ok = boot(4095);
    type Edit = Box<dyn Fn(&mut NtfsBootSector)>;
    let cases: Vec<(Edit, NtfsBootDefect)> = vec![
        (Box::new(|b| b.oem_id = *b"MSWIN4.1"), OemId),
        (Box::new(|b| b.bytes_per_sector = 128), BytesPerSector(128)),
        (
            Box::new(|b| b.bytes_per_sector = 8192),
            BytesPerSector(8192),
        ),
        (
            Box::new(|b| b.sectors_per_cluster_raw = 3),
            SectorsPerCluster(3),
        ),
        (
            Box::new(|b| b.sectors_per_cluster_raw = 254),
            SectorsPerCluster(254),
        ),
        // 0xF3: 2^13 sectors of 512 bytes = 4 MiB.
        (
            Box::new(|b| b.sectors_per_cluster_raw = 0xF3),
            ClusterSize(4 << 20),
        ),
        (Box::new(|b| b.fats = 2), ReservedFieldsNotZero),
        (Box::new(|b| b.large_sectors = 1), ReservedFieldsNotZero),
        (
            Box::new(|b| b.clusters_per_mft_record = 3),
            ClustersPerMftRecord(3),
        ),
        (
            Box::new(|b| b.clusters_per_mft_record = -8),
            ClustersPerMftRecord(-8),
        ),
        (
            Box::new(|b| b.clusters_per_index_record = 0),
            ClustersPerIndexRecord(0),
        ),
        (Box::new(|b| b.mft_lcn = 0), MftLocation { mft: 0, mirr: 2 }),
        (
            Box::new(|b| b.mftmirr_lcn = 4),
            MftLocation { mft: 4, mirr: 4 },
        ),
    ];
    for (edit, want) in cases {
        let mut b = ok;
        edit(&mut b);
        assert_eq!(b.check_is_ntfs(), Err(want));
    }
    // The end marker is only warned about.
    let mut b = ok;
    b.end_of_sector_marker = 0;
    assert!(b.check().is_ok());
    // 0xF4: 2^12 sectors × 512 = exactly 2 MiB, accepted.
    b.sectors_per_cluster_raw = 0xF4;
    b.number_of_sectors = 1 << 30;
    assert_eq!(b.check().unwrap().cluster_size, 2 << 20);
}

#[test]
fn parse_checks() {
    use NtfsBootDefect::*;
    let mut b = boot(4095);
    b.number_of_sectors = 0;
    assert_eq!(b.check(), Err(ZeroSectors));
    b.number_of_sectors = -5;
    assert_eq!(b.check(), Err(LastSectorUnreachable(-5)));
    b.number_of_sectors = i64::MAX; // (n − 1) << 9 wraps negative
    assert_eq!(b.check(), Err(LastSectorUnreachable(i64::MAX)));
    b.number_of_sectors = 8 * 3; // 3 clusters; $MFT at 4
    assert!(matches!(
        b.check(),
        Err(MftBeyondVolume { clusters: 3, .. })
    ));
    // Code 0xF0 = 2^16 sectors per cluster wraps to 0 in ntfs-3g's u16:
    // it passes the validity check, then the volume has no clusters.
    let mut b = boot(4095);
    b.sectors_per_cluster_raw = 0xF0;
    assert_eq!(b.sectors_per_cluster(), 0);
    assert!(b.check_is_ntfs().is_ok());
    assert!(matches!(
        b.check_parse(),
        Err(MftBeyondVolume { clusters: 0, .. })
    ));
    // A byte count that is not a power of two fails at the cluster size.
    let mut b = boot(4095);
    b.bytes_per_sector = 768;
    assert_eq!(b.check(), Err(ClusterSizeNotPowerOfTwo(768 * 8)));
    // On a regular file a volume larger than the device still parses.
    let mut b = boot(4095);
    b.number_of_sectors = 1 << 40;
    assert!(b.check().is_ok());
}

#[test]
fn rule1_valid_sector0_needs_no_repair() {
    let bs = boot(4095);
    let mut part = partition(4096, &bs, Some(4095));
    let p = predict_ntfsfix(&bytes(&bs), &mut part).unwrap();
    assert_eq!(p.outcome, NtfsfixOutcome::NoRepairNeeded);
    assert!(p.repairable() && p.attempts.is_empty());
}

#[test]
fn rule3a_zeroed_sector0_backup_at_last_sector() {
    let bs = boot(4095);
    let mut part = partition(4096, &bs, Some(4095));
    let p = predict_ntfsfix(&[0; 512], &mut part).unwrap();
    assert_eq!(
        p.outcome,
        NtfsfixOutcome::Rewritten {
            rule: NtfsfixRule::LastSector,
            lba: 4095,
            number_of_sectors: 4095
        }
    );
    assert_eq!(p.sector0_defect.as_deref(), Some("the sector is all zeros"));
    assert_eq!((p.actual, p.shown), (4095, 0));
}

#[test]
fn rule3a_fails_when_partition_grown_and_sector0_zeroed() {
    // Formatted as 4096 sectors, then the partition grew to 6144.
    let bs = boot(4095);
    let mut part = partition(6144, &bs, Some(4095));
    let p = predict_ntfsfix(&[0; 512], &mut part).unwrap();
    assert_eq!(p.outcome, NtfsfixOutcome::Unrepairable);
    assert!(!p.repairable());
    assert_eq!(p.attempts.len(), 1);
    let why = p.attempts[0].rejected.as_deref().unwrap();
    assert!(
        why.contains("no usable backup boot sector at the partition's last sector (LBA 6143)")
            && why.contains(
                "the volume ends at LBA 4095, so the partition was grown after formatting"
            ),
        "{why}"
    );
    assert!(p.skipped[0].contains("number of sectors is 0"));
    assert!(p.summary().contains("cannot repair"), "{}", p.summary());
}

#[test]
fn rule3b_shown_sector_used_when_only_the_oem_id_is_broken() {
    let bs = boot(4095);
    let mut part = partition(6144, &bs, Some(4095));
    let mut s0 = bs;
    s0.oem_id = *b"XXXXXXXX";
    let p = predict_ntfsfix(&bytes(&s0), &mut part).unwrap();
    assert_eq!(p.sector0_defect.as_deref(), Some("OEM id is not NTFS"));
    assert_eq!(
        p.outcome,
        NtfsfixOutcome::Rewritten {
            rule: NtfsfixRule::ShownSector,
            lba: 4095,
            number_of_sectors: 4095
        }
    );
    assert_eq!(p.attempts.len(), 2);
}

#[test]
fn rule3b_rejects_a_bad_shown_sector() {
    let bs = boot(4095);
    let mut part = partition(6144, &bs, None);
    let mut s0 = bs;
    s0.oem_id = *b"XXXXXXXX";
    let p = predict_ntfsfix(&bytes(&s0), &mut part).unwrap();
    assert_eq!(p.outcome, NtfsfixOutcome::Unrepairable);
    let why = p.attempts[1].rejected.as_deref().unwrap();
    assert!(
        why.contains("LBA 4095") && why.contains("all zeros"),
        "{why}"
    );
}

#[test]
fn rule3c_truncated_count() {
    // Sector 0 claims a volume so large its last sector's offset wraps
    // negative; the last sector is empty; truncating the count rescues it.
    let mut s0 = boot(4095);
    s0.number_of_sectors = i64::MAX;
    let mut part = partition(4096, &boot(4095), None);
    let p = predict_ntfsfix(&bytes(&s0), &mut part).unwrap();
    assert_eq!(
        p.outcome,
        NtfsfixOutcome::Rewritten {
            rule: NtfsfixRule::TruncatedCount,
            lba: 0,
            number_of_sectors: 4095
        }
    );
    assert_eq!(p.attempts[0].rule, NtfsfixRule::LastSector);
}

#[test]
fn rule3c_fails_when_sector0_is_not_ntfs() {
    let mut s0 = boot(4095);
    s0.number_of_sectors = 1 << 20;
    s0.mft_lcn = 0;
    let mut part = partition(4096, &boot(4095), None);
    let p = predict_ntfsfix(&bytes(&s0), &mut part).unwrap();
    assert_eq!(p.outcome, NtfsfixOutcome::Unrepairable);
    let last = p.attempts.last().unwrap();
    assert_eq!(last.rule, NtfsfixRule::TruncatedCount);
    assert!(last
        .rejected
        .as_deref()
        .unwrap()
        .contains("truncated to 4095"));
}

#[test]
fn backup_with_4096_byte_sectors_is_rejected() {
    let mut bs = boot(511);
    bs.bytes_per_sector = 4096;
    bs.sectors_per_cluster_raw = 1;
    let mut part = partition(4096, &bs, Some(4095));
    let p = predict_ntfsfix(&[0; 512], &mut part).unwrap();
    assert_eq!(p.outcome, NtfsfixOutcome::Unrepairable);
    let why = p.attempts[0].rejected.as_deref().unwrap();
    assert!(
        why.contains("bytes per sector is 4096, the device's is 512"),
        "{why}"
    );
}

#[test]
fn backup_with_broken_oem_id_is_rejected() {
    let mut backup = boot(4095);
    backup.oem_id = *b"NTFS   X";
    let mut part = partition(4096, &boot(4095), None);
    let o = 4095 * 512;
    part.0[o..o + 512].copy_from_slice(&bytes(&backup));
    let p = predict_ntfsfix(&[0; 512], &mut part).unwrap();
    let why = p.attempts[0].rejected.as_deref().unwrap();
    assert!(why.ends_with("OEM id is not NTFS"), "{why}");
}

#[test]
fn tiny_partition_has_no_candidates() {
    let mut part = MemDisk(vec![0; 600]);
    let p = predict_ntfsfix(&[0; 512], &mut part).unwrap();
    assert_eq!(p.outcome, NtfsfixOutcome::Unrepairable);
    assert!(p.attempts.is_empty());
    assert!(p.skipped[0].contains("too few"));
    assert!(predict_ntfsfix(&[0; 100], &mut part).is_err());
}

/// An NTFS volume blkid recognises: boot sector, $MFT record 0 and
/// $Volume (record 3) with a $VOLUME_NAME attribute.
fn probe_volume(label: &str) -> MemDisk {
    let bs = boot(4095);
    let mut d = partition(4096, &bs, Some(4095)).0;
    let mft = 4 * 4096;
    d[mft..mft + 4].copy_from_slice(b"FILE");
    let rec = mft + 3 * 1024;
    d[rec..rec + 4].copy_from_slice(b"FILE");
    d[rec + 0x14..rec + 0x16].copy_from_slice(&0x38u16.to_le_bytes());
    d[rec + 0x1C..rec + 0x20].copy_from_slice(&1024u32.to_le_bytes());
    let a = rec + 0x38;
    let name: Vec<u8> = label.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    d[a..a + 4].copy_from_slice(&0x60u32.to_le_bytes());
    d[a + 4..a + 8].copy_from_slice(&(24 + name.len() as u32).next_multiple_of(8).to_le_bytes());
    d[a + 16..a + 20].copy_from_slice(&(name.len() as u32).to_le_bytes());
    d[a + 20..a + 22].copy_from_slice(&24u16.to_le_bytes());
    d[a + 24..a + 24 + name.len()].copy_from_slice(&name);
    MemDisk(d)
}

#[test]
fn probe_reports_label_serial_and_geometry() {
    let mut v = probe_volume("Système");
    let info = probe(&mut v).unwrap().unwrap();
    assert_eq!(info.fstype, "ntfs");
    assert_eq!(info.label.as_deref(), Some("Système"));
    assert_eq!(info.uuid.as_deref(), Some("123456789ABCDEF0"));
    let g = info.ntfs.unwrap();
    assert_eq!(
        (g.bytes_per_sector, g.sectors_per_cluster, g.cluster_size),
        (512, 8, 4096)
    );
    assert_eq!(
        (g.mft_lcn, g.mftmirr_lcn, g.number_of_sectors),
        (4, 2, 4095)
    );
    assert!(g.backup_boot_sector_ok);

    // Without the backup in the last sector.
    let o = 4095 * 512;
    v.0[o..o + 512].fill(0);
    let g = probe(&mut v).unwrap().unwrap().ntfs.unwrap();
    assert!(!g.backup_boot_sector_ok);
    assert_eq!(
        g.backup_boot_sector_problem.as_deref(),
        Some("the sector is all zeros")
    );

    // No FILE record at $MFT: blkid says "not NTFS".
    v.0[4 * 4096] = b'X';
    assert!(probe(&mut v).unwrap().is_none());
}

#[test]
fn probe_survives_hostile_attribute_lists() {
    let mut v = probe_volume("x");
    let rec = 4 * 4096 + 3 * 1024;
    // Attribute length 0, then huge value offsets: no panic, no label.
    v.0[rec + 0x38 + 4..rec + 0x38 + 8].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(probe(&mut v).unwrap().unwrap().label, None);
    v.0[rec + 0x38 + 4..rec + 0x38 + 8].copy_from_slice(&32u32.to_le_bytes());
    v.0[rec + 0x38 + 16..rec + 0x38 + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(probe(&mut v).unwrap().unwrap().label, None);
    v.0[rec + 0x14..rec + 0x16].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(probe(&mut v).unwrap().unwrap().label, None);
}

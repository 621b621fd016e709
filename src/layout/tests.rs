//! Unit tests for partition-table reading on synthetic disks (MemDisk).
//! Real-tool comparisons (sfdisk, sgdisk, blkid) live in `tests/inspect.rs`.

use super::*;
use crate::image::MemDisk;

const MIB: usize = 1 << 20;

fn put_record(sector: &mut [u8], slot: usize, boot: u8, ptype: u8, start: u32, sectors: u32) {
    let o = mbr::PARTITION_RECORDS_OFFSET + slot * 16;
    sector[o] = boot;
    sector[o + 4] = ptype;
    sector[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
    sector[o + 12..o + 16].copy_from_slice(&sectors.to_le_bytes());
    sector[510] = 0x55;
    sector[511] = 0xAA;
}

fn sector_mut(disk: &mut [u8], lba: u64) -> &mut [u8] {
    let o = lba as usize * 512;
    &mut disk[o..o + 512]
}

/// 8 MiB: p1 primary (bootable), p2 extended holding three logicals.
fn mbr_disk() -> Vec<u8> {
    let mut d = vec![0u8; 8 * MIB];
    put_record(sector_mut(&mut d, 0), 0, 0x80, 0x07, 2048, 2048);
    put_record(sector_mut(&mut d, 0), 1, 0, 0x05, 4096, 10240);
    // EBR chain: 4096 -> 6144 -> 8192; each logical starts 2048 sectors... 1 sector after its EBR.
    for (i, ebr) in [4096u32, 6144, 8192].iter().enumerate() {
        let s = sector_mut(&mut d, u64::from(*ebr));
        put_record(s, 0, 0, 0x83, 1, 2047);
        if i < 2 {
            put_record(s, 1, 0, 0x05, ebr + 2048 - 4096, 2048);
        }
    }
    d
}

#[test]
fn mbr_primaries_and_logicals_numbered_like_linux() {
    let mut disk = MemDisk(mbr_disk());
    let l = read_layout(&mut disk).unwrap();
    assert_eq!(l.table, TableKind::Dos);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let got: Vec<(u32, u64, u64)> = l
        .partitions
        .iter()
        .map(|p| (p.number, p.start / 512, p.size / 512))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2048, 2048),
            (2, 4096, 10240),
            (5, 4097, 2047),
            (6, 6145, 2047),
            (7, 8193, 2047)
        ]
    );
    assert!(l.partitions[0].bootable);
    assert!(l.partitions[1].is_extended());
    assert_eq!(l.partitions[2].mbr_role, Some(MbrRole::Logical));
    assert_eq!(l.partitions[0].ptype.code().unwrap(), "0x07");
}

#[test]
fn ebr_loop_stops_with_a_warning() {
    let mut d = mbr_disk();
    // The last EBR links back to the first.
    put_record(sector_mut(&mut d, 8192), 1, 0, 0x05, 0, 2048);
    put_record(sector_mut(&mut d, 8192), 1, 0, 0x0F, 2048, 2048);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert!(
        l.warnings.iter().any(|w| w.contains("loops back")),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.partitions.len(), 5);
}

#[test]
fn self_linked_ebr_terminates() {
    let mut d = vec![0u8; MIB];
    put_record(sector_mut(&mut d, 0), 0, 0, 0x85, 100, 1000);
    // EBR at 100 whose link points to itself (relative 0 is ignored, so use a two-cycle).
    put_record(sector_mut(&mut d, 100), 0, 0, 0x83, 1, 10);
    put_record(sector_mut(&mut d, 100), 1, 0, 0x05, 50, 100);
    put_record(sector_mut(&mut d, 150), 0, 0, 0x83, 1, 10);
    put_record(sector_mut(&mut d, 150), 1, 0, 0x05, 0x7FFF_FFFF, 100);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.partitions.len(), 3);
    assert!(l.warnings.iter().any(|w| w.contains("past the end")));
}

#[test]
fn mbr_overlap_and_past_end_are_warnings() {
    let mut d = vec![0u8; MIB];
    put_record(sector_mut(&mut d, 0), 0, 0, 0x83, 100, 1000);
    put_record(sector_mut(&mut d, 0), 1, 0, 0x83, 500, 1000);
    put_record(sector_mut(&mut d, 0), 2, 0, 0x83, 1800, u32::MAX);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.partitions.len(), 3);
    assert!(l.warnings.iter().any(|w| w.contains("overlap")));
    assert!(l
        .warnings
        .iter()
        .any(|w| w.contains("partition 3") && w.contains("past the end")));
}

#[test]
fn bad_boot_indicator_means_no_table() {
    let mut d = vec![0u8; MIB];
    put_record(sector_mut(&mut d, 0), 0, 0x12, 0x83, 100, 1000);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.table, TableKind::None);
    assert!(l.partitions.is_empty());
}

#[test]
fn tiny_and_empty_disks() {
    let l = read_layout(&mut MemDisk(vec![0; 100])).unwrap();
    assert_eq!(l.table, TableKind::None);
    assert!(!l.warnings.is_empty());
    let l = read_layout(&mut MemDisk(vec![0; MIB])).unwrap();
    assert_eq!(l.table, TableKind::None);
    assert!(l.partitions.is_empty());
}

#[test]
fn superfloppy_is_partition_zero() {
    let mut d = vec![0u8; 4 * MIB];
    // A bare ext2 superblock: magic 0xEF53 at 1024 + 0x38, no features.
    d[1024 + 0x38] = 0x53;
    d[1024 + 0x39] = 0xEF;
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.table, TableKind::None);
    assert_eq!(l.partitions.len(), 1);
    assert_eq!(l.partitions[0].number, 0);
    assert_eq!(l.partitions[0].size, 4 * MIB as u64);
    assert_eq!(l.partitions[0].ptype, PartitionType::WholeDisk);
}

// ---------- GPT ----------

struct GptSpec {
    ss: usize,
    sectors: u64,
    entries: u32,
    entry_size: u32,
    parts: Vec<(Guid, u64, u64, &'static str)>,
}

fn gpt_header(spec: &GptSpec, my: u64, alt: u64, entries_lba: u64, array_crc: u32) -> Vec<u8> {
    let mut h = vec![0u8; spec.ss];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my.to_le_bytes());
    h[32..40].copy_from_slice(&alt.to_le_bytes());
    let array_sectors =
        (u64::from(spec.entries) * u64::from(spec.entry_size)).div_ceil(spec.ss as u64);
    h[40..48].copy_from_slice(&(2 + array_sectors).to_le_bytes());
    h[48..56].copy_from_slice(&spec.sectors.saturating_sub(2 + array_sectors).to_le_bytes());
    h[56..72].copy_from_slice(&[0xAB; 16]);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&spec.entries.to_le_bytes());
    h[84..88].copy_from_slice(&spec.entry_size.to_le_bytes());
    h[88..92].copy_from_slice(&array_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

fn gpt_disk(spec: &GptSpec) -> Vec<u8> {
    let ss = spec.ss;
    let mut d = vec![0u8; spec.sectors as usize * ss];
    // Protective MBR.
    put_record(&mut d[..512], 0, 0, 0xEE, 1, u32::MAX);
    let mut array = vec![0u8; spec.entries as usize * spec.entry_size as usize];
    for (i, (t, first, last, name)) in spec.parts.iter().enumerate() {
        let e = &mut array[i * spec.entry_size as usize..];
        e[0..16].copy_from_slice(&t.0);
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        e[48..56].copy_from_slice(&4u64.to_le_bytes());
        for (j, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&array);
    let array_sectors = array.len().div_ceil(ss) as u64;
    let last = spec.sectors - 1;
    let backup_array = last - array_sectors;
    d[ss..2 * ss].copy_from_slice(&gpt_header(spec, 1, last, 2, crc));
    d[2 * ss..2 * ss + array.len()].copy_from_slice(&array);
    let o = backup_array as usize * ss;
    d[o..o + array.len()].copy_from_slice(&array);
    let o = last as usize * ss;
    d[o..o + ss].copy_from_slice(&gpt_header(spec, last, 1, backup_array, crc));
    d
}

fn spec(ss: usize) -> GptSpec {
    let basic: Guid = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7".parse().unwrap();
    let esp: Guid = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap();
    GptSpec {
        ss,
        sectors: (8 * MIB / ss) as u64,
        entries: 128,
        entry_size: 128,
        parts: vec![(esp, 256, 511, "EFI system"), (basic, 512, 1023, "Données")],
    }
}

#[test]
fn gpt_512_and_4096() {
    for ss in [512usize, 4096] {
        let mut disk = MemDisk(gpt_disk(&spec(ss)));
        let l = read_layout(&mut disk).unwrap();
        assert_eq!(l.table, TableKind::Gpt);
        assert_eq!(l.sector_size as usize, ss);
        assert!(l.warnings.is_empty(), "{ss}: {:?}", l.warnings);
        assert_eq!(l.partitions.len(), 2);
        let p = &l.partitions[1];
        assert_eq!(
            (p.number, p.start, p.size),
            (2, 512 * ss as u64, 512 * ss as u64)
        );
        assert_eq!(p.name.as_deref(), Some("Données"));
        assert_eq!(p.type_name, Some("Microsoft basic data"));
        assert!(p.bootable);
        assert_eq!(l.partitions[0].type_name, Some("EFI System"));
        assert!(!l.gpt.as_ref().unwrap().used_backup);
    }
}

#[test]
fn gpt_zeroed_primary_uses_backup() {
    for ss in [512usize, 4096] {
        let mut d = gpt_disk(&spec(ss));
        d[ss..2 * ss].fill(0);
        let l = read_layout(&mut MemDisk(d)).unwrap();
        let g = l.gpt.as_ref().unwrap();
        assert!(g.used_backup);
        assert_eq!(l.sector_size as usize, ss);
        assert_eq!(l.partitions.len(), 2);
        assert!(
            l.warnings.iter().any(|w| w.contains("using the backup")),
            "{:?}",
            l.warnings
        );
    }
}

#[test]
fn gpt_corrupt_array_uses_backup_and_bad_backup_is_reported() {
    let mut d = gpt_disk(&spec(512));
    d[2 * 512 + 40] ^= 1; // primary array
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert!(l.gpt.unwrap().used_backup);
    assert!(l.warnings[0].contains("CRC32"), "{:?}", l.warnings);

    let mut d = gpt_disk(&spec(512));
    let last = d.len() - 512;
    d[last + 30] ^= 1; // backup header
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert!(!l.gpt.unwrap().used_backup);
    assert!(l.warnings.iter().any(|w| w.contains("backup GPT header")));
}

#[test]
fn gpt_without_protective_mbr_is_ignored_with_a_warning() {
    let mut d = gpt_disk(&spec(512));
    d[..512].fill(0);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.table, TableKind::None);
    assert!(
        l.warnings[0].contains("no protective MBR"),
        "{:?}",
        l.warnings
    );
}

/// Both GPT headers gone: sfdisk falls back to the protective MBR read as
/// an MBR (one 0xEE partition), and so does qfault, with a warning.
#[test]
fn gpt_both_headers_bad_falls_back_to_the_mbr_view() {
    let mut d = gpt_disk(&spec(512));
    d[512..1024].fill(0);
    let last = d.len() - 512;
    d[last..].fill(0);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.table, TableKind::Dos);
    assert!(l.gpt.is_none());
    assert_eq!(l.partitions.len(), 1);
    assert_eq!(l.partitions[0].ptype, PartitionType::Mbr(0xEE));
    assert!(
        l.warnings[0].contains("no valid GPT header") && l.warnings[0].contains("PMBR"),
        "{:?}",
        l.warnings
    );
}

/// A GPT disk cut short (the util-linux gpt.img sample truncated): the
/// primary header's last usable LBA is past the end, the backup is gone;
/// sfdisk lists the protective partition clamped to the disk.
#[test]
fn gpt_cut_short_falls_back_and_clamps_the_protective_partition() {
    let mut d = gpt_disk(&spec(512));
    d.truncate(MIB);
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.table, TableKind::Dos);
    let p = &l.partitions[0];
    assert_eq!((p.number, p.start, p.size), (1, 512, (MIB - 512) as u64));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("listed as 2047 sectors")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn gpt_absurd_sizes_are_rejected_without_allocating() {
    for (entries, entry_size) in [
        (u32::MAX, 128),
        (128, 100),
        (128, 0),
        (0, 128),
        (1 << 20, 1 << 20),
    ] {
        let mut s = spec(512);
        s.entries = 128;
        let mut d = gpt_disk(&s);
        s.entries = entries;
        s.entry_size = entry_size;
        let h = gpt_header(&s, 1, s.sectors - 1, 2, 0);
        d[512..1024].copy_from_slice(&h);
        let l = read_layout(&mut MemDisk(d)).unwrap();
        assert!(l.gpt.unwrap().used_backup, "{entries} x {entry_size}");
    }
}

#[test]
fn gpt_entries_outside_disk_or_reversed_warn() {
    let mut s = spec(512);
    let basic: Guid = "0FC63DAF-8483-4772-8E79-3D69D8477DE4".parse().unwrap();
    s.parts.push((basic, 900, 2000, "overlaps"));
    s.parts.push((basic, 3000, 2999, "reversed"));
    s.parts.push((basic, 10000, 20000, "outside"));
    let l = read_layout(&mut MemDisk(gpt_disk(&s))).unwrap();
    assert_eq!(l.partitions.len(), 4);
    let w = l.warnings.join("\n");
    assert!(w.contains("overlap"), "{w}");
    assert!(w.contains("before it starts"), "{w}");
    assert!(w.contains("past the end"), "{w}");
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn hostile_random_disks_never_panic() {
    // Random disks with just enough structure to get past the first checks:
    // MBR signatures everywhere, a protective entry or extended entries, GPT
    // and filesystem magics at their offsets.
    for seed in 0..200u64 {
        let mut d = noise(256 * 1024, seed);
        for lba in 0..d.len() / 512 {
            d[lba * 512 + 510] = 0x55;
            d[lba * 512 + 511] = 0xAA;
            for slot in 0..4 {
                let o = lba * 512 + 446 + slot * 16;
                d[o] = if (seed + slot as u64) % 2 == 0 {
                    0
                } else {
                    0x80
                };
                if seed % 3 == 0 {
                    d[o + 4] = [0x05, 0x0F, 0x85, 0x83][(seed as usize + slot) % 4];
                    d[o + 8..o + 12]
                        .copy_from_slice(&((seed as u32 * 7 + slot as u32) % 600).to_le_bytes());
                }
            }
        }
        match seed % 5 {
            0 => d[446 + 4] = 0xEE,
            1 => {
                d[446 + 4] = 0xEE;
                d[512..520].copy_from_slice(b"EFI PART");
                d[512 + 12..512 + 16].copy_from_slice(&92u32.to_le_bytes());
            }
            2 => d[3..11].copy_from_slice(b"NTFS    "),
            3 => d[0x36..0x3E].copy_from_slice(b"FAT16   "),
            _ => d[3..11].copy_from_slice(b"EXFAT   "),
        }
        let mut disk = MemDisk(d);
        if let Ok(l) = read_layout(&mut disk) {
            for p in &l.partitions {
                if let Ok(mut w) = crate::image::Window::new(&mut disk, p.start, p.size) {
                    let _ = crate::fs::probe(&mut w);
                }
            }
        }
    }
}

// ---------- what the tools write back (gpt_tools) ----------

mod tools {
    use super::*;
    use crate::layout::gpt_tools::{protective_mbr, GptState, PmbrStyle};

    fn with_pmbr(mut d: Vec<u8>, style: PmbrStyle, ss: usize) -> Vec<u8> {
        let sectors = (d.len() / ss) as u64;
        d[..512].copy_from_slice(&protective_mbr(style, sectors));
        d
    }

    fn rebuilt_after(d: &[u8], zero: std::ops::Range<usize>) -> crate::layout::gpt_tools::GptImage {
        let mut damaged = d.to_vec();
        damaged[zero].fill(0);
        let st = GptState::read(&mut MemDisk(damaged)).unwrap().unwrap();
        st.rebuilt(|c| crate::layout::gpt_tools::maker_pmbr_of(c, st.sector_size))
            .unwrap()
    }

    #[test]
    fn a_lost_header_or_pmbr_is_rebuilt_from_what_survives() {
        for ss in [512usize, 4096] {
            let d = with_pmbr(gpt_disk(&spec(ss)), PmbrStyle::Sgdisk, ss);
            let last = d.len() - ss;
            for zero in [ss..2 * ss, last..d.len(), 0..512] {
                let img = rebuilt_after(&d, zero.clone());
                for (off, bytes) in img.regions() {
                    let off = off as usize;
                    assert_eq!(&d[off..off + bytes.len()], bytes, "{ss}: {zero:?} at {off}");
                }
                assert_eq!(img.standard_layout(), Ok(()));
                assert!(img.made_by_sgdisk());
                let e = img.sgdisk_e();
                assert_eq!((e.exit_code, e.identical), (0, true), "{ss} {zero:?}");
                assert!(!img.libfdisk_restores());
            }
        }
    }

    #[test]
    fn libfdisk_layout_needs_sfdisk_and_sgdisk_refuses_a_full_disk() {
        let ss = 512;
        let mut s = spec(ss);
        // libfdisk: first usable LBA 2048 (1 MiB), last partition up to the last usable.
        let sectors = s.sectors;
        s.parts[1].2 = sectors - 34;
        let mut d = gpt_disk(&s);
        for (lba, first) in [(1usize, 2048u64), (sectors as usize - 1, 2048)] {
            let h = &mut d[lba * ss..(lba + 1) * ss];
            h[40..48].copy_from_slice(&first.to_le_bytes());
            h[16..20].fill(0);
            let crc = crc32fast::hash(&h[..92]);
            h[16..20].copy_from_slice(&crc.to_le_bytes());
        }
        let d = with_pmbr(d, PmbrStyle::Libfdisk, ss);
        let img = rebuilt_after(&d, ss..2 * ss);
        assert!(!img.made_by_sgdisk());
        assert!(img.libfdisk_restores());
        let e = img.sgdisk_e();
        assert_eq!(e.exit_code, 4);
        assert_eq!(e.overlap, (sectors - 34) - (sectors - 2048));
        // Without its protective MBR, the one libfdisk writes is assumed.
        let img = rebuilt_after(&d, 0..512);
        assert_eq!(img.mbr, protective_mbr(PmbrStyle::Libfdisk, sectors));
    }

    #[test]
    fn relocated_headers_check_out() {
        let d = with_pmbr(gpt_disk(&spec(512)), PmbrStyle::Sgdisk, 512);
        let img = rebuilt_after(&d, 512..1024);
        let h = crate::layout::gpt::parse_header(&img.primary.sector, 1).unwrap();
        assert_eq!(h, img.primary.header);
    }
}

#[test]
fn mbr_for_4096_byte_sectors_is_read_in_4096_byte_units() {
    // 16 MiB; partition 1 at LBA 256 (1 MiB) of 1024 4K sectors holds a swap
    // signature, partition 2 an extended partition whose EBR (at 4K LBA 1536)
    // links one logical with a swap signature too.
    let ss = 4096usize;
    let mut d = vec![0u8; 16 * MIB];
    put_record(&mut d[..512], 0, 0, 0x82, 256, 1024);
    put_record(&mut d[..512], 1, 0, 0x05, 1536, 1024);
    let ebr = 1536 * ss;
    put_record(&mut d[ebr..ebr + 512], 0, 0, 0x82, 16, 512);
    for start in [256 * ss, (1536 + 16) * ss] {
        d[start + 4086..start + 4096].copy_from_slice(b"SWAPSPACE2");
    }
    let l = read_layout(&mut MemDisk(d.clone())).unwrap();
    assert_eq!(l.table, TableKind::Dos);
    assert_eq!(l.sector_size, 4096);
    let got: Vec<(u32, u64, u64)> = l
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.size))
        .collect();
    assert_eq!(
        got,
        [
            (1, MIB as u64, 4 * MIB as u64),
            (2, 6 * MIB as u64, 4 * MIB as u64),
            (5, (1552 * ss) as u64, 2 * MIB as u64)
        ]
    );
    assert!(
        l.warnings.iter().any(|w| w.contains("4096-byte sectors")),
        "{:?}",
        l.warnings
    );

    // The same table over 512-byte-sector filesystems stays 512.
    let mut d = vec![0u8; 16 * MIB];
    put_record(&mut d[..512], 0, 0, 0x82, 2048, 4096);
    d[2048 * 512 + 4086..2048 * 512 + 4096].copy_from_slice(b"SWAPSPACE2");
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.sector_size, 512);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // Nothing recognised anywhere: 512, as sfdisk assumes for a file.
    let l = read_layout(&mut MemDisk(mbr_disk())).unwrap();
    assert_eq!(l.sector_size, 512);
}

#[test]
fn filesystem_at_offset_0_beside_a_table_is_partition_0() {
    // A hybrid image: an MBR in the system area of an ISO 9660.
    let mut d = mbr_disk();
    let pvd = 0x8000;
    d[pvd] = 1;
    d[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    d[pvd + 6] = 1;
    d[pvd + 40..pvd + 72].copy_from_slice(&[b' '; 32]);
    d[pvd + 40..pvd + 43].copy_from_slice(b"HYB");
    let end = pvd + 0x800;
    d[end] = 0xFF;
    d[end + 1..end + 6].copy_from_slice(b"CD001");
    d[end + 6] = 1;
    let l = read_layout(&mut MemDisk(d)).unwrap();
    assert_eq!(l.table, TableKind::Dos);
    let numbers: Vec<u32> = l.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [0, 1, 2, 5, 6, 7]);
    assert_eq!(l.partitions[0].size, 8 * MIB as u64);
    assert_eq!(l.partitions[0].ptype, PartitionType::WholeDisk);
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("iso9660 filesystem starts at offset 0")),
        "{:?}",
        l.warnings
    );
    assert!(
        !l.warnings.iter().any(|w| w.contains("overlap")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn partition_probes_made_guessing_the_sector_size_are_kept() {
    // A 512-byte-sector MBR over a swap partition: guessing the sector size
    // probes it; the probe is kept, equal to probing the partition anew.
    let mut d = vec![0u8; 16 * MIB];
    put_record(&mut d[..512], 0, 0, 0x82, 2048, 4096);
    let at = 2048 * 512;
    d[at + 4086..at + 4096].copy_from_slice(b"SWAPSPACE2");
    d[at + 1024..at + 1028].copy_from_slice(&1u32.to_le_bytes()); // version
    d[at + 1028..at + 1032].copy_from_slice(&511u32.to_le_bytes()); // last page
    let mut disk = MemDisk(d);
    let mut probed = Probed::default();
    let l = read_layout_probed(&mut disk, &mut probed).unwrap();
    assert_eq!(
        format!("{l:?}"),
        format!("{:?}", read_layout(&mut disk).unwrap())
    );
    let p = &l.partitions[0];
    let kept = probed.get(p.start, p.size).expect("probed while guessing");
    let mut w = crate::image::Window::new(&mut disk, p.start, p.size).unwrap();
    assert_eq!(kept, &crate::fs::probe_all(&mut w).unwrap());
    assert_eq!(kept.types(), ["swap"]);
    // The partition list a recipe sees is built from it, unchanged.
    let found = crate::recipe::select::partitions(&mut disk).unwrap();
    assert_eq!(found[0].fstype(), Some("swap"));
    assert_eq!(found[0].partition, *p);
}

//! Unit tests for the blkid-style probes on synthetic superblocks. The
//! real mkfs tools and `blkid -p` are the oracles in `tests/inspect.rs`.

use super::*;
use crate::image::MemDisk;

const MIB: usize = 1 << 20;

fn disk() -> Vec<u8> {
    vec![0u8; 4 * MIB]
}

fn probe_vec(d: Vec<u8>) -> Option<FsInfo> {
    probe(&mut MemDisk(d)).unwrap()
}

#[test]
fn nothing_in_zeros_or_tiny_disks() {
    assert_eq!(probe_vec(disk()), None);
    assert_eq!(probe_vec(vec![]), None);
    assert_eq!(probe_vec(vec![0xFF; 700]), None);
}

fn ext(compat: u32, incompat: u32, ro: u32, flags: u32) -> Vec<u8> {
    let mut d = disk();
    let sb = 1024;
    d[sb + 0x38..sb + 0x3A].copy_from_slice(&[0x53, 0xEF]);
    d[sb + 0x4C] = 1;
    d[sb + 0x5C..sb + 0x60].copy_from_slice(&compat.to_le_bytes());
    d[sb + 0x60..sb + 0x64].copy_from_slice(&incompat.to_le_bytes());
    d[sb + 0x64..sb + 0x68].copy_from_slice(&ro.to_le_bytes());
    d[sb + 0x68..sb + 0x78].copy_from_slice(&[0x11; 16]);
    d[sb + 0x78..sb + 0x7E].copy_from_slice(b"rootfs");
    d[sb + 0x160..sb + 0x164].copy_from_slice(&flags.to_le_bytes());
    d
}

#[test]
fn ext_family_by_features() {
    let t = |c, i, r, f| probe_vec(ext(c, i, r, f)).map(|x| x.fstype);
    assert_eq!(t(0, 0x2, 0x1, 0), Some("ext2"));
    assert_eq!(t(0x4, 0x2, 0x1, 0), Some("ext3"));
    assert_eq!(t(0x4, 0x2 | 0x40 | 0x200, 0x1, 0), Some("ext4"));
    assert_eq!(t(0x4, 0x2 | 0x40, 0x1, 0x4), Some("ext4dev"));
    assert_eq!(t(0, 0x8, 0, 0), Some("jbd"));
    let i = probe_vec(ext(0x4, 0x2, 0x1, 0)).unwrap();
    assert_eq!(i.label.as_deref(), Some("rootfs"));
    assert_eq!(
        i.uuid.as_deref(),
        Some("11111111-1111-1111-1111-111111111111")
    );
    assert_eq!(i.version.as_deref(), Some("1.0"));
}

#[test]
fn xfs_needs_sane_superblock() {
    let mut d = disk();
    d[0..4].copy_from_slice(b"XFSB");
    d[4..8].copy_from_slice(&4096u32.to_be_bytes());
    d[8..16].copy_from_slice(&1000u64.to_be_bytes());
    d[32..48].copy_from_slice(&[0x22; 16]);
    d[80..84].copy_from_slice(&1u32.to_be_bytes());
    d[84..88].copy_from_slice(&250u32.to_be_bytes());
    d[88..92].copy_from_slice(&4u32.to_be_bytes());
    d[102..104].copy_from_slice(&512u16.to_be_bytes());
    d[104..106].copy_from_slice(&512u16.to_be_bytes());
    d[108..112].copy_from_slice(b"home");
    d[120..124].copy_from_slice(&[12, 9, 9, 3]);
    let i = probe_vec(d.clone()).unwrap();
    assert_eq!((i.fstype, i.label.as_deref()), ("xfs", Some("home")));
    assert_eq!(
        i.uuid.as_deref(),
        Some("22222222-2222-2222-2222-222222222222")
    );
    d[88..92].copy_from_slice(&0u32.to_be_bytes()); // agcount 0
    assert_eq!(probe_vec(d), None);
}

#[test]
fn btrfs_label_and_fsid() {
    let mut d = disk();
    let sb = 64 * 1024;
    d[sb + 0x40..sb + 0x48].copy_from_slice(b"_BHRfS_M");
    d[sb + 0x20..sb + 0x30].copy_from_slice(&[0x33; 16]);
    d[sb + 0x12B..sb + 0x12F].copy_from_slice(b"pool");
    let i = probe_vec(d).unwrap();
    assert_eq!((i.fstype, i.label.as_deref()), ("btrfs", Some("pool")));
    assert_eq!(
        i.uuid.as_deref(),
        Some("33333333-3333-3333-3333-333333333333")
    );
}

#[test]
fn swap_v1_and_v0() {
    let mut d = disk();
    d[4096 - 10..4096].copy_from_slice(b"SWAPSPACE2");
    d[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    d[1028..1032].copy_from_slice(&1000u32.to_le_bytes());
    d[1036..1052].copy_from_slice(&[0x44; 16]);
    d[1052..1056].copy_from_slice(b"swp1");
    let i = probe_vec(d.clone()).unwrap();
    assert_eq!((i.fstype, i.label.as_deref()), ("swap", Some("swp1")));
    assert_eq!(
        i.uuid.as_deref(),
        Some("44444444-4444-4444-4444-444444444444")
    );
    d[1028..1032].fill(0); // lastpage 0
    assert_eq!(probe_vec(d.clone()), None);
    d[4096 - 10..4096].copy_from_slice(b"SWAP-SPACE");
    let i = probe_vec(d).unwrap();
    assert_eq!((i.fstype, i.uuid), ("swap", None));
}

#[test]
fn luks_versions_and_secondary_header() {
    let mut d = disk();
    d[0..6].copy_from_slice(b"LUKS\xba\xbe");
    d[6..8].copy_from_slice(&2u16.to_be_bytes());
    d[24..30].copy_from_slice(b"secret");
    let uuid = b"0b5b3c5c-7d1e-4a6e-9d4e-2f6a1e0b7c11";
    d[168..168 + uuid.len()].copy_from_slice(uuid);
    let i = probe_vec(d.clone()).unwrap();
    assert_eq!(
        (i.fstype, i.label.as_deref()),
        ("crypto_LUKS", Some("secret"))
    );
    assert_eq!(i.uuid.as_deref(), Some(std::str::from_utf8(uuid).unwrap()));
    d[6..8].copy_from_slice(&1u16.to_be_bytes());
    assert_eq!(probe_vec(d.clone()).unwrap().label, None);
    // Primary gone, secondary at 16 KiB.
    let h: Vec<u8> = d[..512].to_vec();
    d[..512].fill(0);
    d[0x4000..0x4200].copy_from_slice(&h);
    d[0x4000..0x4006].copy_from_slice(b"SKUL\xba\xbe");
    assert_eq!(probe_vec(d).unwrap().fstype, "crypto_LUKS");
}

#[test]
fn lvm2_label_with_crc() {
    let mut d = disk();
    let l = 512; // sector 1
    d[l..l + 8].copy_from_slice(b"LABELONE");
    d[l + 8..l + 16].copy_from_slice(&1u64.to_le_bytes());
    d[l + 20..l + 24].copy_from_slice(&32u32.to_le_bytes());
    d[l + 24..l + 32].copy_from_slice(b"LVM2 001");
    d[l + 32..l + 64].copy_from_slice(b"abcdefghijklmnopqrstuvwxyz012345");
    let crc = lvm::tests_crc(&d[l + 20..l + 512]);
    d[l + 16..l + 20].copy_from_slice(&crc.to_le_bytes());
    let i = probe_vec(d.clone()).unwrap();
    assert_eq!(i.fstype, "LVM2_member");
    assert_eq!(
        i.uuid.as_deref(),
        Some("abcdef-ghij-klmn-opqr-stuv-wxyz-012345")
    );
    d[l + 100] ^= 1; // CRC now wrong
    assert_eq!(probe_vec(d), None);
}

#[test]
fn iso9660_pvd_and_joliet() {
    let mut d = disk();
    let pvd = 0x8000;
    d[pvd] = 1;
    d[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    d[pvd + 40..pvd + 72].copy_from_slice(b"MY_DISC_LABEL_THAT_IS_LONG      ");
    d[pvd + 830..pvd + 846].copy_from_slice(b"2024010203040500");
    let term = 0x8800;
    d[term] = 0xFF;
    let i = probe_vec(d.clone()).unwrap();
    assert_eq!(i.fstype, "iso9660");
    assert_eq!(i.label.as_deref(), Some("MY_DISC_LABEL_THAT_IS_LONG"));
    assert_eq!(i.uuid.as_deref(), Some("2024-01-02-03-04-05-00"));
    // Joliet with a 16-character prefix in UTF-16BE: merged with the ASCII name.
    d[term] = 2;
    d[term + 1..term + 6].copy_from_slice(b"CD001");
    d[term + 88..term + 91].copy_from_slice(b"%/E");
    let j: Vec<u8> = "My Disc Label Th"
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    d[term + 40..term + 72].copy_from_slice(&j);
    d[0x9000] = 0xFF;
    let i = probe_vec(d).unwrap();
    assert_eq!(i.label.as_deref(), Some("My Disc Label ThAT_IS_LONG"));
    assert_eq!(i.version.as_deref(), Some("Joliet Extension"));
}

#[test]
fn exfat_label_and_serial() {
    let mut d = disk();
    d[3..11].copy_from_slice(b"EXFAT   ");
    d[80..84].copy_from_slice(&128u32.to_le_bytes()); // FAT at block 128
    d[88..92].copy_from_slice(&256u32.to_le_bytes()); // heap at block 256
    d[96..100].copy_from_slice(&4u32.to_le_bytes()); // root dir cluster 4
    d[100..104].copy_from_slice(&[0x78, 0x56, 0x34, 0x12]);
    d[104] = 0;
    d[105] = 1;
    d[108] = 9; // 512-byte blocks
    d[109] = 3; // 8 blocks per cluster
    let root = (256 + (4 - 2) * 8) * 512;
    d[root] = 0x81; // bitmap entry, skipped
    d[root + 32] = 0x83;
    d[root + 33] = 3;
    let name: Vec<u8> = "USB".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    d[root + 34..root + 40].copy_from_slice(&name);
    let i = probe_vec(d).unwrap();
    assert_eq!((i.fstype, i.label.as_deref()), ("exfat", Some("USB")));
    assert_eq!(i.uuid.as_deref(), Some("1234-5678"));
    assert_eq!(i.version.as_deref(), Some("1.0"));
}

fn fat16() -> Vec<u8> {
    let mut d = disk();
    d[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    d[3..11].copy_from_slice(b"mkfs.fat");
    d[11..13].copy_from_slice(&512u16.to_le_bytes());
    d[13] = 4;
    d[14..16].copy_from_slice(&4u16.to_le_bytes());
    d[16] = 2;
    d[17..19].copy_from_slice(&512u16.to_le_bytes());
    d[19..21].copy_from_slice(&8192u16.to_le_bytes());
    d[21] = 0xF8;
    d[22..24].copy_from_slice(&8u16.to_le_bytes());
    d[0x26] = 0x29;
    d[0x27..0x2B].copy_from_slice(&[0xEF, 0xBE, 0xAD, 0xDE]);
    d[0x2B..0x36].copy_from_slice(b"BOOTLABEL  ");
    d[0x36..0x3E].copy_from_slice(b"FAT16   ");
    d[510] = 0x55;
    d[511] = 0xAA;
    d
}

#[test]
fn fat_label_from_root_directory_only() {
    let mut d = fat16();
    let i = probe_vec(d.clone()).unwrap();
    assert_eq!(i.fstype, "vfat");
    assert_eq!(
        i.label, None,
        "blkid 2.38 takes LABEL from the root directory only"
    );
    assert_eq!(i.uuid.as_deref(), Some("DEAD-BEEF"));
    assert_eq!(i.version.as_deref(), Some("FAT12"));
    let root = (4 + 2 * 8) * 512;
    d[root..root + 11].copy_from_slice(b"DELETED    ");
    d[root] = 0xE5;
    d[root + 32..root + 43].copy_from_slice(b"MYDISK     ");
    d[root + 32 + 11] = 0x08;
    assert_eq!(
        probe_vec(d.clone()).unwrap().label.as_deref(),
        Some("MYDISK")
    );
    d[16] = 0; // no FATs: not FAT
    assert_eq!(probe_vec(d), None);
}

#[test]
fn boot_sector_filesystems_are_not_mbrs() {
    let mut d = MemDisk(fat16());
    assert!(is_boot_sector_filesystem(&mut d).unwrap());
    assert!(!is_boot_sector_filesystem(&mut MemDisk(disk())).unwrap());
}

/// UFS2 (superblock at 64 KiB, little-endian): version, label and the
/// 16-hex-digit UUID from `fs_id`; big-endian UFS1 at 8 KiB too.
#[test]
fn ufs_both_byte_orders() {
    let mut d = disk();
    let sb = 64 * 1024;
    d[sb + 1372..sb + 1376].copy_from_slice(&0x1954_0119u32.to_le_bytes());
    d[sb + 680..sb + 685].copy_from_slice(b"UFS2V");
    d[sb + 144..sb + 148].copy_from_slice(&0x41eb_0093u32.to_le_bytes());
    d[sb + 148..sb + 152].copy_from_slice(&7u32.to_le_bytes());
    let i = probe_vec(d).unwrap();
    assert_eq!(
        (
            i.fstype,
            i.version.as_deref(),
            i.label.as_deref(),
            i.uuid.as_deref()
        ),
        ("ufs", Some("2"), Some("UFS2V"), Some("41eb009300000007"))
    );
    let mut d = disk();
    let sb = 8 * 1024;
    d[sb + 1372..sb + 1376].copy_from_slice(&0x0001_1954u32.to_be_bytes());
    let i = probe_vec(d).unwrap();
    assert_eq!(
        (i.fstype, i.version.as_deref(), i.uuid),
        ("ufs", Some("1"), None)
    );
}

/// BitLocker (Windows 7 header, metadata at 64 KiB): a crypto container
/// whose VERSION is the metadata version; without the metadata header it
/// is nothing.
#[test]
fn bitlocker_needs_its_metadata_header() {
    let mut d = disk();
    d[..11].copy_from_slice(b"\xeb\x58\x90-FVE-FS-");
    d[176..184].copy_from_slice(&65536u64.to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xAA;
    assert_eq!(probe_vec(d.clone()), None);
    d[65536..65544].copy_from_slice(b"-FVE-FS-");
    d[65546..65548].copy_from_slice(&2u16.to_le_bytes());
    let i = probe_vec(d).unwrap();
    assert_eq!(
        (i.fstype, i.version.as_deref(), i.uuid),
        ("BitLocker", Some("2"), None)
    );
}

/// Two intolerant signatures are ambivalent (blkid names neither); UDF
/// and ISO 9660 are tolerant; on a tiny device the first one wins.
#[test]
fn ambivalence_follows_libblkid_safeprobe() {
    let mut d = ext(0, 0, 0, 0);
    let sb = 64 * 1024;
    d[sb + 1372..sb + 1376].copy_from_slice(&0x0001_1954u32.to_le_bytes());
    let all = probe_all(&mut MemDisk(d.clone())).unwrap();
    assert!(all.ambivalent());
    assert_eq!(all.types(), ["ext2", "ufs"]);
    assert_eq!(probe_vec(d.clone()), None);
    d.truncate(1440 * 1024);
    let all = probe_all(&mut MemDisk(d)).unwrap();
    assert!(!all.ambivalent());
    assert_eq!(all.types(), ["ext2"]);
    let tolerant = Signatures {
        found: vec![FsInfo::new("udf"), FsInfo::new("iso9660")],
    };
    assert!(!tolerant.ambivalent());
    assert_eq!(tolerant.blkid().map(|f| f.fstype), Some("udf"));
}

use super::*;

/// A minimal metadata_csum superblock.
fn sb_bytes() -> Vec<u8> {
    let mut raw = vec![0u8; SUPERBLOCK_SIZE];
    raw[S_MAGIC..S_MAGIC + 2].copy_from_slice(&EXT4_SUPER_MAGIC.to_le_bytes());
    raw[S_BLOCKS_COUNT_LO..S_BLOCKS_COUNT_LO + 4].copy_from_slice(&32768u32.to_le_bytes());
    raw[S_FIRST_DATA_BLOCK..S_FIRST_DATA_BLOCK + 4].copy_from_slice(&1u32.to_le_bytes());
    raw[S_BLOCKS_PER_GROUP..S_BLOCKS_PER_GROUP + 4].copy_from_slice(&8192u32.to_le_bytes());
    raw[S_FEATURE_RO_COMPAT..S_FEATURE_RO_COMPAT + 4]
        .copy_from_slice(&RO_COMPAT_METADATA_CSUM.to_le_bytes());
    raw[S_CHECKSUM_TYPE] = 1;
    raw
}

#[test]
fn crc32c_is_the_kernels_raw_castagnoli() {
    // crc32c("123456789") = 0xE3069283 (standard, inverted in and out).
    assert_eq!(!ext4_chksum(!0, b"123456789"), 0xE306_9283);
}

#[test]
fn geometry_and_resealing() {
    let sb = Superblock::parse(&sb_bytes()).unwrap();
    assert_eq!(sb.block_size(), 1024);
    assert_eq!(sb.group_count(), 4);
    assert_eq!(sb.gdt_offset(), 2048);
    assert!(!sb.checksum_ok());
    let sealed = sb.with_u16(S_STATE, STATE_VALID_FS);
    assert!(sealed.checksum_ok());
    assert_eq!(sealed.state(), STATE_VALID_FS);
    assert!(Superblock::parse(&[0u8; 1024]).is_none());
    assert!(Superblock::parse(&[0u8; 10]).is_none());
}

#[test]
fn backup_search_follows_e2fsck() {
    let sb = sb_bytes();
    let mut disk = vec![0u8; 9 << 20];
    let off = 8193 * 1024;
    disk[off..off + 1024].copy_from_slice(&sb);
    let mut r = crate::image::MemDisk(disk);
    let (at, found) = Superblock::e2fsck_backup(&mut r).unwrap().unwrap();
    assert_eq!(at, off as u64);
    assert_eq!(found.block_size(), 1024);
    let mut empty = crate::image::MemDisk(vec![0u8; 4096]);
    assert!(Superblock::e2fsck_backup(&mut empty).unwrap().is_none());
}

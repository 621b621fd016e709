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

/// The non-zero fields of a real superblock: `mkfs.ext4` 1.47.0 on an
/// 8 MiB file with `-b 1024 -U 01234567-89ab-cdef-0123-456789abcdef -E
/// hash_seed=fedcba98-7654-3210-fedc-ba9876543210 -L qfault` and
/// `E2FSPROGS_FAKE_TIME=1700000000` (metadata_csum, 64bit, flex_bg, ...).
/// Every other byte is zero.
const MKFS_SUPERBLOCK: &[(usize, &[u8])] = &[
    (0x000, &[0, 8, 0, 0]),       // s_inodes_count = 2048
    (0x004, &[0, 32, 0, 0]),      // s_blocks_count_lo = 8192
    (0x008, &[153, 1, 0, 0]),     // s_r_blocks_count_lo = 409
    (0x00c, &[174, 25, 0, 0]),    // s_free_blocks_count_lo = 6574
    (0x010, &[245, 7, 0, 0]),     // s_free_inodes_count = 2037
    (0x014, &[1, 0, 0, 0]),       // s_first_data_block = 1
    (0x020, &[0, 32, 0, 0]),      // s_blocks_per_group = 8192
    (0x024, &[0, 32, 0, 0]),      // s_clusters_per_group = 8192
    (0x028, &[0, 8, 0, 0]),       // s_inodes_per_group = 2048
    (0x030, &[0, 241, 83, 101]),  // s_wtime = 1700000000
    (0x036, &[255, 255]),         // s_max_mnt_count = -1
    (0x038, &[0x53, 0xef]),       // s_magic = 0xEF53
    (0x03a, &[1, 0]),             // s_state = VALID_FS
    (0x03c, &[1, 0]),             // s_errors = continue
    (0x040, &[0, 241, 83, 101]),  // s_lastcheck = 1700000000
    (0x04c, &[1, 0, 0, 0]),       // s_rev_level = 1 (dynamic)
    (0x054, &[11, 0, 0, 0]),      // s_first_ino = 11
    (0x058, &[0, 1]),             // s_inode_size = 256
    (0x05c, &[0x3c, 0, 0, 0]),    // s_feature_compat = 0x3c
    (0x060, &[0xc2, 0x02, 0, 0]), // s_feature_incompat = 0x2c2
    (0x064, &[0x6b, 0x04, 0, 0]), // s_feature_ro_compat = 0x46b
    (
        0x068,
        &[
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ],
    ), // s_uuid
    (0x078, b"qfault"),           // s_volume_name
    (0x0ce, &[63, 0]),            // s_reserved_gdt_blocks = 63
    (0x0e0, &[8, 0, 0, 0]),       // s_journal_inum = 8
    (
        0x0ec,
        &[
            0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ],
    ), // s_hash_seed
    (0x0fc, &[1]),                // s_def_hash_version = half_md4
    (0x0fd, &[1]),                // s_jnl_backup_type = 1 (s_jnl_blocks valid)
    (0x0fe, &[64, 0]),            // s_desc_size = 64
    (0x100, &[12, 0, 0, 0]),      // s_default_mount_opts = user_xattr,acl
    (0x108, &[0, 241, 83, 101]),  // s_mkfs_time = 1700000000
    (
        0x10c,
        &[
            0x0a, 0xf3, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
            0x0f, 0x00, 0x00, 0x00, 0x53, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0xef, 0x03,
            0x00, 0x00, 0x63, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        ],
    ), // s_jnl_blocks (the journal inode's extent header and i_size)
    (0x15c, &[32, 0]),            // s_min_extra_isize = 32
    (0x15e, &[32, 0]),            // s_want_extra_isize = 32
    (0x160, &[1, 0, 0, 0]),       // s_flags = signed directory hash
    (0x174, &[4]),                // s_log_groups_per_flex = 4
    (0x175, &[1]),                // s_checksum_type = crc32c
    (0x178, &[0x54]),             // s_kbytes_written = 84
    (0x248, &[0x44, 0x06, 0, 0]), // s_overhead_clusters = 1604
    (0x3fc, &[0xc7, 0x24, 0xfe, 0xf8]), // s_checksum = 0xf8fe24c7
];

fn mkfs_superblock() -> Vec<u8> {
    let mut raw = vec![0u8; SUPERBLOCK_SIZE];
    for (off, bytes) in MKFS_SUPERBLOCK {
        raw[*off..*off + bytes.len()].copy_from_slice(bytes);
    }
    raw
}

#[test]
fn the_checksum_of_a_real_mkfs_superblock() {
    let sb = Superblock::parse(&mkfs_superblock()).unwrap();
    assert_eq!(sb.stored_checksum(), 0xf8fe_24c7);
    assert_eq!(sb.computed_checksum(), 0xf8fe_24c7);
    assert!(sb.checksum_ok() && sb.checksum_type_ok());
    assert_eq!(sb.geometry_error(), None);
    assert_eq!((sb.group_count(), sb.desc_size()), (1, 64));
    // Any changed byte before s_checksum breaks it; resealing mends it.
    let bad = Superblock::parse(&{
        let mut r = mkfs_superblock();
        r[0x3A] = 0;
        r
    })
    .unwrap();
    assert!(!bad.checksum_ok());
    assert!(bad.with_u16(S_STATE, 0).checksum_ok());
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

#[test]
fn geometry_errors_follow_ext2fs_open2() {
    let with = |off: usize, v: u32| {
        let mut r = mkfs_superblock();
        r[off..off + 4].copy_from_slice(&v.to_le_bytes());
        Superblock::parse(&r).unwrap().geometry_error()
    };
    assert!(with(S_INODES_COUNT, 2047)
        .unwrap()
        .contains("inodes counted"));
    assert!(with(S_BLOCKS_PER_GROUP, 0).is_some());
    assert!(with(S_BLOCKS_PER_GROUP, 8193).is_some());
    assert!(with(S_FIRST_DATA_BLOCK, 8192).is_some());
    let mut r = mkfs_superblock();
    r[S_DESC_SIZE] = 48;
    let sb = Superblock::parse(&r).unwrap();
    assert!(sb.geometry_error().unwrap().contains("descriptor size"));
    // A huge group count is bounded by the inode count check.
    assert!(with(S_BLOCKS_COUNT_LO, u32::MAX).is_some());
}

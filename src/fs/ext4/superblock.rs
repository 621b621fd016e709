//! The ext4 superblock ("Super Block" in the ext4 disk-layout documentation):
//! the fields the recipes read or change, and its crc32c checksum.

use crate::error::{Error, Result};
use crate::fs::bytes::{le16, le32};
use crate::image::ReadAt;

/// The primary superblock's byte offset in the volume ("Layout": 1024
/// bytes of padding first).
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// The superblock's size in bytes.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic` value ("Super Block", offset 0x38).
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;

/// `s_inodes_count` (u32).
pub const S_INODES_COUNT: usize = 0x0;
/// `s_blocks_count_lo` (u32).
pub const S_BLOCKS_COUNT_LO: usize = 0x4;
/// `s_first_data_block` (u32): 1 with 1 KiB blocks, else 0.
pub const S_FIRST_DATA_BLOCK: usize = 0x14;
/// `s_log_block_size` (u32): block size = 2 ^ (10 + value).
pub const S_LOG_BLOCK_SIZE: usize = 0x18;
/// `s_blocks_per_group` (u32).
pub const S_BLOCKS_PER_GROUP: usize = 0x20;
/// `s_inodes_per_group` (u32).
pub const S_INODES_PER_GROUP: usize = 0x28;
/// `s_magic` (u16).
pub const S_MAGIC: usize = 0x38;
/// `s_state` (u16): [`STATE_VALID_FS`], [`STATE_ERROR_FS`], ...
pub const S_STATE: usize = 0x3A;
/// `s_feature_compat` (u32).
pub const S_FEATURE_COMPAT: usize = 0x5C;
/// `s_feature_incompat` (u32).
pub const S_FEATURE_INCOMPAT: usize = 0x60;
/// `s_feature_ro_compat` (u32).
pub const S_FEATURE_RO_COMPAT: usize = 0x64;
/// `s_uuid` (16 bytes).
pub const S_UUID: usize = 0x68;
/// `s_journal_inum` (u32): the journal's inode (0: no internal journal).
pub const S_JOURNAL_INUM: usize = 0xE0;
/// `s_desc_size` (u16): group descriptor size when 64bit.
pub const S_DESC_SIZE: usize = 0xFE;
/// `s_blocks_count_hi` (u32), 64bit only.
pub const S_BLOCKS_COUNT_HI: usize = 0x150;
/// `s_checksum_type` (u8): 1 = crc32c.
pub const S_CHECKSUM_TYPE: usize = 0x175;
/// `s_checksum_seed` (u32), used when [`INCOMPAT_CSUM_SEED`] is set.
pub const S_CHECKSUM_SEED: usize = 0x270;
/// `s_checksum` (u32): crc32c of the superblock up to this field.
pub const S_CHECKSUM: usize = 0x3FC;

/// `s_state`: cleanly unmounted.
pub const STATE_VALID_FS: u16 = 0x0001;
/// `s_state`: errors detected.
pub const STATE_ERROR_FS: u16 = 0x0002;

/// compat: has a journal (`COMPAT_HAS_JOURNAL`).
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
/// compat: sparse_super2, backups only in `s_backup_bgs` (`COMPAT_SPARSE_SUPER2`).
pub const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
/// incompat: the journal needs recovery (`INCOMPAT_RECOVER`).
pub const INCOMPAT_RECOVER: u32 = 0x0004;
/// incompat: this is an external journal device (`INCOMPAT_JOURNAL_DEV`).
pub const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
/// incompat: meta block groups (`INCOMPAT_META_BG`).
pub const INCOMPAT_META_BG: u32 = 0x0010;
/// incompat: 64-bit block numbers and `s_desc_size` (`INCOMPAT_64BIT`).
pub const INCOMPAT_64BIT: u32 = 0x0080;
/// incompat: the checksum seed is in `s_checksum_seed` (`INCOMPAT_CSUM_SEED`).
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// ro_compat: backups only in groups 0, 1 and powers of 3, 5, 7 (`RO_COMPAT_SPARSE_SUPER`).
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
/// ro_compat: group descriptors carry a crc16 (`RO_COMPAT_GDT_CSUM`).
pub const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
/// ro_compat: clusters of several blocks (`RO_COMPAT_BIGALLOC`).
pub const RO_COMPAT_BIGALLOC: u32 = 0x0200;
/// ro_compat: crc32c metadata checksums (`RO_COMPAT_METADATA_CSUM`).
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;

/// Group descriptor size without 64bit ("Block Group Descriptors").
pub const DESC_SIZE_32: u16 = 32;
/// The smallest `s_desc_size` with 64bit (libext2fs `EXT2_MIN_DESC_SIZE_64BIT`).
pub const DESC_SIZE_64_MIN: u16 = 64;
/// The largest `s_desc_size` (libext2fs `EXT2_MAX_DESC_SIZE`).
pub const DESC_SIZE_MAX: u16 = 1024;
/// The most blocks per group (libext2fs `EXT2_MAX_BLOCKS_PER_GROUP`
/// without bigalloc: 2^16 - 8).
pub const MAX_BLOCKS_PER_GROUP: u64 = (1 << 16) - 8;

/// A parsed ext4 superblock (the 1024 raw bytes and what they say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    raw: Vec<u8>,
}

/// The crc32c the kernel's `ext4_chksum` computes: Castagnoli, the given
/// seed, no final inversion (the `crc32c` crate's function inverts before
/// and after, hence the two `!`).
pub fn ext4_chksum(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

impl Superblock {
    /// Parses `raw` (at least 1024 bytes); `None` without the ext4 magic or
    /// with a block size the kernel refuses (above 64 KiB).
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let raw = raw.get(..SUPERBLOCK_SIZE)?.to_vec();
        if le16(&raw, S_MAGIC) != EXT4_SUPER_MAGIC || le32(&raw, S_LOG_BLOCK_SIZE) > 6 {
            return None;
        }
        Some(Superblock { raw })
    }

    /// Reads the superblock at `offset` of `part`; `None` when it is out of
    /// range or not an ext4 superblock.
    pub fn read_at(part: &mut dyn ReadAt, offset: u64) -> Result<Option<Self>> {
        match part.read_vec(offset, SUPERBLOCK_SIZE) {
            Ok(v) => Ok(Self::parse(&v)),
            Err(Error::OutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the primary superblock of `part`.
    pub fn read(part: &mut dyn ReadAt) -> Result<Option<Self>> {
        Self::read_at(part, SUPERBLOCK_OFFSET)
    }

    /// The 1024 raw bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Block size in bytes (1 KiB .. 64 KiB).
    pub fn block_size(&self) -> u64 {
        1024 << le32(&self.raw, S_LOG_BLOCK_SIZE)
    }

    /// Total blocks (`s_blocks_count_lo`, plus `_hi` with 64bit).
    pub fn blocks_count(&self) -> u64 {
        let lo = u64::from(le32(&self.raw, S_BLOCKS_COUNT_LO));
        if self.incompat() & INCOMPAT_64BIT != 0 {
            lo | u64::from(le32(&self.raw, S_BLOCKS_COUNT_HI)) << 32
        } else {
            lo
        }
    }

    /// `s_first_data_block`.
    pub fn first_data_block(&self) -> u64 {
        u64::from(le32(&self.raw, S_FIRST_DATA_BLOCK))
    }

    /// `s_blocks_per_group`.
    pub fn blocks_per_group(&self) -> u64 {
        u64::from(le32(&self.raw, S_BLOCKS_PER_GROUP))
    }

    /// `s_inodes_count`.
    pub fn inodes_count(&self) -> u64 {
        u64::from(le32(&self.raw, S_INODES_COUNT))
    }

    /// `s_inodes_per_group`.
    pub fn inodes_per_group(&self) -> u64 {
        u64::from(le32(&self.raw, S_INODES_PER_GROUP))
    }

    /// Why libext2fs would not open this superblock's geometry
    /// (`ext2fs_open2` in e2fsprogs 1.47.0 `lib/ext2fs/openfs.c`: "corrupt
    /// superblock" or "bad descriptor size"; e2fsck then tries the backup
    /// superblocks, and exits 8 without one), or
    /// `None` when it is consistent. Without bigalloc.
    pub fn geometry_error(&self) -> Option<String> {
        let bs = self.block_size();
        let (bpg, ipg) = (self.blocks_per_group(), self.inodes_per_group());
        if bpg == 0 || ipg == 0 {
            return Some("zero blocks or inodes per group".into());
        }
        // A group's block and inode bitmaps are one block each.
        if bpg > MAX_BLOCKS_PER_GROUP.min(8 * bs) || ipg > 8 * bs {
            return Some(format!(
                "{bpg} blocks and {ipg} inodes per group do not fit the {bs}-byte bitmaps"
            ));
        }
        if self.first_data_block() >= self.blocks_count() {
            return Some("the first data block lies past the last block".into());
        }
        if self.group_count().checked_mul(ipg) != Some(self.inodes_count()) {
            return Some(format!(
                "{} groups of {ipg} inodes are not the {} inodes counted",
                self.group_count(),
                self.inodes_count()
            ));
        }
        if self.incompat() & INCOMPAT_64BIT != 0 {
            let d = le16(&self.raw, S_DESC_SIZE);
            if !(DESC_SIZE_64_MIN..=DESC_SIZE_MAX).contains(&d) || !d.is_power_of_two() {
                return Some(format!("bad group descriptor size {d}"));
            }
        }
        None
    }

    /// The bytes the filesystem spans (`blocks_count` × block size).
    pub fn byte_size(&self) -> u64 {
        self.blocks_count().saturating_mul(self.block_size())
    }

    /// Number of block groups (0 for a nonsensical geometry).
    pub fn group_count(&self) -> u64 {
        let bpg = self.blocks_per_group();
        if bpg == 0 {
            return 0;
        }
        self.blocks_count()
            .saturating_sub(self.first_data_block())
            .div_ceil(bpg)
    }

    /// `s_feature_compat`.
    pub fn compat(&self) -> u32 {
        le32(&self.raw, S_FEATURE_COMPAT)
    }

    /// `s_feature_incompat`.
    pub fn incompat(&self) -> u32 {
        le32(&self.raw, S_FEATURE_INCOMPAT)
    }

    /// `s_feature_ro_compat`.
    pub fn ro_compat(&self) -> u32 {
        le32(&self.raw, S_FEATURE_RO_COMPAT)
    }

    /// `s_state`.
    pub fn state(&self) -> u16 {
        le16(&self.raw, S_STATE)
    }

    /// metadata_csum: the superblock and descriptors carry crc32c.
    pub fn metadata_csum(&self) -> bool {
        self.ro_compat() & RO_COMPAT_METADATA_CSUM != 0
    }

    /// gdt_csum (crc16 descriptor checksums, without metadata_csum).
    pub fn gdt_csum(&self) -> bool {
        self.ro_compat() & RO_COMPAT_GDT_CSUM != 0
    }

    /// An internal journal: has_journal, a journal inode, not a journal device.
    pub fn has_internal_journal(&self) -> bool {
        self.compat() & COMPAT_HAS_JOURNAL != 0
            && le32(&self.raw, S_JOURNAL_INUM) != 0
            && self.incompat() & INCOMPAT_JOURNAL_DEV == 0
    }

    /// The group descriptor size in bytes.
    pub fn desc_size(&self) -> u16 {
        if self.incompat() & INCOMPAT_64BIT != 0 {
            le16(&self.raw, S_DESC_SIZE).max(DESC_SIZE_32)
        } else {
            DESC_SIZE_32
        }
    }

    /// Byte offset of the group descriptor table that follows the
    /// superblock stored in block `sb_block` (the primary: block
    /// `s_first_data_block`).
    pub fn gdt_offset_after(&self, sb_block: u64) -> u64 {
        (sb_block + 1) * self.block_size()
    }

    /// Byte offset of the primary group descriptor table.
    pub fn gdt_offset(&self) -> u64 {
        self.gdt_offset_after(self.first_data_block())
    }

    /// `s_uuid`.
    pub fn uuid(&self) -> [u8; 16] {
        let mut u = [0u8; 16];
        u.copy_from_slice(&self.raw[S_UUID..S_UUID + 16]);
        u
    }

    /// The stored `s_checksum`.
    pub fn stored_checksum(&self) -> u32 {
        le32(&self.raw, S_CHECKSUM)
    }

    /// The checksum the kernel expects ("Checksums": crc32c over the
    /// superblock before `s_checksum`, seed ~0).
    pub fn computed_checksum(&self) -> u32 {
        ext4_chksum(!0, &self.raw[..S_CHECKSUM])
    }

    /// Whether the kernel and e2fsck accept the checksum (always true
    /// without metadata_csum, which is when they do not check it).
    pub fn checksum_ok(&self) -> bool {
        !self.metadata_csum() || self.stored_checksum() == self.computed_checksum()
    }

    /// `s_checksum_type` is crc32c (1), the only type the kernel knows.
    pub fn checksum_type_ok(&self) -> bool {
        !self.metadata_csum() || self.raw[S_CHECKSUM_TYPE] == 1
    }

    /// The metadata checksum seed: `s_checksum_seed` with csum_seed, else
    /// crc32c(~0, uuid) (the kernel's `s_csum_seed`).
    pub fn csum_seed(&self) -> u32 {
        if self.incompat() & INCOMPAT_CSUM_SEED != 0 {
            le32(&self.raw, S_CHECKSUM_SEED)
        } else {
            ext4_chksum(!0, &self.raw[S_UUID..S_UUID + 16])
        }
    }

    /// A copy with `value` written as a u16 at `offset` and, with
    /// metadata_csum, `s_checksum` recomputed.
    pub fn with_u16(&self, offset: usize, value: u16) -> Self {
        let mut raw = self.raw.clone();
        raw[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
        Self::resealed(raw, self.metadata_csum())
    }

    /// A copy with `value` written as a u32 at `offset` and, with
    /// metadata_csum, `s_checksum` recomputed.
    pub fn with_u32(&self, offset: usize, value: u32) -> Self {
        let mut raw = self.raw.clone();
        raw[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        Self::resealed(raw, self.metadata_csum())
    }

    fn resealed(mut raw: Vec<u8>, csum: bool) -> Self {
        if csum {
            let c = ext4_chksum(!0, &raw[..S_CHECKSUM]);
            raw[S_CHECKSUM..S_CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
        }
        Superblock { raw }
    }

    /// Where e2fsck finds a backup superblock when the primary is invalid
    /// and no `-b` is given (`get_backup_sb`): for each block size from
    /// 1 KiB to 64 KiB, block 8 × size (plus 1 with 1 KiB blocks), accepted
    /// when it holds the magic and that block size. Returns the byte offset
    /// and the superblock found, reading `part` (the damaged volume).
    pub fn e2fsck_backup(part: &mut dyn ReadAt) -> Result<Option<(u64, Superblock)>> {
        let mut bs: u64 = 1024;
        while bs <= 65536 {
            let block = bs * 8 + u64::from(bs == 1024);
            let off = block * bs;
            if let Some(sb) = Self::read_at(part, off)? {
                if sb.block_size() == bs {
                    return Ok(Some((off, sb)));
                }
            }
            bs *= 2;
        }
        Ok(None)
    }
}

//! ext4 block group descriptors ("Block Group Descriptors" in the ext4
//! disk-layout documentation) and their checksum ("Checksums":
//! `ext4_group_desc_csum` in the kernel's `fs/ext4/super.c`).

use super::superblock::{ext4_chksum, Superblock};
use crate::fs::bytes::le16;

/// `bg_flags` (u16).
pub const BG_FLAGS: usize = 0x12;
/// `bg_checksum` (u16).
pub const BG_CHECKSUM: usize = 0x1E;
/// `bg_flags`: the inode table and bitmap are not initialised (`EXT4_BG_INODE_UNINIT`).
pub const BG_INODE_UNINIT: u16 = 0x0001;
/// `bg_flags`: the block bitmap is not initialised (`EXT4_BG_BLOCK_UNINIT`).
pub const BG_BLOCK_UNINIT: u16 = 0x0002;

/// The crc16 of gdt_csum: the kernel's `crc16` (reflected 0x8005) with
/// seed ~0 and no final inversion, i.e. CRC-16/MODBUS.
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS);

/// One group descriptor (its raw bytes, `s_desc_size` long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDesc {
    /// Which group it describes.
    pub group: u32,
    /// The raw descriptor.
    pub raw: Vec<u8>,
}

impl GroupDesc {
    /// `bg_flags`.
    pub fn flags(&self) -> u16 {
        le16(&self.raw, BG_FLAGS)
    }

    /// The stored `bg_checksum`.
    pub fn stored_checksum(&self) -> u16 {
        le16(&self.raw, BG_CHECKSUM)
    }

    /// The checksum the kernel and e2fsck expect for this descriptor of the
    /// filesystem `sb`: crc32c (low 16 bits) with metadata_csum, crc16 with
    /// gdt_csum; `None` when the filesystem has neither.
    pub fn computed_checksum(&self, sb: &Superblock) -> Option<u16> {
        let group = self.group.to_le_bytes();
        let desc = &self.raw;
        let after = BG_CHECKSUM + 2;
        if sb.metadata_csum() {
            let mut c = ext4_chksum(sb.csum_seed(), &group);
            c = ext4_chksum(c, &desc[..BG_CHECKSUM]);
            c = ext4_chksum(c, &[0, 0]);
            if after < desc.len() {
                c = ext4_chksum(c, &desc[after..]);
            }
            return Some((c & 0xFFFF) as u16);
        }
        if !sb.gdt_csum() {
            return None;
        }
        let mut d = CRC16.digest();
        d.update(&sb.uuid());
        d.update(&group);
        d.update(&desc[..BG_CHECKSUM]);
        if after < desc.len() {
            d.update(&desc[after..]);
        }
        Some(d.finalize())
    }
}

/// Reads descriptor `group` from the table at byte `gdt_offset` of `part`
/// (the primary table, or the copy after a backup superblock); `None` when
/// it lies outside `part`.
pub fn read_group_desc(
    part: &mut dyn crate::image::ReadAt,
    sb: &Superblock,
    gdt_offset: u64,
    group: u32,
) -> crate::error::Result<Option<GroupDesc>> {
    let size = u64::from(sb.desc_size());
    let off = gdt_offset + u64::from(group) * size;
    Ok(crate::fs::read_opt(part, off, size as usize)?.map(|raw| GroupDesc { group, raw }))
}

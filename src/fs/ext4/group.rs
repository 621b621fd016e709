//! ext4 block group descriptors ("Block Group Descriptors" in the ext4
//! disk-layout documentation) and their checksum ("Checksums":
//! `ext4_group_desc_csum` in the kernel's `fs/ext4/super.c`).

use super::superblock::{ext4_chksum, Superblock};
use crate::fs::bytes::le16;

/// `bg_free_blocks_count_lo` (u16; `_hi` at 0x2C with 64bit).
pub const BG_FREE_BLOCKS: usize = 0x0C;
/// `bg_free_inodes_count_lo` (u16; `_hi` at 0x2E).
pub const BG_FREE_INODES: usize = 0x0E;
/// `bg_used_dirs_count_lo` (u16; `_hi` at 0x30).
pub const BG_USED_DIRS: usize = 0x10;
/// `bg_block_bitmap_csum_lo` (u16; `_hi` at 0x38).
pub const BG_BLOCK_BITMAP_CSUM: usize = 0x18;
/// `bg_inode_bitmap_csum_lo` (u16; `_hi` at 0x3A).
pub const BG_INODE_BITMAP_CSUM: usize = 0x1A;
/// Distance from a `_lo` field of the first 32 bytes to its `_hi` half.
const HI: usize = 0x20;

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

    /// A split counter: the `_lo` u16 at `lo` and, in a 64-byte
    /// descriptor, its `_hi` u16 0x20 further.
    fn split(&self, lo: usize) -> u32 {
        let hi = if self.raw.len() >= lo + HI + 2 {
            le16(&self.raw, lo + HI)
        } else {
            0
        };
        u32::from(le16(&self.raw, lo)) | u32::from(hi) << 16
    }

    /// What pass 5 of e2fsck recounts from the bitmaps and the inodes, as
    /// this descriptor records it: free blocks, free inodes, directories,
    /// the uninit flags and the two bitmap checksums.
    pub fn pass5_fields(&self) -> [u32; 6] {
        [
            self.split(BG_FREE_BLOCKS),
            self.split(BG_FREE_INODES),
            self.split(BG_USED_DIRS),
            u32::from(self.flags() & (BG_INODE_UNINIT | BG_BLOCK_UNINIT)),
            self.split(BG_BLOCK_BITMAP_CSUM),
            self.split(BG_INODE_BITMAP_CSUM),
        ]
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

/// Reads the `sb.group_count()` descriptors of the table at byte
/// `gdt_offset` of `part`, one block at a time; `None` when the table does
/// not lie inside `part`. The geometry must have passed
/// [`Superblock::geometry_error`] and fit `part` (bounded work).
pub fn read_group_table(
    part: &mut dyn crate::image::ReadAt,
    sb: &Superblock,
    gdt_offset: u64,
) -> crate::error::Result<Option<Vec<GroupDesc>>> {
    let size = usize::from(sb.desc_size());
    let count = sb.group_count();
    let Some(total) = count.checked_mul(size as u64) else {
        return Ok(None);
    };
    if gdt_offset
        .checked_add(total)
        .is_none_or(|end| end > part.size())
    {
        return Ok(None);
    }
    let block = sb.block_size();
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(block);
        let Some(raw) = crate::fs::read_opt(part, gdt_offset + done, n as usize)? else {
            return Ok(None);
        };
        for d in raw.chunks_exact(size) {
            let group = u32::try_from(out.len())
                .map_err(|_| crate::error::Error::Guest("more than 2^32 block groups".into()))?;
            out.push(GroupDesc {
                group,
                raw: d.to_vec(),
            });
        }
        done += n;
    }
    Ok(Some(out))
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

//! ext4: the superblock and group-descriptor fields the ext4 recipes need,
//! their checksums, and the rules of the tools that read them (where
//! `e2fsck` looks for a backup superblock).
//!
//! Field offsets and flag values follow the kernel's ext4 disk-layout
//! documentation (`Documentation/filesystems/ext4/`: "Super Block",
//! "Block Group Descriptors", "Checksums") and `fs/ext4/ext4.h`; the backup
//! search follows e2fsprogs 1.47.0 `e2fsck/util.c` `get_backup_sb`. The
//! blkid-style identification stays in [`crate::fs::ext`].
//!
//! - `superblock.rs`: [`Superblock`] (parsing, geometry, feature tests,
//!   the crc32c checksum);
//! - `group.rs`: group descriptors ([`GroupDesc`]) and their checksum
//!   (crc32c with metadata_csum, crc16 with gdt_csum).

mod group;
mod superblock;

pub use group::{
    read_group_desc, read_group_table, GroupDesc, BG_BLOCK_BITMAP_CSUM, BG_BLOCK_UNINIT,
    BG_CHECKSUM, BG_FLAGS, BG_FREE_BLOCKS, BG_FREE_INODES, BG_INODE_BITMAP_CSUM, BG_INODE_UNINIT,
    BG_USED_DIRS,
};
pub use superblock::*;

/// The primary superblock and group descriptor 0 of an ext4 volume as one
/// image reads them: what the probe records about the backing chain so
/// that the ext4 recipes' `verify` can tell the damage they model from a
/// condition the base already had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The primary superblock.
    pub superblock: Superblock,
    /// Group descriptor 0 of the primary table (`None`: outside the volume).
    pub gdt0: Option<GroupDesc>,
}

impl Snapshot {
    /// Reads `part`'s primary superblock and descriptor 0; `None` without
    /// an ext4 superblock.
    pub fn read(part: &mut dyn crate::image::ReadAt) -> crate::error::Result<Option<Self>> {
        let Some(superblock) = Superblock::read(part)? else {
            return Ok(None);
        };
        let gdt0 = read_group_desc(part, &superblock, superblock.gdt_offset(), 0)?;
        Ok(Some(Snapshot { superblock, gdt0 }))
    }
}

#[cfg(test)]
mod tests;

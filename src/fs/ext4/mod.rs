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
    read_group_desc, GroupDesc, BG_BLOCK_UNINIT, BG_CHECKSUM, BG_FLAGS, BG_INODE_UNINIT,
};
pub use superblock::*;

#[cfg(test)]
mod tests;

//! Btrfs, identified as util-linux 2.38 `libblkid/src/superblocks/btrfs.c`
//! does (non-zoned devices): `"_BHRfS_M"` at 64 KiB + 0x40; UUID is the
//! fsid, LABEL the 256-byte label. Offsets per the kernel's
//! `include/uapi/linux/btrfs_tree.h` `struct btrfs_super_block`.
//!
//! `superblock.rs`: the superblock model the `btrfs-sb-primary` recipe
//! needs ([`BtrfsSuperblock`]: the copies at 64 KiB, 64 MiB and 256 GiB,
//! their crc32c checksum, which copies the tools can use).

use super::text::{label_bytes, uuid16};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Primary superblock offset.
const SB_OFFSET: u64 = 64 * 1024;
/// Magic offset within the superblock.
const MAGIC_OFFSET: usize = 0x40;
/// The magic.
const MAGIC: &[u8; 8] = b"_BHRfS_M";
/// `fsid` offset.
const FSID_OFFSET: usize = 0x20;
/// `label` offset (after the 98-byte `dev_item` at 0xC9).
const LABEL_OFFSET: usize = 0x12B;
/// `label` length.
const LABEL_LEN: usize = 256;

/// Probes for btrfs.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sb) = read_opt(part, SB_OFFSET, LABEL_OFFSET + LABEL_LEN)? else {
        return Ok(None);
    };
    if &sb[MAGIC_OFFSET..MAGIC_OFFSET + 8] != MAGIC {
        return Ok(None);
    }
    let mut info = FsInfo::new("btrfs");
    if sb[LABEL_OFFSET] != 0 {
        info.label = label_bytes(&sb[LABEL_OFFSET..LABEL_OFFSET + LABEL_LEN]);
    }
    info.uuid = uuid16(&sb[FSID_OFFSET..FSID_OFFSET + 16]);
    Ok(Some(info))
}

mod superblock;
pub use superblock::*;

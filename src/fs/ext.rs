//! ext2, ext3, ext4 (and ext4dev, jbd), told apart by feature flags exactly
//! as util-linux 2.38 `libblkid/src/superblocks/ext.c` does. Superblock at
//! byte 1024, fields per the kernel's `fs/ext4/ext4.h` `struct ext4_super_block`.

use super::bytes::{le16, le32};
use super::text::{label_bytes, uuid16};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Superblock offset in bytes.
const SB_OFFSET: u64 = 1024;
/// Bytes of the superblock blkid reads.
const SB_LEN: usize = 0x200;
/// `s_magic` (0xEF53) at 0x38.
const MAGIC: [u8; 2] = [0x53, 0xEF];
/// `s_flags` bit: filesystem for testing development code.
const FLAGS_TEST_FILESYS: u32 = 0x0004;
/// compat: has a journal.
const COMPAT_HAS_JOURNAL: u32 = 0x0004;
/// ro_compat bits ext2 and ext3 understand: sparse_super, large_file, btree_dir.
const RO_COMPAT_EXT23: u32 = 0x0001 | 0x0002 | 0x0004;
/// incompat bits ext2 understands: filetype, meta_bg.
const INCOMPAT_EXT2: u32 = 0x0002 | 0x0010;
/// incompat bits ext3 understands: filetype, recover, meta_bg.
const INCOMPAT_EXT3: u32 = 0x0002 | 0x0004 | 0x0010;
/// incompat: this is an external journal device.
const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;

/// Probes for ext2/3/4 in blkid's order (ext4dev, ext4, ext3, ext2, jbd).
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sb) = read_opt(part, SB_OFFSET, SB_LEN)? else {
        return Ok(None);
    };
    if sb[0x38..0x3A] != MAGIC {
        return Ok(None);
    }
    let fc = le32(&sb, 0x5C);
    let fi = le32(&sb, 0x60);
    let frc = le32(&sb, 0x64);
    let flags = le32(&sb, 0x160);
    let journal_dev = fi & INCOMPAT_JOURNAL_DEV != 0;
    let has_journal = fc & COMPAT_HAS_JOURNAL != 0;
    let beyond_ext3 = frc & !RO_COMPAT_EXT23 != 0 || fi & !INCOMPAT_EXT3 != 0;
    let fstype = if !journal_dev && flags & FLAGS_TEST_FILESYS != 0 {
        "ext4dev"
    } else if !journal_dev && beyond_ext3 {
        "ext4"
    } else if has_journal && !beyond_ext3 {
        "ext3"
    } else if !has_journal && frc & !RO_COMPAT_EXT23 == 0 && fi & !INCOMPAT_EXT2 == 0 {
        "ext2"
    } else if journal_dev {
        "jbd"
    } else {
        return Ok(None);
    };
    let mut info = FsInfo::new(fstype);
    if sb[0x78] != 0 {
        info.label = label_bytes(&sb[0x78..0x88]);
    }
    info.uuid = uuid16(&sb[0x68..0x78]);
    info.version = Some(format!("{}.{}", le32(&sb, 0x4C), le16(&sb, 0x3E)));
    info.ext4 = super::ext4::Snapshot::read(part)?;
    Ok(Some(info))
}

//! UFS (the BSD and Solaris fast file system, UFS1 and UFS2), identified as
//! util-linux 2.38 `libblkid/src/superblocks/ufs.c` does: one of six magic
//! numbers, either byte order, at byte 1372 of a superblock at 0, 8, 64 or
//! 256 KiB; VERSION `1` or `2`, LABEL from UFS2's `fs_volname`, UUID from
//! `fs_id` as 16 hex digits. qfault does not model UFS further; it matters
//! because a partition holding UFS and another signature is ambivalent to
//! blkid (the DFTT NTFS images carry both).

use super::text::label_bytes;
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Superblock locations blkid tries, in KiB.
const OFFSETS_KIB: [u64; 4] = [0, 8, 64, 256];
/// Bytes blkid reads per superblock (through `fs_magic`).
const SB_LEN: usize = 1377;
/// `fs_magic`, `fs_id`, `fs_volname` (UFS2) offsets in the superblock.
const MAGIC: usize = 1372;
const ID: usize = 144;
const VOLNAME: usize = 680;
/// The UFS2 magic; the others are UFS1 variants (`ufs.c`).
const UFS2_MAGIC: u32 = 0x1954_0119;
const MAGICS: [u32; 6] = [
    UFS2_MAGIC,
    0x0001_1954,
    0x0019_5612,
    0x0009_5014,
    0x0061_2195,
    0x0523_1994,
];

/// Probes for UFS.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    for kib in OFFSETS_KIB {
        // blkid gives up at the first superblock it cannot read.
        let Some(sb) = read_opt(part, kib * 1024, SB_LEN)? else {
            return Ok(None);
        };
        let raw = [sb[MAGIC], sb[MAGIC + 1], sb[MAGIC + 2], sb[MAGIC + 3]];
        let (le, be) = (u32::from_le_bytes(raw), u32::from_be_bytes(raw));
        let Some((magic, big)) = MAGICS.iter().find_map(|&m| {
            (m == le)
                .then_some((m, false))
                .or((m == be).then_some((m, true)))
        }) else {
            continue;
        };
        let word = |off: usize| {
            let b = [sb[off], sb[off + 1], sb[off + 2], sb[off + 3]];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let mut info = FsInfo::new("ufs");
        if magic == UFS2_MAGIC {
            info.version = Some("2".into());
            info.label = label_bytes(&sb[VOLNAME..VOLNAME + 32]);
        } else {
            info.version = Some("1".into());
        }
        let (id0, id1) = (word(ID), word(ID + 4));
        if id0 != 0 || id1 != 0 {
            info.uuid = Some(format!("{id0:08x}{id1:08x}"));
        }
        return Ok(Some(info));
    }
    Ok(None)
}

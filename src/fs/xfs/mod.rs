//! XFS, identified as util-linux 2.38 `libblkid/src/superblocks/xfs.c` does:
//! `"XFSB"` at 0 and the sanity checks of `xfs_verify_sb` on the big-endian
//! superblock (fields per xfsprogs `libxfs/xfs_format.h` `struct xfs_dsb`).
//!
//! `superblock.rs`: the superblock model the `xfs-sb-primary` recipe needs
//! ([`XfsSuperblock`]: geometry, the secondary copies in every allocation
//! group, and how `xfs_repair` finds one when the primary is gone).

use super::bytes::{be16, be32, be64};
use super::text::{label_bytes, uuid16};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Bytes of the superblock read.
const SB_LEN: usize = 0x100;

/// `xfs_verify_sb`: sector, block and inode sizes and their logs agree and
/// lie in range, the realtime extent size is sane, the data block count
/// fits the allocation groups.
fn verify(sb: &[u8]) -> bool {
    let blocksize = be32(sb, 4);
    let dblocks = be64(sb, 8);
    let rextsize = be32(sb, 80);
    let agblocks = be32(sb, 84);
    let agcount = be32(sb, 88);
    let sectsize = u32::from(be16(sb, 102));
    let inodesize = u32::from(be16(sb, 104));
    let (blocklog, sectlog, inodelog, inopblog) = (sb[120], sb[121], sb[122], sb[123]);
    let imax_pct = sb[127];
    let rext_bytes = rextsize.wrapping_mul(blocksize);
    let max_dblocks = u64::from(agcount) * u64::from(agblocks);
    let min_dblocks = u64::from(agcount.wrapping_sub(1)) * u64::from(agblocks) + 64;
    agcount != 0
        && (512..=32768).contains(&sectsize)
        && (9..=15).contains(&sectlog)
        && sectsize == 1 << sectlog
        && (512..=65536).contains(&blocksize)
        && (9..=16).contains(&blocklog)
        && u64::from(blocksize) == 1u64 << blocklog
        && (256..=2048).contains(&inodesize)
        && (8..=11).contains(&inodelog)
        && inodesize == 1 << inodelog
        && i32::from(blocklog) - i32::from(inodelog) == i32::from(inopblog)
        && (4096..=1 << 30).contains(&rext_bytes)
        && imax_pct <= 100
        && dblocks != 0
        && dblocks <= max_dblocks
        && dblocks >= min_dblocks
}

/// Probes for XFS.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sb) = read_opt(part, 0, SB_LEN)? else {
        return Ok(None);
    };
    if &sb[0..4] != b"XFSB" || !verify(&sb) {
        return Ok(None);
    }
    let mut info = FsInfo::new("xfs");
    if sb[108] != 0 {
        info.label = label_bytes(&sb[108..120]);
    }
    info.uuid = uuid16(&sb[32..48]);
    Ok(Some(info))
}

mod superblock;
pub use superblock::*;

//! The XFS superblock (xfsprogs 6.1 `libxfs/xfs_format.h`, `struct
//! xfs_dsb`): every allocation group (AG) starts with a copy; AG 0's is the
//! primary. `xfs_repair` (`repair/sb.c`, `find_secondary_sb`) looks for
//! another copy at the default AG boundaries, then sector by sector, when
//! the primary is bad.

use crate::error::{Error, Result};
use crate::fs::bytes::{be16, be32};
use crate::fs::read_opt;
use crate::image::ReadAt;

/// `XFS_SB_MAGIC` ("XFSB") at offset 0.
pub const XFS_SB_MAGIC: &[u8; 4] = b"XFSB";
/// Bytes of the superblock read (the fields up to `sb_features2` and past).
pub const XFS_SB_READ: usize = 0x100;
/// `sb_blocksize` (be32).
pub const SB_BLOCKSIZE: usize = 4;
/// `sb_uuid` (16 bytes).
pub const SB_UUID: usize = 32;
/// `sb_agblocks` (be32): blocks per AG.
pub const SB_AGBLOCKS: usize = 84;
/// `sb_agcount` (be32).
pub const SB_AGCOUNT: usize = 88;
/// `sb_sectsize` (be16).
pub const SB_SECTSIZE: usize = 102;
/// How much `find_secondary_sb` reads at a time (`BSIZE`, 1 MiB).
const SCAN_CHUNK: usize = 1 << 20;

/// A superblock that passes `xfs_verify_sb`'s geometry checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfsSuperblock {
    raw: Vec<u8>,
}

impl XfsSuperblock {
    /// Parses `raw`; `None` without the magic or with an inconsistent geometry.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let raw = raw.get(..XFS_SB_READ)?;
        (&raw[..4] == XFS_SB_MAGIC && super::verify(raw))
            .then(|| XfsSuperblock { raw: raw.to_vec() })
    }

    /// The superblock at `offset` of `part`, if one is there.
    pub fn read_at(part: &mut dyn ReadAt, offset: u64) -> Result<Option<Self>> {
        Ok(read_opt(part, offset, XFS_SB_READ)?.and_then(|b| Self::parse(&b)))
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u64 {
        u64::from(be32(&self.raw, SB_BLOCKSIZE))
    }

    /// Blocks per AG.
    pub fn ag_blocks(&self) -> u64 {
        u64::from(be32(&self.raw, SB_AGBLOCKS))
    }

    /// Number of AGs.
    pub fn ag_count(&self) -> u32 {
        be32(&self.raw, SB_AGCOUNT)
    }

    /// Sector size in bytes.
    pub fn sector_size(&self) -> u16 {
        be16(&self.raw, SB_SECTSIZE)
    }

    /// The filesystem UUID.
    pub fn uuid(&self) -> &[u8] {
        &self.raw[SB_UUID..SB_UUID + 16]
    }

    /// Byte offset of AG `n`'s superblock (`None` on overflow).
    pub fn ag_offset(&self, n: u32) -> Option<u64> {
        u64::from(n)
            .checked_mul(self.ag_blocks())?
            .checked_mul(self.block_size())
    }

    /// The secondary superblock `xfs_repair` finds when the primary is
    /// unusable (`find_secondary_sb` in xfsprogs 6.1 `repair/sb.c`): with
    /// the primary's geometry gone, it first tries the AG boundaries of the
    /// geometry mkfs.xfs would choose by default for a device of this size
    /// ([`default_ag_bytes`]), then scans sector by sector from
    /// [`XFS_AG_MIN_BYTES`]. The first superblock whose geometry verifies
    /// (and, here, that sits at its own AG boundary) wins. The sector scan
    /// is modelled for [`SCAN_LIMIT`] bytes only: past it this fails with
    /// [`Error::Guest`] rather than read the whole device. Returns the byte
    /// offset and the superblock.
    pub fn find_secondary(part: &mut dyn ReadAt) -> Result<Option<(u64, XfsSuperblock)>> {
        let size = part.size();
        let stride = default_ag_bytes(size);
        if stride >= XFS_AG_MIN_BYTES {
            let mut off = stride;
            while off < size {
                if let Some(found) = scan(part, off, SCAN_CHUNK as u64)? {
                    return Ok(Some(found));
                }
                off += stride;
            }
        }
        let end = size.min(XFS_AG_MIN_BYTES + SCAN_LIMIT);
        let mut off = XFS_AG_MIN_BYTES;
        while off < end {
            if let Some(found) = scan(part, off, SCAN_CHUNK as u64)? {
                return Ok(Some(found));
            }
            off += SCAN_CHUNK as u64;
        }
        if end < size {
            return Err(Error::Guest(format!(
                "no secondary XFS superblock at the default AG boundaries nor in the first {} MiB xfs_repair scans sector by sector (the scan past it is not modelled)",
                end >> 20
            )));
        }
        Ok(None)
    }
}

/// The smallest AG (`XFS_AG_MIN_BYTES`, 16 MiB): where xfs_repair's sector
/// scan starts.
pub const XFS_AG_MIN_BYTES: u64 = 16 << 20;
/// The largest AG (`XFS_AG_MAX_BYTES`, 1 TiB).
pub const XFS_AG_MAX_BYTES: u64 = 1 << 40;
/// How far past [`XFS_AG_MIN_BYTES`] the sector-by-sector scan is modelled.
pub const SCAN_LIMIT: u64 = 1 << 30;

/// The AG size in bytes mkfs.xfs chooses by default for a single device of
/// `size` bytes with 4 KiB blocks (`calc_default_ag_geometry` in xfsprogs
/// `libfrog/util.c`/`mkfs`, as `guess_default_geometry` in `repair/sb.c`
/// calls it: no stripe, block log 12).
pub fn default_ag_bytes(size: u64) -> u64 {
    const LOG: u32 = 12;
    let dblocks = size >> LOG;
    let max = XFS_AG_MAX_BYTES >> LOG;
    let (mb, gb, tb) = (
        |n: u64| n << (20 - LOG),
        |n: u64| n << (30 - LOG),
        |n: u64| n << (40 - LOG),
    );
    let blocks = if dblocks >= tb(4) {
        max
    } else {
        let shift = if dblocks >= mb(128) {
            2
        } else {
            // The "multidisk" branch a small single device falls into.
            let mut shift: u32 = 5;
            for limit in [gb(512), gb(8), mb(128), mb(64), mb(32)] {
                if dblocks <= limit {
                    shift -= 1;
                }
            }
            shift
        };
        let mut blocks = dblocks >> shift;
        if dblocks & ((1 << shift) - 1) != 0 && blocks < max {
            blocks += 1;
        }
        blocks
    };
    blocks << LOG
}

/// The first superblock in the `len` bytes at `off` (each 512-byte sector)
/// whose geometry verifies and that sits at its own AG boundary.
fn scan(part: &mut dyn ReadAt, off: u64, len: u64) -> Result<Option<(u64, XfsSuperblock)>> {
    let Some(len) = part.size().checked_sub(off).map(|rest| rest.min(len)) else {
        return Ok(None);
    };
    let chunk = part.read_vec(off, len as usize)?;
    for s in (0..chunk.len()).step_by(512) {
        let at = off + s as u64;
        if chunk[s..].len() < 4 || &chunk[s..s + 4] != XFS_SB_MAGIC {
            continue;
        }
        if let Some(sb) = XfsSuperblock::read_at(part, at)? {
            let ag = sb.ag_blocks().saturating_mul(sb.block_size());
            if ag != 0 && at % ag == 0 && at / ag < u64::from(sb.ag_count()) {
                return Ok(Some((at, sb)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    /// A 3-AG geometry (4096-byte blocks, 16 MiB AGs, 40 MiB, 512-byte sectors).
    fn sb() -> Vec<u8> {
        let mut b = vec![0u8; XFS_SB_READ];
        b[..4].copy_from_slice(XFS_SB_MAGIC);
        b[SB_BLOCKSIZE..SB_BLOCKSIZE + 4].copy_from_slice(&4096u32.to_be_bytes());
        b[8..16].copy_from_slice(&10240u64.to_be_bytes()); // sb_dblocks
        b[80..84].copy_from_slice(&1u32.to_be_bytes()); // sb_rextsize
        b[SB_AGBLOCKS..SB_AGBLOCKS + 4].copy_from_slice(&4096u32.to_be_bytes());
        b[SB_AGCOUNT..SB_AGCOUNT + 4].copy_from_slice(&3u32.to_be_bytes());
        b[SB_SECTSIZE..SB_SECTSIZE + 2].copy_from_slice(&512u16.to_be_bytes());
        b[104..106].copy_from_slice(&512u16.to_be_bytes()); // sb_inodesize
        b[120] = 12; // blocklog
        b[121] = 9; // sectlog
        b[122] = 9; // inodelog
        b[123] = 3; // inopblog
        b
    }

    const AG: usize = 16 << 20;

    #[test]
    fn geometry_and_the_secondary_xfs_repair_finds() {
        let s = XfsSuperblock::parse(&sb()).unwrap();
        assert_eq!((s.ag_count(), s.sector_size()), (3, 512));
        assert_eq!(s.ag_offset(1), Some(AG as u64));
        let mut disk = vec![0u8; 40 << 20];
        // A stray magic that is no superblock, then AG 1's copy, found by
        // the sector scan (the default geometry for 40 MiB is 20 MiB AGs).
        disk[4096..4100].copy_from_slice(XFS_SB_MAGIC);
        disk[AG + 512..AG + 516].copy_from_slice(XFS_SB_MAGIC);
        disk[AG..AG + XFS_SB_READ].copy_from_slice(&sb());
        let (at, found) = XfsSuperblock::find_secondary(&mut MemDisk(disk.clone()))
            .unwrap()
            .unwrap();
        assert_eq!((at, found), (AG as u64, s));
        disk[AG] = 0;
        assert!(XfsSuperblock::find_secondary(&mut MemDisk(disk))
            .unwrap()
            .is_none());
        assert!(XfsSuperblock::parse(&[0u8; 8]).is_none());
    }

    #[test]
    fn overflowing_ag_offsets_are_none() {
        let mut b = sb();
        b[SB_AGBLOCKS..SB_AGBLOCKS + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        b[8..16].copy_from_slice(&(u64::from(u32::MAX) * 3).to_be_bytes());
        let s = XfsSuperblock::parse(&b).unwrap();
        assert_eq!(s.ag_offset(u32::MAX), None);
    }

    #[test]
    fn default_ag_sizes_follow_mkfs() {
        // mkfs.xfs: 4 AGs from 128 MiB to 4 TiB, 1 TiB AGs above.
        assert_eq!(default_ag_bytes(320 << 20), 80 << 20);
        assert_eq!(default_ag_bytes(1 << 40), 256 << 30);
        assert_eq!(default_ag_bytes(8 << 40), 1 << 40);
        assert_eq!(default_ag_bytes(40 << 20), 20 << 20);
    }
}

//! The XFS superblock (xfsprogs 6.1 `libxfs/xfs_format.h`, `struct
//! xfs_dsb`): every allocation group (AG) starts with a copy; AG 0's is the
//! primary. `xfs_repair` (`repair/sb.c`, `find_secondary_sb`) scans the
//! device for another copy when the primary is bad.

use crate::error::Result;
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

    /// Byte offset of AG `n`'s superblock.
    pub fn ag_offset(&self, n: u32) -> u64 {
        u64::from(n) * self.ag_blocks() * self.block_size()
    }

    /// The first secondary superblock `xfs_repair` finds when the primary
    /// is unusable: it scans the device after sector 0, sector by sector,
    /// for a copy whose geometry verifies; here a copy also has to sit at
    /// its own AG boundary. Returns its byte offset and the superblock.
    pub fn find_secondary(part: &mut dyn ReadAt) -> Result<Option<(u64, XfsSuperblock)>> {
        let size = part.size();
        let mut pos = 0u64;
        while pos < size {
            let len = (size - pos).min(SCAN_CHUNK as u64) as usize;
            let chunk = part.read_vec(pos, len)?;
            for s in (0..len).step_by(512) {
                let off = pos + s as u64;
                if off == 0 || chunk[s..].len() < 4 || &chunk[s..s + 4] != XFS_SB_MAGIC {
                    continue;
                }
                if let Some(sb) = Self::read_at(part, off)? {
                    let ag = sb.ag_blocks() * sb.block_size();
                    if ag != 0 && off % ag == 0 && off / ag < u64::from(sb.ag_count()) {
                        return Ok(Some((off, sb)));
                    }
                }
            }
            pos += len as u64;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    /// A 4-AG geometry (4096-byte blocks, 64 blocks per AG, 512-byte sectors).
    fn sb() -> Vec<u8> {
        let mut b = vec![0u8; XFS_SB_READ];
        b[..4].copy_from_slice(XFS_SB_MAGIC);
        b[SB_BLOCKSIZE..SB_BLOCKSIZE + 4].copy_from_slice(&4096u32.to_be_bytes());
        b[8..16].copy_from_slice(&256u64.to_be_bytes()); // sb_dblocks
        b[80..84].copy_from_slice(&1u32.to_be_bytes()); // sb_rextsize
        b[SB_AGBLOCKS..SB_AGBLOCKS + 4].copy_from_slice(&64u32.to_be_bytes());
        b[SB_AGCOUNT..SB_AGCOUNT + 4].copy_from_slice(&4u32.to_be_bytes());
        b[SB_SECTSIZE..SB_SECTSIZE + 2].copy_from_slice(&512u16.to_be_bytes());
        b[104..106].copy_from_slice(&512u16.to_be_bytes()); // sb_inodesize
        b[120] = 12; // blocklog
        b[121] = 9; // sectlog
        b[122] = 9; // inodelog
        b[123] = 3; // inopblog
        b
    }

    #[test]
    fn geometry_and_the_secondary_xfs_repair_finds() {
        let s = XfsSuperblock::parse(&sb()).unwrap();
        assert_eq!((s.ag_count(), s.sector_size()), (4, 512));
        assert_eq!(s.ag_offset(1), 64 * 4096);
        let mut disk = vec![0u8; 256 * 4096];
        // A stray magic that is no superblock, then AG 1's copy.
        disk[4096..4100].copy_from_slice(XFS_SB_MAGIC);
        disk[64 * 4096..64 * 4096 + XFS_SB_READ].copy_from_slice(&sb());
        let (at, found) = XfsSuperblock::find_secondary(&mut MemDisk(disk.clone()))
            .unwrap()
            .unwrap();
        assert_eq!((at, found), (64 * 4096, s));
        disk[64 * 4096] = 0;
        assert!(XfsSuperblock::find_secondary(&mut MemDisk(disk))
            .unwrap()
            .is_none());
        assert!(XfsSuperblock::parse(&[0u8; 8]).is_none());
    }
}

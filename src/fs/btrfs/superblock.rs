//! The btrfs superblock and its mirrors (btrfs on-disk format,
//! "Superblock"; the kernel's `include/uapi/linux/btrfs_tree.h` `struct
//! btrfs_super_block`, `fs/btrfs/disk-io.h` `btrfs_sb_offset`).
//!
//! The kernel mounts only from the primary copy; `btrfs check --super N`
//! and `btrfs rescue super-recover` (btrfs-progs 6.2) read the mirrors.

use crate::error::Result;
use crate::fs::bytes::{le16, le32, le64};
use crate::fs::read_opt;
use crate::image::ReadAt;

/// `BTRFS_SUPER_INFO_SIZE`: a superblock copy is 4 KiB.
pub const SUPER_INFO_SIZE: usize = 4096;
/// `BTRFS_SUPER_INFO_OFFSET`: the primary copy's offset.
pub const SUPER_INFO_OFFSET: u64 = 64 * 1024;
/// `btrfs_sb_offset(1)`: the first mirror, 16 KiB << 12.
pub const MIRROR_1_OFFSET: u64 = 64 << 20;
/// `btrfs_sb_offset(2)`: the second mirror, 16 KiB << 24.
pub const MIRROR_2_OFFSET: u64 = 256 << 30;
/// `BTRFS_MAGIC` ("_BHRfS_M") at `magic` (0x40).
pub const BTRFS_MAGIC: &[u8; 8] = b"_BHRfS_M";
/// `csum` (32 bytes; crc32c uses the first 4) at 0.
pub const SB_CSUM: usize = 0x00;
/// `fsid` (16 bytes).
pub const SB_FSID: usize = 0x20;
/// `bytenr` (le64): where this copy lives.
pub const SB_BYTENR: usize = 0x30;
/// `magic`.
pub const SB_MAGIC: usize = 0x40;
/// `generation` (le64).
pub const SB_GENERATION: usize = 0x48;
/// `num_devices` (le64).
pub const SB_NUM_DEVICES: usize = 0x88;
/// `csum_type` (le16): 0 = crc32c.
pub const SB_CSUM_TYPE: usize = 0xC4;
/// `BTRFS_CSUM_TYPE_CRC32`.
pub const CSUM_TYPE_CRC32C: u16 = 0;

/// The name `mkfs.btrfs --csum` gives checksum type `t` (`btrfs_csums`:
/// crc32c, xxhash, sha256, blake2).
pub fn csum_name(t: u16) -> &'static str {
    match t {
        0 => "crc32c",
        1 => "xxhash",
        2 => "sha256",
        3 => "blake2",
        _ => "unknown",
    }
}
/// The checksummed part: everything after `csum`.
const CSUM_START: usize = 0x20;

/// One superblock copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtrfsSuperblock {
    raw: Vec<u8>,
}

/// The offsets of the copies that fit on a device of `size` bytes
/// (`btrfs_sb_offset(i) + BTRFS_SUPER_INFO_SIZE <= size`).
pub fn copy_offsets(size: u64) -> Vec<u64> {
    [SUPER_INFO_OFFSET, MIRROR_1_OFFSET, MIRROR_2_OFFSET]
        .into_iter()
        .filter(|&o| o + SUPER_INFO_SIZE as u64 <= size)
        .collect()
}

impl BtrfsSuperblock {
    /// The copy at `offset` of `part`, when it has the magic.
    pub fn read_at(part: &mut dyn ReadAt, offset: u64) -> Result<Option<Self>> {
        Ok(read_opt(part, offset, SUPER_INFO_SIZE)?
            .filter(|b| &b[SB_MAGIC..SB_MAGIC + 8] == BTRFS_MAGIC)
            .map(|raw| BtrfsSuperblock { raw }))
    }

    /// `fsid`.
    pub fn fsid(&self) -> &[u8] {
        &self.raw[SB_FSID..SB_FSID + 16]
    }

    /// `bytenr`.
    pub fn bytenr(&self) -> u64 {
        le64(&self.raw, SB_BYTENR)
    }

    /// `generation`.
    pub fn generation(&self) -> u64 {
        le64(&self.raw, SB_GENERATION)
    }

    /// `num_devices`.
    pub fn num_devices(&self) -> u64 {
        le64(&self.raw, SB_NUM_DEVICES)
    }

    /// `csum_type`.
    pub fn csum_type(&self) -> u16 {
        le16(&self.raw, SB_CSUM_TYPE)
    }

    /// The checksum verifies (crc32c only; other types are not modelled
    /// and count as not verified).
    pub fn checksum_ok(&self) -> bool {
        le16(&self.raw, SB_CSUM_TYPE) == CSUM_TYPE_CRC32C
            && le32(&self.raw, SB_CSUM) == crc32c::crc32c(&self.raw[CSUM_START..])
    }

    /// A copy the tools accept at `offset`: magic, its own bytenr, checksum.
    pub fn valid_at(&self, offset: u64) -> bool {
        self.bytenr() == offset && self.checksum_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    fn copy_at(offset: u64) -> Vec<u8> {
        let mut b = vec![0u8; SUPER_INFO_SIZE];
        b[SB_MAGIC..SB_MAGIC + 8].copy_from_slice(BTRFS_MAGIC);
        b[SB_BYTENR..SB_BYTENR + 8].copy_from_slice(&offset.to_le_bytes());
        b[SB_NUM_DEVICES..SB_NUM_DEVICES + 8].copy_from_slice(&1u64.to_le_bytes());
        let c = crc32c::crc32c(&b[0x20..]);
        b[..4].copy_from_slice(&c.to_le_bytes());
        b
    }

    #[test]
    fn copies_their_places_and_checksums() {
        assert_eq!(copy_offsets(64 << 20), vec![SUPER_INFO_OFFSET]);
        assert_eq!(
            copy_offsets((64 << 20) + 4096),
            vec![SUPER_INFO_OFFSET, MIRROR_1_OFFSET]
        );
        let mut disk = vec![0u8; 1 << 20];
        disk[65536..65536 + 4096].copy_from_slice(&copy_at(SUPER_INFO_OFFSET));
        let mut d = MemDisk(disk);
        let s = BtrfsSuperblock::read_at(&mut d, SUPER_INFO_OFFSET)
            .unwrap()
            .unwrap();
        assert!(s.valid_at(SUPER_INFO_OFFSET));
        assert!(!s.valid_at(MIRROR_1_OFFSET));
        assert_eq!(s.num_devices(), 1);
        d.0[65536 + 0x100] ^= 1;
        let s = BtrfsSuperblock::read_at(&mut d, SUPER_INFO_OFFSET)
            .unwrap()
            .unwrap();
        assert!(!s.checksum_ok());
        assert!(BtrfsSuperblock::read_at(&mut d, 0).unwrap().is_none());
    }
}

//! Filesystem identification (in the manner of `blkid -p`) and the NTFS boot-sector model.
//!
//! [`probe`] looks for each known signature in libblkid's order
//! (`libblkid/src/superblocks/superblocks.c`, util-linux 2.38) and returns the
//! first match with blkid's TYPE name and its label and UUID formatted as
//! blkid formats them. One file per filesystem family, or a folder for a
//! filesystem qfault models in full ([`ntfs`]); each exposes a
//! `probe(&mut dyn ReadAt) -> Result<Option<FsInfo>>` that returns `Ok(None)`
//! when the signature is absent or the superblock fails blkid's checks.
//!
//! Reads past the end of a partition mean "not this filesystem", never an
//! error; real I/O errors are passed on.

pub mod btrfs;
pub mod exfat;
pub mod ext;
pub mod ext4;
pub mod fat;
pub mod iso9660;
pub mod luks;
pub mod lvm;
pub mod ntfs;
pub mod swap;
mod text;
pub mod xfs;

use crate::error::{Error, Result};
use crate::image::ReadAt;
pub use ntfs::{predict_ntfsfix, NtfsBootSector, NtfsGeometry, NtfsfixPrediction};
pub use ntfs::{read_volume, VolumeSummary};

/// What [`probe`] found in a partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FsInfo {
    /// blkid's TYPE: `ntfs`, `vfat`, `exfat`, `ext2`, `ext3`, `ext4`, `xfs`,
    /// `btrfs`, `swap`, `crypto_LUKS`, `LVM2_member`, `iso9660`, ...
    pub fstype: &'static str,
    /// blkid's LABEL (trailing whitespace removed; absent when empty).
    pub label: Option<String>,
    /// blkid's UUID: a UUID, or a serial number in blkid's format.
    pub uuid: Option<String>,
    /// blkid's VERSION where it sets one (e.g. `FAT32`, `1.0`).
    pub version: Option<String>,
    /// For NTFS: the geometry recipes need.
    pub ntfs: Option<NtfsGeometry>,
    /// For ext2/3/4: the superblock and descriptor 0 (what the ext4
    /// recipes' `verify` compares the overlay with; not serialised).
    #[serde(skip)]
    pub ext4: Option<ext4::Snapshot>,
}

impl FsInfo {
    /// An `FsInfo` with only the type set.
    pub fn new(fstype: &'static str) -> Self {
        FsInfo {
            fstype,
            label: None,
            uuid: None,
            version: None,
            ntfs: None,
            ext4: None,
        }
    }
}

/// One filesystem probe.
type Probe = fn(&mut dyn ReadAt) -> Result<Option<FsInfo>>;

/// The probes in libblkid's order (RAID/LVM/crypto containers first, then
/// filesystems in the order of its `idinfos` table).
const PROBES: &[Probe] = &[
    lvm::probe,
    luks::probe,
    fat::probe,
    swap::probe,
    xfs::probe,
    ext::probe,
    iso9660::probe,
    ntfs::probe,
    btrfs::probe,
    exfat::probe,
];

/// Identifies the filesystem (or container) in `part`, as `blkid -p` would.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    for p in PROBES {
        if let Some(info) = p(part)? {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// True when sector 0 of `disk` is a FAT or NTFS boot sector that blkid
/// accepts; such a sector carries 0x55AA but is not an MBR.
pub fn is_boot_sector_filesystem(disk: &mut dyn ReadAt) -> Result<bool> {
    Ok(fat::is_fat(disk)? || ntfs::probe(disk)?.is_some())
}

/// Reads `len` bytes at `offset`, or `None` when the range is outside `part`.
///
/// `len` is bounded by the caller (superblock-sized structures only).
pub(crate) fn read_opt(part: &mut dyn ReadAt, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
    match part.read_vec(offset, len) {
        Ok(v) => Ok(Some(v)),
        Err(Error::OutOfRange { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Little-endian and big-endian field readers for fixed-size superblocks.
///
/// Callers index only within buffers they sized themselves.
pub(crate) mod bytes {
    /// u16 little-endian at `off`.
    pub fn le16(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    /// u32 little-endian at `off`.
    pub fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    /// u64 little-endian at `off`.
    pub fn le64(b: &[u8], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[off..off + 8]);
        u64::from_le_bytes(a)
    }
    /// u16 big-endian at `off`.
    pub fn be16(b: &[u8], off: usize) -> u16 {
        u16::from_be_bytes([b[off], b[off + 1]])
    }
    /// u32 big-endian at `off`.
    pub fn be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    /// u64 big-endian at `off`.
    pub fn be64(b: &[u8], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[off..off + 8]);
        u64::from_be_bytes(a)
    }
}

#[cfg(test)]
mod tests;

//! Filesystem identification (in the manner of `blkid -p`) and the NTFS boot-sector model.
//!
//! [`probe`] looks for each known signature in libblkid's order
//! (`libblkid/src/superblocks/superblocks.c`, util-linux 2.38) and returns the
//! first match with blkid's TYPE name and its label and UUID formatted as
//! blkid formats them, or nothing when two signatures make blkid's result
//! ambivalent ([`probe_all`] lists them). One file per filesystem family, or a folder for a
//! filesystem qfault models in full ([`ntfs`]); each exposes a
//! `probe(&mut dyn ReadAt) -> Result<Option<FsInfo>>` that returns `Ok(None)`
//! when the signature is absent or the superblock fails blkid's checks.
//!
//! Reads past the end of a partition mean "not this filesystem", never an
//! error; real I/O errors are passed on.

pub mod bitlocker;
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
pub mod udf;
pub mod ufs;
pub mod xfs;

use crate::error::{Error, Result};
use crate::image::ReadAt;
pub use ntfs::{predict_ntfsfix, NtfsBootSector, NtfsGeometry, NtfsfixPrediction};
pub use ntfs::{read_volume, VolumeSummary};

/// What [`probe`] found in a partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FsInfo {
    /// blkid's TYPE: `ntfs`, `vfat`, `exfat`, `ext2`, `ext3`, `ext4`, `xfs`,
    /// `btrfs`, `swap`, `crypto_LUKS`, `LVM2_member`, `BitLocker`, `iso9660`,
    /// `udf`, `ufs`, ...
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
    bitlocker::probe,
    fat::probe,
    swap::probe,
    xfs::probe,
    ext::probe,
    udf::probe,
    iso9660::probe,
    ufs::probe,
    ntfs::probe,
    btrfs::probe,
    exfat::probe,
];

/// Types libblkid flags `BLKID_IDINFO_TOLERANT`: found beside another
/// signature they do not make the result ambivalent (a UDF bridge disc is
/// UDF and ISO 9660 at once; `superblocks.c`, util-linux 2.38).
const TOLERANT: &[&str] = &["udf", "iso9660"];
/// Containers (libblkid's RAID and crypto usage): the first one found ends
/// the probing, nothing beside it is looked for.
const CONTAINERS: &[&str] = &["LVM2_member", "crypto_LUKS", "BitLocker"];
/// libblkid's "tiny" device (`BLKID_FL_TINY_DEV`, at most 1440 KiB, a
/// floppy): the first signature is the answer, no ambivalence check.
const TINY_DEVICE: u64 = 1440 * 1024;

/// Every signature [`probe_all`] found, in libblkid's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signatures {
    /// The signatures found (at most one unless [`Signatures::ambivalent`]
    /// or all but one are tolerant).
    pub found: Vec<FsInfo>,
}

impl Signatures {
    /// True when `blkid -p` reports "ambivalent result" (exit 8) and no
    /// TYPE: two or more signatures, at least one of them not tolerant
    /// (libblkid's `superblocks_safeprobe`).
    pub fn ambivalent(&self) -> bool {
        self.found.len() > 1 && self.found.iter().any(|f| !TOLERANT.contains(&f.fstype))
    }

    /// What `blkid -p` reports: the first signature, or `None` for no
    /// signature or an ambivalent result.
    pub fn blkid(self) -> Option<FsInfo> {
        if self.ambivalent() {
            None
        } else {
            self.found.into_iter().next()
        }
    }

    /// The types found, in probing order (for messages).
    pub fn types(&self) -> Vec<&'static str> {
        self.found.iter().map(|f| f.fstype).collect()
    }
}

/// Every filesystem (or container) signature in `part`, as libblkid's
/// `superblocks_safeprobe` collects them: all probes run unless the device
/// is tiny or a container is found first.
pub fn probe_all(part: &mut dyn ReadAt) -> Result<Signatures> {
    let mut found: Vec<FsInfo> = Vec::new();
    for p in PROBES {
        if let Some(info) = p(part)? {
            let last = (found.is_empty() && part.size() <= TINY_DEVICE)
                || CONTAINERS.contains(&info.fstype);
            found.push(info);
            if last {
                break;
            }
        }
    }
    Ok(Signatures { found })
}

/// Identifies the filesystem (or container) in `part`, as `blkid -p` would:
/// `None` when nothing is found or when the result is ambivalent (see
/// [`probe_all`] for every signature).
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    Ok(probe_all(part)?.blkid())
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

//! The exFAT boot regions (Microsoft exFAT specification, section 3.1: main
//! boot sector; 3.4: boot checksum sub-region; the main boot region is
//! sectors 0..=11, the backup boot region 12..=23) and the checks made on
//! them by exfat-fuse 1.3.0 (`verify_vbr_checksum`) and exfatprogs 1.2.0
//! `fsck.exfat` (`read_boot_region`, `restore_boot_region`).

use crate::error::{Error, Result};
use crate::fs::bytes::{le32, le64};
use crate::image::ReadAt;

/// FileSystemName at offset 3 (section 3.1.2).
pub const FILE_SYSTEM_NAME: &[u8; 8] = b"EXFAT   ";
/// VolumeLength, u64, in sectors (section 3.1.6).
pub const VOLUME_LENGTH: usize = 72;
/// ClusterCount, u32 (section 3.1.10).
pub const CLUSTER_COUNT: usize = 92;
/// FileSystemRevision: minor at 104, major at 105 (section 3.1.13).
pub const FILE_SYSTEM_REVISION: usize = 104;
/// VolumeFlags, u16 (section 3.1.13), excluded from the boot checksum.
pub const VOLUME_FLAGS: usize = 106;
/// VolumeDirty, bit 1 of VolumeFlags (section 3.1.13.2).
pub const VOLUME_DIRTY: u16 = 0x0002;
/// BytesPerSectorShift, u8 (section 3.1.14).
pub const BYTES_PER_SECTOR_SHIFT: usize = 108;
/// SectorsPerClusterShift, u8 (section 3.1.15).
pub const SECTORS_PER_CLUSTER_SHIFT: usize = 109;
/// NumberOfFats, u8 (section 3.1.16).
pub const NUMBER_OF_FATS: usize = 110;
/// PercentInUse, u8 (section 3.1.18), excluded from the boot checksum.
pub const PERCENT_IN_USE: usize = 112;
/// BootCode, 390 bytes at 120 (section 3.1.19).
pub const BOOT_CODE: usize = 120;
/// Sectors in a boot region (section 3: 12), the last being the checksum.
pub const BOOT_REGION_SECTORS: u64 = 12;
/// Index of the boot checksum sector in a region (section 3.4).
pub const CHECKSUM_SECTOR: u64 = 11;
/// First sector of the backup boot region (section 3).
pub const BACKUP_REGION_SECTOR: u64 = 12;
/// Smallest and largest BytesPerSectorShift (section 3.1.14: 512..4096 bytes).
pub const SECTOR_SHIFT_RANGE: std::ops::RangeInclusive<u8> = 9..=12;
/// fsck.exfat refuses clusters above 32 MiB (`read_boot_region`).
const FSCK_MAX_CLUSTER: u64 = 32 << 20;

/// The boot checksum (section 3.4, figure 1) over the first 11 sectors of
/// `region` (sector size `ss`), skipping VolumeFlags and PercentInUse of
/// sector 0.
pub fn boot_checksum(region: &[u8], ss: usize) -> u32 {
    let mut sum: u32 = 0;
    for (i, &b) in region
        .iter()
        .take(ss * CHECKSUM_SECTOR as usize)
        .enumerate()
    {
        if i == VOLUME_FLAGS || i == VOLUME_FLAGS + 1 || i == PERCENT_IN_USE {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u32::from(b));
    }
    sum
}

/// One boot region (12 sectors) as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRegion {
    /// The sector size the region was read with.
    pub sector_size: u64,
    /// Its 12 sectors.
    pub bytes: Vec<u8>,
}

impl BootRegion {
    /// The boot checksum computed over sectors 0..=10.
    pub fn computed_checksum(&self) -> u32 {
        boot_checksum(&self.bytes, self.sector_size as usize)
    }

    /// The first 32-bit value of the checksum sector that differs from the
    /// computed checksum (what both tools print), with the computed one;
    /// `None` when the checksum sector is right.
    pub fn checksum_mismatch(&self) -> Option<(u32, u32)> {
        let computed = self.computed_checksum();
        let start = (CHECKSUM_SECTOR * self.sector_size) as usize;
        self.bytes[start..]
            .chunks_exact(4)
            .map(|c| le32(c, 0))
            .find(|&v| v != computed)
            .map(|v| (v, computed))
    }

    /// VolumeFlags has VolumeDirty set.
    pub fn volume_dirty(&self) -> bool {
        u16::from_le_bytes([self.bytes[VOLUME_FLAGS], self.bytes[VOLUME_FLAGS + 1]]) & VOLUME_DIRTY
            != 0
    }

    /// Why fsck.exfat's `read_boot_region` rejects this region on a volume
    /// of `volume_size` bytes (its order of checks), or `None`.
    pub fn fsck_problem(&self, volume_size: u64) -> Option<String> {
        let b = &self.bytes;
        if &b[3..11] != FILE_SYSTEM_NAME {
            return Some("failed to find exfat file system".into());
        }
        if let Some((stored, computed)) = self.checksum_mismatch() {
            return Some(format!(
                "checksum of boot region is not correct. {}, but expected {}",
                hash(stored),
                hash(computed)
            ));
        }
        let shift = b[BYTES_PER_SECTOR_SHIFT];
        if !SECTOR_SHIFT_RANGE.contains(&shift) {
            return Some("too small or big sector size".into());
        }
        let ss = 1u64 << shift;
        let cluster = ss.checked_shl(u32::from(b[SECTORS_PER_CLUSTER_SHIFT]));
        if cluster.is_none_or(|c| c > FSCK_MAX_CLUSTER) {
            return Some("too big cluster size".into());
        }
        let cluster = cluster.unwrap_or(u64::MAX);
        if b[FILE_SYSTEM_REVISION + 1] != 1 || b[FILE_SYSTEM_REVISION] != 0 {
            return Some("unsupported exfat version".into());
        }
        if b[NUMBER_OF_FATS] != 1 {
            return Some("unsupported FAT count".into());
        }
        if le64(b, VOLUME_LENGTH)
            .checked_mul(ss)
            .is_none_or(|l| l > volume_size)
        {
            return Some("too large sector count".into());
        }
        if u64::from(le32(b, CLUSTER_COUNT))
            .checked_mul(cluster)
            .is_none_or(|l| l > volume_size)
        {
            return Some("too large cluster count".into());
        }
        None
    }
}

/// fsck.exfat prints checksums with `%#x`: `0` for zero, `0x…` otherwise.
pub fn hash(v: u32) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

/// The main and backup boot regions of an exFAT volume, read with the
/// sector size of the main boot sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRegions {
    /// Sectors 0..=11.
    pub main: BootRegion,
    /// Sectors 12..=23 (`None`: past the end of the volume).
    pub backup: Option<BootRegion>,
}

impl BootRegions {
    /// Reads both regions of `part`; `None` when sector 0 is not exFAT or
    /// its BytesPerSectorShift is outside 9..=12, or the main region does
    /// not fit.
    pub fn read(part: &mut dyn ReadAt) -> Result<Option<Self>> {
        let Some(s0) = read(part, 0, 512)? else {
            return Ok(None);
        };
        if &s0[3..11] != FILE_SYSTEM_NAME
            || !SECTOR_SHIFT_RANGE.contains(&s0[BYTES_PER_SECTOR_SHIFT])
        {
            return Ok(None);
        }
        let ss = 1u64 << s0[BYTES_PER_SECTOR_SHIFT];
        let len = (BOOT_REGION_SECTORS * ss) as usize;
        let Some(main) = read(part, 0, len)? else {
            return Ok(None);
        };
        let backup = read(part, BACKUP_REGION_SECTOR * ss, len)?;
        let region = |bytes| BootRegion {
            sector_size: ss,
            bytes,
        };
        Ok(Some(BootRegions {
            main: region(main),
            backup: backup.map(region),
        }))
    }

    /// The region `fsck.exfat -y` would restore from: the backup, when
    /// `read_boot_region` accepts it (with the main region's sector size;
    /// exfatprogs then tries other sector sizes, which qfault does not
    /// model).
    pub fn usable_backup(&self, volume_size: u64) -> Option<&BootRegion> {
        self.backup
            .as_ref()
            .filter(|b| b.fsck_problem(volume_size).is_none())
    }

    /// The main region as `fsck.exfat -y` leaves it after restoring the
    /// backup: the backup's 12 sectors, with VolumeDirty cleared in sector 0
    /// (fsck marks the volume dirty and clean again through the backup's
    /// boot sector, which also undoes its PercentInUse := 0xFF).
    pub fn restored_main(&self, volume_size: u64) -> Option<Vec<u8>> {
        let b = self.usable_backup(volume_size)?;
        let mut out = b.bytes.clone();
        out[VOLUME_FLAGS] &= !(VOLUME_DIRTY as u8);
        Some(out)
    }
}

/// Reads `len` bytes at `off`, `None` past the end of `part`.
fn read(part: &mut dyn ReadAt, off: u64, len: usize) -> Result<Option<Vec<u8>>> {
    match part.read_vec(off, len) {
        Ok(v) => Ok(Some(v)),
        Err(Error::OutOfRange { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    /// A minimal valid 1 MiB exFAT volume's boot regions (512-byte sectors).
    fn volume() -> MemDisk {
        let mut d = vec![0u8; 1 << 20];
        let s = &mut d[..512];
        s[0..3].copy_from_slice(&[0xEB, 0x76, 0x90]);
        s[3..11].copy_from_slice(FILE_SYSTEM_NAME);
        s[VOLUME_LENGTH..VOLUME_LENGTH + 8].copy_from_slice(&2048u64.to_le_bytes());
        s[CLUSTER_COUNT..CLUSTER_COUNT + 4].copy_from_slice(&100u32.to_le_bytes());
        s[FILE_SYSTEM_REVISION + 1] = 1;
        s[BYTES_PER_SECTOR_SHIFT] = 9;
        s[SECTORS_PER_CLUSTER_SHIFT] = 3;
        s[NUMBER_OF_FATS] = 1;
        s[PERCENT_IN_USE] = 0xFF;
        s[510] = 0x55;
        s[511] = 0xAA;
        let sum = boot_checksum(&d[..12 * 512], 512);
        for c in d[11 * 512..12 * 512].chunks_exact_mut(4) {
            c.copy_from_slice(&sum.to_le_bytes());
        }
        let (main, rest) = d.split_at_mut(12 * 512);
        rest[..12 * 512].copy_from_slice(main);
        MemDisk(d)
    }

    #[test]
    fn checksum_skips_flags_and_percent_in_use() {
        let mut d = volume();
        let r = BootRegions::read(&mut d).unwrap().unwrap();
        assert_eq!(r.main.checksum_mismatch(), None);
        assert_eq!(r.main.fsck_problem(1 << 20), None);
        let mut m = r.main.clone();
        m.bytes[VOLUME_FLAGS] ^= 2;
        m.bytes[PERCENT_IN_USE] = 7;
        assert_eq!(m.checksum_mismatch(), None);
        assert!(m.volume_dirty());
        m.bytes[0x100] ^= 0xFF;
        let (stored, computed) = m.checksum_mismatch().unwrap();
        assert_eq!(stored, r.main.computed_checksum());
        assert_ne!(stored, computed);
        assert!(m
            .fsck_problem(1 << 20)
            .unwrap()
            .starts_with("checksum of boot region is not correct. 0x"));
        assert_eq!(r.restored_main(1 << 20).unwrap(), r.main.bytes);
    }

    #[test]
    fn fsck_checks_in_order() {
        let mut d = volume();
        let r = BootRegions::read(&mut d).unwrap().unwrap();
        assert_eq!(
            r.main.fsck_problem(1000).as_deref(),
            Some("too large sector count")
        );
        assert_eq!(hash(0), "0");
        assert_eq!(hash(0x2247437), "0x2247437");
        let mut short = MemDisk(d.0[..8 * 512].to_vec());
        assert_eq!(BootRegions::read(&mut short).unwrap(), None);
    }
}

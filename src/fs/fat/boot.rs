//! The FAT boot sector and BPB (Microsoft FAT specification v1.03, section
//! 3 "Boot Sector and BPB"; FAT32 fields: section 3.3), the FSInfo sector
//! (section 5) and the volume layout derived from them (section 3.5, and
//! dosfstools 4.2 `read_boot`, whose rules and fatal messages
//! [`Fat32Boot::parse`] follows).

use crate::fs::bytes::{le16, le32};
use std::fmt;

/// Size of the boot-sector structure dosfstools reads and compares
/// (`struct boot_sector`, 512 bytes whatever the logical sector size).
pub const BOOT_SECTOR_SIZE: usize = 512;
/// BPB_BytsPerSec, u16 (section 3.1).
pub const BPB_BYTS_PER_SEC: usize = 0x0B;
/// BPB_SecPerClus, u8 (section 3.1).
pub const BPB_SEC_PER_CLUS: usize = 0x0D;
/// BPB_RsvdSecCnt, u16 (section 3.1).
pub const BPB_RSVD_SEC_CNT: usize = 0x0E;
/// BPB_NumFATs, u8 (section 3.1).
pub const BPB_NUM_FATS: usize = 0x10;
/// BPB_RootEntCnt, u16 (section 3.1; 0 on FAT32).
pub const BPB_ROOT_ENT_CNT: usize = 0x11;
/// BPB_TotSec16, u16 (section 3.1).
pub const BPB_TOT_SEC16: usize = 0x13;
/// BPB_Media, u8 (section 3.1).
pub const BPB_MEDIA: usize = 0x15;
/// BPB_FATSz16, u16 (section 3.1; 0 on FAT32).
pub const BPB_FAT_SZ16: usize = 0x16;
/// BPB_TotSec32, u32 (section 3.1).
pub const BPB_TOT_SEC32: usize = 0x20;
/// BPB_FATSz32, u32 (section 3.3).
pub const BPB_FAT_SZ32: usize = 0x24;
/// BPB_RootClus, u32 (section 3.3).
pub const BPB_ROOT_CLUS: usize = 0x2C;
/// BPB_FSInfo, u16 (section 3.3).
pub const BPB_FS_INFO: usize = 0x30;
/// BPB_BkBootSec, u16 (section 3.3): the sector of the backup boot sector, 0 for none.
pub const BPB_BK_BOOT_SEC: usize = 0x32;
/// BS_Reserved1 on FAT32, u8 (section 3.3): Linux and dosfstools keep the
/// "dirty" state in bit 0 ([`FAT_STATE_DIRTY`]).
pub const BS_RESERVED1_32: usize = 0x41;
/// BS_VolID on FAT32, u32 (section 3.3): the volume serial number.
pub const BS_VOL_ID_32: usize = 0x43;
/// Bit 0 of [`BS_RESERVED1_32`]: the volume was not cleanly unmounted
/// (dosfstools `FAT_STATE_DIRTY`, Linux `FAT_STATE_DIRTY`).
pub const FAT_STATE_DIRTY: u8 = 0x01;
/// Size of a FAT32 entry (section 4).
pub const FAT32_ENTRY_SIZE: u64 = 4;
/// The cluster-number bits of a FAT32 entry; the high 4 are reserved (section 4).
pub const FAT32_ENTRY_MASK: u32 = 0x0FFF_FFFF;
/// `FAT[1]` bit of FAT32: clean shutdown (section 4, `ClnShutBitMask`).
pub const FAT32_CLEAN_SHUTDOWN: u32 = 0x0800_0000;
/// The bits `FAT[0]` must have for dosfstools to call a FAT32 FAT intact
/// (`FAT_EXTD`: the 28 entry bits but the low 4, which hold BPB_Media).
pub const FAT32_MEDIA_ENTRY_BITS: u32 = 0x0FFF_FFF0;
/// The first data cluster number (section 3.5).
pub const FIRST_DATA_CLUSTER: u32 = 2;
/// FSI_LeadSig at FSInfo offset 0 (section 5).
pub const FSI_LEAD_SIG: u32 = 0x4161_5252;
/// FSI_StrucSig at FSInfo offset 484 (section 5).
pub const FSI_STRUC_SIG: u32 = 0x6141_7272;
/// FSI_TrailSig at FSInfo offset 508 (section 5).
pub const FSI_TRAIL_SIG: u32 = 0xAA55_0000;
/// Offset of FSI_Free_Count in the FSInfo sector (section 5).
pub const FSI_FREE_COUNT: usize = 488;
/// dosfstools' FAT32 threshold: fewer clusters draw a warning (`FAT16_THRESHOLD`).
const FAT16_THRESHOLD: u64 = 65525;

/// Why dosfstools 4.2 gives up on a boot sector (`die(...)` in
/// `read_boot`: message on stderr, exit 1, nothing written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatBootError(pub String);

impl fmt::Display for FatBootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The FAT type as dosfstools decides it: FAT32 when BPB_FATSz16 is 0 and
/// BPB_FATSz32 is not (blkid decides the same way); FAT12/16 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    /// FAT12 or FAT16 (by cluster count).
    Fat12Or16,
    /// FAT32.
    Fat32,
}

/// The boot-sector fields and the layout derived from them, as dosfstools
/// reads them. Sizes in bytes unless named `_sectors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fat32Boot {
    /// BPB_BytsPerSec.
    pub bytes_per_sector: u32,
    /// BPB_SecPerClus.
    pub sectors_per_cluster: u32,
    /// BPB_RsvdSecCnt.
    pub reserved_sectors: u32,
    /// BPB_NumFATs.
    pub num_fats: u32,
    /// BPB_RootEntCnt.
    pub root_entries: u32,
    /// BPB_TotSec16, or BPB_TotSec32 when it is 0.
    pub total_sectors: u32,
    /// BPB_FATSz16, or BPB_FATSz32 when it is 0.
    pub fat_size_sectors: u32,
    /// FAT32 or not.
    pub fat_type: FatType,
    /// BPB_RootClus (FAT32), reserved bits cut.
    pub root_cluster: u32,
    /// BPB_FSInfo (FAT32).
    pub fs_info_sector: u32,
    /// BPB_BkBootSec (FAT32).
    pub backup_boot_sector: u32,
    /// BS_Reserved1 (FAT32): bit 0 is the dirty flag.
    pub boot_flags: u8,
    /// Data clusters as dosfstools counts them.
    pub data_clusters: u64,
}

impl Fat32Boot {
    /// Reads `s` (the first [`BOOT_SECTOR_SIZE`] bytes of the volume) as
    /// dosfstools' `read_boot` does, failing with its message where it dies.
    /// `volume_size` is the partition's size (dosfstools reads the last
    /// even-numbered sector of the volume first).
    pub fn parse(s: &[u8], volume_size: u64) -> Result<Self, FatBootError> {
        let die = |m: String| Err(FatBootError(m));
        if s.len() < BOOT_SECTOR_SIZE {
            return die("the boot sector is past the end of the volume".into());
        }
        let bps = u32::from(le16(s, BPB_BYTS_PER_SEC));
        if bps == 0 {
            return die("Logical sector size is zero.".into());
        }
        if bps % 512 != 0 {
            return die(format!(
                "Logical sector size ({bps} bytes) is not a multiple of the physical sector size."
            ));
        }
        let spc = u32::from(s[BPB_SEC_PER_CLUS]);
        let cluster_size = u64::from(spc) * u64::from(bps);
        if cluster_size == 0 {
            return die("Cluster size is zero.".into());
        }
        let fats = u32::from(s[BPB_NUM_FATS]);
        if fats != 1 && fats != 2 {
            return die(format!(
                "Currently, only 1 or 2 FATs are supported, not {fats}."
            ));
        }
        let sectors16 = u32::from(le16(s, BPB_TOT_SEC16));
        let total_sectors = if sectors16 != 0 {
            sectors16
        } else {
            le32(s, BPB_TOT_SEC32)
        };
        // dosfstools reads sector (total & ~1) - 1 first.
        let probe_sector = u64::from(total_sectors & !1).wrapping_sub(1);
        let fits = probe_sector
            .checked_add(1)
            .and_then(|n| n.checked_mul(u64::from(bps)))
            .is_some_and(|end| end <= volume_size);
        if !fits {
            return die(format!(
                "Failed to read sector {}.",
                (total_sectors & !1).wrapping_sub(1)
            ));
        }
        let fat16 = u32::from(le16(s, BPB_FAT_SZ16));
        let fat32 = le32(s, BPB_FAT_SZ32);
        let fat_size_sectors = if fat16 != 0 { fat16 } else { fat32 };
        if fat_size_sectors == 0 {
            return die("FAT size is zero.".into());
        }
        let reserved = u32::from(le16(s, BPB_RSVD_SEC_CNT));
        let root_entries = u32::from(le16(s, BPB_ROOT_ENT_CNT));
        let root_start =
            (u64::from(reserved) + u64::from(fats) * u64::from(fat_size_sectors)) * u64::from(bps);
        let root_bytes = (u64::from(root_entries) * 32).div_ceil(u64::from(bps)) * u64::from(bps);
        let data_start = root_start + root_bytes;
        let data_size = (u64::from(total_sectors) * u64::from(bps)).saturating_sub(data_start);
        if data_size < cluster_size {
            return die("Filesystem has no space for any data clusters".into());
        }
        let data_clusters = data_size / cluster_size;
        let fat_type = if fat16 == 0 && fat32 != 0 {
            FatType::Fat32
        } else {
            FatType::Fat12Or16
        };
        let mut b = Fat32Boot {
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            reserved_sectors: reserved,
            num_fats: fats,
            root_entries,
            total_sectors,
            fat_size_sectors,
            fat_type,
            root_cluster: 0,
            fs_info_sector: 0,
            backup_boot_sector: 0,
            boot_flags: 0,
            data_clusters,
        };
        if fat_type == FatType::Fat32 {
            b.root_cluster = le32(s, BPB_ROOT_CLUS) & FAT32_ENTRY_MASK;
            if b.root_cluster == 0 && root_entries == 0 {
                return die("No root directory!".into());
            }
            b.fs_info_sector = u32::from(le16(s, BPB_FS_INFO));
            b.backup_boot_sector = u32::from(le16(s, BPB_BK_BOOT_SEC));
            b.boot_flags = s[BS_RESERVED1_32];
            let entries = u64::from(fat_size_sectors) * u64::from(bps) / FAT32_ENTRY_SIZE;
            if data_clusters > entries.saturating_sub(2) {
                return die(format!(
                    "Filesystem has {data_clusters} clusters but only space for {} FAT entries.",
                    entries.saturating_sub(2)
                ));
            }
        }
        Ok(b)
    }

    /// Whether dosfstools would warn that a FAT32 volume has too few
    /// clusters (it still checks it).
    pub fn few_clusters(&self) -> bool {
        self.fat_type == FatType::Fat32 && self.data_clusters < FAT16_THRESHOLD
    }

    /// Bytes per sector as u64.
    pub fn sector(&self) -> u64 {
        u64::from(self.bytes_per_sector)
    }

    /// Byte offset of FAT number `n` (0-based) in the volume (section 3.5).
    pub fn fat_offset(&self, n: u32) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(n) * u64::from(self.fat_size_sectors))
            * self.sector()
    }

    /// Size of one FAT in bytes (BPB_FATSz32 × BPB_BytsPerSec).
    pub fn fat_bytes(&self) -> u64 {
        u64::from(self.fat_size_sectors) * self.sector()
    }

    /// The FAT32 bytes dosfstools compares between the FATs and copies
    /// over the loser: entries 0 .. data clusters + 2 (`eff_size`).
    pub fn fat32_compared_bytes(&self) -> u64 {
        (self.data_clusters + 2) * FAT32_ENTRY_SIZE
    }

    /// Byte offset of the backup boot sector, if BPB_BkBootSec names one.
    pub fn backup_boot_offset(&self) -> Option<u64> {
        (self.backup_boot_sector != 0).then(|| u64::from(self.backup_boot_sector) * self.sector())
    }

    /// Byte offset of the FSInfo sector, if BPB_FSInfo names one.
    pub fn fs_info_offset(&self) -> Option<u64> {
        (self.fs_info_sector != 0).then(|| u64::from(self.fs_info_sector) * self.sector())
    }

    /// Whether the dirty flag (bit 0 of BS_Reserved1) is set.
    pub fn dirty(&self) -> bool {
        self.boot_flags & FAT_STATE_DIRTY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mkfs.fat -F 32 boot sector for a 64 MiB volume.
    fn fat32_sector() -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[0] = 0xEB;
        s[BPB_BYTS_PER_SEC..BPB_BYTS_PER_SEC + 2].copy_from_slice(&512u16.to_le_bytes());
        s[BPB_SEC_PER_CLUS] = 1;
        s[BPB_RSVD_SEC_CNT..BPB_RSVD_SEC_CNT + 2].copy_from_slice(&32u16.to_le_bytes());
        s[BPB_NUM_FATS] = 2;
        s[BPB_MEDIA] = 0xF8;
        s[BPB_TOT_SEC32..BPB_TOT_SEC32 + 4].copy_from_slice(&131072u32.to_le_bytes());
        s[BPB_FAT_SZ32..BPB_FAT_SZ32 + 4].copy_from_slice(&1010u32.to_le_bytes());
        s[BPB_ROOT_CLUS..BPB_ROOT_CLUS + 4].copy_from_slice(&2u32.to_le_bytes());
        s[BPB_FS_INFO..BPB_FS_INFO + 2].copy_from_slice(&1u16.to_le_bytes());
        s[BPB_BK_BOOT_SEC..BPB_BK_BOOT_SEC + 2].copy_from_slice(&6u16.to_le_bytes());
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn layout_follows_the_bpb() {
        let b = Fat32Boot::parse(&fat32_sector(), 64 << 20).unwrap();
        assert_eq!(b.fat_type, FatType::Fat32);
        assert_eq!(b.fat_offset(0), 32 * 512);
        assert_eq!(b.fat_offset(1), (32 + 1010) * 512);
        assert_eq!(b.backup_boot_offset(), Some(6 * 512));
        assert_eq!(b.data_clusters, 131072 - 32 - 2 * 1010);
        assert_eq!(b.fat32_compared_bytes(), (b.data_clusters + 2) * 4);
        assert!(!b.dirty());
    }

    #[test]
    fn dosfstools_fatal_messages() {
        let z = vec![0u8; 512];
        assert_eq!(
            Fat32Boot::parse(&z, 1 << 20).unwrap_err().0,
            "Logical sector size is zero."
        );
        let mut s = fat32_sector();
        s[BPB_NUM_FATS] = 3;
        assert!(Fat32Boot::parse(&s, 64 << 20)
            .unwrap_err()
            .0
            .contains("not 3"));
        // A volume larger than its partition.
        assert!(Fat32Boot::parse(&fat32_sector(), 1 << 20)
            .unwrap_err()
            .0
            .starts_with("Failed to read sector"));
        assert!(Fat32Boot::parse(&[0u8; 10], 1 << 20).is_err());
    }
}

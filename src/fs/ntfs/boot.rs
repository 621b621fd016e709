//! The NTFS boot sector: every field of ntfs-3g's `NTFS_BOOT_SECTOR`, and
//! the two checks ntfs-3g makes before it will mount from it
//! (`ntfs_boot_sector_is_ntfs`, `ntfs_boot_sector_parse`).

use crate::error::{Error, Result};
use crate::fs::bytes::{le16, le32, le64};
use std::fmt;

/// Size of the NTFS boot sector structure (`NTFS_BOOT_SECTOR`, layout.h).
pub const BOOT_SECTOR_SIZE: usize = 512;
/// The OEM id at offset 3 that marks NTFS.
pub const OEM_ID: &[u8; 8] = b"NTFS    ";
/// `NTFS_MAX_CLUSTER_SIZE` (ntfs-3g param.h, blkid ntfs.c): 2 MiB since Windows 10 1703.
pub const MAX_CLUSTER_SIZE: u32 = 2 * 1024 * 1024;
/// The end-of-sector marker 0x55 0xAA (only warned about by ntfs-3g).
pub const END_OF_SECTOR_MARKER: u16 = 0xAA55;

/// Every field of the 512-byte NTFS boot sector (ntfs-3g `NTFS_BOOT_SECTOR`).
///
/// Offsets in the comments are into the sector; all fields little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtfsBootSector {
    /// 0: jump to the boot code.
    pub jump: [u8; 3],
    /// 3: OEM id, `"NTFS    "`.
    pub oem_id: [u8; 8],
    /// 11: bytes per sector.
    pub bytes_per_sector: u16,
    /// 13: sectors per cluster, raw: 1..=128, or 240..=253 meaning 2^(256 − value).
    pub sectors_per_cluster_raw: u8,
    /// 14: must be zero.
    pub reserved_sectors: u16,
    /// 16: must be zero.
    pub fats: u8,
    /// 17: must be zero.
    pub root_entries: u16,
    /// 19: must be zero.
    pub sectors: u16,
    /// 21: media descriptor (0xF8 for a hard disk).
    pub media_type: u8,
    /// 22: must be zero.
    pub sectors_per_fat: u16,
    /// 24: sectors per track (needed to boot Windows).
    pub sectors_per_track: u16,
    /// 26: heads (needed to boot Windows).
    pub heads: u16,
    /// 28: partition start in sectors (needed to boot Windows).
    pub hidden_sectors: u32,
    /// 32: must be zero.
    pub large_sectors: u32,
    /// 36: 0x80 for a hard disk.
    pub physical_drive: u8,
    /// 37: zero.
    pub current_head: u8,
    /// 38: 0x80.
    pub extended_boot_signature: u8,
    /// 39: zero.
    pub reserved2: u8,
    /// 40: number of sectors in the volume (one less than the partition, normally).
    pub number_of_sectors: i64,
    /// 48: cluster number of `$MFT`.
    pub mft_lcn: i64,
    /// 56: cluster number of `$MFTMirr`.
    pub mftmirr_lcn: i64,
    /// 64: MFT record size: clusters if positive, else 2^(−value) bytes.
    pub clusters_per_mft_record: i8,
    /// 65: zero.
    pub reserved0: [u8; 3],
    /// 68: index record size, same encoding.
    pub clusters_per_index_record: i8,
    /// 69: zero.
    pub reserved1: [u8; 3],
    /// 72: volume serial number.
    pub volume_serial_number: u64,
    /// 80: checksum (unused).
    pub checksum: u32,
    /// 510: 0xAA55.
    pub end_of_sector_marker: u16,
}

/// Why ntfs-3g rejects a boot sector: the first failing check, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NtfsBootDefect {
    /// The sector is all zeros (so, among others, the OEM id is missing).
    AllZero,
    /// OEM id is not `"NTFS    "` ("NTFS signature is missing").
    OemId,
    /// Bytes per sector outside 256..=4096.
    BytesPerSector(u16),
    /// Sectors-per-cluster code not 1..=128 (power of two) nor 240..=253.
    SectorsPerCluster(u8),
    /// bytes per sector × sectors per cluster above 2 MiB.
    ClusterSize(u32),
    /// One of the must-be-zero BIOS parameter block fields is not.
    ReservedFieldsNotZero,
    /// Clusters per MFT record not in 0xE1..=0xF7 nor a power of two up to 64.
    ClustersPerMftRecord(i8),
    /// Clusters per index record, same rule.
    ClustersPerIndexRecord(i8),
    /// `$MFT` or `$MFTMirr` at cluster ≤ 0, or both at the same cluster.
    MftLocation {
        /// `mft_lcn`.
        mft: i64,
        /// `mftmirr_lcn`.
        mirr: i64,
    },
    /// Decoded sectors per cluster not a power of two (parse).
    SectorsPerClusterNotPowerOfTwo(u32),
    /// `number_of_sectors` is zero (parse).
    ZeroSectors,
    /// Seeking to the volume's last sector fails: a negative offset (parse).
    LastSectorUnreachable(i64),
    /// `$MFT` or `$MFTMirr` beyond the volume's clusters (parse).
    MftBeyondVolume {
        /// `mft_lcn`.
        mft: i64,
        /// `mftmirr_lcn`.
        mirr: i64,
        /// number_of_sectors / sectors per cluster.
        clusters: i64,
    },
    /// Cluster size not a power of two (parse).
    ClusterSizeNotPowerOfTwo(u32),
    /// MFT record size not a power of two (parse).
    MftRecordSizeNotPowerOfTwo(u32),
}

impl fmt::Display for NtfsBootDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use NtfsBootDefect::*;
        match self {
            AllZero => write!(f, "the sector is all zeros"),
            OemId => write!(f, "OEM id is not NTFS"),
            BytesPerSector(b) => write!(f, "bytes per sector {b} is outside 256..=4096"),
            SectorsPerCluster(s) => write!(f, "sectors per cluster code {s:#04x} is invalid"),
            ClusterSize(c) => write!(f, "cluster size {c} is above 2 MiB"),
            ReservedFieldsNotZero => write!(f, "reserved BIOS parameter block fields are not zero"),
            ClustersPerMftRecord(c) => write!(f, "clusters per MFT record {c} is invalid"),
            ClustersPerIndexRecord(c) => write!(f, "clusters per index record {c} is invalid"),
            MftLocation { mft, mirr } => write!(
                f,
                "$MFT (cluster {mft}) or $MFTMirr (cluster {mirr}) is at cluster 0 or below, or both are the same"
            ),
            SectorsPerClusterNotPowerOfTwo(s) => {
                write!(f, "sectors per cluster {s} is not a power of two")
            }
            ZeroSectors => write!(f, "number of sectors is zero"),
            LastSectorUnreachable(n) => write!(
                f,
                "number of sectors {n} puts the volume's last sector at a negative offset"
            ),
            MftBeyondVolume { mft, mirr, clusters } => write!(
                f,
                "$MFT (cluster {mft}) or $MFTMirr (cluster {mirr}) is beyond the volume's {clusters} clusters"
            ),
            ClusterSizeNotPowerOfTwo(c) => write!(f, "cluster size {c} is not a power of two"),
            MftRecordSizeNotPowerOfTwo(r) => write!(f, "MFT record size {r} is not a power of two"),
        }
    }
}

/// What `ntfs_boot_sector_parse` derives from an accepted boot sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtfsVolumeParams {
    /// Bytes per sector.
    pub sector_size: u32,
    /// Sectors per cluster, decoded.
    pub sectors_per_cluster: u32,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Clusters in the volume.
    pub nr_clusters: i64,
    /// `$MFT` cluster.
    pub mft_lcn: i64,
    /// `$MFTMirr` cluster.
    pub mftmirr_lcn: i64,
    /// MFT record size in bytes.
    pub mft_record_size: u32,
}

/// C's `x & (x - 1) == 0` power-of-two test, which (unlike Rust's) accepts 0.
fn c_pow2(x: u32) -> bool {
    x & x.wrapping_sub(1) == 0
}

/// C's `ffs(x) - 1`: index of the lowest set bit, −1 for zero.
fn ffs_minus_1(x: u32) -> i32 {
    if x == 0 {
        -1
    } else {
        x.trailing_zeros() as i32
    }
}

impl NtfsBootSector {
    /// Decodes the first 512 bytes of `b` (no validity checks).
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < BOOT_SECTOR_SIZE {
            return Err(Error::Guest(format!(
                "an NTFS boot sector is {BOOT_SECTOR_SIZE} bytes, got {}",
                b.len()
            )));
        }
        let arr3 = |o: usize| [b[o], b[o + 1], b[o + 2]];
        let mut oem_id = [0u8; 8];
        oem_id.copy_from_slice(&b[3..11]);
        Ok(NtfsBootSector {
            jump: arr3(0),
            oem_id,
            bytes_per_sector: le16(b, 11),
            sectors_per_cluster_raw: b[13],
            reserved_sectors: le16(b, 14),
            fats: b[16],
            root_entries: le16(b, 17),
            sectors: le16(b, 19),
            media_type: b[21],
            sectors_per_fat: le16(b, 22),
            sectors_per_track: le16(b, 24),
            heads: le16(b, 26),
            hidden_sectors: le32(b, 28),
            large_sectors: le32(b, 32),
            physical_drive: b[36],
            current_head: b[37],
            extended_boot_signature: b[38],
            reserved2: b[39],
            number_of_sectors: le64(b, 40) as i64,
            mft_lcn: le64(b, 48) as i64,
            mftmirr_lcn: le64(b, 56) as i64,
            clusters_per_mft_record: b[64] as i8,
            reserved0: arr3(65),
            clusters_per_index_record: b[68] as i8,
            reserved1: arr3(69),
            volume_serial_number: le64(b, 72),
            checksum: le32(b, 80),
            end_of_sector_marker: le16(b, 510),
        })
    }

    /// Writes every field into the first 512 bytes of `b`, leaving the boot
    /// code (84..510) as it is. `b` must hold at least 512 bytes.
    pub fn write_into(&self, b: &mut [u8]) -> Result<()> {
        if b.len() < BOOT_SECTOR_SIZE {
            return Err(Error::Usage(format!(
                "an NTFS boot sector needs {BOOT_SECTOR_SIZE} bytes, got {}",
                b.len()
            )));
        }
        let mut put = |o: usize, v: &[u8]| b[o..o + v.len()].copy_from_slice(v);
        put(0, &self.jump);
        put(3, &self.oem_id);
        put(11, &self.bytes_per_sector.to_le_bytes());
        put(13, &[self.sectors_per_cluster_raw]);
        put(14, &self.reserved_sectors.to_le_bytes());
        put(16, &[self.fats]);
        put(17, &self.root_entries.to_le_bytes());
        put(19, &self.sectors.to_le_bytes());
        put(21, &[self.media_type]);
        put(22, &self.sectors_per_fat.to_le_bytes());
        put(24, &self.sectors_per_track.to_le_bytes());
        put(26, &self.heads.to_le_bytes());
        put(28, &self.hidden_sectors.to_le_bytes());
        put(32, &self.large_sectors.to_le_bytes());
        put(
            36,
            &[
                self.physical_drive,
                self.current_head,
                self.extended_boot_signature,
                self.reserved2,
            ],
        );
        put(40, &self.number_of_sectors.to_le_bytes());
        put(48, &self.mft_lcn.to_le_bytes());
        put(56, &self.mftmirr_lcn.to_le_bytes());
        put(64, &[self.clusters_per_mft_record as u8]);
        put(65, &self.reserved0);
        put(68, &[self.clusters_per_index_record as u8]);
        put(69, &self.reserved1);
        put(72, &self.volume_serial_number.to_le_bytes());
        put(80, &self.checksum.to_le_bytes());
        put(510, &self.end_of_sector_marker.to_le_bytes());
        Ok(())
    }

    /// Sectors per cluster as ntfs-3g decodes it into a 16-bit variable:
    /// codes above 128 mean 2^(256 − code); code 240 (2^16) wraps to 0.
    pub fn sectors_per_cluster(&self) -> u32 {
        let raw = self.sectors_per_cluster_raw;
        if raw > 128 {
            let shift = 256 - u32::from(raw);
            1u32.checked_shl(shift).map_or(0, |v| u32::from(v as u16))
        } else {
            u32::from(raw)
        }
    }

    /// Bytes per cluster (bytes per sector × decoded sectors per cluster).
    pub fn cluster_size(&self) -> u32 {
        u32::from(self.bytes_per_sector).wrapping_mul(self.sectors_per_cluster())
    }

    /// The validity check of `ntfs_boot_sector_is_ntfs`, in its order.
    /// A missing 0xAA55 marker is not a defect (ntfs-3g only logs it).
    pub fn check_is_ntfs(&self) -> std::result::Result<(), NtfsBootDefect> {
        use NtfsBootDefect::*;
        if &self.oem_id != OEM_ID {
            return Err(OemId);
        }
        if !(256..=4096).contains(&self.bytes_per_sector) {
            return Err(BytesPerSector(self.bytes_per_sector));
        }
        let spc = self.sectors_per_cluster_raw;
        let spc_ok =
            matches!(spc, 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128) || (240..=253).contains(&spc);
        if !spc_ok {
            return Err(SectorsPerCluster(spc));
        }
        let cluster = self.cluster_size();
        if cluster > MAX_CLUSTER_SIZE {
            return Err(ClusterSize(cluster));
        }
        if self.reserved_sectors != 0
            || self.root_entries != 0
            || self.sectors != 0
            || self.sectors_per_fat != 0
            || self.large_sectors != 0
            || self.fats != 0
        {
            return Err(ReservedFieldsNotZero);
        }
        if !record_code_ok(self.clusters_per_mft_record) {
            return Err(ClustersPerMftRecord(self.clusters_per_mft_record));
        }
        if !record_code_ok(self.clusters_per_index_record) {
            return Err(ClustersPerIndexRecord(self.clusters_per_index_record));
        }
        if self.mft_lcn <= 0 || self.mftmirr_lcn <= 0 || self.mft_lcn == self.mftmirr_lcn {
            return Err(MftLocation {
                mft: self.mft_lcn,
                mirr: self.mftmirr_lcn,
            });
        }
        Ok(())
    }

    /// The checks of `ntfs_boot_sector_parse`, in its order, for a device
    /// that is a regular file.
    ///
    /// ntfs-3g seeks to `(number_of_sectors − 1) << log2(bytes_per_sector)`;
    /// on a regular file a seek past the end succeeds, so only a negative
    /// offset fails. The arithmetic wraps as ntfs-3g's does on x86-64.
    pub fn check_parse(&self) -> std::result::Result<NtfsVolumeParams, NtfsBootDefect> {
        use NtfsBootDefect::*;
        let sector_size = u32::from(self.bytes_per_sector);
        let sector_bits = ffs_minus_1(sector_size);
        let spc = self.sectors_per_cluster();
        if !c_pow2(spc) {
            return Err(SectorsPerClusterNotPowerOfTwo(spc));
        }
        let sectors = self.number_of_sectors;
        if sectors == 0 {
            return Err(ZeroSectors);
        }
        let last = sectors
            .wrapping_sub(1)
            .wrapping_shl((sector_bits & 63) as u32);
        if last < 0 {
            return Err(LastSectorUnreachable(sectors));
        }
        let nr_clusters = sectors >> ((ffs_minus_1(spc) & 63) as u32);
        let (mft, mirr) = (self.mft_lcn, self.mftmirr_lcn);
        if mft < 0 || mft > nr_clusters || mirr < 0 || mirr > nr_clusters {
            return Err(MftBeyondVolume {
                mft,
                mirr,
                clusters: nr_clusters,
            });
        }
        let cluster_size = spc.wrapping_mul(sector_size);
        if !c_pow2(cluster_size) {
            return Err(ClusterSizeNotPowerOfTwo(cluster_size));
        }
        let cluster_bits = (ffs_minus_1(cluster_size) & 31) as u32;
        let c = self.clusters_per_mft_record;
        let mft_record_size = if c < 0 {
            1u32.wrapping_shl(u32::from(c.unsigned_abs()))
        } else {
            (c as u32).wrapping_shl(cluster_bits)
        };
        if !c_pow2(mft_record_size) {
            return Err(MftRecordSizeNotPowerOfTwo(mft_record_size));
        }
        Ok(NtfsVolumeParams {
            sector_size,
            sectors_per_cluster: spc,
            cluster_size,
            nr_clusters,
            mft_lcn: mft,
            mftmirr_lcn: mirr,
            mft_record_size,
        })
    }

    /// Both checks: what ntfs-3g needs before it will mount from this sector.
    pub fn check(&self) -> std::result::Result<NtfsVolumeParams, NtfsBootDefect> {
        self.check_is_ntfs()?;
        self.check_parse()
    }
}

/// Clusters-per-record rule of `ntfs_boot_sector_is_ntfs`.
pub(super) fn record_code_ok(c: i8) -> bool {
    (0xE1..=0xF7).contains(&(c as u8)) || matches!(c, 1 | 2 | 4 | 8 | 16 | 32 | 64)
}

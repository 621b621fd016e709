//! NTFS: everything qfault knows about one filesystem, in one folder (the
//! template for future per-filesystem models such as `fs/ext4/`):
//!
//! - the on-disk structures: the boot-sector model ([`NtfsBootSector`], its
//!   [`NtfsBootDefect`]s, the [`NtfsVolumeParams`] ntfs-3g derives from it);
//! - the repair tools' rules: ntfsfix's boot-sector repair predicted
//!   ([`predict_ntfsfix`]);
//! - blkid's NTFS probe ([`probe`], [`NtfsGeometry`]);
//! - [`volume`]: the volume opened with a pure-Rust reader ([`read_volume`]).
//!
//! Sources (read, not copied): ntfs-3g 2022.10.3 `include/ntfs-3g/layout.h`
//! (`NTFS_BOOT_SECTOR`), `libntfs-3g/bootsect.c` (`ntfs_boot_sector_is_ntfs`,
//! `ntfs_boot_sector_parse`), `ntfsprogs/ntfsfix.c` (`fix_startup`,
//! `try_alternate_boot`, `try_fix_boot`); util-linux 2.38
//! `libblkid/src/superblocks/ntfs.c`. `/work/shared/ntfsfix-facts.md`
//! summarises them; where it is silent the code above is followed (the
//! 2 MiB cluster limit, the "negative" sectors-per-cluster codes 240..=253,
//! and the $MFT/$MFTMirr location check of `ntfs_boot_sector_is_ntfs`).

pub mod volume;

pub use volume::{read_volume, VolumeSummary};

use super::bytes::{le16, le32, le64};
use super::text::{label_utf16, Utf16};
use super::{read_opt, FsInfo};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use std::fmt;

/// Size of the NTFS boot sector structure (`NTFS_BOOT_SECTOR`, layout.h).
pub const BOOT_SECTOR_SIZE: usize = 512;
/// The OEM id at offset 3 that marks NTFS.
pub const OEM_ID: &[u8; 8] = b"NTFS    ";
/// `NTFS_MAX_CLUSTER_SIZE` (ntfs-3g param.h, blkid ntfs.c): 2 MiB since Windows 10 1703.
pub const MAX_CLUSTER_SIZE: u32 = 2 * 1024 * 1024;
/// The sector size ntfsfix uses on a regular file or a device that reports
/// none (`DEFAULT_SECTOR_SIZE`); a candidate backup must declare exactly this.
pub const NTFSFIX_DEVICE_SECTOR_SIZE: u32 = 512;
/// The end-of-sector marker 0x55 0xAA (only warned about by ntfs-3g).
pub const END_OF_SECTOR_MARKER: u16 = 0xAA55;
/// MFT record number of `$Volume`, which holds the label (blkid).
pub const MFT_RECORD_VOLUME: u64 = 3;
/// Attribute type `$VOLUME_NAME` (layout.h `AT_VOLUME_NAME`).
pub const ATTR_VOLUME_NAME: u32 = 0x60;
/// Attribute list terminator (layout.h `AT_END`).
pub const ATTR_END: u32 = 0xFFFF_FFFF;
/// Largest MFT record qfault reads when probing (real volumes use 1 or 4 KiB).
pub const MAX_PROBE_RECORD_SIZE: u32 = 1 << 20;

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
fn record_code_ok(c: i8) -> bool {
    (0xE1..=0xF7).contains(&(c as u8)) || matches!(c, 1 | 2 | 4 | 8 | 16 | 32 | 64)
}

/// Which step of ntfsfix's boot-sector handling (ntfsfix-facts.md rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NtfsfixRule {
    /// Rule 1: sector 0 is valid; ntfsfix does not touch the boot sector.
    SectorZero,
    /// Rule 3a: the partition's last sector, count = device sectors − 1.
    LastSector,
    /// Rule 3b: the sector named by sector 0's count, when 0 < shown < actual.
    ShownSector,
    /// Rule 3c: sector 0 again with its count truncated, when shown > actual.
    TruncatedCount,
}

impl fmt::Display for NtfsfixRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NtfsfixRule::SectorZero => "sector 0",
            NtfsfixRule::LastSector => "the backup boot sector at the partition's last sector",
            NtfsfixRule::ShownSector => "the sector named by sector 0's number of sectors",
            NtfsfixRule::TruncatedCount => "sector 0 with its number of sectors truncated",
        })
    }
}

/// One candidate ntfsfix tried.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsfixAttempt {
    /// Which rule.
    pub rule: NtfsfixRule,
    /// The 512-byte sector read (relative to the partition).
    pub lba: u64,
    /// The number of sectors ntfsfix substitutes before checking.
    pub number_of_sectors: i64,
    /// `None` when accepted, else why not, in one human line.
    pub rejected: Option<String>,
}

/// What ntfsfix will do about the boot sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum NtfsfixOutcome {
    /// Sector 0 passes; no boot-sector repair happens.
    NoRepairNeeded,
    /// ntfsfix rewrites sector 0 from a candidate.
    Rewritten {
        /// The rule whose candidate was accepted.
        rule: NtfsfixRule,
        /// The sector copied to sector 0.
        lba: u64,
        /// The number of sectors written into the new sector 0.
        number_of_sectors: i64,
    },
    /// No candidate passes: "Volume is corrupt. You should run chkdsk."
    Unrepairable,
}

/// ntfsfix's boot-sector behaviour, predicted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsfixPrediction {
    /// The result.
    pub outcome: NtfsfixOutcome,
    /// Why sector 0 is rejected (`None` when it is valid).
    pub sector0_defect: Option<String>,
    /// Device sectors − 1 ("actual" in ntfsfix).
    pub actual: i64,
    /// Sector 0's number_of_sectors ("shown").
    pub shown: i64,
    /// The candidates tried, in order.
    pub attempts: Vec<NtfsfixAttempt>,
    /// Rules not tried and why.
    pub skipped: Vec<String>,
}

impl NtfsfixPrediction {
    /// True when the volume is valid or ntfsfix repairs its boot sector.
    pub fn repairable(&self) -> bool {
        !matches!(self.outcome, NtfsfixOutcome::Unrepairable)
    }

    /// One paragraph saying what ntfsfix will do and why.
    pub fn summary(&self) -> String {
        match self.outcome {
            NtfsfixOutcome::NoRepairNeeded => {
                "sector 0 is a valid NTFS boot sector; ntfsfix will not rewrite it".to_string()
            }
            NtfsfixOutcome::Rewritten { rule, lba, number_of_sectors } => format!(
                "ntfsfix will find sector 0 invalid ({}), accept {rule} (LBA {lba}) with {number_of_sectors} sectors, and rewrite sector 0 from it",
                self.sector0_defect.as_deref().unwrap_or("?")
            ),
            NtfsfixOutcome::Unrepairable => {
                let mut parts = vec![format!(
                    "ntfsfix cannot repair the boot sector: sector 0 is invalid ({})",
                    self.sector0_defect.as_deref().unwrap_or("?")
                )];
                parts.extend(self.attempts.iter().filter_map(|a| a.rejected.clone()));
                parts.extend(self.skipped.iter().cloned());
                parts.join("; ")
            }
        }
    }
}

/// Why a candidate sector is unusable for ntfsfix, or `None` if it is usable.
fn candidate_defect(sector: &[u8], fix_sectors: i64) -> Option<String> {
    if sector.iter().all(|&b| b == 0) {
        return Some(NtfsBootDefect::AllZero.to_string());
    }
    let mut bs = NtfsBootSector::parse(sector).ok()?;
    bs.number_of_sectors = fix_sectors;
    if u32::from(bs.bytes_per_sector) != NTFSFIX_DEVICE_SECTOR_SIZE {
        // ntfsfix compares before the validity check, so even a sector that
        // is not NTFS at all is reported here first when its field differs.
        if &bs.oem_id != OEM_ID {
            return Some(NtfsBootDefect::OemId.to_string());
        }
        return Some(format!(
            "bytes per sector is {}, the device's is {NTFSFIX_DEVICE_SECTOR_SIZE}",
            bs.bytes_per_sector
        ));
    }
    bs.check().err().map(|d| d.to_string())
}

/// Reads LBA `lba` (512-byte sectors) of the partition as ntfsfix would,
/// with LBA 0 taken from `sector0`.
fn read_sector(part: &mut dyn ReadAt, sector0: &[u8], lba: u64) -> Result<Option<Vec<u8>>> {
    if lba == 0 {
        return Ok(Some(sector0[..BOOT_SECTOR_SIZE].to_vec()));
    }
    let Some(off) = lba.checked_mul(u64::from(NTFSFIX_DEVICE_SECTOR_SIZE)) else {
        return Ok(None);
    };
    read_opt(part, off, BOOT_SECTOR_SIZE)
}

/// The volume size a readable boot sector records, for explaining failures:
/// from `original` (the undamaged sector 0, when the caller knows it), else
/// from `sector0` if it is still NTFS, else from the partition's own LBA 0.
fn volume_sectors_hint(
    part: &mut dyn ReadAt,
    sector0: &[u8],
    original: Option<&[u8]>,
) -> Result<Option<VolumeHint>> {
    let from = |b: &[u8]| {
        NtfsBootSector::parse(b)
            .ok()
            .filter(|bs| bs.check_is_ntfs().is_ok() && bs.number_of_sectors > 0)
            .map(|bs| VolumeHint {
                sectors: bs.number_of_sectors,
                bytes_per_sector: bs.bytes_per_sector,
            })
    };
    if let Some(n) = original.and_then(from).or_else(|| from(sector0)) {
        return Ok(Some(n));
    }
    Ok(read_opt(part, 0, BOOT_SECTOR_SIZE)?.and_then(|b| from(&b)))
}

/// Predicts what ntfsfix does with a partition whose sector 0 is `sector0`.
///
/// `part` is the partition as ntfsfix will see it (a regular file, so a
/// 512-byte device sector size), except that its LBA 0 is replaced by
/// `sector0` (the first 512 bytes are used). Follows ntfsfix-facts.md rules
/// 1–4 and the code behind them: sector 0 valid → nothing to do; else the
/// last sector with count = actual; else sector `shown` if 0 < shown <
/// actual; else sector 0 with count = actual if shown > actual. A candidate
/// must declare 512 bytes per sector and pass both ntfs-3g checks.
pub fn predict_ntfsfix(sector0: &[u8], part: &mut dyn ReadAt) -> Result<NtfsfixPrediction> {
    predict_ntfsfix_explained(sector0, part, None)
}

/// [`predict_ntfsfix`], with the partition's undamaged sector 0 (`original`)
/// used only to explain failures (e.g. where the volume ends, to say the
/// partition was grown after formatting). The prediction itself depends only
/// on `sector0` and `part`, which is what ntfsfix sees.
pub fn predict_ntfsfix_explained(
    sector0: &[u8],
    part: &mut dyn ReadAt,
    original: Option<&[u8]>,
) -> Result<NtfsfixPrediction> {
    let bs0 = NtfsBootSector::parse(sector0)?;
    let device_sectors = part.size() / u64::from(NTFSFIX_DEVICE_SECTOR_SIZE);
    let actual = i64::try_from(device_sectors).unwrap_or(i64::MAX) - 1;
    let shown = bs0.number_of_sectors;
    let mut pred = NtfsfixPrediction {
        outcome: NtfsfixOutcome::Unrepairable,
        sector0_defect: None,
        actual,
        shown,
        attempts: Vec::new(),
        skipped: Vec::new(),
    };
    let sector0_defect = if sector0[..BOOT_SECTOR_SIZE].iter().all(|&b| b == 0) {
        Some(NtfsBootDefect::AllZero)
    } else {
        bs0.check().err()
    };
    let Some(defect) = sector0_defect else {
        pred.outcome = NtfsfixOutcome::NoRepairNeeded;
        return Ok(pred);
    };
    pred.sector0_defect = Some(defect.to_string());

    // (rule, sector read, count substituted)
    let mut plan: Vec<(NtfsfixRule, i64, i64)> = Vec::new();
    if actual > 0 {
        plan.push((NtfsfixRule::LastSector, actual, actual));
    } else {
        pred.skipped.push(format!(
            "the partition has {device_sectors} sectors, too few for a backup boot sector"
        ));
    }
    if shown > 0 && shown < actual {
        plan.push((NtfsfixRule::ShownSector, shown, shown));
    } else if shown <= 0 {
        pred.skipped.push(format!(
            "sector 0's number of sectors is {shown}, so ntfsfix does not look for a backup there"
        ));
    }
    if shown > actual {
        plan.push((NtfsfixRule::TruncatedCount, 0, actual));
    }
    let hint = volume_sectors_hint(part, sector0, original)?;
    for (rule, lba, count) in plan {
        let lba = lba as u64; // every planned sector is > 0 or exactly 0
        let rejected = match read_sector(part, sector0, lba)? {
            None => Some(format!("sector {lba} cannot be read")),
            Some(s) => candidate_defect(&s, count),
        };
        let rejected = rejected.map(|why| explain(rule, lba, &why, hint, actual));
        let accepted = rejected.is_none();
        pred.attempts.push(NtfsfixAttempt {
            rule,
            lba,
            number_of_sectors: count,
            rejected,
        });
        if accepted {
            pred.outcome = NtfsfixOutcome::Rewritten {
                rule,
                lba,
                number_of_sectors: count,
            };
            break;
        }
    }
    Ok(pred)
}

/// Turns a candidate's defect into the sentence the prediction reports.
/// What a readable boot sector says about the volume, for explanations.
#[derive(Debug, Clone, Copy)]
struct VolumeHint {
    /// number_of_sectors, in the volume's own sectors.
    sectors: i64,
    /// The volume's bytes per sector.
    bytes_per_sector: u16,
}

fn explain(
    rule: NtfsfixRule,
    lba: u64,
    why: &str,
    hint: Option<VolumeHint>,
    actual: i64,
) -> String {
    match rule {
        NtfsfixRule::LastSector => {
            let mut s = format!(
                "no usable backup boot sector at the partition's last sector (LBA {lba}): {why}"
            );
            match hint {
                Some(h) if u32::from(h.bytes_per_sector) != NTFSFIX_DEVICE_SECTOR_SIZE => {
                    s.push_str(&format!(
                        "; the volume uses {}-byte sectors, so its backup is the partition's last {} bytes, and ntfsfix, reading a file in {NTFSFIX_DEVICE_SECTOR_SIZE}-byte sectors, rejects boot sectors that declare {} bytes per sector",
                        h.bytes_per_sector, h.bytes_per_sector, h.bytes_per_sector
                    ));
                }
                Some(h) if h.sectors < actual => {
                    s.push_str(&format!(
                        "; the volume ends at LBA {}, so the partition was grown after formatting",
                        h.sectors
                    ));
                }
                _ => {}
            }
            s
        }
        NtfsfixRule::ShownSector => format!(
            "no usable backup boot sector at LBA {lba} (the sector named by sector 0's number of sectors): {why}"
        ),
        NtfsfixRule::TruncatedCount => format!(
            "sector 0 is unusable even with its number of sectors truncated to {actual}: {why}"
        ),
        NtfsfixRule::SectorZero => why.to_string(),
    }
}

/// NTFS geometry for later recipes, from the boot sector at sector 0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsGeometry {
    /// Bytes per sector.
    pub bytes_per_sector: u16,
    /// Sectors per cluster (decoded).
    pub sectors_per_cluster: u32,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Sectors in the volume (as the boot sector records it).
    pub number_of_sectors: i64,
    /// `$MFT` cluster number.
    pub mft_lcn: i64,
    /// `$MFTMirr` cluster number.
    pub mftmirr_lcn: i64,
    /// MFT record size in bytes.
    pub mft_record_size: u32,
    /// Volume serial number as blkid shows it (16 uppercase hex digits).
    pub serial: String,
    /// True when the partition's last 512-byte sector is a boot sector
    /// ntfsfix would accept (rule 3a).
    pub backup_boot_sector_ok: bool,
    /// Why it is not, when it is not.
    pub backup_boot_sector_problem: Option<String>,
}

/// blkid's NTFS probe (util-linux `superblocks/ntfs.c`), plus [`NtfsGeometry`].
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sector) = read_opt(part, 0, BOOT_SECTOR_SIZE)? else {
        return Ok(None);
    };
    if &sector[3..11] != OEM_ID {
        return Ok(None);
    }
    let bs = NtfsBootSector::parse(&sector)?;
    let ss = u32::from(bs.bytes_per_sector);
    if !(256..=4096).contains(&ss) {
        return Ok(None);
    }
    // blkid accepts the "negative" codes 240..=249 only, without wrapping.
    let raw = bs.sectors_per_cluster_raw;
    let spc: u32 = match raw {
        1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 => u32::from(raw),
        240..=249 => 1 << (256 - u32::from(raw)),
        _ => return Ok(None),
    };
    if ss * spc > MAX_CLUSTER_SIZE
        || bs.reserved_sectors != 0
        || bs.root_entries != 0
        || bs.sectors != 0
        || bs.sectors_per_fat != 0
        || bs.large_sectors != 0
        || bs.fats != 0
        || !record_code_ok(bs.clusters_per_mft_record)
    {
        return Ok(None);
    }
    let c = bs.clusters_per_mft_record;
    let record_size: u64 = if c > 0 {
        u64::from(c as u8) * u64::from(spc) * u64::from(ss)
    } else {
        1u64 << u32::from(c.unsigned_abs())
    };
    let nr_clusters = (bs.number_of_sectors as u64) / u64::from(spc);
    let (mft, mirr) = (bs.mft_lcn as u64, bs.mftmirr_lcn as u64);
    if mft > nr_clusters || mirr > nr_clusters || record_size < 4 {
        return Ok(None);
    }
    if record_size > u64::from(MAX_PROBE_RECORD_SIZE) {
        return Ok(None);
    }
    let Some(mft_off) = mft.checked_mul(u64::from(ss) * u64::from(spc)) else {
        return Ok(None);
    };
    let rs = record_size as usize;
    match read_opt(part, mft_off, rs)? {
        Some(r) if &r[..4] == b"FILE" => {}
        _ => return Ok(None),
    }
    let Some(vol_off) = mft_off.checked_add(MFT_RECORD_VOLUME * record_size) else {
        return Ok(None);
    };
    let record = match read_opt(part, vol_off, rs)? {
        Some(r) if &r[..4] == b"FILE" => r,
        _ => return Ok(None),
    };
    let mut info = FsInfo::new("ntfs");
    info.label = volume_name(&record);
    let serial = format!("{:016X}", bs.volume_serial_number);
    if bs.volume_serial_number != 0 {
        info.uuid = Some(serial.clone());
    }
    let backup_problem = backup_boot_sector_problem(part)?;
    info.ntfs = Some(NtfsGeometry {
        bytes_per_sector: bs.bytes_per_sector,
        sectors_per_cluster: spc,
        cluster_size: ss * spc,
        number_of_sectors: bs.number_of_sectors,
        mft_lcn: bs.mft_lcn,
        mftmirr_lcn: bs.mftmirr_lcn,
        mft_record_size: record_size as u32,
        serial,
        backup_boot_sector_ok: backup_problem.is_none(),
        backup_boot_sector_problem: backup_problem,
    });
    Ok(Some(info))
}

/// Why the partition's last 512-byte sector is not a backup ntfsfix would
/// accept under rule 3a, or `None` when it is.
pub fn backup_boot_sector_problem(part: &mut dyn ReadAt) -> Result<Option<String>> {
    let sectors = part.size() / u64::from(NTFSFIX_DEVICE_SECTOR_SIZE);
    if sectors < 2 {
        return Ok(Some(
            "the partition is too small to hold a backup".to_string(),
        ));
    }
    let lba = sectors - 1;
    let Some(s) = read_sector(part, &[0; BOOT_SECTOR_SIZE], lba)? else {
        return Ok(Some(format!("sector {lba} cannot be read")));
    };
    Ok(candidate_defect(&s, lba as i64))
}

/// The `$VOLUME_NAME` attribute of the `$Volume` MFT record, walked the way
/// blkid walks it (no update-sequence fixups; bounded by the record size).
fn volume_name(rec: &[u8]) -> Option<String> {
    const ATTR_HEADER: usize = 22; // type, len, non_resident, name_len, name_offset, flags, instance, value_len, value_offset
    let rs = rec.len();
    if rs < 0x20 {
        return None;
    }
    let bytes_allocated = le32(rec, 0x1C) as usize;
    let mut off = usize::from(le16(rec, 0x14));
    // Each step advances by a non-zero length, so this ends within rs / 1 steps.
    while off + ATTR_HEADER <= rs && off <= bytes_allocated {
        let atype = le32(rec, off);
        let alen = le32(rec, off + 4) as usize;
        if alen == 0 || atype == ATTR_END {
            return None;
        }
        if atype == ATTR_VOLUME_NAME {
            let val_len = le32(rec, off + 16) as usize;
            let val_off = usize::from(le16(rec, off + 20));
            let start = off + val_off;
            let end = start.checked_add(val_len)?;
            return if end <= rs {
                label_utf16(&rec[start..end], Utf16::Le)
            } else {
                None
            };
        }
        off = off.checked_add(alen)?;
    }
    None
}

#[cfg(test)]
mod tests;

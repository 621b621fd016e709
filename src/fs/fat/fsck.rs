//! dosfstools 4.2 `fsck.fat` on a FAT32 volume, as far as qfault models it:
//! the boot sector (`read_boot`'s fatal checks), its backup
//! (`check_backup_boot`), the FSInfo sector (`read_fsinfo`, the free count
//! of `update_free`), the FAT copies (`read_fat`) and the dirty flags
//! (`check_dirty_bits`). The directory tree is not modelled: a volume whose
//! files are inconsistent gets more messages than predicted here.
//!
//! Exit codes (`fsck.fat.c` `main`): 1 when a change was queued (even with
//! `-n`, which then writes nothing: "Leaving filesystem unchanged."), 0
//! otherwise; every fatal boot-sector error exits 1 before anything is
//! queued.

use super::boot::{
    Fat32Boot, FatBootError, FatType, BOOT_SECTOR_SIZE, FAT32_CLEAN_SHUTDOWN, FAT32_ENTRY_MASK,
    FAT32_ENTRY_SIZE, FAT32_MEDIA_ENTRY_BITS, FIRST_DATA_CLUSTER, FSI_FREE_COUNT, FSI_LEAD_SIG,
    FSI_STRUC_SIG, FSI_TRAIL_SIG,
};
use crate::error::{Error, Result};
use crate::fs::bytes::le32;
use crate::image::ReadAt;

/// `fsck.fat -n`/`-a` message: the backup boot sector differs (no change queued).
pub const MSG_BACKUP_DIFFERS: &str = "There are differences between boot sector and its backup.";
/// `-n`/`-a` answer to a differing backup: nothing is written.
pub const MSG_NOT_FIXING: &str = "Not automatically fixing this.";
/// BPB_BkBootSec is 0 (`-n`/`-a` then create one in sector 6 or 2).
pub const MSG_NO_BACKUP: &str = "There is no backup boot sector.";
/// The FATs differ and both have an intact first entry.
pub const MSG_FATS_DIFFER: &str = "FATs differ but appear to be intact.";
/// The FATs differ and only the first has an intact first entry.
pub const MSG_FATS_DIFFER_FIRST: &str = "FATs differ - using first FAT.";
/// `-n`/`-a` choice when both FATs look intact.
pub const MSG_USING_FIRST: &str = "Using first FAT.";
/// The dirty flag (boot sector or `FAT[1]`) is set.
pub const MSG_DIRTY: &str =
    "Dirty bit is set. Fs was not properly unmounted and some data may be corrupt.";
/// `-n`/`-a` answer to the dirty flag.
pub const MSG_REMOVING_DIRTY: &str = "Automatically removing dirty bit.";
/// `-a` after queuing changes.
pub const MSG_WRITING: &str = "Writing changes.";

/// The backup boot sector as `check_backup_boot` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupBoot {
    /// BPB_BkBootSec is 0: `-n`/`-a` create one when there are at least 3
    /// reserved sectors (a change).
    Missing,
    /// The first 512 bytes of the backup equal the boot sector's.
    Same,
    /// They differ at these offsets: (offset, boot sector byte, backup byte),
    /// as fsck.fat lists them (`67:ca/00`). Not fixed by `-n`/`-a`.
    Differs(Vec<(usize, u8, u8)>),
}

/// The FAT copies as `read_fat` compares them (only the entries of
/// existing clusters, `eff_size` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FatsState {
    /// One FAT only: nothing to compare.
    Single,
    /// The FATs agree.
    Same,
    /// They differ; `-n`/`-a` copy the first FAT over the second.
    Differ {
        /// The first FAT entry (cluster number) that differs.
        first_entry: u64,
        /// Whether the second FAT's entry 0 still looks intact (decides
        /// the message).
        second_intact: bool,
    },
}

/// The FSInfo sector's free-cluster count as `update_free` checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsInfoState {
    /// BPB_FSInfo is 0 ("No FSINFO sector", reported, not created by `-a`).
    Absent,
    /// Bad signatures: `-n`/`-a` rewrite it (a change).
    BadMagic,
    /// The count is 0xFFFFFFFF: `-a` sets it (a change), `-n` only reports.
    Uninitialized,
    /// The count is wrong: both `-n` and `-a` queue a correction.
    Wrong {
        /// The count stored.
        stored: u32,
        /// Free clusters in the first FAT.
        real: u32,
    },
    /// The count is right.
    Matches,
}

/// What `fsck.fat -n` and `fsck.fat -a` find on a FAT32 volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckFat {
    /// `read_boot` dies with this message (exit 1, nothing else happens).
    pub fatal: Option<FatBootError>,
    /// The boot sector, when it parsed.
    pub boot: Option<Fat32Boot>,
    /// The backup boot sector.
    pub backup: BackupBoot,
    /// The FAT copies.
    pub fats: FatsState,
    /// The first FAT's entry 0 holds the media bits (otherwise fsck.fat
    /// prefers the second FAT or gives up).
    pub first_fat_intact: bool,
    /// The boot sector's dirty flag is set.
    pub dirty: bool,
    /// `FAT[1]` lacks the clean-shutdown bit (also reported as "Dirty bit is set").
    pub unclean_fat: bool,
    /// The FSInfo free count.
    pub fs_info: FsInfoState,
}

impl FsckFat {
    /// Nothing at all to report (`fsck.fat -n` prints only its summary, exit 0).
    pub fn clean(&self) -> bool {
        self.fatal.is_none()
            && self
                .boot
                .as_ref()
                .is_some_and(|b| b.fat_type == FatType::Fat32)
            && self.backup == BackupBoot::Same
            && matches!(self.fats, FatsState::Single | FatsState::Same)
            && self.first_fat_intact
            && !self.dirty
            && !self.unclean_fat
            && self.fs_info == FsInfoState::Matches
    }

    /// Whether `-n` (`rw = false`) or `-a` (`rw = true`) queues a change,
    /// which makes it exit 1.
    pub fn queues_change(&self, rw: bool) -> bool {
        if self.fatal.is_some() {
            return false;
        }
        let reserved = self.boot.as_ref().map_or(0, |b| b.reserved_sectors);
        (self.backup == BackupBoot::Missing && reserved >= 3)
            || matches!(self.fats, FatsState::Differ { .. })
            || self.dirty
            || self.unclean_fat
            || matches!(
                self.fs_info,
                FsInfoState::BadMagic | FsInfoState::Wrong { .. }
            )
            || (rw && self.fs_info == FsInfoState::Uninitialized)
    }

    /// The exit code of `fsck.fat -n` (`rw = false`) or `-a` (`rw = true`).
    pub fn exit_code(&self, rw: bool) -> i32 {
        i32::from(self.fatal.is_some() || self.queues_change(rw))
    }

    /// The findings' key lines, in the order fsck.fat prints them.
    pub fn messages(&self) -> Vec<String> {
        if let Some(f) = &self.fatal {
            return vec![f.0.clone()];
        }
        let mut m = Vec::new();
        match &self.backup {
            BackupBoot::Missing => m.push(MSG_NO_BACKUP.to_string()),
            BackupBoot::Differs(_) => m.push(MSG_BACKUP_DIFFERS.to_string()),
            BackupBoot::Same => {}
        }
        if self.fs_info == FsInfoState::Absent {
            m.push("No FSINFO sector".into());
        }
        if self.fs_info == FsInfoState::BadMagic {
            m.push("FSINFO sector has bad magic number(s):".into());
        }
        if let FatsState::Differ { second_intact, .. } = self.fats {
            m.push(
                match (self.first_fat_intact, second_intact) {
                    (true, true) => MSG_FATS_DIFFER,
                    (true, false) => MSG_FATS_DIFFER_FIRST,
                    (false, true) => "FATs differ - using second FAT.",
                    (false, false) => "Both FATs appear to be corrupt. Giving up.",
                }
                .into(),
            );
        }
        if self.dirty || self.unclean_fat {
            m.push(MSG_DIRTY.into());
        }
        match self.fs_info {
            FsInfoState::Wrong { stored, real } => m.push(format!(
                "Free cluster summary wrong ({stored} vs. really {real})"
            )),
            FsInfoState::Uninitialized => m.push("Free cluster summary uninitialized".into()),
            _ => {}
        }
        m
    }

    /// The differences line fsck.fat prints for a differing backup
    /// (`67:ca/00, 68:a0/00`), if any.
    pub fn backup_differences(&self) -> Option<String> {
        let BackupBoot::Differs(d) = &self.backup else {
            return None;
        };
        Some(
            d.iter()
                .map(|(o, a, b)| format!("{o}:{a:02x}/{b:02x}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// Reads in chunks of this many bytes when comparing the FATs.
const CHUNK: u64 = 1 << 20;

/// What dosfstools 4.2 `fsck.fat` finds on the volume `part` (a FAT
/// partition or whole-disk filesystem), see [`FsckFat`]. Reads the whole
/// compared part of both FATs.
pub fn check_fat32(part: &mut dyn ReadAt) -> Result<FsckFat> {
    let mut out = FsckFat {
        fatal: None,
        boot: None,
        backup: BackupBoot::Same,
        fats: FatsState::Single,
        first_fat_intact: true,
        dirty: false,
        unclean_fat: false,
        fs_info: FsInfoState::Absent,
    };
    let size = part.size();
    let Some(s) = read(part, 0, BOOT_SECTOR_SIZE)? else {
        out.fatal = Some(FatBootError(
            "the volume is smaller than a boot sector".into(),
        ));
        return Ok(out);
    };
    let boot = match Fat32Boot::parse(&s, size) {
        Ok(b) => b,
        Err(e) => {
            out.fatal = Some(e);
            return Ok(out);
        }
    };
    if boot.fat_type != FatType::Fat32 {
        out.boot = Some(boot);
        return Ok(out);
    }
    out.backup = match boot.backup_boot_offset() {
        None => BackupBoot::Missing,
        Some(off) => match read(part, off, BOOT_SECTOR_SIZE)? {
            None => {
                out.fatal = Some(FatBootError(format!(
                    "the backup boot sector (byte {off}) is past the end of the volume"
                )));
                return Ok(out);
            }
            Some(b2) => {
                let d: Vec<(usize, u8, u8)> = s
                    .iter()
                    .zip(&b2)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| (i, *a, *b))
                    .collect();
                if d.is_empty() {
                    BackupBoot::Same
                } else {
                    BackupBoot::Differs(d)
                }
            }
        },
    };
    let mut stored_free = None;
    if let Some(off) = boot.fs_info_offset() {
        match read(part, off, BOOT_SECTOR_SIZE)? {
            Some(i)
                if le32(&i, 0) == FSI_LEAD_SIG
                    && le32(&i, 484) == FSI_STRUC_SIG
                    && le32(&i, 508) == FSI_TRAIL_SIG =>
            {
                stored_free = Some(le32(&i, FSI_FREE_COUNT));
            }
            _ => out.fs_info = FsInfoState::BadMagic,
        }
    }
    // The FATs: entry 0 intact, the compared bytes equal, FAT[1]'s
    // clean-shutdown bit, the free clusters of the first FAT.
    let len = boot.fat32_compared_bytes();
    let first = boot.fat_offset(0);
    let second = (boot.num_fats > 1).then(|| boot.fat_offset(1));
    let end = second.unwrap_or(first).checked_add(len);
    if end.is_none_or(|e| e > size) {
        out.fatal = Some(FatBootError(
            "the FATs extend past the end of the volume".into(),
        ));
        return Ok(out);
    }
    let mut free: u64 = 0;
    let mut pos = 0u64;
    let mut second_intact = true;
    while pos < len {
        let n = (len - pos).min(CHUNK);
        let a = part.read_vec(first + pos, n as usize)?;
        if pos == 0 {
            out.first_fat_intact = entry0_intact(&a);
            out.unclean_fat = a.len() >= 8 && le32(&a, 4) & FAT32_CLEAN_SHUTDOWN == 0;
        }
        if let Some(second) = second {
            let b = part.read_vec(second + pos, n as usize)?;
            if pos == 0 {
                second_intact = entry0_intact(&b);
                out.fats = FatsState::Same;
            }
            if out.fats == FatsState::Same {
                if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
                    out.fats = FatsState::Differ {
                        first_entry: (pos + i as u64) / FAT32_ENTRY_SIZE,
                        second_intact,
                    };
                }
            }
        }
        for (k, e) in a.chunks_exact(FAT32_ENTRY_SIZE as usize).enumerate() {
            let cluster = (pos / FAT32_ENTRY_SIZE) + k as u64;
            if cluster >= u64::from(FIRST_DATA_CLUSTER) && le32(e, 0) & FAT32_ENTRY_MASK == 0 {
                free += 1;
            }
        }
        pos += n;
    }
    if let Some(stored) = stored_free {
        let real = free.min(u64::from(u32::MAX)) as u32;
        out.fs_info = if stored == u32::MAX {
            FsInfoState::Uninitialized
        } else if stored != real {
            FsInfoState::Wrong { stored, real }
        } else {
            FsInfoState::Matches
        };
    }
    out.dirty = boot.dirty();
    out.boot = Some(boot);
    Ok(out)
}

/// Whether a FAT's entry 0 holds the media bits dosfstools expects.
fn entry0_intact(fat: &[u8]) -> bool {
    fat.len() >= 4 && le32(fat, 0) & FAT32_MEDIA_ENTRY_BITS == FAT32_MEDIA_ENTRY_BITS
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
    use crate::fs::fat::boot::*;
    use crate::image::MemDisk;

    /// A clean 2 MiB FAT32 volume: 32 reserved sectors, two 32-sector
    /// FATs, the root directory in cluster 2, FSInfo in sector 1, the
    /// backup boot sector in sector 6.
    pub(crate) fn volume() -> MemDisk {
        let mut d = vec![0u8; 2 << 20];
        let s = &mut d[..512];
        s[0] = 0xEB;
        s[BPB_BYTS_PER_SEC..BPB_BYTS_PER_SEC + 2].copy_from_slice(&512u16.to_le_bytes());
        s[BPB_SEC_PER_CLUS] = 1;
        s[BPB_RSVD_SEC_CNT..BPB_RSVD_SEC_CNT + 2].copy_from_slice(&32u16.to_le_bytes());
        s[BPB_NUM_FATS] = 2;
        s[BPB_MEDIA] = 0xF8;
        s[BPB_TOT_SEC32..BPB_TOT_SEC32 + 4].copy_from_slice(&4096u32.to_le_bytes());
        s[BPB_FAT_SZ32..BPB_FAT_SZ32 + 4].copy_from_slice(&32u32.to_le_bytes());
        s[BPB_ROOT_CLUS..BPB_ROOT_CLUS + 4].copy_from_slice(&2u32.to_le_bytes());
        s[BPB_FS_INFO..BPB_FS_INFO + 2].copy_from_slice(&1u16.to_le_bytes());
        s[BPB_BK_BOOT_SEC..BPB_BK_BOOT_SEC + 2].copy_from_slice(&6u16.to_le_bytes());
        s[510] = 0x55;
        s[511] = 0xAA;
        let boot = d[..512].to_vec();
        d[6 * 512..7 * 512].copy_from_slice(&boot);
        let fsi = &mut d[512..1024];
        fsi[0..4].copy_from_slice(&FSI_LEAD_SIG.to_le_bytes());
        fsi[484..488].copy_from_slice(&FSI_STRUC_SIG.to_le_bytes());
        fsi[FSI_FREE_COUNT..FSI_FREE_COUNT + 4].copy_from_slice(&3999u32.to_le_bytes());
        fsi[508..512].copy_from_slice(&FSI_TRAIL_SIG.to_le_bytes());
        for fat in [32 * 512, 64 * 512] {
            for (i, v) in [0x0FFF_FFF8u32, 0x0FFF_FFFF, 0x0FFF_FFFF]
                .iter()
                .enumerate()
            {
                d[fat + 4 * i..fat + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        MemDisk(d)
    }

    #[test]
    fn a_clean_volume_is_clean() {
        let f = check_fat32(&mut volume()).unwrap();
        assert!(f.clean(), "{f:?}");
        assert_eq!(f.exit_code(false), 0);
        assert_eq!(f.exit_code(true), 0);
        assert!(f.messages().is_empty());
    }

    #[test]
    fn each_finding_and_its_exit_codes() {
        // The second FAT's root entry marked free.
        let mut v = volume();
        v.0[64 * 512 + 8..64 * 512 + 12].fill(0);
        let f = check_fat32(&mut v).unwrap();
        assert_eq!(
            f.fats,
            FatsState::Differ {
                first_entry: 2,
                second_intact: true
            }
        );
        assert_eq!((f.exit_code(false), f.exit_code(true)), (1, 1));
        assert_eq!(f.messages(), [MSG_FATS_DIFFER]);

        // The dirty bit in the boot sector only.
        let mut v = volume();
        v.0[BS_RESERVED1_32] = 1;
        let f = check_fat32(&mut v).unwrap();
        assert!(f.dirty);
        assert_eq!(f.backup_differences().as_deref(), Some("65:01/00"));
        assert_eq!(f.messages(), [MSG_BACKUP_DIFFERS, MSG_DIRTY]);
        assert_eq!(f.exit_code(false), 1);

        // The backup alone: reported, exit 0, nothing queued.
        let mut v = volume();
        v.0[6 * 512 + BS_VOL_ID_32] = 0xFF;
        let f = check_fat32(&mut v).unwrap();
        assert_eq!(f.backup_differences().as_deref(), Some("67:00/ff"));
        assert_eq!((f.exit_code(false), f.exit_code(true)), (0, 0));

        // A wrong free count; an uninitialized one only -a sets.
        let mut v = volume();
        v.0[512 + FSI_FREE_COUNT] = 7;
        let f = check_fat32(&mut v).unwrap();
        assert!(matches!(f.fs_info, FsInfoState::Wrong { real: 3999, .. }));
        assert_eq!(f.exit_code(false), 1);
        v.0[512 + FSI_FREE_COUNT..512 + FSI_FREE_COUNT + 4].fill(0xFF);
        let f = check_fat32(&mut v).unwrap();
        assert_eq!(f.fs_info, FsInfoState::Uninitialized);
        assert_eq!((f.exit_code(false), f.exit_code(true)), (0, 1));

        // No backup boot sector: -n/-a would create one.
        let mut v = volume();
        v.0[BPB_BK_BOOT_SEC] = 0;
        let f = check_fat32(&mut v).unwrap();
        assert_eq!(f.backup, BackupBoot::Missing);
        assert_eq!(f.exit_code(false), 1);

        // The boot sector zeroed: fatal.
        let mut v = volume();
        v.0[..512].fill(0);
        let f = check_fat32(&mut v).unwrap();
        assert_eq!(
            f.fatal.map(|e| e.0).as_deref(),
            Some("Logical sector size is zero.")
        );
    }

    #[test]
    fn truncated_volumes_are_not_errors() {
        for len in [0, 100, 512, 40 * 512, 70 * 512] {
            let mut v = MemDisk(volume().0[..len].to_vec());
            let f = check_fat32(&mut v).unwrap();
            assert!(f.fatal.is_some(), "{len}: {f:?}");
        }
    }
}

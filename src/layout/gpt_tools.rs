//! What the partitioning tools write back when they rewrite a GPT, and the
//! geometry facts that decide whether that restores the disk byte for byte.
//!
//! Two writers matter (verified with gdisk 1.0.9 and util-linux 2.38.1, see
//! the shared catalogue, "Corrections found on other geometries" §3, and
//! `tests/partition_tables.rs`):
//!
//! - **sgdisk** (`sgdisk -e`, gdisk `w`) keeps the first usable LBA, sets
//!   the last usable LBA to `sectors − first_usable` (the same room at both
//!   ends), puts the backup entry array right after it and, when it
//!   regenerates a primary header from the backup, the main array right
//!   before the first usable LBA. On a table sgdisk made (first usable LBA =
//!   2 + array sectors) that is the table itself. Sector 0: gdisk's
//!   `MoveSecondHeaderToEnd` writes its own protective MBR (end CHS computed
//!   from the disk size) only when the last usable LBA changes; otherwise it
//!   writes back the protective MBR it read (boot code, disk signature and
//!   CHS kept), and one it could not read as an MBR is replaced by its own.
//!   When the last partition ends after the new last usable LBA it refuses,
//!   exit 4 ("Secondary partition table overlaps the last partition").
//! - **libfdisk** (`sfdisk -d DISK | sfdisk DISK`, fdisk `w`) writes its own
//!   protective MBR (end CHS `ff ff ff`), the header fields of the dump
//!   (first and last usable LBA, disk GUID), the main array at LBA 2 and the
//!   backup array right before the last LBA: the table itself when libfdisk
//!   made it (any first usable LBA, 2048 by default).
//!
//! [`GptState`] is the GPT as a (possibly damaged) disk holds it;
//! [`GptImage`] a complete, self-consistent GPT (what the base held, rebuilt
//! from the copy that survived), on which [`GptImage::sgdisk_e`] and
//! [`GptImage::libfdisk_restores`] answer.

use super::gpt::{self, GptCopy, GptHeader, PRIMARY_HEADER_LBA};
use super::mbr;
use super::{SECTOR_4096, SECTOR_512};
use crate::error::Result;
use crate::image::ReadAt;

/// Bytes of a header defined by UEFI table 5.5; the rest of the sector is reserved (zero).
pub const HEADER_FIELDS_SIZE: u32 = 92;
/// The GPT revision 1.0 (UEFI table 5.5).
pub const REVISION_1_0: u32 = 0x0001_0000;
/// Size of the MBR, also in front of a 4096-byte sector 0.
pub const MBR_SIZE: usize = 512;
/// Offset of the four partition records in an MBR (UEFI table 5.1).
const RECORDS: usize = mbr::PARTITION_RECORDS_OFFSET;
/// The protective MBR's partition type (UEFI table 5.4).
const PROTECTIVE_TYPE: u8 = 0xEE;
/// The CHS translation gdisk uses: 255 heads, 63 sectors per track, 1024 cylinders.
const HEADS: u64 = 255;
const SECTORS_PER_TRACK: u64 = 63;
const CYLINDERS: u64 = 1024;
/// The entry count and size libfdisk writes (and sgdisk by default).
pub const DEFAULT_ENTRIES: u32 = 128;
/// See [`DEFAULT_ENTRIES`].
pub const DEFAULT_ENTRY_SIZE: u32 = 128;

/// An entry's attribute bits (UEFI table 5.6, bytes 48..56).
const ATTRIBUTES: std::ops::Range<usize> = 48..56;
/// The attribute bits `sfdisk -d` leaves out of its dump: 3 to 47.
const ATTRIBUTES_NOT_DUMPED: u64 = ((1 << 48) - 1) & !0b111;

/// Header field offsets (UEFI table 5.5).
const MY_LBA: usize = 24;
const ALTERNATE_LBA: usize = 32;
const ENTRIES_LBA: usize = 72;
const HEADER_CRC: usize = 16;

/// Whose protective MBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmbrStyle {
    /// gdisk/sgdisk: end CHS computed from the last LBA.
    Sgdisk,
    /// libfdisk (sfdisk, fdisk): end CHS `ff ff ff`.
    Libfdisk,
}

/// `lba` as a CHS triple in the 255-head, 63-sector translation (bytes as
/// in an MBR record: head, sector | cylinder bits 8-9 << 6, cylinder low),
/// for the end of a protective 0xEE record: past 1024 cylinders `ff ff ff`,
/// which gdisk writes only there (`MBRPart::SetLocation`'s special case for
/// a 0xEE record covering the disk; its general `LBAtoCHS` gives `fe ff ff`).
/// Not for other records.
pub fn lba_to_chs(lba: u64) -> [u8; 3] {
    if lba >= HEADS * SECTORS_PER_TRACK * CYLINDERS {
        return [0xFF; 3];
    }
    let cylinder = lba / (HEADS * SECTORS_PER_TRACK);
    let rest = lba % (HEADS * SECTORS_PER_TRACK);
    let head = rest / SECTORS_PER_TRACK;
    let sector = rest % SECTORS_PER_TRACK + 1;
    [
        head as u8,
        sector as u8 | ((cylinder >> 2) & 0xC0) as u8,
        (cylinder & 0xFF) as u8,
    ]
}

/// The protective MBR `style` writes on a disk of `sectors` logical sectors:
/// no boot code, no disk signature, one 0xEE record from LBA 1 covering the
/// disk (at most 2^32 − 1 sectors), the 0x55AA signature.
pub fn protective_mbr(style: PmbrStyle, sectors: u64) -> Vec<u8> {
    let mut s = vec![0u8; MBR_SIZE];
    let last = sectors.saturating_sub(1);
    let end_chs = match style {
        PmbrStyle::Sgdisk => lba_to_chs(last),
        PmbrStyle::Libfdisk => [0xFF; 3],
    };
    let r = &mut s[RECORDS..RECORDS + mbr::PARTITION_RECORD_SIZE];
    r[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    r[4] = PROTECTIVE_TYPE;
    r[5..8].copy_from_slice(&end_chs);
    r[8..12].copy_from_slice(&1u32.to_le_bytes());
    r[12..16].copy_from_slice(&(last.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    s[super::MBR_SIGNATURE_OFFSET..].copy_from_slice(&super::MBR_SIGNATURE);
    s
}

/// Sectors taken by the entry array of `h` (rounded up).
pub fn array_sectors(h: &GptHeader, ss: u32) -> u64 {
    (u64::from(h.num_entries) * u64::from(h.entry_size)).div_ceil(u64::from(ss))
}

/// `copy` moved to another place: its header sector with MyLBA,
/// AlternateLBA and PartitionEntryLBA replaced and the header CRC32
/// recomputed (what a tool writes when it regenerates one header from the
/// other). The array is the same.
pub fn relocated(copy: &GptCopy, my_lba: u64, alternate_lba: u64, entries_lba: u64) -> GptCopy {
    let mut sector = copy.sector.clone();
    sector[MY_LBA..MY_LBA + 8].copy_from_slice(&my_lba.to_le_bytes());
    sector[ALTERNATE_LBA..ALTERNATE_LBA + 8].copy_from_slice(&alternate_lba.to_le_bytes());
    sector[ENTRIES_LBA..ENTRIES_LBA + 8].copy_from_slice(&entries_lba.to_le_bytes());
    let crc = gpt::header_crc32(&sector, copy.header.header_size);
    sector[HEADER_CRC..HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    let header = GptHeader {
        my_lba,
        alternate_lba,
        entries_lba,
        ..copy.header.clone()
    };
    GptCopy {
        header,
        sector,
        array: copy.array.clone(),
    }
}

/// The GPT as a disk holds it now: sector 0 and both copies, each usable or
/// with the reason it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptState {
    /// The logical sector size the table was written for.
    pub sector_size: u32,
    /// Disk size in logical sectors.
    pub sectors: u64,
    /// The first 512 bytes of sector 0 (the protective MBR, if intact).
    pub mbr: Vec<u8>,
    /// Whether LBA 1 starts with the "EFI PART" signature (valid or not).
    pub primary_signature: bool,
    /// The primary header and array at LBA 1, or why they are unusable.
    pub primary: std::result::Result<GptCopy, String>,
    /// The backup header at the last LBA and its array, or why unusable.
    pub backup: std::result::Result<GptCopy, String>,
    /// Whether the primary header itself is valid (signature, CRC32,
    /// fields), whatever its entry array: gdisk reports the header ("Main
    /// header") and the array ("Main partition table") separately.
    pub primary_header_ok: bool,
    /// Whether the backup header itself is valid, whatever its array.
    pub backup_header_ok: bool,
}

impl GptState {
    /// Reads the GPT of `disk` for 512-byte, then 4096-byte sectors: the
    /// first size at which a valid header (primary or backup) is found.
    /// `None` when neither copy is valid at either size. Sector 0 need not be
    /// a protective MBR.
    pub fn read(disk: &mut dyn ReadAt) -> Result<Option<GptState>> {
        let size = disk.size();
        if size < MBR_SIZE as u64 {
            return Ok(None);
        }
        let mbr = disk.read_vec(0, MBR_SIZE)?;
        for ss in [SECTOR_512, SECTOR_4096] {
            let sectors = size / u64::from(ss);
            if sectors < 3 {
                continue;
            }
            let primary = gpt::read_copy(disk, PRIMARY_HEADER_LBA, ss)?;
            let backup = gpt::read_copy(disk, sectors - 1, ss)?;
            if primary.is_err() && backup.is_err() {
                continue;
            }
            let primary_signature = disk.read_vec(u64::from(ss), 8)? == gpt::SIGNATURE;
            let header_ok = |disk: &mut dyn ReadAt, lba: u64| -> Result<bool> {
                let sector = disk.read_vec(lba * u64::from(ss), ss as usize)?;
                Ok(gpt::parse_header(&sector, lba).is_ok())
            };
            let primary_header_ok = header_ok(disk, PRIMARY_HEADER_LBA)?;
            let backup_header_ok = header_ok(disk, sectors - 1)?;
            return Ok(Some(GptState {
                primary_header_ok,
                backup_header_ok,
                sector_size: ss,
                sectors,
                mbr,
                primary_signature,
                primary,
                backup,
            }));
        }
        Ok(None)
    }

    /// Whether sector 0 is a protective (or hybrid) MBR.
    pub fn has_protective_mbr(&self) -> bool {
        mbr::is_protective(&self.mbr)
    }

    /// The copy a reader uses: the primary if valid, else the backup.
    pub fn usable(&self) -> Option<&GptCopy> {
        self.primary.as_ref().or(self.backup.as_ref()).ok()
    }

    /// The complete table this disk held before one part of it was lost,
    /// rebuilt from what survives: a missing header is the other one
    /// relocated (the primary's array at LBA 2, the backup's right before the
    /// last LBA, where sgdisk and libfdisk put them) and a missing protective
    /// MBR is `pmbr_if_missing`'s. `None` when neither header survives.
    pub fn rebuilt(&self, pmbr_if_missing: impl FnOnce(&GptCopy) -> PmbrStyle) -> Option<GptImage> {
        let ss = self.sector_size;
        let last = self.sectors - 1;
        let (primary, backup) = match (&self.primary, &self.backup) {
            (Ok(p), Ok(b)) => (p.clone(), b.clone()),
            (Ok(p), Err(_)) => {
                let a = array_sectors(&p.header, ss);
                (
                    p.clone(),
                    relocated(p, last, PRIMARY_HEADER_LBA, last.checked_sub(a)?),
                )
            }
            (Err(_), Ok(b)) => (relocated(b, PRIMARY_HEADER_LBA, last, 2), b.clone()),
            (Err(_), Err(_)) => return None,
        };
        let mbr = if self.has_protective_mbr() {
            self.mbr.clone()
        } else {
            protective_mbr(pmbr_if_missing(&primary), self.sectors)
        };
        Some(GptImage {
            sector_size: ss,
            sectors: self.sectors,
            mbr,
            primary,
            backup,
        })
    }
}

/// A complete GPT: protective MBR, both headers, both arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptImage {
    /// The logical sector size.
    pub sector_size: u32,
    /// Disk size in logical sectors.
    pub sectors: u64,
    /// The protective MBR (512 bytes).
    pub mbr: Vec<u8>,
    /// The primary header and array.
    pub primary: GptCopy,
    /// The backup header and array.
    pub backup: GptCopy,
}

/// What `sgdisk -e` does with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgdiskE {
    /// Its exit code: 0, or 4 when the backup array would overlap the last partition.
    pub exit_code: i32,
    /// By how many sectors the backup array would overlap the last partition.
    pub overlap: u64,
    /// Whether what it writes is this table, byte for byte.
    pub identical: bool,
}

impl GptImage {
    /// Every byte range this table occupies and its content:
    /// `(guest offset, bytes)` for the MBR, both headers and both arrays.
    pub fn regions(&self) -> Vec<(u64, &[u8])> {
        let ss = u64::from(self.sector_size);
        vec![
            (0, &self.mbr[..]),
            (self.primary.header.my_lba * ss, &self.primary.sector[..]),
            (
                self.primary.header.entries_lba * ss,
                &self.primary.array[..],
            ),
            (self.backup.header.entries_lba * ss, &self.backup.array[..]),
            (self.backup.header.my_lba * ss, &self.backup.sector[..]),
        ]
    }

    /// Sectors of one entry array.
    pub fn array_sectors(&self) -> u64 {
        array_sectors(&self.primary.header, self.sector_size)
    }

    /// The first usable LBA sgdisk gives a table it creates (right after the main array).
    pub fn sgdisk_first_usable(&self) -> u64 {
        2 + self.array_sectors()
    }

    /// Who made this table, as far as its geometry tells: sgdisk puts the
    /// first usable LBA right after the main array; libfdisk at 1 MiB.
    pub fn made_by_sgdisk(&self) -> bool {
        self.primary.header.first_usable_lba == self.sgdisk_first_usable()
    }

    /// The highest last LBA of a used entry (0 without partitions).
    pub fn last_partition_lba(&self) -> u64 {
        let size = self.primary.header.entry_size as usize;
        self.primary
            .array
            .chunks_exact(size.max(1))
            .filter(|e| e[..16].iter().any(|&b| b != 0))
            .map(|e| u64::from_le_bytes(e[40..48].try_into().unwrap_or_default()))
            .max()
            .unwrap_or(0)
    }

    /// Why the layout is not the one both sgdisk and libfdisk write
    /// (revision 1.0, 92-byte headers with a zero reserved area, the main
    /// array at LBA 2, the backup header at the last LBA with its array right
    /// before it, the last usable LBA right before that, both arrays equal,
    /// unused entries zero), or `Ok`.
    pub fn standard_layout(&self) -> std::result::Result<(), String> {
        let last = self.sectors - 1;
        let a = self.array_sectors();
        let (p, b) = (&self.primary.header, &self.backup.header);
        for (which, c) in [("primary", &self.primary), ("backup", &self.backup)] {
            let h = &c.header;
            if h.revision != REVISION_1_0 || h.header_size != HEADER_FIELDS_SIZE {
                return Err(format!(
                    "the {which} header has revision {:#x} and size {} (tools write 1.0 and 92)",
                    h.revision, h.header_size
                ));
            }
            if c.sector[HEADER_FIELDS_SIZE as usize..]
                .iter()
                .any(|&x| x != 0)
            {
                return Err(format!("the {which} header's reserved bytes are not zero"));
            }
        }
        if p.entries_lba != 2 {
            return Err(format!(
                "the main entry array is at LBA {}, not 2",
                p.entries_lba
            ));
        }
        if p.alternate_lba != last || b.my_lba != last || b.alternate_lba != PRIMARY_HEADER_LBA {
            return Err("the headers do not point at each other at LBA 1 and the last LBA".into());
        }
        if b.entries_lba + a != last {
            return Err(format!(
                "the backup entry array is at LBA {}, not right before the backup header",
                b.entries_lba
            ));
        }
        if p.last_usable_lba + 1 != b.entries_lba {
            return Err(format!(
                "the last usable LBA {} is not right before the backup array",
                p.last_usable_lba
            ));
        }
        if self.primary.array != self.backup.array {
            return Err("the primary and backup entry arrays differ".into());
        }
        let size = p.entry_size as usize;
        for (i, e) in self.primary.array.chunks_exact(size.max(1)).enumerate() {
            let used = e[..16].iter().any(|&x| x != 0);
            if !used && e.iter().any(|&x| x != 0) {
                return Err(format!("unused entry {} is not all zeros", i + 1));
            }
            let name = &e[56..56 + gpt::NAME_BYTES];
            let end = name
                .chunks_exact(2)
                .position(|u| u == [0, 0])
                .map_or(name.len(), |i| i * 2);
            if name[end..].iter().any(|&x| x != 0) {
                return Err(format!("entry {} has bytes after its name's end", i + 1));
            }
        }
        Ok(())
    }

    /// What `sgdisk -e` does with this table (see the module doc). `self.mbr`
    /// is sector 0 as sgdisk finds it: a protective MBR it keeps on its own
    /// layout ([`GptState::rebuilt`] puts the plain one there when it is lost).
    pub fn sgdisk_e(&self) -> SgdiskE {
        let h = &self.primary.header;
        let new_last_usable = self.sectors.saturating_sub(h.first_usable_lba);
        let last = self.last_partition_lba();
        if last > new_last_usable {
            return SgdiskE {
                exit_code: 4,
                overlap: last - new_last_usable,
                identical: false,
            };
        }
        // On sgdisk's layout the last usable LBA stays, so sector 0 is
        // written back as `self.mbr` holds it (the disk's own protective MBR,
        // or the plain one sgdisk writes where it was lost).
        let identical = self.standard_layout().is_ok() && self.made_by_sgdisk();
        SgdiskE {
            exit_code: 0,
            overlap: 0,
            identical,
        }
    }

    /// Whether libfdisk rewriting this table (`sfdisk -d | sfdisk`) writes
    /// it byte for byte: the standard layout, libfdisk's protective MBR, 128
    /// entries of 128 bytes, the used entries first (a dump renumbers them),
    /// no attribute bit 3..47 set (the dump drops them).
    pub fn libfdisk_restores(&self) -> bool {
        let h = &self.primary.header;
        let size = h.entry_size as usize;
        let used: Vec<bool> = self
            .primary
            .array
            .chunks_exact(size.max(1))
            .map(|e| e[..16].iter().any(|&x| x != 0))
            .collect();
        let contiguous = used.windows(2).all(|w| w[0] || !w[1]);
        // `sfdisk -d` dumps attribute bits 0-2 by name and 48-63 as GUID:n;
        // bits 3-47 are dropped (libfdisk gpt_entry_attrs_to_string).
        let attrs_dumped = self
            .primary
            .array
            .chunks_exact(size.max(1))
            .filter(|e| e.len() >= ATTRIBUTES.end)
            .all(|e| {
                let a = u64::from_le_bytes(e[ATTRIBUTES].try_into().unwrap_or_default());
                a & ATTRIBUTES_NOT_DUMPED == 0
            });
        attrs_dumped
            && self.standard_layout().is_ok()
            && h.num_entries == DEFAULT_ENTRIES
            && h.entry_size == DEFAULT_ENTRY_SIZE
            && contiguous
            && self.mbr == protective_mbr(PmbrStyle::Libfdisk, self.sectors)
    }
}

/// The protective MBR style of a table's maker, from one header: sgdisk
/// when the first usable LBA follows the main array right away.
pub fn maker_pmbr_of(copy: &GptCopy, ss: u32) -> PmbrStyle {
    if copy.header.first_usable_lba == 2 + array_sectors(&copy.header, ss) {
        PmbrStyle::Sgdisk
    } else {
        PmbrStyle::Libfdisk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_matches_what_gdisk_writes() {
        // 64 MiB, 512-byte sectors: sgdisk wrote 28 20 08.
        assert_eq!(lba_to_chs(131_071), [0x28, 0x20, 0x08]);
        // 64 MiB, 4096-byte sectors: 05 04 01.
        assert_eq!(lba_to_chs(16_383), [0x05, 0x04, 0x01]);
        // 20 GiB: sgdisk -o wrote ff ff ff (the full-disk 0xEE record's
        // special case, not gdisk's general fe ff ff).
        assert_eq!(lba_to_chs(41_943_039), [0xFF; 3]);
        let m = protective_mbr(PmbrStyle::Sgdisk, 131_072);
        assert_eq!(
            &m[446..462],
            &[0, 0, 2, 0, 0xEE, 0x28, 0x20, 0x08, 1, 0, 0, 0, 0xFF, 0xFF, 1, 0]
        );
        assert_eq!(&m[510..], &[0x55, 0xAA]);
        let f = protective_mbr(PmbrStyle::Libfdisk, 131_072);
        assert_eq!(&f[450..455], &[0xEE, 0xFF, 0xFF, 0xFF, 1]);
    }
}

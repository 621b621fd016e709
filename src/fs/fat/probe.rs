//! FAT12/16/32 (`vfat`), identified as util-linux 2.38
//! `libblkid/src/superblocks/vfat.c` does: the boot-sector magics, the BPB
//! sanity checks of `fat_valid_superblock`, the label from the root
//! directory's volume-label entry, the serial as `XXXX-XXXX`.
//!
//! Note: blkid 2.38 sets LABEL only from the root-directory entry; the label
//! in the boot sector is its `LABEL_FATBOOT`, which qfault does not report.

use crate::error::Result;
use crate::fs::bytes::{le16, le32};
use crate::fs::text::{label_bytes, serial4};
use crate::fs::{read_opt, FsInfo};
use crate::image::ReadAt;

/// Boot-sector magics with their offsets, in blkid's order; the last three
/// are the weak ones (jump opcode or 0x55AA only).
const MAGICS: &[(&[u8], usize)] = &[
    (b"MSWIN", 0x52),
    (b"FAT32   ", 0x52),
    (b"MSDOS", 0x36),
    (b"FAT16   ", 0x36),
    (b"FAT12   ", 0x36),
    (b"FAT     ", 0x36),
    (b"\xEB", 0),
    (b"\xE9", 0),
    (b"\x55\xAA", 0x1FE),
];
/// Largest cluster count of FAT12 (blkid `FAT12_MAX`).
const FAT12_MAX: u32 = 0xFF4;
/// Largest cluster count of FAT16 (blkid `FAT16_MAX`).
const FAT16_MAX: u32 = 0xFFF4;
/// Largest cluster count of FAT32 (blkid `FAT32_MAX`).
const FAT32_MAX: u32 = 0x0FFF_FFF6;
/// Directory entry size (Microsoft FAT specification, section 6).
const DIR_ENTRY: usize = 32;
/// Directory-entry attribute: volume label.
const ATTR_VOLUME_ID: u8 = 0x08;
/// Directory-entry attribute: directory.
const ATTR_DIR: u8 = 0x10;
/// Attribute value of a long-name entry.
const ATTR_LONG_NAME: u8 = 0x0F;
/// Mask of the defined attribute bits.
const ATTR_MASK: u8 = 0x3F;
/// First name byte of a deleted entry.
const ENTRY_FREE: u8 = 0xE5;
/// blkid gives up following the FAT32 root-directory chain after this many clusters.
const MAX_ROOT_CLUSTERS: u32 = 99;

/// The decoded BPB values the checks need.
struct Bpb {
    sector_size: u32,
    cluster_sectors: u32,
    reserved: u32,
    fat_size: u32,
    cluster_count: u32,
    fat16_length: u16,
    fat32_length: u32,
    dir_entries: u32,
}

/// The first magic that matches, as blkid picks it: its length.
fn magic_len(s: &[u8]) -> Option<usize> {
    MAGICS
        .iter()
        .find(|(m, off)| s.get(*off..off + m.len()) == Some(m))
        .map(|(m, _)| m.len())
}

/// blkid's `fat_valid_superblock`.
fn valid(s: &[u8]) -> Option<Bpb> {
    let mlen = magic_len(s)?;
    if mlen <= 2
        && (s[0x1FE] != 0x55
            || s[0x1FF] != 0xAA
            || &s[0x36..0x3E] == b"JFS     "
            || &s[0x36..0x3E] == b"HPFS    ")
    {
        return None;
    }
    let fats = u32::from(s[0x10]);
    let reserved = u32::from(le16(s, 0x0E));
    let media = s[0x15];
    let cluster_sectors = u32::from(s[0x0D]);
    if fats == 0
        || reserved == 0
        || !(media >= 0xF8 || media == 0xF0)
        || !cluster_sectors.is_power_of_two()
    {
        return None;
    }
    let sector_size = u32::from(le16(s, 0x0B));
    if !sector_size.is_power_of_two() || !(512..=4096).contains(&sector_size) {
        return None;
    }
    let dir_entries = u32::from(le16(s, 0x11));
    let mut sect_count = u32::from(le16(s, 0x13));
    if sect_count == 0 {
        sect_count = le32(s, 0x20);
    }
    let fat16_length = le16(s, 0x16);
    let fat32_length = le32(s, 0x24);
    let fat_length = if fat16_length == 0 {
        fat32_length
    } else {
        u32::from(fat16_length)
    };
    let fat_size = fat_length.wrapping_mul(fats);
    let dir_size = (dir_entries * DIR_ENTRY as u32).div_ceil(sector_size);
    let cluster_count = sect_count
        .wrapping_sub(reserved.wrapping_add(fat_size).wrapping_add(dir_size))
        / cluster_sectors;
    let max = if fat16_length == 0 && fat32_length != 0 {
        FAT32_MAX
    } else if cluster_count > FAT12_MAX {
        FAT16_MAX
    } else {
        FAT12_MAX
    };
    if cluster_count > max || &s[3..11] == b"-FVE-FS-" {
        return None;
    }
    Some(Bpb {
        sector_size,
        cluster_sectors,
        reserved,
        fat_size,
        cluster_count,
        fat16_length,
        fat32_length,
        dir_entries,
    })
}

/// True when sector 0 of `part` is a FAT boot sector blkid accepts
/// (`blkid_probe_is_vfat`, used to tell FAT from an MBR).
pub fn is_fat(part: &mut dyn ReadAt) -> Result<bool> {
    Ok(read_opt(part, 0, 512)?.is_some_and(|s| valid(&s).is_some()))
}

/// blkid's `search_fat_label` over `entries` directory entries at `offset`.
fn search_label(part: &mut dyn ReadAt, offset: u64, entries: u32) -> Result<Option<[u8; 11]>> {
    // At most 65535 entries (2 MiB) for FAT12/16, one cluster for FAT32.
    let Some(dir) = read_opt(part, offset, entries as usize * DIR_ENTRY)? else {
        return Ok(None);
    };
    for e in dir.chunks_exact(DIR_ENTRY) {
        if e[0] == 0 {
            break;
        }
        let attr = e[11];
        if e[0] == ENTRY_FREE
            || le16(e, 20) != 0
            || le16(e, 26) != 0
            || attr & ATTR_MASK == ATTR_LONG_NAME
        {
            continue;
        }
        if attr & (ATTR_VOLUME_ID | ATTR_DIR) == ATTR_VOLUME_ID {
            let mut name = [0u8; 11];
            name.copy_from_slice(&e[..11]);
            if name[0] == 0x05 {
                name[0] = ENTRY_FREE;
            }
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Probes for FAT12/16/32.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(s) = read_opt(part, 0, 512)? else {
        return Ok(None);
    };
    let Some(b) = valid(&s) else {
        return Ok(None);
    };
    let ss = u64::from(b.sector_size);
    let mut info = FsInfo::new("vfat");
    let label;
    if b.fat16_length != 0 {
        let root = (u64::from(b.reserved) + u64::from(b.fat_size)) * ss;
        label = search_label(part, root, b.dir_entries)?;
        if matches!(s[0x26], 0x28 | 0x29) {
            info.uuid = serial4(&s[0x27..0x2B]);
        }
        info.version = if b.cluster_count < FAT12_MAX {
            Some("FAT12".into())
        } else if b.cluster_count < FAT16_MAX {
            Some("FAT16".into())
        } else {
            None
        };
    } else if b.fat32_length != 0 {
        label = fat32_root_label(part, &s, &b)?;
        info.version = Some("FAT32".into());
        info.uuid = serial4(&s[0x43..0x47]);
        let fsinfo_sector = u64::from(le16(&s, 0x30));
        if fsinfo_sector != 0 {
            let Some(fsi) = read_opt(part, fsinfo_sector * ss, 512)? else {
                return Ok(None);
            };
            let sig1 = &fsi[0..4];
            let sig2 = &fsi[484..488];
            if !(sig1 == b"RRaA" || sig1 == b"RRdA" || sig1 == [0; 4])
                || !(sig2 == b"rrAa" || sig2 == [0; 4])
            {
                return Ok(None);
            }
        }
    } else {
        label = None;
    }
    info.label = label.and_then(|l| label_bytes(&l));
    Ok(Some(info))
}

/// Follows the FAT32 root directory's cluster chain (bounded) looking for the label.
fn fat32_root_label(part: &mut dyn ReadAt, s: &[u8], b: &Bpb) -> Result<Option<[u8; 11]>> {
    let ss = u64::from(b.sector_size);
    let cluster_bytes = b.cluster_sectors * b.sector_size;
    let fat_entries = (u64::from(b.fat32_length) * ss / 4).min(u64::from(u32::MAX)) as u32;
    let data_start = u64::from(b.reserved) + u64::from(b.fat_size);
    let mut next = le32(s, 0x2C);
    let mut steps = 0;
    while next != 0 && next < fat_entries && steps < MAX_ROOT_CLUSTERS {
        steps += 1;
        let sector = data_start + (u64::from(next.wrapping_sub(2)) * u64::from(b.cluster_sectors));
        let count = cluster_bytes / DIR_ENTRY as u32;
        if let Some(l) = search_label(part, sector * ss, count)? {
            return Ok(Some(l));
        }
        let Some(e) = read_opt(part, u64::from(b.reserved) * ss + u64::from(next) * 4, 4)? else {
            break;
        };
        next = le32(&e, 0) & 0x0FFF_FFFF;
    }
    Ok(None)
}

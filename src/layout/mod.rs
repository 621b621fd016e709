//! Partition tables: MBR (with extended/logical partitions) and GPT.
//!
//! [`read_layout`] reads the guest disk through [`ReadAt`] (so any image
//! format and any backing chain), decides which table it holds, and returns
//! every partition with its byte range, type and, for GPT, name and unique
//! GUID. Problems that still leave a usable table (a backup GPT header in use,
//! overlapping entries, an EBR loop) become [`DiskLayout::warnings`]; a disk
//! whose table cannot be used at all gives [`crate::Error::Guest`].
//!
//! Numbering follows Linux (and therefore sfdisk and blkid): MBR primaries
//! are 1..=4 by slot, logical partitions 5, 6, ... in chain order, GPT
//! entries are their array index plus one. A disk without a table but with a
//! filesystem at offset 0 (a "superfloppy") is one partition numbered 0; so
//! is a filesystem at offset 0 beside a table (a hybrid ISO image), listed
//! before the table's partitions.

pub mod gpt;
pub mod gpt_tools;
pub mod guid;
pub mod mbr;
mod types;

use crate::error::{Error, Result};
use crate::image::ReadAt;
pub use guid::Guid;
pub use types::{gpt_type_name, is_mbr_extended, mbr_type_name};

/// Which kind of partition table the disk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TableKind {
    /// An MBR ("DOS") partition table, named `dos` as sfdisk and blkid do.
    #[serde(rename = "dos")]
    Dos,
    /// A GUID partition table, named `gpt`.
    #[serde(rename = "gpt")]
    Gpt,
    /// No partition table (an empty disk or a whole-disk filesystem).
    #[serde(rename = "none")]
    None,
}

impl TableKind {
    /// The name sfdisk and blkid use: `dos`, `gpt`, or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TableKind::Dos => "dos",
            TableKind::Gpt => "gpt",
            TableKind::None => "none",
        }
    }
}

/// A partition's type as the table records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    /// The MBR system-indicator byte.
    Mbr(u8),
    /// The GPT partition type GUID.
    Gpt(Guid),
    /// A whole-disk filesystem: no table, no type.
    WholeDisk,
}

impl PartitionType {
    /// `0x07` style for MBR, the uppercase GUID for GPT, `None` for a whole disk.
    pub fn code(&self) -> Option<String> {
        match self {
            PartitionType::Mbr(b) => Some(format!("0x{b:02x}")),
            PartitionType::Gpt(g) => Some(g.to_string()),
            PartitionType::WholeDisk => None,
        }
    }

    /// A readable name for common types (fdisk's wording), if known.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            PartitionType::Mbr(b) => mbr_type_name(*b),
            PartitionType::Gpt(g) => gpt_type_name(g),
            PartitionType::WholeDisk => None,
        }
    }
}

impl serde::Serialize for PartitionType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.code() {
            Some(c) => s.serialize_str(&c),
            None => s.serialize_none(),
        }
    }
}

/// Where an MBR partition sits in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MbrRole {
    /// One of the four primary slots, holding data.
    Primary,
    /// A primary slot holding an extended partition (a container).
    Extended,
    /// A logical partition inside the extended partition.
    Logical,
}

/// One partition: where it is, what the table says about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    /// Linux's partition number (0 for a whole-disk filesystem).
    pub number: u32,
    /// Offset of the first byte on the guest disk (`offset` in JSON).
    #[serde(rename = "offset")]
    pub start: u64,
    /// Length in bytes (`length` in JSON).
    #[serde(rename = "length")]
    pub size: u64,
    /// The type byte or type GUID.
    #[serde(rename = "type")]
    pub ptype: PartitionType,
    /// A readable name for the type, if known.
    pub type_name: Option<&'static str>,
    /// MBR boot indicator 0x80, or GPT attribute bit 2 (legacy BIOS bootable).
    pub bootable: bool,
    /// MBR only: primary, extended or logical.
    pub mbr_role: Option<MbrRole>,
    /// GPT only: the partition name (UTF-16LE in the entry).
    pub name: Option<String>,
    /// GPT only: the unique partition GUID.
    pub uuid: Option<Guid>,
}

impl Partition {
    /// True for an MBR extended partition (a container, not a filesystem).
    pub fn is_extended(&self) -> bool {
        self.mbr_role == Some(MbrRole::Extended)
    }

    /// The whole disk of `size` bytes as partition 0 (a whole-disk
    /// filesystem, or the disk itself where commands take partition 0).
    pub fn whole_disk(size: u64) -> Self {
        Partition {
            number: 0,
            start: 0,
            size,
            ptype: PartitionType::WholeDisk,
            type_name: None,
            bootable: false,
            mbr_role: None,
            name: None,
            uuid: None,
        }
    }

    /// One past the last byte (saturating; tables are untrusted).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// Which GPT header the partitions were read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GptInfo {
    /// The disk GUID.
    pub disk_guid: Guid,
    /// True when the primary header or array was invalid and the backup was used.
    pub used_backup: bool,
    /// LBA of the header used.
    pub header_lba: u64,
    /// First LBA usable by partitions.
    pub first_usable_lba: u64,
    /// Last LBA usable by partitions.
    pub last_usable_lba: u64,
}

/// Everything [`read_layout`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiskLayout {
    /// The table kind.
    pub table: TableKind,
    /// Logical sector size the table was written for (GPT: 512 or 4096;
    /// MBR: 512, 1024, 2048 or 4096, see [`mbr::guess_sector_size`]).
    pub sector_size: u32,
    /// Size of the guest disk in bytes.
    pub disk_size: u64,
    /// GPT details, for a GPT disk.
    pub gpt: Option<GptInfo>,
    /// The partitions, in table order (primaries, then logicals; GPT by index).
    pub partitions: Vec<Partition>,
    /// Problems found that did not prevent reading the table.
    pub warnings: Vec<String>,
}

/// The MBR signature 0x55 0xAA at byte 510 of sector 0 (UEFI spec 5.2.1, table 5.1).
pub(crate) const MBR_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// Offset of the MBR signature.
pub(crate) const MBR_SIGNATURE_OFFSET: usize = 510;
/// The classic sector size; MBR tables are read in these units.
pub const SECTOR_512: u32 = 512;
/// The "advanced format" 4Kn logical sector size a GPT may be written for.
pub const SECTOR_4096: u32 = 4096;

/// Reads the partition table of `disk`.
///
/// GPT is used when sector 0 holds a protective MBR (a 0xEE entry); MBR when
/// sector 0 has the 0x55AA signature, sane boot indicators and is not itself
/// a FAT or NTFS boot sector (the same tests blkid makes); otherwise the disk
/// has no table and, if a filesystem sits at offset 0, it is reported as
/// partition 0 covering the whole disk. A filesystem found on the whole disk
/// next to a table (a hybrid ISO image, whose ISO 9660 volume spans the disk
/// while an MBR in its system area lists partitions) is reported as
/// partition 0 as well, before the table's partitions, as `blkid -p`
/// reports both. An MBR without a single partition
/// over a filesystem at offset 0 (an exFAT boot sector looks like that) is
/// taken as the filesystem.
pub fn read_layout(disk: &mut dyn ReadAt) -> Result<DiskLayout> {
    read_layout_probed(disk, &mut Probed::default())
}

/// Filesystem signatures found while reading a layout (guessing an MBR's
/// sector size probes its partitions), by the byte range probed, so a
/// caller probing the partitions next probes each once.
#[derive(Debug, Default, Clone)]
pub struct Probed {
    /// (start, size, what [`crate::fs::probe_all`] found in that window).
    windows: Vec<(u64, u64, crate::fs::Signatures)>,
}

impl Probed {
    /// What was found in the `size` bytes at `start` of the disk, if probed.
    pub fn get(&self, start: u64, size: u64) -> Option<&crate::fs::Signatures> {
        self.windows
            .iter()
            .find(|(s, n, _)| (*s, *n) == (start, size))
            .map(|(_, _, sig)| sig)
    }

    /// [`crate::fs::probe_all`] of the `size` bytes at `start` of `disk`,
    /// probed at most once.
    pub(crate) fn window(
        &mut self,
        disk: &mut dyn ReadAt,
        start: u64,
        size: u64,
    ) -> Result<crate::fs::Signatures> {
        if let Some(found) = self.get(start, size) {
            return Ok(found.clone());
        }
        let mut w = crate::image::Window::new(&mut *disk, start, size)?;
        let found = crate::fs::probe_all(&mut w)?;
        self.windows.push((start, size, found.clone()));
        Ok(found)
    }
}

/// [`read_layout`], keeping in `probed` the partition probes it made.
pub fn read_layout_probed(disk: &mut dyn ReadAt, probed: &mut Probed) -> Result<DiskLayout> {
    let disk_size = disk.size();
    let mut layout = DiskLayout {
        table: TableKind::None,
        sector_size: SECTOR_512,
        disk_size,
        gpt: None,
        partitions: Vec::new(),
        warnings: Vec::new(),
    };
    if disk_size < u64::from(SECTOR_512) {
        layout
            .warnings
            .push(format!("the disk is only {disk_size} bytes: no sector 0"));
        return Ok(layout);
    }
    let sector0 = disk.read_vec(0, SECTOR_512 as usize)?;

    if mbr::is_protective(&sector0) {
        match gpt::read_gpt(disk, &mut layout.warnings) {
            Ok(table) => {
                layout.table = TableKind::Gpt;
                layout.sector_size = table.sector_size;
                layout.gpt = Some(table.info);
                layout.partitions = table.partitions;
            }
            // A GPT cut short (or with both headers gone): libfdisk's GPT
            // probe fails and its DOS probe takes the protective MBR as an
            // MBR holding one 0xEE partition, clamped to the disk ("GPT
            // PMBR size mismatch ... will be corrected"); blkid reports
            // PTTYPE "PMBR" and no partitions (util-linux 2.38).
            Err(Error::Guest(why)) => {
                layout.warnings.push(format!(
                    "{why}: read as the MBR it is, as sfdisk does (blkid reports PTTYPE \"PMBR\")"
                ));
                layout.table = TableKind::Dos;
                layout.partitions =
                    mbr::read_mbr_with(disk, &sector0, SECTOR_512, &mut layout.warnings)?;
                clamp_protective(&mut layout.partitions, disk_size, &mut layout.warnings);
            }
            Err(e) => return Err(e),
        }
    } else {
        if let Some(ss) = gpt::signature_without_protective_mbr(disk)? {
            layout.warnings.push(format!(
                "a GPT header is at LBA 1 ({ss}-byte sectors) but sector 0 holds no protective MBR; \
                 ignored, as sfdisk and blkid ignore it"
            ));
        }
        if mbr::looks_like_mbr(&sector0) && !crate::fs::is_boot_sector_filesystem(disk)? {
            layout.table = TableKind::Dos;
            let ss = mbr::guess_sector_size_probed(disk, &sector0, probed)?;
            if ss != SECTOR_512 {
                layout.warnings.push(format!(
                    "the MBR's partitions hold filesystems when its sectors are {ss} bytes (the table does not record its sector size): \
                     read with {ss}-byte sectors, as Linux reads it on a disk with that logical sector size; \
                     tools reading this image as a file assume 512"
                ));
            }
            layout.sector_size = ss;
            layout.partitions = mbr::read_mbr_with(disk, &sector0, ss, &mut layout.warnings)?;
        }
    }
    // An exFAT (or other) boot sector carries 0x55AA and passes for an empty
    // MBR; with no partitions in it, the filesystem at offset 0 wins.
    // The whole disk, probed once for both questions below.
    let whole = crate::fs::probe_all(disk)?;
    if layout.table == TableKind::Dos && layout.partitions.is_empty() && !whole.found.is_empty() {
        layout.table = TableKind::None;
    }
    // Any signature counts, an ambivalent pair too (blkid then names none,
    // but the disk is still a filesystem, not empty).
    if let Some(fs) = whole.found.first() {
        if layout.table != TableKind::None {
            // A hybrid image (an ISO 9660 with an MBR or GPT in its system
            // area), or any filesystem that leaves sector 0 to a table:
            // libblkid probes superblocks and partition tables independently
            // (util-linux 2.38: `blkid_probe_is_covered_by_pt` only serves
            // its zfs and linux_raid probes, and a filesystem's "tolerant"
            // flag only matters between superblocks), so `blkid -p` reports
            // the TYPE and the PTTYPE both (tests/hybrid_disk.rs, ext4).
            layout.warnings.push(format!(
                "a {} filesystem starts at offset 0 beside the {} partition table (a hybrid image): \
                 it is partition 0, the whole disk, as blkid reports both",
                fs.fstype,
                layout.table.as_str()
            ));
            layout
                .partitions
                .insert(0, Partition::whole_disk(disk_size));
        } else {
            layout.partitions.push(Partition::whole_disk(disk_size));
        }
    }
    check_overlaps(&layout.partitions, &mut layout.warnings);
    Ok(layout)
}

/// Clamps a protective (0xEE) partition that runs past the end of the disk
/// to the disk, as libfdisk's DOS label does for a protective MBR read as an
/// MBR (`sfdisk -d` then lists it ending at the disk's last sector).
fn clamp_protective(parts: &mut [Partition], disk_size: u64, warnings: &mut Vec<String>) {
    for p in parts
        .iter_mut()
        .filter(|p| p.ptype == PartitionType::Mbr(types::MBR_GPT_PROTECTIVE))
    {
        if p.end() > disk_size && p.start < disk_size {
            let sectors = (disk_size - p.start) / u64::from(SECTOR_512);
            warnings.push(format!(
                "the protective partition records {} sectors, the disk holds {sectors} after its start: \
                 listed as {sectors} sectors, as sfdisk lists it",
                p.size / u64::from(SECTOR_512)
            ));
            p.size = sectors * u64::from(SECTOR_512);
        }
    }
}

/// At most this many overlap warnings are listed; a hostile table could
/// otherwise produce millions.
const MAX_OVERLAP_WARNINGS: usize = 32;

/// Adds a warning for every pair of data partitions that overlap.
///
/// Extended partitions are containers and are skipped, and so is a
/// whole-disk filesystem next to the table (partition 0). Partitions are
/// sorted by start, so each is compared only with those starting before it
/// ends; the number of warnings is capped.
fn check_overlaps(parts: &[Partition], warnings: &mut Vec<String>) {
    let mut data: Vec<&Partition> = parts
        .iter()
        .filter(|p| !p.is_extended() && p.size > 0 && p.number != 0)
        .collect();
    data.sort_by_key(|p| (p.start, p.number));
    let mut listed = 0;
    for (i, a) in data.iter().enumerate() {
        for b in data[i + 1..].iter().take_while(|b| b.start < a.end()) {
            if listed == MAX_OVERLAP_WARNINGS {
                warnings.push("further overlapping partitions are not listed".to_string());
                return;
            }
            listed += 1;
            warnings.push(format!(
                "partitions {} and {} overlap (bytes {}..{} and {}..{})",
                a.number,
                b.number,
                a.start,
                a.end(),
                b.start,
                b.end()
            ));
        }
    }
}

#[cfg(test)]
mod tests;

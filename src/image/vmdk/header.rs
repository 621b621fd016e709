//! Sparse extent headers: the hosted sparse extent ("KDMV", VMDK 4), its
//! footer in stream-optimized files, and the ESX Server sparse extent
//! ("COWD", VMDK 3).
//!
//! Spec: VMware "Virtual Disk Format 5.0", "Hosted Sparse Extent Header",
//! "Stream-Optimized Compressed Sparse Extents" (markers, footer) and
//! "ESX Server Sparse Extent Header". All fields are little-endian; offsets
//! and sizes are counted in 512-byte sectors. Every field is validated here
//! the way QEMU's `block/vmdk.c` validates it, and tighter where QEMU's
//! arithmetic would wrap.

use crate::error::{Error, Result};
use crate::image::storage::Storage;
use std::path::Path;

/// Bytes in a sector, the unit of every VMDK offset and size.
pub const SECTOR: u64 = 512;
/// "Hosted Sparse Extent Header": magic number `KDMV` (as bytes in the file).
pub const VMDK4_MAGIC: &[u8; 4] = b"KDMV";
/// "ESX Server Sparse Extent Header": magic number `COWD`.
pub const VMDK3_MAGIC: &[u8; 4] = b"COWD";
/// Hosted sparse header, `flags` bit 2: a grain table entry of 1 means a
/// zeroed grain (reads as zeros without the parent).
pub const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// Hosted sparse header, `flags` bit 17: grains and metadata carry markers
/// (stream-optimized).
pub const FLAG_MARKERS: u32 = 1 << 17;
/// Hosted sparse header, `compressAlgorithm`: none.
pub const COMPRESSION_NONE: u16 = 0;
/// Hosted sparse header, `compressAlgorithm`: RFC 1950 (zlib) deflate.
pub const COMPRESSION_DEFLATE: u16 = 1;
/// Hosted sparse header, `gdOffset`: the grain directory is found through
/// the footer at the end of the file (`GD_AT_END`).
pub const GD_AT_END: u64 = u64::MAX;
/// Grain table entry meaning "zeroed grain" when [`FLAG_ZERO_GRAIN`] is set.
pub const GTE_ZEROED: u32 = 1;
/// "Stream-Optimized Compressed Sparse Extents": marker type of the footer.
pub const MARKER_FOOTER: u32 = 3;
/// Marker type of the end-of-stream marker.
pub const MARKER_END_OF_STREAM: u32 = 0;
/// Bytes of a grain marker before the compressed data (`lba` u64, `size` u32).
pub const GRAIN_MARKER_LEN: u64 = 12;
/// Highest header version QEMU reads (version 3 adds changed-block tracking,
/// which a reader may ignore).
pub const MAX_VERSION: u32 = 3;
/// Most grain table entries per grain table in a hosted sparse extent
/// (QEMU: "L2 table size too big").
pub const MAX_GTES_PER_GT: u32 = 512;
/// Grain table entries per grain table in an ESX Server sparse extent.
pub const VMDK3_GTES_PER_GT: u32 = 4096;
/// Largest grain, in sectors (QEMU: "Invalid granularity": 1 GiB).
pub const MAX_GRAIN_SECTORS: u64 = 0x20_0000;
/// Most grain directory entries (QEMU: "L1 size too big").
pub const MAX_GD_ENTRIES: u64 = 32 * 1024 * 1024;

/// The fields of a sparse extent's header that locate its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseHeader {
    /// VMDK 4 (hosted, `KDMV`) or 3 (ESX Server, `COWD`).
    pub kind: SparseKind,
    /// Header version.
    pub version: u32,
    /// Header flags.
    pub flags: u32,
    /// Extent size in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_sectors: u64,
    /// Grain table entries per grain table.
    pub gtes_per_gt: u32,
    /// Byte offset of the grain directory.
    pub gd_offset: u64,
    /// Grain directory entries.
    pub gd_entries: u64,
    /// Compression of the grains ([`COMPRESSION_NONE`] or [`COMPRESSION_DEFLATE`]).
    pub compression: u16,
}

/// Which sparse header a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseKind {
    /// Hosted sparse extent (`KDMV`).
    Hosted,
    /// ESX Server sparse extent (`COWD`).
    Esx,
}

/// What the first sector of a `KDMV` file says before any validation: a
/// capacity of 0 with a descriptor offset makes it a descriptor holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosted {
    /// A sparse extent.
    Extent(SparseHeader),
    /// No extent data; the descriptor at this byte offset describes the disk.
    Descriptor(u64),
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Byte offset of sector `sectors`, or a malformed-image error naming `what`.
pub fn sectors_to_bytes(path: &Path, sectors: u64, what: &str) -> Result<u64> {
    sectors
        .checked_mul(SECTOR)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| {
            Error::malformed(
                path,
                format!("{what} ({sectors} sectors) overflows 64 bits"),
            )
        })
}

impl SparseHeader {
    /// Guest bytes the extent holds.
    pub fn capacity_bytes(&self) -> u64 {
        // validate() bounded capacity so that this cannot overflow.
        self.capacity * SECTOR
    }

    /// Bytes in a grain.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR
    }

    /// Bytes in a grain table.
    pub fn gt_bytes(&self) -> u64 {
        u64::from(self.gtes_per_gt) * 4
    }

    /// Whether grains are deflate-compressed.
    pub fn compressed(&self) -> bool {
        self.compression == COMPRESSION_DEFLATE
    }

    /// Whether grains carry markers.
    pub fn markers(&self) -> bool {
        self.kind == SparseKind::Hosted && self.flags & FLAG_MARKERS != 0
    }

    /// Whether a grain table entry of [`GTE_ZEROED`] means a zeroed grain.
    pub fn zero_grains(&self) -> bool {
        self.kind == SparseKind::Hosted && self.flags & FLAG_ZERO_GRAIN != 0
    }
}

/// Reads the hosted sparse header (`KDMV`) of `storage`, following the
/// footer when the grain directory is at the end (stream-optimized).
pub fn read_hosted(storage: &dyn Storage) -> Result<Hosted> {
    let path = storage.path();
    let mut first = [0u8; 512];
    storage.read_at(0, &mut first)?;
    if &first[..4] != VMDK4_MAGIC {
        return Err(Error::malformed(
            path,
            "not a VMDK sparse extent (no KDMV magic)",
        ));
    }
    // QEMU: a capacity of 0 and a descriptor offset make the file a holder
    // of the descriptor that describes the disk.
    let capacity = le64(&first, 12);
    let desc_offset = le64(&first, 28);
    if capacity == 0 && desc_offset != 0 {
        let at = sectors_to_bytes(path, desc_offset, "descriptor offset")?;
        return Ok(Hosted::Descriptor(at));
    }
    let mut h = first;
    if le64(&first, 56) == GD_AT_END {
        h = read_footer(storage)?;
    }
    Ok(Hosted::Extent(parse_hosted(path, &h, storage.len())?))
}

/// The header copy in the footer of a stream-optimized extent: the footer
/// marker, the footer (a header) and the end-of-stream marker fill the last
/// three sectors of the file.
fn read_footer(storage: &dyn Storage) -> Result<[u8; 512]> {
    let path = storage.path();
    let len = storage.len() / SECTOR * SECTOR;
    if len < 4 * SECTOR {
        return Err(Error::malformed(
            path,
            "the grain directory is at the end (stream-optimized), and the file is too short to hold a footer",
        ));
    }
    let mut tail = vec![0u8; 3 * SECTOR as usize];
    storage.read_at(len - 3 * SECTOR, &mut tail)?;
    let (marker, rest) = tail.split_at(512);
    let (footer, eos) = rest.split_at(512);
    let ok = le32(marker, 8) == 0
        && le32(marker, 12) == MARKER_FOOTER
        && &footer[..4] == VMDK4_MAGIC
        && le64(eos, 0) == 0
        && le32(eos, 8) == 0
        && le32(eos, 12) == MARKER_END_OF_STREAM;
    if !ok {
        return Err(Error::malformed(
            path,
            "the grain directory is at the end (stream-optimized), and the last three sectors are not a footer marker, a footer and an end-of-stream marker",
        ));
    }
    Ok(footer.try_into().expect("512 bytes"))
}

/// Validates the hosted sparse header in `h` (magic at 0) of a `file_len`-byte file.
fn parse_hosted(path: &Path, h: &[u8; 512], file_len: u64) -> Result<SparseHeader> {
    let version = le32(h, 4);
    let flags = le32(h, 8);
    let capacity = le64(h, 12);
    let grain_sectors = le64(h, 20);
    let gtes_per_gt = le32(h, 44);
    let gd_sector = le64(h, 56);
    let overhead = le64(h, 64);
    let compression = u16::from_le_bytes([h[77], h[78]]);
    if version > MAX_VERSION {
        return Err(Error::unsupported(
            path,
            format!(
                "VMDK sparse extent version {version} (qfault, like QEMU, reads versions 1 to 3)"
            ),
        ));
    }
    if compression > COMPRESSION_DEFLATE {
        return Err(Error::unsupported(
            path,
            format!(
                "VMDK compression algorithm {compression} (only 0, none, and 1, deflate, exist)"
            ),
        ));
    }
    if gtes_per_gt > MAX_GTES_PER_GT {
        return Err(Error::malformed(
            path,
            format!(
                "{gtes_per_gt} grain table entries per grain table (at most {MAX_GTES_PER_GT})"
            ),
        ));
    }
    if overhead > file_len / SECTOR {
        return Err(Error::malformed(
            path,
            format!(
                "the file is truncated: its header puts the first grain at sector {overhead}, past the end of the {file_len}-byte file"
            ),
        ));
    }
    let hdr = SparseHeader {
        kind: SparseKind::Hosted,
        version,
        flags,
        capacity,
        grain_sectors,
        gtes_per_gt,
        gd_offset: 0,
        gd_entries: 0,
        compression,
    };
    let gd_offset = sectors_to_bytes(path, gd_sector, "grain directory offset")?;
    finish(path, hdr, gd_offset, None)
}

/// Reads and validates the ESX Server sparse header (`COWD`) of `storage`.
pub fn read_esx(storage: &dyn Storage) -> Result<SparseHeader> {
    let path = storage.path();
    let mut h = [0u8; 44];
    storage.read_at(0, &mut h)?;
    if &h[..4] != VMDK3_MAGIC {
        return Err(Error::malformed(
            path,
            "not a VMDK sparse extent (no COWD magic)",
        ));
    }
    let hdr = SparseHeader {
        kind: SparseKind::Esx,
        version: le32(&h, 4),
        flags: le32(&h, 8),
        capacity: u64::from(le32(&h, 12)),
        grain_sectors: u64::from(le32(&h, 16)),
        gtes_per_gt: VMDK3_GTES_PER_GT,
        gd_offset: 0,
        gd_entries: 0,
        compression: COMPRESSION_NONE,
    };
    let gd_offset = u64::from(le32(&h, 20)) * SECTOR;
    let gd_entries = u64::from(le32(&h, 24));
    finish(path, hdr, gd_offset, Some(gd_entries))
}

/// The checks both sparse headers share; fills the grain directory fields.
/// `gd_entries` is the recorded size of the directory (ESX Server), else
/// the size the capacity needs.
fn finish(
    path: &Path,
    mut hdr: SparseHeader,
    gd_offset: u64,
    gd_entries: Option<u64>,
) -> Result<SparseHeader> {
    if hdr.grain_sectors == 0 || hdr.grain_sectors > MAX_GRAIN_SECTORS {
        return Err(Error::malformed(
            path,
            format!(
                "grain size of {} sectors (must be 1 to {MAX_GRAIN_SECTORS})",
                hdr.grain_sectors
            ),
        ));
    }
    if hdr.gtes_per_gt == 0 {
        return Err(Error::malformed(
            path,
            "0 grain table entries per grain table",
        ));
    }
    sectors_to_bytes(path, hdr.capacity, "capacity")?;
    // Both factors are bounded above: no overflow.
    let gt_sectors = hdr.grain_sectors * u64::from(hdr.gtes_per_gt);
    let needed = hdr.capacity.div_ceil(gt_sectors);
    let entries = gd_entries.unwrap_or(needed);
    if entries < needed {
        return Err(Error::malformed(
            path,
            format!(
                "the grain directory has {entries} entries and the capacity of {} sectors needs {needed}",
                hdr.capacity
            ),
        ));
    }
    if needed > MAX_GD_ENTRIES {
        return Err(Error::malformed(
            path,
            format!("the grain directory needs {needed} entries (at most {MAX_GD_ENTRIES})"),
        ));
    }
    hdr.gd_offset = gd_offset;
    hdr.gd_entries = needed;
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::storage::MemStorage;

    /// A hosted header: capacity, grain sectors, GTEs per GT, GD sector.
    pub(crate) fn hosted(capacity: u64, grain: u64, gtes: u32, gd: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(VMDK4_MAGIC);
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[12..20].copy_from_slice(&capacity.to_le_bytes());
        h[20..28].copy_from_slice(&grain.to_le_bytes());
        h[44..48].copy_from_slice(&gtes.to_le_bytes());
        h[56..64].copy_from_slice(&gd.to_le_bytes());
        h
    }

    fn parse(bytes: Vec<u8>) -> Result<Hosted> {
        read_hosted(&MemStorage::new(bytes, "t.vmdk"))
    }

    #[test]
    fn hostile_headers_are_refused() {
        let cases: [(Vec<u8>, &str); 6] = [
            (hosted(1 << 20, 0, 512, 1), "grain size of 0"),
            (hosted(1 << 20, 1 << 22, 512, 1), "grain size"),
            (hosted(1 << 20, 128, 513, 1), "grain table entries"),
            (hosted(u64::MAX / 2, 128, 512, 1), "capacity"),
            (hosted(1 << 40, 1, 1, 1), "grain directory needs"),
            (
                hosted(1 << 20, 128, 512, u64::MAX / 4),
                "grain directory offset",
            ),
        ];
        for (bytes, want) in cases {
            let err = parse(bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        let mut v4 = hosted(1 << 20, 128, 512, 1);
        v4[4] = 4;
        assert!(parse(v4).unwrap_err().to_string().contains("version 4"));
        let mut truncated = hosted(1 << 20, 128, 512, 1);
        truncated[64..72].copy_from_slice(&1000u64.to_le_bytes());
        assert!(parse(truncated)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let mut at_end = hosted(1 << 20, 128, 512, GD_AT_END);
        at_end.resize(4096, 0);
        assert!(parse(at_end).unwrap_err().to_string().contains("footer"));
    }

    #[test]
    fn descriptor_holder() {
        let mut h = hosted(0, 128, 512, 1);
        h[28..36].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(parse(h).unwrap(), Hosted::Descriptor(512));
    }
}

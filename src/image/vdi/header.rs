//! The VDI header (version 1.1): a 64-byte text pre-header, the signature,
//! and the fields that place the block map and the data blocks.
//!
//! Spec: VirtualBox's `VDICore.h` (`VDIPREHEADER`, `VDIHEADER1PLUS`), as
//! QEMU's `block/vdi.c` reads it. All fields are little-endian.

use crate::error::{Error, Result};
use std::path::Path;

/// Bytes of the header QEMU reads (pre-header and header 1.1 with padding).
pub const HEADER_SIZE: usize = 512;
/// `VDIPREHEADER.u32Signature`, at offset 0x40.
pub const SIGNATURE: u32 = 0xbeda_107f;
/// `VDIPREHEADER.u32Version`: version 1.1, the only one QEMU reads.
pub const VERSION_1_1: u32 = 0x0001_0001;
/// `VDI_IMAGE_TYPE_NORMAL`: blocks allocated as written (dynamic).
pub const TYPE_DYNAMIC: u32 = 1;
/// `VDI_IMAGE_TYPE_FIXED`: every block allocated at creation (static).
pub const TYPE_STATIC: u32 = 2;
/// Sector size QEMU requires (`cbSector`).
pub const SECTOR: u64 = 512;
/// The only block size QEMU reads (`cbBlock`, 1 MiB).
pub const BLOCK_SIZE: u64 = 1 << 20;
/// QEMU's most blocks (`VDI_BLOCKS_IN_IMAGE_MAX`: the block map, rounded to
/// sectors, fits in an `int`).
pub const MAX_BLOCKS: u32 = ((1u64 << 31) - SECTOR) as u32 / 4;

mod off {
    pub const SIGNATURE: usize = 0x40;
    pub const VERSION: usize = 0x44;
    pub const IMAGE_TYPE: usize = 0x4c;
    pub const OFFSET_BMAP: usize = 0x154;
    pub const OFFSET_DATA: usize = 0x158;
    pub const SECTOR_SIZE: usize = 0x168;
    pub const DISK_SIZE: usize = 0x170;
    pub const BLOCK_SIZE: usize = 0x178;
    pub const BLOCKS_IN_IMAGE: usize = 0x180;
    pub const UUID_LINK: usize = 0x1a8;
    pub const UUID_PARENT: usize = 0x1b8;
}

/// A parsed VDI header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Dynamic or static.
    pub image_type: u32,
    /// File offset of the block map (`offBlocks`).
    pub offset_bmap: u64,
    /// File offset of block 0's data (`offData`).
    pub offset_data: u64,
    /// Guest size in bytes (`cbDisk`, rounded up to sectors as QEMU does).
    pub disk_size: u64,
    /// Block size in bytes (`cbBlock`).
    pub block_size: u64,
    /// Entries in the block map (`cBlocks`).
    pub blocks_in_image: u32,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

impl Header {
    /// Parses and checks the header as QEMU's `vdi_open` does, and refuses
    /// image types other than dynamic and static (undo and differencing
    /// images need a parent QEMU cannot open either).
    pub fn parse(path: &Path, h: &[u8; HEADER_SIZE]) -> Result<Header> {
        let bad = |reason: String| Err(Error::malformed(path, reason));
        let unsupported = |reason: String| Err(Error::unsupported(path, reason));
        let signature = le32(h, off::SIGNATURE);
        if signature != SIGNATURE {
            return bad(format!("not a VDI image (signature {signature:#010x})"));
        }
        let version = le32(h, off::VERSION);
        if version != VERSION_1_1 {
            return unsupported(format!(
                "VDI version {}.{} (only 1.1 is read, as by QEMU)",
                version >> 16,
                version & 0xffff
            ));
        }
        let disk_size = le64(h, off::DISK_SIZE);
        let max_size = u64::from(MAX_BLOCKS) * BLOCK_SIZE;
        if disk_size > max_size {
            return unsupported(format!(
                "VDI disk size {disk_size} is above the {max_size} QEMU opens"
            ));
        }
        // 'VBoxManage convertfromraw' writes odd sizes; QEMU rounds them up.
        let disk_size = disk_size.next_multiple_of(SECTOR);
        let offset_bmap = u64::from(le32(h, off::OFFSET_BMAP));
        let offset_data = u64::from(le32(h, off::OFFSET_DATA));
        if offset_bmap % SECTOR != 0 {
            return unsupported(format!(
                "VDI block map offset {offset_bmap:#x} is not sector-aligned"
            ));
        }
        if offset_data % SECTOR != 0 {
            return unsupported(format!(
                "VDI data offset {offset_data:#x} is not sector-aligned"
            ));
        }
        let sector_size = le32(h, off::SECTOR_SIZE);
        if u64::from(sector_size) != SECTOR {
            return unsupported(format!(
                "VDI sector size {sector_size} (QEMU reads 512 only)"
            ));
        }
        let block_size = u64::from(le32(h, off::BLOCK_SIZE));
        if block_size != BLOCK_SIZE {
            return unsupported(format!(
                "VDI block size {block_size} (QEMU reads 1 MiB blocks only)"
            ));
        }
        let blocks_in_image = le32(h, off::BLOCKS_IN_IMAGE);
        if disk_size > u64::from(blocks_in_image) * block_size {
            return bad(format!(
                "VDI disk size {disk_size} is more than the block map's {blocks_in_image} \
                 blocks hold"
            ));
        }
        if h[off::UUID_LINK..off::UUID_LINK + 16]
            .iter()
            .any(|&b| b != 0)
        {
            return unsupported("a VDI image with a link UUID (QEMU refuses it too)".into());
        }
        if h[off::UUID_PARENT..off::UUID_PARENT + 16]
            .iter()
            .any(|&b| b != 0)
        {
            return unsupported(
                "a VDI image with a parent UUID (a differencing image; QEMU refuses it too)".into(),
            );
        }
        if blocks_in_image > MAX_BLOCKS {
            return unsupported(format!(
                "VDI block map of {blocks_in_image} blocks (QEMU reads at most {MAX_BLOCKS})"
            ));
        }
        let image_type = le32(h, off::IMAGE_TYPE);
        if image_type != TYPE_DYNAMIC && image_type != TYPE_STATIC {
            return unsupported(format!(
                "VDI image type {image_type} (qfault reads dynamic (1) and static (2) images)"
            ));
        }
        Ok(Header {
            image_type,
            offset_bmap,
            offset_data,
            disk_size,
            block_size,
            blocks_in_image,
        })
    }
}

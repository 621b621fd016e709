//! VDI images (VirtualBox): static and dynamic.
//!
//! A VDI file is a header ([`header`]), a block map of little-endian `u32`
//! entries (one per 1 MiB guest block: the index of the block's data in the
//! data area, or a marker for a block that reads as zeros) and the data
//! area. qfault reads them as QEMU's `vdi` driver does, and refuses what it
//! refuses; it also refuses a block map entry whose data lies past the end of
//! the file (QEMU would read zeros there: the image is truncated).

pub mod header;

use crate::error::{Error, Result};
use crate::image::chain::{Format, LayerInfo};
use crate::image::driver::{Driver, Files};
use crate::image::qcow2::{Extent, Mapping};
use crate::image::storage::Storage;
use header::{Header, HEADER_SIZE};
use std::path::{Path, PathBuf};

/// A block map entry of a block never written (`VDI_IMAGE_BLOCK_FREE`): reads
/// as zeros.
pub const BLOCK_FREE: u32 = 0xffff_ffff;
/// A block map entry of a discarded block (`VDI_IMAGE_BLOCK_ZERO`): reads as
/// zeros.
pub const BLOCK_ZERO: u32 = 0xffff_fffe;
/// Most block map entries qfault keeps in memory (32 MiB of map: 8 TiB of
/// guest in 1 MiB blocks).
pub const MAX_KEPT_ENTRIES: u64 = 8 << 20;

/// An open VDI image (read-only).
#[derive(Debug)]
pub struct VdiImage {
    storage: Box<dyn Storage>,
    path: PathBuf,
    header: Header,
    /// The block map entries covering the guest.
    bmap: Vec<u32>,
}

/// Opens the image in `storage`.
pub fn open(storage: Box<dyn Storage>, _files: &mut dyn Files) -> Result<Box<dyn Driver>> {
    Ok(Box::new(VdiImage::open(storage)?))
}

impl VdiImage {
    /// Reads and checks the header and the block map entries that cover the
    /// guest.
    pub fn open(storage: Box<dyn Storage>) -> Result<VdiImage> {
        let path = storage.path().to_path_buf();
        let file_len = storage.len();
        if file_len < HEADER_SIZE as u64 {
            return Err(Error::malformed(&path, "file too small for a VDI header"));
        }
        let mut h = [0u8; HEADER_SIZE];
        storage.read_at(0, &mut h)?;
        let header = Header::parse(&path, &h)?;
        let needed = header.disk_size.div_ceil(header.block_size);
        if needed > MAX_KEPT_ENTRIES {
            return Err(Error::unsupported(
                &path,
                format!("the VDI block map needs {needed} entries, more than qfault keeps ({MAX_KEPT_ENTRIES})"),
            ));
        }
        let map_end = header.offset_bmap + needed * 4;
        if map_end > file_len {
            return Err(Error::malformed(
                &path,
                format!(
                    "the VDI block map ({needed} entries at offset {}) lies past the end of the \
                     file ({file_len} bytes)",
                    header.offset_bmap
                ),
            ));
        }
        let mut bmap = Vec::with_capacity(needed as usize);
        let mut chunk = vec![0u8; 64 << 10];
        let mut index = 0u64;
        while index < needed {
            let n = (needed - index).min(chunk.len() as u64 / 4) as usize;
            let buf = &mut chunk[..n * 4];
            storage.read_at(header.offset_bmap + index * 4, buf)?;
            for (i, e) in buf.chunks_exact(4).enumerate() {
                let e = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                if e < BLOCK_ZERO {
                    let end = header.offset_data + (u64::from(e) + 1) * header.block_size;
                    if end > file_len {
                        return Err(Error::malformed(
                            &path,
                            format!(
                                "VDI block {} (data block {e}) ends at {end}, past the end of \
                                 the file ({file_len} bytes): the image is truncated",
                                index + i as u64
                            ),
                        ));
                    }
                }
                bmap.push(e);
            }
            index += n as u64;
        }
        Ok(VdiImage {
            storage,
            path,
            header,
            bmap,
        })
    }
}

impl Driver for VdiImage {
    fn format(&self) -> Format {
        Format::Vdi
    }

    fn size(&self) -> u64 {
        self.header.disk_size
    }

    fn map(&mut self, offset: u64, max_len: u64) -> Result<Extent> {
        let block_size = self.header.block_size;
        let in_block = offset % block_size;
        let len = max_len
            .min(self.header.disk_size.saturating_sub(offset))
            .min(block_size - in_block)
            .max(1);
        let entry = usize::try_from(offset / block_size)
            .ok()
            .and_then(|i| self.bmap.get(i).copied())
            .unwrap_or(BLOCK_FREE);
        let mapping = if entry < BLOCK_ZERO {
            Mapping::Data {
                host: self.header.offset_data + u64::from(entry) * block_size + in_block,
            }
        } else {
            Mapping::Zero { host: None }
        };
        Ok(Extent { len, mapping })
    }

    fn read_mapped(&mut self, mapping: Mapping, _guest: u64, buf: &mut [u8]) -> Result<()> {
        match mapping {
            Mapping::Data { host } => self.storage.read_at(host, buf),
            _ => Err(Error::malformed(
                &self.path,
                "internal: a VDI run read that is not data",
            )),
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn info(&self) -> LayerInfo {
        LayerInfo {
            path: self.path.clone(),
            format: Format::Vdi,
            virtual_size: self.header.disk_size,
            file_size: self.storage.len(),
            cluster_size: Some(self.header.block_size),
            version: None,
            compression_type: None,
            extended_l2: false,
            snapshots: 0,
            backing_file: None,
            backing_format: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::storage::MemStorage;

    const MIB: u64 = 1 << 20;

    /// A dynamic VDI header of `disk` bytes and `blocks` map entries (block
    /// map at 512, data after it), followed by `tail`.
    fn image(disk: u64, blocks: u32, tail: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0x40, &header::SIGNATURE.to_le_bytes());
        put(0x44, &header::VERSION_1_1.to_le_bytes());
        put(0x4c, &header::TYPE_DYNAMIC.to_le_bytes());
        put(0x154, &512u32.to_le_bytes());
        let data = (512 + u64::from(blocks) * 4).next_multiple_of(512) as u32;
        put(0x158, &data.to_le_bytes());
        put(0x168, &512u32.to_le_bytes());
        put(0x170, &disk.to_le_bytes());
        put(0x178, &(MIB as u32).to_le_bytes());
        put(0x180, &blocks.to_le_bytes());
        b.extend_from_slice(tail);
        b
    }

    fn open(b: Vec<u8>) -> Result<VdiImage> {
        VdiImage::open(Box::new(MemStorage::new(b, "t.vdi")))
    }

    #[test]
    fn blocks_map_to_data_or_zeros() {
        let mut tail = vec![0u8; 512];
        tail[..4].copy_from_slice(&0u32.to_le_bytes());
        tail[4..8].copy_from_slice(&BLOCK_FREE.to_le_bytes());
        tail[8..12].copy_from_slice(&BLOCK_ZERO.to_le_bytes());
        tail.extend(std::iter::repeat_n(0xab, MIB as usize));
        // An odd size rounds up to whole sectors, as QEMU does.
        let mut v = open(image(3 * MIB - 100, 3, &tail)).unwrap();
        assert_eq!(v.size(), 3 * MIB);
        let e = v.map(10, 5 * MIB).unwrap();
        assert_eq!(
            (e.len, e.mapping),
            (MIB - 10, Mapping::Data { host: 1024 + 10 })
        );
        assert_eq!(
            v.map(MIB, MIB).unwrap().mapping,
            Mapping::Zero { host: None }
        );
        let e = v.map(2 * MIB + 7, 5 * MIB).unwrap();
        assert_eq!((e.len, e.mapping), (MIB - 7, Mapping::Zero { host: None }));
    }

    #[test]
    fn huge_or_truncated_maps_are_refused_without_allocating() {
        let max = u64::from(header::MAX_BLOCKS) * MIB;
        let e = open(image(max, header::MAX_BLOCKS, &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than qfault keeps"), "{e}");
        let e = open(image(1000 * MIB, 1000, &[])).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
        let e = open(image(header::MAX_BLOCKS as u64 * MIB + 1, 1, &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("above"), "{e}");
        // A block whose data lies past the end of the file.
        let mut tail = vec![0u8; 512];
        tail[..4].copy_from_slice(&5u32.to_le_bytes());
        let e = open(image(MIB, 1, &tail)).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}

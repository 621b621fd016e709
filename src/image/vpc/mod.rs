//! VHD images (Virtual PC, Azure, Hyper-V's first format; QEMU's `vpc`):
//! fixed, dynamic and differencing.
//!
//! A fixed VHD is the guest disk followed by a 512-byte footer
//! ([`footer`]); a dynamic or differencing VHD starts with a copy of the
//! footer, which points at the dynamic disk header and its block allocation
//! table ([`dynamic`]). Each allocated block is a sector bitmap followed by
//! the block's data.
//!
//! Where QEMU and the spec part, qfault follows QEMU so that what it reads is
//! what QEMU reads through an overlay, with two deliberate exceptions:
//! - a file whose only footer is at its end (a fixed VHD) is probed as `vpc`;
//!   QEMU's probe looks at the first bytes only and calls it raw (footer
//!   included in the guest). qfault never reads a known format as raw.
//! - a differencing VHD (type 4) reads its parent (named by a relative
//!   locator or the parent's name) where the block is unallocated or the
//!   sector's bitmap bit is clear, as the spec says; QEMU has no parent for
//!   VHDs and reads those sectors as zeros.
//!
//! As QEMU does (and unlike the spec says), a dynamic disk's sector bitmap is
//! ignored: an allocated block is read whole.

pub mod dynamic;
pub mod footer;

use crate::error::{Error, Result};
use crate::image::chain::{Format, LayerInfo};
use crate::image::driver::{BackingRef, Driver, Files};
use crate::image::qcow2::{Extent, Mapping};
use crate::image::storage::Storage;
use dynamic::{Dynamic, SECTOR, UNALLOCATED};
use footer::{Footer, FOOTER_SIZE, TYPE_DIFFERENCING, TYPE_FIXED};
use std::path::{Path, PathBuf};

/// An open VHD image (read-only).
#[derive(Debug)]
pub struct VpcImage {
    storage: Box<dyn Storage>,
    path: PathBuf,
    footer: Footer,
    size: u64,
    /// The header and BAT when the footer copy at the start points at one.
    dynamic: Option<Dynamic>,
    /// The last differencing block's sector bitmap, by BAT entry.
    bitmap: Option<(u32, Vec<u8>)>,
}

/// Opens the image in `storage`.
pub fn open(storage: Box<dyn Storage>, _files: &mut dyn Files) -> Result<Box<dyn Driver>> {
    Ok(Box::new(VpcImage::open(storage)?))
}

impl VpcImage {
    /// Reads the footer (at the start, else at the end), checks it as QEMU's
    /// `vpc_open` does, and reads the block table of a dynamic or
    /// differencing image.
    pub fn open(storage: Box<dyn Storage>) -> Result<VpcImage> {
        let path = storage.path().to_path_buf();
        let file_len = storage.len();
        let mut raw = [0u8; FOOTER_SIZE];
        storage.read_at(0, &mut raw)?;
        // QEMU: a footer copy at the start means a dynamic (or differencing)
        // disk; otherwise the footer at the end, of a fixed disk.
        let at_start = &raw[..8] == footer::COOKIE;
        if !at_start {
            if file_len < FOOTER_SIZE as u64 {
                return Err(Error::malformed(&path, "file too small for a VHD footer"));
            }
            storage.read_at(file_len - FOOTER_SIZE as u64, &mut raw)?;
            if &raw[..8] != footer::COOKIE {
                return Err(Error::malformed(
                    &path,
                    "no VHD footer (cookie 'conectix') at the start or the end",
                ));
            }
        }
        let footer = Footer::parse(&path, &raw)?;
        let size = footer.guest_size(&path)?;
        let dynamic = if at_start {
            Some(dynamic::read(
                storage.as_ref(),
                &path,
                footer.data_offset,
                size,
                footer.disk_type == TYPE_DIFFERENCING,
            )?)
        } else if footer.disk_type != TYPE_FIXED {
            // QEMU would read it through a block table it never loaded.
            return Err(Error::malformed(
                &path,
                format!(
                    "a VHD of disk type {} has its footer only at the end (only fixed VHDs do)",
                    footer.disk_type
                ),
            ));
        } else {
            None
        };
        Ok(VpcImage {
            storage,
            path,
            footer,
            size,
            dynamic,
            bitmap: None,
        })
    }

    /// Whether guest bytes are file bytes at the same offset: QEMU decides by
    /// the footer's disk type alone.
    fn passthrough(&self) -> bool {
        self.footer.disk_type == TYPE_FIXED
    }

    /// The sector bitmap of the block whose BAT entry is `entry`.
    fn bitmap(&mut self, entry: u32, bitmap_size: u64) -> Result<&[u8]> {
        if self.bitmap.as_ref().is_none_or(|(e, _)| *e != entry) {
            let mut b = vec![0u8; bitmap_size as usize];
            self.storage.read_at(u64::from(entry) * SECTOR, &mut b)?;
            self.bitmap = Some((entry, b));
        }
        Ok(self
            .bitmap
            .as_ref()
            .map(|(_, b)| b.as_slice())
            .unwrap_or(&[]))
    }
}

impl Driver for VpcImage {
    fn format(&self) -> Format {
        Format::Vpc
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn map(&mut self, offset: u64, max_len: u64) -> Result<Extent> {
        let max_len = max_len.min(self.size.saturating_sub(offset)).max(1);
        let dynamic = match (&self.dynamic, self.passthrough()) {
            (Some(d), false) => d,
            _ => {
                return Ok(Extent {
                    len: max_len,
                    mapping: Mapping::Data { host: offset },
                })
            }
        };
        let block_size = dynamic.block_size;
        let bitmap_size = dynamic.bitmap_size;
        let in_block = offset % block_size;
        let len = max_len.min(block_size - in_block);
        let entry = usize::try_from(offset / block_size)
            .ok()
            .and_then(|i| dynamic.bat.get(i).copied())
            .unwrap_or(UNALLOCATED);
        if entry == UNALLOCATED {
            return Ok(Extent {
                len,
                mapping: Mapping::Unallocated,
            });
        }
        let host = u64::from(entry) * SECTOR + bitmap_size + in_block;
        if self.footer.disk_type != TYPE_DIFFERENCING {
            return Ok(Extent {
                len,
                mapping: Mapping::Data { host },
            });
        }
        // Differencing: a set bit (most significant bit first) is a sector
        // of this image, a clear one the parent's ("Block Allocation Table
        // and Data Blocks").
        let bitmap = self.bitmap(entry, bitmap_size)?;
        let bit = |sector: u64| {
            bitmap
                .get((sector / 8) as usize)
                .is_some_and(|b| b & (0x80 >> (sector % 8)) != 0)
        };
        let first = in_block / SECTOR;
        let here = bit(first);
        let end = in_block + len;
        let mut run_end = (first + 1) * SECTOR;
        while run_end < end && bit(run_end / SECTOR) == here {
            run_end += SECTOR;
        }
        let len = run_end.min(end) - in_block;
        Ok(Extent {
            len,
            mapping: if here {
                Mapping::Data { host }
            } else {
                Mapping::Unallocated
            },
        })
    }

    fn read_mapped(&mut self, mapping: Mapping, _guest: u64, buf: &mut [u8]) -> Result<()> {
        match mapping {
            Mapping::Data { host } => self.storage.read_at(host, buf),
            _ => Err(Error::malformed(
                &self.path,
                "internal: a VHD run read that is not data",
            )),
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn info(&self) -> LayerInfo {
        let backing = self.backing();
        LayerInfo {
            path: self.path.clone(),
            format: Format::Vpc,
            virtual_size: self.size,
            file_size: self.storage.len(),
            cluster_size: match (&self.dynamic, self.passthrough()) {
                (Some(d), false) => Some(d.block_size),
                _ => None,
            },
            version: None,
            compression_type: None,
            extended_l2: false,
            snapshots: 0,
            backing_format: backing.as_ref().and_then(|b| b.format.clone()),
            backing_file: backing.map(|b| b.name),
        }
    }

    fn backing(&self) -> Option<BackingRef> {
        if self.footer.disk_type != TYPE_DIFFERENCING {
            return None;
        }
        let name = self.dynamic.as_ref()?.parent.clone()?;
        Some(BackingRef {
            name,
            format: Some(Format::Vpc.name().to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::storage::MemStorage;

    const MIB: u64 = 1 << 20;

    fn put(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }

    /// A 4 MiB dynamic (or differencing) VHD with 2 MiB blocks, block 0
    /// allocated (bitmap byte 0 = `bits`, data 0xab), block 1 not;
    /// `entries` in "Max Table Entries".
    fn image(disk_type: u32, entries: u32, bits: u8) -> Vec<u8> {
        let mut f = [0u8; FOOTER_SIZE];
        put(&mut f, 0, footer::COOKIE);
        put(&mut f, 16, &512u64.to_be_bytes());
        put(&mut f, 28, b"qem2");
        put(&mut f, 48, &(4 * MIB).to_be_bytes());
        put(&mut f, 60, &disk_type.to_be_bytes());
        let c = footer::checksum(&f);
        put(&mut f, 64, &c.to_be_bytes());
        let mut b = vec![0u8; 2048];
        put(&mut b, 0, &f);
        put(&mut b, 512, dynamic::COOKIE);
        put(&mut b, 512 + 16, &1536u64.to_be_bytes());
        put(&mut b, 512 + 28, &entries.to_be_bytes());
        put(&mut b, 512 + 32, &(2 * MIB as u32).to_be_bytes());
        let name: Vec<u8> = "p.vhd".encode_utf16().flat_map(u16::to_be_bytes).collect();
        put(&mut b, 512 + 64, &name);
        put(&mut b, 1536, &4u32.to_be_bytes());
        put(&mut b, 1540, &UNALLOCATED.to_be_bytes());
        let mut bitmap = vec![0u8; 512];
        bitmap[0] = bits;
        b.extend_from_slice(&bitmap);
        b.extend(std::iter::repeat_n(0xab, 2 * MIB as usize));
        b.extend_from_slice(&f);
        b
    }

    fn open(b: Vec<u8>) -> Result<VpcImage> {
        VpcImage::open(Box::new(MemStorage::new(b, "t.vhd")))
    }

    #[test]
    fn dynamic_blocks_map_to_data_or_nothing() {
        let mut v = open(image(footer::TYPE_DYNAMIC, 2, 0)).unwrap();
        assert_eq!(v.size(), 4 * MIB);
        // QEMU ignores a dynamic disk's bitmap: the whole block is data.
        let e = v.map(100, 4 * MIB).unwrap();
        assert_eq!(e.len, 2 * MIB - 100);
        assert_eq!(
            e.mapping,
            Mapping::Data {
                host: 2048 + 512 + 100
            }
        );
        let e = v.map(3 * MIB, MIB).unwrap();
        assert_eq!((e.len, e.mapping), (MIB, Mapping::Unallocated));
        let mut buf = [0u8; 4];
        v.read_mapped(Mapping::Data { host: 2560 }, 0, &mut buf)
            .unwrap();
        assert_eq!(buf, [0xab; 4]);
        assert_eq!(v.backing(), None);
        assert_eq!(v.info().cluster_size, Some(2 * MIB));
    }

    #[test]
    fn differencing_bits_choose_this_image_or_the_parent() {
        let mut v = open(image(footer::TYPE_DIFFERENCING, 2, 0xa0)).unwrap();
        let runs: Vec<_> = (0..4)
            .map(|s| v.map(s * 512, 4 * MIB).unwrap())
            .map(|e| (e.len, e.mapping == Mapping::Unallocated))
            .collect();
        assert_eq!(
            runs,
            [
                (512, false),
                (512, true),
                (512, false),
                (2 * MIB - 3 * 512, true)
            ]
        );
        // A run inside a sector stops at the sector's end.
        assert_eq!(v.map(1000, 4 * MIB).unwrap().len, 24);
        let b = v.backing().unwrap();
        assert_eq!(
            (b.name.as_str(), b.format.as_deref()),
            ("p.vhd", Some("vpc"))
        );
    }

    #[test]
    fn huge_or_truncated_tables_are_refused_without_allocating() {
        // QEMU's own limit, and a table far past the end of the file.
        for entries in [u32::MAX, dynamic::MAX_TABLE_ENTRIES] {
            assert!(open(image(footer::TYPE_DYNAMIC, entries, 0)).is_err());
        }
        // Too few entries for the guest.
        assert!(open(image(footer::TYPE_DYNAMIC, 1, 0)).is_err());
        // A block past the end of the file.
        let mut b = image(footer::TYPE_DYNAMIC, 2, 0);
        b.truncate(b.len() - 4096);
        let e = open(b).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
    }
}

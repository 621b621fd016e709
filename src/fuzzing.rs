//! Entry points shared by the fuzz targets (`fuzz/`) and the regression test
//! that replays their crashing inputs (`tests/fuzz_regressions.rs`). Each
//! takes arbitrary bytes and must never panic, hang or allocate without bound.
//!
//! Compiled only with the `fuzzing` feature: not part of the library's API.

use crate::fs::ntfs::bootfix::predict_ntfs;
use crate::image::qcow2::Qcow2Image;
use crate::image::storage::MemStorage;
use crate::image::{Image, Layer, MemDisk, ReadAt, Window};
use crate::recipe::select;

/// qcow2 header and table parsing, then a bounded walk of the map and reads
/// through the image held in `data`.
pub fn qcow2_read(data: &[u8]) {
    let storage = MemStorage::new(data.to_vec(), "fuzz.qcow2");
    let Ok(q) = Qcow2Image::open(Box::new(storage)) else {
        return;
    };
    let mut image = Image::from_layer(Layer::Qcow2(Box::new(q)));
    walk_and_read(&mut image);
}

/// MBR (with the EBR chain) and GPT parsing of the disk `data`.
pub fn partition_tables(data: &[u8]) {
    let _ = crate::layout::read_layout(&mut MemDisk(data.to_vec()));
}

/// The NTFS boot-sector model and ntfsfix's rules on the partition `data`.
pub fn ntfs_boot_sector(data: &[u8]) {
    if data.len() < 512 {
        return;
    }
    if let Ok(bs) = crate::fs::NtfsBootSector::parse(&data[..512]) {
        let _ = bs.check();
    }
    let mut part = MemDisk(data.to_vec());
    let _ = crate::fs::predict_ntfsfix(&data[..512], &mut part);
    let _ = crate::fs::ntfs::probe(&mut part);
    let _ = crate::recipe::ntfs::state_prediction(&mut part);
}

/// The inspect pipeline on the raw disk `data`: partition table, filesystem
/// probes, and the ntfs-boot, FAT32 and exFAT predictions for their partitions.
pub fn inspect_pipeline(data: &[u8]) {
    let mut disk = MemDisk(data.to_vec());
    let Ok(found) = select::partitions(&mut disk) else {
        return;
    };
    for f in found.iter().filter(|f| f.fstype() == Some("ntfs")) {
        if let Ok(mut w) = Window::new(&mut disk, f.partition.start, f.partition.size) {
            let _ = predict_ntfs(&mut w, None);
            let _ = crate::recipe::ntfs::state_prediction(&mut w);
        }
    }
    for f in &found {
        if let Ok(mut w) = Window::new(&mut disk, f.partition.start, f.partition.size) {
            match f.fstype() {
                Some("vfat") => {
                    let _ = crate::recipe::fat::fat32_prediction(&mut w);
                }
                Some("exfat") => {
                    let _ = crate::recipe::exfat_boot_checksum::exfat_prediction(&mut w, &[]);
                }
                _ => {}
            }
        }
    }
}

/// A bounded walk of the map and reads through a driver-read image: the
/// walk every driver target shares.
fn driver_walk(driver: Box<dyn crate::image::driver::Driver>) {
    let mut image = Image::from_layer(Layer::Driver(driver));
    walk_and_read(&mut image);
}

/// VMDK parsing (hosted sparse header, footer, descriptor text) and a
/// bounded walk of the map and reads through the image held in `data`.
/// Extent files a descriptor names cannot be opened here (`NoFiles`).
pub fn vmdk_read(data: &[u8]) {
    let storage = MemStorage::new(data.to_vec(), "fuzz.vmdk");
    let Ok(v) =
        crate::image::vmdk::Vmdk::open(Box::new(storage), &mut crate::image::driver::NoFiles)
    else {
        return;
    };
    let mut image = Image::from_layer(Layer::Driver(Box::new(v)));
    walk_and_read(&mut image);
}

/// A bounded walk of `image`'s map (64 extents) and three 8 KiB reads.
fn walk_and_read(image: &mut Image) {
    let size = image.size();
    if size == 0 {
        return;
    }
    let mut pos = 0;
    for _ in 0..64 {
        if pos >= size {
            break;
        }
        match image.extent(pos, size - pos) {
            Ok(e) => pos += e.length,
            Err(_) => break,
        }
    }
    let mut buf = vec![0u8; 8192];
    for start in [0, size / 2, size.saturating_sub(8192)] {
        let len = (size - start).min(buf.len() as u64) as usize;
        let _ = image.read_at(start, &mut buf[..len]);
    }
}

/// VHDX header, region table, metadata, log and BAT parsing, then the
/// bounded walk of [`driver_walk`] (a differencing image reads without its
/// parent).
pub fn vhdx_read(data: &[u8]) {
    use crate::image::driver::{self, NoFiles};
    use crate::image::Format;
    let storage = MemStorage::new(data.to_vec(), "fuzz.vhdx");
    if let Ok(d) = driver::open(Format::Vhdx, Box::new(storage), &mut NoFiles) {
        driver_walk(d);
    }
}

/// VHD footer, dynamic header and block table parsing, then a bounded walk
/// of the map and reads through the image held in `data`.
pub fn vpc_read(data: &[u8]) {
    let storage = MemStorage::new(data.to_vec(), "fuzz.vhd");
    let mut files = crate::image::driver::NoFiles;
    if let Ok(d) = crate::image::vpc::open(Box::new(storage), &mut files) {
        let _ = d.info();
        let _ = d.backing();
        driver_walk(d);
    }
}

/// VDI header and block map parsing, then a bounded walk of the map and
/// reads through the image held in `data`.
pub fn vdi_read(data: &[u8]) {
    let storage = MemStorage::new(data.to_vec(), "fuzz.vdi");
    let mut files = crate::image::driver::NoFiles;
    if let Ok(d) = crate::image::vdi::open(Box::new(storage), &mut files) {
        let _ = d.info();
        driver_walk(d);
    }
}

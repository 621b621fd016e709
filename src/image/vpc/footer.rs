//! The VHD hard disk footer: the 512-byte structure every VHD ends with (and
//! a dynamic or differencing VHD also starts with), its checksum, and the
//! guest size QEMU derives from it.
//!
//! Spec: Microsoft's "Virtual Hard Disk Image Format Specification", "Hard
//! Disk Footer Format". All fields are big-endian.

use crate::error::{Error, Result};
use std::path::Path;

/// Size of the footer ("Hard Disk Footer Format": 512 bytes).
pub const FOOTER_SIZE: usize = 512;
/// The footer's cookie ("Cookie": "conectix").
pub const COOKIE: &[u8; 8] = b"conectix";
/// "Disk Type": fixed hard disk.
pub const TYPE_FIXED: u32 = 2;
/// "Disk Type": dynamic hard disk.
pub const TYPE_DYNAMIC: u32 = 3;
/// "Disk Type": differencing hard disk.
pub const TYPE_DIFFERENCING: u32 = 4;
/// Largest guest size QEMU opens, in 512-byte sectors (2040 GiB; QEMU's
/// `VHD_MAX_SECTORS`).
pub const MAX_SECTORS: u64 = 0xff00_0000;
/// The largest CHS geometry ("Disk Geometry": 65535 cylinders, 16 heads, 255
/// sectors per track); a footer with it is sized by "Current Size" (QEMU's
/// `VHD_MAX_GEOMETRY`).
pub const MAX_GEOMETRY: u64 = 65535 * 16 * 255;

/// Field offsets in the footer ("Hard Disk Footer Format").
mod off {
    pub const DATA_OFFSET: usize = 16;
    pub const CREATOR_APP: usize = 28;
    pub const CURRENT_SIZE: usize = 48;
    pub const CYLINDERS: usize = 56;
    pub const HEADS: usize = 58;
    pub const SECTORS: usize = 59;
    pub const DISK_TYPE: usize = 60;
    pub const CHECKSUM: usize = 64;
}

/// A parsed footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// "Data Offset": where the dynamic disk header lies.
    pub data_offset: u64,
    /// "Creator Application" (e.g. `qemu`, `qem2`, `win `, `vpc `).
    pub creator_app: [u8; 4],
    /// "Current Size" in bytes.
    pub current_size: u64,
    /// "Disk Geometry": cylinders, heads, sectors per track.
    pub geometry: (u16, u8, u8),
    /// "Disk Type".
    pub disk_type: u32,
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

/// "Checksum": the one's complement of the sum of the footer's bytes, the
/// checksum field itself counted as zeros.
pub fn checksum(footer: &[u8; FOOTER_SIZE]) -> u32 {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(off::CHECKSUM..off::CHECKSUM + 4).contains(i))
        .fold(0u32, |a, (_, &b)| a.wrapping_add(u32::from(b)));
    !sum
}

impl Footer {
    /// Parses a footer whose cookie the caller found. A wrong checksum is
    /// refused, as QEMU refuses it ("Incorrect header checksum").
    pub fn parse(path: &Path, raw: &[u8; FOOTER_SIZE]) -> Result<Footer> {
        if &raw[..8] != COOKIE {
            return Err(Error::malformed(path, "no VHD footer (cookie 'conectix')"));
        }
        let stored = be32(raw, off::CHECKSUM);
        let computed = checksum(raw);
        if stored != computed {
            return Err(Error::malformed(
                path,
                format!(
                    "VHD footer checksum is {stored:#010x}, the footer sums to {computed:#010x} \
                     (QEMU refuses it too: \"Incorrect header checksum\")"
                ),
            ));
        }
        let mut creator_app = [0u8; 4];
        creator_app.copy_from_slice(&raw[off::CREATOR_APP..off::CREATOR_APP + 4]);
        Ok(Footer {
            data_offset: be64(raw, off::DATA_OFFSET),
            creator_app,
            current_size: be64(raw, off::CURRENT_SIZE),
            geometry: (
                be16(raw, off::CYLINDERS),
                raw[off::HEADS],
                raw[off::SECTORS],
            ),
            disk_type: be32(raw, off::DISK_TYPE),
        })
    }

    /// The guest size in bytes, as QEMU computes it: Virtual PC and old QEMU
    /// (creator `vpc ` or `qemu`) size the disk by its CHS geometry, every
    /// other creator (Hyper-V `win `, `qem2` from `force_size=on`, disk2vhd,
    /// Azure, XenServer…) by "Current Size"; a footer with the largest
    /// geometry is sized by "Current Size" too. Sizes round down to whole
    /// sectors; more than 2040 GiB is refused, as QEMU refuses it.
    pub fn guest_size(&self, path: &Path) -> Result<u64> {
        let (c, h, s) = self.geometry;
        let chs = u64::from(c) * u64::from(h) * u64::from(s);
        let use_chs = &self.creator_app == b"vpc " || &self.creator_app == b"qemu";
        let sectors = if !use_chs || chs == MAX_GEOMETRY {
            self.current_size / 512
        } else {
            chs
        };
        if sectors > MAX_SECTORS {
            return Err(Error::unsupported(
                path,
                format!("VHD guest size of {sectors} sectors is above the 2040 GiB QEMU opens"),
            ));
        }
        Ok(sectors * 512)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer(app: &[u8; 4], size: u64, chs: (u16, u8, u8)) -> [u8; FOOTER_SIZE] {
        let mut f = [0u8; FOOTER_SIZE];
        f[..8].copy_from_slice(COOKIE);
        f[off::CREATOR_APP..off::CREATOR_APP + 4].copy_from_slice(app);
        f[off::CURRENT_SIZE..off::CURRENT_SIZE + 8].copy_from_slice(&size.to_be_bytes());
        f[off::CYLINDERS..off::CYLINDERS + 2].copy_from_slice(&chs.0.to_be_bytes());
        f[off::HEADS] = chs.1;
        f[off::SECTORS] = chs.2;
        f[off::DISK_TYPE..off::DISK_TYPE + 4].copy_from_slice(&TYPE_FIXED.to_be_bytes());
        let c = checksum(&f);
        f[off::CHECKSUM..off::CHECKSUM + 4].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn size_rules_follow_the_creator() {
        let p = Path::new("t.vhd");
        let chs = (1000, 16, 63);
        let by_chs = 1000 * 16 * 63 * 512;
        for (app, want) in [
            (b"qemu", by_chs),
            (b"vpc ", by_chs),
            (b"qem2", 1 << 30),
            (b"win ", 1 << 30),
            (b"wa\0\0", 1 << 30),
        ] {
            let f = Footer::parse(p, &footer(app, (1 << 30) + 100, chs)).unwrap();
            assert_eq!(f.guest_size(p).unwrap(), want, "{app:?}");
        }
        let f = Footer::parse(p, &footer(b"qemu", 1 << 40, (65535, 16, 255))).unwrap();
        assert_eq!(f.guest_size(p).unwrap(), 1 << 40);
        let f = Footer::parse(p, &footer(b"win ", 3 << 40, chs)).unwrap();
        assert!(f.guest_size(p).is_err());
    }

    #[test]
    fn a_wrong_checksum_is_refused() {
        let mut f = footer(b"qemu", 1 << 20, (20, 4, 17));
        f[100] ^= 1;
        let e = Footer::parse(Path::new("t.vhd"), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum"), "{e}");
    }
}

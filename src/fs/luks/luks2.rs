//! The LUKS2 binary header (LUKS2 on-disk format specification, §2.1
//! "Binary header", table 1): a primary copy at 0 and a secondary copy at
//! `hdr_size`, each followed by the JSON area. cryptsetup 2.6 reads the
//! secondary when the primary is bad and, on a writable device, rewrites
//! the primary from it ("self-healing", `LUKS2_hdr_read`).

use crate::error::Result;
use crate::fs::bytes::{be16, be64};
use crate::fs::read_opt;
use crate::image::ReadAt;

/// The binary header's size (§2.1: 4096 bytes incl. padding).
pub const BINARY_HEADER_SIZE: usize = 4096;
/// `magic` of the primary header (§2.1).
pub const MAGIC_PRIMARY: &[u8; 6] = b"LUKS\xba\xbe";
/// `magic` of the secondary header (§2.1).
pub const MAGIC_SECONDARY: &[u8; 6] = b"SKUL\xba\xbe";
/// `version` (be16) at 6.
pub const HDR_VERSION: usize = 6;
/// `hdr_size` (be64) at 8: binary header plus JSON area.
pub const HDR_SIZE: usize = 8;
/// `seqid` (be64) at 16.
pub const HDR_SEQID: usize = 16;
/// `uuid` (40 bytes, NUL-terminated) at 168.
pub const HDR_UUID: usize = 168;
/// `hdr_offset` (be64) at 256: where this copy lives.
pub const HDR_OFFSET: usize = 256;

/// One LUKS2 binary header copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Luks2Header {
    raw: Vec<u8>,
}

impl Luks2Header {
    /// The copy at `offset` of `part` with `magic` and version 2.
    pub fn read_at(part: &mut dyn ReadAt, offset: u64, magic: &[u8; 6]) -> Result<Option<Self>> {
        Ok(read_opt(part, offset, BINARY_HEADER_SIZE)?
            .filter(|b| &b[..6] == magic && be16(b, HDR_VERSION) == 2)
            .map(|raw| Luks2Header { raw }))
    }

    /// The primary header of `part`.
    pub fn primary(part: &mut dyn ReadAt) -> Result<Option<Self>> {
        Self::read_at(part, 0, MAGIC_PRIMARY)
    }

    /// The secondary header cryptsetup and blkid find: the first of
    /// [`super::SECONDARY_OFFSETS`] holding one whose `hdr_offset` is
    /// where it sits.
    pub fn secondary(part: &mut dyn ReadAt) -> Result<Option<(u64, Self)>> {
        for off in super::SECONDARY_OFFSETS {
            if let Some(h) = Self::read_at(part, off, MAGIC_SECONDARY)? {
                if h.hdr_offset() == off {
                    return Ok(Some((off, h)));
                }
            }
        }
        Ok(None)
    }

    /// `hdr_size`.
    pub fn hdr_size(&self) -> u64 {
        be64(&self.raw, HDR_SIZE)
    }

    /// `seqid`.
    pub fn seqid(&self) -> u64 {
        be64(&self.raw, HDR_SEQID)
    }

    /// `hdr_offset`.
    pub fn hdr_offset(&self) -> u64 {
        be64(&self.raw, HDR_OFFSET)
    }

    /// `uuid` as text.
    pub fn uuid(&self) -> String {
        let u = &self.raw[HDR_UUID..HDR_UUID + 40];
        let end = u.iter().position(|&b| b == 0).unwrap_or(u.len());
        String::from_utf8_lossy(&u[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    fn header(magic: &[u8; 6], offset: u64) -> Vec<u8> {
        let mut h = vec![0u8; BINARY_HEADER_SIZE];
        h[..6].copy_from_slice(magic);
        h[HDR_VERSION..HDR_VERSION + 2].copy_from_slice(&2u16.to_be_bytes());
        h[HDR_SIZE..HDR_SIZE + 8].copy_from_slice(&16384u64.to_be_bytes());
        h[HDR_UUID..HDR_UUID + 4].copy_from_slice(b"abcd");
        h[HDR_OFFSET..HDR_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
        h
    }

    #[test]
    fn primary_and_secondary() {
        let mut disk = vec![0u8; 64 * 1024];
        disk[..4096].copy_from_slice(&header(MAGIC_PRIMARY, 0));
        disk[16384..16384 + 4096].copy_from_slice(&header(MAGIC_SECONDARY, 16384));
        let mut d = MemDisk(disk);
        let p = Luks2Header::primary(&mut d).unwrap().unwrap();
        assert_eq!((p.hdr_size(), p.uuid().as_str()), (16384, "abcd"));
        let (at, s) = Luks2Header::secondary(&mut d).unwrap().unwrap();
        assert_eq!((at, s.hdr_offset()), (16384, 16384));
        d.0[..4096].fill(0);
        assert!(Luks2Header::primary(&mut d).unwrap().is_none());
        // A secondary that claims to live elsewhere is not taken.
        d.0[16384 + HDR_OFFSET + 7] = 1;
        assert!(Luks2Header::secondary(&mut d).unwrap().is_none());
    }
}

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
/// `checksum_alg` (32 bytes, NUL-terminated) at 72.
pub const HDR_CSUM_ALG: usize = 72;
/// `uuid` (40 bytes, NUL-terminated) at 168.
pub const HDR_UUID: usize = 168;
/// `hdr_offset` (be64) at 256: where this copy lives.
pub const HDR_OFFSET: usize = 256;
/// `csum` (64 bytes) at 448: the checksum of the whole header area
/// (binary header with this field zeroed, then the JSON area).
pub const HDR_CSUM: usize = 448;

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

    /// Why cryptsetup would reject this copy (at `offset` of `part`) as
    /// corrupt, or `None`: its `hdr_size` is not one of the sizes the
    /// specification allows (§2.1: 16 KiB to 4 MiB, a power of two), its
    /// checksum (`checksum_alg`, sha256 only here; §2.1, "the checksum is
    /// calculated over the binary header with the csum field zeroed and the
    /// JSON area") does not match, or the JSON area (§3) holds no JSON
    /// object before its first NUL.
    pub fn corruption(&self, part: &mut dyn ReadAt, offset: u64) -> Result<Option<String>> {
        let size = self.hdr_size();
        if !(0x4000..=0x40_0000).contains(&size) || !size.is_power_of_two() {
            return Ok(Some(format!(
                "its hdr_size {size} is not a LUKS2 header size"
            )));
        }
        let alg = &self.raw[HDR_CSUM_ALG..HDR_CSUM_ALG + 32];
        let alg = &alg[..alg.iter().position(|&b| b == 0).unwrap_or(alg.len())];
        if alg != b"sha256" {
            return Ok(Some(format!(
                "its checksum algorithm {:?} is not modelled",
                String::from_utf8_lossy(alg)
            )));
        }
        let Some(mut area) = read_opt(part, offset, size as usize)? else {
            return Ok(Some("its header area does not fit the partition".into()));
        };
        let stored = area[HDR_CSUM..HDR_CSUM + 32].to_vec();
        area[HDR_CSUM..HDR_CSUM + 64].fill(0);
        use sha2::Digest;
        if sha2::Sha256::digest(&area).as_slice() != stored.as_slice() {
            return Ok(Some("its sha256 checksum is wrong".into()));
        }
        let json = &area[BINARY_HEADER_SIZE..];
        let json = &json[..json.iter().position(|&b| b == 0).unwrap_or(json.len())];
        if !serde_json::from_slice::<serde_json::Value>(json).is_ok_and(|v| v.is_object()) {
            return Ok(Some("its JSON area holds no JSON object".into()));
        }
        Ok(None)
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

    /// `header(MAGIC_SECONDARY, 16384)` at 16384 of `disk` with JSON `{}`
    /// and its checksum.
    fn sealed(disk: &mut [u8]) {
        let at = 16384;
        disk[at..at + 4096].copy_from_slice(&header(MAGIC_SECONDARY, 16384));
        disk[at + HDR_CSUM_ALG..at + HDR_CSUM_ALG + 6].copy_from_slice(b"sha256");
        disk[at + 4096..at + 4098].copy_from_slice(b"{}");
        use sha2::Digest;
        let c = sha2::Sha256::digest(&disk[at..at + 16384]);
        disk[at + HDR_CSUM..at + HDR_CSUM + 32].copy_from_slice(&c);
    }

    #[test]
    fn checksum_and_json_of_a_copy() {
        let mut disk = vec![0u8; 64 * 1024];
        sealed(&mut disk);
        let mut d = MemDisk(disk);
        let (at, s) = Luks2Header::secondary(&mut d).unwrap().unwrap();
        assert_eq!(s.corruption(&mut d, at).unwrap(), None);
        d.0[16384 + 4096] = b'[';
        let why = s.corruption(&mut d, at).unwrap().unwrap();
        assert!(why.contains("checksum"), "{why}");
        // A correct checksum over JSON that is no object.
        let mut disk = vec![0u8; 64 * 1024];
        sealed(&mut disk);
        disk[16384 + 4096..16384 + 4098].copy_from_slice(b"[]");
        let at = 16384;
        use sha2::Digest;
        disk[at + HDR_CSUM..at + HDR_CSUM + 32].fill(0);
        let c = sha2::Sha256::digest(&disk[at..at + 16384]);
        disk[at + HDR_CSUM..at + HDR_CSUM + 32].copy_from_slice(&c);
        let mut d = MemDisk(disk);
        let (at, s) = Luks2Header::secondary(&mut d).unwrap().unwrap();
        let why = s.corruption(&mut d, at).unwrap().unwrap();
        assert!(why.contains("JSON"), "{why}");
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

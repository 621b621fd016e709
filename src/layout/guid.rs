//! GUIDs as GPT stores them: 16 bytes, the first three fields little-endian
//! ("mixed-endian", UEFI spec 2.10 appendix A), printed as
//! `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`.

use std::fmt;
use std::str::FromStr;

/// A GUID in its on-disk byte order (UEFI spec appendix A, EFI_GUID layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID; in a GPT entry's type it marks an unused entry
    /// (UEFI spec 5.3.3, "Unused Entry").
    pub const ZERO: Guid = Guid([0; 16]);

    /// Takes the 16 on-disk bytes at the start of `bytes`; `None` if too short.
    pub fn from_disk(bytes: &[u8]) -> Option<Guid> {
        bytes.get(..16)?.try_into().ok().map(Guid)
    }

    /// True for the all-zero GUID.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// The canonical text form in lowercase (as blkid prints PARTUUID).
    pub fn to_lowercase_string(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

/// Uppercase canonical form, as sfdisk and sgdisk print GPT GUIDs.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        for x in &b[10..16] {
            write!(f, "{x:02X}")?;
        }
        Ok(())
    }
}

/// Error for a string that is not a canonical GUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseGuidError(pub String);

impl fmt::Display for ParseGuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a GUID: {:?}", self.0)
    }
}

impl std::error::Error for ParseGuidError {}

/// Parses `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` (either case).
impl FromStr for Guid {
    type Err = ParseGuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseGuidError(s.to_string());
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
            return Err(err());
        }
        let hex: String = groups.concat();
        let mut text = [0u8; 16];
        for (i, byte) in text.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(err)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        // Text order to disk order: the first three fields are little-endian.
        let t = text;
        Ok(Guid([
            t[3], t[2], t[1], t[0], t[5], t[4], t[7], t[6], t[8], t[9], t[10], t[11], t[12], t[13],
            t[14], t[15],
        ]))
    }
}

impl serde::Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mixed_endian() {
        // EFI system partition type, UEFI spec table 5.7.
        let g: Guid = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".parse().unwrap();
        assert_eq!(
            g.0,
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            g.to_lowercase_string(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "c12a7328f81f11d2ba4b00a0c93ec93b",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
            "g12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93bb",
            "ü2a7328-f81f-11d2-ba4b-00a0c93ec93b",
        ] {
            assert!(s.parse::<Guid>().is_err(), "{s}");
        }
        assert!(Guid::from_disk(&[0; 15]).is_none());
        assert!(Guid::from_disk(&[0; 16]).unwrap().is_zero());
    }
}

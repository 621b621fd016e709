//! Labels and UUIDs formatted the way libblkid formats them
//! (`blkid_probe_set_label`, `blkid_probe_set_utf8label`,
//! `blkid_probe_set_uuid` in util-linux `libblkid/src/superblocks/superblocks.c`).

/// C `isspace` in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn finish(s: String) -> Option<String> {
    let t = s.trim_end_matches(is_c_space);
    (!t.is_empty()).then(|| t.to_string())
}

/// A byte label: up to the first NUL, trailing whitespace removed, `None`
/// when nothing is left. Bytes that are not UTF-8 become U+FFFD (blkid
/// passes them through raw).
pub fn label_bytes(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    finish(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// Which byte order a UTF-16 label uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf16 {
    /// Little-endian (NTFS, exFAT).
    Le,
    /// Big-endian (ISO 9660 Joliet).
    Be,
}

/// A UTF-16 label: up to the first NUL code unit, surrogate pairs joined,
/// trailing whitespace removed, `None` when nothing is left.
pub fn label_utf16(raw: &[u8], order: Utf16) -> Option<String> {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| match order {
            Utf16::Le => u16::from_le_bytes([c[0], c[1]]),
            Utf16::Be => u16::from_be_bytes([c[0], c[1]]),
        })
        .take_while(|&u| u != 0)
        .collect();
    finish(String::from_utf16_lossy(&units))
}

/// True when every byte is zero (blkid then sets no UUID).
pub fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// A 16-byte UUID in blkid's lowercase 8-4-4-4-12 form (bytes in order);
/// `None` when all zero.
pub fn uuid16(b: &[u8]) -> Option<String> {
    if b.len() < 16 || all_zero(&b[..16]) {
        return None;
    }
    let h: Vec<String> = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    ))
}

/// A 4-byte little-endian serial as FAT and exFAT show it: `XXXX-XXXX`,
/// uppercase, most significant byte first; `None` when zero.
pub fn serial4(b: &[u8]) -> Option<String> {
    if b.len() < 4 || all_zero(&b[..4]) {
        return None;
    }
    Some(format!("{:02X}{:02X}-{:02X}{:02X}", b[3], b[2], b[1], b[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label_bytes(b"DATA       "), Some("DATA".into()));
        assert_eq!(label_bytes(b"   \0junk"), None);
        assert_eq!(label_bytes(b""), None);
        let le: Vec<u8> = "Sys "
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(label_utf16(&le, Utf16::Le), Some("Sys".into()));
        let be: Vec<u8> = "CD".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(label_utf16(&be, Utf16::Be), Some("CD".into()));
    }

    #[test]
    fn uuids() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid16(&b).unwrap(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(uuid16(&[0; 16]), None);
        assert_eq!(serial4(&[0x78, 0x56, 0x34, 0x12]).unwrap(), "1234-5678");
        assert_eq!(serial4(&[0; 4]), None);
    }
}

//! ISO 9660 (with Joliet), identified as util-linux 2.38
//! `libblkid/src/superblocks/iso9660.c` does: volume descriptors from
//! sector 16 (2 KiB sectors, ECMA-119 section 8), LABEL from the primary
//! descriptor or, with Joliet, the UTF-16BE volume id merged with the ASCII
//! one; UUID made from the modification (else creation) date. Also the old
//! High Sierra format (`CDROM` at offset 9), label only.

use super::text::{label_bytes, label_utf16, Utf16};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// First volume descriptor (ECMA-119 6.2.1: system area is sectors 0..15).
const FIRST_DESCRIPTOR: u64 = 0x8000;
/// Logical sector size.
const SECTOR: u64 = 0x800;
/// blkid reads at most this many descriptors.
const MAX_DESCRIPTORS: u64 = 16;
/// Descriptor types (ECMA-119 8.1.1).
const VD_BOOT: u8 = 0;
const VD_PRIMARY: u8 = 1;
const VD_SUPPLEMENTARY: u8 = 2;
const VD_END: u8 = 0xFF;
/// Bytes read per descriptor (through the modification date).
const DESC_LEN: usize = 847;
/// Volume identifier (ECMA-119 8.4.6).
const VOLUME_ID: usize = 40;
const ID_LEN: usize = 32;
/// Escape sequences of a supplementary descriptor (Joliet: `%/@`, `%/C`, `%/E`).
const ESCAPES: usize = 88;
/// Creation and modification dates (ECMA-119 8.4.26, 8.4.27).
const CREATED: usize = 813;
const MODIFIED: usize = 830;

/// Probes for ISO 9660.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(first) = read_opt(part, FIRST_DESCRIPTOR, DESC_LEN)? else {
        return Ok(None);
    };
    if &first[9..14] == b"CDROM" {
        let mut info = FsInfo::new("iso9660");
        info.label = label_bytes(&first[48..48 + ID_LEN]);
        info.version = Some("High Sierra".into());
        return Ok(Some(info));
    }
    if &first[1..6] != b"CD001" {
        return Ok(None);
    }
    let (mut pvd, mut joliet) = (None, None);
    let mut boot_seen = false;
    for i in 0..MAX_DESCRIPTORS {
        let Some(d) = read_opt(part, FIRST_DESCRIPTOR + i * SECTOR, DESC_LEN)? else {
            break;
        };
        match d[0] {
            VD_END => break,
            VD_BOOT if !boot_seen => boot_seen = true,
            VD_PRIMARY if pvd.is_none() => pvd = Some(d),
            VD_SUPPLEMENTARY
                if joliet.is_none()
                    && [&b"%/@"[..], b"%/C", b"%/E"].contains(&&d[ESCAPES..ESCAPES + 3]) =>
            {
                joliet = Some(d)
            }
            _ => {}
        }
        if boot_seen && pvd.is_some() && joliet.is_some() {
            break;
        }
    }
    let Some(pvd) = pvd else {
        return Ok(None);
    };
    let mut info = FsInfo::new("iso9660");
    info.uuid =
        date_uuid(&pvd[MODIFIED..MODIFIED + 17]).or_else(|| date_uuid(&pvd[CREATED..CREATED + 17]));
    let ascii = &pvd[VOLUME_ID..VOLUME_ID + ID_LEN];
    info.label = match &joliet {
        Some(j) => {
            let utf16 = &j[VOLUME_ID..VOLUME_ID + ID_LEN];
            match merge_utf16be_ascii(utf16, ascii) {
                Some(merged) => label_utf16(&merged, Utf16::Be),
                None => label_utf16(utf16, Utf16::Be),
            }
        }
        None => label_bytes(ascii),
    };
    if joliet.is_some() {
        info.version = Some("Joliet Extension".into());
    }
    Ok(Some(info))
}

/// blkid's UUID from a 17-byte ISO date: `YYYY-MM-DD-HH-MM-SS-CC`, or `None`
/// when the date is unset (all digits '0' and a zero offset).
fn date_uuid(d: &[u8]) -> Option<String> {
    let digits = &d[..16];
    if digits.iter().all(|&c| c == b'0') && d[16] == 0 {
        return None;
    }
    if digits.iter().all(|&c| c == 0) {
        return None; // blkid_probe_sprintf_uuid ignores an all-zero buffer
    }
    let c = |r: std::ops::Range<usize>| String::from_utf8_lossy(&digits[r]).into_owned();
    Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        c(0..4),
        c(4..6),
        c(6..8),
        c(8..10),
        c(10..12),
        c(12..14),
        c(14..16)
    ))
}

/// blkid's `merge_utf16be_ascii`: when the Joliet (UTF-16BE) id is a prefix
/// of the ASCII id, ignoring case and `_` replacement characters, rebuild the
/// full name in UTF-16BE; else `None`.
fn merge_utf16be_ascii(utf16: &[u8], ascii: &[u8]) -> Option<Vec<u8>> {
    let len = ascii.len().min(utf16.len());
    let mut out = Vec::with_capacity(len * 2 + 4);
    let (mut a, mut u) = (0, 0);
    while u + 1 < len && a < len {
        if (0xD8..=0xDB).contains(&utf16[u]) && u + 3 < len && (0xDC..=0xDF).contains(&utf16[u + 2])
        {
            out.extend_from_slice(&utf16[u..u + 2]);
            u += 2;
        }
        if u + 1 >= utf16.len() {
            return None;
        }
        if ascii[a] == b'_' {
            out.extend_from_slice(&utf16[u..u + 2]);
        } else if utf16[u] == 0 && utf16[u + 1] == b'_' {
            out.extend_from_slice(&[0, ascii[a]]);
        } else if utf16[u] == 0 && ascii[a].eq_ignore_ascii_case(&utf16[u + 1]) {
            let c = if ascii[a].is_ascii_uppercase() {
                utf16[u + 1]
            } else {
                ascii[a]
            };
            out.extend_from_slice(&[0, c]);
        } else {
            return None;
        }
        a += 1;
        u += 2;
    }
    for &c in &ascii[a..len] {
        out.extend_from_slice(&[0, c]);
    }
    (!out.is_empty()).then_some(out)
}

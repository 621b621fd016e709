//! UDF (ECMA-167 / OSTA UDF), identified as util-linux 2.38
//! `libblkid/src/superblocks/udf.c` does: a volume recognition sequence
//! from byte 32768 holding `NSR02` or `NSR03` (ECMA-167 2/8.3), an anchor
//! volume descriptor pointer at block 256 (or 512) for a block size of 512,
//! 1024, 2048 or 4096 bytes (ECMA-167 3/10.2), then the main volume
//! descriptor sequence: LABEL from the logical volume descriptor's
//! LogicalVolumeIdentifier, UUID from the primary descriptor's
//! VolumeSetIdentifier (libblkid's `gen_uuid_from_volset_id`), VERSION from
//! the UDF revision (logical volume descriptor and integrity descriptor).
//!
//! A UDF bridge disc also holds an ISO 9660 volume; libblkid probes UDF
//! first and both are "tolerant", so `blkid -p` reports `udf`.

use super::{bytes::le16, bytes::le32, read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// The volume recognition sequence starts at byte 32768 (ECMA-167 2/8.3).
const VRS_OFFSET: u64 = 0x8000;
/// blkid looks at most at this many volume structure descriptors.
const MAX_VSD: u64 = 64;
/// Identifiers that may precede `NSR0x` in the recognition sequence.
const VRS_OTHER: [&[u8; 5]; 5] = [b"BEA01", b"BOOT2", b"CD001", b"CDW02", b"TEA01"];
/// Block sizes blkid tries for a file (its sector size, 512, first).
const BLOCK_SIZES: [u64; 4] = [512, 1024, 2048, 4096];
/// Descriptor tag identifiers (ECMA-167 3/7.2.1, 3/10.1).
const TAG_PVD: u16 = 1;
const TAG_AVDP: u16 = 2;
const TAG_LVD: u16 = 6;
const TAG_TD: u16 = 8;
const TAG_LVID: u16 = 9;
/// Bytes blkid reads per descriptor (its `struct volume_descriptor`).
const DESC_LEN: usize = 440;
/// Offsets within a descriptor: tag identifier and tag location (ECMA-167 3/7.2).
const TAG_ID: usize = 0;
const TAG_LOCATION: usize = 12;
/// Anchor: main volume descriptor sequence extent (ECMA-167 3/10.2.3).
const AVDP_LENGTH: usize = 16;
const AVDP_LOCATION: usize = 20;
/// Primary volume descriptor: VolumeSetIdentifier and its charset (ECMA-167 3/10.1).
const PVD_VOLSET_ID: usize = 72;
const PVD_CHARSET: usize = 200;
/// Logical volume descriptor fields (ECMA-167 3/10.6).
const LVD_CHARSET: usize = 20;
const LVD_LOGVOL_ID: usize = 84;
const LVD_DOMAIN_ID: usize = 217;
const LVD_UDF_REV: usize = 240;
const LVD_PARTITION_MAPS: usize = 268;
const LVD_LVID_LENGTH: usize = 432;
const LVD_LVID_LOCATION: usize = 436;
/// Logical volume integrity descriptor (ECMA-167 3/10.10): partition count,
/// implementation use length; its implementation use starts at 80 + 8 per
/// partition and holds the minimum read and write revisions at 40 and 42
/// (UDF 2.60 2.2.6.4).
const LVID_PARTITIONS: usize = 72;
const LVID_IMP_USE_LENGTH: usize = 76;
const LVIDIU_LEN: usize = 46;
/// blkid stops after this many descriptors of the sequence anyway (a
/// bound for hostile images; real sequences hold a handful).
const MAX_DESCRIPTORS: u64 = 4096;

/// A dstring field (ECMA-167 1/7.2.12): compression id, characters, length.
fn dstring(d: &[u8], off: usize, size: usize) -> (u8, &[u8]) {
    let field = &d[off..off + size];
    let clen = usize::from(field[size - 1]).saturating_sub(1).min(size - 2);
    (field[0], &field[1..1 + clen])
}

/// True when a charspec is "OSTA Compressed Unicode" (UDF 2.1.2), as blkid checks.
fn is_charset_udf(d: &[u8], off: usize) -> bool {
    const OSTA: &[u8] = b"OSTA Compressed Unicode";
    d[off] == 0 && &d[off + 1..off + 1 + OSTA.len()] == OSTA && d[off + 1 + OSTA.len()] == 0
}

/// Decodes a dstring's characters as `ul_encode_to_utf8` does (cid 8:
/// Latin-1, cid 16: UTF-16BE; stops at NUL), at most `max` UTF-8 bytes.
fn decode(cid: u8, c: &[u8], max: usize) -> Option<String> {
    let text: String = match cid {
        8 => c
            .iter()
            .take_while(|&&b| b != 0)
            .map(|&b| char::from(b))
            .collect(),
        16 => {
            let units: Vec<u16> = c
                .chunks_exact(2)
                .map(|u| u16::from_be_bytes([u[0], u[1]]))
                .take_while(|&u| u != 0)
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => return None,
    };
    let mut out = String::new();
    for ch in text.chars() {
        if out.len() + ch.len_utf8() > max {
            break;
        }
        out.push(ch);
    }
    Some(out)
}

/// libblkid's `gen_uuid_from_volset_id`: the first 16 UTF-8 bytes of the
/// VolumeSetIdentifier, lowercased when hexadecimal, else partly in hex.
fn volset_uuid(cid: u8, c: &[u8]) -> Option<String> {
    let s = decode(cid, c, 16)?;
    if s.len() < 8 {
        return None;
    }
    let mut buf = [0u8; 16];
    buf[..s.len()].copy_from_slice(s.as_bytes());
    let nonhex = buf
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(16);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let lower = |b: &[u8]| String::from_utf8_lossy(b).to_ascii_lowercase();
    Some(if nonhex < 8 {
        hex(&buf[..8])
    } else if nonhex < 16 {
        lower(&buf[..8]) + &hex(&buf[8..12])
    } else {
        lower(&buf)
    })
}

/// The block size at which the recognition sequence holds `NSR0x` and an
/// anchor is found, with the anchor.
fn find_anchor(part: &mut dyn ReadAt) -> Result<Option<(u64, Vec<u8>)>> {
    // The 2048-byte recognition sequence serves every block size up to 2048.
    let mut nsr_2048: Option<bool> = None;
    for bs in BLOCK_SIZES {
        let vsd_len = bs.max(2048);
        let nsr = match (vsd_len, nsr_2048) {
            (2048, Some(known)) => known,
            _ => {
                let found = has_nsr(part, vsd_len)?;
                if vsd_len == 2048 {
                    nsr_2048 = Some(found);
                }
                found
            }
        };
        if !nsr {
            continue;
        }
        for block in [256u64, 512] {
            let Some(vd) = read_opt(part, block * bs, DESC_LEN)? else {
                continue;
            };
            if u64::from(le32(&vd, TAG_LOCATION)) == block && le16(&vd, TAG_ID) == TAG_AVDP {
                return Ok(Some((bs, vd)));
            }
        }
    }
    Ok(None)
}

/// True when the volume recognition sequence (descriptors `vsd_len` apart)
/// holds `NSR02` or `NSR03` before anything unknown.
fn has_nsr(part: &mut dyn ReadAt, vsd_len: u64) -> Result<bool> {
    for b in 0..MAX_VSD {
        let Some(v) = read_opt(part, VRS_OFFSET + b * vsd_len, 7)? else {
            return Ok(false);
        };
        let id = &v[1..6];
        if id[0] == 0 {
            return Ok(false);
        }
        if id == b"NSR02" || id == b"NSR03" {
            return Ok(true);
        }
        if !VRS_OTHER.iter().any(|o| &o[..] == id) {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Probes for UDF.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some((bs, anchor)) = find_anchor(part)? else {
        return Ok(None);
    };
    let count = u64::from(le32(&anchor, AVDP_LENGTH)) / bs;
    let loc = u64::from(le32(&anchor, AVDP_LOCATION));
    let mut info = FsInfo::new("udf");
    let (mut have_uuid, mut have_label) = (false, false);
    let mut udf_rev = 0u16;
    let mut lvid: Option<(u32, u32)> = None;
    for b in 0..count.min(MAX_DESCRIPTORS) {
        let Some(vd) = read_opt(part, (loc + b) * bs, DESC_LEN)? else {
            break;
        };
        let tag = le16(&vd, TAG_ID);
        if tag == 0 || u64::from(le32(&vd, TAG_LOCATION)) != loc + b || tag == TAG_TD {
            break;
        }
        match tag {
            TAG_PVD if !have_uuid && is_charset_udf(&vd, PVD_CHARSET) => {
                let (cid, c) = dstring(&vd, PVD_VOLSET_ID, 128);
                if let Some(u) = volset_uuid(cid, c) {
                    info.uuid = Some(u);
                    have_uuid = true;
                }
            }
            TAG_LVD => {
                if lvid.is_none() && le32(&vd, LVD_PARTITION_MAPS) != 0 {
                    lvid = Some((le32(&vd, LVD_LVID_LENGTH), le32(&vd, LVD_LVID_LOCATION)));
                }
                let domain = &vd[LVD_DOMAIN_ID..LVD_DOMAIN_ID + 23];
                let osta = b"*OSTA UDF Compliant";
                if udf_rev == 0 && &domain[..osta.len()] == osta && domain[osta.len()] == 0 {
                    udf_rev = le16(&vd, LVD_UDF_REV);
                }
                if !have_label && is_charset_udf(&vd, LVD_CHARSET) {
                    let (cid, c) = dstring(&vd, LVD_LOGVOL_ID, 128);
                    if let Some(l) = decode(cid, c, usize::MAX) {
                        let l = l.trim_end_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
                        info.label = (!l.is_empty()).then(|| l.to_string());
                        have_label = true;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((_, loc)) = lvid.filter(|&(len, loc)| loc != 0 && len as usize >= DESC_LEN) {
        let at = u64::from(loc) * bs;
        if let Some(vd) = read_opt(part, at, DESC_LEN)? {
            if le16(&vd, TAG_ID) == TAG_LVID
                && le32(&vd, TAG_LOCATION) == loc
                && le32(&vd, LVID_IMP_USE_LENGTH) as usize >= LVIDIU_LEN
            {
                let iu = 80 + 8 * u64::from(le32(&vd, LVID_PARTITIONS));
                if let Some(iu) = read_opt(part, at + iu, LVIDIU_LEN)? {
                    for rev in [le16(&iu, 40), le16(&iu, 42)] {
                        udf_rev = udf_rev.max(rev);
                    }
                }
            }
        }
    }
    if udf_rev != 0 {
        info.version = Some(format!("{:x}.{:02x}", udf_rev >> 8, udf_rev & 0xFF));
    }
    Ok(Some(info))
}

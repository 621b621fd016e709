//! LUKS1 and LUKS2 containers (`crypto_LUKS`), identified as util-linux 2.38
//! `libblkid/src/superblocks/luks.c` does: the primary header magic at 0, or
//! a LUKS2 secondary header at one of its fixed offsets. Field offsets:
//! LUKS1 on-disk format specification 1.2.3 and LUKS2 specification,
//! section 2 ("binary header").
//!
//! `luks2.rs`: the LUKS2 binary header model the `luks2-primary-header`
//! recipe needs ([`Luks2Header`]: primary and secondary copies).

use super::bytes::be16;
use super::text::label_bytes;
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Primary header magic.
const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// LUKS2 secondary header magic.
const MAGIC_2: &[u8; 6] = b"SKUL\xba\xbe";
/// Offsets where a LUKS2 secondary header may sit (blkid tries them in order).
pub const SECONDARY_OFFSETS: [u64; 9] = [
    0x04000, 0x008000, 0x010000, 0x020000, 0x40000, 0x080000, 0x100000, 0x200000, 0x400000,
];
/// Bytes of the binary header read.
const HEADER_LEN: usize = 512;
/// UUID string offset and length (both versions).
const UUID: (usize, usize) = (168, 40);
/// LUKS2 label offset and length.
const LABEL: (usize, usize) = (24, 48);

/// Probes for LUKS.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(h) = read_opt(part, 0, HEADER_LEN)? else {
        return Ok(None);
    };
    if &h[..6] == MAGIC {
        return Ok(Some(attributes(&h)));
    }
    for off in SECONDARY_OFFSETS {
        match read_opt(part, off, HEADER_LEN)? {
            None => return Ok(None),
            Some(h) if &h[..6] == MAGIC_2 => return Ok(Some(attributes(&h))),
            Some(_) => {}
        }
    }
    Ok(None)
}

fn attributes(h: &[u8]) -> FsInfo {
    let mut info = FsInfo::new("crypto_LUKS");
    let version = be16(h, 6);
    info.version = Some(version.to_string());
    if version == 1 || version == 2 {
        info.uuid = label_bytes(&h[UUID.0..UUID.0 + UUID.1]);
    }
    if version == 2 {
        info.label = label_bytes(&h[LABEL.0..LABEL.0 + LABEL.1]);
    }
    info
}

mod luks2;
pub use luks2::*;

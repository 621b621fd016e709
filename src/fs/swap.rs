//! Linux swap, identified as util-linux 2.38 `libblkid/src/superblocks/swap.c`
//! does: `SWAP-SPACE`/`SWAPSPACE2` at the end of the first page for page
//! sizes 4 KiB..64 KiB; label and UUID from the v1 header at byte 1024
//! (kernel `include/linux/swap.h` `union swap_header`).

use super::bytes::{be32, le32};
use super::text::{label_bytes, uuid16};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Page sizes blkid tries, smallest first.
const PAGE_SIZES: [u64; 5] = [0x1000, 0x2000, 0x4000, 0x8000, 0x10000];
/// The v1 header offset.
const HEADER_OFFSET: u64 = 1024;
/// TuxOnIce keeps this at offset 0 of a swap it uses; blkid then says "not swap".
const TOI_MAGIC: &[u8; 8] = b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c";

/// Probes for swap.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let mut version = None;
    for page in PAGE_SIZES {
        let Some(m) = read_opt(part, page - 10, 10)? else {
            break;
        };
        if &m[..] == b"SWAP-SPACE" {
            version = Some(0);
            break;
        }
        if &m[..] == b"SWAPSPACE2" {
            version = Some(1);
            break;
        }
    }
    let Some(version) = version else {
        return Ok(None);
    };
    if read_opt(part, 0, 8)?.is_some_and(|b| &b[..] == TOI_MAGIC) {
        return Ok(None);
    }
    let mut info = FsInfo::new("swap");
    info.version = Some(version.to_string());
    if version == 0 {
        return Ok(Some(info));
    }
    let Some(h) = read_opt(part, HEADER_OFFSET, 4 * 3 + 16 + 16 + 4 * 118)? else {
        return Ok(None);
    };
    if le32(&h, 0) != 1 && be32(&h, 0) != 1 {
        return Ok(None);
    }
    if le32(&h, 4) == 0 {
        return Ok(None);
    }
    // blkid's "is there garbage" check: padding[32] and padding[33] are zero.
    let pad = 4 * 3 + 16 + 16;
    if le32(&h, pad + 4 * 32) == 0 && le32(&h, pad + 4 * 33) == 0 {
        if h[28] != 0 {
            info.label = label_bytes(&h[28..44]);
        }
        info.uuid = uuid16(&h[12..28]);
    }
    Ok(Some(info))
}

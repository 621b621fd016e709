//! exFAT, identified as util-linux 2.38 `libblkid/src/superblocks/exfat.c`
//! does: `"EXFAT   "` at offset 3, the label from the root directory's
//! volume-label entry (type 0x83, UTF-16LE), the serial as `XXXX-XXXX`.
//! Field offsets: Microsoft exFAT specification, section 3.1 (main boot sector).

use crate::error::Result;
use crate::fs::bytes::le32;
use crate::fs::text::{label_utf16, serial4, Utf16};
use crate::fs::{read_opt, FsInfo};
use crate::image::ReadAt;

/// The file-system name at offset 3.
const MAGIC: &[u8; 8] = b"EXFAT   ";
/// Directory entry size.
const ENTRY_SIZE: u64 = 32;
/// Entry type: end of directory.
const ENTRY_EOD: u8 = 0x00;
/// Entry type: volume label.
const ENTRY_LABEL: u8 = 0x83;
/// First data cluster number.
const FIRST_DATA_CLUSTER: u32 = 2;
/// Last valid data cluster number.
const LAST_DATA_CLUSTER: u32 = 0x0FFF_FFF6;
/// blkid reads at most this many root-directory entries.
const MAX_ENTRIES: usize = 10_000;

struct Geometry {
    block_bits: u32,
    cluster_bytes: u64,
    fat_block_start: u64,
    cluster_block_start: u64,
    bpc_bits: u32,
}

impl Geometry {
    fn cluster_offset(&self, cluster: u32) -> Option<u64> {
        let block = u64::from(cluster.wrapping_sub(FIRST_DATA_CLUSTER))
            .checked_shl(self.bpc_bits)?
            .checked_add(self.cluster_block_start)?;
        block.checked_mul(1u64 << self.block_bits)
    }
}

/// Probes for exFAT.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(s) = read_opt(part, 0, 512)? else {
        return Ok(None);
    };
    if &s[3..11] != MAGIC {
        return Ok(None);
    }
    let (block_bits, bpc_bits) = (u32::from(s[108]), u32::from(s[109]));
    // blkid requires a non-zero cluster size; shifts that do not fit are treated as zero.
    if block_bits + bpc_bits >= 32 {
        return Ok(None);
    }
    let g = Geometry {
        block_bits,
        bpc_bits,
        cluster_bytes: 1u64 << (block_bits + bpc_bits),
        fat_block_start: u64::from(le32(&s, 80)),
        cluster_block_start: u64::from(le32(&s, 88)),
    };
    let mut info = FsInfo::new("exfat");
    info.label = find_label(part, &g, le32(&s, 96))?;
    info.uuid = serial4(&s[100..104]);
    info.version = Some(format!("{}.{}", s[105], s[104]));
    Ok(Some(info))
}

/// Walks the root directory (bounded) for the volume-label entry.
fn find_label(part: &mut dyn ReadAt, g: &Geometry, root: u32) -> Result<Option<String>> {
    let mut cluster = root;
    let Some(mut offset) = g.cluster_offset(cluster) else {
        return Ok(None);
    };
    for _ in 0..MAX_ENTRIES {
        let Some(e) = read_opt(part, offset, ENTRY_SIZE as usize)? else {
            return Ok(None);
        };
        match e[0] {
            ENTRY_EOD => return Ok(None),
            ENTRY_LABEL => {
                let len = (usize::from(e[1]) * 2).min(22);
                return Ok(label_utf16(&e[2..2 + len], Utf16::Le));
            }
            _ => {}
        }
        offset += ENTRY_SIZE;
        if offset % g.cluster_bytes == 0 {
            let fat = (g.fat_block_start << g.block_bits) + u64::from(cluster) * 4;
            let Some(n) = read_opt(part, fat, 4)? else {
                return Ok(None);
            };
            cluster = le32(&n, 0);
            if !(FIRST_DATA_CLUSTER..=LAST_DATA_CLUSTER).contains(&cluster) {
                return Ok(None);
            }
            let Some(o) = g.cluster_offset(cluster) else {
                return Ok(None);
            };
            offset = o;
        }
    }
    Ok(None)
}

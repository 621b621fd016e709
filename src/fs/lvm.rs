//! LVM2 physical volumes (`LVM2_member`), identified as util-linux 2.38
//! `libblkid/src/superblocks/lvm.c` does: a `LABELONE` label in sector 0..3
//! with type `LVM2 001`, its sector number and CRC checked; the PV UUID
//! shown 6-4-4-4-4-4-6. Label layout: LVM2 `lib/label/label.h`.

use super::bytes::{le32, le64};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// Where blkid looks for the type string: (KiB offset, byte offset in it).
const MAGICS: [(u64, usize); 4] = [(0, 0x218), (0, 0x018), (1, 0x018), (1, 0x218)];
/// The type string.
const TYPE: &[u8; 8] = b"LVM2 001";
/// Label size covered by the CRC.
const LABEL_SIZE: usize = 512;
/// Offset of the CRC'd part (`offset_xl`) in the label.
const CRC_START: usize = 20;
/// LVM's CRC seed (`INITIAL_CRC`).
const INITIAL_CRC: u32 = 0xf597_a6cf;
/// PV UUID length (characters).
const ID_LEN: usize = 32;

/// LVM's CRC-32: reflected polynomial 0xEDB88320, nibble at a time, no final inversion.
fn lvm_crc(data: &[u8]) -> u32 {
    let mut crc = INITIAL_CRC;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

/// Probes for an LVM2 PV label.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(head) = read_opt(part, 0, 2048)? else {
        return Ok(None);
    };
    let Some(&(kb, _)) = MAGICS
        .iter()
        .find(|(kb, off)| head[(*kb as usize) * 1024 + off..][..8] == TYPE[..])
    else {
        return Ok(None);
    };
    let base = kb as usize * 1024;
    let mut sector = kb * 2;
    let label = if &head[base..base + 8] == b"LABELONE" {
        &head[base..base + LABEL_SIZE]
    } else if head.len() >= base + 1024 && &head[base + 512..base + 520] == b"LABELONE" {
        sector += 1;
        &head[base + 512..base + 1024]
    } else {
        return Ok(None);
    };
    if le64(label, 8) != sector || lvm_crc(&label[CRC_START..]) != le32(label, 16) {
        return Ok(None);
    }
    let id = &label[32..32 + ID_LEN];
    let mut uuid = String::with_capacity(ID_LEN + 6);
    for (i, &c) in id.iter().enumerate() {
        if (0x444_4440u32 >> i) & 1 == 1 {
            uuid.push('-');
        }
        uuid.push(char::from(c));
    }
    let mut info = FsInfo::new("LVM2_member");
    info.uuid = Some(uuid);
    info.version = Some("LVM2 001".into());
    Ok(Some(info))
}

/// LVM's CRC, for building test labels.
#[cfg(test)]
pub(crate) fn tests_crc(data: &[u8]) -> u32 {
    lvm_crc(data)
}

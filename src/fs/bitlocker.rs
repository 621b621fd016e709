//! BitLocker (Windows volume encryption), identified as util-linux 2.38
//! `libblkid/src/superblocks/bitlocker.c` does: the Vista, Windows 7 or "To
//! Go" boot-sector signature, and for the last two the `-FVE-FS-` metadata
//! header at the offset the boot sector records. VERSION is the metadata
//! version; UUID the Windows 7 header's volume serial (unset when zero, as
//! it always seems to be). A crypto container: nothing is probed beside it.

use super::bytes::{le16, le32, le64};
use super::{read_opt, FsInfo};
use crate::error::Result;
use crate::image::ReadAt;

/// The three boot-sector signatures (11 bytes at offset 0).
const VISTA: &[u8; 11] = b"\xeb\x52\x90-FVE-FS-";
const WIN7: &[u8; 11] = b"\xeb\x58\x90-FVE-FS-";
const TOGO: &[u8; 11] = b"\xeb\x58\x90MSWIN4.1";
/// The metadata header's signature.
const FVE: &[u8; 8] = b"-FVE-FS-";
/// Where each header records the metadata offset; the Windows 7 serial.
const WIN7_FVE_OFFSET: usize = 176;
const TOGO_FVE_OFFSET: usize = 440;
const WIN7_SERIAL: usize = 67;

/// Probes for BitLocker.
pub fn probe(part: &mut dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(hdr) = read_opt(part, 0, 512)? else {
        return Ok(None);
    };
    let sig = &hdr[..11];
    let mut info = FsInfo::new("BitLocker");
    let off = if sig == VISTA {
        return Ok(Some(info));
    } else if sig == WIN7 {
        le64(&hdr, WIN7_FVE_OFFSET)
    } else if sig == TOGO {
        le64(&hdr, TOGO_FVE_OFFSET)
    } else {
        return Ok(None);
    };
    if off == 0 {
        return Ok(None);
    }
    let Some(fve) = read_opt(part, off, 12)? else {
        return Ok(None);
    };
    if &fve[..8] != FVE {
        return Ok(None);
    }
    if sig == WIN7 {
        let serial = le32(&hdr, WIN7_SERIAL);
        if serial != 0 {
            info.uuid = Some(format!("{serial:016}"));
        }
    }
    info.version = Some(le16(&fve, 10).to_string());
    Ok(Some(info))
}

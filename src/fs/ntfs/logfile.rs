//! `$LogFile`'s restart pages: what ntfs-3g reads from them (clean, unclean,
//! or "metadata kept in Windows cache"), and the synthetic restart page the
//! journal recipes write.
//!
//! Layouts from ntfs-3g's `include/ntfs-3g/logfile.h` (`RESTART_PAGE_HEADER`,
//! `RESTART_AREA`, `LOG_CLIENT_RECORD`) and the rules of
//! `libntfs-3g/logfile.c` (`ntfs_check_logfile`, `ntfs_is_logfile_clean`) and
//! `volume.c` (`ntfs_volume_check_logfile`), read, not copied. The model
//! looks at the two restart pages where every volume made by mkntfs or
//! Windows has them (offsets 0 and the system page size, 4096), checks what
//! ntfs-3g checks of them (magic, version, update sequence), uses the more
//! recent one, and treats a journal whose pages fail those checks as
//! unclean.

use super::record::NTFS_BLOCK_SIZE;

/// logfile.h: the restart page size mkntfs and Windows use (`system_page_size`).
pub const RESTART_PAGE_SIZE: usize = 4096;
/// logfile.h `RESTART_PAGE_HEADER.usa_ofs` as written by Windows and mkntfs.
const RSTR_USA_OFS: usize = 0x1E;
/// logfile.h `RESTART_PAGE_HEADER.restart_area_offset` (as written here).
const RSTR_RA_OFS: usize = 0x30;
/// logfile.h `RESTART_AREA.client_array_offset` (as written here).
const RA_CLIENT_ARRAY_OFS: usize = 0x40;
/// logfile.h `LOG_CLIENT_RECORD` size.
const CLIENT_RECORD_SIZE: usize = 0xA0;
/// logfile.h `LOGFILE_NO_CLIENT`.
const LOGFILE_NO_CLIENT: u16 = 0xFFFF;
/// logfile.h `RESTART_VOLUME_IS_CLEAN` (`RESTART_AREA.flags`).
const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;
/// The LSN the synthetic page claims: newer than anything mkntfs writes.
const SYNTHETIC_LSN: u64 = 0x10_0000;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// What ntfs-3g concludes from the journal on a read-write mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Emptied (all `0xFF`), or the newest restart page says clean: mounts.
    Clean,
    /// The newest restart page is version 1.1 and not clean (a crash or
    /// power cut): the default `recover` option resets it on a read-write
    /// mount ("The file system wasn't safely closed on Windows. Fixing.").
    Unclean,
    /// The newest restart page is version 2.0 (Windows 8+ fast startup or
    /// hybrid shutdown): "Metadata kept in Windows cache, refused to mount."
    /// (EPERM), whether or not it also says clean.
    WindowsCache {
        /// Whether the restart area also says "not clean".
        unclean: bool,
    },
    /// No consistent restart page in a non-empty journal: handled as
    /// unclean.
    Inconsistent,
}

impl LogState {
    /// The state in a few words, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            LogState::Clean => "clean",
            LogState::Unclean => "unclean (version 1.1, a client in use)",
            LogState::WindowsCache { .. } => "left by Windows fast startup (version 2.0)",
            LogState::Inconsistent => "inconsistent (no valid restart page)",
        }
    }

    /// Reads the state from the journal's first two restart pages (`log`,
    /// at least `2 * RESTART_PAGE_SIZE` bytes when the file is that large).
    pub fn read(log: &[u8]) -> LogState {
        let page = |i: usize| log.get(i * RESTART_PAGE_SIZE..(i + 1) * RESTART_PAGE_SIZE);
        let empty = |p: Option<&[u8]>| p.is_none_or(|p| p[..4] == [0xFF; 4]);
        if empty(page(0)) && empty(page(1)) {
            return LogState::Clean;
        }
        let parsed: Vec<Restart> = (0..2)
            .filter_map(|i| page(i).and_then(|p| Restart::parse(p, i * RESTART_PAGE_SIZE)))
            .collect();
        let newest = match parsed.as_slice() {
            [] => return LogState::Inconsistent,
            [one] => one,
            [a, b] => {
                if b.lsn > a.lsn {
                    b
                } else {
                    a
                }
            }
            _ => unreachable!("at most two pages"),
        };
        let unclean =
            newest.in_use != LOGFILE_NO_CLIENT && newest.flags & RESTART_VOLUME_IS_CLEAN == 0;
        match (newest.major, newest.minor, unclean) {
            (2, 0, u) => LogState::WindowsCache { unclean: u },
            (_, _, true) => LogState::Unclean,
            _ => LogState::Clean,
        }
    }
}

/// The fields of one restart page the model uses.
struct Restart {
    major: i16,
    minor: i16,
    lsn: u64,
    in_use: u16,
    flags: u16,
}

impl Restart {
    /// `ntfs_check_restart_page_header` and the restart-area fields, on one
    /// page found at `pos` in the journal.
    fn parse(p: &[u8], pos: usize) -> Option<Restart> {
        if &p[..4] != b"RSTR" {
            return None;
        }
        let usa_ofs = le16(p, 4)? as usize;
        let usa_count = le16(p, 6)? as usize;
        let sys = le32(p, 0x10)? as usize;
        let logp = le32(p, 0x14)? as usize;
        let ra = le16(p, 0x18)? as usize;
        let minor = le16(p, 0x1A)? as i16;
        let major = le16(p, 0x1C)? as i16;
        if sys != RESTART_PAGE_SIZE
            || logp < NTFS_BLOCK_SIZE
            || !logp.is_power_of_two()
            || (pos != 0 && pos != sys)
            || !matches!((major, minor), (1, 1) | (2, 0))
            || usa_count != 1 + sys / NTFS_BLOCK_SIZE
            || usa_ofs < 0x1E
            || usa_ofs + 2 * usa_count > NTFS_BLOCK_SIZE - 2
            || ra % 8 != 0
            || ra < usa_ofs + 2 * usa_count
            || ra + 0x30 > sys
            || le64(p, 8)? != 0
        {
            return None;
        }
        // Multi-sector protection of the whole page.
        let usn = le16(p, usa_ofs)?;
        for i in 1..usa_count {
            if le16(p, i * NTFS_BLOCK_SIZE - 2)? != usn {
                return None;
            }
        }
        Some(Restart {
            major,
            minor,
            lsn: le64(p, ra)?,
            in_use: le16(p, ra + 0x0C)?,
            flags: le16(p, ra + 0x0E)?,
        })
    }
}

/// The first restart page (4096 bytes) of a journal of `file_size` bytes that
/// says "one client in use, volume not clean", version `major.minor`: 1.1 is
/// what a crash leaves, 2.0 what Windows 8+ fast startup leaves. Every field
/// is fixed, so the bytes depend only on `file_size` and the version.
pub fn unclean_restart_page(file_size: u64, major: i16, minor: i16) -> Vec<u8> {
    let mut pg = vec![0u8; RESTART_PAGE_SIZE];
    let usa_count = 1 + RESTART_PAGE_SIZE / NTFS_BLOCK_SIZE;
    let put16 =
        |pg: &mut Vec<u8>, at: usize, v: u16| pg[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |pg: &mut Vec<u8>, at: usize, v: u32| pg[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |pg: &mut Vec<u8>, at: usize, v: u64| pg[at..at + 8].copy_from_slice(&v.to_le_bytes());
    // RESTART_PAGE_HEADER
    pg[..4].copy_from_slice(b"RSTR");
    put16(&mut pg, 4, RSTR_USA_OFS as u16);
    put16(&mut pg, 6, usa_count as u16);
    put32(&mut pg, 0x10, RESTART_PAGE_SIZE as u32); // system_page_size
    put32(&mut pg, 0x14, RESTART_PAGE_SIZE as u32); // log_page_size
    put16(&mut pg, 0x18, RSTR_RA_OFS as u16);
    put16(&mut pg, 0x1A, minor as u16);
    put16(&mut pg, 0x1C, major as u16);
    // RESTART_AREA
    let ra = RSTR_RA_OFS;
    let file_size_bits = 64 - file_size.leading_zeros();
    put64(&mut pg, ra, SYNTHETIC_LSN); // current_lsn
    put16(&mut pg, ra + 0x08, 1); // log_clients
    put16(&mut pg, ra + 0x0A, LOGFILE_NO_CLIENT); // client_free_list
    put16(&mut pg, ra + 0x0C, 0); // client_in_use_list: client 0
    put16(&mut pg, ra + 0x0E, 0); // flags: not RESTART_VOLUME_IS_CLEAN
    put32(&mut pg, ra + 0x10, 67u32.saturating_sub(file_size_bits)); // seq_number_bits
    put16(
        &mut pg,
        ra + 0x14,
        (RA_CLIENT_ARRAY_OFS + CLIENT_RECORD_SIZE) as u16,
    ); // restart_area_length
    put16(&mut pg, ra + 0x16, RA_CLIENT_ARRAY_OFS as u16); // client_array_offset
    put64(&mut pg, ra + 0x18, file_size);
    put32(&mut pg, ra + 0x20, 0); // last_lsn_data_length
    put16(&mut pg, ra + 0x24, 0x30); // log_record_header_length
    put16(&mut pg, ra + 0x26, 0x40); // log_page_data_offset
    put32(&mut pg, ra + 0x28, 1); // restart_log_open_count
                                  // LOG_CLIENT_RECORD 0: "NTFS", no neighbours.
    let c = ra + RA_CLIENT_ARRAY_OFS;
    put64(&mut pg, c, SYNTHETIC_LSN); // oldest_lsn
    put64(&mut pg, c + 8, SYNTHETIC_LSN); // client_restart_lsn
    put16(&mut pg, c + 0x10, LOGFILE_NO_CLIENT); // prev_client
    put16(&mut pg, c + 0x12, LOGFILE_NO_CLIENT); // next_client
    put32(&mut pg, c + 0x1C, 8); // client_name_length (bytes)
    for (i, ch) in "NTFS".encode_utf16().enumerate() {
        put16(&mut pg, c + 0x20 + 2 * i, ch);
    }
    // Multi-sector protection: usn 1, each sector's tail saved in the array.
    let usn = 1u16;
    put16(&mut pg, RSTR_USA_OFS, usn);
    for i in 1..usa_count {
        let tail = i * NTFS_BLOCK_SIZE - 2;
        let saved = [pg[tail], pg[tail + 1]];
        pg[RSTR_USA_OFS + 2 * i..RSTR_USA_OFS + 2 * i + 2].copy_from_slice(&saved);
        put16(&mut pg, tail, usn);
    }
    pg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_pages_read_back_as_their_state() {
        let size = 2 << 20;
        let mut log = vec![0xFFu8; 2 * RESTART_PAGE_SIZE];
        assert_eq!(LogState::read(&log), LogState::Clean);
        log[..RESTART_PAGE_SIZE].copy_from_slice(&unclean_restart_page(size, 2, 0));
        assert_eq!(
            LogState::read(&log),
            LogState::WindowsCache { unclean: true }
        );
        log[..RESTART_PAGE_SIZE].copy_from_slice(&unclean_restart_page(size, 1, 1));
        assert_eq!(LogState::read(&log), LogState::Unclean);
        // Torn page: the update sequence no longer matches.
        log[1022] ^= 1;
        assert_eq!(LogState::read(&log), LogState::Inconsistent);
    }

    #[test]
    fn the_page_is_deterministic_and_stamped() {
        let p = unclean_restart_page(4 << 20, 2, 0);
        assert_eq!(p, unclean_restart_page(4 << 20, 2, 0));
        assert_eq!(&p[..4], b"RSTR");
        assert_eq!(&p[510..512], &1u16.to_le_bytes());
        // seq_number_bits = 67 - bitlen(4 MiB) = 67 - 23.
        assert_eq!(le32(&p, RSTR_RA_OFS + 0x10), Some(44));
    }
}

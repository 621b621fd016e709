//! `$LogFile`'s restart pages: what ntfs-3g reads from them (clean, unclean,
//! or "metadata kept in Windows cache"), and the synthetic restart page the
//! journal recipes write.
//!
//! Layouts from ntfs-3g's `include/ntfs-3g/logfile.h` (`RESTART_PAGE_HEADER`,
//! `RESTART_AREA`, `LOG_CLIENT_RECORD`) and the rules of
//! `libntfs-3g/logfile.c` (`ntfs_check_logfile`, `ntfs_is_logfile_clean`) and
//! `volume.c` (`ntfs_volume_check_logfile`), read, not copied: the same
//! probe positions, the same header, restart-area and client-array checks,
//! torn pages kept as ntfs-3g keeps them, the more recent of two pages.
//! mkntfs leaves the journal all `0xFF` (empty); Windows keeps two restart
//! pages, at 0 and at the system page size.

use super::record::NTFS_BLOCK_SIZE;
use crate::error::Result;

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
/// The LSN the synthetic page claims. The recipes write the page at both
/// restart positions, so which one ntfs-3g picks does not depend on the
/// LSNs Windows left.
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

/// logfile.h `MinLogRecordPages`: log record pages ntfs-3g requires after
/// the two restart pages.
pub const MIN_LOG_RECORD_PAGES: u64 = 48;
/// logfile.h `DefaultLogPageSize`.
pub const DEFAULT_LOG_PAGE_SIZE: u64 = 4096;
/// logfile.h `MaxLogFileSize`: ntfs-3g looks no further.
const MAX_LOG_FILE_SIZE: u64 = 0x1_0000_0000;
/// The smallest journal `ntfs_check_logfile` accepts (200 KiB); a smaller
/// one is "too small" and handled as unclean.
pub const MIN_LOGFILE_SIZE: u64 = (2 + MIN_LOG_RECORD_PAGES) * DEFAULT_LOG_PAGE_SIZE;
/// logfile.h `RESTART_PAGE_HEADER.usn`: the lowest update sequence array offset.
const RSTR_USN_OFS: usize = 0x1E;
/// logfile.h `RESTART_AREA.file_size`.
const RA_FILE_SIZE: usize = 0x18;

/// What ntfs-3g concludes from the journal on a read-write mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Empty (every probed block all `0xFF`), or the newest restart page
    /// says clean: mounts.
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
    /// The journal fails `ntfs_check_logfile` (too small, or no consistent
    /// restart page in a non-empty journal): handled as unclean, without
    /// the "Windows cache" refusal.
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

    /// `ntfs_check_logfile` then `ntfs_is_logfile_clean` and the 2.0 check
    /// of `ntfs_volume_check_logfile`, on a journal of `size` bytes whose
    /// bytes `read(pos, len)` returns: the blocks at 0, 512, 1024, 2048, …
    /// are probed for restart pages (`RSTR`, or `CHKD` after chkdsk), an
    /// all-`0xFF` journal is empty, the more recent of two valid pages wins.
    pub fn read(
        size: u64,
        read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<LogState> {
        let size = size.min(MAX_LOG_FILE_SIZE) & !(DEFAULT_LOG_PAGE_SIZE - 1);
        if size < MIN_LOGFILE_SIZE {
            return Ok(LogState::Inconsistent);
        }
        let mut empty = true;
        let mut pages: Vec<Restart> = Vec::new();
        let mut pos: u64 = 0;
        while pos < size {
            let block = read(pos, NTFS_BLOCK_SIZE)?;
            let magic = &block[..4];
            if magic != [0xFF; 4] {
                empty = false;
            } else if !empty {
                break;
            }
            if magic == b"RCRD" {
                break;
            }
            let found = if magic == b"RSTR" || magic == b"CHKD" {
                Restart::load(&block, pos, size, read)?
            } else {
                None
            };
            if let Some(page) = found {
                pages.push(page);
                if pos != 0 {
                    break;
                }
            }
            pos = if pos == 0 {
                NTFS_BLOCK_SIZE as u64
            } else {
                pos << 1
            };
        }
        if empty {
            return Ok(LogState::Clean);
        }
        let newest = match pages.as_slice() {
            [] => return Ok(LogState::Inconsistent),
            [one] => one,
            [a, b, ..] => {
                if b.lsn > a.lsn {
                    b
                } else {
                    a
                }
            }
        };
        let unclean = newest.torn
            || (newest.in_use != LOGFILE_NO_CLIENT && newest.flags & RESTART_VOLUME_IS_CLEAN == 0);
        Ok(match (newest.major, newest.minor, unclean) {
            (2, 0, u) => LogState::WindowsCache { unclean: u },
            (_, _, true) => LogState::Unclean,
            _ => LogState::Clean,
        })
    }
}

/// The fields of one restart page the model uses.
struct Restart {
    major: i16,
    minor: i16,
    lsn: u64,
    in_use: u16,
    flags: u16,
    /// Its multi-sector protection failed, but the restart area lies in
    /// the first sector: ntfs-3g keeps it, and calls the journal unclean.
    torn: bool,
}

impl Restart {
    /// `ntfs_check_and_load_restart_page` on the page whose first block is
    /// `b`, found at `pos` in a journal of `size` bytes: `None` where ntfs-3g
    /// says EINVAL (keep looking).
    fn load(
        b: &[u8],
        pos: u64,
        size: u64,
        read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<Option<Restart>> {
        let f = |at| le16(b, at).map(usize::from);
        let (Some(usa_ofs), Some(usa_count), Some(ra_ofs)) = (f(4), f(6), f(0x18)) else {
            return Ok(None);
        };
        let chkd = &b[..4] == b"CHKD";
        let sys = le32(b, 0x10).unwrap_or(0) as usize;
        let logp = le32(b, 0x14).unwrap_or(0) as usize;
        let minor = le16(b, 0x1A).unwrap_or(0) as i16;
        let major = le16(b, 0x1C).unwrap_or(0) as i16;
        let chkdsk_lsn = le64(b, 8).unwrap_or(0);
        // ntfs_check_restart_page_header
        if sys < NTFS_BLOCK_SIZE
            || logp < NTFS_BLOCK_SIZE
            || !sys.is_power_of_two()
            || !logp.is_power_of_two()
            || (pos != 0 && pos != sys as u64)
            || !matches!((major, minor), (1, 1) | (2, 0))
        {
            return Ok(None);
        }
        let have_usa = !(chkd && usa_count == 0);
        let usa_end = usa_ofs + 2 * usa_count;
        if have_usa
            && (usa_count != 1 + sys / NTFS_BLOCK_SIZE
                || usa_ofs < RSTR_USN_OFS
                || usa_end > NTFS_BLOCK_SIZE - 2)
        {
            return Ok(None);
        }
        let ra_min = if have_usa { usa_end } else { RSTR_USN_OFS };
        if ra_ofs % 8 != 0 || ra_ofs < ra_min || ra_ofs > sys || (!chkd && chkdsk_lsn != 0) {
            return Ok(None);
        }
        // ntfs_check_restart_area, on the first block as read.
        if ra_ofs + RA_FILE_SIZE > NTFS_BLOCK_SIZE - 2 {
            return Ok(None);
        }
        let g = |at: usize| le16(b, ra_ofs + at).map(usize::from).unwrap_or(usize::MAX);
        let (clients, free, in_use) = (g(0x08), g(0x0A), g(0x0C));
        let (ra_length, ca_ofs) = (g(0x14), g(0x16));
        if ca_ofs % 8 != 0 || ra_ofs + ca_ofs > NTFS_BLOCK_SIZE - 2 {
            return Ok(None);
        }
        let ra_len = ca_ofs + clients * CLIENT_RECORD_SIZE;
        if ra_ofs + ra_len > sys || ra_ofs + ra_length > sys || ra_len > ra_length {
            return Ok(None);
        }
        let no = usize::from(LOGFILE_NO_CLIENT);
        if (free != no && free >= clients) || (in_use != no && in_use >= clients) {
            return Ok(None);
        }
        // The rest of the restart area lies past the first 0x18 bytes, which
        // may cross into the fixed-up tail; read it from the whole page.
        if sys as u64 > ((usa_count.max(1) - 1) * NTFS_BLOCK_SIZE) as u64 && have_usa
            || sys as u64 > size
        {
            return Ok(None);
        }
        let mut page = read(pos, sys)?;
        let mut torn = false;
        if have_usa {
            let usn = [page[usa_ofs], page[usa_ofs + 1]];
            for i in 1..usa_count {
                let tail = i * NTFS_BLOCK_SIZE - 2;
                if page[tail..tail + 2] != usn {
                    if ra_ofs + ra_length > NTFS_BLOCK_SIZE - 2 {
                        return Ok(None);
                    }
                    torn = true;
                    break;
                }
                let saved = usa_ofs + 2 * i;
                page.copy_within(saved..saved + 2, tail);
            }
        }
        let p = |at: usize| le16(&page, ra_ofs + at).unwrap_or(0);
        let file_size = le64(&page, ra_ofs + RA_FILE_SIZE).unwrap_or(0);
        let fs_bits = 64 - file_size.leading_zeros();
        if le32(&page, ra_ofs + 0x10) != Some(67u32.wrapping_sub(fs_bits))
            || p(0x24) % 8 != 0
            || p(0x26) % 8 != 0
        {
            return Ok(None);
        }
        if !chkd && in_use != no && !client_array_ok(&page, ra_ofs, sys) {
            return Ok(None);
        }
        Ok(Some(Restart {
            major,
            minor,
            lsn: if chkd {
                chkdsk_lsn
            } else {
                le64(&page, ra_ofs).unwrap_or(0)
            },
            in_use: in_use as u16,
            flags: p(0x0E),
            torn,
        }))
    }
}

/// `ntfs_check_log_client_array`: the free and in-use lists stay inside the
/// client array and start with a client that has no predecessor.
fn client_array_ok(page: &[u8], ra_ofs: usize, sys: usize) -> bool {
    let g = |at: usize| le16(page, at).map(usize::from).unwrap_or(usize::MAX);
    if ra_ofs + 0x30 > sys {
        return false;
    }
    let clients = g(ra_ofs + 0x08);
    let offset_clients = ra_ofs + g(ra_ofs + 0x16);
    if offset_clients >= sys {
        return false;
    }
    let no = usize::from(LOGFILE_NO_CLIENT);
    for head in [g(ra_ofs + 0x0A), g(ra_ofs + 0x0C)] {
        let mut idx = head;
        let mut left = clients;
        let mut first = true;
        while idx != no {
            if left == 0 || idx >= clients || offset_clients + (idx + 1) * CLIENT_RECORD_SIZE > sys
            {
                return false;
            }
            let cr = offset_clients + idx * CLIENT_RECORD_SIZE;
            if first {
                if g(cr + 0x10) != no {
                    return false;
                }
                first = false;
            }
            idx = g(cr + 0x12);
            left -= 1;
        }
    }
    true
}

/// A restart page (4096 bytes) of a journal of `file_size` bytes that says
/// "one client in use, volume not clean", version `major.minor`: 1.1 is
/// what a crash leaves, 2.0 what Windows 8+ fast startup leaves. Every field
/// is fixed, so the bytes depend only on `file_size` and the version.
pub fn unclean_restart_page(file_size: u64, major: i16, minor: i16) -> Vec<u8> {
    restart_page(file_size, major, minor, false, SYNTHETIC_LSN)
}

/// A restart page of version `major.minor` with one client, clean (no
/// client in use, `RESTART_VOLUME_IS_CLEAN`) or not, at LSN `lsn`: what the
/// tests use to build journals like the ones Windows leaves.
pub fn restart_page(file_size: u64, major: i16, minor: i16, clean: bool, lsn: u64) -> Vec<u8> {
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
    put64(&mut pg, ra, lsn); // current_lsn
    put16(&mut pg, ra + 0x08, 1); // log_clients
    if clean {
        put16(&mut pg, ra + 0x0A, 0); // client_free_list: client 0
        put16(&mut pg, ra + 0x0C, LOGFILE_NO_CLIENT); // client_in_use_list
        put16(&mut pg, ra + 0x0E, RESTART_VOLUME_IS_CLEAN);
    } else {
        put16(&mut pg, ra + 0x0A, LOGFILE_NO_CLIENT); // client_free_list
        put16(&mut pg, ra + 0x0C, 0); // client_in_use_list: client 0
        put16(&mut pg, ra + 0x0E, 0); // flags: not RESTART_VOLUME_IS_CLEAN
    }
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
    put64(&mut pg, c, lsn); // oldest_lsn
    put64(&mut pg, c + 8, lsn); // client_restart_lsn
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

    const SIZE: u64 = 4 << 20;

    /// The state of a journal of `SIZE` bytes holding `pages` at 0, 4096, …
    /// and `0xFF` elsewhere.
    fn state(pages: &[Vec<u8>]) -> LogState {
        let mut log = vec![0xFFu8; 64 * 1024];
        for (i, p) in pages.iter().enumerate() {
            log[i * RESTART_PAGE_SIZE..(i + 1) * RESTART_PAGE_SIZE].copy_from_slice(p);
        }
        LogState::read(SIZE, &mut |pos, len| {
            let pos = pos as usize;
            Ok(if pos + len <= log.len() {
                log[pos..pos + len].to_vec()
            } else {
                vec![0xFF; len]
            })
        })
        .unwrap()
    }

    #[test]
    fn the_synthetic_pages_read_back_as_their_state() {
        assert_eq!(state(&[]), LogState::Clean);
        let v20 = unclean_restart_page(SIZE, 2, 0);
        let v11 = unclean_restart_page(SIZE, 1, 1);
        assert_eq!(
            state(&[v20.clone(), v20]),
            LogState::WindowsCache { unclean: true }
        );
        assert_eq!(state(&[v11.clone(), v11]), LogState::Unclean);
    }

    #[test]
    fn the_more_recent_page_wins() {
        // Windows' two clean pages, the second newer: writing only page 0
        // with an older LSN would change nothing.
        let clean0 = restart_page(SIZE, 1, 1, true, 0x200_0000);
        let clean1 = restart_page(SIZE, 1, 1, true, 0x200_1000);
        assert_eq!(state(&[clean0.clone(), clean1.clone()]), LogState::Clean);
        let v20 = unclean_restart_page(SIZE, 2, 0);
        assert_eq!(state(&[v20.clone(), clean1]), LogState::Clean);
        // The recipes write both positions.
        assert_eq!(
            state(&[v20.clone(), v20.clone()]),
            LogState::WindowsCache { unclean: true }
        );
        // A clean 2.0 page still means "Windows cache".
        let clean20 = restart_page(SIZE, 2, 0, true, 5);
        assert_eq!(state(&[clean20]), LogState::WindowsCache { unclean: false });
        let _ = clean0;
    }

    #[test]
    fn a_torn_page_is_kept_as_unclean_when_its_restart_area_fits_the_first_sector() {
        let mut v20 = unclean_restart_page(SIZE, 2, 0);
        v20[1022] ^= 1;
        assert_eq!(state(&[v20]), LogState::WindowsCache { unclean: true });
        let mut v11 = restart_page(SIZE, 1, 1, true, 9);
        v11[2046] ^= 1;
        assert_eq!(state(&[v11]), LogState::Unclean);
    }

    #[test]
    fn a_small_or_pageless_journal_is_inconsistent() {
        assert_eq!(
            LogState::read(MIN_LOGFILE_SIZE - 4096, &mut |_, len| Ok(vec![0xFF; len])).unwrap(),
            LogState::Inconsistent
        );
        let mut junk = vec![0u8; RESTART_PAGE_SIZE];
        junk[..4].copy_from_slice(b"RSTR");
        assert_eq!(state(&[junk]), LogState::Inconsistent);
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

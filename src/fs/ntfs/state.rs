//! The state of an NTFS volume as ntfs-3g, ntfsfix and ntfsresize judge it:
//! the boot sectors, `$MFT` against `$MFTMirr`, `$Volume`'s dirty flag, the
//! journal and `hiberfil.sys`, each read through the volume's own
//! structures ([`super::record`]), and where each lies, for the recipes that
//! change them.
//!
//! What the tools do with a state is in [`super::tools`].

use super::boot::{NtfsBootSector, NtfsVolumeParams, BOOT_SECTOR_SIZE};
use super::logfile::LogState;
use super::record::{
    DataStream, MftReader, MftRecord, AT_STANDARD_INFORMATION, AT_VOLUME_INFORMATION,
    FILE_FIRST_USER, FILE_LOGFILE, FILE_ROOT, FILE_VOLUME, VOLUME_INFORMATION_FLAGS,
    VOLUME_IS_DIRTY,
};
use crate::error::{Error, Result};
use crate::image::{BlockCache, Cursor, ReadAt};

/// volume.c `NTFS_HIBERFILE_HEADER_SIZE`: the bytes of `hiberfil.sys` ntfs-3g reads.
pub const HIBERFILE_HEADER_SIZE: u64 = 4096;
/// The name ntfs-3g looks up in the root directory.
pub const HIBERFILE_NAME: &str = "hiberfil.sys";

/// What ntfs-3g finds in `hiberfil.sys` on a read-write mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiberState {
    /// No such file in the root directory.
    Absent,
    /// Shorter than 4096 bytes: "Hibernated non-system partition, refused
    /// to mount."
    Short,
    /// Starts with `hibr` or `HIBR`: "Windows is hibernated, refused to mount."
    Hibernated,
    /// Present and not hibernated.
    Inactive,
}

/// What ntfsfix's `check_alternate_boot` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltBoot {
    /// The partition's last sector equals sector 0: "... OK".
    Matches,
    /// It differs: `ntfsfix -n` "BAD" (exit 1), `ntfsfix` "FIXED".
    Differs,
    /// The partition has no sector past the volume's `number_of_sectors`:
    /// "Checking file system overflow... FAILED", exit 1, nothing written.
    Overflow,
}

/// Where the journal and `hiberfil.sys` store their first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfsPlaces {
    /// `$LogFile`'s unnamed `$DATA`.
    pub logfile: Option<DataStream>,
    /// `hiberfil.sys`'s record number and unnamed `$DATA`.
    pub hiberfile: Option<(u64, DataStream)>,
    /// The volume offsets holding `$Volume`'s flags in `$MFT` and in
    /// `$MFTMirr` (2 bytes each, as contiguous runs).
    pub dirty_flag: Vec<(u64, usize)>,
    /// `$VOLUME_INFORMATION.flags` as `$MFT` has them.
    pub volume_flags: u16,
    /// The volume offsets of the mirror copy of record 0's
    /// `$STANDARD_INFORMATION` creation time (8 bytes).
    pub mirror_si_time: Vec<(u64, usize)>,
}

/// An NTFS volume's state as the tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfsState {
    /// The geometry from a usable primary boot sector (`None`: ntfs-3g
    /// stops at the boot sector).
    pub params: Option<NtfsVolumeParams>,
    /// Why the volume does not load past the boot sector (`$MFT`'s and
    /// `$MFTMirr`'s system records, `$Volume`), if it does not: ntfs-3g
    /// refuses it even read-only.
    pub corrupt: Option<String>,
    /// What the model cannot read although ntfs-3g may (`$LogFile` or
    /// `hiberfil.sys` stored in a way it does not follow): no tool outcome
    /// that depends on it is predicted, and the recipes refuse.
    pub unmodelled: Option<String>,
    /// The first system record where `$MFTMirr` differs from `$MFT`.
    pub mirror_mismatch: Option<u64>,
    /// `VOLUME_IS_DIRTY` in `$Volume`.
    pub dirty: bool,
    /// The journal.
    pub log: LogState,
    /// `hiberfil.sys`.
    pub hiber: HiberState,
    /// What ntfsfix's alternate boot sector check finds.
    pub alt_boot: AltBoot,
    /// Where the recipes' structures lie.
    pub places: NtfsPlaces,
}

impl NtfsState {
    /// Reads the state of the volume in `part` (a partition-sized reader).
    /// Fails only on an I/O error; a volume that does not parse is a state
    /// (`params: None` or `corrupt`).
    pub fn read(part: &mut dyn ReadAt) -> Result<NtfsState> {
        let size = part.size();
        let sector0 = part.read_vec(0, BOOT_SECTOR_SIZE.min(size as usize))?;
        let mut state = NtfsState {
            params: None,
            corrupt: None,
            unmodelled: None,
            mirror_mismatch: None,
            dirty: false,
            log: LogState::Clean,
            hiber: HiberState::Absent,
            alt_boot: AltBoot::Matches,
            places: NtfsPlaces {
                logfile: None,
                hiberfile: None,
                dirty_flag: Vec::new(),
                volume_flags: 0,
                mirror_si_time: Vec::new(),
            },
        };
        let Ok(Ok(params)) = NtfsBootSector::parse(&sector0).map(|b| b.check()) else {
            return Ok(state);
        };
        state.params = Some(params);
        state.alt_boot = alt_boot(part, &sector0, params.sector_size)?;
        match state.read_volume(part, params) {
            Ok(()) => {}
            Err(Error::Guest(m)) => state.corrupt = Some(m),
            Err(Error::OutOfRange { .. }) => {
                state.corrupt = Some("a system structure lies past the partition's end".into())
            }
            Err(e) => return Err(e),
        }
        Ok(state)
    }

    fn read_volume(&mut self, part: &mut dyn ReadAt, params: NtfsVolumeParams) -> Result<()> {
        let hiber = find_in_root(part, HIBERFILE_NAME);
        let mut mft = MftReader::open(part, params)?;
        // ntfs_mftmirr_load: the first records of $MFT and of $MFTMirr must
        // be valid records and equal over bytes_in_use.
        let n = mft.mirror_size().min(FILE_FIRST_USER);
        let mut mirror_mismatch = None;
        let mut records = Vec::new();
        for i in 0..n {
            let m = mft.record(i)?;
            let mm = mft.mirror_record(i)?;
            let used = m.bytes_in_use();
            // volume.c compares every record below the mirror's size,
            // in use or not.
            let differs = used <= 0x30
                || used > m.bytes().len()
                || m.bytes()[..used] != mm.bytes()[..used.min(mm.bytes().len())];
            if differs && mirror_mismatch.is_none() {
                mirror_mismatch = Some(i);
            }
            records.push((m, mm));
        }
        self.mirror_mismatch = mirror_mismatch;
        if let Some((m0, mm0)) = records.first() {
            if let Some(si) = m0.find(AT_STANDARD_INFORMATION)? {
                let (vofs, vlen) = si.resident.unwrap_or((0, 0));
                if vlen >= 8 {
                    self.places.mirror_si_time = mm0.volume_ranges(vofs, 8)?;
                }
            }
        }
        let (vol, vol_mirror) = records.get(FILE_VOLUME as usize).cloned().map_or_else(
            || mft.record(FILE_VOLUME).map(|r| (r, None)),
            |(a, b)| Ok((a, Some(b))),
        )?;
        let (flags_at, flags) = volume_flags(&vol)?;
        self.dirty = flags & VOLUME_IS_DIRTY != 0;
        self.places.volume_flags = flags;
        self.places.dirty_flag = vol.volume_ranges(flags_at, 2)?;
        if let Some(mirror) = vol_mirror {
            self.places
                .dirty_flag
                .extend(mirror.volume_ranges(flags_at, 2)?);
        }
        // The journal and hiberfil.sys: what the model cannot follow here
        // is not what ntfs-3g cannot read.
        if let Err(e) = self.read_journal(&mut mft) {
            self.unmodelled = Some(format!("$LogFile: {}", unmodelled(e)?));
        }
        match hiber {
            Ok(Some(n)) => {
                if let Err(e) = self.read_hiberfile(&mut mft, n) {
                    self.unmodelled = Some(format!("hiberfil.sys: {}", unmodelled(e)?));
                }
            }
            Ok(None) => {}
            Err(why) => self.unmodelled = Some(format!("the root directory: {why}")),
        }
        Ok(())
    }

    fn read_journal(&mut self, mft: &mut MftReader) -> Result<()> {
        let log_rec = mft.record(FILE_LOGFILE)?;
        let log = mft.data_runs(&log_rec)?;
        self.log = LogState::read(log.size, &mut |pos, len| read_stream(mft, &log, pos, len))?;
        self.places.logfile = Some(log);
        Ok(())
    }

    fn read_hiberfile(&mut self, mft: &mut MftReader, n: u64) -> Result<()> {
        let rec = mft.record(n)?;
        let data = mft.data_runs(&rec)?;
        self.hiber = if data.size < HIBERFILE_HEADER_SIZE {
            HiberState::Short
        } else {
            let head = read_stream(mft, &data, 0, 4)?;
            if head == b"hibr" || head == b"HIBR" {
                HiberState::Hibernated
            } else {
                HiberState::Inactive
            }
        };
        self.places.hiberfile = Some((n, data));
        Ok(())
    }
}

/// The reason of an error the model cannot see past (`Err`: an I/O error,
/// passed on).
fn unmodelled(e: Error) -> Result<String> {
    match e {
        Error::Guest(m) | Error::Refused(m) => Ok(m),
        Error::OutOfRange { .. } => Ok("its data lies past the partition's end".into()),
        e => Err(e),
    }
}

/// ntfsfix's `check_alternate_boot`: the device's last sector against
/// sector 0, when the device has sectors past `number_of_sectors`.
fn alt_boot(part: &mut dyn ReadAt, sector0: &[u8], sector_size: u32) -> Result<AltBoot> {
    let ss = u64::from(sector_size);
    let device = part.size() / ss;
    let got = u64::from_le_bytes(sector0[0x28..0x30].try_into().unwrap_or([0xFF; 8]));
    if device <= got || device == 0 {
        return Ok(AltBoot::Overflow);
    }
    let first = part.read_vec(0, ss as usize)?;
    let last = part.read_vec((device - 1) * ss, ss as usize)?;
    Ok(if first == last {
        AltBoot::Matches
    } else {
        AltBoot::Differs
    })
}

/// The offset of `$VOLUME_INFORMATION`'s flags in `$Volume` and their value.
fn volume_flags(vol: &MftRecord) -> Result<(usize, u16)> {
    let a = vol
        .find(AT_VOLUME_INFORMATION)?
        .ok_or_else(|| Error::Guest("$Volume has no $VOLUME_INFORMATION".into()))?;
    let (vofs, vlen) = a
        .resident
        .ok_or_else(|| Error::Guest("$VOLUME_INFORMATION is not resident".into()))?;
    if vlen < VOLUME_INFORMATION_FLAGS + 2 {
        return Err(Error::Guest("$VOLUME_INFORMATION is too short".into()));
    }
    let at = vofs + VOLUME_INFORMATION_FLAGS;
    let b = vol.bytes();
    Ok((at, u16::from_le_bytes([b[at], b[at + 1]])))
}

/// Reads `len` bytes at `pos` of a stream (zeros past `initialized` and
/// past the end, as ntfs-3g reads them).
fn read_stream(mft: &mut MftReader, s: &DataStream, pos: u64, len: usize) -> Result<Vec<u8>> {
    if s.resident {
        return Err(Error::Refused(format!(
            "MFT record {}: resident $DATA is not supported here",
            s.record
        )));
    }
    if !s.plain {
        return Err(Error::Refused(format!(
            "MFT record {}: compressed, encrypted or sparse $DATA is not supported here",
            s.record
        )));
    }
    let mut out = vec![0u8; len];
    let end = (pos + len as u64).min(s.initialized).min(s.size);
    let cs = mft.cluster_size();
    let mut at = pos;
    while at < end {
        let n = (cs - at % cs).min(end - at);
        if let Some(off) = mft.stream_offset(&s.runs, at) {
            let b = mft.part().read_vec(off, n as usize)?;
            let i = (at - pos) as usize;
            out[i..i + n as usize].copy_from_slice(&b);
        }
        at += n;
    }
    Ok(out)
}

/// The record number of `name` in the root directory, compared exactly:
/// ntfs-3g looks `hiberfil.sys` up before it applies `ignore_case`, on a
/// volume it marks case-sensitive (through the pure-Rust reader's index
/// walk, under a read budget). `Err`: the index does not read.
fn find_in_root(part: &mut dyn ReadAt, name: &str) -> std::result::Result<Option<u64>, String> {
    let mut fs = Cursor::new(super::volume::Budget::new(BlockCache::new(
        super::volume::crate_view(part),
    )));
    let s = |e: ::ntfs::NtfsError| e.to_string();
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ntfs = ::ntfs::Ntfs::new(&mut fs).map_err(s)?;
        let root = ntfs.file(&mut fs, FILE_ROOT).map_err(s)?;
        let index = root.directory_index(&mut fs).map_err(s)?;
        let mut entries = index.entries();
        for _ in 0..1_000_000 {
            let Some(entry) = entries.next(&mut fs) else {
                return Ok(None);
            };
            let entry = entry.map_err(s)?;
            let Some(Ok(key)) = entry.key() else { continue };
            if key.name().to_string_lossy() == name {
                return Ok(Some(entry.file_reference().file_record_number()));
            }
        }
        Err("the root directory has too many entries".to_string())
    }));
    found.unwrap_or_else(|_| Err("the NTFS reader panicked on the root directory".into()))
}

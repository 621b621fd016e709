//! MFT records as they lie on disk: the record header, the update-sequence
//! fixups, attributes, data runs and attribute lists, read through the volume
//! (boot sector → `$MFT`'s own data runs → record N), never by scanning.
//!
//! Every offset, length and count comes from the image and is bounds-checked
//! before use; a structure that does not parse is an [`Error::Guest`] naming
//! the record. Layouts follow ntfs-3g's `include/ntfs-3g/layout.h`
//! (`MFT_RECORD`, `ATTR_RECORD`, `ATTR_LIST_ENTRY`, `VOLUME_INFORMATION`) and
//! `libntfs-3g/mst.c` (`ntfs_mst_post_read_fixup`), read, not copied.

use super::boot::NtfsVolumeParams;
use crate::error::{Error, Result};
use crate::image::ReadAt;

/// layout.h `NTFS_BLOCK_SIZE`: the update-sequence stride, whatever the
/// sector size.
pub const NTFS_BLOCK_SIZE: usize = 512;
/// layout.h `magic_FILE`.
pub const MAGIC_FILE: &[u8; 4] = b"FILE";
/// layout.h `magic_BAAD`: a record whose multi-sector transfer failed.
pub const MAGIC_BAAD: &[u8; 4] = b"BAAD";
/// layout.h `MFT_RECORD.usa_ofs`.
const REC_USA_OFS: usize = 0x04;
/// layout.h `MFT_RECORD.usa_count`.
const REC_USA_COUNT: usize = 0x06;
/// layout.h `MFT_RECORD.attrs_offset`.
const REC_ATTRS_OFFSET: usize = 0x14;
/// layout.h `MFT_RECORD.flags`.
const REC_FLAGS: usize = 0x16;
/// layout.h `MFT_RECORD.bytes_in_use`.
const REC_BYTES_IN_USE: usize = 0x18;
/// layout.h `MFT_RECORD_IN_USE`.
pub const MFT_RECORD_IN_USE: u16 = 0x0001;

/// layout.h `FILE_MFT`.
pub const FILE_MFT: u64 = 0;
/// layout.h `FILE_LogFile`.
pub const FILE_LOGFILE: u64 = 2;
/// layout.h `FILE_Volume`.
pub const FILE_VOLUME: u64 = 3;
/// layout.h `FILE_root`.
pub const FILE_ROOT: u64 = 5;
/// layout.h `FILE_first_user`: records below it are system files.
pub const FILE_FIRST_USER: u64 = 16;

/// layout.h `AT_STANDARD_INFORMATION`.
pub const AT_STANDARD_INFORMATION: u32 = 0x10;
/// layout.h `AT_ATTRIBUTE_LIST`.
pub const AT_ATTRIBUTE_LIST: u32 = 0x20;
/// layout.h `AT_VOLUME_INFORMATION`.
pub const AT_VOLUME_INFORMATION: u32 = 0x70;
/// layout.h `AT_DATA`.
pub const AT_DATA: u32 = 0x80;
/// layout.h `AT_END`.
pub const AT_END: u32 = 0xFFFF_FFFF;
/// layout.h `VOLUME_INFORMATION.flags`, relative to the value.
pub const VOLUME_INFORMATION_FLAGS: usize = 0x0A;
/// layout.h `VOLUME_IS_DIRTY`.
pub const VOLUME_IS_DIRTY: u16 = 0x0001;
/// layout.h `ATTR_IS_COMPRESSED | ATTR_IS_ENCRYPTED | ATTR_IS_SPARSE`
/// (`ATTR_RECORD.flags`).
const ATTR_COMPRESSED_ENCRYPTED_SPARSE: u16 = 0x0001 | 0x4000 | 0x8000;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// One extent of a non-resident attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster of the run.
    pub vcn: u64,
    /// Clusters in the run.
    pub length: u64,
    /// First logical cluster, `None` for a sparse run.
    pub lcn: Option<u64>,
}

/// The volume offset of byte `pos` of a stream stored in `runs` with
/// `cluster_size`-byte clusters; `None` where the stream has no stored
/// cluster (past its runs, or sparse) or the offset overflows.
pub fn run_offset(runs: &[Run], cluster_size: u64, pos: u64) -> Option<u64> {
    let vcn = pos / cluster_size;
    let run = runs
        .iter()
        .find(|r| vcn >= r.vcn && vcn - r.vcn < r.length)?;
    run.lcn?
        .checked_add(vcn - run.vcn)?
        .checked_mul(cluster_size)?
        .checked_add(pos % cluster_size)
}

/// An attribute header inside a record (offsets relative to the record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute type (`AT_DATA`, ...).
    pub kind: u32,
    /// Offset of the attribute header in the record.
    pub offset: usize,
    /// Length of the attribute record.
    pub length: usize,
    /// Whether the name is empty.
    pub unnamed: bool,
    /// `ATTR_RECORD.flags`.
    pub flags: u16,
    /// Resident value (offset in the record, length), or `None` when
    /// non-resident.
    pub resident: Option<(usize, usize)>,
}

/// One MFT record, its on-disk bytes and the fixed-up view.
#[derive(Debug, Clone)]
pub struct MftRecord {
    /// Record number.
    pub number: u64,
    /// Where each 512-byte block of the record lies on the volume (records
    /// may straddle non-contiguous clusters of `$MFT`).
    blocks: Vec<u64>,
    /// The record after the update-sequence fixups.
    fixed: Vec<u8>,
}

impl MftRecord {
    /// Parses `raw` (one record of `raw.len()` bytes, whose blocks lie at
    /// `blocks` on the volume): checks the magic and undoes the fixups.
    pub fn parse(number: u64, raw: Vec<u8>, blocks: Vec<u64>) -> Result<MftRecord> {
        let bad = |why: &str| Error::Guest(format!("MFT record {number}: {why}"));
        match raw.get(..4) {
            Some(m) if m == MAGIC_FILE => {}
            Some(m) if m == MAGIC_BAAD => {
                return Err(bad("marked BAAD (incomplete multi-sector transfer)"))
            }
            Some(m) => {
                return Err(bad(&format!(
                    "no FILE magic (0x{:08X})",
                    u32::from_le_bytes(m.try_into().unwrap_or([0; 4]))
                )))
            }
            None => return Err(bad("shorter than its header")),
        }
        let usa_ofs = le16(&raw, REC_USA_OFS).ok_or_else(|| bad("header cut short"))? as usize;
        let usa_count = le16(&raw, REC_USA_COUNT).ok_or_else(|| bad("header cut short"))? as usize;
        let blocks_in_record = raw.len() / NTFS_BLOCK_SIZE;
        if usa_count != blocks_in_record + 1
            || usa_ofs % 2 != 0
            || usa_ofs + 2 * usa_count > NTFS_BLOCK_SIZE - 2
        {
            return Err(bad("update sequence array out of bounds"));
        }
        let mut fixed = raw;
        let usn = [fixed[usa_ofs], fixed[usa_ofs + 1]];
        for i in 1..usa_count {
            let tail = i * NTFS_BLOCK_SIZE - 2;
            if fixed[tail..tail + 2] != usn {
                return Err(bad(
                    "update sequence mismatch (incomplete multi-sector transfer)",
                ));
            }
            let saved = usa_ofs + 2 * i;
            fixed.copy_within(saved..saved + 2, tail);
        }
        Ok(MftRecord {
            number,
            blocks,
            fixed,
        })
    }

    /// The record after the fixups.
    pub fn bytes(&self) -> &[u8] {
        &self.fixed
    }

    /// `MFT_RECORD.flags`.
    pub fn flags(&self) -> u16 {
        le16(&self.fixed, REC_FLAGS).unwrap_or(0)
    }

    /// `bytes_in_use`, what ntfs-3g compares between `$MFT` and `$MFTMirr`.
    pub fn bytes_in_use(&self) -> usize {
        le32(&self.fixed, REC_BYTES_IN_USE).unwrap_or(0) as usize
    }

    /// Where byte `at` of the fixed-up record is stored on the volume: the
    /// last two bytes of each 512-byte block live in the update sequence
    /// array.
    pub fn volume_offset(&self, at: usize) -> Result<u64> {
        if at >= self.fixed.len() {
            return Err(Error::Guest(format!(
                "MFT record {}: byte {at} is outside the record",
                self.number
            )));
        }
        let block = at / NTFS_BLOCK_SIZE;
        let within = at % NTFS_BLOCK_SIZE;
        let stored = if within >= NTFS_BLOCK_SIZE - 2 {
            let usa_ofs = le16(&self.fixed, REC_USA_OFS).unwrap_or(0) as usize;
            usa_ofs + 2 * (block + 1) + (within - (NTFS_BLOCK_SIZE - 2))
        } else {
            at
        };
        let b = stored / NTFS_BLOCK_SIZE;
        Ok(self.blocks[b] + (stored % NTFS_BLOCK_SIZE) as u64)
    }

    /// The volume ranges holding fixed-up bytes `at..at + len`, one per byte
    /// run that is contiguous on disk.
    pub fn volume_ranges(&self, at: usize, len: usize) -> Result<Vec<(u64, usize)>> {
        let mut out: Vec<(u64, usize)> = Vec::new();
        for i in at..at + len {
            let o = self.volume_offset(i)?;
            match out.last_mut() {
                Some((start, n)) if *start + *n as u64 == o => *n += 1,
                _ => out.push((o, 1)),
            }
        }
        Ok(out)
    }

    /// The attributes, in record order; stops at `AT_END`.
    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        let r = &self.fixed;
        let bad = |why: String| Error::Guest(format!("MFT record {}: {why}", self.number));
        let limit = self.bytes_in_use().min(r.len());
        let mut at = le16(r, REC_ATTRS_OFFSET).unwrap_or(0) as usize;
        let mut out = Vec::new();
        // A record of 64 KiB holds at most 4096 attribute headers.
        for _ in 0..4096 {
            let kind = le32(r, at).ok_or_else(|| bad(format!("attribute at {at} cut short")))?;
            if kind == AT_END {
                return Ok(out);
            }
            let length = le32(r, at + 4).unwrap_or(0) as usize;
            if length < 0x18 || at + length > limit {
                return Err(bad(format!("attribute at {at} has a bad length {length}")));
            }
            let non_resident = r[at + 8] != 0;
            let name_len = r[at + 9];
            let flags = le16(r, at + 0x0C).unwrap_or(0);
            let resident = if non_resident {
                if length < 0x40 {
                    return Err(bad(format!("non-resident attribute at {at} is too short")));
                }
                None
            } else {
                let vlen = le32(r, at + 0x10).unwrap_or(0) as usize;
                let vofs = le16(r, at + 0x14).unwrap_or(0) as usize;
                if vofs + vlen > length {
                    return Err(bad(format!("attribute at {at}: value out of bounds")));
                }
                Some((at + vofs, vlen))
            };
            out.push(Attribute {
                kind,
                offset: at,
                length,
                unnamed: name_len == 0,
                flags,
                resident,
            });
            at += length;
        }
        Err(bad("too many attributes".into()))
    }

    /// The first unnamed attribute of `kind`.
    pub fn find(&self, kind: u32) -> Result<Option<Attribute>> {
        Ok(self
            .attributes()?
            .into_iter()
            .find(|a| a.kind == kind && a.unnamed))
    }

    /// Decodes the mapping pairs of the non-resident attribute `a`.
    pub fn runs(&self, a: &Attribute) -> Result<Vec<Run>> {
        let r = &self.fixed;
        let bad = |why: &str| {
            Error::Guest(format!(
                "MFT record {}: attribute 0x{:X} data runs: {why}",
                self.number, a.kind
            ))
        };
        if a.resident.is_some() {
            return Err(bad("the attribute is resident"));
        }
        let end = a.offset + a.length;
        let mut at = a.offset + le16(r, a.offset + 0x20).unwrap_or(0) as usize;
        let mut vcn = le64(r, a.offset + 0x10).unwrap_or(0);
        let mut lcn: i64 = 0;
        let mut runs = Vec::new();
        while at < end {
            let h = r[at];
            if h == 0 {
                return Ok(runs);
            }
            let (nl, ol) = ((h & 0x0F) as usize, (h >> 4) as usize);
            if nl == 0 || nl > 8 || ol > 8 || at + 1 + nl + ol > end {
                return Err(bad("a mapping pair is malformed"));
            }
            let signed = |bytes: &[u8]| -> i64 {
                let mut v: i64 = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                    -1
                } else {
                    0
                };
                for &b in bytes.iter().rev() {
                    v = (v << 8) | i64::from(b);
                }
                v
            };
            let length = signed(&r[at + 1..at + 1 + nl]);
            if length <= 0 {
                return Err(bad("a run has no clusters"));
            }
            let run_lcn = if ol == 0 {
                None
            } else {
                lcn = lcn
                    .checked_add(signed(&r[at + 1 + nl..at + 1 + nl + ol]))
                    .filter(|l| *l >= 0)
                    .ok_or_else(|| bad("a run starts before the volume"))?;
                Some(lcn as u64)
            };
            runs.push(Run {
                vcn,
                length: length as u64,
                lcn: run_lcn,
            });
            vcn = vcn
                .checked_add(length as u64)
                .ok_or_else(|| bad("too many clusters"))?;
            at += 1 + nl + ol;
            if runs.len() > 1 << 20 {
                return Err(bad("too many runs"));
            }
        }
        Err(bad("no terminator"))
    }

    /// `(data_size, initialized_size)` of the non-resident attribute `a`.
    pub fn sizes(&self, a: &Attribute) -> (u64, u64) {
        match a.resident {
            Some((_, len)) => (len as u64, len as u64),
            None => (
                le64(&self.fixed, a.offset + 0x30).unwrap_or(0),
                le64(&self.fixed, a.offset + 0x38).unwrap_or(0),
            ),
        }
    }

    /// Whether `a` is compressed, encrypted or sparse (its bytes are not
    /// stored plainly in its runs).
    pub fn is_plain(&self, a: &Attribute) -> bool {
        a.flags & ATTR_COMPRESSED_ENCRYPTED_SPARSE == 0
    }
}

/// An NTFS volume opened for reading records: the geometry from the boot
/// sector and `$MFT`'s own data runs.
pub struct MftReader<'a> {
    part: &'a mut dyn ReadAt,
    /// The boot sector's geometry.
    pub params: NtfsVolumeParams,
    mft_runs: Vec<Run>,
}

impl<'a> MftReader<'a> {
    /// Opens the MFT of the volume `part` described by `params`.
    pub fn open(part: &'a mut dyn ReadAt, params: NtfsVolumeParams) -> Result<MftReader<'a>> {
        let rs = params.mft_record_size as usize;
        if !(NTFS_BLOCK_SIZE..=65536).contains(&rs) {
            return Err(Error::Guest(format!(
                "MFT record size {rs} is not supported"
            )));
        }
        let cs = u64::from(params.cluster_size);
        // Record 0 ($MFT) lies at the start of the first run, mft_lcn.
        let mft_start = (params.mft_lcn as u64)
            .checked_mul(cs)
            .ok_or_else(|| Error::Guest("mft_lcn is out of range".into()))?;
        let blocks = (0..rs / NTFS_BLOCK_SIZE)
            .map(|i| mft_start + (i * NTFS_BLOCK_SIZE) as u64)
            .collect();
        let raw = part.read_vec(mft_start, rs)?;
        let rec0 = MftRecord::parse(FILE_MFT, raw, blocks)?;
        let data = rec0
            .find(AT_DATA)?
            .ok_or_else(|| Error::Guest("$MFT has no $DATA attribute".into()))?;
        let mft_runs = rec0.runs(&data)?;
        // A very fragmented $MFT keeps further runs in extension records
        // listed in an $ATTRIBUTE_LIST; the runs in record 0 map the first
        // records, and a record past them is refused by `record`.
        Ok(MftReader {
            part,
            params,
            mft_runs,
        })
    }

    /// The partition reader.
    pub fn part(&mut self) -> &mut dyn ReadAt {
        self.part
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        u64::from(self.params.cluster_size)
    }

    /// The volume offset of byte `pos` of a stream with `runs`.
    pub fn stream_offset(&self, runs: &[Run], pos: u64) -> Option<u64> {
        run_offset(runs, self.cluster_size(), pos)
    }

    /// Reads MFT record `n` through `$MFT`'s data runs.
    pub fn record(&mut self, n: u64) -> Result<MftRecord> {
        let rs = self.params.mft_record_size as usize;
        let mut blocks = Vec::with_capacity(rs / NTFS_BLOCK_SIZE);
        let mut raw = Vec::with_capacity(rs);
        for i in 0..rs / NTFS_BLOCK_SIZE {
            let pos = n
                .checked_mul(rs as u64)
                .and_then(|p| p.checked_add((i * NTFS_BLOCK_SIZE) as u64))
                .ok_or_else(|| Error::Guest(format!("MFT record {n} is out of range")))?;
            let at = self.stream_offset(&self.mft_runs, pos).ok_or_else(|| {
                Error::Guest(format!("MFT record {n} is not in $MFT's mapped runs"))
            })?;
            raw.extend(self.part.read_vec(at, NTFS_BLOCK_SIZE)?);
            blocks.push(at);
        }
        MftRecord::parse(n, raw, blocks)
    }

    /// Reads mirror record `n` (`n` < the mirror's size) from `$MFTMirr`'s
    /// first cluster, where ntfs-3g compares it with `$MFT`.
    pub fn mirror_record(&mut self, n: u64) -> Result<MftRecord> {
        let rs = self.params.mft_record_size as u64;
        let start = (self.params.mftmirr_lcn as u64)
            .checked_mul(self.cluster_size())
            .and_then(|s| s.checked_add(n * rs))
            .ok_or_else(|| Error::Guest("mftmirr_lcn is out of range".into()))?;
        let blocks = (0..rs / NTFS_BLOCK_SIZE as u64)
            .map(|i| start + i * NTFS_BLOCK_SIZE as u64)
            .collect();
        let raw = self.part.read_vec(start, rs as usize)?;
        MftRecord::parse(n, raw, blocks)
    }

    /// bootsect.c's `mftmirr_size`: the records `$MFTMirr` holds.
    pub fn mirror_size(&self) -> u64 {
        let (cs, rs) = (
            u64::from(self.params.cluster_size),
            u64::from(self.params.mft_record_size),
        );
        if cs <= 4 * rs {
            4
        } else {
            cs / rs
        }
    }

    /// The runs of the unnamed `$DATA` of record `rec`, with its sizes,
    /// following an `$ATTRIBUTE_LIST` to the extension record holding the
    /// first extent when the base record has none.
    pub fn data_runs(&mut self, rec: &MftRecord) -> Result<DataStream> {
        if let Some(a) = rec.find(AT_DATA)? {
            return self.stream_of(rec, &a);
        }
        let Some(list) = rec.find(AT_ATTRIBUTE_LIST)? else {
            return Err(Error::Guest(format!(
                "MFT record {} has no unnamed $DATA",
                rec.number
            )));
        };
        let Some((vofs, vlen)) = list.resident else {
            return Err(Error::Refused(format!(
                "MFT record {}: a non-resident attribute list is not supported",
                rec.number
            )));
        };
        let v = &rec.bytes()[vofs..vofs + vlen];
        // layout.h ATTR_LIST_ENTRY: type @0, length @4, name_length @6,
        // lowest_vcn @8, mft_reference @0x10.
        let mut at = 0;
        while at + 0x1A <= v.len() {
            let kind = le32(v, at).unwrap_or(0);
            let len = le16(v, at + 4).unwrap_or(0) as usize;
            if len < 0x1A {
                break;
            }
            let name_len = v[at + 6];
            let lowest = le64(v, at + 8).unwrap_or(u64::MAX);
            let mref = le64(v, at + 0x10).unwrap_or(0) & 0x0000_FFFF_FFFF_FFFF;
            if kind == AT_DATA && name_len == 0 && lowest == 0 && mref != rec.number {
                let ext = self.record(mref)?;
                let a = ext.find(AT_DATA)?.ok_or_else(|| {
                    Error::Guest(format!("MFT record {mref} lacks the listed $DATA"))
                })?;
                return self.stream_of(&ext, &a);
            }
            at += len;
        }
        Err(Error::Guest(format!(
            "MFT record {}: no unnamed $DATA in its attribute list",
            rec.number
        )))
    }

    fn stream_of(&self, rec: &MftRecord, a: &Attribute) -> Result<DataStream> {
        let (size, initialized) = rec.sizes(a);
        Ok(DataStream {
            record: rec.number,
            resident: a.resident.is_some(),
            plain: rec.is_plain(a),
            size,
            initialized,
            runs: if a.resident.is_some() {
                Vec::new()
            } else {
                rec.runs(a)?
            },
        })
    }
}

/// The unnamed `$DATA` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataStream {
    /// The record holding the attribute.
    pub record: u64,
    /// Whether the data is stored inside the record.
    pub resident: bool,
    /// Neither compressed, encrypted nor sparse.
    pub plain: bool,
    /// `data_size`.
    pub size: u64,
    /// `initialized_size`: bytes past it read as zeros.
    pub initialized: u64,
    /// The runs (first extent), empty when resident.
    pub runs: Vec<Run>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 KiB record: header with the USA at 0x30 (usn 0x0007), one
    /// resident $VOLUME_INFORMATION whose flags straddle nothing, and the end
    /// marker; blocks stored at 0x1000 and 0x5000.
    fn record() -> Vec<u8> {
        let mut r = vec![0u8; 1024];
        r[..4].copy_from_slice(b"FILE");
        r[4..6].copy_from_slice(&0x30u16.to_le_bytes()); // usa_ofs
        r[6..8].copy_from_slice(&3u16.to_le_bytes()); // usa_count: 2 blocks + 1
        r[0x14..0x16].copy_from_slice(&0x38u16.to_le_bytes()); // attrs_offset
        r[0x16..0x18].copy_from_slice(&1u16.to_le_bytes()); // flags: in use
        r[0x18..0x1C].copy_from_slice(&0x100u32.to_le_bytes()); // bytes_in_use
                                                                // Attribute 0x70 at 0x38: length 0x28, resident, value 12 bytes at +0x18.
        r[0x38..0x3C].copy_from_slice(&0x70u32.to_le_bytes());
        r[0x3C..0x40].copy_from_slice(&0x28u32.to_le_bytes());
        r[0x48..0x4C].copy_from_slice(&12u32.to_le_bytes());
        r[0x4C..0x4E].copy_from_slice(&0x18u16.to_le_bytes());
        r[0x60..0x64].copy_from_slice(&AT_END.to_le_bytes());
        // Fixups: save the tails into the USA, stamp usn 7.
        r[0x30..0x32].copy_from_slice(&7u16.to_le_bytes());
        r[510..512].copy_from_slice(&[0xAB, 0xCD]);
        r[0x32..0x34].copy_from_slice(&[0xAB, 0xCD]);
        r[510..512].copy_from_slice(&7u16.to_le_bytes());
        r[1022..1024].copy_from_slice(&7u16.to_le_bytes());
        r
    }

    #[test]
    fn fixups_are_undone_and_mapped_back() {
        let rec = MftRecord::parse(3, record(), vec![0x1000, 0x5000]).unwrap();
        assert_eq!(&rec.bytes()[510..512], &[0xAB, 0xCD]);
        // Byte 510 of the fixed view is stored in the USA slot at 0x32.
        assert_eq!(rec.volume_offset(510).unwrap(), 0x1000 + 0x32);
        assert_eq!(rec.volume_offset(0x40).unwrap(), 0x1040);
        assert_eq!(rec.volume_offset(600).unwrap(), 0x5000 + 88);
        let a = rec.find(AT_VOLUME_INFORMATION).unwrap().unwrap();
        assert_eq!(a.resident, Some((0x50, 12)));
    }

    #[test]
    fn a_torn_record_is_refused() {
        let mut r = record();
        r[1022] = 9;
        let e = MftRecord::parse(3, r, vec![0, 512]).unwrap_err();
        assert!(e.to_string().contains("update sequence mismatch"), "{e}");
        let mut r = record();
        r[..4].copy_from_slice(b"BAAD");
        assert!(MftRecord::parse(3, r, vec![0, 512]).is_err());
    }

    #[test]
    fn attribute_lengths_are_bounded() {
        let mut r = record();
        r[0x3C..0x40].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let rec = MftRecord::parse(3, r, vec![0, 512]).unwrap();
        assert!(rec.attributes().is_err());
    }

    #[test]
    fn runs_decode_signed_deltas_and_sparse_runs() {
        let mut r = record();
        // A non-resident attribute 0x80 at 0x38, length 0x50, runs at +0x40:
        // 0x21 len 0x10 lcn +0x100; 0x01 len 4 sparse; 0x11 len 2 lcn -0x10.
        r[0x38..0x3C].copy_from_slice(&0x80u32.to_le_bytes());
        r[0x3C..0x40].copy_from_slice(&0x50u32.to_le_bytes());
        r[0x40] = 1;
        r[0x48..0x50].fill(0); // lowest_vcn 0
        r[0x58..0x5A].copy_from_slice(&0x40u16.to_le_bytes());
        r[0x78..0x80].copy_from_slice(&[0x21, 0x10, 0x00, 0x01, 0x01, 0x04, 0x11, 0x02]);
        r[0x80..0x82].copy_from_slice(&[0xF0, 0x00]);
        r[0x88..0x8C].copy_from_slice(&AT_END.to_le_bytes());
        let rec = MftRecord::parse(0, r, vec![0, 512]).unwrap();
        let a = rec.find(AT_DATA).unwrap().unwrap();
        let runs = rec.runs(&a).unwrap();
        assert_eq!(
            runs,
            vec![
                Run {
                    vcn: 0,
                    length: 0x10,
                    lcn: Some(0x100)
                },
                Run {
                    vcn: 0x10,
                    length: 4,
                    lcn: None
                },
                Run {
                    vcn: 0x14,
                    length: 2,
                    lcn: Some(0xF0)
                },
            ]
        );
    }
}

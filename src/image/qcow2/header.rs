//! The qcow2 header and its extensions, parsed and validated.
//!
//! Field offsets and rules follow `docs/interop/qcow2.txt` in QEMU ("Header",
//! "Header extensions", "Feature name table"). Everything here is checked
//! against the file size before any table is read or allocated.

use crate::error::{Error, Result};
use std::path::Path;

/// `QFI\xfb`, the qcow2 magic (spec: "Header", bytes 0-3).
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Length of a version 2 header (spec: "For version 2, the header is exactly 72 bytes").
pub const V2_HEADER_LEN: u32 = 72;
/// Minimum length of a version 3 header (spec: "at least 104 bytes").
pub const V3_MIN_HEADER_LEN: u32 = 104;
/// Smallest cluster size QEMU supports, as cluster_bits (spec: "Must not be less than 9").
pub const MIN_CLUSTER_BITS: u32 = 9;
/// Largest cluster size QEMU supports, as cluster_bits (spec: "implementation limit of 2 MB").
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Smallest cluster size with extended L2 entries (spec: "cluster_bits must be at least 14").
pub const MIN_EXTENDED_L2_CLUSTER_BITS: u32 = 14;
/// QEMU's limit on the active L1 table size in bytes (spec: "32 MB as the maximum L1 table size").
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Longest backing file name (spec: "Must not be longer than 1023 bytes").
pub const MAX_BACKING_NAME_LEN: u32 = 1023;
/// Largest refcount_order (spec: "This value may not exceed 6").
pub const MAX_REFCOUNT_ORDER: u32 = 6;

/// Incompatible feature bit 0: refcounts may be inconsistent (spec: "Dirty bit").
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: "Corrupt bit".
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: "External data file bit".
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit 3: "Compression type bit".
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: "Extended L2 Entries".
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
/// Every incompatible bit qfault understands.
pub const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/// Header extension type: end of the extension area.
pub const EXT_END: u32 = 0x0000_0000;
/// Header extension type: backing file format name.
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension type: feature name table.
pub const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
/// Header extension type: bitmaps (skipped: qfault reads guest data only).
pub const EXT_BITMAPS: u32 = 0x2385_2875;
/// Header extension type: full disk encryption header pointer.
pub const EXT_CRYPTO: u32 = 0x0537_be77;
/// Header extension type: external data file name.
pub const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Size of one feature name table entry (spec: "Feature name table", bytes 0-47).
const FEATURE_ENTRY_LEN: usize = 48;

/// How compressed clusters are compressed (spec: header byte 104, `compression_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionType {
    /// Raw deflate (QEMU calls it zlib), type 0.
    Zlib,
    /// Zstandard, type 1.
    Zstd,
}

/// A parsed, validated qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version, 2 or 3.
    pub version: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// Number of entries in the active L1 table.
    pub l1_size: u32,
    /// File offset of the active L1 table.
    pub l1_table_offset: u64,
    /// File offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters occupied by the refcount table.
    pub refcount_table_clusters: u32,
    /// Number of internal snapshots.
    pub nb_snapshots: u32,
    /// File offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits.
    pub incompatible_features: u64,
    /// Compatible feature bits.
    pub compatible_features: u64,
    /// Auto-clear feature bits.
    pub autoclear_features: u64,
    /// log2 of the refcount width in bits.
    pub refcount_order: u32,
    /// Length of the header structure in bytes.
    pub header_length: u32,
    /// Compression type of compressed clusters.
    pub compression_type: CompressionType,
    /// Backing file name exactly as stored, if any.
    pub backing_file: Option<String>,
    /// Backing format from the header extension, if any.
    pub backing_format: Option<String>,
    /// Feature names from the feature name table: (type, bit, name).
    pub feature_names: Vec<(u8, u8, String)>,
}

impl Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Whether L2 entries are 128-bit extended entries with sub-clusters.
    pub fn extended_l2(&self) -> bool {
        self.incompatible_features & INCOMPAT_EXTL2 != 0
    }

    /// Bytes needed from the start of the file to parse the header: at least
    /// the fixed fields, at most one cluster. `prefix` is the file's first
    /// bytes: when all that [`Header::parse`] reads (the header, its
    /// extensions up to the end marker, the backing file name) lies in it,
    /// `prefix` is enough (cut to one cluster), else the whole first
    /// cluster is needed. Images put all of it in the first few hundred
    /// bytes, so a 64 KiB-cluster image is not read whole to open it.
    pub fn needed_len(prefix: &[u8]) -> Option<usize> {
        if prefix.len() < 24 || prefix[0..4] != MAGIC {
            return None;
        }
        let bits = be32(prefix, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&bits) {
            return None;
        }
        let cluster = 1usize << bits;
        Some(if parsed_within(prefix, cluster) {
            cluster.min(prefix.len())
        } else {
            cluster
        })
    }

    /// Parses and validates the header found in `buf` (the file's first
    /// cluster, or all of the file if it is shorter), for a file of
    /// `file_len` bytes.
    pub fn parse(path: &Path, buf: &[u8], file_len: u64) -> Result<Header> {
        let bad = |reason: String| Error::malformed(path, reason);
        if buf.len() < 4 || buf[0..4] != MAGIC {
            return Err(bad("not a qcow2 image (bad magic)".into()));
        }
        if buf.len() < V2_HEADER_LEN as usize {
            return Err(bad(format!(
                "truncated header: the file has {} bytes, a header needs at least {V2_HEADER_LEN}",
                buf.len()
            )));
        }
        let version = be32(buf, 4);
        if version != 2 && version != 3 {
            return Err(Error::unsupported(
                path,
                format!("qcow2 version {version} (only 2 and 3 exist)"),
            ));
        }
        let cluster_bits = be32(buf, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(bad(format!(
                "cluster_bits {cluster_bits} is out of range ({MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS}: 512 B to 2 MiB clusters)"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        let header_length = if version == 2 {
            V2_HEADER_LEN
        } else {
            if buf.len() < V3_MIN_HEADER_LEN as usize {
                return Err(bad(format!(
                    "truncated header: the file has {} bytes, a version 3 header needs at least {V3_MIN_HEADER_LEN}",
                    buf.len()
                )));
            }
            be32(buf, 100)
        };
        if version == 3
            && (header_length < V3_MIN_HEADER_LEN
                || header_length % 8 != 0
                || u64::from(header_length) > cluster_size)
        {
            return Err(bad(format!(
                "header_length {header_length} is invalid (a multiple of 8 from {V3_MIN_HEADER_LEN} up to the cluster size {cluster_size})"
            )));
        }
        if header_length as usize > buf.len() {
            return Err(bad(format!(
                "truncated header: header_length is {header_length} but the file has {} bytes",
                buf.len()
            )));
        }

        let crypt_method = be32(buf, 32);
        if crypt_method != 0 {
            let kind = match crypt_method {
                1 => "AES",
                2 => "LUKS",
                _ => "unknown",
            };
            return Err(Error::unsupported(
                path,
                format!("encrypted image (crypt_method {crypt_method}, {kind}): qfault does not read encrypted images"),
            ));
        }

        let (incompatible, compatible, autoclear, refcount_order) = if version == 3 {
            (be64(buf, 72), be64(buf, 80), be64(buf, 88), be32(buf, 96))
        } else {
            (0, 0, 0, 4)
        };
        if refcount_order > MAX_REFCOUNT_ORDER {
            return Err(bad(format!(
                "refcount_order {refcount_order} exceeds {MAX_REFCOUNT_ORDER}"
            )));
        }

        let mut header = Header {
            version,
            cluster_bits,
            size: be64(buf, 24),
            l1_size: be32(buf, 36),
            l1_table_offset: be64(buf, 40),
            refcount_table_offset: be64(buf, 48),
            refcount_table_clusters: be32(buf, 56),
            nb_snapshots: be32(buf, 60),
            snapshots_offset: be64(buf, 64),
            incompatible_features: incompatible,
            compatible_features: compatible,
            autoclear_features: autoclear,
            refcount_order,
            header_length,
            compression_type: CompressionType::Zlib,
            backing_file: None,
            backing_format: None,
            feature_names: Vec::new(),
        };

        header.parse_extensions(path, buf)?;
        header.check_features(path)?;
        header.compression_type = compression_type(path, buf, &header)?;
        header.backing_file = backing_name(path, buf, cluster_size)?;
        header.check_tables(path, file_len)?;
        Ok(header)
    }

    /// Walks the header extensions that follow the header in the first cluster.
    fn parse_extensions(&mut self, path: &Path, buf: &[u8]) -> Result<()> {
        if self.version == 2 && buf.len() <= V2_HEADER_LEN as usize {
            return Ok(());
        }
        // The extension area ends where the backing file name starts, if it
        // does (as in QEMU): old images put the name right after the header.
        let backing_offset = be64(buf, 8);
        let mut end = buf.len().min(self.cluster_size() as usize);
        if backing_offset != 0 {
            end = end.min(usize::try_from(backing_offset).unwrap_or(usize::MAX));
        }
        let mut pos = self.header_length as usize;
        let mut seen_backing_format = false;
        while pos + 8 <= end {
            let kind = be32(buf, pos);
            let len = be32(buf, pos + 4) as usize;
            if kind == EXT_END {
                return Ok(());
            }
            let data_start = pos + 8;
            let data_end = data_start
                .checked_add(len)
                .filter(|&e| e <= end)
                .ok_or_else(|| {
                    Error::malformed(
                        path,
                        format!(
                            "header extension 0x{kind:08x} at byte {pos} ({len} bytes) runs past the first cluster"
                        ),
                    )
                })?;
            let data = &buf[data_start..data_end];
            match kind {
                EXT_BACKING_FORMAT => {
                    if seen_backing_format {
                        return Err(Error::malformed(
                            path,
                            "two backing format header extensions",
                        ));
                    }
                    seen_backing_format = true;
                    self.backing_format = Some(text(path, data, "backing format")?);
                }
                EXT_FEATURE_TABLE => {
                    for entry in data.chunks_exact(FEATURE_ENTRY_LEN) {
                        let name_bytes = &entry[2..];
                        let name_len = name_bytes
                            .iter()
                            .position(|&b| b == 0)
                            .unwrap_or(name_bytes.len());
                        let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
                        self.feature_names.push((entry[0], entry[1], name));
                    }
                }
                EXT_CRYPTO => {
                    return Err(Error::unsupported(
                        path,
                        "encrypted image (full disk encryption header present)",
                    ));
                }
                // Bitmaps, the external data file name (refused through its
                // feature bit) and unknown extensions carry nothing a reader
                // of guest data needs.
                _ => {}
            }
            pos = data_start + len.div_ceil(8) * 8;
        }
        Ok(())
    }

    /// Refuses feature bits that change how data must be read and that qfault
    /// does not implement.
    fn check_features(&self, path: &Path) -> Result<()> {
        let incompat = self.incompatible_features;
        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err(Error::unsupported(
                path,
                "the corrupt bit is set (QEMU found inconsistent metadata; run `qemu-img check -r all` on a copy)",
            ));
        }
        if incompat & INCOMPAT_DATA_FILE != 0 {
            return Err(Error::unsupported(
                path,
                "the image stores its data in an external data file (incompatible feature bit 2)",
            ));
        }
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            let names: Vec<String> = (0..64u8)
                .filter(|b| unknown & (1u64 << b) != 0)
                .map(|b| {
                    self.feature_names
                        .iter()
                        .find(|(t, bit, _)| *t == 0 && *bit == b)
                        .map_or_else(|| format!("bit {b}"), |(_, _, n)| format!("bit {b} ({n})"))
                })
                .collect();
            return Err(Error::unsupported(
                path,
                format!("unknown incompatible feature {}", names.join(", ")),
            ));
        }
        if self.extended_l2() && self.cluster_bits < MIN_EXTENDED_L2_CLUSTER_BITS {
            return Err(Error::malformed(
                path,
                format!(
                    "extended L2 entries need clusters of at least 16 KiB, cluster_bits is {}",
                    self.cluster_bits
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the L1 table, refcount table and virtual size are consistent
    /// with each other and fit in the file, without reading them.
    fn check_tables(&self, path: &Path, file_len: u64) -> Result<()> {
        let bad = |reason: String| Error::malformed(path, reason);
        let cs = self.cluster_size();
        let entry_bytes: u64 = if self.extended_l2() { 16 } else { 8 };
        let l2_entries = cs / entry_bytes;
        let clusters = self.size.div_ceil(cs);
        let needed_l1 = clusters.div_ceil(l2_entries);
        let l1_bytes = u64::from(self.l1_size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(bad(format!(
                "L1 table of {} entries ({l1_bytes} bytes) exceeds QEMU's limit of {MAX_L1_BYTES} bytes",
                self.l1_size
            )));
        }
        if needed_l1 > u64::from(self.l1_size) {
            return Err(bad(format!(
                "L1 table of {} entries is too small for a virtual size of {} bytes ({needed_l1} needed)",
                self.l1_size, self.size
            )));
        }
        if self.l1_size > 0 {
            if self.l1_table_offset % cs != 0 {
                return Err(bad(format!(
                    "L1 table offset 0x{:x} is not aligned to the cluster size",
                    self.l1_table_offset
                )));
            }
            if self.l1_table_offset < cs {
                return Err(bad(format!(
                    "L1 table offset 0x{:x} overlaps the header",
                    self.l1_table_offset
                )));
            }
            if !fits(self.l1_table_offset, l1_bytes, file_len) {
                return Err(bad(format!(
                    "L1 table at 0x{:x} ({l1_bytes} bytes) lies past the end of the file ({file_len} bytes)",
                    self.l1_table_offset
                )));
            }
        }
        if self.refcount_table_offset % cs != 0 {
            return Err(bad(format!(
                "refcount table offset 0x{:x} is not aligned to the cluster size",
                self.refcount_table_offset
            )));
        }
        if self.refcount_table_clusters == 0 {
            return Err(bad("the image has no refcount table (0 clusters)".into()));
        }
        let rt_bytes = u64::from(self.refcount_table_clusters) * cs;
        if self.refcount_table_offset < cs {
            return Err(bad(format!(
                "refcount table at 0x{:x} overlaps the header",
                self.refcount_table_offset
            )));
        }
        if !fits(self.refcount_table_offset, rt_bytes, file_len) {
            return Err(bad(format!(
                "refcount table at 0x{:x} ({rt_bytes} bytes) lies past the end of the file ({file_len} bytes)",
                self.refcount_table_offset
            )));
        }
        if self.l1_size > 0
            && self.refcount_table_offset < self.l1_table_offset + l1_bytes
            && self.l1_table_offset < self.refcount_table_offset + rt_bytes
        {
            return Err(bad(format!(
                "refcount table at 0x{:x} overlaps the L1 table at 0x{:x}",
                self.refcount_table_offset, self.l1_table_offset
            )));
        }
        Ok(())
    }

    /// File byte ranges holding metadata that guest data must never overlap:
    /// the header cluster, the active L1 table and the refcount table.
    pub fn metadata_ranges(&self) -> Vec<(u64, u64, &'static str)> {
        let cs = self.cluster_size();
        let mut v = vec![(0, cs, "the header")];
        if self.l1_size > 0 {
            v.push((
                self.l1_table_offset,
                u64::from(self.l1_size) * 8,
                "the L1 table",
            ));
        }
        if self.refcount_table_offset != 0 && self.refcount_table_clusters > 0 {
            v.push((
                self.refcount_table_offset,
                u64::from(self.refcount_table_clusters).saturating_mul(cs),
                "the refcount table",
            ));
        }
        v
    }
}

/// Reads the compression type field (byte 104) and checks it against bit 3.
fn compression_type(path: &Path, buf: &[u8], h: &Header) -> Result<CompressionType> {
    let present = h.version == 3 && h.header_length > 104;
    let value = if present { buf[104] } else { 0 };
    let bit = h.incompatible_features & INCOMPAT_COMPRESSION != 0;
    match (value, bit) {
        (0, false) => Ok(CompressionType::Zlib),
        (1, true) => Ok(CompressionType::Zstd),
        (0, true) => Err(Error::malformed(
            path,
            "the compression type bit is set but compression_type is zlib",
        )),
        (v, false) => Err(Error::malformed(
            path,
            format!("compression_type is {v} but the compression type bit is not set"),
        )),
        (v, true) => Err(Error::unsupported(
            path,
            format!("unknown compression type {v} (known: 0 zlib, 1 zstd)"),
        )),
    }
}

/// Reads the backing file name (header bytes 8-19) from the first cluster.
fn backing_name(path: &Path, buf: &[u8], cluster_size: u64) -> Result<Option<String>> {
    let offset = be64(buf, 8);
    if offset == 0 {
        return Ok(None);
    }
    let len = be32(buf, 16);
    if len > MAX_BACKING_NAME_LEN {
        return Err(Error::malformed(
            path,
            format!("backing file name is {len} bytes long (at most {MAX_BACKING_NAME_LEN})"),
        ));
    }
    let end = offset
        .checked_add(u64::from(len))
        .filter(|&e| e <= cluster_size);
    match end {
        Some(end) if end as usize <= buf.len() => {
            let name = text(path, &buf[offset as usize..end as usize], "backing file name")?;
            if name.is_empty() {
                return Err(Error::malformed(path, "backing file name is empty"));
            }
            Ok(Some(name))
        }
        _ => Err(Error::malformed(
            path,
            format!("backing file name at byte {offset} ({len} bytes) lies outside the first cluster or the file"),
        )),
    }
}

/// Whether all that [`Header::parse`] reads from a first cluster of
/// `cluster` bytes lies in `prefix`, so that it parses `prefix` exactly as
/// it would the whole cluster: the header, the extensions it walks (up to
/// the end marker or the extension area's end) and the backing file name.
/// `false` when in doubt (the cluster is then read whole).
fn parsed_within(prefix: &[u8], cluster: usize) -> bool {
    let n = prefix.len();
    if n < V3_MIN_HEADER_LEN as usize {
        return false;
    }
    let header_length = match be32(prefix, 4) {
        2 => V2_HEADER_LEN as usize,
        3 => be32(prefix, 100) as usize,
        _ => return false,
    };
    if header_length > n {
        return false;
    }
    // The extension area ends at the cluster's end or where the backing
    // file name starts (as in parse_extensions).
    let mut end = cluster;
    let backing_offset = be64(prefix, 8);
    if backing_offset != 0 {
        let name_end = backing_offset.checked_add(u64::from(be32(prefix, 16)));
        if name_end.is_none_or(|e| e > n as u64) {
            return false;
        }
        end = end.min(usize::try_from(backing_offset).unwrap_or(usize::MAX));
    }
    let mut pos = header_length;
    while pos + 8 <= end {
        if pos + 8 > n {
            return false;
        }
        if be32(prefix, pos) == EXT_END {
            return true;
        }
        let len = be32(prefix, pos + 4) as usize;
        match (pos + 8).checked_add(len) {
            Some(data_end) if data_end <= n => {}
            _ => return false,
        }
        pos = pos + 8 + len.div_ceil(8) * 8;
    }
    true
}

/// A UTF-8 string from an image field.
fn text(path: &Path, bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::malformed(path, format!("{what} is not valid UTF-8")))
}

/// Does `[offset, offset + len)` lie within a file of `file_len` bytes?
pub(crate) fn fits(offset: u64, len: u64, file_len: u64) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= file_len)
}

/// Big-endian u32 at `at` (caller guarantees bounds).
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Big-endian u64 at `at` (caller guarantees bounds).
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
